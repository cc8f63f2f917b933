"""Alerts: list and filter, read with history and notes, and act (acknowledge, start, note, assign,
resolve, close, reopen) through the alert service, so the policy decides what an action sets off.

A crew user sees its own crew's alerts only: lists are filtered to the crew, and reading or acting on
another crew's alert is 403 (``api.roles.may_touch_crew``).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Request

from analytics.alerts.model import SYSTEM, Alert, AlertEvent, AlertState, Severity
from api import Forbidden, Unprocessable
from api.audit import note_of
from api.deps import Services
from api.roles import V1, Principal, Role, crew_for_listing, may_touch_crew
from api.routes import GUARDED, problems
from api.schemas import ActIn, AlertDetail, AlertOut, AlertPage, AssignIn, NoteIn, TransitionOut
from api.security import Caller, Svc

router = APIRouter(prefix=V1, tags=["alerts"], responses={**GUARDED, **problems(404)})

AlertId = Annotated[str, Path(min_length=1, max_length=400, pattern=r"^[^\x00-\x1f\x7f]+$")]
Text = Annotated[str | None, Query(max_length=200)]
_ACTED: Final = problems(409)


def _out(svc: Services, alert: Alert) -> AlertOut:
    return AlertOut.of(alert, svc.alert_service.policy.title(alert.rule), svc.clock_ms())


def _cursor(text: str) -> tuple[int, str]:
    deadline, _, alert_id = text.partition(":")
    try:
        value = int(deadline)
    except ValueError:
        value = None
    if value is None or not alert_id or not -(2**62) < value < 2**62:
        raise Unprocessable(f"after {text!r:.60} is not a cursor from next_after")
    return value, alert_id


@router.get("/alerts")
def list_alerts(
    caller: Caller,
    svc: Svc,
    state: Annotated[
        list[AlertState] | None, Query(description="any of these states (repeat the parameter)")
    ] = None,
    severity: Severity | None = None,
    crew: Text = None,
    road: Text = None,
    district: Text = None,
    overdue: Annotated[bool, Query(description="only live alerts past their deadline")] = False,
    after: Annotated[str | None, Query(max_length=500, description="next_after of the page before")] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> AlertPage:
    """Alerts matching every filter, the most urgent deadline first, a page at a time."""
    limit = min(limit, svc.settings.page_max)
    found = svc.alerts.list(
        state=state,
        crew=crew_for_listing(caller, crew),
        severity=severity,
        road=road,
        district=district,
        overdue_at_ms=svc.clock_ms() if overdue else None,
        limit=limit,
        after=None if after is None else _cursor(after),
    )
    last = found[-1] if len(found) == limit else None
    return AlertPage(
        items=[_out(svc, a) for a in found],
        next_after=None if last is None else f"{last.deadline_ms}:{last.id}",
    )


def _readable(caller: Principal, svc: Services, alert_id: str) -> Alert:
    alert = svc.alerts.get(alert_id)  # UnknownAlert: 404
    if not may_touch_crew(caller, alert.crew):
        raise Forbidden(
            f"alert {alert_id} belongs to crew {alert.crew!r}; {caller.name} works for {caller.crew!r}"
        )
    return alert


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: AlertId, caller: Caller, svc: Svc) -> AlertDetail:
    """One alert with every transition (who, when, why) and the notes people left."""
    alert = _readable(caller, svc, alert_id)
    history = [TransitionOut.of(t) for t in svc.alerts.history(alert_id)]
    notes = [t for t in history if t.note and t.actor != SYSTEM]
    return AlertDetail(**_out(svc, alert).model_dump(), history=history, notes=notes)


def _act(
    request: Request,
    caller: Principal,
    svc: Services,
    alert_id: str,
    event: AlertEvent,
    note: str,
    crew: str = "",
) -> AlertOut:
    audit = note_of(request.scope)
    audit.summary = (
        f"{event.value} alert {alert_id}"
        + (f" to {crew}" if crew else "")
        + (f": {note[:200]}" if note else "")
    )
    _readable(caller, svc, alert_id)
    if crew and caller.role is Role.CREW and crew != caller.crew:
        raise Forbidden(f"{caller.name} works for crew {caller.crew!r}: it cannot hand alerts to {crew!r}")
    return _out(
        svc, svc.alert_service.act(alert_id, event.value, caller.actor, svc.clock_ms(), note, crew=crew)
    )


@router.post("/alerts/{alert_id}/ack", responses=_ACTED)
def acknowledge(
    request: Request, alert_id: AlertId, caller: Caller, svc: Svc, body: ActIn | None = None
) -> AlertOut:
    """Acknowledge: the crew has seen it and owns it (escalation for want of an answer stops)."""
    return _act(request, caller, svc, alert_id, AlertEvent.ACKNOWLEDGE, body.note if body else "")


@router.post("/alerts/{alert_id}/start", responses=_ACTED)
def start(
    request: Request, alert_id: AlertId, caller: Caller, svc: Svc, body: ActIn | None = None
) -> AlertOut:
    """Work on site has begun."""
    return _act(request, caller, svc, alert_id, AlertEvent.START, body.note if body else "")


@router.post("/alerts/{alert_id}/note", responses=_ACTED)
def add_note(request: Request, alert_id: AlertId, body: NoteIn, caller: Caller, svc: Svc) -> AlertOut:
    """Add a note (what was found, what was done); the state stays."""
    return _act(request, caller, svc, alert_id, AlertEvent.NOTE, body.note)


@router.post("/alerts/{alert_id}/assign", responses=_ACTED)
def assign(request: Request, alert_id: AlertId, body: AssignIn, caller: Caller, svc: Svc) -> AlertOut:
    """Hand the alert to a crew, whose on-call person is told (a crew user: within its own crew only)."""
    return _act(request, caller, svc, alert_id, AlertEvent.ASSIGN, body.note, crew=body.crew)


@router.post("/alerts/{alert_id}/resolve", responses=_ACTED)
def resolve(request: Request, alert_id: AlertId, body: NoteIn, caller: Caller, svc: Svc) -> AlertOut:
    """Fixed: say what was done. Whoever the alert was escalated to is told."""
    return _act(request, caller, svc, alert_id, AlertEvent.RESOLVE, body.note)


@router.post("/alerts/{alert_id}/close", responses=_ACTED)
def close(
    request: Request, alert_id: AlertId, caller: Caller, svc: Svc, body: ActIn | None = None
) -> AlertOut:
    """Confirm the fix of a resolved alert (the control room)."""
    return _act(request, caller, svc, alert_id, AlertEvent.CLOSE, body.note if body else "")


@router.post("/alerts/{alert_id}/reopen", responses=_ACTED)
def reopen(request: Request, alert_id: AlertId, body: NoteIn, caller: Caller, svc: Svc) -> AlertOut:
    """Reopen a resolved alert: the fault is still there (say why)."""
    return _act(request, caller, svc, alert_id, AlertEvent.REOPEN, body.note)
