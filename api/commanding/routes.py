"""HTTP routes of the command desk (adapter): ``POST /api/v1/commands``, ``GET /api/v1/commands[/{id}]``.

``commands_router(desk=..., actor=...)`` returns an ``APIRouter`` the API app includes. ``desk`` is a
dependency giving the running ``CommandDesk`` (the app's lifespan owns it); ``actor`` is the app's
dependency that checks the caller may command (the operator role) and returns the user's name, recorded
with the command. The reads depend on ``reader`` when given (say, any signed-in role), else on ``actor``.

A command is accepted with 202 and its view (state ``pending``); poll ``GET /api/v1/commands/{id}`` until
the state is no longer ``pending`` or ``delivered``. Errors carry ``{"detail": "..."}``: 404 unknown
target or command, 422 a request that cannot be carried out as asked, 503 no broker connection or no
database.
"""

# No ``from __future__ import annotations`` here: FastAPI must see the dependencies in the route signatures,
# which are closures over commands_router's arguments, as objects rather than names.
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.commanding import (
    CommandStoreError,
    DeskUnavailable,
    InvalidRequest,
    UnknownCommand,
    UnknownTarget,
)
from api.commanding.model import (
    CommandRequest,
    CommandState,
    CommandView,
    DeviceCommand,
    RequestState,
    TargetKind,
)
from api.commanding.service import CommandDesk
from api.problems import Problem
from devices.commands import MAX_PUMP, Action, Dim, Order, Override, PumpRun, Switch

MAX_HOLD_S = 7 * 86_400  # an override or hand mode longer than a week is a plan, not a command


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetIn(_Strict):
    kind: TargetKind = Field(description="lamp, circuit (its lamps), road (its lamps) or pump_station")
    id: str = Field(min_length=1, max_length=200, description="the registry's id, circuit or road name")


class SwitchParams(_Strict):
    on: bool = Field(description="on at full level, or off; holds until the lamp's schedule next switches")


class DimParams(_Strict):
    level: int = Field(
        ge=0, le=100, description="dim level in %, 0 is off; holds until the schedule switches"
    )


class _Hold(_Strict):
    until: AwareDatetime | None = Field(
        None, description="when the schedule / level control takes over again"
    )
    for_s: int | None = Field(None, ge=1, le=MAX_HOLD_S, description="or: for this many seconds from now")

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if self.until is not None and self.for_s is not None:
            raise ValueError("give until or for_s, not both (neither: the desk's default hold)")
        return self

    def until_ms(self, now_ms: int, default_ms: int) -> int:
        if self.until is not None:
            return round(self.until.timestamp() * 1000)
        return now_ms + (self.for_s * 1000 if self.for_s is not None else default_ms)


class OverrideParams(_Hold):
    on: bool
    level: int | None = Field(None, ge=1, le=100, description="dim level in % when on (default 100)")

    @model_validator(mode="after")
    def _level_when_on(self) -> Self:
        if not self.on and self.level is not None:
            raise ValueError("an override off has no level")
        return self


class PumpParams(_Hold):
    pump: int = Field(ge=1, le=MAX_PUMP, description="the pump's number at its station, from 1")
    run: bool = Field(description="true: start it by hand; false: stop it by hand")


class SwitchCommandIn(_Strict):
    target: TargetIn
    action: Literal["switch"]
    params: SwitchParams


class DimCommandIn(_Strict):
    target: TargetIn
    action: Literal["dim"]
    params: DimParams


class OverrideCommandIn(_Strict):
    target: TargetIn
    action: Literal["override"]
    params: OverrideParams


class PumpCommandIn(_Strict):
    target: TargetIn
    action: Literal["pump"]
    params: PumpParams


CommandIn = Annotated[
    SwitchCommandIn | DimCommandIn | OverrideCommandIn | PumpCommandIn, Field(discriminator="action")
]


class TargetOut(BaseModel):
    kind: TargetKind
    id: str


class ParamsOut(BaseModel):
    """The order's parameters; which are present depends on the action."""

    on: bool | None = None
    level: int | None = None
    pump: int | None = None
    run: bool | None = None
    until: datetime | None = None


class DeviceCommandOut(BaseModel):
    id: str = Field(description="the command id on the wire (UUID)")
    device: str
    kind: str
    state: CommandState
    detail: str = Field(description="why it is where it is, in words")
    issued_at: datetime
    expires_at: datetime = Field(description="the device must not act on it later")
    updated_at: datetime
    delivered_at: datetime | None = Field(description="when its acknowledgement arrived")
    effective_at: datetime | None = Field(description="the device's clock when it took effect")
    ended_at: datetime | None
    observed: float | None = Field(description="what the deciding reading showed: W (lamps), A (pumps)")
    expected: float | None = Field(description="the bound it was held to")


class CommandSummaryOut(BaseModel):
    id: str
    target: TargetOut
    action: Action
    params: ParamsOut
    actor: str
    state: RequestState
    created_at: datetime
    updated_at: datetime
    device_count: int
    counts: dict[CommandState, int] = Field(description="devices per command state")


class CommandOut(CommandSummaryOut):
    devices: list[DeviceCommandOut]


_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "unknown target or command"},
    503: {"model": Problem, "description": "no broker connection, or the commands database is away"},
}


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _params(order: Order) -> ParamsOut:
    if isinstance(order, Switch):
        return ParamsOut(on=order.on)
    if isinstance(order, Dim):
        return ParamsOut(level=order.level)
    if isinstance(order, Override):
        return ParamsOut(on=order.on, level=order.level, until=_at(order.until_ms))
    return ParamsOut(pump=order.pump, run=order.run, until=_at(order.until_ms))


def _device_out(c: DeviceCommand) -> DeviceCommandOut:
    return DeviceCommandOut(
        id=c.id,
        device=c.device,
        kind=c.kind.value,
        state=c.state,
        detail=c.detail,
        issued_at=_at(c.issued_ms),
        expires_at=_at(c.expires_ms),
        updated_at=_at(c.updated_ms),
        delivered_at=_time(c.delivered_ms),
        effective_at=_time(c.effective_ts_ms),
        ended_at=_time(c.ended_ms),
        observed=_finite(c.observed),
        expected=_finite(c.expected),
    )


def command_summary(view: CommandView) -> CommandSummaryOut:
    return CommandSummaryOut(
        id=view.id,
        target=TargetOut(kind=view.request.target_kind, id=view.request.target_id),
        action=view.request.order.action,
        params=_params(view.request.order),
        actor=view.actor,
        state=view.state,
        created_at=_at(view.created_ms),
        updated_at=_at(view.updated_ms),
        device_count=view.device_count,
        counts=dict(view.counts),
    )


def command_out(view: CommandView) -> CommandOut:
    summary = command_summary(view)
    return CommandOut(**dict(summary), devices=[_device_out(c) for c in view.devices])


def request_of(
    body: SwitchCommandIn | DimCommandIn | OverrideCommandIn | PumpCommandIn, now_ms: int, hold_ms: int
) -> CommandRequest:
    """The desk's request from the HTTP body (ends of holds made absolute at ``now_ms``)."""
    order: Order
    if isinstance(body, SwitchCommandIn):
        order = Switch(body.params.on)
    elif isinstance(body, DimCommandIn):
        order = Dim(body.params.level)
    elif isinstance(body, OverrideCommandIn):
        p = body.params
        order = Override(p.on, (p.level or 100) if p.on else 0, p.until_ms(now_ms, hold_ms))
    else:
        q = body.params
        order = PumpRun(q.pump, q.run, q.until_ms(now_ms, hold_ms))
    return CommandRequest(body.target.kind, body.target.id, order)


def commands_router(
    *,
    desk: Callable[[], CommandDesk],
    actor: Callable[..., str],
    reader: Callable[..., object] | None = None,
) -> APIRouter:
    """The ``/api/v1/commands`` routes over the desk ``desk`` gives; ``actor`` guards the writes."""
    router = APIRouter(prefix="/api/v1/commands", tags=["commands"])
    read_guard = reader or actor

    @router.post(
        "",
        status_code=202,
        response_model=CommandOut,
        responses={**_ERRORS, 422: {"model": Problem, "description": "the request cannot be carried out"}},
        summary="Send a command to a lamp, a circuit's or a road's lamps, or a pump station",
    )
    def submit_command(
        body: Annotated[CommandIn, Body()],
        d: Annotated[CommandDesk, Depends(desk)],
        who: Annotated[str, Depends(actor)],
    ) -> CommandOut:
        request = request_of(body, d.wall_ms(), d.config.default_hold_ms)
        try:
            view = d.submit(request, who)
        except UnknownTarget as exc:
            raise HTTPException(404, str(exc)) from exc
        except InvalidRequest as exc:
            raise HTTPException(422, str(exc)) from exc
        except (DeskUnavailable, CommandStoreError) as exc:
            raise HTTPException(503, str(exc)) from exc
        return command_out(view)

    @router.get(
        "/{command_id}",
        response_model=CommandOut,
        responses=_ERRORS,
        summary="A command with the state of each device's command",
    )
    def get_command(
        command_id: Annotated[str, Path(min_length=1, max_length=64)],
        d: Annotated[CommandDesk, Depends(desk)],
        _who: Annotated[object, Depends(read_guard)],
    ) -> CommandOut:
        try:
            return command_out(d.get(command_id))
        except UnknownCommand as exc:
            raise HTTPException(404, str(exc)) from exc
        except CommandStoreError as exc:
            raise HTTPException(503, str(exc)) from exc

    @router.get(
        "",
        response_model=list[CommandSummaryOut],
        responses={503: _ERRORS[503]},
        summary="The latest commands, newest first",
    )
    def list_commands(
        d: Annotated[CommandDesk, Depends(desk)],
        _who: Annotated[object, Depends(read_guard)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        state: Annotated[RequestState | None, Query()] = None,
    ) -> list[CommandSummaryOut]:
        try:
            views = d.list(limit, state)
        except CommandStoreError as exc:
            raise HTTPException(503, str(exc)) from exc
        return [command_summary(v) for v in views]

    return router
