"""Where a new device goes in the registry: its position, and the road and circuit of its neighbour.

A technician at a pole stands beside poles that are already registered: the nearest asset of the same
kind within ``max_m`` lends its district, road, road class, grid cell, circuit, cabinet and crew, and the
technician overrides any of them. The position is the one the technician gives, else the device's own
GNSS fix. Pure: assets in, an Asset (or the list of what is missing) out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields

from devices.assets import Asset
from devices.commissioning.config import Position
from devices.kinds import DeviceKind

_EARTH_RADIUS_M = 6_371_000.0
#: Poles stand 25 to 40 m apart on a city road; 150 m still finds the same road past a junction.
DEFAULT_NEIGHBOUR_M = 150.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementHints:
    """What the technician said; None means "not given" (an empty string means "empty")."""

    district: str | None = None
    road: str | None = None
    road_class: str | None = None
    grid_cell: str | None = None
    circuit: str | None = None
    cabinet: str | None = None
    crew: str | None = None
    lat: float | None = None
    lon: float | None = None

    def position(self, gnss: Position | None) -> Position | None:
        if self.lat is not None and self.lon is not None:
            return Position(self.lat, self.lon)
        return gnss


def distance_m(a: Position, b: Position) -> float:
    """Equirectangular distance: exact to a centimetre over the few hundred metres it is used for."""
    lat = math.radians((a.lat + b.lat) / 2)
    dx = math.radians(b.lon - a.lon) * math.cos(lat)
    dy = math.radians(b.lat - a.lat)
    return _EARTH_RADIUS_M * math.hypot(dx, dy)


def nearest(
    position: Position, assets: Iterable[Asset], kind: DeviceKind, max_m: float = DEFAULT_NEIGHBOUR_M
) -> Asset | None:
    """The nearest asset of ``kind`` within ``max_m`` of ``position`` (streamed: one pass, no list)."""
    best: Asset | None = None
    best_m = max_m
    # A cheap latitude window first: most of a city is far more than max_m away in latitude alone.
    window = math.degrees(max_m / _EARTH_RADIUS_M)
    for asset in assets:
        if asset.kind != kind or abs(asset.lat - position.lat) > window:
            continue
        d = distance_m(position, Position(asset.lat, asset.lon))
        if d <= best_m:
            best, best_m = asset, d
    return best


_TEXT_FIELDS = tuple(f.name for f in fields(PlacementHints) if f.name not in ("lat", "lon"))


def missing(
    kind: DeviceKind, hints: PlacementHints, gnss: Position | None, neighbour: Asset | None
) -> tuple[str, ...]:
    """The placement fields still needed to register the device (``lat``, ``lon``, ``district``, ...)."""
    needed: list[str] = []
    if hints.position(gnss) is None:
        needed += ["lat", "lon"]
    if hints.district is None and neighbour is None:
        needed.append("district")
    if kind is DeviceKind.LAMP and hints.road_class is None and neighbour is None:
        needed.append("road_class")
    return tuple(needed)


def new_asset(
    device_id: str,
    kind: DeviceKind,
    hints: PlacementHints,
    gnss: Position | None,
    neighbour: Asset | None,
) -> Asset:
    """The registry row of a new device, out of service until its first reading is stored.

    ``AssetError`` (devices) when a value is not acceptable, e.g. a district that is not a slug.
    Call ``missing`` first: this assumes a position and a district exist.
    """
    position = hints.position(gnss)
    assert position is not None, "missing() lists the position"
    text: dict[str, str] = {}
    for name in _TEXT_FIELDS:
        given = getattr(hints, name)
        text[name] = given if given is not None else (getattr(neighbour, name) if neighbour else "")
    return Asset(
        id=device_id,
        kind=kind.value,
        district=text["district"],
        road=text["road"],
        road_class=text["road_class"],
        grid_cell=text["grid_cell"],
        circuit=text["circuit"],
        cabinet=text["cabinet"],
        crew=text["crew"],
        lat=position.lat,
        lon=position.lon,
        in_service=False,
    )
