"""Generate a Wuhan-like city from a seed: districts, roads, lamps on circuits, and the other assets.

Everything is drawn from one ``numpy.random.Generator``, in a fixed order, so a seed always gives the same
city. Positions are laid out in kilometres east / north of the centre and converted to WGS 84 at the end.
Nothing here loops per lamp: a million lamps take a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_sim.city import NO_INDEX, Cabinets, City, FloatArray, Gateways, IntArray, Lamps
from firmware_sim.facilities import bridges, drainage, sanitation
from firmware_sim.layout import (
    DISTRICTS,
    FIRST_DAY,
    LAST_DAY,
    ROLES,
    WUHAN,
    Plane,
    Roads,
    grid_cells,
    i32,
    make_ids,
    new_table,
)
from firmware_sim.roadnames import road_names

__all__ = ["WUHAN", "generate_city"]

LAMP_SPACING_M = 30.0
ROAD_CLASS_SHARE = (0.12, 0.25, 0.50, 0.13)  # trunk, secondary, branch, public_place (of roads)
LAMPS_PER_ROAD = ((120, 300), (50, 150), (12, 60), (8, 40))
RATED_POWER_W = ((150.0, 200.0, 250.0), (100.0, 120.0, 150.0), (60.0, 80.0, 100.0), (60.0, 80.0, 100.0))
LAMPS_PER_CIRCUIT = (50, 150)


@dataclass(slots=True)
class _LampLayout:
    east: FloatArray
    north: FloatArray
    road: IntArray
    district: IntArray


def _district_roads(rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
    """Road classes and lamp counts of roads holding ``n`` lamps in total."""
    if n == 0:
        return i32([]), i32([])
    mean = sum(p * (lo + hi) / 2 for p, (lo, hi) in zip(ROAD_CLASS_SHARE, LAMPS_PER_ROAD, strict=True))
    draws = int(1.5 * n / mean) + 8
    cls = rng.choice(4, size=draws, p=ROAD_CLASS_SHARE)
    bounds = np.asarray(LAMPS_PER_ROAD)
    counts = rng.integers(bounds[cls, 0], bounds[cls, 1] + 1)
    total = np.cumsum(counts)
    last = int(np.searchsorted(total, n))
    counts = counts[: last + 1].copy()
    counts[last] -= int(total[last]) - n
    return i32(cls[: last + 1]), i32(counts)


def _lamp_layout(rng: np.random.Generator, lamps: int) -> tuple[Roads, _LampLayout, IntArray]:
    """Roads and lamp positions (km), lamps ordered by district and road; also lamps per road."""
    per_district = rng.multinomial(lamps, [d.lamp_share for d in DISTRICTS])
    road_district, road_cls, road_counts = [], [], []
    for d, n in enumerate(per_district.tolist()):
        cls, counts = _district_roads(rng, n)
        road_district.append(np.full(len(cls), d))
        road_cls.append(cls)
        road_counts.append(counts)
    district = i32(np.concatenate(road_district))
    cls = i32(np.concatenate(road_cls))
    counts = i32(np.concatenate(road_counts))
    roads = Roads(district, cls, road_names(cls, rng))
    centre = np.array([[d.east_km, d.north_km, d.half_size_km] for d in DISTRICTS])[district]
    start_e = centre[:, 0] + rng.uniform(-1, 1, len(cls)) * centre[:, 2]
    start_n = centre[:, 1] + rng.uniform(-1, 1, len(cls)) * centre[:, 2]
    # Trunk and secondary roads run roughly east-west or north-south; smaller ones any way.
    grid_angle = rng.integers(0, 2, len(cls)) * (np.pi / 2) + rng.normal(0, 0.15, len(cls))
    angle = np.where(cls <= 1, grid_angle, rng.uniform(0, np.pi, len(cls)))
    road = np.repeat(np.arange(len(cls), dtype=np.int32), counts)
    first = np.cumsum(counts) - counts
    along_km = ((np.arange(lamps) - first[road]) * LAMP_SPACING_M + rng.normal(0, 1.0, lamps)) / 1000.0
    east = start_e[road] + along_km * np.cos(angle[road])
    north = start_n[road] + along_km * np.sin(angle[road])
    return roads, _LampLayout(east, north, road, district[road]), counts


def _circuits(rng: np.random.Generator, district: IntArray) -> IntArray:
    """Circuit number of each lamp: runs of 50-150 consecutive lamps within a district."""
    circuit = np.empty(len(district), dtype=np.int32)
    offset = 0
    starts: list[int] = (
        np.flatnonzero(np.r_[True, district[1:] != district[:-1]]).tolist() if len(district) else []
    )
    ends = [*starts[1:], len(district)]
    for lo, hi in zip(starts, ends, strict=True):
        n = int(hi - lo)
        sizes = rng.integers(
            LAMPS_PER_CIRCUIT[0], LAMPS_PER_CIRCUIT[1] + 1, size=n // LAMPS_PER_CIRCUIT[0] + 2
        )
        local = np.searchsorted(np.cumsum(sizes), np.arange(n), side="right")
        last = int(local[-1])
        if last > 0 and np.count_nonzero(local == last) < LAMPS_PER_CIRCUIT[0] // 2:
            local[local == last] = last - 1  # no stub circuit at the end of a district
        circuit[lo:hi] = local + offset
        offset += int(local[-1]) + 1
    return circuit


def _lighting(
    rng: np.random.Generator, lamps: int, roles: int
) -> tuple[Roads, Lamps, Cabinets, Gateways, list[str]]:
    roads, layout, counts = _lamp_layout(rng, lamps)
    watts = np.asarray(RATED_POWER_W)[roads.cls, rng.integers(0, 3, len(roads.cls))]
    road_day = rng.integers(FIRST_DAY, LAST_DAY, size=len(roads.cls))
    install = np.repeat(road_day, counts) + rng.integers(0, 30, lamps)
    install = np.where(rng.random(lamps) < 0.02, NO_INDEX, install)
    circuit = _circuits(rng, layout.district)
    width = max(6, len(str(lamps)))
    lamp_table = new_table(
        Lamps,
        make_ids("LMP-", lamps, width),
        layout.district,
        layout.east,
        layout.north,
        road=layout.road,
        gateway=circuit,  # concentrator k owns circuit k
        crew=layout.district * roles,
        install_day=install,
        rated_power_w=watts[layout.road],
        params=["{}"] * lamps,
        circuit=circuit,
    )
    n_circuits = int(circuit[-1]) + 1
    first = np.flatnonzero(np.r_[True, circuit[1:] != circuit[:-1]])
    cwidth = max(4, len(str(n_circuits)))
    circuit_ids = [f"CIR-{i:0{cwidth}d}" for i in range(1, n_circuits + 1)]
    offset_e, offset_n = rng.normal(0, 0.01, n_circuits), rng.normal(0, 0.01, n_circuits)
    common = {
        "road": layout.road[first],
        "crew": layout.district[first] * roles,
        "install_day": np.where(install[first] < 0, NO_INDEX, install[first] - 10),
    }
    cabinets = new_table(
        Cabinets,
        make_ids("CAB-", n_circuits, cwidth),
        layout.district[first],
        layout.east[first] + offset_e,
        layout.north[first] + offset_n,
        gateway=np.arange(n_circuits),
        rated_power_w=np.bincount(circuit, weights=lamp_table.rated_power_w),
        circuit=np.arange(n_circuits),
        **common,
    )
    gateways = new_table(
        Gateways,
        make_ids("GW-C", n_circuits, cwidth),
        layout.district[first],
        layout.east[first] + offset_e,
        layout.north[first] + offset_n,
        **common,
    )
    return roads, lamp_table, cabinets, gateways, circuit_ids


def _concat_gateways(parts: list[Gateways]) -> Gateways:
    return Gateways(
        ids=np.concatenate([p.ids for p in parts]),
        district=i32(np.concatenate([p.district for p in parts])),
        road=i32(np.concatenate([p.road for p in parts])),
        grid=i32(np.concatenate([p.grid for p in parts])),
        lat=np.concatenate([p.lat for p in parts]),
        lon=np.concatenate([p.lon for p in parts]),
        gateway=i32(np.concatenate([p.gateway for p in parts])),
        crew=i32(np.concatenate([p.crew for p in parts])),
        install_day=i32(np.concatenate([p.install_day for p in parts])),
        rated_power_w=np.concatenate([p.rated_power_w for p in parts]),
        capacity=np.concatenate([p.capacity for p in parts]),
        in_service=np.concatenate([p.in_service for p in parts]),
        params=[text for p in parts for text in p.params],
    )


def generate_city(lamps: int, seed: int, *, center: tuple[float, float] = WUHAN) -> City:
    """A deterministic Wuhan-like city of ``lamps`` lamps (and cabinets, bridges, stations, gauges, bins)."""
    if lamps < 1:
        raise ValueError(f"a city needs at least one lamp, not {lamps}")
    rng = np.random.default_rng(seed)
    roads, lamp_table, cabinets, concentrators, circuit_ids = _lighting(rng, lamps, len(ROLES))
    bridge_crew = len(DISTRICTS) * len(ROLES)
    nodes, bridge_gws, bridge_ids, bridge_titles = bridges(rng, lamps, len(concentrators), bridge_crew)
    offset = len(concentrators) + len(bridge_gws)
    stations, gauges, station_gws = drainage(rng, lamps, roads, offset)
    bins, bin_gws = sanitation(rng, lamp_table, offset + len(station_gws))
    # Each bridge's nodes carry the bridge's name as their road (bridges are roads over water).
    bridge_road0 = len(roads.names)
    nodes.road = i32(bridge_road0 + nodes.bridge)
    bridge_gws.road = i32(bridge_road0 + np.arange(len(bridge_ids)))
    city = City(
        center=center,
        districts=tuple(d.slug for d in DISTRICTS),
        roads=(*roads.names, *bridge_titles),
        road_class=np.concatenate([roads.cls, np.full(len(bridge_ids), NO_INDEX)]).astype(np.int8),
        grid_cells=(),
        crews=(*(f"{d.slug}-{role}" for d in DISTRICTS for role in ROLES), "bridges"),
        circuits=tuple(circuit_ids),
        bridges=tuple(bridge_ids),
        gateways=_concat_gateways([concentrators, bridge_gws, station_gws, bin_gws]),
        lamps=lamp_table,
        cabinets=cabinets,
        bridge_nodes=nodes,
        stations=stations,
        gauges=gauges,
        bins=bins,
    )
    plane = Plane(center)
    for table in city.tables().values():
        table.lat, table.lon = plane.lat(table.lat), plane.lon(table.lon)
    grid_cells(city)
    return city
