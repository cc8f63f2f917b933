"""The live status line of `citywatch run` (pure formatting)."""

from __future__ import annotations

from citywatch.status import Sample, format_status
from ingest.metrics import Snapshot


def snap(written: int, rejected: dict[str, int] | None = None) -> Snapshot:
    reasons = rejected or {}
    return Snapshot(
        written + sum(reasons.values()), written, sum(reasons.values()), 0, 0, 2_500_000, 0.42, reasons
    )


def test_status_line_shows_rates_totals_rejects_by_reason_lag_spool_and_sim_time() -> None:
    before = Sample(100.0, 1_000, snap(1_000))
    now = Sample(160.0, 7_000, snap(6_940, {"unregistered": 50, "out_of_range": 10}))
    line = format_status(now, before, sim_time=1_795_000_000.0)
    assert line == (
        "published 100/s | stored 99/s (6,940 total) | rejected 60 (unregistered 50, out_of_range 10)"
        " | lag 0.42 s | spool 2.5 MB | sim 2026-11-18 11:06Z"
    )
