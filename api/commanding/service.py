"""The command desk (adapter): requests in, commands out over MQTT, acks and telemetry in, states out.

``CommandDesk`` is a context manager that owns one paho client (its own clean session) and a tick thread:

- ``submit`` plans a request into device commands (``tracker.plan``), stores them, subscribes to the
  telemetry topics of their devices (the device's own topic and its gateway's batch topic, counted per open
  command and dropped when none needs them), then publishes each command at QoS 1 on its route's command
  topic, never retained (a retained command would run again at every reconnect), with an MQTT 5 message
  expiry equal to the ack timeout (a broker does not hand a command on after it expired);
- the paho thread only queues what arrives (acks on ``ACK_FILTERS``, the watched telemetry);
- every ``tick_s`` the tick thread decodes the queue (``devices.commands.decode_ack``,
  ``devices.contract.decode``), feeds the tracker, lets time decide, writes the progress to the store and
  hands the ``command_not_effective`` finding events to the ``FindingSink``s.

Findings: one design. The desk never writes to InfluxDB itself; it tells its sinks (a port with one method,
``on_events(events, now_ms)``, which ``AnalyticsWorker``'s listener, the ``AlertService``, already has).
The composition root passes ``sinks.FindingWriter`` (the ``finding`` series, through
``analytics.lineproto.finding_line``, as the analytics worker writes it) and the ``AlertService``, so the
finding is stored and alerted like any other. Tests pass a list.

A failure in a tick (the database away, a sink raising) is logged and retried: progress not yet stored is
kept and written with the next tick's; a sink's failure does not stop the others.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from analytics.findings import FindingEvent
from api.commanding import CommandingError, DeskUnavailable
from api.commanding.findings import IneffectiveBook
from api.commanding.fleet import Fleet
from api.commanding.model import CommandRequest, CommandView, DeviceCommand, RequestState
from api.commanding.settings import CommandSettings
from api.commanding.store import CommandStore
from api.commanding.tracker import CommandTracker, Progress, plan
from devices import topics
from devices.broker import BrokerAddress
from devices.commands import ACK_FILTERS, CommandRejected, decode_ack, encode_command
from devices.contract import decode
from devices.mqtt_client import new_client

log = logging.getLogger(__name__)

QUEUE_MAX_MESSAGES = 100_000  # raw messages between two ticks; more means the tick thread is stuck


class FindingSink(Protocol):
    """Who takes the desk's finding events (``sinks.FindingWriter``, ``AlertService``)."""

    def on_events(self, events: Sequence[FindingEvent], now_ms: int) -> None: ...


def telemetry_topics(command: DeviceCommand) -> tuple[str, ...]:
    """Where the device's readings arrive: its own topic, and its gateway's batches when it has one."""
    own = topics.telemetry(command.device)
    return (own, topics.batch(command.route.sender)) if command.route.gateway else (own,)


def merged(progresses: Iterable[Progress]) -> Progress:
    """One Progress of several, later changes of a command or a request winning."""
    commands: dict[str, DeviceCommand] = {}
    requests: dict[str, RequestState] = {}
    for p in progresses:
        commands.update((c.id, c) for c in p.commands)
        requests.update(p.requests)
    return Progress(tuple(commands.values()), MappingProxyType(requests))


@dataclass(frozen=True, slots=True)
class DeskSnapshot:
    connected: bool
    open_commands: int
    watched_topics: int
    open_findings: int
    rejected_acks: int
    dropped: int
    errors: int


class CommandDesk:
    """Commands to devices, tracked to their effect. Thread-safe: the API calls it from its workers."""

    def __init__(
        self,
        settings: CommandSettings,
        broker: BrokerAddress,
        fleet: Fleet,
        database_url: str,
        *,
        findings: Sequence[FindingSink] = (),
        on_stop: Sequence[Callable[[], None]] = (),
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.settings = settings
        self.config = settings.tracker_config()
        self.broker = broker
        self.fleet = fleet
        self.findings = tuple(findings)
        self._on_stop = tuple(on_stop)  # e.g. the sinks' close: the desk stops first, then they go
        self.wall_ms = wall_ms
        self._new_id = new_id
        self.store = CommandStore(database_url)
        self.tracker = CommandTracker(self.config)
        self.book = IneffectiveBook()
        self.connected = threading.Event()
        self._lock = threading.RLock()  # tracker, book, store writes
        self._watch_lock = threading.Lock()  # the watched topics (the paho thread reads them on connect)
        self._watch: Counter[str] = Counter()
        self._queue: deque[tuple[str, bytes]] = deque()
        self._queue_lock = threading.Lock()
        self._unsaved = Progress()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = self._make_client()
        self._rejected_acks = self._dropped = self.errors = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Pick up the requests a previous run left open, connect, and start ticking."""
        now = self.wall_ms()
        with self._lock:
            restored = self.store.open_commands()
            self.tracker.track(restored)
            lookback = round(self.settings.verdict_lookback_days * 86_400_000)
            self.book = IneffectiveBook(self.store.ineffective(now - lookback))
            self._watch_add(self.tracker.open_commands())
        if restored:
            log.info("command desk: %d open commands picked up again", len(self.tracker.open_commands()))
        b = self.broker
        if self.settings.mqtt_protocol == "5":
            self._client.connect_async(b.host, b.port, keepalive=30, clean_start=True)
        else:
            self._client.connect_async(b.host, b.port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"{self.settings.client_id}-tick", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        self.store.close()
        for close in self._on_stop:
            try:
                close()
            except Exception:
                log.exception("closing the command desk")
        log.info("command desk stopped")

    # -- the API ------------------------------------------------------------------------------------
    def submit(self, request: CommandRequest, actor: str) -> CommandView:
        """Send ``request`` to its devices; returns it as stored (pending). ``UnknownTarget``,
        ``InvalidRequest``, ``DeskUnavailable`` (no broker) or ``CommandStoreError`` say why not."""
        if not self.connected.is_set():
            raise DeskUnavailable(f"no connection to the broker {self.broker}: nothing can be sent now")
        now = self.wall_ms()
        with self._lock:
            view = plan(request, actor, self.fleet, self.config, now, self._new_id)
            superseded = self.tracker.supersede(view.devices, now)
            self.store.add(view)
            self.tracker.track(view.devices)
            self._save(superseded)
            fresh = self._watch_add(view.devices)
            gone = self._watch_drop(superseded.commands)
        if fresh:
            self._client.subscribe([(t, 1) for t in fresh])  # before the commands: no reading slips by
        failed = [c for c in view.devices if not self._publish(c)]
        if failed or gone:
            with self._lock:
                for command in failed:
                    progress = self.tracker.on_send_failed(command.id, "the broker did not take it", now)
                    self._save(progress)
                    gone += self._watch_drop(progress.commands)
            self._unsubscribe(gone)
        log.info(
            "command %s by %s: %s %s %s, %d device(s)",
            view.id,
            actor,
            request.order.action.value,
            request.target_kind.value,
            request.target_id,
            len(view.devices),
        )
        try:
            return self.store.get(view.id)
        except CommandingError:  # sent and tracked all the same; the next tick stores the progress
            log.exception("command %s sent, but not read back from the store", view.id)
            return view

    def get(self, command_id: str) -> CommandView:
        """A request with its device commands; ``UnknownCommand`` when there is none."""
        return self.store.get(command_id)

    def list(self, limit: int = 50, state: RequestState | None = None) -> builtins.list[CommandView]:
        """The newest requests first (without device rows)."""
        return self.store.list(limit, state)

    def snapshot(self) -> DeskSnapshot:
        with self._lock, self._watch_lock:
            return DeskSnapshot(
                self.connected.is_set(),
                len(self.tracker.open_commands()),
                len(self._watch),
                len(self.book),
                self._rejected_acks,
                self._dropped,
                self.errors,
            )

    def replace_fleet(self, fleet: Fleet) -> None:
        """Use a fresher view of the registry for the requests to come."""
        with self._lock:
            self.fleet = fleet

    # -- MQTT ---------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = new_client(self.broker, self.settings.client_id, protocol=self.settings.mqtt_protocol)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            log.warning("command desk: broker %s refused the connection: %s", self.broker, reason)
            return
        with self._watch_lock:
            watched = list(self._watch)
        # A clean session: the subscriptions are made again on every connection.
        client.subscribe([(f, 1) for f in (*ACK_FILTERS, *watched)])
        self.connected.set()
        log.info("command desk connected to %s", self.broker)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("command desk: connection to %s lost (%s); paho reconnects", self.broker, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._queue_lock:
            if len(self._queue) >= QUEUE_MAX_MESSAGES:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append((msg.topic, bytes(msg.payload)))

    def _publish(self, command: DeviceCommand) -> bool:
        properties = None
        if self.settings.mqtt_protocol == "5":
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = max(1, round((command.expires_ms - command.issued_ms) / 1000))
        info = self._client.publish(
            command.route.command_topic, encode_command(command.command), qos=1, properties=properties
        )
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: sent on the reconnect
            return True
        log.warning("command %s to %s not sent: %s", command.id, command.device, mqtt.error_string(info.rc))
        return False

    def _watch_add(self, commands: Iterable[DeviceCommand]) -> builtins.list[str]:
        """Count the topics these commands need; returns those newly needed."""
        fresh: builtins.list[str] = []
        with self._watch_lock:
            for command in commands:
                for topic in telemetry_topics(command):
                    if self._watch[topic] == 0:
                        fresh.append(topic)
                    self._watch[topic] += 1
        return fresh

    def _watch_drop(self, commands: Iterable[DeviceCommand]) -> builtins.list[str]:
        """Release the topics of these ended commands; returns those no longer needed."""
        gone: builtins.list[str] = []
        with self._watch_lock:
            for command in commands:
                if not command.final:
                    continue
                for topic in telemetry_topics(command):
                    self._watch[topic] -= 1
                    if self._watch[topic] <= 0:
                        del self._watch[topic]
                        gone.append(topic)
        return gone

    def _unsubscribe(self, gone: builtins.list[str]) -> None:
        if gone:
            self._client.unsubscribe(gone)

    # -- the tick -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.settings.tick_s):
            try:
                self.step()
            except Exception:  # one bad tick must not stop the desk
                self.errors += 1
                log.exception("command desk tick failed; retried next tick")

    def step(self) -> None:
        """Judge what arrived, let time decide, store the progress, tell the finding sinks."""
        with self._queue_lock:
            messages = list(self._queue)
            self._queue.clear()
        now = self.wall_ms()
        with self._lock:
            progress = merged([*self._take(messages, now), self.tracker.tick(now)])
            events = self.book.update(progress.commands, now)
            gone = self._watch_drop(progress.commands)
            self._save(progress)
        self._unsubscribe(gone)
        if events:
            for change in events:
                log.info("finding %s %s: %s", change.finding.key, change.change, change.finding.explanation)
            for sink in self.findings:
                try:
                    sink.on_events(events, now)
                except Exception:
                    self.errors += 1
                    log.exception("a finding sink failed on %d events", len(events))

    def _take(self, messages: builtins.list[tuple[str, bytes]], now: int) -> builtins.list[Progress]:
        progress: builtins.list[Progress] = []
        directory = self.fleet.directory()
        for topic, payload in messages:
            parsed = topics.parse(topic)
            if parsed is None:
                continue
            if parsed.kind is topics.TopicKind.COMMAND_ACK:
                try:
                    route, ack = decode_ack(topic, payload)
                except CommandRejected as exc:
                    self._rejected_acks += 1
                    log.warning("acknowledgement on %s not used: %s", topic, exc)
                    continue
                progress.append(self.tracker.on_ack(route, ack, now))
                continue
            for reading in decode(topic, payload, now, directory).readings:
                progress.append(self.tracker.on_reading(reading, now))
        return progress

    def _save(self, progress: Progress) -> None:
        """Store ``progress`` with whatever an earlier failure left unsaved (kept for the next try)."""
        pending = merged([self._unsaved, progress])
        if not pending:
            return
        try:
            self.store.save(pending)
        except CommandingError:
            self._unsaved = pending
            self.errors += 1
            log.exception("%d command changes not stored yet; tried again next tick", len(pending.commands))
            return
        self._unsaved = Progress()
