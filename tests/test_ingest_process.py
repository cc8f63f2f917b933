"""The ingest worker as the operator runs it (`citywatch ingest run`), killed with SIGKILL mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.localstack import LocalMosquitto
from devices.assets import Asset
from devices.contract import DeviceRef
from devices.registry import Registry
from tests.conftest import InfluxTarget
from tests.mqtt_tools import count_points, lamp_batches, lamp_city, publish_all
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def register(url: str, city: dict[str, DeviceRef]) -> None:
    gateways = {ref.gateway for ref in city.values() if ref.gateway}
    assets = [Asset(id=gw, kind="gateway", district="d0", lat=30.6, lon=114.3) for gw in sorted(gateways)]
    assets += [
        Asset(
            id=ref.device_id,
            kind=ref.kind.value,
            district=ref.district,
            road_class="branch",
            gateway=ref.gateway or "",
            lat=30.6,
            lon=114.3,
        )
        for ref in city.values()
    ]
    with Registry(url) as registry:
        registry.upsert(assets)


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "citywatch.cli", "ingest", "run"], env=self.env, stdout=log, stderr=log
            )

    def subscribed(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"the worker exited:\n{self.log()[-3000:]}"
        return "subscribed" in self.log()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker_env(
    mosquitto: LocalMosquitto, influx_db: InfluxTarget, tmp_path: Path
) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}
    env.update(
        CITYWATCH_MQTT_URL=mosquitto.url,
        CITYWATCH_INFLUX_URL=influx_db.url,
        CITYWATCH_INFLUX_DB=influx_db.db,
        CITYWATCH_REGISTRY_URL=f"sqlite:///{tmp_path / 'registry.db'}",
        CITYWATCH_VAR_DIR=str(tmp_path / "var"),
        CITYWATCH_INGEST_CLIENT_ID="ingest-crash-test",
        CITYWATCH_INGEST_BATCH_MAX_LINES="500",
    )
    return env


def test_a_worker_killed_mid_stream_and_restarted_later_loses_nothing(
    worker_env: dict[str, str], mosquitto: LocalMosquitto, influx_db: InfluxTarget, tmp_path: Path
) -> None:
    city = lamp_city(400, per_gateway=40)
    register(worker_env["CITYWATCH_REGISTRY_URL"], city)
    worker = WorkerProcess(worker_env, tmp_path / "worker.log")
    worker.start()
    try:
        wait_until(worker.subscribed, 20, "the worker subscribed")
        start = time.time_ns() // 1_000_000 - 60 * 60_000
        ticks = 40
        messages = [m for t in range(ticks) for m in lamp_batches(city, start + t * 60_000, t)]
        publisher = threading.Thread(target=publish_all, args=(mosquitto, messages))
        publisher.start()
        # kill it while it is busy: some readings stored, many not yet
        wait_until(lambda: count_points(influx_db.url, influx_db.db) > 0, 30, "some readings stored")
        worker.kill()
        publisher.join(60)
        stored_at_kill = count_points(influx_db.url, influx_db.db)
        assert stored_at_kill < ticks * len(city), "the kill came too late to prove anything"
        worker.start()
        expected = ticks * len(city)
        wait_until(
            lambda: count_points(influx_db.url, influx_db.db) >= expected, 60, f"all {expected} readings"
        )
        assert count_points(influx_db.url, influx_db.db) == expected
        assert worker.terminate() == 0
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()
