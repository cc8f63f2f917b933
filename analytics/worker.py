"""The analytics worker (adapter): MQTT telemetry in, the engine evaluated every tick, findings and KPIs out.

It subscribes to the telemetry and gateway-batch topics on its own (not the ingest's shared group): every
partition worker sees the whole stream and keeps its own devices' readings (the decoder's directory holds
only the partition's devices; the others are counted as foreign). Delivery is QoS 1 with a clean session:
what the worker misses while it is down is in InfluxDB, and a start replays it from there:

1. subscribe (messages wait in a bounded queue),
2. read the findings that were open (their last point in ``finding`` says open),
3. replay the recent telemetry of the partition through the engine, slice by slice, in data time,
4. adopt the restored findings (nothing raised twice; what opened while down is raised now),
5. then every ``tick_s``: decode the queue, ingest, evaluate, write findings and (every ``kpi_every_s``)
   KPIs. Readings the replay already applied come again from the queue and are dropped as stale.

With the KPIs go what the dashboards need besides: ``completeness`` (devices in service and reporting,
per district and kind), the worker's self-metrics (``citywatch_analytics``) and, until written once, where
its devices are (``asset``).

Operators' commands and their acks (``cw/v1/{dev,gw}/+/cmd`` and ``.../cmd/ack``) go to
``analytics.overrides``: a lamp commanded off at night is planned off, one commanded on by day is not day
burning, while the command holds. Each accepted override is written to ``manual_override`` and read back
on start, before the replay, so a restart does not turn a lamp switched off on purpose into a dark one.

The paho thread only queues raw messages; decoding and evaluation run on the worker's own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import numpy as np
import orjson
import paho.mqtt.client as mqtt

from analytics.comm import CommDetector
from analytics.engine import Engine, KpiTable, TickResult
from analytics.findings import Change, FindingEvent
from analytics.lineproto import analytics_metrics_line
from analytics.overrides import (
    ManualOverrides,
    OverrideUpdate,
    override_line,
    override_query,
    overrides_from_rows,
)
from analytics.rate_scopes import rate
from analytics.schedule import LampScheduler
from analytics.settings import AnalyticsSettings
from analytics.state import NEVER, LiveState, batches_from_readings
from analytics.store import AnalyticsStore
from analytics.topology import DISTRICT, Topology
from devices import topics
from devices.broker import BrokerAddress
from devices.commands import ACK_FILTERS, COMMAND_FILTERS
from devices.contract import DeviceRef, Limits, Reading, decode
from devices.kinds import DeviceKind
from devices.mqtt_client import new_client
from ingest import InfluxError
from ingest.influx import InfluxV1

log = logging.getLogger(__name__)

STATUS_FILTER = f"{topics.ROOT}/gw/+/status"
_MAX_UNWRITTEN_OVERRIDES = 10_000  # override points waiting for InfluxDB; past it only a restart loses them


class GatewayStatusSink(Protocol):
    def gateway_status(self, gateway: int, online: bool, ts_ms: int) -> None: ...


class FindingListener(Protocol):
    """Who acts on findings (the alert service): told each tick's events, and each tick."""

    def on_events(self, events: Sequence[FindingEvent], now_ms: int) -> None: ...

    def tick(self, now_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class AnalyticsSnapshot:
    """What the status line and the self-metrics show."""

    state: str  # "restoring", "running", "stopped"
    lighting_rate: float  # city, observed; NaN when nothing is due or not yet computed
    lighting_rate_lower: float
    open_findings: Mapping[str, int]  # by rule
    readings: int
    stale: int
    foreign: int
    dropped: int  # raw messages dropped because the queue was full
    tick_ms: float  # last evaluation's duration
    data_time_ms: int


@dataclass(slots=True)
class _Counters:
    readings: int = 0
    stale: int = 0
    foreign: int = 0
    dropped: int = 0
    queued: int = 0  # messages the last tick took from the queue
    tick_ms: float = 0.0
    lighting: tuple[float, float] = (float("nan"), float("nan"))
    by_reason: Counter[str] = field(default_factory=Counter)


class AnalyticsWorker:
    """One partition's analytics: a context manager that owns its MQTT client and InfluxDB client."""

    def __init__(
        self,
        settings: AnalyticsSettings,
        broker: BrokerAddress,
        influx: InfluxV1,
        engine: Engine,
        directory: Mapping[str, DeviceRef],
        *,
        gateway_sink: GatewayStatusSink | None = None,
        listener: FindingListener | None = None,
        on_stop: Sequence[Callable[[], None]] = (),
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.influx = influx
        self.engine = engine
        self.directory = directory
        self.gateway_sink = gateway_sink
        self.listener = listener
        self._on_stop = tuple(on_stop)
        self.wall_ms = wall_ms
        self.store = AnalyticsStore(influx, settings.partition, engine.rule_catalogue, engine.topology)
        # who is offline, for the completeness series: the engine's communication detector
        self._comm = next((d for d in engine.detectors if isinstance(d, CommDetector)), None)
        # operators' commands: honoured when the engine runs on the lamp scheduler (a test's stub has none)
        scheduler = engine.schedule if isinstance(engine.schedule, LampScheduler) else None
        self._scheduler = scheduler
        self._overrides = (
            None
            if scheduler is None
            else ManualOverrides(scheduler.topology.table(DeviceKind.LAMP), scheduler, settings.overrides)
        )
        self._override_lines: deque[str] = deque(maxlen=_MAX_UNWRITTEN_OVERRIDES)
        self._assets_written = False
        self._queue: deque[tuple[str, bytes]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = self._make_client()
        self._counters = _Counters()
        self._state = "starting"
        self._watermark_ms = 0
        self._last_kpi_ms = 0
        self.restored = threading.Event()
        self.ticks = 0
        self.error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        b = self.broker
        self._client.connect_async(b.host, b.port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"{self.settings.client_id}-eval", daemon=True)
        self._thread.start()
        log.info("analytics %s (partition %s) starting", self.settings.client_id, self.settings.partition)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self.store.flush_findings()
        self.influx.close()
        for close in self._on_stop:
            close()
        self._state = "stopped"
        log.info("analytics %s stopped", self.settings.client_id)

    # -- MQTT ---------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = new_client(self.broker, self.settings.client_id, protocol=self.settings.mqtt_protocol)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            log.warning("broker refused connection: %s", reason)
            return
        commands = (*COMMAND_FILTERS, *ACK_FILTERS) if self._overrides is not None else ()
        client.subscribe([(f, 1) for f in (*topics.INGEST_FILTERS, STATUS_FILTER, *commands)])

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if len(self._queue) >= self.settings.queue_max_messages:
                self._queue.popleft()  # the reading is in InfluxDB; only this worker's live view misses it
                self._counters.dropped += 1
            self._queue.append((msg.topic, bytes(msg.payload)))

    # -- evaluation ---------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._restore()
        except InfluxError as exc:
            log.error("could not rebuild state from InfluxDB, starting empty: %s", exc)
        self._state = "running"
        self.restored.set()
        while not self._stop.wait(self.settings.tick_s):
            try:
                self.step()
            except Exception as exc:  # one bad tick must not stop the worker
                self.error = exc
                log.exception("analytics tick failed")

    def step(self) -> TickResult:
        """Decode what is queued, ingest it, evaluate once, write what came out."""
        with self._lock:
            messages = list(self._queue)
            self._queue.clear()
        self._counters.queued = len(messages)
        self._ingest_messages(messages)
        now = self._now_ms()
        if now is None:  # data clock and no reading yet: nothing to judge
            return TickResult(0, (), ())
        self._settle_overrides(now)
        started = time.perf_counter()
        result = self.engine.tick(now)
        self._counters.tick_ms = (time.perf_counter() - started) * 1000.0
        self.ticks += 1
        self._emit(result)
        self._tell(result.events, now)
        return result

    def _tell(self, events: Sequence[FindingEvent], now_ms: int) -> None:
        if self.listener is None:
            return
        try:
            self.listener.on_events(events, now_ms)
            self.listener.tick(now_ms)
        except Exception:  # the alerts must never stop the evaluation
            log.exception("the finding listener failed")

    def _now_ms(self) -> int | None:
        if self.settings.clock == "data":
            return self._watermark_ms or None
        return self.wall_ms()

    def _ingest_messages(self, messages: list[tuple[str, bytes]]) -> None:
        now = self.wall_ms()
        limits = Limits()
        readings: list[Reading] = []
        for topic, payload in messages:
            if topic.endswith("/status"):
                self._gateway_status(topic, payload)
                continue
            if self._overrides is not None and self._overrides.feed(topic, payload, now):
                continue
            decoded = decode(topic, payload, now, self.directory, limits)
            readings.extend(decoded.readings)
            for rejection in decoded.rejections:
                self._counters.by_reason[rejection.reason.value] += 1
        batches, foreign = batches_from_readings(readings, self.engine.topology)
        counts = self.engine.ingest(batches)
        c = self._counters
        c.readings += counts.accepted
        c.stale += counts.stale
        c.foreign += foreign + c.by_reason.pop("unregistered", 0)
        for batch in batches:
            if len(batch):
                self._watermark_ms = max(self._watermark_ms, int(batch.ts_ms.max()))

    def _settle_overrides(self, now_ms: int) -> None:
        """Accepted commands become overrides, ended ones drop; the scheduler gets the new set."""
        if self._overrides is None or self._scheduler is None:
            return
        update: OverrideUpdate = self._overrides.settle(now_ms, self.wall_ms())
        if update.changed:
            self._scheduler.set_manual(self._overrides.manual)
        if update.accepted:
            held = len(self._overrides.active())
            log.info("%d lamps newly under an operator's command, %d in all", len(update.accepted), held)
        self._override_lines.extend(override_line(o, self.settings.partition) for o in update.accepted)
        if self._override_lines:
            try:
                self.influx.write("\n".join(self._override_lines).encode())
                self._override_lines.clear()
            except InfluxError as exc:  # the override holds live; only a restart before a retry loses it
                log.warning("%d manual overrides wait for InfluxDB: %s", len(self._override_lines), exc)

    def _restore_overrides(self, end_ms: int | None) -> None:
        """The partition's overrides still holding at ``end_ms`` (unknown: all; the first tick drops the
        ended ones), read back from ``manual_override``."""
        if self._overrides is None or self._scheduler is None:
            return
        hours = max(1, round(self.settings.override_lookback_days * 24))
        try:
            series = self.influx.query(override_query(hours), {"partition": self.settings.partition})
        except InfluxError as exc:
            log.warning("manual overrides not read back (lamps under command look unplanned): %s", exc)
            return
        held = self._overrides.restore(overrides_from_rows(series), end_ms or 0)
        self._scheduler.set_manual(self._overrides.manual)
        log.info("analytics restored %d manual overrides", held)

    def _gateway_status(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse(topic)
        if parsed is None or self.gateway_sink is None:
            return
        number = self.engine.topology.number("gateway", parsed.sender)
        try:
            body = orjson.loads(payload)
            online = body["state"] == "online"
            ts_ms = int(body.get("ts") or self.wall_ms())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self._counters.by_reason["bad_status"] += 1
            return
        if number >= 0:
            self.gateway_sink.gateway_status(number, online, ts_ms)

    def _emit(self, result: TickResult) -> None:
        if result.events:
            self.store.write_events(result.events)
            for event in result.events:
                f = event.finding
                log.info("finding %s %s: %s", event.change.value, f.key, f.explanation)
        else:
            self.store.flush_findings()
        city = _city_lighting(result.kpis)
        if city is not None:
            self._counters.lighting = city
        if result.now_ms - self._last_kpi_ms >= self.settings.kpi_every_s * 1000:
            self._last_kpi_ms = result.now_ms
            complete = completeness_table(self.engine.topology, self.engine.state, self._comm, result.now_ms)
            self.store.write_kpis([*result.kpis, complete])
            self.store.write_metrics(self._metrics_line(result.now_ms))
            if not self._assets_written:
                self._assets_written = self.store.write_assets(self.engine.topology, self.wall_ms())
        elif any(t.measurement != "kpi" for t in result.kpis):
            self.store.write_kpis([t for t in result.kpis if t.measurement != "kpi"])

    # -- restart ------------------------------------------------------------------------------------
    def _restore(self) -> None:
        self._state = "restoring"
        s = self.settings
        end = self.wall_ms() if s.clock == "wall" else self._latest_data_ms()
        self._restore_overrides(end)  # before the replay: it judges lamps under command as commanded
        if end is None:
            log.info("analytics: no stored telemetry, nothing to restore")
            return
        restored = self.store.open_findings(self.engine.topology, s.findings_lookback_days)
        lookback = {kind: seconds * 1000 for kind, seconds in s.replay_s.items()}
        replayed = 0
        for slice_end, batches in self.store.replay_slices(
            self.engine.topology, lookback, end, s.replay_step_s * 1000, s.districts or None
        ):
            accepted = self.engine.ingest(batches).accepted
            if not replayed and not accepted:
                continue  # before the first stored reading: a tick would only see devices never heard from
            replayed += accepted
            self.engine.tick(slice_end)  # events of the replay are the past: not written again
        if s.clock == "data":
            self._watermark_ms = max(self._watermark_ms, end)
        fresh = self.engine.book.adopt(restored, end + s.restore_hold_s * 1000)
        if fresh:
            opened = [FindingEvent(Change.OPENED, f, end) for f in fresh]
            self.store.write_events(opened)
            self._tell(opened, end)
        log.info(
            "analytics restored: %d open findings, %d readings replayed, %d opened while down",
            len(restored),
            replayed,
            len(fresh),
        )

    def _latest_data_ms(self) -> int | None:
        """The newest stored reading's time (data clock): replays end there, not at the wall clock."""
        newest = 0
        for kind in self.engine.topology.tables:
            try:
                series = self.influx.query(f'SELECT last("seq") FROM "{kind.value}"')  # noqa: S608
            except InfluxError:
                continue
            for one in series:
                for row in one.get("values", []):
                    newest = max(newest, int(row[0]))
        return newest or None

    # -- status -------------------------------------------------------------------------------------
    def _metrics_line(self, now_ms: int) -> str:
        c, counts = self._counters, self.store.counts
        counters: dict[str, float] = {
            "tick_ms": c.tick_ms,
            "readings": c.readings,
            "stale": c.stale,
            "foreign": c.foreign,
            "dropped": c.dropped,
            "queued": c.queued,
            "findings_open": sum(self.engine.book.counts().values()),
            "findings_unwritten": self.store.pending_findings,
            "finding_lines": counts.finding_lines,
            "kpi_lines": counts.kpi_lines,
            "kpi_lines_dropped": counts.kpi_lines_dropped,
            "write_errors": counts.write_errors,
        }
        if self._overrides is not None:
            counters["manual_overrides"] = len(self._overrides.active())
            counters["command_messages_rejected"] = self._overrides.rejected
        return analytics_metrics_line(self.settings.partition, self.settings.client_id, counters, now_ms)

    def snapshot(self) -> AnalyticsSnapshot:
        c = self._counters
        return AnalyticsSnapshot(
            state=self._state,
            lighting_rate=c.lighting[0],
            lighting_rate_lower=c.lighting[1],
            open_findings=self.engine.book.counts(),
            readings=c.readings,
            stale=c.stale,
            foreign=c.foreign,
            dropped=c.dropped,
            tick_ms=c.tick_ms,
            data_time_ms=self._watermark_ms,
        )


def _city_lighting(kpis: tuple[KpiTable, ...]) -> tuple[float, float] | None:
    for table in kpis:
        if table.measurement == "kpi" and table.scope == "city":
            rate = table.fields.get("lighting_rate")
            lower = table.fields.get("lighting_rate_lower")
            if rate is not None and len(rate):
                return float(rate[0]), float(lower[0]) if lower is not None and len(lower) else float(np.nan)
    return None


def completeness_table(
    topology: Topology, state: LiveState, comm: CommDetector | None, now_ms: int
) -> KpiTable:
    """Devices in service and reporting (heard from and not offline) per district: by kind and in all.

    ``completeness`` = reporting / devices; sums over districts and partitions give the city's."""
    n = len(topology.districts)
    fields: dict[str, np.ndarray] = {}
    devices_all, reporting_all = np.zeros(n), np.zeros(n)
    for kind, table in topology.tables.items():
        mine = table.in_service & (table.district >= 0)
        heard = state[kind].last_ts != NEVER
        offline = comm.offline_mask(kind, now_ms) if comm is not None else np.zeros(len(table), np.bool_)
        reporting = mine & heard & ~offline
        devices = np.bincount(table.district[mine], minlength=n).astype(np.float64)
        heard_from = np.bincount(table.district[reporting], minlength=n).astype(np.float64)
        fields[f"devices_{kind.value}"] = devices
        fields[f"reporting_{kind.value}"] = heard_from
        fields[f"completeness_{kind.value}"] = rate(heard_from, devices)
        devices_all += devices
        reporting_all += heard_from
    fields.update(devices=devices_all, reporting=reporting_all, completeness=rate(reporting_all, devices_all))
    return KpiTable("completeness", DISTRICT, topology.districts, fields, now_ms)
