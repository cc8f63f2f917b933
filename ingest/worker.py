"""The ingest worker (adapter): paho-mqtt in, durable writes out, acknowledgements back.

Threads, each with one job:
- paho's network thread decodes each message (pure ``devices.contract.decode``) into the open batch;
- the flush thread writes a due batch durably, records its rejections, then acknowledges its messages;
- the replay thread drains the spool when InfluxDB is back;
- the housekeeping thread reloads the device directory and writes self-metrics.

Acknowledgement is manual (paho ``manual_ack=True``): a QoS 1 message that was never acknowledged is
redelivered by the broker when the session resumes, so a crash between receipt and durability loses
nothing. The session is persistent (MQTT 5 clean_start=False with a session expiry; 3.1.1
clean_session=False) and the subscription shared (``$share/<group>/...``), so N workers split one stream.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices import topics
from devices.broker import BrokerAddress
from devices.contract import DeviceRef, Rejection, RejectReason, decode
from devices.mqtt_client import new_client
from ingest import IngestError
from ingest.batching import Batch
from ingest.deadletter import DeadLetterStore
from ingest.influx import InfluxV1
from ingest.lineproto import reading_line
from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings
from ingest.spool import Spool
from ingest.writer import DurableWriter, ShuttingDown

log = logging.getLogger(__name__)

DirectorySource = Callable[[], Mapping[str, DeviceRef]]
DeviceLookup = Callable[[str], DeviceRef | None]
_MAX_MISSES = 10_000
# Registry lookups of unknown devices per second at most (each ~4 ms with its own connection): a flood of
# unregistered devices costs the decoding thread a few percent, never the stream.
_LOOKUPS_PER_S = 10


def _own(directory: Mapping[str, DeviceRef]) -> dict[str, DeviceRef]:
    """The directory as a dict this worker may add to (the registry hands out a new dict each time)."""
    return directory if type(directory) is dict else dict(directory)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class IngestWorker:
    def __init__(
        self,
        settings: IngestSettings,
        mqtt_target: BrokerAddress,
        influx: InfluxV1,
        directory_source: DirectorySource,
        var_dir: Path,
        device_lookup: DeviceLookup | None = None,
    ) -> None:
        """The worker owns ``influx`` from here on and closes it when it stops. ``device_lookup`` finds one
        device the directory does not hold yet (a device commissioned since the last reload)."""
        self.settings = settings
        self.mqtt_target = mqtt_target
        self.influx = influx
        self._directory_source = directory_source
        self._directory: dict[str, DeviceRef] = {}
        self._device_lookup = device_lookup
        # Devices looked up and not found, until when (monotonic s): a stream from an unregistered device
        # costs one registry lookup per directory_miss_refresh_s, not one per message. Bounded: cleared
        # when it holds more than _MAX_MISSES devices.
        self._misses: dict[str, float] = {}
        self._lookup_second, self._lookups = 0, 0
        self._limits = settings.limits()
        self._policy = settings.batch_policy()
        self.metrics = IngestMetrics(settings.client_id)
        self.dead_letters = DeadLetterStore(
            settings.deadletter_file(var_dir), settings.client_id, settings.deadletter_max_rows
        )
        self.stopping = threading.Event()
        self.spool = Spool(settings.spool_path(var_dir), settings.spool_max_bytes)
        self.writer = DurableWriter(
            influx,
            self.spool,
            self.dead_letters,
            retry_budget_s=settings.retry_budget_s,
            stopping=self.stopping,
        )
        self.connected = threading.Event()
        self._closing = False
        self._cond = threading.Condition()
        # Decoded messages waiting to be written, oldest first. A write takes at most one batch's worth
        # from the head: batches stay at the size InfluxDB handles well however long a write takes, and
        # the broker's receive maximum bounds what waits here.
        self._pending: deque[_Pending] = deque()
        self._pending_lines = 0
        self._pending_bytes = 0
        self._max_pending_lines = settings.batch_max_lines * (settings.writers + 2)
        self._threads: list[threading.Thread] = []
        self._client = self._make_client()
        self._metrics_server: Any = None

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._directory = _own(self._directory_source())
        self.influx.create_database()
        if self.settings.metrics_port is not None:
            from prometheus_client import start_http_server

            self._metrics_server, _ = start_http_server(
                self.settings.metrics_port, self.settings.metrics_host, registry=self.metrics.registry
            )
        flushers = [(f"flush{n}", self._flush_loop) for n in range(1, self.settings.writers + 1)]
        for name, target in (
            *flushers,
            ("replay", self._replay_loop),
            ("housekeeping", self._housekeeping_loop),
        ):
            thread = threading.Thread(target=target, name=f"{self.settings.client_id}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        t = self.mqtt_target
        props: Properties | None = None
        if self.settings.mqtt_protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.settings.session_expiry_s
            props.ReceiveMaximum = self.settings.receive_maximum
            self._client.connect_async(t.host, t.port, keepalive=30, clean_start=False, properties=props)
        else:
            self._client.connect_async(t.host, t.port, keepalive=30)
        self._client.loop_start()
        log.info(
            "ingest %s started: %s:%d, %d devices known",
            self.settings.client_id,
            t.host,
            t.port,
            len(self._directory),
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Write and acknowledge what was received, then disconnect (the session stays on the broker)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        writers = self.settings.writers
        for thread in self._threads[:writers]:
            thread.join(timeout)  # the flush threads: the last batches are written and acknowledged
        self.stopping.set()
        for thread in self._threads[writers:]:
            thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self.dead_letters.close()
        self.influx.close()
        log.info("ingest %s stopped", self.settings.client_id)

    # -- MQTT -------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = new_client(
            self.mqtt_target,
            self.settings.client_id,
            protocol=self.settings.mqtt_protocol,
            persistent=True,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, reason: Any, _props: object
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused connection: %s", reason)
            return
        filters = [(f"$share/{self.settings.share_group}/{f}", 1) for f in topics.INGEST_FILTERS]
        client.subscribe(filters)
        self.connected.set()
        log.info("connected to broker, subscribed to %s", ", ".join(f for f, _ in filters))

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        self.connected.clear()
        if not self._closing:
            log.warning("disconnected from broker (%s); paho reconnects", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        now_ms = _now_ms()
        payload = bytes(msg.payload)
        try:
            decoded = decode(msg.topic, payload, now_ms, self._directory, self._limits)
            if self._admit_new_devices(decoded.rejections):
                decoded = decode(msg.topic, payload, now_ms, self._directory, self._limits)
            lines = [reading_line(r) for r in decoded.readings]
            rejections = decoded.rejections
            oldest = min((r.ts_ms for r in decoded.readings), default=None)
        except Exception as exc:  # a bug must cost one message, never the worker
            log.exception("could not decode a message on %s", msg.topic)
            lines, oldest = [], None
            rejections = (Rejection(RejectReason.BAD_SCHEMA, f"decoder failed: {exc!r}", msg.topic),)
        self.metrics.messages.inc()
        self.metrics.received.inc(len(lines) + len(rejections))
        for r in rejections:
            self.metrics.reject(r.reason)
        excerpt = payload[:2048] if rejections else None
        entry = _Pending(
            lines, rejections, msg.mid, oldest, excerpt, time.monotonic(), sum(map(len, lines)) + len(lines)
        )
        with self._cond:
            # Mosquitto 2.0.11 does not hold to the Receive Maximum once acknowledgements flow (it
            # releases a burst per PUBACK; seen in bench/ingest.py), so the queue is bounded here: paho's
            # thread waits while a few batches already wait. A write takes well under the keepalive.
            while self._pending_lines >= self._max_pending_lines and not self._closing:
                self._cond.wait(1.0)
            if self._closing:
                return  # not acknowledged: the broker redelivers it to the next session
            self._pending.append(entry)
            self._pending_lines += len(lines)
            self._pending_bytes += entry.nbytes
            if self._policy.is_full(self._pending_lines, self._pending_bytes):
                self._cond.notify_all()

    # -- flushing ---------------------------------------------------------------------------------
    def _due(self, now: float) -> bool:
        if not self._pending:
            return False
        age_s = now - self._pending[0].received_at
        return self._closing or self._policy.is_due(self._pending_lines, self._pending_bytes, age_s)

    def _take_due_batch(self) -> tuple[Batch, list[tuple[int, bytes]]] | None:
        """Wait until a batch is due; take at most one batch's worth of messages (at least one)."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._due(now):
                    break
                if self._closing:
                    return None
                wait = self._policy.max_age_s - (now - self._pending[0].received_at) if self._pending else 0.5
                self._cond.wait(max(0.005, wait))
            batch = Batch(opened_at=self._pending[0].received_at)
            payloads: list[tuple[int, bytes]] = []  # (first rejection index, payload) per message
            while self._pending and (batch.messages == 0 or not batch.is_full(self._policy)):
                entry = self._pending.popleft()
                self._pending_lines -= len(entry.lines)
                self._pending_bytes -= entry.nbytes
                if entry.excerpt is not None:
                    payloads.append((len(batch.rejections), entry.excerpt))
                batch.add(entry.lines, entry.rejections, entry.mid, entry.oldest_ts_ms, entry.nbytes)
            self._cond.notify_all()  # room in the queue for paho's thread
            return batch, payloads

    def _flush_loop(self) -> None:
        while True:
            taken = self._take_due_batch()
            if taken is None:
                return
            batch, payloads = taken
            try:
                self._flush(batch, payloads)
            except ShuttingDown:
                log.warning(
                    "stopped with %d messages unacknowledged; the broker redelivers them", batch.messages
                )
                return

    def _flush(self, batch: Batch, payloads: list[tuple[int, bytes]]) -> None:
        attempt = 0
        while True:
            try:
                report = self.writer.write(batch.lines)
                excerpts = _excerpts(len(batch.rejections), payloads)
                self.dead_letters.record(batch.rejections, _now_ms(), excerpts)
                break
            except ShuttingDown:
                raise
            except (IngestError, OSError) as exc:  # spool or dead-letter store unwritable: keep unacked
                attempt += 1
                log.error("batch of %d messages not durable yet (%s); retrying", batch.messages, exc)
                if self.stopping.wait(min(30.0, 0.5 * attempt)):
                    raise ShuttingDown("stopping") from exc
        for mid in batch.acks:
            self._client.ack(mid, 1)
        self.metrics.written.inc(report.written)
        self.metrics.spooled.inc(report.spooled)
        if report.dead:
            self.metrics.reject(RejectReason.DB_REJECTED, report.dead)
        if batch.oldest_ts_ms is not None:
            lag = (_now_ms() - batch.oldest_ts_ms) / 1000
            self.metrics.lag.observe(lag)
            self.metrics.last_lag_s = lag

    # -- background -------------------------------------------------------------------------------
    def _replay_loop(self) -> None:
        while not self.stopping.is_set():
            before = self.writer.replayed
            if self.writer.replay_once():
                self.metrics.replayed.inc(self.writer.replayed - before)
                self.metrics.written.inc(self.writer.replayed - before)
                continue
            self.stopping.wait(0.2 if self.spool.is_empty() else 1.0)

    def _admit_new_devices(self, rejections: tuple[Rejection, ...]) -> bool:
        """Look up the unregistered devices of a message one by one in the registry; True when one was
        found (and added to the directory), so the message is decoded again. A device commissioned a
        moment ago reports at once: its first reading must not wait for the next full reload."""
        if self._device_lookup is None:
            return False
        now = time.monotonic()
        found = False
        for r in rejections:
            if r.reason is not RejectReason.UNREGISTERED or r.device is None:
                continue
            if self._misses.get(r.device, 0.0) > now:
                continue
            second = int(now)
            if second != self._lookup_second:
                self._lookup_second, self._lookups = second, 0
            if self._lookups >= _LOOKUPS_PER_S:
                break
            self._lookups += 1
            try:
                ref = self._device_lookup(r.device)
            except Exception:
                log.exception("could not look up %s in the registry", r.device)
                ref = None
            if ref is None:
                if len(self._misses) >= _MAX_MISSES:
                    self._misses.clear()
                self._misses[r.device] = now + self.settings.directory_miss_refresh_s
                continue
            # In place: the housekeeping thread swaps in a whole new dict, never mutates this one. A
            # reload that began before the device was registered drops it again; the next message then
            # looks it up again.
            self._directory[r.device] = ref
            found = True
        return found

    def _housekeeping_loop(self) -> None:
        next_metrics = next_directory = time.monotonic()
        while not self.stopping.wait(0.5):
            now = time.monotonic()
            self.metrics.spool_bytes.set(self.spool.nbytes)
            if now >= next_directory:
                next_directory = now + self.settings.directory_refresh_s
                try:
                    self._directory = _own(self._directory_source())
                except Exception:
                    log.exception("could not reload the device directory; keeping the old one")
            if now >= next_metrics:
                next_metrics = now + self.settings.self_metrics_interval_s
                try:
                    self.influx.write(self.metrics.line(_now_ms()).encode())
                except IngestError as exc:
                    log.debug("self-metrics not written: %s", exc)

    def reload_directory(self) -> None:
        self._directory = _own(self._directory_source())


@dataclass(frozen=True, slots=True)
class _Pending:
    """One decoded message waiting to be written."""

    lines: list[str]
    rejections: tuple[Rejection, ...]
    mid: int
    oldest_ts_ms: int | None
    excerpt: bytes | None  # the payload's start, kept only when something in it was rejected
    received_at: float
    nbytes: int


def _excerpts(count: int, payloads: list[tuple[int, bytes]]) -> list[str | None]:
    """The message payload excerpt for each rejection (rejections of one message share it)."""
    out: list[str | None] = [None] * count
    starts = [*payloads, (count, b"")]
    for (start, payload), (end, _) in itertools.pairwise(starts):
        text = payload.decode("utf-8", errors="replace")
        for i in range(start, end):
            out[i] = text
    return out
