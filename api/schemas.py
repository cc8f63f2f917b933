"""Request and response bodies of the API (pydantic, at the edge): every route has a typed response model,
so the OpenAPI document says exactly what comes back.

Times are RFC 3339 date-times in UTC; the stores keep epoch milliseconds (``from_ms``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from analytics.alerts.model import Alert, AlertState, Severity, Transition
from api.live_status import DeviceStatus
from api.rate_math import Metric, Scope
from api.roles import Role
from api.windows import from_ms
from devices.assets import ROAD_CLASSES, TEXT_LIMITS
from devices.topics import ID_PATTERN

ID_REGEX = ID_PATTERN.pattern
NAME_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"

ParamScalar = str | int | float | bool | None
ParamValue = ParamScalar | list[ParamScalar]
Reading = float | int | bool | str | None


def when(ms: int | None) -> dt.datetime | None:
    return None if ms is None else from_ms(ms)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- session, users, keys, audit ----------------------------------------------------------------------


class TokenOut(Out):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth 2 token type, not a secret)
    expires_at: dt.datetime
    user: str
    role: Role
    crew: str


class MeOut(Out):
    name: str
    role: Role
    crew: str
    via: str = Field(description="token (a signed-in user) or key (an API key)")
    areas: list[str] = Field(description="what this role may do (docs/api.md, roles)")


class UserOut(Out):
    name: str
    role: Role
    crew: str
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class UserIn(In):
    name: Annotated[str, Field(pattern=NAME_REGEX)]
    role: Role
    crew: Annotated[str, Field(max_length=100, pattern=_NO_CONTROLS)] = ""
    password: Annotated[str, Field(min_length=12, max_length=1024)]


class UserPatch(In):
    role: Role | None = None
    crew: Annotated[str, Field(max_length=100, pattern=_NO_CONTROLS)] | None = None
    password: Annotated[str, Field(min_length=12, max_length=1024)] | None = None
    disabled: bool | None = None


class KeyIn(In):
    name: Annotated[str, Field(pattern=NAME_REGEX)]
    role: Role
    crew: Annotated[str, Field(max_length=100, pattern=_NO_CONTROLS)] = ""


class KeyOut(Out):
    key_id: str
    name: str
    role: Role
    crew: str
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the key: shown this once, store it now (send it as X-API-Key)")


class AuditEntryOut(Out):
    id: int
    at: dt.datetime
    who: str
    role: str
    method: str
    route: str
    targets: dict[str, Any]
    summary: str
    status: int
    outcome: str = Field(description="ok, denied (401/403), refused (other 4xx) or error (5xx)")
    client: str


class AuditPage(Out):
    entries: list[AuditEntryOut]
    next_before: int | None = Field(description="pass as before_id for the next (older) page")


# --- assets -------------------------------------------------------------------------------------------


RoadText = Annotated[str, Field(max_length=TEXT_LIMITS["road"], pattern=_NO_CONTROLS)]
GridText = Annotated[str, Field(max_length=TEXT_LIMITS["grid_cell"], pattern=_NO_CONTROLS)]
CircuitText = Annotated[str, Field(max_length=TEXT_LIMITS["circuit"], pattern=_NO_CONTROLS)]
CabinetText = Annotated[str, Field(max_length=TEXT_LIMITS["cabinet"], pattern=_NO_CONTROLS)]
CrewText = Annotated[str, Field(max_length=TEXT_LIMITS["crew"], pattern=_NO_CONTROLS)]
District = Annotated[str, Field(pattern=r"^[a-z0-9_\-]{1,40}$")]
RoadClass = Annotated[str, Field(pattern="^(" + "|".join(ROAD_CLASSES) + ")?$")]
GatewayId = Annotated[str, Field(pattern=f"^({ID_REGEX})?$")]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class AssetFields(In):
    district: District
    road: RoadText = ""
    road_class: RoadClass = ""
    grid_cell: GridText = ""
    circuit: CircuitText = ""
    cabinet: CabinetText = ""
    gateway: GatewayId = ""
    lat: Lat
    lon: Lon
    rated_power_w: Amount | None = None
    capacity: Amount | None = None
    install_date: dt.date | None = None
    crew: CrewText = ""
    params: dict[str, ParamValue] = Field(default_factory=dict)
    in_service: bool = True


class AssetIn(AssetFields):
    id: Annotated[str, Field(pattern=f"^{ID_REGEX}$")]
    kind: Annotated[str, Field(pattern="^(lamp|cabinet|bridge_node|pump_station|flood_gauge|bin|gateway)$")]


class AssetPatch(In):
    """The fields to change (id and kind never change)."""

    district: District | None = None
    road: RoadText | None = None
    road_class: RoadClass | None = None
    grid_cell: GridText | None = None
    circuit: CircuitText | None = None
    cabinet: CabinetText | None = None
    gateway: GatewayId | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    rated_power_w: Amount | None = None
    capacity: Amount | None = None
    install_date: dt.date | None = None
    crew: CrewText | None = None
    params: dict[str, ParamValue] | None = None
    in_service: bool | None = None


class AssetOut(Out):
    id: str
    kind: str
    district: str
    road: str
    road_class: str
    grid_cell: str
    circuit: str
    cabinet: str
    gateway: str
    lat: float
    lon: float
    rated_power_w: float | None
    capacity: float | None
    install_date: dt.date | None
    crew: str
    params: dict[str, ParamValue]
    in_service: bool


class AssetPage(Out):
    items: list[AssetOut]
    next_after: str | None = Field(description="pass as after for the next page; null: the last page")


class ImportRejectionOut(Out):
    line: int
    asset_id: str | None
    reason: str
    cause: str


class ImportOut(Out):
    accepted: int
    rejected: int
    rejections: list[ImportRejectionOut] = Field(description="the first rejections, in file order")
    counts: dict[str, int] = Field(description="every rejection, by cause")


# --- live state and history ---------------------------------------------------------------------------


class FindingOut(Out):
    rule: str
    family: str
    subject_kind: str
    subject: str
    district: str
    level: int
    value: float | None
    threshold: float | None
    since: dt.datetime
    explanation: str
    children: int


class DeviceLive(Out):
    device: str
    kind: str
    district: str
    road: str
    circuit: str
    crew: str
    status: DeviceStatus
    last_seen: dt.datetime | None
    readings: dict[str, Reading]
    findings: list[FindingOut]


class LampLive(Out):
    device: str
    status: DeviceStatus
    last_seen: dt.datetime | None
    active_power: float | None
    lamp_on: bool | None
    dim_level: int | None


class CircuitLive(Out):
    circuit: str
    district: str
    road: str
    cabinet: DeviceLive | None
    lamp_count: int
    truncated: bool = Field(description="true when the circuit has more lamps than listed")
    counts: dict[str, int] = Field(description="lamps listed by status")
    lamps: list[LampLive]
    findings: list[FindingOut] = Field(description="open findings on the circuit itself (an outage)")


class PumpOut(Out):
    number: int
    readings: dict[str, Reading]


class GaugeLive(Out):
    device: str
    status: DeviceStatus
    last_seen: dt.datetime | None
    water_depth: float | None


class StationLive(Out):
    station: DeviceLive
    pumps: list[PumpOut]
    gauges: list[GaugeLive] = Field(description="flood gauges served by the station")


class HistoryPoint(Out):
    start: dt.datetime
    count: int
    mean: float | None = Field(description="null for true/false fields")
    min: float | None
    max: float | None


class HistoryOut(Out):
    device: str
    kind: str
    field: str
    unit: str
    start: dt.datetime
    end: dt.datetime
    window_s: float
    points: list[HistoryPoint]


# --- rates --------------------------------------------------------------------------------------------


class RatePointOut(Out):
    start: dt.datetime
    end: dt.datetime
    rate: float | None
    numerator: float
    denominator: float
    lower_bound: float | None = Field(
        None, description="lighting: lamps with an offline controller counted dark"
    )


class RateSeriesOut(Out):
    scope_id: str
    points: list[RatePointOut]


class RatesOut(Out):
    metric: Metric
    scope: Scope
    start: dt.datetime
    end: dt.datetime
    interval_s: float
    series: list[RateSeriesOut]


# --- alerts -------------------------------------------------------------------------------------------


class AlertOut(Out):
    id: str
    rule: str
    title: str
    family: str
    subject_kind: str
    subject: str
    district: str
    road: str
    grid_cell: str
    crew: str
    severity: Severity
    state: AlertState
    opened_at: dt.datetime
    deadline_at: dt.datetime
    overdue: bool
    explanation: str
    children: list[str]
    parent: str
    maintenance: str
    flapping: bool
    escalation: int
    acknowledged_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    reopen_count: int

    @staticmethod
    def of(alert: Alert, title: str, now_ms: int) -> AlertOut:
        return AlertOut(
            id=alert.id,
            rule=alert.rule,
            title=title,
            family=alert.family,
            subject_kind=alert.subject_kind,
            subject=alert.subject,
            district=alert.district,
            road=alert.road,
            grid_cell=alert.grid_cell,
            crew=alert.crew,
            severity=alert.severity,
            state=alert.state,
            opened_at=from_ms(alert.opened_ms),
            deadline_at=from_ms(alert.deadline_ms),
            overdue=alert.live and alert.deadline_ms < now_ms,
            explanation=alert.explanation,
            children=list(alert.children),
            parent=alert.parent,
            maintenance=alert.maintenance,
            flapping=alert.flapping,
            escalation=alert.escalation,
            acknowledged_at=when(alert.acknowledged_ms),
            resolved_at=when(alert.resolved_ms),
            closed_at=when(alert.closed_ms),
            reopen_count=alert.reopen_count,
        )


class TransitionOut(Out):
    from_state: AlertState | None
    to_state: AlertState
    event: str
    actor: str
    at: dt.datetime
    note: str

    @staticmethod
    def of(t: Transition) -> TransitionOut:
        return TransitionOut(
            from_state=t.from_state,
            to_state=t.to_state,
            event=t.event,
            actor=t.actor,
            at=from_ms(t.at_ms),
            note=t.note,
        )


class AlertDetail(AlertOut):
    history: list[TransitionOut]
    notes: list[TransitionOut] = Field(description="the history's entries that carry a person's note")


class AlertPage(Out):
    items: list[AlertOut]
    next_after: str | None = Field(description="pass as after for the next page; null: the last page")


class ActIn(In):
    note: Annotated[str, Field(max_length=4000)] = ""


class NoteIn(In):
    note: Annotated[str, Field(min_length=1, max_length=4000)]


class AssignIn(In):
    crew: Annotated[str, Field(min_length=1, max_length=100, pattern=_NO_CONTROLS)]
    note: Annotated[str, Field(max_length=4000)] = ""


class HealthOut(Out):
    status: str = Field(description="ok, or degraded when a check failed")
    checks: dict[str, str]
