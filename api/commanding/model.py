"""Command states, the transition table that is their lifecycle, and the records. Pure.

One device command::

    pending ──accepted──▶ delivered ──effect_shown───▶ confirmed
       │                      ├──────effect_overdue─▶ not_effective   (acknowledged, readings disagree)
       │                      └──────refused────────▶ failed          (the device reports it could not)
       ├──refused / send_failed──────────────────────▶ failed          (rejected, or never left)
       └──ack_overdue────────────────────────────────▶ timed_out       (no answer before it expired)

    pending, delivered ──superseded──▶ superseded   (the device was told something else meanwhile)

``not_effective`` is a failure with a finding attached: the device said yes and did not do it. An event a
state does not list (a duplicate ack redelivered at QoS 1, a late ack after the timeout) changes nothing.

A request (one lamp, a circuit, a road, a station) aggregates its devices' commands (``aggregate``): while
any is open it is ``pending`` (nothing answered yet) or ``delivered``; once all ended, their common state,
or ``partial`` when some but not all were confirmed, or ``failed`` when none was and they ended differently.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from devices.commands import Command, Order, Route
from devices.kinds import DeviceKind


class CommandState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    NOT_EFFECTIVE = "not_effective"
    SUPERSEDED = "superseded"


class CommandEvent(enum.StrEnum):
    ACCEPTED = "accepted"  # the device acknowledged: it acts on the command
    REFUSED = "refused"  # the device answered rejected or failed
    SEND_FAILED = "send_failed"  # the broker did not take the command
    ACK_OVERDUE = "ack_overdue"  # no answer by the command's expiry
    EFFECT_SHOWN = "effect_shown"  # a reading from after the ack shows the effect
    EFFECT_OVERDUE = "effect_overdue"  # no such reading within the verification window
    SUPERSEDED = "superseded"  # a newer command went to the device before this one ended


_S, _E = CommandState, CommandEvent
TRANSITIONS: Final[Mapping[CommandState, Mapping[CommandEvent, CommandState]]] = MappingProxyType(
    {
        _S.PENDING: MappingProxyType(
            {
                _E.ACCEPTED: _S.DELIVERED,
                _E.REFUSED: _S.FAILED,
                _E.SEND_FAILED: _S.FAILED,
                _E.ACK_OVERDUE: _S.TIMED_OUT,
                _E.SUPERSEDED: _S.SUPERSEDED,
            }
        ),
        _S.DELIVERED: MappingProxyType(
            {
                _E.EFFECT_SHOWN: _S.CONFIRMED,
                _E.EFFECT_OVERDUE: _S.NOT_EFFECTIVE,
                _E.REFUSED: _S.FAILED,
                _E.SUPERSEDED: _S.SUPERSEDED,
            }
        ),
        _S.CONFIRMED: MappingProxyType({}),
        _S.FAILED: MappingProxyType({}),
        _S.TIMED_OUT: MappingProxyType({}),
        _S.NOT_EFFECTIVE: MappingProxyType({}),
        _S.SUPERSEDED: MappingProxyType({}),
    }
)
FINAL: Final = frozenset(state for state, moves in TRANSITIONS.items() if not moves)


class TargetKind(enum.StrEnum):
    """What an operator can command: a lamp, every lamp of a circuit or of a road, a pump station."""

    LAMP = "lamp"
    CIRCUIT = "circuit"
    ROAD = "road"
    PUMP_STATION = "pump_station"


class RequestState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    CONFIRMED = "confirmed"
    PARTIAL = "partial"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    NOT_EFFECTIVE = "not_effective"
    SUPERSEDED = "superseded"


_OPEN_REQUEST: Final = frozenset({RequestState.PENDING, RequestState.DELIVERED})


def request_is_open(state: RequestState) -> bool:
    return state in _OPEN_REQUEST


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """What an operator asks for."""

    target_kind: TargetKind
    target_id: str
    order: Order


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCommand:
    """One device's command and where it stands."""

    id: str  # the command id on the wire (UUID)
    request_id: str
    device: str
    kind: DeviceKind
    district: str
    route: Route
    order: Order
    rated: float  # lamp: rated power (W); station: one pump's rated current (A); NaN unknown
    issued_ms: int
    expires_ms: int
    state: CommandState = CommandState.PENDING
    updated_ms: int = 0
    delivered_ms: int | None = None  # when the acceptance arrived (CityWatch's clock)
    effective_ts_ms: int | None = None  # the device's clock when it took effect (from the ack)
    ended_ms: int | None = None
    detail: str = ""  # why it ended as it did, in words
    observed: float = math.nan  # what the deciding reading showed (W, A)
    expected: float = math.nan  # the bound it was held to

    @property
    def command(self) -> Command:
        return Command(self.id, self.device, self.order, self.issued_ms, self.expires_ms)

    @property
    def final(self) -> bool:
        return self.state in FINAL


def advance(
    command: DeviceCommand, event: CommandEvent, now_ms: int, **changes: object
) -> DeviceCommand | None:
    """``command`` after ``event`` (with ``changes`` applied), or None when its state does not take the
    event."""
    target = TRANSITIONS[command.state].get(event)
    if target is None:
        return None
    ended = now_ms if target in FINAL else None
    return replace(command, state=target, updated_ms=now_ms, ended_ms=ended, **changes)  # type: ignore[arg-type]


def aggregate(states: Iterable[CommandState]) -> RequestState:
    """A request's state from its devices' command states."""
    counts = Counter(states)
    if not counts:
        return RequestState.FAILED
    if any(state not in FINAL for state in counts):
        moved = any(state is not CommandState.PENDING for state in counts)
        return RequestState.DELIVERED if moved else RequestState.PENDING
    if len(counts) == 1:
        return RequestState(next(iter(counts)).value)
    return RequestState.PARTIAL if counts[CommandState.CONFIRMED] else RequestState.FAILED


@dataclass(frozen=True, slots=True)
class CommandView:
    """A request as an operator sees it: what, who, its state, and each device's command."""

    id: str
    request: CommandRequest
    actor: str
    created_ms: int
    updated_ms: int
    state: RequestState
    counts: Mapping[CommandState, int]  # devices per command state
    devices: tuple[DeviceCommand, ...] = ()  # left out of lists

    @property
    def device_count(self) -> int:
        return sum(self.counts.values())


def counts_of(commands: Iterable[DeviceCommand]) -> Mapping[CommandState, int]:
    return MappingProxyType(dict(Counter(c.state for c in commands)))
