"""The benchmark city behind the API (``bench/api.py``): the registry, and what InfluxDB holds after a
week of running it -- the KPI series the analytics worker writes and the telemetry of a sample of lamps.

Everything goes through the code that writes it in production: the registry is the simulator's
inventory (``firmware_sim``) imported with ``devices.registry_files.import_file``; KPI points are
``analytics.rate_scopes.ScopeCounts`` counts of the real topology written by ``analytics.lineproto.
kpi_lines`` (partition ``all``, measurement ``kpi``); lamp readings are ``ingest.lineproto.reading_line``.

What a full week of every scope at the worker's 60 s would be, and what is loaded instead (a million
lamps has 14,112 roads and 5,155 grid cells: 19,279 series a minute, 194 M points a week, far more than
this machine loads in minutes):

- city, districts and road classes: every 60 s, the whole range (as the worker writes them);
- a sample of roads and grid cells (the ones the clients ask for): every 60 s, the whole range;
- every other road and grid cell: one point an hour, so the series (the index InfluxDB searches) are
  all there while the points are 60 times fewer.

The counts move minute by minute: a few random draws of dark, unknown and broken lamps (about 1 % each)
are counted once and cycled through; by day nothing is due (the city centre's astronomical clock,
``analytics.schedule.CityNights``). Lamp telemetry: every lamp of the sample reports every 60 s at its
own phase within the minute, all its fields, on by night and off by day.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics.engine import KpiTable
from analytics.lineproto import kpi_lines
from analytics.rate_scopes import SCOPES, ScopeCounts, lamp_codes
from analytics.schedule import CityNights, ScheduleConfig
from analytics.topology import CITY, DISTRICT, GRID, ROAD, ROAD_CLASS, Topology, build_topology
from devices.contract import FieldValue, Reading
from devices.kinds import DeviceKind
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.inventory import generate_city, write_inventory
from ingest.influx import InfluxV1
from ingest.lineproto import reading_line

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
PARTITION = "all"  # the analytics worker's default partition: one worker for the whole city
EVERY_MINUTE = (CITY, DISTRICT, ROAD_CLASS)  # scopes written in full at the worker's cadence
SAMPLED = (ROAD, GRID)  # scopes written in full for a sample, hourly for the rest
_VARIANTS = 6  # random draws of the night's counts, cycled minute by minute
_LINES_PER_BODY = 5000  # the ingest's batch size (CITYWATCH_INGEST_BATCH_MAX_LINES)


def build_registry(folder: Path, lamps: int, seed: int) -> str:
    """The simulated city of ``lamps`` lamps as a SQLite registry in ``folder`` (its URL)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "city.csv"
    write_inventory(generate_city(lamps, seed), csv_path)
    url = f"sqlite:///{folder / 'registry.db'}"
    with Registry(url) as registry:
        summary = import_file(registry, csv_path)
    csv_path.unlink()
    if summary.rejected:
        raise RuntimeError(f"the registry refused {summary.rejected} rows: {summary.reasons[:3]}")
    return url


def load_topology(registry_url: str) -> Topology:
    """The topology as the analytics worker builds it (``citywatch.services.analytics_inputs``)."""
    with Registry(registry_url) as registry, contextlib.closing(registry.iter_assets()) as assets:
        return build_topology(assets)


@dataclass(frozen=True, slots=True)
class Samples:
    """What the clients ask for: roads and grid cells kept at 60 s, districts, lamps with telemetry."""

    roads: tuple[str, ...]
    grid_cells: tuple[str, ...]
    districts: tuple[str, ...]
    lamps: tuple[str, ...]
    crews: tuple[str, ...]


def pick_samples(topology: Topology, roads: int, grid_cells: int, lamps: int, seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    table = topology.table(DeviceKind.LAMP)
    # Roads and cells that have lamps (a KPI series with something in it), chosen at random.
    lit_roads = np.unique(table.road[table.road >= 0])
    lit_cells = np.unique(table.grid[table.grid >= 0])
    road_pick = rng.choice(lit_roads, min(roads, len(lit_roads)), replace=False)
    cell_pick = rng.choice(lit_cells, min(grid_cells, len(lit_cells)), replace=False)
    lamp_pick = np.linspace(0, len(table) - 1, min(lamps, len(table))).astype(np.int64)
    crews = sorted({str(topology.crews[c]) for c in np.unique(table.crew[table.crew >= 0])})
    return Samples(
        roads=tuple(topology.names(ROAD, road_pick)),
        grid_cells=tuple(topology.names(GRID, cell_pick)),
        districts=topology.districts,
        lamps=tuple(table.id_text(lamp_pick)),
        crews=tuple(crews),
    )


# -- KPI series ---------------------------------------------------------------------------------------------

Fields = dict[str, dict[str, np.ndarray]]


def _scope_counts(
    topology: Topology, counts: ScopeCounts, rng: np.random.Generator, *, night: bool
) -> Fields:
    """Every scope's KPI fields for one random state of the city (``ScopeCounts.fields``)."""
    lamps = topology.table(DeviceKind.LAMP)
    n = len(lamps)
    due = lamps.in_service & night
    draw = rng.random(n)
    unknown = due & (draw < 0.004)  # controllers offline (DOMAIN.md: unknown, never silently lit)
    dark = due & ~unknown & (draw > 0.99)
    broken = rng.random(n) < 0.01
    code = lamp_codes(lamps.in_service, due, dark, unknown, broken)
    cabinets = rng.random(topology.count(DeviceKind.CABINET.value)) < 0.01
    return counts.fields(code, cabinets, rng.random(len(topology.circuits)) < 0.005)


_Part = tuple[str, tuple[str, ...], dict[str, np.ndarray]]  # scope, ids, fields


@dataclass(frozen=True, slots=True)
class _KpiState:
    """One state of the city's counts, split into what is written every minute and every hour."""

    minute: tuple[_Part, ...]
    hour: tuple[_Part, ...]


def _split(topology: Topology, fields: Fields, samples: Samples) -> _KpiState:
    minute: list[_Part] = []
    hour: list[_Part] = []
    for scope in SCOPES:
        ids = topology.names(scope, np.arange(len(next(iter(fields[scope].values())))))
        if scope in EVERY_MINUTE:
            minute.append((scope, tuple(ids), fields[scope]))
            continue
        wanted = set(samples.roads if scope == ROAD else samples.grid_cells)
        keep = np.array([i in wanted for i in ids], dtype=np.bool_)
        for rows, out in ((keep, minute), (~keep, hour)):
            out.append(
                (
                    scope,
                    tuple(np.asarray(ids, dtype=object)[rows].tolist()),
                    {k: v[rows] for k, v in fields[scope].items()},
                )
            )
    return _KpiState(tuple(minute), tuple(hour))


def kpi_bodies(topology: Topology, samples: Samples, end_ms: int, days: float, seed: int) -> Iterator[bytes]:
    """The ``kpi`` points of ``days`` up to ``end_ms`` as line protocol bodies (see the module doc)."""
    rng = np.random.default_rng(seed)
    cabinets = np.flatnonzero(topology.table(DeviceKind.CABINET).in_service).astype(np.int32)
    counts = ScopeCounts(topology, cabinets)
    nights = [
        _split(topology, _scope_counts(topology, counts, rng, night=True), samples) for _ in range(_VARIANTS)
    ]
    day = _split(topology, _scope_counts(topology, counts, rng, night=False), samples)
    clock = CityNights.for_topology(topology, ScheduleConfig())
    start_ms = end_ms - round(days * DAY_MS)
    lines: list[str] = []
    for t in range(start_ms, end_ms, MINUTE_MS):
        night = clock.night(t)
        state = nights[(t // MINUTE_MS) % _VARIANTS] if night.on_ms <= t < night.off_ms else day
        tables = state.minute + (state.hour if t % HOUR_MS == 0 else ())
        for scope, ids, fields in tables:
            lines.extend(kpi_lines(KpiTable("kpi", scope, ids, fields, t), PARTITION))
        if len(lines) >= _LINES_PER_BODY:
            yield "\n".join(lines).encode()
            lines = []
    if lines:
        yield "\n".join(lines).encode()


# -- lamp telemetry -----------------------------------------------------------------------------------------


def telemetry_bodies(
    topology: Topology, lamp_ids: Iterable[str], end_ms: int, days: float
) -> Iterator[bytes]:
    """Every 60 s reading of each lamp over ``days`` up to ``end_ms``, as the ingest writes them."""
    table = topology.table(DeviceKind.LAMP)
    numbers = table.find(list(lamp_ids))
    numbers = numbers[numbers >= 0]
    ids = table.id_text(numbers)
    districts = topology.names(DISTRICT, table.district[numbers])
    rated = np.nan_to_num(table.rated_power_w[numbers].astype(np.float64), nan=100.0)
    n = len(numbers)
    rng = np.random.default_rng(7)
    phase = rng.integers(0, MINUTE_MS, n)  # each controller reports at its own second of the minute
    energy = rng.uniform(1e5, 1e6, n)
    hours = rng.uniform(1e3, 3e4, n)
    switches = rng.integers(100, 5000, n)
    clock = CityNights.for_topology(topology, ScheduleConfig())
    lines: list[str] = []
    was_on: bool | None = None
    start_ms = end_ms - round(days * DAY_MS)
    for k, t in enumerate(range(start_ms, end_ms, MINUTE_MS)):
        night = clock.night(t)
        on = night.on_ms <= t < night.off_ms
        voltage = rng.normal(225.0, 3.0, n)
        power = rated * rng.uniform(0.93, 1.0, n) if on else rng.uniform(0.3, 0.8, n)
        energy += power / 60.0
        if on:
            hours += 1 / 60
        if was_on is not None and was_on != on:
            switches += 1
        was_on = on
        temp = rng.normal(38.0 if on else 26.0, 2.0, n)
        for i in range(n):
            fields: dict[str, FieldValue] = {
                "supply_voltage": round(float(voltage[i]), 1),
                "supply_current": round(float(power[i] / voltage[i] / 0.95), 3),
                "active_power": round(float(power[i]), 1),
                "power_factor": 0.95 if on else 0.5,
                "active_energy": round(float(energy[i]), 1),
                "lamp_on": on,
                "dim_level": 100 if on else 0,
                "burning_hours": round(float(hours[i]), 2),
                "switch_count": int(switches[i]),
                "controller_temp": round(float(temp[i]), 1),
                "lamp_failure": False,
                "relay_failure": False,
                "day_burning": False,
                "cycling": False,
            }
            reading = Reading(ids[i], DeviceKind.LAMP, districts[i], t + int(phase[i]), k, fields)
            lines.append(reading_line(reading))
        if len(lines) >= _LINES_PER_BODY:
            yield "\n".join(lines).encode()
            lines = []
    if lines:
        yield "\n".join(lines).encode()


# -- writing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    points: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else math.nan


def write_bodies(
    influx: InfluxV1,
    bodies: Iterable[bytes],
    *,
    writers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> Loaded:
    """Write every body with ``writers`` concurrent writes (at most twice that many waiting)."""
    started = time.perf_counter()
    points = 0
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(writers, thread_name_prefix="bench-influx") as pool:
        for body in bodies:
            points += body.count(b"\n") + 1
            pending.append(pool.submit(influx.write, body, "ms"))
            if len(pending) >= 2 * writers:
                pending.pop(0).result()  # an error stops the load here
            if progress is not None:
                progress(points)
        for future in pending:
            future.result()
    return Loaded(points, time.perf_counter() - started)
