"""The alert lifecycle: one transition table that the code and the docs (``lifecycle_doc``) both read.

open → acknowledged → in progress → resolved → closed. A person or the system (``auto_resolve``, when the
condition stayed clear for the hysteresis time) resolves from any live state; a resolved alert reopens
when its condition comes back within the grace period, and closes when the grace passes (or a person
confirms). ``note`` and ``assign`` keep the state: they are in the table so that where they are allowed
is written down once (a note until the alert is closed, an assignment while it is live). ``step`` is
pure: an alert and an event in, the next alert version and its ``Transition`` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from analytics.alerts import IllegalTransition
from analytics.alerts.model import Alert, AlertEvent, AlertState, Transition

_S, _E = AlertState, AlertEvent

# {state: {event: next state}}: the only place the moves are written down (see h11/_state.py).
TRANSITIONS: Mapping[AlertState, Mapping[AlertEvent, AlertState]] = MappingProxyType(
    {
        _S.OPEN: MappingProxyType(
            {
                _E.ACKNOWLEDGE: _S.ACKNOWLEDGED,
                _E.START: _S.IN_PROGRESS,
                _E.RESOLVE: _S.RESOLVED,
                _E.AUTO_RESOLVE: _S.RESOLVED,
                _E.NOTE: _S.OPEN,
                _E.ASSIGN: _S.OPEN,
            }
        ),
        _S.ACKNOWLEDGED: MappingProxyType(
            {
                _E.START: _S.IN_PROGRESS,
                _E.RESOLVE: _S.RESOLVED,
                _E.AUTO_RESOLVE: _S.RESOLVED,
                _E.NOTE: _S.ACKNOWLEDGED,
                _E.ASSIGN: _S.ACKNOWLEDGED,
            }
        ),
        _S.IN_PROGRESS: MappingProxyType(
            {
                _E.RESOLVE: _S.RESOLVED,
                _E.AUTO_RESOLVE: _S.RESOLVED,
                _E.NOTE: _S.IN_PROGRESS,
                _E.ASSIGN: _S.IN_PROGRESS,
            }
        ),
        _S.RESOLVED: MappingProxyType(
            {
                _E.REOPEN: _S.OPEN,
                _E.CLOSE: _S.CLOSED,
                _E.NOTE: _S.RESOLVED,
            }
        ),
        _S.CLOSED: MappingProxyType({}),
    }
)

# What each event means, for the generated docs.
EVENT_MEANING: Mapping[AlertEvent, str] = MappingProxyType(
    {
        _E.ACKNOWLEDGE: "a crew member has seen it and owns it (no escalation for want of an answer)",
        _E.START: "work on site has begun",
        _E.RESOLVE: "a person says it is fixed",
        _E.AUTO_RESOLVE: "the system: the condition stayed clear for the hysteresis time",
        _E.REOPEN: "the condition came back within the grace period or outlasted a resolve; or a person",
        _E.CLOSE: "confirmed fixed: a person, or the grace period ran out with the condition clear",
        _E.NOTE: "a person adds a note (what was found, what was done); the state stays",
        _E.ASSIGN: "a person hands the alert to a crew (its crew's on-call person is told); the state stays",
    }
)


def allowed(state: AlertState) -> Mapping[AlertEvent, AlertState]:
    """The events the table allows from ``state``, with where each leads."""
    return TRANSITIONS[state]


def can(alert: Alert, event: AlertEvent) -> bool:
    return event in TRANSITIONS[alert.state]


def step(alert: Alert, event: AlertEvent, actor: str, at_ms: int, note: str = "") -> tuple[Alert, Transition]:
    """Move ``alert`` by ``event``; raise ``IllegalTransition`` when the table has no such move.

    Timestamps: the first acknowledge (or a start that skips it) sets ``acknowledged_ms``; resolving sets
    ``resolved_ms``; closing sets ``closed_ms``; a reopen clears ``resolved_ms`` and ``condition_clear_ms``
    (the condition is back) and counts in ``reopen_count``. ``acknowledged_ms`` keeps the first
    acknowledgement: the state (open again) says whether someone has to look.
    """
    event = AlertEvent(event)
    target = TRANSITIONS[alert.state].get(event)
    if target is None:
        raise IllegalTransition(alert.id, alert.state.value, event.value)
    if event in (_E.ACKNOWLEDGE, _E.START):
        nxt = replace(alert, state=target, acknowledged_ms=alert.acknowledged_ms or at_ms)
    elif event in (_E.RESOLVE, _E.AUTO_RESOLVE):
        nxt = replace(alert, state=target, resolved_ms=at_ms)
    elif event is _E.CLOSE:
        nxt = replace(alert, state=target, closed_ms=at_ms)
    elif event in (_E.NOTE, _E.ASSIGN):
        nxt = alert  # the state stays; an assignment's new crew is the policy's to set
    else:  # REOPEN
        nxt = replace(
            alert,
            state=target,
            resolved_ms=None,
            condition_clear_ms=None,
            reopen_count=alert.reopen_count + 1,
        )
    return nxt, Transition(alert.id, alert.state, target, event.value, actor, at_ms, note)
