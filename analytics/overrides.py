"""Operators' manual commands as the analytics sees them: per-lamp overrides of the switching schedule.

DOMAIN.md section 2: lamps off under an approved plan are not due. A lamp an operator deliberately switched
(``switch``, ``dim`` or ``override``, ``devices.commands``) follows that command while it holds, so the
command is the plan for that lamp: commanded off at night it is not due (planned off: no lighting-rate
drop, no road shortfall); commanded on by day it is not day burning; dimmed, it is due at that level
(``LampScheduler.set_manual`` applies them).

What counts is what the device said. A command is honoured from its ``accepted`` acknowledgement's ``ts``
(the device's clock when the command took effect); a ``rejected`` or ``failed`` answer, or none, changes
nothing. A lamp that acknowledges and then does not obey is the command desk's ``command_not_effective``
finding, not ours: here its readings are judged against what it promised. An ``override`` holds until its
``until``; a ``switch`` or ``dim`` until the lamp's schedule next switches (sunset or sunrise at the lamp,
``SwitchClock``: the scheduler), as a controller's manual mode does. A newer accepted command for the lamp
(a later ack ``ts``) replaces the older; one that ended drops.

Commands wait for their answer in a bounded table (``OverrideConfig.max_pending``, oldest evicted first,
and ``pending_max_age_s``), so a flood of commands without acks cannot grow memory; so do acks seen before
their command (two topics: the broker does not order one against the other). A message that cannot be
used is counted by its reason (``CommandRejected``) and ignored.

Restart: the worker writes each accepted override as a ``manual_override`` point (``override_line``) and
reads the partition's back on start (``overrides_from_rows``); the newest per lamp wins, as live.

Pure: bytes and times in, values out; no clock (the adapter passes ``now_ms`` for the holds and
``received_ms``, its own wall clock, for how long a command has waited for its answer).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.lineproto import string_field, tag_set
from analytics.topology import Table
from devices import topics
from devices.commands import (
    Ack,
    AckStatus,
    Command,
    CommandRejected,
    Dim,
    Override,
    Switch,
    decode_ack,
    decode_command,
)

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]

MANUAL_OVERRIDE = "manual_override"
ON, OFF = np.int8(1), np.int8(-1)  # LampScheduler.set_manual: the manual state of a lamp (0: none)


@dataclass(frozen=True, slots=True, kw_only=True)
class OverrideConfig:
    # CHOICE: a command desk request reaches at most 5,000 devices (CITYWATCH_COMMANDS_MAX_DEVICES); four
    # such requests awaiting their answers fit. ~300 bytes a command: a few MB at most.
    max_pending: int = 20_000
    # CHOICE: the desk gives up on an answer after 35 s (ack timeout 30 s + grace 5 s); a gateway relaying a
    # late ack still says what the lamp does, so a command waits ten minutes before it is forgotten.
    pending_max_age_s: float = 600.0

    def __post_init__(self) -> None:
        if self.max_pending < 1:
            raise RuleConfigError(f"max_pending must be >= 1, not {self.max_pending}")
        if not self.pending_max_age_s > 0:
            raise RuleConfigError(f"pending_max_age_s must be > 0, not {self.pending_max_age_s}")


class SwitchClock(Protocol):
    """When each lamp's schedule next switches (``LampScheduler.next_switch_ms``)."""

    def next_switch_ms(self, lamps: IntArray, after_ms: Int64Array) -> Int64Array: ...


@dataclass(frozen=True, slots=True)
class ManualOverride:
    """One lamp held in a commanded state from ``from_ms`` (the ack's ts) until ``until_ms`` (exclusive)."""

    lamp: str
    on: bool
    level: int  # dim level 0-100; 0 exactly when off
    from_ms: int
    until_ms: int
    action: str  # switch, dim, override: what the operator asked
    command_id: str

    def holds(self, now_ms: int) -> bool:
        return self.from_ms <= now_ms < self.until_ms


@dataclass(frozen=True, slots=True)
class ManualLamps:
    """The overrides as arrays over the lamps they hold (each lamp once), for ``LampScheduler.set_manual``:
    a few lamps out of a million, so the scheduler touches only these rows."""

    lamps: IntArray
    state: npt.NDArray[np.int8]  # ON or OFF
    level: npt.NDArray[np.float32]  # dim level, 0 when off
    from_ms: Int64Array
    until_ms: Int64Array

    def __len__(self) -> int:
        return len(self.lamps)


@dataclass(frozen=True, slots=True)
class OverrideUpdate:
    """What one ``settle`` changed: the overrides accepted since the last one (to persist), and whether the
    set the scheduler holds changed."""

    accepted: tuple[ManualOverride, ...]
    changed: bool


@dataclass(frozen=True, slots=True)
class _Pending:
    command: Command
    lamp: int
    on: bool
    level: int
    received_ms: int


@dataclass(frozen=True, slots=True)
class _EarlyAck:
    ack: Ack
    received_ms: int


def _lamp_state(command: Command) -> tuple[bool, int] | None:
    """(on, level) a lamp order asks for; None for an order that is not a lamp's (a pump)."""
    order = command.order
    if isinstance(order, Switch):
        return order.on, 100 if order.on else 0
    if isinstance(order, Dim):
        return order.level > 0, order.level
    if isinstance(order, Override):
        return order.on, order.level
    return None


class ManualOverrides:
    """The lamps of one partition under an operator's command, from the command and ack messages seen."""

    def __init__(self, lamps: Table, clock: SwitchClock, config: OverrideConfig | None = None) -> None:
        self._lamps = lamps
        self._clock = clock
        self.config = config or OverrideConfig()
        self._pending: dict[str, _Pending] = {}  # command id -> command waiting for its answer
        self._early: dict[str, _EarlyAck] = {}  # command id -> accepted ack that came before its command
        self._accepted: list[tuple[_Pending, Ack]] = []  # answered since the last settle
        self._active: dict[int, ManualOverride] = {}  # lamp number -> the override holding it
        self._manual: ManualLamps | None = None
        self.counts: Counter[str] = Counter()  # outcomes, and rejected messages by reason
        self._handlers: Mapping[topics.TopicKind, Callable[[str, bytes, int], None]] = {
            topics.TopicKind.COMMAND: self._command_message,
            topics.TopicKind.COMMAND_ACK: self._ack_message,
        }

    # -- messages -------------------------------------------------------------------------------------

    def feed(self, topic: str, payload: bytes, received_ms: int) -> bool:
        """Take one command or acknowledgement message; False when ``topic`` is neither."""
        parsed = topics.parse(topic)
        handler = self._handlers.get(parsed.kind) if parsed is not None else None
        if handler is None:
            return False
        handler(topic, payload, received_ms)
        return True

    def _command_message(self, topic: str, payload: bytes, received_ms: int) -> None:
        try:
            _route, command = decode_command(topic, payload)
        except CommandRejected as exc:
            self.counts[f"rejected_{exc.reason.value}"] += 1
            return
        self.take_command(command, received_ms)

    def _ack_message(self, topic: str, payload: bytes, received_ms: int) -> None:
        try:
            _route, ack = decode_ack(topic, payload)
        except CommandRejected as exc:
            self.counts[f"rejected_{exc.reason.value}"] += 1
            return
        self.take_ack(ack, received_ms)

    def take_command(self, command: Command, received_ms: int) -> None:
        self.counts["commands"] += 1
        state = _lamp_state(command)
        if state is None:
            self.counts["not_lamp_orders"] += 1
            return
        lamp = int(self._lamps.find([command.device])[0])
        if lamp < 0:
            self.counts["foreign"] += 1  # another partition's lamp, or no lamp at all
            return
        pending = _Pending(command, lamp, *state, received_ms)
        early = self._early.pop(command.id, None)
        if early is not None:
            self._answer(pending, early.ack)
            return
        self._pending.pop(command.id, None)  # a redelivery goes to the back of the line
        self._pending[command.id] = pending
        self._bound(self._pending)

    def take_ack(self, ack: Ack, received_ms: int) -> None:
        self.counts["acks"] += 1
        pending = self._pending.pop(ack.command_id, None)
        if pending is not None:
            self._answer(pending, ack)
        elif ack.status is AckStatus.ACCEPTED and self._lamps.find([ack.device])[0] >= 0:
            self._early[ack.command_id] = _EarlyAck(ack, received_ms)
            self._bound(self._early)
        else:
            self.counts["unmatched_acks"] += 1

    def _answer(self, pending: _Pending, ack: Ack) -> None:
        if ack.device != pending.command.device:
            self.counts["ack_device_mismatch"] += 1
            return
        if ack.status is not AckStatus.ACCEPTED:
            self.counts["refused"] += 1  # rejected or failed: the lamp keeps what it had
            return
        self._accepted.append((pending, ack))

    def _bound(self, table: dict[str, Any]) -> None:
        while len(table) > self.config.max_pending:
            del table[next(iter(table))]  # the oldest first: dicts keep insertion order
            self.counts["evicted"] += 1

    # -- time -----------------------------------------------------------------------------------------

    def settle(self, now_ms: int, received_ms: int) -> OverrideUpdate:
        """Turn the commands accepted since the last call into overrides (a newer one per lamp wins), drop
        the overrides that ended by ``now_ms`` and forget commands unanswered for too long."""
        resolved = self._resolve()
        changed = False
        for lamp, override in resolved:
            changed |= self._hold(override, lamp)
        ended = [lamp for lamp, o in self._active.items() if o.until_ms <= now_ms]
        for lamp in ended:
            del self._active[lamp]
        self.counts["ended"] += len(ended)
        self._age_out(received_ms - round(self.config.pending_max_age_s * 1000))
        if changed or ended:
            self._manual = _as_arrays(self._active)
        return OverrideUpdate(tuple(o for _, o in resolved), bool(changed or ended))

    def _resolve(self) -> list[tuple[int, ManualOverride]]:
        """The accepted commands as overrides; a switch or dim ends at the lamp's next switching, asked of
        the clock for all of them at once."""
        answered, self._accepted = self._accepted, []
        scheduled = [i for i, (p, _) in enumerate(answered) if not isinstance(p.command.order, Override)]
        ends: dict[int, int] = {}
        if scheduled:
            lamps = np.array([answered[i][0].lamp for i in scheduled], dtype=np.int32)
            after = np.array([answered[i][1].ts_ms for i in scheduled], dtype=np.int64)
            ends = dict(zip(scheduled, self._clock.next_switch_ms(lamps, after).tolist(), strict=True))
        out = []
        for i, (pending, ack) in enumerate(answered):
            command, order = pending.command, pending.command.order
            until = order.until_ms if isinstance(order, Override) else ends[i]
            override = ManualOverride(
                command.device, pending.on, pending.level, ack.ts_ms, until, order.action.value, command.id
            )
            out.append((pending.lamp, override))
        self.counts["accepted"] += len(out)
        return out

    def _hold(self, override: ManualOverride, lamp: int | None = None) -> bool:
        """Hold ``override`` unless the lamp holds a newer one; True when it now holds."""
        if override.until_ms <= override.from_ms:
            self.counts["ended"] += 1  # it ended before it began (an override until the past)
            return False
        number = int(self._lamps.find([override.lamp])[0]) if lamp is None else lamp
        if number < 0:
            self.counts["foreign"] += 1
            return False
        held = self._active.get(number)
        if held is not None and held.from_ms > override.from_ms:
            self.counts["superseded"] += 1  # a late answer to an older command
            return False
        if held is not None:
            self.counts["replaced"] += 1
        self._active[number] = override
        return True

    def _age_out(self, before_ms: int) -> None:
        for table in (self._pending, self._early):
            while table:
                first = next(iter(table))
                if table[first].received_ms >= before_ms:
                    break
                del table[first]
                self.counts["unanswered"] += 1

    # -- restart and views ----------------------------------------------------------------------------

    def restore(self, overrides: Iterable[ManualOverride], now_ms: int) -> int:
        """Hold the overrides read back after a restart (in any order: the newest per lamp wins); returns
        how many hold at ``now_ms``."""
        for override in sorted(overrides, key=lambda o: o.from_ms):
            self._hold(override)
        for lamp in [lamp for lamp, o in self._active.items() if o.until_ms <= now_ms]:
            del self._active[lamp]
        self._manual = _as_arrays(self._active)
        return len(self._active)

    @property
    def manual(self) -> ManualLamps | None:
        """The overrides for ``LampScheduler.set_manual`` (None: no lamp under an operator's command)."""
        return self._manual

    def active(self) -> list[ManualOverride]:
        return list(self._active.values())

    @property
    def pending(self) -> int:
        """Commands (and early acks) waiting for their other half."""
        return len(self._pending) + len(self._early)

    @property
    def rejected(self) -> int:
        """Command and ack messages that could not be used."""
        return sum(n for key, n in self.counts.items() if key.startswith("rejected_"))


def _as_arrays(active: Mapping[int, ManualOverride]) -> ManualLamps | None:
    if not active:
        return None
    held = list(active.items())
    return ManualLamps(
        np.array([lamp for lamp, _ in held], dtype=np.int32),
        np.array([ON if o.on else OFF for _, o in held], dtype=np.int8),
        np.array([o.level for _, o in held], dtype=np.float32),
        np.array([o.from_ms for _, o in held], dtype=np.int64),
        np.array([o.until_ms for _, o in held], dtype=np.int64),
    )


# -- InfluxDB line protocol (the worker writes and reads; pure here) ---------------------------------------


def override_line(override: ManualOverride, partition: str) -> str:
    """One accepted override as a ``manual_override`` point, stamped (ms) when it took effect."""
    tags = tag_set([("lamp", override.lamp), ("partition", partition)])
    fields = ",".join(
        (
            f"lamp_on={'true' if override.on else 'false'}",
            f"level={override.level}i",
            f"until_ms={override.until_ms}i",
            f"action={string_field(override.action)}",
            f"command={string_field(override.command_id)}",
        )
    )
    return f"{MANUAL_OVERRIDE}{tags} {fields} {override.from_ms}"


OVERRIDE_COLUMNS = ("lamp", "lamp_on", "level", "until_ms", "action", "command")


def override_query(hours: int) -> str:
    """The partition's overrides of the last ``hours`` (bind ``$partition``), for ``overrides_from_rows``."""
    columns = ", ".join(f'"{c}"' for c in OVERRIDE_COLUMNS)
    return (  # constants and an int only
        f'SELECT {columns} FROM "{MANUAL_OVERRIDE}" WHERE time > now() - {int(hours)}h '  # noqa: S608
        'AND "partition" = $partition'
    )


def overrides_from_rows(series: Sequence[Mapping[str, Any]]) -> list[ManualOverride]:
    """Overrides from the rows of ``SELECT "lamp", "lamp_on", "level", "until_ms", "action", "command"``; a
    row missing a value (a point written by hand) is skipped."""
    out = []
    for one in series:
        columns = list(one.get("columns", []))
        if "time" not in columns or any(c not in columns for c in OVERRIDE_COLUMNS):
            continue
        at = {name: columns.index(name) for name in ("time", *OVERRIDE_COLUMNS)}
        for row in one.get("values", []):
            lamp, on, level, until, ts = (
                row[at[n]] for n in ("lamp", "lamp_on", "level", "until_ms", "time")
            )
            if not isinstance(lamp, str) or not isinstance(on, bool) or None in (level, until, ts):
                continue
            out.append(
                ManualOverride(
                    lamp,
                    on,
                    int(level),
                    int(ts),
                    int(until),
                    str(row[at["action"]] or ""),
                    str(row[at["command"]] or ""),
                )
            )
    return out
