"""Drainage pump stations and the flood points they serve (DOMAIN.md section 4): rules over station PLC
and road water-depth gauge readings.

Station rules (subject ``pump_station``); per-pump rules report the station, and value / threshold
describe its worst pump:

==========================  ===========================================  ===============================
rule                        value                                        threshold
==========================  ===========================================  ===============================
pump_fail_to_start          wet-well level (m)                           start level (m)
pump_dry_run                number of the first pump running dry         stop level (m)
pump_overcurrent            highest motor current (A)                    rated current × factor (A)
pump_short_cycling          most starts of one pump in the last hour     6 (GB 50014)
pump_capacity_shortfall     level rise (m/h), every available pump on    the rise that alarms (m/h)
overflow_risk               wet-well level (m)                           overflow level (m)
pump_bearing_temp           hottest bearing (°C)                         bearing limit (°C)
pump_vibration              highest vibration (mm/s), level 2 / 1        zone C / zone D boundary
pump_fault                  number of the first pump with its relay set  how many pumps are in fault
station_power_loss          0 (power_ok)                                 1
==========================  ===========================================  ===============================

Flood-point rules (subject ``flood_gauge``): ``flood_depth`` (depth ladder, levels 3 / 2 / 1),
``flood_rise_rate``, ``flood_duration`` and ``flood_station_idle`` (the serving station attached as the
finding's child).

"For longer than t" is measured between a device's own readings: the condition's ``since`` is the first
reading that showed it and it holds once a later reading still shows it ``t`` after; a silent device is
the communication detector's business, and a late batch cannot raise a finding it does not prove. That
detector also owns DOMAIN's shorter station offline timeout in flood season. A station that has lost
mains power does not also report ``pump_fail_to_start``: the power loss explains the idle pumps.

Some findings outlast the reading that raised them, so a crew gets one finding per fault rather than one
per pump cycle: ``pump_fail_to_start`` stays open until a pump starts promptly at the start level again (a
standby pump 0.4 m higher rescues the well every cycle while the duty pump is still broken);
``pump_capacity_shortfall`` holds while every pump runs and the level does not clearly fall (a well at
its top backs up into the sewers and rises no more); the rest clear with a hysteresis margin.
Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.engine import TickContext
from analytics.findings import Conditions, RuleInfo
from analytics.state import NEVER, Batch, KindState, LiveState
from analytics.topology import Topology
from devices.kinds import MAX_PUMPS, DeviceKind

IntArray = npt.NDArray[np.int32]
Int8Array = npt.NDArray[np.int8]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

STATION = DeviceKind.PUMP_STATION
GAUGE = DeviceKind.FLOOD_GAUGE
_HOUR_MS = 3_600_000.0
_FAR = np.iinfo(np.int64).max
_DEPTH_POINTS = 12  # a gauge's last readings kept for its rise rate: 10 min of minute readings and more


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainageRules:
    """Thresholds of the drainage and flood rules; DOMAIN.md section 4 unless said otherwise."""

    fail_to_start_s: float = 300.0  # CHOICE: level at start level this long with no pump running
    dry_run_current_fraction: float = 0.3  # CHOICE: "current far below rated" is under 30 % of rated
    no_flow_m3h: float = 1.0  # CHOICE: a station flow meter's zero reading wanders by about this much
    overcurrent_factor: float = 1.1  # CHOICE: 110 % of the motor's rated current...
    overcurrent_s: float = 120.0  # CHOICE: ...for longer than this (a start's inrush lasts seconds)
    max_starts_per_hour: int = 6  # STD: GB 50014 sizes wet wells for at most 6 starts per pump and hour
    starts_bucket_s: float = 300.0  # CHOICE: the sliding hour moves in steps of this much
    rise_readings: int = 10  # CHOICE: capacity shortfall: level slope over this many readings, all running
    min_rise_m_per_h: float = 0.1  # CHOICE: 10 minute readings with 5 mm noise: slope spread ~0.03 m/h
    overflow_clear_m: float = 0.05  # CHOICE: hysteresis below the overflow level before clearing
    bearing: Literal["rolling", "sliding"] = "rolling"  # PRACTICE; a station's bearing_limit_c overrides
    bearing_rolling_c: float = 75.0  # PRACTICE: rolling-element bearings
    bearing_sliding_c: float = 65.0  # PRACTICE: sliding (sleeve) bearings
    bearing_clear_c: float = 2.0  # CHOICE: hysteresis before a hot bearing clears
    vibration_zone_c_mm_s: float = 2.8  # PRACTICE: ISO 20816-3 zone C boundary (level 2)
    vibration_zone_d_mm_s: float = 4.5  # PRACTICE: ISO 20816-3 zone D boundary (level 1)
    vibration_clear_fraction: float = 0.9  # CHOICE: clears below 90 % of the zone C boundary
    debounce_readings: int = 2  # CHOICE: dry run and vibration need this many consecutive readings
    depth_ladder_cm: tuple[float, float, float] = (15.0, 27.0, 40.0)  # CHOICE: levels 3 / 2 / 1
    depth_clear_cm: float = 2.0  # CHOICE: a rung clears this far below it
    rise_window_s: float = 600.0  # CHOICE: the rise rate is cm per 10 min (slope over this window)
    rise_max_gap_s: float = 1800.0  # CHOICE: a sparse gauge's last two readings count if this close
    rise_alarm_cm_10min: float = 5.0  # CHOICE
    rise_clear_fraction: float = 0.5  # CHOICE: the rise alarm clears below half its threshold
    flood_duration_s: float = 1800.0  # CHOICE: deeper than the first rung for longer than this
    idle_min_depth_cm: float = 5.0  # CHOICE: station-idle needs at least this much water on the road
    idle_rise_cm_10min: float = 1.0  # CHOICE: ...rising at least this fast
    station_stale_s: float = 600.0  # CHOICE: a station unheard this long before the gauge is unknown

    def __post_init__(self) -> None:
        positive = (
            "fail_to_start_s",
            "no_flow_m3h",
            "overcurrent_s",
            "starts_bucket_s",
            "min_rise_m_per_h",
            "bearing_rolling_c",
            "bearing_sliding_c",
            "vibration_zone_c_mm_s",
            "rise_window_s",
            "rise_alarm_cm_10min",
            "flood_duration_s",
            "idle_rise_cm_10min",
            "station_stale_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise RuleConfigError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("dry_run_current_fraction", "vibration_clear_fraction", "rise_clear_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise RuleConfigError(f"{name} must be in (0, 1), not {getattr(self, name)}")
        for name in ("overflow_clear_m", "bearing_clear_c", "depth_clear_cm", "idle_min_depth_cm"):
            if not getattr(self, name) >= 0:
                raise RuleConfigError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not self.overcurrent_factor > 1.0:
            raise RuleConfigError(f"overcurrent_factor must be > 1, not {self.overcurrent_factor}")
        if not 1 <= self.max_starts_per_hour <= 1000:
            raise RuleConfigError(f"max_starts_per_hour must be 1 to 1000, not {self.max_starts_per_hour}")
        buckets = 3600.0 / self.starts_bucket_s
        if not (buckets.is_integer() and 2 <= buckets <= 120):
            raise RuleConfigError(
                f"starts_bucket_s must cut an hour into 2 to 120 steps, not {self.starts_bucket_s}"
            )
        if not 3 <= self.rise_readings <= 30:
            raise RuleConfigError(f"rise_readings must be 3 to 30, not {self.rise_readings}")
        if not 1 <= self.debounce_readings <= 100:
            raise RuleConfigError(f"debounce_readings must be 1 to 100, not {self.debounce_readings}")
        if self.bearing not in ("rolling", "sliding"):
            raise RuleConfigError(f"bearing must be rolling or sliding, not {self.bearing!r}")
        if not self.vibration_zone_d_mm_s > self.vibration_zone_c_mm_s:
            raise RuleConfigError("vibration_zone_d_mm_s must be above vibration_zone_c_mm_s")
        ladder = self.depth_ladder_cm
        if len(ladder) != 3 or not 0 < ladder[0] < ladder[1] < ladder[2]:
            raise RuleConfigError(f"depth_ladder_cm must be three ascending depths > 0, not {ladder}")
        if not self.depth_clear_cm < ladder[0]:
            raise RuleConfigError("depth_clear_cm must be below the first rung")
        if not self.rise_max_gap_s >= self.rise_window_s:
            raise RuleConfigError("rise_max_gap_s must be at least rise_window_s")

    @property
    def bearing_limit_c(self) -> float:
        return self.bearing_rolling_c if self.bearing == "rolling" else self.bearing_sliding_c


def ladder_rung(rung: Int8Array, value: FloatArray, rungs: Sequence[float], clear: float) -> Int8Array:
    """The rung each value stands on (0 below the first, k at or above ``rungs[k-1]``), stepping down only
    ``clear`` below a rung (hysteresis); NaN keeps the rung it had."""
    edges = np.asarray(rungs, dtype=np.float64)
    v = value[:, None]
    up = np.count_nonzero(v >= edges, axis=1)
    hold = np.count_nonzero(v >= edges - clear, axis=1)
    new = np.maximum(up, np.minimum(rung, hold))
    return np.where(np.isnan(value), rung, new).astype(np.int8)


def track_since(since: Int64Array, rows: IntArray, cond: BoolArray, ts: npt.ArrayLike) -> None:
    """Keep ``since`` (NEVER where the condition does not hold) for ``rows`` from this reading's ``cond``."""
    held = since[rows]
    since[rows] = np.where(cond, np.where(held >= 0, held, ts), NEVER)


def _streak(streak: Int8Array, rows: IntArray, cond: BoolArray) -> None:
    streak[rows] = np.where(cond, np.minimum(streak[rows].astype(np.int16) + 1, 127), 0)


class _Ring:
    """The last ``k`` (time, value) readings per device, for slopes."""

    def __init__(self, n: int, k: int) -> None:
        self.ts = np.zeros((n, k), np.int64)
        self.val = np.zeros((n, k), np.float32)
        self.pos = np.zeros(n, np.int8)
        self.count = np.zeros(n, np.int8)

    def push(self, rows: IntArray, ts: Int64Array, values: FloatArray) -> None:
        k = self.ts.shape[1]
        slot = self.pos[rows].astype(np.intp)
        self.ts[rows, slot] = ts
        self.val[rows, slot] = values
        self.pos[rows] = (slot + 1) % k
        self.count[rows] = np.minimum(self.count[rows] + 1, k)

    def slope_per_h(
        self, rows: IntArray, window_ms: float | None = None, max_gap_ms: float = 0.0
    ) -> FloatArray:
        """Least-squares slope per hour over the readings within ``window_ms`` of the newest (all readings
        when None); with fewer than two there, the newest two if they are at most ``max_gap_ms`` apart."""
        k = self.ts.shape[1]
        ts, val = self.ts[rows], self.val[rows].astype(np.float64)
        valid = np.arange(k) < self.count[rows][:, None]
        age = (self.pos[rows][:, None] - 1 - np.arange(k)) % k  # 0: newest
        newest = ts[np.arange(len(rows)), (self.pos[rows].astype(np.intp) - 1) % k][:, None]
        use = valid
        if window_ms is not None:
            use = valid & (ts >= newest - window_ms)
            few = np.count_nonzero(use, axis=1) < 2
            use |= few[:, None] & valid & (age < 2) & (ts >= newest - max_gap_ms)
        return _slope(np.where(use, (ts - newest) / _HOUR_MS, 0.0), np.where(use, val, 0.0), use)

    @property
    def nbytes(self) -> int:
        return self.ts.nbytes + self.val.nbytes + self.pos.nbytes + self.count.nbytes


def _slope(t: FloatArray, y: FloatArray, use: BoolArray) -> FloatArray:
    """Least-squares slope of y over t per row, on the ``use`` points; NaN with fewer than two."""
    n = np.count_nonzero(use, axis=1).astype(np.float64)
    safe = np.maximum(n, 1.0)
    tm, ym = t.sum(axis=1) / safe, y.sum(axis=1) / safe
    dt = np.where(use, t - tm[:, None], 0.0)
    var = (dt * dt).sum(axis=1)
    cov = (dt * np.where(use, y - ym[:, None], 0.0)).sum(axis=1)
    out = np.full(len(n), np.nan)
    np.divide(cov, var, out=out, where=(n >= 2) & (var > 0))
    return out


def where_active(
    rule: str,
    mask: BoolArray,
    value: npt.ArrayLike,
    threshold: npt.ArrayLike,
    *,
    level: npt.ArrayLike | None = None,
    since_ms: npt.ArrayLike | None = None,
) -> Conditions:
    """``Conditions.where``, without its per-array work in the usual case of no subject active."""
    if not mask.any():
        return Conditions.none(rule)
    return Conditions.where(rule, mask, value, threshold, level=level, since_ms=since_ms)


def _any(mask: BoolArray) -> BoolArray:
    """Per station: does any pump show it."""
    return np.asarray(mask.any(axis=1), dtype=np.bool_)


def _first(mask: BoolArray) -> FloatArray:
    """1-based number of the first True column per row (a pump number)."""
    return np.asarray(np.argmax(mask, axis=1) + 1, dtype=np.float64)


def _earliest(mask: BoolArray, since: Int64Array) -> Int64Array:
    return np.asarray(np.where(mask, since, _FAR).min(axis=1), dtype=np.int64)


def _worst(mask: BoolArray, values: FloatArray) -> FloatArray:
    return np.asarray(np.where(mask, values, -np.inf).max(axis=1), dtype=np.float64)


def _per_pump(column: Callable[[str], npt.ArrayLike], field: str) -> FloatArray:
    """A per-pump field as an (n, MAX_PUMPS) array, from a column getter (a round's, or the state's)."""
    names = (f"pump{k}_{field}" for k in range(1, MAX_PUMPS + 1))
    return np.stack([np.asarray(column(name), dtype=np.float64) for name in names], axis=1)


def _rules(c: DrainageRules) -> tuple[RuleInfo, ...]:
    s, g, d, f = STATION.value, GAUGE.value, "drainage", "flood"
    rung = c.depth_ladder_cm
    return (
        RuleInfo(
            "pump_fail_to_start",
            s,
            d,
            "Pump failed to start",
            "wet-well level {value:.2f} m at or above the start level {threshold:.2f} m with no pump "
            f"starting within {c.fail_to_start_s / 60:g} min, since {{since}}",
            "m",
        ),
        RuleInfo(
            "pump_dry_run",
            s,
            d,
            "Pump running dry",
            "pump {value:.0f} running with nothing to pump: wet-well level at or below the stop level "
            f"{{threshold:.2f}} m, or current under {c.dry_run_current_fraction:.0%} of rated with no "
            "outflow, since {since}",
        ),
        RuleInfo(
            "pump_overcurrent",
            s,
            d,
            "Pump overcurrent",
            "pump motor current {value:.0f} A above {threshold:.0f} A "
            f"({c.overcurrent_factor:.0%} of rated) for over {c.overcurrent_s / 60:g} min, since {{since}}",
            "A",
        ),
        RuleInfo(
            "pump_short_cycling",
            s,
            d,
            "Pump short cycling",
            "a pump started {value:.0f} times in the last hour, more than {threshold:.0f} "
            "(GB 50014 design limit), since {since}",
        ),
        RuleInfo(
            "pump_capacity_shortfall",
            s,
            d,
            "Inflow exceeds pumping capacity",
            "wet-well level rising {value:.2f} m/h with every available pump running (alarm above "
            "{threshold:.2f} m/h): inflow exceeds the station's capacity, since {since}",
            "m/h",
        ),
        RuleInfo(
            "overflow_risk",
            s,
            d,
            "Wet well at overflow level",
            "wet-well level {value:.2f} m at or above the overflow level {threshold:.2f} m, since {since}",
            "m",
        ),
        RuleInfo(
            "pump_bearing_temp",
            s,
            d,
            "Pump bearing hot",
            "pump bearing at {value:.1f} °C, above {threshold:.0f} °C, since {since}",
            "°C",
        ),
        RuleInfo(
            "pump_vibration",
            s,
            d,
            "Pump vibration",
            "pump vibration {value:.2f} mm/s above {threshold:.1f} mm/s (ISO 20816-3: zone C from "
            f"{c.vibration_zone_c_mm_s:g}, zone D from {c.vibration_zone_d_mm_s:g} mm/s), since {{since}}",
            "mm/s",
        ),
        RuleInfo(
            "pump_fault",
            s,
            d,
            "Pump fault",
            "fault relay set on pump {value:.0f} ({threshold:.0f} pump(s) in fault), since {since}",
        ),
        RuleInfo("station_power_loss", s, d, "Station power loss", "mains supply lost, since {since}"),
        RuleInfo(
            "flood_depth",
            g,
            f,
            "Water on the road",
            "water {value:.0f} cm deep on the road, at or above {threshold:.0f} cm "
            f"(levels 3 / 2 / 1 from {rung[0]:g} / {rung[1]:g} / {rung[2]:g} cm), since {{since}}",
            "cm",
        ),
        RuleInfo(
            "flood_rise_rate",
            g,
            f,
            "Water rising fast",
            "water rising {value:.1f} cm per 10 min, above {threshold:.1f}, since {since}",
            "cm/10 min",
        ),
        RuleInfo(
            "flood_duration",
            g,
            f,
            "Water standing on the road",
            f"water deeper than {rung[0]:g} cm for over {{threshold:.0f}} min, now {{value:.0f}} cm, "
            "since {since}",
            "cm",
        ),
        RuleInfo(
            "flood_station_idle",
            g,
            f,
            "Flooding with the station idle",
            "water rising {value:.1f} cm per 10 min (alarm above {threshold:.1f}) while the serving pump "
            "station runs no pump with its well at the start level, or is not heard from, since {since}",
            "cm/10 min",
        ),
    )


class DrainageDetector:
    """Pump station and flood gauge rules; the module docstring says what each finding reports."""

    def __init__(self, topology: Topology, config: DrainageRules) -> None:
        self.config = c = config
        stations, gauges = topology.table(STATION), topology.table(GAUGE)
        n, m, p = len(stations), len(gauges), MAX_PUMPS
        self._rules = _rules(c)
        # Registry values; NaN where a station has none, and the rules that need them stay quiet there.
        self.pump_count = stations.param("pumps", np.nan)
        self.start = stations.param("start_level_m", np.nan)
        self.stop = stations.param("stop_level_m", np.nan)
        self.overflow = stations.param("overflow_level_m", np.nan)
        self.rated = stations.param("rated_current_a", np.nan)
        self.bearing_limit = stations.param("bearing_limit_c", c.bearing_limit_c)
        self.registered = np.arange(p) < self.pump_count[:, None]
        served = gauges.text_params.get("station", ("",) * m)
        self.gauge_station: IntArray = stations.find(served) if m else np.zeros(0, np.int32)
        # Per station (and pump): since when each condition has held, NEVER where it does not.
        self.fts_since = np.full(n, NEVER, np.int64)  # level at start level, no pump running
        self.fts_latched = np.full(n, NEVER, np.int64)  # a failure to start, held until a prompt start
        self.power_since = np.full(n, NEVER, np.int64)
        self.overflow_since = np.full(n, NEVER, np.int64)
        self.capacity_since = np.full(n, NEVER, np.int64)
        self.dry_since = np.full((n, p), NEVER, np.int64)
        self.over_since = np.full((n, p), NEVER, np.int64)
        self.bearing_since = np.full((n, p), NEVER, np.int64)
        self.vib_since = np.full((n, p), NEVER, np.int64)
        self.fault_since = np.full((n, p), NEVER, np.int64)
        self.dry_streak = np.zeros((n, p), np.int8)
        self.vib_streak = np.zeros((n, p), np.int8)
        self.ever_ran = np.zeros((n, p), np.bool_)
        self.all_running = np.zeros(n, np.int16)  # consecutive readings with every available pump on
        self.rise = np.full(n, np.nan, np.float32)  # wet-well level slope, m/h
        self.levels = _Ring(n, c.rise_readings)
        # Starts per pump in buckets of the sliding hour; a bucket holds the epoch it counts for.
        buckets = round(3600.0 / c.starts_bucket_s)
        self.bucket_epoch = np.full((n, buckets), NEVER, np.int64)
        self.bucket_starts = np.zeros((n, buckets, p), np.int16)
        # Per flood gauge.
        self.rung = np.zeros(m, np.int8)  # 0 dry, 1..3 on the depth ladder
        self.wet_since = np.full(m, NEVER, np.int64)  # on the ladder since
        self.rate = np.full(m, np.nan, np.float32)  # cm per 10 min
        self.rise_since = np.full(m, NEVER, np.int64)
        self.idle_since = np.full(m, NEVER, np.int64)
        self.depths = _Ring(m, _DEPTH_POINTS)

    @property
    def kinds(self) -> frozenset[DeviceKind]:
        return frozenset({STATION, GAUGE})

    @property
    def rules(self) -> Sequence[RuleInfo]:
        return self._rules

    @property
    def nbytes(self) -> int:
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)]
        return sum(a.nbytes for a in arrays) + self.levels.nbytes + self.depths.nbytes

    def observe(self, batch: Batch, state: LiveState) -> None:
        if batch.kind is STATION:
            self._observe_station(batch, state[STATION])
        elif batch.kind is GAUGE:
            self._observe_gauge(batch)

    def _observe_station(self, b: Batch, ks: KindState) -> None:
        c, dev, ts = self.config, b.device, b.ts_ms

        def now(name: str) -> FloatArray:  # this reading, or the last known value where it lacks the field
            new = b.column(name)
            return np.where(np.isnan(new), ks.values[name][dev], new)

        def before(name: str) -> FloatArray:
            return ks.values[name][dev].astype(np.float64)

        level, running, was = now("wet_well_level"), _per_pump(now, "running"), _per_pump(before, "running")
        run, fault = running > 0.5, _per_pump(now, "fault") > 0.5
        powered = ~(now("power_ok") < 0.5)
        self._fail_to_start(dev, ts, level, running, was, powered)
        current = _per_pump(now, "current")
        rated = self.rated[dev][:, None]
        no_flow = (now("outflow") <= c.no_flow_m3h)[:, None]
        dry = run & (
            (level <= self.stop[dev])[:, None] | ((current < c.dry_run_current_fraction * rated) & no_flow)
        )
        _streak(self.dry_streak, dev, dry)
        track_since(self.dry_since, dev, dry, ts[:, None])
        track_since(self.over_since, dev, current > c.overcurrent_factor * rated, ts[:, None])
        temp, limit = _per_pump(now, "bearing_temp"), self.bearing_limit[dev][:, None]
        hot = (temp > limit) | ((self.bearing_since[dev] >= 0) & (temp > limit - c.bearing_clear_c))
        track_since(self.bearing_since, dev, hot, ts[:, None])
        vib, zone_c = _per_pump(now, "vibration"), c.vibration_zone_c_mm_s
        on = self.vib_streak[dev] >= c.debounce_readings
        rough = (vib > zone_c) | (on & (vib > zone_c * c.vibration_clear_fraction))
        _streak(self.vib_streak, dev, rough)
        track_since(self.vib_since, dev, rough, ts[:, None])
        track_since(self.fault_since, dev, fault, ts[:, None])
        track_since(self.power_since, dev, now("power_ok") < 0.5, ts)
        top = self.overflow[dev]
        spill = (level >= top) | ((self.overflow_since[dev] >= 0) & (level >= top - c.overflow_clear_m))
        track_since(self.overflow_since, dev, spill, ts)
        self._count_starts(b, ks, run, was)
        self._capacity(b, level, run, fault)

    def _fail_to_start(
        self,
        dev: IntArray,
        ts: Int64Array,
        level: FloatArray,
        running: FloatArray,
        was: FloatArray,
        powered: BoolArray,
    ) -> None:
        """Latched: a station whose lead pump fails is rescued by a standby pump 0.4 m higher every cycle;
        the finding stays open until a pump starts promptly again (within t_start of the start level).
        Without mains power no pump can start: the wait begins again when the power is back."""
        wait_ms = self.config.fail_to_start_s * 1000.0
        any_run = (running > 0.5).any(axis=1)
        started = any_run & ~(was > 0.5).any(axis=1)
        high = self.fts_since[dev]
        prompt = started & ((high < 0) | (ts - high < wait_ms))
        cond = (level >= self.start[dev]) & ~np.isnan(running).all(axis=1) & ~any_run & powered
        track_since(self.fts_since, dev, cond, ts)
        since = self.fts_since[dev]
        latched = np.where(prompt, NEVER, self.fts_latched[dev])
        fresh = (latched < 0) & (since >= 0) & (ts - since >= wait_ms)
        self.fts_latched[dev] = np.where(fresh, since, latched)

    def _count_starts(self, b: Batch, ks: KindState, run: BoolArray, was: FloatArray) -> None:
        """Starts per pump from the counters' increments (a rising run flag where a counter is missing);
        an increment over a gap of more than the hour cannot be placed in it and is not counted."""
        dev, ts = b.device, b.ts_ms
        delta = _per_pump(b.column, "starts") - _per_pump(lambda f: ks.values[f][dev], "starts")
        delta = np.where(np.isnan(delta), run & (was == 0.0), np.maximum(delta, 0.0))
        last = ks.last_ts[dev]
        delta *= ((last != NEVER) & (ts - last <= _HOUR_MS))[:, None]
        epoch = ts // round(self.config.starts_bucket_s * 1000)
        slot = (epoch % self.bucket_epoch.shape[1]).astype(np.intp)
        reused = self.bucket_epoch[dev, slot] != epoch
        self.bucket_starts[dev[reused], slot[reused]] = 0
        self.bucket_epoch[dev, slot] = epoch
        self.bucket_starts[dev, slot] = np.minimum(self.bucket_starts[dev, slot] + delta, 32_767)

    def _capacity(self, b: Batch, level: FloatArray, run: BoolArray, fault: BoolArray) -> None:
        """Level still rising over the last readings, each with every available pump running."""
        c, dev, ts = self.config, b.device, b.ts_ms
        self.ever_ran[dev] |= run
        known_count = ~np.isnan(self.pump_count[dev])[:, None]
        available = np.where(known_count, self.registered[dev], self.ever_ran[dev]) & ~fault
        all_on = available.any(axis=1) & ~(available & ~run).any(axis=1)
        self.all_running[dev] = np.where(all_on, np.minimum(self.all_running[dev] + 1, 30_000), 0)
        fresh = ~np.isnan(b.column("wet_well_level"))
        rows = dev[fresh]
        self.levels.push(rows, ts[fresh], level[fresh])
        self.rise[rows] = self.levels.slope_per_h(rows)
        full = (self.all_running[dev] >= c.rise_readings) & (self.levels.count[dev] >= c.rise_readings)
        # Hysteresis: a well pinned at its top (backing up into the sewers) no longer rises but is still
        # short of capacity; the finding holds until a pump stops or the level clearly falls.
        rise, held = self.rise[dev], self.capacity_since[dev] >= 0
        short = (full & (rise > c.min_rise_m_per_h)) | (held & all_on & ~(rise < -c.min_rise_m_per_h))
        track_since(self.capacity_since, dev, short, ts)

    def _observe_gauge(self, b: Batch) -> None:
        c = self.config
        depth = b.column("water_depth")
        fresh = ~np.isnan(depth)
        dev, ts, depth = b.device[fresh], b.ts_ms[fresh], depth[fresh]
        self.rung[dev] = ladder_rung(self.rung[dev], depth, c.depth_ladder_cm, c.depth_clear_cm)
        track_since(self.wet_since, dev, self.rung[dev] > 0, ts)
        self.depths.push(dev, ts, depth)
        rate = self.depths.slope_per_h(dev, c.rise_window_s * 1000.0, c.rise_max_gap_s * 1000.0) / 6.0
        self.rate[dev] = rate
        alarm = c.rise_alarm_cm_10min
        rising = (rate > alarm) | ((self.rise_since[dev] >= 0) & (rate > alarm * c.rise_clear_fraction))
        track_since(self.rise_since, dev, rising, ts)

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        return [*self._station_conditions(ctx), *self._gauge_conditions(ctx)]

    def _starts_last_hour(self, now_ms: int) -> FloatArray:
        buckets = self.bucket_epoch.shape[1]
        current = now_ms // round(self.config.starts_bucket_s * 1000)
        inside = self.bucket_epoch > current - buckets
        return np.asarray((self.bucket_starts * inside[:, :, None]).sum(axis=1), dtype=np.float64)

    def _station_conditions(self, ctx: TickContext) -> list[Conditions]:
        c, ks = self.config, ctx.state[STATION]
        v, last = ks.values, ks.last_ts
        ok = _unsuppressed(ctx, STATION, ks.n)
        each = ok[:, None]
        level = v["wet_well_level"].astype(np.float64)
        power_lost = (self.power_since >= 0) & ok
        dry = (self.dry_streak >= c.debounce_readings) & each
        over = (self.over_since >= 0) & (last[:, None] - self.over_since >= c.overcurrent_s * 1000) & each
        starts = self._starts_last_hour(ctx.now_ms)
        cycling = (starts > c.max_starts_per_hour) & each
        hot = (self.bearing_since >= 0) & each
        rough = (self.vib_streak >= c.debounce_readings) & each
        vib = _worst(rough, _per_pump(v.__getitem__, "vibration"))
        severe = vib > c.vibration_zone_d_mm_s
        fault = (self.fault_since >= 0) & each
        return [
            where_active(
                "pump_fail_to_start",
                (self.fts_latched >= 0) & ok & ~power_lost,
                level,
                self.start,
                since_ms=self.fts_latched,
            ),
            where_active(
                "pump_dry_run",
                _any(dry),
                _first(dry),
                self.stop,
                since_ms=_earliest(dry, self.dry_since),
            ),
            where_active(
                "pump_overcurrent",
                _any(over),
                _worst(over, _per_pump(v.__getitem__, "current")),
                self.rated * c.overcurrent_factor,
                since_ms=_earliest(over, self.over_since),
            ),
            where_active("pump_short_cycling", _any(cycling), _worst(cycling, starts), c.max_starts_per_hour),
            where_active(
                "pump_capacity_shortfall",
                (self.capacity_since >= 0) & ok,
                self.rise,
                c.min_rise_m_per_h,
                since_ms=self.capacity_since,
            ),
            where_active(
                "overflow_risk",
                (self.overflow_since >= 0) & ok,
                level,
                self.overflow,
                since_ms=self.overflow_since,
            ),
            where_active(
                "pump_bearing_temp",
                _any(hot),
                _worst(hot, _per_pump(v.__getitem__, "bearing_temp")),
                self.bearing_limit,
                since_ms=_earliest(hot, self.bearing_since),
            ),
            where_active(
                "pump_vibration",
                _any(rough),
                vib,
                np.where(severe, c.vibration_zone_d_mm_s, c.vibration_zone_c_mm_s),
                level=np.where(severe, 1, 2),
                since_ms=_earliest(rough, self.vib_since),
            ),
            where_active(
                "pump_fault",
                _any(fault),
                _first(fault),
                np.count_nonzero(fault, axis=1),
                since_ms=_earliest(fault, self.fault_since),
            ),
            where_active("station_power_loss", power_lost, 0.0, 1.0, since_ms=self.power_since),
        ]

    def _gauge_conditions(self, ctx: TickContext) -> list[Conditions]:
        c, kg = self.config, ctx.state[GAUGE]
        ok = _unsuppressed(ctx, GAUGE, kg.n)
        depth = kg.values["water_depth"].astype(np.float64)
        ladder = np.array((0.0, *c.depth_ladder_cm))
        wet = (self.rung > 0) & ok
        standing = wet & (kg.last_ts - self.wet_since >= c.flood_duration_s * 1000)
        return [
            where_active(
                "flood_depth", wet, depth, ladder[self.rung], level=4 - self.rung, since_ms=self.wet_since
            ),
            where_active(
                "flood_rise_rate",
                (self.rise_since >= 0) & ok,
                self.rate,
                c.rise_alarm_cm_10min,
                since_ms=self.rise_since,
            ),
            where_active(
                "flood_duration", standing, depth, c.flood_duration_s / 60.0, since_ms=self.wet_since
            ),
            self._station_idle(ctx, kg, depth, ok),
        ]

    def _station_idle(self, ctx: TickContext, kg: KindState, depth: FloatArray, ok: BoolArray) -> Conditions:
        """Water rising at a flood point while its station pumps nothing although its well is at the start
        level (or the station is not heard from): DOMAIN's "flooding with station idle"."""
        c, ks = self.config, ctx.state[STATION]
        if not ks.n:
            return Conditions.none("flood_station_idle")
        served = self.gauge_station >= 0
        s = np.maximum(self.gauge_station, 0)
        heard = ks.last_ts[s]
        unheard = (heard == NEVER) | (kg.last_ts - heard > c.station_stale_s * 1000)
        running = _any(_per_pump(ks.values.__getitem__, "running") > 0.5)[s]
        level, start = ks.values["wet_well_level"][s], self.start[s]
        high = np.isnan(level) | np.isnan(start) | (level >= start)
        was = self.idle_since >= 0
        rising = (self.rate > c.idle_rise_cm_10min) | (was & (self.rate > 0))
        cond = served & ok & (unheard | (~running & high)) & rising & (depth >= c.idle_min_depth_cm)
        self.idle_since = np.where(cond, np.where(was, self.idle_since, kg.last_ts), NEVER)
        found = where_active(
            "flood_station_idle", cond, self.rate, c.idle_rise_cm_10min, since_ms=self.idle_since
        )
        station = self.gauge_station
        children = {g: station[g : g + 1] for g in found.active.tolist()}
        return replace(found, children=children, child_subject=STATION.value)


def _unsuppressed(ctx: TickContext, kind: DeviceKind, n: int) -> BoolArray:
    quiet = ctx.suppressed.get(kind)
    return np.ones(n, np.bool_) if quiet is None else ~quiet
