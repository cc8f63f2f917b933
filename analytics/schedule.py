"""The lamp switching schedule: which lamps must be on, which are off by plan, and when it is day.

An astronomical clock (DOMAIN.md section 2): each lamp switches on at sunset plus an offset and off at
sunrise plus an offset, at its own latitude and longitude (``devices.solar``). Around each switching
instant a grace margin leaves a lamp neither due nor in daytime: controllers and cabinets take a minute
or two to switch, and a lamp caught mid-switch is neither dark nor day burning.

Time is cut into *night windows* from one mean solar noon at the city centre to the next: the window
holds one sunset and the following sunrise. Each lamp's switch-on and switch-off instants of the window
are computed once (sunrise and sunset on a grid of positions, then gathered to the lamps) and kept as
float32 seconds after the window's start, so ``LampScheduler.at`` is a few array comparisons.

On top of the clock (``analytics.lamp_plans``): part-night and dimming plans, assigned per lamp by the
registry's lamp param ``dim_plan`` or by road class, and announced planned outages; both make lamps
planned-off and not due (or, dimmed, due at the plan's level). Operators' manual commands
(``analytics.overrides``, ``set_manual``) are the plan of their lamps while they hold: commanded off at
night, planned-off; commanded on, due at its level by night and not in daytime by day. Lamps not in
service are never due.
Pure: time comes in as epoch ms.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.engine import LampSchedule
from analytics.lamp_plans import DIM_PLAN_PARAM, NO_PLAN, DimPlan, LocalClock, PlannedOutage, parse_zone
from analytics.overrides import ManualLamps
from analytics.topology import IntArray, Table, Topology
from devices import solar
from devices.assets import ROAD_CLASSES
from devices.kinds import DeviceKind

FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

DAY_S = 86_400
_NOON_S = 43_200
_DEG_S = 240.0  # mean solar time: 4 minutes per degree of longitude


def _no_class_plans() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleConfig:
    """The astronomical clock's offsets and margins, the city's clock, its plans and announced outages."""

    # CHOICE (DOMAIN.md section 2: "configurable offsets"): on at sunset, off at sunrise. Cities commonly
    # shift by 10-20 minutes (on after sunset, off before sunrise) to save energy; positive is later.
    on_offset_min: float = 0.0
    off_offset_min: float = 0.0
    # CHOICE: controllers and cabinets take a minute or two to switch; for this long either side of a
    # switching instant a lamp is neither due (a dark lamp is not a failure) nor in daytime (not day burning).
    grace_min: float = 15.0
    # CHOICE: the seed city's clock. A zoneinfo name, or a fixed offset such as "+08:00".
    timezone: str = "Asia/Shanghai"
    # CHOICE: sunrise and sunset are computed on this grid of positions and shared by the lamps in a cell;
    # 0.01° moves the events by a few seconds at most (0 computes every lamp's own position).
    position_grid_deg: float = 0.01
    plans: tuple[DimPlan, ...] = ()  # LOCAL: a city's approved part-night and dimming plans
    class_plans: Mapping[str, str] = field(default_factory=_no_class_plans)  # road class -> plan name
    outages: tuple[PlannedOutage, ...] = ()  # announced at start; LampScheduler.set_outages replaces them

    def __post_init__(self) -> None:
        for name in ("on_offset_min", "off_offset_min"):
            value = getattr(self, name)
            if not -180.0 <= value <= 180.0:
                raise RuleConfigError(f"{name} must be within ±180 minutes, not {value}")
        if not 0.0 <= self.grace_min <= 60.0:
            raise RuleConfigError(f"grace_min must be 0 to 60 minutes, not {self.grace_min}")
        if not 0.0 <= self.position_grid_deg <= 0.1:
            raise RuleConfigError(f"position_grid_deg must be 0 to 0.1, not {self.position_grid_deg}")
        parse_zone(self.timezone)
        names = [p.name for p in self.plans]
        if len(set(names)) != len(names):
            raise RuleConfigError(f"dim plan names repeat: {names}")
        for road_class, plan in self.class_plans.items():
            if road_class not in ROAD_CLASSES:
                raise RuleConfigError(f"class_plans: {road_class!r} is not one of {', '.join(ROAD_CLASSES)}")
            if plan not in names:
                raise RuleConfigError(f"class_plans: {road_class} names an unknown plan {plan!r}")
        object.__setattr__(self, "class_plans", MappingProxyType(dict(self.class_plans)))


@dataclass(frozen=True, slots=True)
class Night:
    """One night window at the city centre, from mean solar noon to the next: switching instants in ms."""

    day: int  # days since 1970-01-01 of the window's first noon (the evening's date in solar time)
    start_ms: int
    end_ms: int
    on_ms: int  # switch-on at the centre; end_ms when the sun does not set (polar day)
    off_ms: int  # switch-off at the centre; clipped to the window (polar night: end_ms)

    @property
    def dark(self) -> bool:
        return self.off_ms > self.on_ms


def _switching_s(
    lat: FloatArray, lon: FloatArray, day: int, on_offset_s: float, off_offset_s: float, cache: _SunCache
) -> tuple[FloatArray, FloatArray]:
    """Switch-on (sunset of ``day`` + offset) and switch-off (sunrise of ``day + 1`` + offset) in epoch
    seconds; ±inf where the sun does not set or rise (polar day or night)."""
    _, sunset, polar_evening = cache.events(lat, lon, day)
    sunrise, _, polar_morning = cache.events(lat, lon, day + 1)
    with np.errstate(invalid="ignore"):
        on = np.where(np.isnan(sunset), np.where(polar_evening, -np.inf, np.inf), sunset + on_offset_s)
        off = np.where(np.isnan(sunrise), np.where(polar_morning, np.inf, -np.inf), sunrise + off_offset_s)
    return on, off


class _SunCache:
    """Sunrise, sunset and polar night per solar day for a fixed set of positions; keeps three days."""

    def __init__(self) -> None:
        self._days: dict[int, tuple[FloatArray, FloatArray, BoolArray]] = {}

    def events(self, lat: FloatArray, lon: FloatArray, day: int) -> tuple[FloatArray, FloatArray, BoolArray]:
        events = self._days.get(day)
        if events is None:
            date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
            rise, fall = solar.sun_times(lat, lon, date)
            events = (rise, fall, solar.polar_night(lat, lon, date))
            self._days = {d: e for d, e in self._days.items() if abs(d - day) <= 1}
            self._days[day] = events
        return events


class CityNights:
    """Night windows and switching instants at one point (the city centre); implements the rates' clock."""

    def __init__(self, lat: float, lon: float, config: ScheduleConfig) -> None:
        self.lat, self.lon = np.array([lat]), np.array([lon])
        self.clock = LocalClock(config.timezone)
        self._noon_s = _NOON_S - lon * _DEG_S
        self._offsets = (config.on_offset_min * 60.0, config.off_offset_min * 60.0)
        self._sun = _SunCache()
        self._last: Night | None = None

    @classmethod
    def for_topology(cls, topology: Topology, config: ScheduleConfig) -> CityNights:
        """At the mean position of the lamps (of every device when there are none)."""
        tables = [t for t in topology.tables.values() if len(t)]
        lamps = topology.tables.get(DeviceKind.LAMP)
        if lamps is not None and len(lamps):
            tables = [lamps]
        if not tables:
            return cls(0.0, 0.0, config)
        lat = np.concatenate([t.lat for t in tables])
        lon = np.concatenate([t.lon for t in tables])
        return cls(float(lat.mean()), float(lon.mean()), config)

    def window_day(self, now_ms: int) -> int:
        """The solar day whose noon at the centre last came at or before ``now_ms``."""
        return math.floor((now_ms / 1000 - self._noon_s) / DAY_S)

    def window_start_s(self, day: int) -> float:
        return day * DAY_S + self._noon_s

    def night(self, now_ms: int) -> Night:
        day = self.window_day(now_ms)
        if self._last is not None and self._last.day == day:
            return self._last
        start_s = self.window_start_s(day)
        start, end = round(start_s * 1000), round((start_s + DAY_S) * 1000)
        on_s, off_s = _switching_s(self.lat, self.lon, day, *self._offsets, self._sun)
        on = int(np.clip(on_s[0] * 1000, start, end))
        off = int(np.clip(off_s[0] * 1000, start, end))
        if off <= on:
            on = off = end
        self._last = Night(day, start, end, on, off)
        return self._last

    def next_local_time(self, after_ms: int, minute: int) -> int:
        return self.clock.next_time(after_ms, minute)


@dataclass(frozen=True, slots=True)
class _Outage:
    start_ms: int
    end_ms: int
    lamps: IntArray


def _plan_codes(lamps: Table, topology: Topology, config: ScheduleConfig) -> tuple[npt.NDArray[np.int8], int]:
    """Each lamp's plan (index into config.plans; len(plans) for none) and how many lamps name a plan
    the config does not know (they get none: they stay due, and a shortfall shows it)."""
    none = len(config.plans)
    index = {p.name: i for i, p in enumerate(config.plans)}
    by_class = np.full(len(ROAD_CLASSES) + 1, none, dtype=np.int8)  # last slot: lamps of no known class
    for class_name, plan in config.class_plans.items():
        by_class[ROAD_CLASSES.index(class_name)] = index[plan]
    road_class = np.append(topology.road_class, -1)[lamps.road]  # road -1 picks the appended -1
    codes = by_class[np.where(road_class >= 0, road_class, len(ROAD_CLASSES))]
    named = lamps.text_params.get(DIM_PLAN_PARAM)
    unknown = 0
    if named is not None:
        values = np.asarray(named, dtype=np.str_)
        for name in np.unique(values).tolist():
            if not name:
                continue
            rows = values == name
            if name == NO_PLAN:
                codes[rows] = none
            elif name in index:
                codes[rows] = index[name]
            else:
                unknown += int(np.count_nonzero(rows))
    return codes, unknown


class LampScheduler:
    """The switching schedule of every lamp of a topology (``analytics.engine.ScheduleSource``)."""

    def __init__(self, topology: Topology, config: ScheduleConfig) -> None:
        lamps = topology.table(DeviceKind.LAMP)
        self.topology = topology
        self.config = config
        self.nights = CityNights.for_topology(topology, config)
        self.clock = self.nights.clock
        grid = config.position_grid_deg
        lat, lon = lamps.lat, lamps.lon
        if grid:
            lat = np.asarray(np.round(lat / grid) * grid, dtype=np.float64)
            lon = np.asarray(np.round(lon / grid) * grid, dtype=np.float64)
        # One complex number per position: np.unique in one dimension, much faster than axis=1.
        positions, inverse = np.unique(lat + 1j * lon, return_inverse=True)
        self._lat, self._lon = positions.real.copy(), positions.imag.copy()
        self._position = inverse.reshape(-1).astype(np.int32)
        self._in_service = lamps.in_service
        self._plan, self.unknown_plan_lamps = _plan_codes(lamps, topology, config)
        self._sun = _SunCache()
        self._day: int | None = None
        self._start_ms = 0
        self._on: Float32Array = np.zeros(len(lamps), dtype=np.float32)
        self._off: Float32Array = np.zeros(len(lamps), dtype=np.float32)
        self._outages: tuple[_Outage, ...] = ()
        self.set_outages(config.outages)
        self._manual: ManualLamps | None = None
        self._ahead = _SunCache()  # next_switch_ms's own: a late ack must not evict the days at() uses

    def set_outages(self, outages: Iterable[PlannedOutage]) -> None:
        """Replace the announced planned outages (lamps, circuits, roads of other partitions are ignored)."""
        lamps = self.topology.table(DeviceKind.LAMP)
        circuit_code = {name: i for i, name in enumerate(self.topology.circuits)}
        road_code = {name: i for i, name in enumerate(self.topology.roads)}
        resolved = []
        for outage in outages:
            mask = np.zeros(len(lamps), dtype=np.bool_)
            found = lamps.find(list(outage.lamps))
            mask[found[found >= 0]] = True
            circuits = [circuit_code[c] for c in outage.circuits if c in circuit_code]
            roads = [road_code[r] for r in outage.roads if r in road_code]
            mask |= np.isin(lamps.circuit, circuits) | np.isin(lamps.road, roads)
            resolved.append(_Outage(outage.start_ms, outage.end_ms, np.flatnonzero(mask).astype(np.int32)))
        self._outages = tuple(resolved)

    def set_manual(self, manual: ManualLamps | None) -> None:
        """Replace the operators' manual states (``analytics.overrides``); None: no lamp under command."""
        self._manual = manual if manual is not None and len(manual) else None

    def next_switch_ms(self, lamps: IntArray, after_ms: Int64Array) -> Int64Array:
        """Each of ``lamps``' next switching instant (on or off, epoch ms) after ``after_ms``: where a
        manual switch or dim given then ends (``analytics.overrides.SwitchClock``). Where the sun neither
        sets nor rises in time (polar day or night), the end of the next night window."""
        out = np.empty(len(lamps), dtype=np.int64)
        t_s = np.asarray(after_ms, dtype=np.float64) / 1000.0
        days = np.floor((t_s - self.nights.window_start_s(0)) / DAY_S).astype(np.int64)
        offsets = (self.config.on_offset_min * 60.0, self.config.off_offset_min * 60.0)
        for day in np.unique(days).tolist():
            rows = np.flatnonzero(days == day)
            where, t = self._position[lamps[rows]], t_s[rows]
            on, off = (a[where] for a in _switching_s(self._lat, self._lon, day, *offsets, self._ahead))
            later = _switching_s(self._lat, self._lon, day + 1, *offsets, self._ahead)[0][where]
            nxt = np.where(t < on, on, np.where(t < off, off, later))
            cap = self.nights.window_start_s(day + 2)
            nxt = np.where(np.isfinite(nxt) & (nxt > t), np.minimum(nxt, cap), cap)
            out[rows] = np.round(nxt * 1000.0).astype(np.int64)
        return out

    def _switching(self, now_ms: int) -> Night:
        night = self.nights.night(now_ms)
        if night.day != self._day:
            on_s, off_s = _switching_s(
                self._lat,
                self._lon,
                night.day,
                self.config.on_offset_min * 60.0,
                self.config.off_offset_min * 60.0,
                self._sun,
            )
            start_s = night.start_ms / 1000
            self._on = (on_s - start_s).astype(np.float32)[self._position]
            self._off = (off_s - start_s).astype(np.float32)[self._position]
            self._day, self._start_ms = night.day, night.start_ms
        return night

    def switch_times(self, now_ms: int) -> tuple[FloatArray, FloatArray]:
        """Each lamp's switch-on and switch-off instants (epoch ms; ±inf in polar day or night) of the
        night window holding ``now_ms``."""
        self._switching(now_ms)
        base = float(self._start_ms)
        return base + self._on.astype(np.float64) * 1000, base + self._off.astype(np.float64) * 1000

    def _plan_state(self, now_ms: int) -> tuple[Float32Array | None, BoolArray | None, BoolArray | None]:
        """Per lamp now: the plan's dim level, off by plan, switching (within the grace margin of an off
        window's edge); each None where no lamp differs from full on."""
        if not self.config.plans:
            return None, None, None
        minute = self.clock.minute_of_day(now_ms)
        levels = [p.level_at(minute) for p in self.config.plans]
        switching = [p.switching_near(minute, self.config.grace_min) for p in self.config.plans]

        def per_lamp(table: Sequence[float | bool], neutral: float | bool, dtype: type) -> Any:
            if all(v == neutral for v in table):
                return None
            return np.take(np.array([*table, neutral], dtype=dtype), self._plan)  # take: no index copy

        return (
            per_lamp(levels, 100.0, np.float32),
            per_lamp([level <= 0.0 for level in levels], False, np.bool_),
            per_lamp(switching, False, np.bool_),
        )

    def _outage_mask(self, now_ms: int) -> BoolArray | None:
        active = [o for o in self._outages if o.start_ms <= now_ms < o.end_ms]
        if not active:
            return None
        mask = np.zeros(len(self._on), dtype=np.bool_)
        for outage in active:
            mask[outage.lamps] = True
        return mask

    def at(self, now_ms: int) -> LampSchedule:
        night = self._switching(now_ms)
        t = np.float32((now_ms - night.start_ms) / 1000)
        grace = np.float32(self.config.grace_min * 60.0)
        late, early = t - grace, t + grace
        on, off = self._on, self._off
        night_now = (on <= late) & (off > early)
        daytime = (on > early) | (off <= late)
        level, plan_off, switching = self._plan_state(now_ms)
        outage = self._outage_mask(now_ms)
        if switching is not None:
            night_now &= ~switching
        blocked = plan_off if outage is None else outage if plan_off is None else plan_off | outage
        if blocked is None:
            planned_off = np.zeros(len(on), dtype=np.bool_)
            due = night_now & self._in_service
        else:
            planned_off = night_now & blocked
            due = night_now & ~blocked & self._in_service
        dim = np.multiply(due, np.float32(100.0) if level is None else level, dtype=np.float32)
        schedule = LampSchedule(due, daytime, dim, planned_off)
        if self._manual is not None:
            self._apply_manual(self._manual, now_ms, night_now, schedule)
        return schedule

    def _apply_manual(self, manual: ManualLamps, now_ms: int, night_now: BoolArray, s: LampSchedule) -> None:
        """Lay the manual states holding at ``now_ms`` over the schedule's fresh arrays (their rows only):
        off at night is planned off, on is due at its level by night and never daytime."""
        live = (manual.from_ms <= now_ms) & (now_ms < manual.until_ms)
        if not live.any():
            return
        lamps, on = manual.lamps[live], manual.state[live] > 0
        night = night_now[lamps] & self._in_service[lamps]
        s.due[lamps] = night & on
        s.planned_off[lamps] = night & ~on
        s.dim[lamps] = np.where(night & on, manual.level[live], np.float32(0.0))
        s.daytime[lamps] &= ~on

    def night(self, now_ms: int) -> Night:
        return self.nights.night(now_ms)

    def next_local_time(self, after_ms: int, minute: int) -> int:
        return self.nights.next_local_time(after_ms, minute)

    @property
    def nbytes(self) -> int:
        arrays = (self._position, self._on, self._off, self._plan, self._lat, self._lon)
        manual = 0 if self._manual is None else 21 * len(self._manual)  # int32, int8, float32, 2 x int64
        return sum(a.nbytes for a in arrays) + sum(o.lamps.nbytes for o in self._outages) + manual
