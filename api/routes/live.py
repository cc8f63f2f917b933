"""Live state: the latest readings and the status of a device, of a lighting circuit, of a pump station."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Final

from fastapi import APIRouter, Path

from analytics.findings import Finding
from api import NotFound
from api.asset_filters import AssetFilter
from api.deps import Services
from api.live_status import count_status, device_status, pumps, station_fields
from api.roles import V1
from api.routes import GUARDED, problems
from api.schemas import (
    ID_REGEX,
    CircuitLive,
    DeviceLive,
    FindingOut,
    GaugeLive,
    LampLive,
    PumpOut,
    Reading,
    StationLive,
    when,
)
from api.security import Caller, Svc
from api.windows import DAY_MS, from_ms
from devices.assets import GATEWAY, Asset
from devices.kinds import DeviceKind

router = APIRouter(prefix=V1, tags=["live"], responses={**GUARDED, **problems(404)})

DeviceId = Annotated[str, Path(pattern=f"^{ID_REGEX}$")]
CircuitId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
_LAMP_FIELDS: Final = ("active_power", "lamp_on", "dim_level")
_FUTURE_MS: Final = DAY_MS  # device clocks run ahead (the ingest accepts 5 min; a day is generous)
Found = tuple[Mapping[str, str], Finding]


def _finding(tags: Mapping[str, str], f: Finding) -> FindingOut:
    number = [v if math.isfinite(v) else None for v in (f.value, f.threshold)]  # NaN: not given
    return FindingOut(
        rule=f.rule,
        family=tags.get("family", ""),
        subject_kind=f.subject_kind,
        subject=f.subject,
        district=f.district,
        level=f.level,
        value=number[0],
        threshold=number[1],
        since=from_ms(f.since_ms),
        explanation=f.explanation,
        children=len(f.children),
    )


class _Window:
    def __init__(self, svc: Services) -> None:
        now = svc.clock_ms()
        self.hi = now + _FUTURE_MS
        self.readings_lo = now - round(svc.settings.live_lookback_days * DAY_MS)
        self.findings_lo = now - round(svc.settings.findings_lookback_days * DAY_MS)


def _open_on(found: Sequence[Found], subject: str, gateway: str = "") -> list[Found]:
    return [
        (tags, f)
        for tags, f in found
        if f.subject == subject or (gateway and f.subject == gateway and f.rule == "gateway_offline")
    ]


def _device_live(svc: Services, asset: Asset, w: _Window, found: Sequence[Found] | None = None) -> DeviceLive:
    readings: Mapping[str, object] = {}
    last_seen = None
    if asset.kind != GATEWAY:
        latest = svc.reader.latest(DeviceKind(asset.kind), asset.id, w.readings_lo, w.hi)
        readings, last_seen = latest.values, latest.last_seen_ms
    if found is None:
        subjects = [asset.id] + ([asset.gateway] if asset.gateway else [])
        found = svc.reader.open_findings(subjects, w.findings_lo, w.hi)
    mine = _open_on(found, asset.id, asset.gateway)
    return DeviceLive(
        device=asset.id,
        kind=asset.kind,
        district=asset.district,
        road=asset.road,
        circuit=asset.circuit,
        crew=asset.crew,
        status=device_status(last_seen, [f.rule for _, f in mine]),
        last_seen=when(last_seen),
        readings=_readings(readings),
        findings=[_finding(tags, f) for tags, f in mine],
    )


def _readings(values: Mapping[str, object]) -> dict[str, Reading]:
    return {k: v for k, v in sorted(values.items()) if isinstance(v, float | int | bool | str)}


@router.get("/live/devices/{device_id}")
def live_device(device_id: DeviceId, _caller: Caller, svc: Svc) -> DeviceLive:
    """A device's latest value of every field it reports, its open findings and its status."""
    asset = svc.registry.get(device_id)
    if asset is None:
        raise NotFound(f"no device {device_id} in the registry")
    return _device_live(svc, asset, _Window(svc))


@router.get("/live/circuits/{circuit_id}")
def live_circuit(circuit_id: CircuitId, _caller: Caller, svc: Svc) -> CircuitLive:
    """A lighting circuit: its cabinet, each lamp's power, switch state and status, and circuit findings."""
    limit = svc.settings.live_max_devices
    lamps = svc.assets.page(AssetFilter(kind=DeviceKind.LAMP.value, circuit=circuit_id), None, limit + 1)
    cabinets = svc.assets.page(AssetFilter(kind=DeviceKind.CABINET.value, circuit=circuit_id), None, 1)
    if not lamps and not cabinets:
        raise NotFound(f"no circuit {circuit_id!r} in the registry (no lamp or cabinet on it)")
    truncated = len(lamps) > limit
    lamps = lamps[:limit]
    w = _Window(svc)
    subjects = [circuit_id, *(c.id for c in cabinets), *(a.id for a in lamps)]
    gateways = sorted({a.gateway for a in (*lamps, *cabinets) if a.gateway})
    found = svc.reader.open_findings([*subjects, *gateways], w.findings_lo, w.hi)
    latest = svc.reader.latest_of(DeviceKind.LAMP, [a.id for a in lamps], _LAMP_FIELDS, w.readings_lo, w.hi)
    lamp_states = []
    for a in lamps:
        got = latest.get(a.id)
        values = got.values if got is not None else {}
        seen = got.last_seen_ms if got is not None else None
        rules = [f.rule for _, f in _open_on(found, a.id, a.gateway)]
        power, on, dim = (values.get(k) for k in _LAMP_FIELDS)
        lamp_states.append(
            LampLive(
                device=a.id,
                status=device_status(seen, rules),
                last_seen=when(seen),
                active_power=float(power) if isinstance(power, int | float) else None,
                lamp_on=on if isinstance(on, bool) else None,
                dim_level=int(dim) if isinstance(dim, int | float) and not isinstance(dim, bool) else None,
            )
        )
    first = (cabinets or lamps)[0]
    return CircuitLive(
        circuit=circuit_id,
        district=first.district,
        road=first.road,
        cabinet=_device_live(svc, cabinets[0], w, found) if cabinets else None,
        lamp_count=len(lamps) + int(truncated),
        truncated=truncated,
        counts=count_status(s.status for s in lamp_states),
        lamps=lamp_states,
        findings=[_finding(tags, f) for tags, f in found if f.subject == circuit_id],
    )


@router.get("/live/stations/{station_id}")
def live_station(station_id: DeviceId, _caller: Caller, svc: Svc) -> StationLive:
    """A drainage pump station: its own readings, each pump's, its open findings, and the water depth
    at the flood gauges it serves (a gauge's ``station`` parameter)."""
    asset = svc.registry.get(station_id)
    if asset is None or asset.kind != DeviceKind.PUMP_STATION.value:
        raise NotFound(f"no pump station {station_id} in the registry")
    w = _Window(svc)
    station = _device_live(svc, asset, w)
    readings = station.readings
    gauges = [
        g
        for g in svc.assets.page(
            AssetFilter(kind=DeviceKind.FLOOD_GAUGE.value, district=asset.district),
            None,
            svc.settings.live_max_devices,
        )
        if g.params.get("station") == station_id
    ]
    depth = svc.reader.latest_of(
        DeviceKind.FLOOD_GAUGE, [g.id for g in gauges], ("water_depth",), w.readings_lo, w.hi
    )
    gauge_found = svc.reader.open_findings([g.id for g in gauges], w.findings_lo, w.hi) if gauges else []
    gauge_states = []
    for g in gauges:
        got = depth.get(g.id)
        seen = got.last_seen_ms if got is not None else None
        value = got.values.get("water_depth") if got is not None else None
        rules = [f.rule for _, f in _open_on(gauge_found, g.id)]
        gauge_states.append(
            GaugeLive(
                device=g.id,
                status=device_status(seen, rules),
                last_seen=when(seen),
                water_depth=float(value) if isinstance(value, int | float) else None,
            )
        )
    return StationLive(
        station=station.model_copy(update={"readings": station_fields(readings)}),
        pumps=[PumpOut(number=p.number, readings=_readings(p.values)) for p in pumps(readings)],
        gauges=gauge_states,
    )
