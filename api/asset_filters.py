"""Asset search filters as SQL conditions on the registry's table, and the bounding box (pure: SQLAlchemy
expressions are values; nothing here touches a database).

Every filter is an equality on a registry column (bound parameters, never text built from the request)
or the bounding box, ``min_lon,min_lat,max_lon,max_lat`` in WGS 84 degrees (the GeoJSON ``bbox`` order,
RFC 7946 section 5). Pages are keyset pages by id: ``after`` is the last id of the previous page, so a
page costs the same at the millionth asset as at the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from api import Unprocessable
from devices.registry import assets_table


@dataclass(frozen=True, slots=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def parse_bbox(text: str) -> BBox:
    """``min_lon,min_lat,max_lon,max_lat``; ``Unprocessable`` says what is wrong."""
    parts = text.split(",")
    if len(parts) != 4:
        raise Unprocessable(f"bbox {text!r:.60} must be four numbers: min_lon,min_lat,max_lon,max_lat")
    try:
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError:
        raise Unprocessable(
            f"bbox {text!r:.60} must be four numbers: min_lon,min_lat,max_lon,max_lat"
        ) from None
    if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)):
        raise Unprocessable("bbox values must be finite numbers")
    if not (-180 <= min_lon <= max_lon <= 180):
        # A box across the antimeridian would need two; no city needs that.
        raise Unprocessable(
            f"bbox longitudes must satisfy -180 <= min_lon <= max_lon <= 180, got {text!r:.60}"
        )
    if not (-90 <= min_lat <= max_lat <= 90):
        raise Unprocessable(f"bbox latitudes must satisfy -90 <= min_lat <= max_lat <= 90, got {text!r:.60}")
    return BBox(min_lon, min_lat, max_lon, max_lat)


@dataclass(frozen=True, slots=True)
class AssetFilter:
    """Assets matching every field given (None: any)."""

    kind: str | None = None
    district: str | None = None
    road: str | None = None
    road_class: str | None = None
    grid_cell: str | None = None
    circuit: str | None = None
    cabinet: str | None = None
    gateway: str | None = None
    crew: str | None = None
    in_service: bool | None = None
    bbox: BBox | None = None


_EQUALITIES = tuple(f.name for f in fields(AssetFilter) if f.name != "bbox")


def conditions(f: AssetFilter) -> list[sa.ColumnElement[bool]]:
    t = assets_table
    where: list[sa.ColumnElement[bool]] = [
        t.c[name] == getattr(f, name) for name in _EQUALITIES if getattr(f, name) is not None
    ]
    if f.bbox is not None:
        b = f.bbox
        where += [t.c.lon.between(b.min_lon, b.max_lon), t.c.lat.between(b.min_lat, b.max_lat)]
    return where


def page_query(f: AssetFilter, after: str | None, limit: int) -> sa.Select[Any]:
    """One page of assets by id: those after ``after`` (exclusive), at most ``limit``."""
    t = assets_table
    stmt = sa.select(t).where(*conditions(f)).order_by(t.c.id).limit(limit)
    if after is not None:
        stmt = stmt.where(t.c.id > after)
    return stmt
