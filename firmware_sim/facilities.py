"""Generate the city's other assets: bridges with sensor nodes, pump stations with their flood points,
and waste bins, each with the gateways that carry their readings.
"""

from __future__ import annotations

import numpy as np

from firmware_sim.city import Bins, BridgeNodes, FloodGauges, Gateways, Lamps, PumpStations
from firmware_sim.layout import (
    DISTRICTS,
    DRAINAGE,
    ROLES,
    SANITATION,
    Roads,
    days,
    i32,
    make_ids,
    nearest_district,
    new_table,
    pick_road,
    to_json,
)
from firmware_sim.roadnames import bridge_names

LAMPS_PER_BRIDGE = 20_000
LAMPS_PER_STATION = 50_000
LAMPS_PER_BIN = 10
BINS_PER_GATEWAY = 500
BIN_SIZES_L = (120.0, 240.0, 660.0, 1100.0)
BIN_SIZE_SHARE = (0.2, 0.5, 0.2, 0.1)
BIN_HEIGHT_CM = (80.0, 100.0, 120.0, 130.0)  # sensor to bin floor, by size


def bridges(
    rng: np.random.Generator, lamps: int, gw_offset: int, crew: int
) -> tuple[BridgeNodes, Gateways, list[str], list[str]]:
    """Bridge sensor nodes along each bridge's deck, one gateway per bridge; also bridge ids and names."""
    count = max(1, round(lamps / LAMPS_PER_BRIDGE))
    names = bridge_names(count, rng)
    nodes_per = rng.integers(4, 9, size=count)
    mid_e, mid_n = rng.uniform(-6, 6, count), rng.uniform(-6, 6, count)
    length_km, angle = rng.uniform(0.8, 2.0, count), rng.uniform(0, np.pi, count)
    bridge = np.repeat(np.arange(count), nodes_per)
    first = np.cumsum(nodes_per) - nodes_per
    frac = (np.arange(len(bridge)) - first[bridge] + 0.5) / nodes_per[bridge] - 0.5
    east = mid_e[bridge] + frac * length_km[bridge] * np.cos(angle[bridge])
    north = mid_n[bridge] + frac * length_km[bridge] * np.sin(angle[bridge])
    crack = rng.choice([0.2, 0.15], size=count, p=[0.7, 0.3])  # environment A/B vs C/D
    ids = [f"BR-{b + 1:02d}" for b in range(count)]
    node_ids = np.array(
        [f"BRN-{b + 1:02d}-{k + 1}" for b, n in enumerate(nodes_per.tolist()) for k in range(n)],
        dtype=np.str_,
    )
    district = nearest_district(mid_e, mid_n)
    built = days(rng, count, unknown=0.0)
    nodes = new_table(
        BridgeNodes,
        node_ids,
        district[bridge],
        east,
        north,
        gateway=gw_offset + bridge,
        crew=np.full(len(bridge), crew),
        install_day=built[bridge],
        params=[to_json({"bridge": ids[b], "crack_limit_mm": float(crack[b])}) for b in bridge.tolist()],
        bridge=i32(bridge),
        crack_limit_mm=crack[bridge],
    )
    gateways = new_table(
        Gateways,
        np.array([f"GW-BR-{b + 1:02d}" for b in range(count)], dtype=np.str_),
        district,
        mid_e,
        mid_n,
        crew=np.full(count, crew),
        install_day=built,
    )
    return nodes, gateways, ids, names


def drainage(
    rng: np.random.Generator, lamps: int, roads: Roads, gw_offset: int
) -> tuple[PumpStations, FloodGauges, Gateways]:
    """Pump stations (own gateway each) and the flood gauges they serve (relayed by that gateway)."""
    count = max(1, round(lamps / LAMPS_PER_STATION))
    has_roads = np.bincount(roads.district, minlength=len(DISTRICTS)) > 0
    share = np.array([d.lamp_share for d in DISTRICTS]) * has_roads
    district = i32(rng.choice(len(DISTRICTS), size=count, p=share / share.sum()))
    centre = np.array([[d.east_km, d.north_km, d.half_size_km] for d in DISTRICTS])[district]
    east = centre[:, 0] + rng.uniform(-0.8, 0.8, count) * centre[:, 2]
    north = centre[:, 1] + rng.uniform(-0.8, 0.8, count) * centre[:, 2]
    pumps = rng.integers(2, 7, size=count)
    start = np.round(rng.uniform(2.0, 3.0, count), 2)
    stop = np.round(rng.uniform(0.6, 1.0, count), 2)
    overflow = np.round(rng.uniform(4.5, 6.0, count), 2)
    current = np.round(rng.uniform(40, 180, count) / 5) * 5
    flow = np.round(rng.uniform(800, 3000, count), -2)  # m³/h per pump
    ids = [f"PS-{s + 1:02d}" for s in range(count)]
    params = [
        to_json(
            {
                "pumps": int(pumps[s]),
                "start_level_m": float(start[s]),
                "stop_level_m": float(stop[s]),
                "overflow_level_m": float(overflow[s]),
                "rated_current_a": float(current[s]),
            }
        )
        for s in range(count)
    ]
    crew = district * len(ROLES) + DRAINAGE
    built = days(rng, count, unknown=0.0)
    road = pick_road(rng, roads, district)
    stations = new_table(
        PumpStations,
        np.array(ids, dtype=np.str_),
        district,
        east,
        north,
        road=road,
        gateway=gw_offset + np.arange(count),
        crew=crew,
        install_day=built,
        capacity=pumps * flow,
        params=params,
        pumps=i32(pumps),
        start_level_m=start,
        stop_level_m=stop,
        overflow_level_m=overflow,
        rated_current_a=current,
    )
    per = rng.integers(2, 6, size=count)
    station = np.repeat(np.arange(count), per)
    first = np.cumsum(per) - per
    gauge_ids = np.array(
        [f"FG-{s + 1:02d}-{k - first[s] + 1}" for k, s in enumerate(station.tolist())], dtype=np.str_
    )
    gauges = new_table(
        FloodGauges,
        gauge_ids,
        district[station],
        east[station] + rng.normal(0, 0.8, len(station)),
        north[station] + rng.normal(0, 0.8, len(station)),
        road=pick_road(rng, roads, district[station]),
        gateway=gw_offset + station,
        crew=crew[station],
        install_day=days(rng, len(station)),
        params=[to_json({"station": ids[s]}) for s in station.tolist()],
        station=i32(station),
    )
    gateways = new_table(
        Gateways,
        np.array([f"GW-PS-{s + 1:02d}" for s in range(count)], dtype=np.str_),
        district,
        east,
        north,
        road=road,
        crew=crew,
        install_day=built,
    )
    return stations, gauges, gateways


def sanitation(rng: np.random.Generator, lamp_table: Lamps, gw_offset: int) -> tuple[Bins, Gateways]:
    """Bins near random lamps (so on real roads), one gateway per district's run of up to 500 bins."""
    lamps = len(lamp_table)
    count = max(5, round(lamps / LAMPS_PER_BIN))
    near = np.sort(rng.integers(0, lamps, size=count))  # lamps are ordered by district
    east = lamp_table.lon[near] + rng.normal(0, 0.008, count)
    north = lamp_table.lat[near] + rng.normal(0, 0.008, count)
    district = lamp_table.district[near]
    size = rng.choice(len(BIN_SIZES_L), size=count, p=BIN_SIZE_SHARE)
    height = np.asarray(BIN_HEIGHT_CM)[size]
    blind = np.round(rng.uniform(20, 30, count))
    rank = np.arange(count) - np.searchsorted(district, district)  # position within the district
    chunk = rank // BINS_PER_GATEWAY
    key = district.astype(np.int64) * (count + 1) + chunk
    gw_keys, gateway = np.unique(key, return_inverse=True)
    crew = district * len(ROLES) + SANITATION
    bins = new_table(
        Bins,
        make_ids("BIN-", count, max(5, len(str(count)))),
        district,
        east,
        north,
        road=lamp_table.road[near],
        gateway=gw_offset + gateway,
        crew=crew,
        install_day=days(rng, count),
        capacity=np.asarray(BIN_SIZES_L)[size],
        params=[
            to_json({"blind_zone_cm": float(b), "empty_distance_cm": float(h)})
            for h, b in zip(height.tolist(), blind.tolist(), strict=True)
        ],
        empty_distance_cm=height,
        blind_zone_cm=blind,
    )
    n_gw = len(gw_keys)
    weights = np.bincount(gateway, minlength=n_gw)
    gw_district = (gw_keys // (count + 1)).astype(np.int32)
    gateways = new_table(
        Gateways,
        make_ids("GW-BIN-", n_gw, 3),
        gw_district,
        np.bincount(gateway, weights=east, minlength=n_gw) / weights,
        np.bincount(gateway, weights=north, minlength=n_gw) / weights,
        crew=gw_district * len(ROLES) + SANITATION,
        install_day=days(rng, n_gw, unknown=0.0),
    )
    return bins, gateways
