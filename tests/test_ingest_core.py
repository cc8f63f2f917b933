"""Pure ingest logic: line protocol, batching policy, backoff, and the durable writer's decisions.

The writer is exercised here with an in-memory sink that fails on command; the same paths run
against a real InfluxDB in test_ingest_influx.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.contract import Reading, RejectReason
from devices.kinds import DeviceKind
from ingest import InfluxPointsRejected, InfluxTransientError
from ingest.batching import Batch, BatchPolicy
from ingest.deadletter import DeadLetterStore
from ingest.lineproto import escape_tag, reading_line
from ingest.retry import Backoff
from ingest.spool import Spool
from ingest.writer import DurableWriter, ShuttingDown


def test_line_has_measurement_tags_typed_fields_seq_and_device_time() -> None:
    reading = Reading(
        "LMP-1",
        DeviceKind.LAMP,
        "jiang an",
        1_795_000_000_123,
        42,
        {"supply_voltage": 221.0, "dim_level": 100, "lamp_on": True, "active_power": 1e-05},
    )
    assert reading_line(reading) == (
        r"lamp,device=LMP-1,district=jiang\ an "
        "supply_voltage=221.0,dim_level=100i,lamp_on=true,active_power=1e-05,seq=42i 1795000000123"
    )


@pytest.mark.parametrize("value", ["", "a\nb", "ends\\"])
def test_tag_values_that_would_break_line_protocol_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="line protocol"):
        escape_tag(value)


def test_batch_is_due_when_full_or_old_and_never_when_empty() -> None:
    policy = BatchPolicy(max_lines=3, max_bytes=10_000, max_age_s=1.0)
    batch = Batch(opened_at=100.0)
    assert not batch.is_due(1000.0, policy)
    batch.add(["a", "b"], (), ack=1, oldest_ts_ms=5)
    assert not batch.is_due(100.5, policy)
    assert batch.is_due(101.0, policy)
    batch.add(["c"], (), ack=2, oldest_ts_ms=3)
    assert batch.is_due(100.0, policy)
    assert (batch.acks, batch.oldest_ts_ms, batch.messages) == ([1, 2], 3, 2)


@given(st.integers(1, 60), st.floats(0, 0.999), st.one_of(st.none(), st.floats(0, 1000)))
def test_backoff_grows_is_capped_and_honours_retry_after(
    attempt: int, rand: float, retry_after: float | None
) -> None:
    policy = Backoff(base_s=0.1, factor=2, cap_s=10, jitter=0.5)
    delay = policy.next_delay(attempt, rand, retry_after)
    assert 0 < delay <= policy.cap_s
    if retry_after is not None:
        assert delay >= min(retry_after, policy.cap_s)
    assert policy.next_delay(attempt + 1, 0.0) >= policy.next_delay(attempt, 0.0)


class FlakySink:
    """In-memory InfluxDB stand-in for the pure tier: stores lines, refuses 'bad' ones, can be down."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.down = False
        self.calls = 0

    def write(self, body: bytes, precision: str = "ms") -> None:
        self.calls += 1
        if self.down:
            raise InfluxTransientError("HTTP 503: down", retry_after=None)
        lines = body.decode().split("\n")
        good = [line for line in lines if "bad" not in line]
        self.stored.extend(good)  # like InfluxDB 1.x: a partial write keeps the good points
        if len(good) != len(lines):
            raise InfluxPointsRejected("partial write: field type conflict dropped=1")


@pytest.fixture
def writer(tmp_path: Path) -> tuple[DurableWriter, FlakySink, DeadLetterStore]:
    sink = FlakySink()
    store = DeadLetterStore(tmp_path / "dl.db", "w1")
    fast = Backoff(base_s=0.001, cap_s=0.002)
    w = DurableWriter(sink, Spool(tmp_path / "spool", 10**6), store, backoff=fast, retry_budget_s=0.01)
    yield w, sink, store
    store.close()


def test_bad_lines_are_dead_lettered_and_every_good_line_is_stored(
    writer: tuple[DurableWriter, FlakySink, DeadLetterStore],
) -> None:
    w, sink, store = writer
    lines = [f"lamp,device=L{i} x={i}.0 {i}" for i in range(100)]
    lines[13] = "lamp,device=L13 bad=1i 13"
    lines[77] = "lamp,device=L77 bad=1i 77"
    report = w.write(lines)
    assert (report.written, report.dead, report.spooled) == (98, 2, 0)
    assert set(sink.stored) == set(lines) - {lines[13], lines[77]}
    dead = store.list()
    assert {d.device for d in dead} == {"L13", "L77"}
    assert all(d.reason == RejectReason.DB_REJECTED.value and "field type conflict" in d.detail for d in dead)
    assert {d.payload for d in dead} == {lines[13], lines[77]}


def test_outage_spools_then_replays_in_order_and_new_batches_queue_behind(
    writer: tuple[DurableWriter, FlakySink, DeadLetterStore],
) -> None:
    w, sink, _ = writer
    sink.down = True
    assert w.write(["m a=1 1", "m a=2 2"]).spooled == 2
    sink.down = False
    assert w.write(["m a=3 3"]).spooled == 1  # the spool is not empty: keep order
    assert sink.stored == []
    assert w.replay_once() and w.replay_once() and not w.replay_once()
    assert sink.stored == ["m a=1 1", "m a=2 2", "m a=3 3"]
    assert w.spool.is_empty() and w.replayed == 3
    assert w.write(["m a=4 4"]).written == 1


def test_spool_survives_a_restart_and_discards_torn_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**6)
    spool.append(b"m a=1 1")
    spool.append(b"m a=2 2")
    (tmp_path / "0000000000000003.tmp").write_bytes(b"m a=3")  # a crash mid-write
    reopened = Spool(tmp_path, 10**6)
    assert reopened.segments == 2
    assert not list(tmp_path.glob("*.tmp"))
    number, body = reopened.oldest() or (0, b"")
    assert body == b"m a=1 1"
    reopened.remove(number)
    reopened.append(b"m a=4 4")
    assert [reopened.oldest()] == [(2, b"m a=2 2")]
    assert reopened.nbytes == len(b"m a=2 2") + len(b"m a=4 4")


def test_a_full_spool_refuses_to_acknowledge_while_stopping(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down = True
    stopping = threading.Event()
    stopping.set()
    with DeadLetterStore(tmp_path / "dl.db", "w") as store:
        w = DurableWriter(sink, Spool(tmp_path / "s", 10), store, retry_budget_s=0.0, stopping=stopping)
        with pytest.raises(ShuttingDown):
            w.write(["m a=1 1", "m a=2 2"])
        assert w.spool.is_empty()
