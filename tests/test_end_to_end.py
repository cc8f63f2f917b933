"""The simulated city through the whole pipeline: what an operator would see."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.localstack import LocalMosquitto
from devices.broker import BrokerAddress
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.inventory import generate_city, write_inventory
from firmware_sim.publisher import MqttPublisher
from firmware_sim.runner import publish_readings
from ingest.influx import InfluxTarget as IngestTarget
from ingest.influx import InfluxV1
from ingest.settings import IngestSettings
from ingest.worker import IngestWorker
from tests.conftest import InfluxTarget
from tests.mqtt_tools import influx_rows
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

KINDS = ("lamp", "cabinet", "bridge_node", "pump_station", "flood_gauge", "bin")


def stored_by_kind(url: str, db: str) -> dict[str, int]:
    counts = {}
    for kind in KINDS:
        rows = influx_rows(url, db, f'SELECT count("seq") FROM "{kind}"')
        counts[kind] = int(rows[0][1]) if rows else 0
    return counts


@pytest.mark.parametrize("single", [False, True], ids=["gateway-batches", "single-messages"])
def test_the_simulator_publishes_k_readings_and_exactly_k_are_queryable(
    single: bool, mosquitto: LocalMosquitto, influx_db: InfluxTarget, tmp_path: Path
) -> None:
    city = generate_city(400, seed=7)
    inventory = tmp_path / "city.csv"
    write_inventory(city, inventory)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with Registry(url) as registry:
        summary = import_file(registry, inventory)
        assert summary.rejected == 0
        directory = registry.directory()
    settings = IngestSettings(client_id="e2e", batch_max_age_s=0.05)
    worker = IngestWorker(
        settings,
        BrokerAddress.from_url(mosquitto.url),
        InfluxV1(IngestTarget(influx_db.url, influx_db.db)),
        lambda: directory,
        tmp_path / "var",
    )
    k = 3000 if single else 12_000
    with worker:
        wait_until(worker.connected.is_set, 10, "ingest connected")
        with MqttPublisher(BrokerAddress.from_url(mosquitto.url)) as publisher:
            result = publish_readings(city, publisher, k, seed=3, single=single)
        assert result.readings == k
        assert len(result.published) == k  # distinct (device, timestamp): K different points
        wait_until(
            lambda: sum(stored_by_kind(influx_db.url, influx_db.db).values()) >= k, 60, f"{k} readings"
        )
    by_kind = stored_by_kind(influx_db.url, influx_db.db)
    assert sum(by_kind.values()) == k
    assert by_kind["lamp"] > 0 and by_kind["cabinet"] > 0
    assert worker.metrics.snapshot().rejected == 0
    # a sample of what was published is queryable under its own device and timestamp
    device, ts = sorted(result.published)[len(result.published) // 2]
    kind = next(
        k
        for k in KINDS
        if influx_rows(
            influx_db.url, influx_db.db, f"SELECT count(seq) FROM \"{k}\" WHERE device = '{device}'"
        )
    )
    rows = influx_rows(
        influx_db.url, influx_db.db, f"SELECT seq FROM \"{kind}\" WHERE device = '{device}' AND time = {ts}ms"
    )
    assert len(rows) == 1


@pytest.fixture
def run_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}
    env["CITYWATCH_VAR_DIR"] = str(tmp_path / "var")
    start = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    proc = subprocess.Popen(
        [sys.executable, "-m", "citywatch.cli", "run", "--lamps", "300", "--speed", "120", "--start", start],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_citywatch_run_shows_readings_flowing_and_stops_cleanly_on_ctrl_c(
    run_process: subprocess.Popen[str], tmp_path: Path
) -> None:
    assert run_process.stdout is not None
    output: list[str] = []

    def read_until(pattern: str) -> re.Match[str]:
        def step() -> re.Match[str] | None:
            line = run_process.stdout.readline()  # type: ignore[union-attr]
            assert line or run_process.poll() is None, "citywatch run exited:\n" + "".join(output)
            output.append(line)
            return re.search(pattern, line)

        return wait_until(step, 120, f"{pattern!r} in the output")

    influx_url = read_until(r"InfluxDB\s+(http://127\.0\.0\.1:\d+)").group(1)
    read_until(r"rejects\s+citywatch ingest rejects")
    status = read_until(r"stored [\d,]+/s \(([\d,]+) total\)")
    wait_until(lambda: sum(stored_by_kind(influx_url, "citywatch").values()) > 0, 60, "readings in InfluxDB")
    assert int(status.group(1).replace(",", "")) >= 0
    assert (tmp_path / "var" / "city.csv").exists()
    run_process.send_signal(signal.SIGINT)
    rest, _ = run_process.communicate(timeout=60)
    assert run_process.returncode == 0, "".join(output) + rest
    assert "stopped" in rest
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "var")], capture_output=True, text=True, check=False
    ).stdout
    assert leftovers == "", f"processes left running: {leftovers}"
