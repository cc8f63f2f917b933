"""The fault map: open faults clustered on the server for a bounding box and zoom, the open faults by
severity with the targets the control room judges rates by, and where given alerts are.

Every route reads the in-memory ``FaultLayer`` (``api.fault_layer``) that this router's lifespan opens
after the app's own (so the services exist) and keeps fresh. A crew user sees its own crew's faults only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Final

import anyio
import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import Field

from analytics.alerts.model import AlertState, Severity
from api import Unavailable
from api.asset_filters import parse_bbox
from api.deps import Services
from api.fault_layer import FaultLayer
from api.fault_map import MAX_ZOOM, SEVERITIES, Box, FaultTable, Grid, cluster, summarize, zoom_for
from api.roles import V1, Principal, Role
from api.routes import GUARDED
from api.schemas import Out
from api.security import Caller, Svc
from api.windows import from_ms

_MAX_IDS: Final = 200


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    svc: Services | None = app.state.services
    if svc is None:  # the app's lifespan opens the services before this one runs
        raise RuntimeError("the fault map needs the API's services")
    s = svc.settings
    layer = FaultLayer(
        svc.registry, svc.alerts, refresh_s=s.map_positions_refresh_s, check_s=s.map_faults_check_s
    )
    app.state.fault_layer = layer
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(layer.keep_positions_fresh, name="fault map positions")
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()
            app.state.fault_layer = None


router = APIRouter(prefix=V1, tags=["map"], responses=GUARDED, lifespan=_lifespan)


# --- bodies ---------------------------------------------------------------------------------------------


class ClusterOut(Out):
    lat: float = Field(description="centroid of the cell's faults")
    lon: float
    count: int
    worst: Severity
    by_severity: dict[Severity, int]


class FaultPointOut(Out):
    alert_id: str
    rule: str
    title: str
    subject_kind: str
    subject: str
    severity: Severity
    state: AlertState
    lat: float
    lon: float
    deadline_at: dt.datetime
    overdue: bool


class FaultMapOut(Out):
    bbox: list[float] = Field(
        description="min_lon,min_lat,max_lon,max_lat drawn (the one asked for, or the city's)"
    )
    zoom: int = Field(
        description="the zoom the cells were sized for (lower than asked if the box was too large)"
    )
    cell_deg: list[float] = Field(description="a cell's width and height in degrees")
    faults_in_view: int
    clusters: list[ClusterOut]
    points: list[FaultPointOut] = Field(description="faults of cells too small to cluster, one by one")
    as_of: dt.datetime


class TargetsOut(Out):
    lighting: float
    intact: float
    on_time_closure: float


class FaultSummaryOut(Out):
    open: int = Field(description="live alerts not carried by an incident")
    by_severity: dict[Severity, int]
    overdue: int
    unplaced: int = Field(description="open faults whose subject has no position (a district, the city)")
    targets: TargetsOut = Field(description="what the rates are judged against (0 to 1)")
    as_of: dt.datetime


class PositionOut(Out):
    alert_id: str
    lat: float
    lon: float


class PositionsOut(Out):
    positions: list[PositionOut] = Field(description="the alerts asked for that are live, placed and visible")


# --- routes ---------------------------------------------------------------------------------------------


def _layer(request: Request) -> FaultLayer:
    layer: FaultLayer | None = getattr(request.app.state, "fault_layer", None)
    if layer is None:
        raise Unavailable("the fault map is starting or stopping")
    return layer


def _crew(caller: Principal) -> str | None:
    return caller.crew if caller.role is Role.CREW else None


def _point(svc: Services, table: FaultTable, row: int, now_ms: int) -> FaultPointOut:
    a = table.alerts[row]
    return FaultPointOut(
        alert_id=a.id,
        rule=a.rule,
        title=svc.alert_service.policy.title(a.rule),
        subject_kind=a.subject_kind,
        subject=a.subject,
        severity=a.severity,
        state=a.state,
        lat=float(table.lat[row]),
        lon=float(table.lon[row]),
        deadline_at=from_ms(a.deadline_ms),
        overdue=a.deadline_ms < now_ms,
    )


@router.get("/map/faults")
def fault_map(
    request: Request,
    caller: Caller,
    svc: Svc,
    bbox: Annotated[
        str | None,
        Query(max_length=200, description="min_lon,min_lat,max_lon,max_lat (WGS 84); omit for the city"),
    ] = None,
    zoom: Annotated[
        int | None, Query(ge=0, le=MAX_ZOOM, description="slippy-map zoom; omit to fit the box in ~1000 px")
    ] = None,
) -> FaultMapOut:
    """Open faults in the box, clustered on a grid of cells about ``map_cell_px`` pixels wide at the zoom:
    per cell the count, centroid, count per severity and the worst; a cell of fewer than
    ``map_min_cluster`` faults sends them as points. Faults carried by an incident are drawn with it."""
    layer = _layer(request)
    table = layer.table()
    if bbox is not None:
        b = parse_bbox(bbox)
        box = Box(b.min_lon, b.min_lat, b.max_lon, b.max_lat)
    elif layer.positions.box is not None:
        box = layer.positions.box
    else:
        box = Box(-180.0, -90.0, 180.0, 90.0)  # no asset yet: the world (nothing will be in it)
    s, now = svc.settings, svc.clock_ms()
    rows = np.flatnonzero(table.mine(_crew(caller)) & ~table.carried)
    grid = Grid(s.map_cell_px, s.map_min_cluster, s.map_max_cells)
    found = cluster(
        table.lat[rows],
        table.lon[rows],
        table.rank[rows],
        box,
        zoom_for(box) if zoom is None else zoom,
        grid,
        len(SEVERITIES),
        world=(table.world[0][rows], table.world[1][rows]),
    )
    clusters = [
        ClusterOut(
            lat=float(found.lat[i]),
            lon=float(found.lon[i]),
            count=int(found.count[i]),
            worst=SEVERITIES[int(found.worst[i])],
            by_severity={sev: int(n) for sev, n in zip(SEVERITIES, found.by_rank[i], strict=True) if n},
        )
        for i in range(len(found.count))
    ]
    return FaultMapOut(
        bbox=[box.min_lon, box.min_lat, box.max_lon, box.max_lat],
        zoom=found.zoom,
        cell_deg=[found.cell_lon, found.cell_lat],
        faults_in_view=found.inside,
        clusters=clusters,
        points=[_point(svc, table, int(rows[i]), now) for i in found.points],
        as_of=from_ms(now),
    )


@router.get("/map/summary")
def fault_summary(request: Request, caller: Caller, svc: Svc) -> FaultSummaryOut:
    """Open faults by severity, overdue and without a place (a crew user: its crew's), and the targets."""
    table = _layer(request).table()
    now = svc.clock_ms()
    summary = summarize(table, table.mine(_crew(caller)), now)
    config = svc.report_config
    return FaultSummaryOut(
        open=summary.open,
        by_severity=dict(summary.by_severity),
        overdue=summary.overdue,
        unplaced=summary.unplaced,
        targets=TargetsOut(
            lighting=config.lighting_target,
            intact=config.intact_target,
            on_time_closure=config.closure.on_time_target,
        ),
        as_of=from_ms(now),
    )


@router.get("/map/positions")
def alert_positions(
    request: Request,
    caller: Caller,
    alert: Annotated[
        list[str],
        Query(max_length=_MAX_IDS, description=f"alert ids (repeat the parameter, at most {_MAX_IDS})"),
    ],
) -> PositionsOut:
    """Where these alerts' subjects are (for distances on the crew page); an alert that is not live, has
    no place or belongs to another crew is left out."""
    table = _layer(request).table()
    crew = _crew(caller)
    out = []
    for alert_id in dict.fromkeys(alert):
        row = table.row_of.get(alert_id)
        if row is None or np.isnan(table.lat[row]) or (crew is not None and table.alerts[row].crew != crew):
            continue
        out.append(PositionOut(alert_id=alert_id, lat=float(table.lat[row]), lon=float(table.lon[row])))
    return PositionsOut(positions=out)
