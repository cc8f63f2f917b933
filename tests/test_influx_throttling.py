"""InfluxDB 2.x / 3.x throttle with 429 and Retry-After, which the InfluxDB 1.x of these tests never does.

A local HTTP server stands in for that one behaviour (it is not a test of InfluxDB): the client must
honour Retry-After, keep the data, and store it once the server takes writes again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from ingest.deadletter import DeadLetterStore
from ingest.influx import InfluxTarget, InfluxV1
from ingest.retry import Backoff
from ingest.spool import Spool
from ingest.writer import DurableWriter


class Throttling(BaseHTTPRequestHandler):
    refusals = 2
    bodies: ClassVar[list[bytes]] = []
    times: ClassVar[list[float]] = []
    auth: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Throttling.times.append(time.monotonic())
        Throttling.auth.append(self.headers.get("Authorization"))
        if Throttling.refusals > 0:
            Throttling.refusals -= 1
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"code":"too many requests","message":"slow down"}')
            return
        Throttling.bodies.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def throttling_server() -> Iterator[str]:
    Throttling.refusals, Throttling.bodies, Throttling.times, Throttling.auth = 2, [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_retry_after_is_honoured_and_the_batch_lands(throttling_server: str, tmp_path: Path) -> None:
    target = InfluxTarget(throttling_server, "citywatch", token="secret-token")
    with InfluxV1(target) as client, DeadLetterStore(tmp_path / "dl.db", "w") as store:
        writer = DurableWriter(
            client, Spool(tmp_path / "spool", 10**6), store, backoff=Backoff(base_s=0.01), retry_budget_s=10
        )
        report = writer.write(["lamp,device=L1,district=d x=1.0 1", "lamp,device=L2,district=d x=2.0 1"])
    assert (report.written, report.spooled, report.dead) == (2, 0, 0)
    assert Throttling.bodies == [b"lamp,device=L1,district=d x=1.0 1\nlamp,device=L2,district=d x=2.0 1"]
    gaps = [b - a for a, b in zip(Throttling.times, Throttling.times[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 0.95  # waited as told, not the 10 ms of its own backoff
    assert set(Throttling.auth) == {"Token secret-token"}  # InfluxDB 2.x / 3.x v1-compatible auth


def test_throttling_past_the_budget_spools_instead_of_losing(throttling_server: str, tmp_path: Path) -> None:
    Throttling.refusals = 100
    with (
        InfluxV1(InfluxTarget(throttling_server, "citywatch")) as client,
        DeadLetterStore(tmp_path / "dl.db", "w") as store,
    ):
        writer = DurableWriter(client, Spool(tmp_path / "spool", 10**6), store, retry_budget_s=0.5)
        assert writer.write(["lamp,device=L1,district=d x=1.0 1"]).spooled == 1
        Throttling.refusals = 0
        assert writer.replay_once()
    assert Throttling.bodies == [b"lamp,device=L1,district=d x=1.0 1"]
