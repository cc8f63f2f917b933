"""`citywatch ingest rejects`: an operator lists what was rejected and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli import app
from devices.contract import Rejection, RejectReason
from ingest.deadletter import DeadLetterStore


def test_rejects_lists_reasons_counts_and_details(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYWATCH_VAR_DIR", str(tmp_path))
    with DeadLetterStore(tmp_path / "ingest" / "deadletter.db", "w1") as store:
        store.record(
            [
                Rejection(
                    RejectReason.OUT_OF_RANGE,
                    "supply_voltage=9999 V outside 0 to 400",
                    "cw/v1/gw/GW-1/batch",
                    "LMP-7",
                    3,
                ),
                Rejection(
                    RejectReason.UNREGISTERED,
                    "LMP-404 is not in the asset registry",
                    "cw/v1/dev/LMP-404/telemetry",
                    "LMP-404",
                ),
                Rejection(
                    RejectReason.UNREGISTERED,
                    "LMP-405 is not in the asset registry",
                    "cw/v1/dev/LMP-405/telemetry",
                    "LMP-405",
                ),
            ],
            1_795_000_000_000,
        )
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "rejects"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "unregistered" in result.output and "out_of_range" in result.output
    assert "supply_voltage=9999 V outside 0 to 400" in result.output
    only = runner.invoke(app, ["ingest", "rejects", "--reason", "unregistered"], env={"COLUMNS": "200"})
    assert "LMP-405" in only.output and "LMP-7 " not in only.output


def test_rejects_says_when_nothing_was_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYWATCH_VAR_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["ingest", "rejects"])
    assert result.exit_code == 0
    assert "nothing was rejected yet" in result.output
