"""Shared geometry and table helpers for generating a city: districts, the local plane, id and table
builders, grid cells. Positions are kilometres east / north of the centre until ``Plane`` converts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson

from firmware_sim.city import NO_INDEX, Assets, City, FloatArray, IntArray

WUHAN = (30.5928, 114.3055)


@dataclass(frozen=True, slots=True)
class District:
    slug: str
    east_km: float  # centre of the district relative to the city centre
    north_km: float
    half_size_km: float
    lamp_share: float


DISTRICTS = (
    District("jiangan", 3.0, 5.0, 3.5, 0.15),
    District("jianghan", -1.0, 3.0, 2.5, 0.10),
    District("qiaokou", -5.0, 2.0, 2.5, 0.10),
    District("hanyang", -6.0, -5.0, 4.0, 0.14),
    District("wuchang", 3.0, -3.0, 3.5, 0.16),
    District("qingshan", 12.0, 3.0, 3.0, 0.10),
    District("hongshan", 8.0, -10.0, 6.0, 0.25),
)

GRID_CELL_M = 500.0
KM_PER_DEG_LAT = 110.574
FIRST_DAY = (np.datetime64("2008-01-01") - np.datetime64("1970-01-01")).astype(int)
LAST_DAY = (np.datetime64("2025-12-31") - np.datetime64("1970-01-01")).astype(int)

A = TypeVar("A", bound=Assets)


class Plane:
    """Kilometres east / north of the centre to degrees."""

    def __init__(self, center: tuple[float, float]) -> None:
        self.lat0, self.lon0 = center
        self.km_per_deg_lon = 111.320 * math.cos(math.radians(self.lat0))

    def lat(self, north_km: FloatArray) -> FloatArray:
        return np.round(self.lat0 + north_km / KM_PER_DEG_LAT, 6)

    def lon(self, east_km: FloatArray) -> FloatArray:
        return np.round(self.lon0 + east_km / self.km_per_deg_lon, 6)


def make_ids(prefix: str, count: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, count + 1)], dtype=np.str_)


def i32(values: Any) -> IntArray:
    return np.asarray(values, dtype=np.int32)


def new_table(
    cls: type[A], ids: np.ndarray, district: Any, east: FloatArray, north: FloatArray, **columns: Any
) -> A:
    """An Assets table with defaults for the columns not given; positions still in km (converted later)."""
    n = len(ids)
    defaults: dict[str, Any] = {
        "road": np.full(n, NO_INDEX),
        "gateway": np.full(n, NO_INDEX),
        "crew": np.full(n, NO_INDEX),
        "install_day": np.full(n, NO_INDEX),
        "rated_power_w": np.full(n, np.nan),
        "capacity": np.full(n, np.nan),
        "in_service": np.ones(n, dtype=np.bool_),
        "params": ["{}"] * n,
    }
    defaults.update(columns)
    for name in ("road", "gateway", "crew", "install_day"):
        defaults[name] = i32(defaults[name])
    return cls(
        ids=ids,
        district=i32(np.broadcast_to(district, (n,))),
        grid=np.zeros(n, dtype=np.int32),
        lat=np.asarray(north, dtype=np.float64),  # km until _place converts them
        lon=np.asarray(east, dtype=np.float64),
        **defaults,
    )


def days(rng: np.random.Generator, n: int, unknown: float = 0.02) -> IntArray:
    days = rng.integers(FIRST_DAY, LAST_DAY, size=n)
    return i32(np.where(rng.random(n) < unknown, NO_INDEX, days))


@dataclass(slots=True)
class Roads:
    district: IntArray
    cls: IntArray
    names: list[str]


ROLES = ("lighting", "drainage", "sanitation")
LIGHTING, DRAINAGE, SANITATION = range(3)


def to_json(value: dict[str, Any]) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def nearest_district(east: FloatArray, north: FloatArray) -> IntArray:
    centres = np.array([[d.east_km, d.north_km] for d in DISTRICTS])
    dist = (east[:, None] - centres[None, :, 0]) ** 2 + (north[:, None] - centres[None, :, 1]) ** 2
    return i32(np.argmin(dist, axis=1))


def pick_road(rng: np.random.Generator, roads: Roads, district: IntArray) -> IntArray:
    """A random road of each asset's district (any road when the district has none)."""
    picked = np.empty(len(district), dtype=np.int32)
    for i, d in enumerate(district.tolist()):
        own = np.flatnonzero(roads.district == d)
        pool = own if len(own) else np.arange(len(roads.district))
        picked[i] = pool[rng.integers(0, len(pool))]
    return picked


def grid_cells(city: City) -> None:
    """Assign every asset its 500 m grid cell ``G-<district>-<i>-<j>`` (i east, j north of the SW corner)."""
    tables = list(city.tables().values())
    lat = np.concatenate([t.lat for t in tables])
    lon = np.concatenate([t.lon for t in tables])
    district = np.concatenate([t.district for t in tables]).astype(np.int64)
    plane = Plane(city.center)
    i = np.floor((lon - lon.min()) * plane.km_per_deg_lon * 1000 / GRID_CELL_M).astype(np.int64)
    j = np.floor((lat - lat.min()) * KM_PER_DEG_LAT * 1000 / GRID_CELL_M).astype(np.int64)
    keys, inverse = np.unique((district << 40) | (i << 20) | j, return_inverse=True)
    city.grid_cells = tuple(
        f"G-{city.districts[k >> 40]}-{(k >> 20) & 0xFFFFF}-{k & 0xFFFFF}" for k in keys.tolist()
    )
    start = 0
    for t in tables:
        t.grid = i32(inverse[start : start + len(t)])
        start += len(t)
