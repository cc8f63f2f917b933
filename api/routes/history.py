"""History: one field of one device over a bounded range, downsampled to at most the points asked for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from api import NotFound, Unprocessable
from api.influx_read import field_of
from api.roles import V1
from api.routes import GUARDED, problems
from api.schemas import ID_REGEX, HistoryOut, HistoryPoint
from api.security import Caller, Svc
from api.windows import DAY_MS, HOUR_MS, SECOND_MS, from_ms, history_windows, time_range
from devices.kinds import FIELDS, DeviceKind

router = APIRouter(prefix=V1, tags=["history"], responses={**GUARDED, **problems(404)})


@router.get("/history/{device_id}/{field}")
def history(
    device_id: Annotated[str, Path(pattern=f"^{ID_REGEX}$")],
    field: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
    _caller: Caller,
    svc: Svc,
    start: Annotated[
        AwareDatetime | None, Query(description="default: end minus history_default_range_h")
    ] = None,
    end: Annotated[AwareDatetime | None, Query(description="default: now")] = None,
    points: Annotated[int | None, Query(ge=1, description="at most this many windows (default 500)")] = None,
) -> HistoryOut:
    """Mean, minimum and maximum of the field per window; the window is chosen from the points asked for
    (at least 1 s) and windows without readings are left out. Range and points are capped (422 beyond)."""
    asset = svc.registry.get(device_id)
    if asset is None:
        raise NotFound(f"no device {device_id} in the registry")
    try:
        kind = DeviceKind(asset.kind)
    except ValueError:
        raise Unprocessable(f"{device_id} is a {asset.kind}: it reports no fields of its own") from None
    name, _ = field_of(kind, field)
    s = svc.settings
    rng = time_range(
        start,
        end,
        now_ms=svc.clock_ms(),
        default_ms=round(s.history_default_range_h * HOUR_MS),
        max_ms=round(s.history_max_range_days * DAY_MS),
    )
    windows = history_windows(rng, points or s.history_default_points, s.history_max_points)
    stats = svc.reader.history(kind, device_id, name, windows)
    spec = FIELDS[kind].get(name)
    return HistoryOut(
        device=device_id,
        kind=kind.value,
        field=name,
        unit=spec.unit if spec is not None else "",
        start=from_ms(rng.start_ms),
        end=from_ms(rng.end_ms),
        window_s=windows.width_ms / SECOND_MS,
        points=[
            HistoryPoint(start=from_ms(p.start_ms), count=p.count, mean=p.mean, min=p.min, max=p.max)
            for p in stats
        ],
    )
