"""The command tracker: requests planned into device commands, moved by acks, readings and time. Pure.

``plan`` checks a request against the fleet and makes one ``DeviceCommand`` per device. The
``CommandTracker`` holds the open ones and moves them through ``model.TRANSITIONS``:

- an acknowledgement (``on_ack``) from the route the command went by: accepted -> delivered, with the
  device's clock of the effect (``effective_ts_ms``); rejected / failed -> failed;
- a reading of the device (``on_reading``) timestamped at or after that: judged by ``effects.judge``; the
  first one that shows the effect confirms the command. Readings that arrive before the ack (ack and
  telemetry travel on different topics, so either may come first) wait in a short buffer and are judged
  when the ack comes;
- time (``tick``, CityWatch's clock in ms, passed in): no ack by the expiry (plus a grace for the trip
  back) -> timed out; delivered but no reading showing the effect within the verification window ->
  not effective, explained by the last reading that told.

Each call returns a ``Progress``: the commands that changed and the new state of their requests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from api.commanding import InvalidRequest
from api.commanding.effects import EffectConfig, Verdict, judge
from api.commanding.fleet import Fleet
from api.commanding.model import (
    CommandEvent,
    CommandRequest,
    CommandState,
    CommandView,
    DeviceCommand,
    RequestState,
    TargetKind,
    advance,
    aggregate,
    counts_of,
)
from devices.commands import Ack, AckStatus, Override, PumpRun, Route, describe
from devices.contract import Reading


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerConfig:
    # CHOICE: a device on a live connection answers within seconds; 30 s covers a gateway's radio hop and
    # a broker reconnect. It is also the command's expiry: after it, the device must not act.
    ack_timeout_ms: int = 30_000
    ack_grace_ms: int = 5_000  # CHOICE: an ack sent just before the expiry is still on its way
    # CHOICE: lamps and stations report every 60 s (firmware_sim, DOMAIN's reporting periods); three
    # intervals let one reading be lost and the next still confirm.
    verify_window_ms: int = 180_000
    # CHOICE: an override or hand mode asked for without an end holds this long: a pump left stopped by
    # hand floods a street, a lamp left on by hand burns by day.
    default_hold_ms: int = 3_600_000
    max_devices: int = 5_000  # a request bigger than this is a mistake (a city's longest road has fewer)
    early_readings: int = 8  # readings kept per device while its command awaits the ack
    effects: EffectConfig = field(default_factory=EffectConfig)

    def __post_init__(self) -> None:
        for name in (
            "ack_timeout_ms",
            "verify_window_ms",
            "default_hold_ms",
            "max_devices",
            "early_readings",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")
        if self.ack_grace_ms < 0:
            raise ValueError(f"ack_grace_ms must be >= 0, not {self.ack_grace_ms}")


_LAMP_TARGETS = frozenset({TargetKind.LAMP, TargetKind.CIRCUIT, TargetKind.ROAD})


def plan(
    request: CommandRequest,
    actor: str,
    fleet: Fleet,
    config: TrackerConfig,
    now_ms: int,
    new_id: Callable[[], str],
) -> CommandView:
    """The request as one pending command per device; ``UnknownTarget`` / ``InvalidRequest`` say why not."""
    order = request.order
    is_pump = isinstance(order, PumpRun)
    if request.target_kind in _LAMP_TARGETS and is_pump:
        raise InvalidRequest(f"a {request.target_kind.value} takes lamp orders, not {describe(order)}")
    if request.target_kind is TargetKind.PUMP_STATION and not is_pump:
        raise InvalidRequest(f"a pump station takes pump orders, not {describe(order)}")
    if isinstance(order, Override | PumpRun) and order.until_ms <= now_ms:
        raise InvalidRequest(f"{describe(order)}: its end time is not in the future")
    devices = fleet.expand(request.target_kind, request.target_id)
    if len(devices) > config.max_devices:
        raise InvalidRequest(
            f"{request.target_kind.value} {request.target_id!r:.80} has {len(devices)} devices,"
            f" more than the {config.max_devices} one request may command"
        )
    if isinstance(order, PumpRun) and devices[0].pumps and order.pump > devices[0].pumps:
        raise InvalidRequest(f"{devices[0].device} has {devices[0].pumps} pumps, not pump {order.pump}")
    request_id = new_id()
    expires = now_ms + config.ack_timeout_ms
    commands = tuple(
        DeviceCommand(
            id=new_id(),
            request_id=request_id,
            device=d.device,
            kind=d.kind,
            district=d.district,
            route=d.route,
            order=order,
            rated=d.rated,
            issued_ms=now_ms,
            expires_ms=expires,
            updated_ms=now_ms,
        )
        for d in devices
    )
    return CommandView(
        request_id, request, actor, now_ms, now_ms, RequestState.PENDING, counts_of(commands), commands
    )


@dataclass(frozen=True, slots=True)
class Progress:
    commands: tuple[DeviceCommand, ...] = ()  # the commands that changed, as they are now
    requests: Mapping[str, RequestState] = field(default_factory=lambda: MappingProxyType({}))

    def __bool__(self) -> bool:
        return bool(self.commands)


class CommandTracker:
    """The open device commands and their requests' progress."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._open: dict[str, DeviceCommand] = {}
        self._by_device: dict[str, set[str]] = {}
        self._requests: dict[str, dict[str, CommandState]] = {}  # requests with an open command
        self._early: dict[str, deque[Reading]] = {}
        self._last: dict[str, Verdict] = {}  # per delivered command: the latest reading that told

    def track(self, commands: Iterable[DeviceCommand]) -> None:
        """Follow these commands (a new request's, or a restart's): every command of their requests,
        ended ones included, so that the requests' states aggregate right."""
        for command in commands:
            self._requests.setdefault(command.request_id, {})[command.id] = command.state
            if not command.final:
                self._open[command.id] = command
                self._by_device.setdefault(command.device, set()).add(command.id)
        for request_id in [r for r, states in self._requests.items() if not self._has_open(states)]:
            del self._requests[request_id]

    def open_commands(self) -> list[DeviceCommand]:
        return list(self._open.values())

    def on_ack(self, route: Route, ack: Ack, now_ms: int) -> Progress:
        command = self._open.get(ack.command_id)
        if command is None or command.device != ack.device or command.route != route:
            return Progress()  # another desk's, ended already, or not from where the command went
        if ack.status is AckStatus.ACCEPTED:
            moved = advance(
                command, CommandEvent.ACCEPTED, now_ms, delivered_ms=now_ms, effective_ts_ms=ack.ts_ms
            )
            if moved is None:
                return Progress()  # a duplicate (QoS 1 redelivery)
            early = list(self._early.get(command.device, ()))
            self._put(moved)
            for reading in early:
                if moved.state is not CommandState.DELIVERED:
                    break
                moved = self._judge(moved, reading, now_ms) or moved
            return self._progress([moved])
        said = f"the device answered {ack.status.value}: {ack.reason or 'no reason given'}"
        return self._progress(self._move(command, CommandEvent.REFUSED, now_ms, detail=said))

    def on_reading(self, reading: Reading, now_ms: int) -> Progress:
        ids = self._by_device.get(reading.device)
        if not ids:
            return Progress()
        changed: list[DeviceCommand] = []
        awaiting_ack = False
        for command_id in list(ids):
            command = self._open[command_id]
            if command.state is CommandState.PENDING:
                awaiting_ack = True
                continue
            moved = self._judge(command, reading, now_ms)
            if moved is not None:
                changed.append(moved)
        if awaiting_ack:
            early = self._early.get(reading.device)
            if early is None:
                early = self._early[reading.device] = deque(maxlen=self.config.early_readings)
            early.append(reading)
        return self._progress(changed)

    def supersede(self, commands: Iterable[DeviceCommand], now_ms: int) -> Progress:
        """End the open commands of the devices these new ``commands`` go to: once a device is told
        something else, whether it did the older thing can no longer be judged."""
        changed: list[DeviceCommand] = []
        for new in commands:
            for command_id in list(self._by_device.get(new.device, ())):
                old = self._open[command_id]
                if old.request_id == new.request_id:
                    continue
                detail = f"superseded by command {new.id} ({describe(new.order)})"
                changed += self._move(old, CommandEvent.SUPERSEDED, now_ms, detail=detail)
        return self._progress(changed)

    def on_send_failed(self, command_id: str, detail: str, now_ms: int) -> Progress:
        command = self._open.get(command_id)
        if command is None:
            return Progress()
        return self._progress(self._move(command, CommandEvent.SEND_FAILED, now_ms, detail=detail))

    def tick(self, now_ms: int) -> Progress:
        """What time decides: acks overdue, effects overdue."""
        changed: list[DeviceCommand] = []
        config = self.config
        for command in list(self._open.values()):
            if command.state is CommandState.PENDING:
                if now_ms > command.expires_ms + config.ack_grace_ms:
                    waited = (command.expires_ms - command.issued_ms) / 1000
                    detail = f"no acknowledgement within {waited:.0f} s"
                    changed += self._move(command, CommandEvent.ACK_OVERDUE, now_ms, detail=detail)
            elif command.delivered_ms is not None and now_ms > command.delivered_ms + config.verify_window_ms:
                changed += self._overdue(command, now_ms)
        return self._progress(changed)

    # -- internals ----------------------------------------------------------------------------------
    def _judge(self, command: DeviceCommand, reading: Reading, now_ms: int) -> DeviceCommand | None:
        if command.effective_ts_ms is None or reading.ts_ms < command.effective_ts_ms:
            return None  # taken before the command took effect
        verdict = judge(command.order, command.rated, reading.fields, self.config.effects)
        if verdict.shown is None:
            return None
        if not verdict.shown:
            self._last[command.id] = verdict
            return None
        moved = self._move(
            command,
            CommandEvent.EFFECT_SHOWN,
            now_ms,
            detail=f"its telemetry shows it: {verdict.seen}",
            observed=verdict.observed,
            expected=verdict.expected,
        )
        return moved[0] if moved else None

    def _overdue(self, command: DeviceCommand, now_ms: int) -> list[DeviceCommand]:
        window = self.config.verify_window_ms / 1000
        last = self._last.get(command.id)
        if last is None:
            detail = f"acknowledged, but no reading within {window:.0f} s shows the effect (none told)"
            return self._move(command, CommandEvent.EFFECT_OVERDUE, now_ms, detail=detail)
        detail = f"acknowledged, but within {window:.0f} s its telemetry does not show it: {last.seen}"
        return self._move(
            command,
            CommandEvent.EFFECT_OVERDUE,
            now_ms,
            detail=detail,
            observed=last.observed,
            expected=last.expected,
        )

    def _move(
        self, command: DeviceCommand, event: CommandEvent, now_ms: int, **changes: object
    ) -> list[DeviceCommand]:
        moved = advance(command, event, now_ms, **changes)
        if moved is None:
            return []
        self._put(moved)
        return [moved]

    def _put(self, command: DeviceCommand) -> None:
        states = self._requests.setdefault(command.request_id, {})
        states[command.id] = command.state
        if not command.final:
            self._open[command.id] = command
            if command.state is not CommandState.PENDING:
                self._forget_early(command.device)
            return
        self._open.pop(command.id, None)
        self._last.pop(command.id, None)
        ids = self._by_device.get(command.device)
        if ids is not None:
            ids.discard(command.id)
            if not ids:
                del self._by_device[command.device]
        self._forget_early(command.device)

    def _forget_early(self, device: str) -> None:
        """Drop the device's buffered readings once none of its commands awaits an ack."""
        ids = self._by_device.get(device, ())
        if not any(self._open[i].state is CommandState.PENDING for i in ids):
            self._early.pop(device, None)

    def _progress(self, changed: list[DeviceCommand]) -> Progress:
        if not changed:
            return Progress()
        requests: dict[str, RequestState] = {}
        for command in changed:
            states = self._requests.get(command.request_id)
            if states is None:
                continue
            requests[command.request_id] = aggregate(states.values())
            if not self._has_open(states):
                del self._requests[command.request_id]
        return Progress(tuple(changed), MappingProxyType(requests))

    @staticmethod
    def _has_open(states: Mapping[str, CommandState]) -> bool:
        return any(state in (CommandState.PENDING, CommandState.DELIVERED) for state in states.values())
