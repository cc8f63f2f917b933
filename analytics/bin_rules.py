"""Waste bins with ultrasonic fill-level meters (DOMAIN.md section 5): fill, fire, tipping, collections
and when each bin will be full.

Fill % comes from the distance, ``(H_empty - d) / (H_empty - d_blind)`` clipped to 0..100, with the
bin's registry ``empty_distance_cm`` / ``blind_zone_cm``; the meter's own ``fill_level`` only when the
distance (or the bin's height) is missing. A distance well beyond the empty bin, or a tipped bin, says
nothing about the contents: its fill is unknown, not 0 %, so tipping a bin never counts as emptying it.

Rules (subject ``bin``):

======================  ==============================  =============================================
rule                    value                           threshold
======================  ==============================  =============================================
bin_near_full           fill %                          75 %: near full and below full
bin_full                fill %                          90 %
bin_overflow            fill %                          100 % (or inside the blind zone), on top of full
bin_fire                temperature °C                  60 °C, or the reading before the rise + 5 °C
bin_tipped              tilt °                          45°
bin_missed_collection   hours full                      the collection deadline in hours
bin_stuck_sensor        days without a change           stuck_days
======================  ==============================  =============================================

A bin's fill is on one rung of the ladder, so it is either near full or full, never both: the near-full
list on the operations screen is what a crew should plan for, the full list what it must empty. A meter
reading its blind zone (overflowing) is not called stuck: rubbish against the sensor reads the same
every time, and the missed collection already says what to do.

Records: ``bin_collection`` (fill before / after and the device time, for every bin emptied since the
previous evaluation: fill fell by ``emptied_drop_pct`` to under ``emptied_below_pct``) and, every
``forecast_every_s`` of data time, ``bin_forecast`` (fill and hours to full of every filling bin).

Forecast: per bin a ring of (hours since the emptying, fill) points of the current cycle; when it is full,
every other point is dropped and from then on only every other reading is kept, so the ring spans the
whole cycle at any length. The fill speed is the Theil-Sen slope of those points (median of pairwise
slopes: an odd reading from a bag under the sensor does not move it), the line's level their median
residual. Day and night filling rates average out over the cycle. Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.drainage_rules import ladder_rung, track_since, where_active
from analytics.engine import KpiTable, TickContext
from analytics.findings import Conditions, RuleInfo
from analytics.state import NEVER, Batch, KindState, LiveState
from analytics.topology import Topology
from devices.kinds import DeviceKind

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
AnyFloat = TypeVar("AnyFloat", npt.NDArray[np.float32], npt.NDArray[np.float64])

BIN = DeviceKind.BIN
_HOUR_MS = 3_600_000.0
_DAY_MS = 86_400_000.0
_FULL = 100.0  # a fill of 100 % is the contents at the sensor's blind zone: overflowing (DOMAIN section 5)
_MAX_STRIDE = 1 << 14


@dataclass(frozen=True, slots=True, kw_only=True)
class BinRules:
    """Thresholds of the bin rules; DOMAIN.md section 5 unless said otherwise."""

    near_full_pct: float = 75.0  # CHOICE
    full_pct: float = 90.0  # CHOICE
    fill_clear_pct: float = 3.0  # CHOICE: hysteresis; ±0.5 cm of sensor noise is ~1 % of an 80 cm bin
    default_blind_zone_cm: float = 25.0  # PRACTICE: ultrasonic meters' blind zone is 20 to 30 cm
    beyond_empty_cm: float = 15.0  # CHOICE: a distance this far past the empty bin is not the contents
    fire_c: float = 60.0  # CHOICE
    fire_rise_c: float = 5.0  # DOMAIN: a rise of more than 5 °C in one interval
    fire_rise_max_gap_s: float = 3 * 3600.0  # CHOICE: over a longer gap a rise is the day's weather
    fire_clear_c: float = 5.0  # CHOICE: a fire clears this far below fire_c, back near its start
    tipped_deg: float = 45.0  # CHOICE
    tipped_clear_deg: float = 5.0  # CHOICE: hysteresis
    collection_sla_s: float = 24 * 3600.0  # CHOICE: a full bin is emptied within a day
    stuck_days: float = 3.0  # CHOICE
    stuck_tolerance_cm: float = 0.5  # CHOICE: readings within this of each other are "no variation"
    # CHOICE: rounds empty bins from 20 % up, so a 30-point drop would miss most round collections; a
    # 10-point fall (8 to 13 cm) is far beyond the sensor's noise and waste settling under the sensor.
    emptied_drop_pct: float = 10.0
    emptied_below_pct: float = 25.0  # CHOICE
    forecast_every_s: float = 900.0  # CHOICE: bin_forecast records every 15 min of data time
    forecast_points: int = 10  # CHOICE: ring of (time, fill) points per bin for the fill speed
    forecast_min_points: int = 3  # CHOICE: fewer points give no forecast
    min_fill_rate_pct_h: float = 0.05  # CHOICE: slower than this (~1 % a day) is not filling

    def __post_init__(self) -> None:
        if not 0.0 < self.near_full_pct < self.full_pct < _FULL:
            raise RuleConfigError("thresholds must be 0 < near_full_pct < full_pct < 100")
        positive = (
            "default_blind_zone_cm",
            "beyond_empty_cm",
            "fire_c",
            "fire_rise_c",
            "fire_rise_max_gap_s",
            "tipped_deg",
            "collection_sla_s",
            "stuck_days",
            "emptied_drop_pct",
            "emptied_below_pct",
            "forecast_every_s",
            "min_fill_rate_pct_h",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise RuleConfigError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("fill_clear_pct", "fire_clear_c", "tipped_clear_deg", "stuck_tolerance_cm"):
            if not getattr(self, name) >= 0:
                raise RuleConfigError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not self.fill_clear_pct < self.near_full_pct:
            raise RuleConfigError("fill_clear_pct must be below near_full_pct")
        if not self.tipped_clear_deg < self.tipped_deg < 180.0:
            raise RuleConfigError("tipped_deg must be below 180 and above tipped_clear_deg")
        if not (4 <= self.forecast_points <= 64 and self.forecast_points % 2 == 0):
            raise RuleConfigError(f"forecast_points must be even, 4 to 64, not {self.forecast_points}")
        if not 2 <= self.forecast_min_points <= self.forecast_points:
            raise RuleConfigError("forecast_min_points must be 2 to forecast_points")


def _rules(c: BinRules) -> tuple[RuleInfo, ...]:
    b, f = BIN.value, "bin"
    return (
        RuleInfo(
            "bin_near_full",
            b,
            f,
            "Bin near full",
            "{value:.0f} % full (near full from {threshold:.0f} %), since {since}",
            "%",
        ),
        RuleInfo(
            "bin_full",
            b,
            f,
            "Bin full",
            "{value:.0f} % full (full from {threshold:.0f} %), since {since}",
            "%",
        ),
        RuleInfo(
            "bin_overflow",
            b,
            f,
            "Bin overflowing",
            "overflowing: contents at the sensor's blind zone ({value:.0f} % full), since {since}",
            "%",
        ),
        RuleInfo(
            "bin_fire",
            b,
            f,
            "Possible fire in a bin",
            "possible fire: {value:.1f} °C inside the bin, above {threshold:.1f} °C "
            f"(the {c.fire_c:g} °C limit, or more than {c.fire_rise_c:g} °C over the reading before), "
            "since {since}",
            "°C",
        ),
        RuleInfo(
            "bin_tipped",
            b,
            f,
            "Bin tipped over",
            "tipped over: tilted {value:.0f}° from upright (alarm above {threshold:.0f}°), since {since}",
            "°",
        ),
        RuleInfo(
            "bin_missed_collection",
            b,
            f,
            "Bin collection missed",
            "full for {value:.0f} h, past the {threshold:.0f} h collection deadline, since {since}",
            "h",
        ),
        RuleInfo(
            "bin_stuck_sensor",
            b,
            f,
            "Fill sensor stuck",
            "fill sensor reading unchanged for {value:.1f} days (limit {threshold:g} days), since {since}",
            "days",
        ),
    )


def _row_median(values: AnyFloat, use: BoolArray) -> AnyFloat:
    """Median per row of the ``use`` entries; NaN for a row without any."""
    ordered = np.sort(np.where(use, values, np.inf), axis=1)
    count = np.count_nonzero(use, axis=1)
    middle = np.stack([np.maximum(count - 1, 0) // 2, count // 2], axis=1)
    pick = np.take_along_axis(ordered, middle, axis=1)
    return np.where(count > 0, pick.mean(axis=1, dtype=values.dtype), np.nan).astype(values.dtype)


def theil_sen(t: AnyFloat, y: AnyFloat, use: BoolArray) -> tuple[AnyFloat, AnyFloat]:
    """Slope and intercept per row of a (rows, k) array of points (Theil-Sen: the median of pairwise
    slopes, then the median residual); NaN for a row with fewer than two distinct times. Computes in the
    points' own float type (float32 halves the work of a hundred thousand bins)."""
    i, j = np.triu_indices(t.shape[1], 1)
    dt = t[:, j] - t[:, i]
    pair = use[:, i] & use[:, j] & (dt > 0)
    dt[~pair] = 1.0
    slopes = y[:, j] - y[:, i]
    slopes /= dt
    slope = _row_median(slopes, pair)
    intercept = _row_median(y - np.nan_to_num(slope, nan=0.0)[:, None] * t, use)
    return slope, np.where(np.isnan(slope), np.nan, intercept).astype(y.dtype)


def collection_route(
    ids: npt.ArrayLike,
    fill: npt.ArrayLike,
    full_at_ms: npt.ArrayLike,
    next_route_ms: int,
    *,
    route_every_ms: int = 86_400_000,
    full_pct: float = 90.0,
) -> list[int]:
    """The bins of ``ids`` (bin numbers, with their fill % and forecast full time aligned) to empty on the
    route at ``next_route_ms``, most urgent first.

    A bin goes on the route when it is full now, or is forecast full before the route after next
    (``next_route_ms + route_every_ms``): left for that route, it would stand full until then. Full bins
    come first, fullest first; then by forecast time. A bin with no forecast (not filling) stays off.
    """
    if route_every_ms <= 0:
        raise RuleConfigError(f"route_every_ms must be > 0, not {route_every_ms}")
    number = np.asarray(ids, dtype=np.int64)
    level = np.asarray(fill, dtype=np.float64)
    at = np.asarray(full_at_ms, dtype=np.float64)
    full = level >= full_pct
    due = full | (at < next_route_ms + route_every_ms)  # NaN compares False
    urgency = np.where(full, -np.inf, at)[due]
    order = np.lexsort((-np.nan_to_num(level[due], nan=0.0), urgency))
    return [int(n) for n in number[due][order]]


class BinDetector:
    """Fill-level meter rules, collections and time-to-full forecasts; see the module docstring."""

    def __init__(self, topology: Topology, config: BinRules) -> None:
        self.config = c = config
        bins = topology.table(BIN)
        n, k = len(bins), c.forecast_points
        self._rules = _rules(c)
        self.bins = bins  # the topology's table: ids for the records
        self.empty_cm = bins.param("empty_distance_cm", np.nan).astype(np.float32)
        blind = bins.param("blind_zone_cm", c.default_blind_zone_cm)
        self.blind_cm = np.minimum(blind, 0.9 * self.empty_cm).astype(np.float32)  # NaN height: NaN
        self.fill = np.full(n, np.nan, np.float32)  # the last measurable fill %
        self.rung = np.zeros(n, np.int8)  # 0 below near full, 1 near full, 2 full
        self.near_since = np.full(n, NEVER, np.int64)
        self.full_since = np.full(n, NEVER, np.int64)
        self.overflow_since = np.full(n, NEVER, np.int64)
        self.tipped_since = np.full(n, NEVER, np.int64)
        self.fire_since = np.full(n, NEVER, np.int64)
        self.fire_ref = np.full(n, np.nan, np.float32)  # temperature before the fire
        self.fire_limit = np.full(n, np.nan, np.float32)  # the limit the fire crossed
        self.stuck_ref = np.full(n, np.nan, np.float32)
        self.stuck_since = np.full(n, NEVER, np.int64)  # the reading stands within tolerance since
        # The current fill cycle: since the last emptying, a ring of (hours since then, fill) points.
        self.cycle_start = np.full(n, NEVER, np.int64)
        self.ring_h = np.zeros((n, k), np.float32)
        self.ring_fill = np.zeros((n, k), np.float16)  # fill % to ~0.05: far finer than the meter
        self.ring_count = np.zeros(n, np.int8)
        self.ring_stride = np.ones(n, np.int16)  # one point kept per this many readings
        self.ring_skip = np.zeros(n, np.int16)
        self.full_at = np.full(n, np.nan)  # forecast epoch ms at which the fill reaches full_pct
        self._emptied: list[tuple[IntArray, FloatArray, FloatArray, Int64Array]] = []
        self._next_forecast_ms = 0

    @property
    def kinds(self) -> frozenset[DeviceKind]:
        return frozenset({BIN})

    @property
    def rules(self) -> Sequence[RuleInfo]:
        return self._rules

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    def forecast_full_ms(self) -> FloatArray:
        """Per bin, the epoch ms at which it reaches ``full_pct``: forecast for a filling bin, when it
        became full for a full one, NaN for a bin that is not filling (or not yet understood)."""
        return np.where(self.rung == 2, self.full_since.astype(np.float64), self.full_at)

    def route(
        self, bins: npt.ArrayLike, next_route_ms: int, *, route_every_ms: int = 86_400_000
    ) -> list[int]:
        """``collection_route`` over ``bins`` (bin numbers) with this detector's fills and forecasts."""
        number = np.asarray(bins, dtype=np.int64)
        return collection_route(
            number,
            self.fill[number],
            self.forecast_full_ms()[number],
            next_route_ms,
            route_every_ms=route_every_ms,
            full_pct=self.config.full_pct,
        )

    def observe(self, batch: Batch, state: LiveState) -> None:
        if batch.kind is not BIN:
            return
        c, ks, dev, ts = self.config, state[BIN], batch.device, batch.ts_ms
        tilt = batch.column("tilt")
        tilt = np.where(np.isnan(tilt), ks.values["tilt"][dev], tilt)
        was_tipped = self.tipped_since[dev] >= 0
        tipped = (tilt > c.tipped_deg) | (was_tipped & (tilt > c.tipped_deg - c.tipped_clear_deg))
        track_since(self.tipped_since, dev, tipped, ts)
        self._fire(batch, ks)
        self._stuck(batch)
        fill = self._fill(batch, tipped)
        measured = ~np.isnan(fill)
        dev, ts, fill = dev[measured], ts[measured], fill[measured]
        before = self.fill[dev].astype(np.float64)
        emptied = (before - fill >= c.emptied_drop_pct) & (fill < c.emptied_below_pct)
        if emptied.any():
            self._emptied.append((dev[emptied], before[emptied], fill[emptied], ts[emptied]))
        self.fill[dev] = fill
        rungs = (c.near_full_pct, c.full_pct)
        self.rung[dev] = rung = ladder_rung(self.rung[dev], fill, rungs, c.fill_clear_pct)
        track_since(self.near_since, dev, rung >= 1, ts)
        track_since(self.full_since, dev, rung >= 2, ts)
        spilling = (fill >= _FULL) | ((self.overflow_since[dev] >= 0) & (fill >= _FULL - c.fill_clear_pct))
        track_since(self.overflow_since, dev, spilling, ts)
        self._cycle(dev, ts, fill, emptied)

    def _fill(self, batch: Batch, tipped: BoolArray) -> FloatArray:
        """Fill % of each reading from its distance (the meter's own figure without one); NaN where the
        reading says nothing of the contents."""
        dev, distance = batch.device, batch.column("distance")
        height, blind = self.empty_cm[dev], self.blind_cm[dev]
        from_distance = np.clip((height - distance) / (height - blind), 0.0, 1.0) * 100.0
        fill = np.where(np.isnan(from_distance), batch.column("fill_level"), from_distance)
        astray = (distance > height + self.config.beyond_empty_cm) | tipped
        return np.where(astray, np.nan, fill)

    def _fire(self, batch: Batch, ks: KindState) -> None:
        """Latched from the first hot reading (over fire_c, or a rise over fire_rise_c since the reading
        before) until the bin is back below fire_c - fire_clear_c and near its temperature before."""
        c, dev, ts = self.config, batch.device, batch.ts_ms
        temp = batch.column("temperature")
        before, last = ks.values["temperature"][dev].astype(np.float64), ks.last_ts[dev]
        recent = (last != NEVER) & (ts - last <= c.fire_rise_max_gap_s * 1000.0)
        rise = recent & (temp - before > c.fire_rise_c)
        hot = temp > c.fire_c
        burning = self.fire_since[dev] >= 0
        ref = self.fire_ref[dev].astype(np.float64)
        cooled = (temp < c.fire_c - c.fire_clear_c) & (np.isnan(ref) | (temp <= ref + c.fire_rise_c))
        start = ~burning & (rise | hot)
        self.fire_ref[dev] = np.where(start, before, ref)
        self.fire_limit[dev] = np.where(
            start, np.where(hot, c.fire_c, before + c.fire_rise_c), self.fire_limit[dev]
        )
        track_since(self.fire_since, dev, start | (burning & ~(cooled & ~rise & ~hot)), ts)

    def _stuck(self, batch: Batch) -> None:
        distance = batch.column("distance")
        reading = np.where(np.isnan(distance), batch.column("fill_level"), distance)
        known = ~np.isnan(reading)
        dev, ts, reading = batch.device[known], batch.ts_ms[known], reading[known]
        ref = self.stuck_ref[dev]
        moved = np.isnan(ref) | (np.abs(reading - ref) > self.config.stuck_tolerance_cm)
        self.stuck_ref[dev] = np.where(moved, reading, ref)
        self.stuck_since[dev] = np.where(moved, ts, self.stuck_since[dev])

    def _cycle(self, dev: IntArray, ts: Int64Array, fill: FloatArray, emptied: BoolArray) -> None:
        """Add each reading (one in ``ring_stride``) to its bin's cycle ring and refit the fill speed."""
        k = self.config.forecast_points
        new_cycle = emptied | (self.cycle_start[dev] == NEVER)
        reset = dev[new_cycle]
        self.cycle_start[reset] = ts[new_cycle]
        self.ring_count[reset] = 0
        self.ring_stride[reset] = 1
        self.ring_skip[reset] = 0
        skip = self.ring_skip[dev] + 1
        take = skip >= self.ring_stride[dev]
        self.ring_skip[dev] = np.where(take, 0, skip)
        rows, ts, fill = dev[take], ts[take], fill[take]
        crowded = rows[self.ring_count[rows] >= k]
        if len(crowded):  # keep every other point, and from now on every other reading
            self.ring_h[crowded, : k // 2] = self.ring_h[crowded, 0::2]
            self.ring_fill[crowded, : k // 2] = self.ring_fill[crowded, 0::2]
            self.ring_count[crowded] = k // 2
            self.ring_stride[crowded] = np.minimum(
                self.ring_stride[crowded].astype(np.int32) * 2, _MAX_STRIDE
            )
        slot = self.ring_count[rows].astype(np.intp)
        self.ring_h[rows, slot] = (ts - self.cycle_start[rows]) / _HOUR_MS
        self.ring_fill[rows, slot] = fill
        self.ring_count[rows] += 1
        self._fit(rows, ts)

    def _fit(self, rows: IntArray, ts: Int64Array) -> None:
        c = self.config
        enough = self.ring_count[rows] >= c.forecast_min_points
        self.full_at[rows[~enough]] = np.nan
        rows, ts = rows[enough], ts[enough]
        count = self.ring_count[rows]
        use = np.arange(c.forecast_points) < count[:, None]
        slope32, level32 = theil_sen(self.ring_h[rows], self.ring_fill[rows].astype(np.float32), use)
        slope, level = slope32.astype(np.float64), level32.astype(np.float64)
        filling = slope > c.min_fill_rate_pct_h  # NaN: False
        hours_to = (c.full_pct - level) / np.where(filling, slope, 1.0)
        at = self.cycle_start[rows] + hours_to * _HOUR_MS
        self.full_at[rows] = np.where(filling, np.maximum(at, ts), np.nan)

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        c, ks = self.config, ctx.state[BIN]
        quiet = ctx.suppressed.get(BIN)
        ok = np.ones(ks.n, np.bool_) if quiet is None else ~quiet
        last = ks.last_ts
        fill = self.fill.astype(np.float64)
        full = (self.rung == 2) & ok
        overflowing = (self.overflow_since >= 0) & ok
        full_h = (last - self.full_since) / _HOUR_MS
        unchanged_days = (last - self.stuck_since) / _DAY_MS
        stuck = (self.stuck_since >= 0) & (unchanged_days >= c.stuck_days) & ~overflowing & ok
        self._records(ctx, ok)
        return [
            where_active(
                "bin_near_full", (self.rung == 1) & ok, fill, c.near_full_pct, since_ms=self.near_since
            ),
            where_active("bin_full", full, fill, c.full_pct, since_ms=self.full_since),
            where_active("bin_overflow", overflowing, fill, _FULL, since_ms=self.overflow_since),
            where_active(
                "bin_fire",
                (self.fire_since >= 0) & ok,
                ks.values["temperature"],
                self.fire_limit,
                since_ms=self.fire_since,
            ),
            where_active(
                "bin_tipped",
                (self.tipped_since >= 0) & ok,
                ks.values["tilt"],
                c.tipped_deg,
                since_ms=self.tipped_since,
            ),
            where_active(
                "bin_missed_collection",
                full & (full_h * _HOUR_MS >= c.collection_sla_s * 1000.0),
                full_h,
                c.collection_sla_s / 3600.0,
                since_ms=self.full_since,
            ),
            where_active("bin_stuck_sensor", stuck, unchanged_days, c.stuck_days, since_ms=self.stuck_since),
        ]

    def _records(self, ctx: TickContext, ok: BoolArray) -> None:
        if self._emptied:
            dev, before, after, at = (np.concatenate(parts) for parts in zip(*self._emptied, strict=True))
            self._emptied.clear()
            fields = {"fill_before": before, "fill_after": after, "collected_ms": at.astype(np.float64)}
            ctx.records.append(
                KpiTable("bin_collection", BIN.value, tuple(self.bins.id_text(dev)), fields, ctx.now_ms)
            )
        if ctx.now_ms < self._next_forecast_ms:
            return
        every = round(self.config.forecast_every_s * 1000)
        self._next_forecast_ms = (ctx.now_ms // every + 1) * every
        rows = np.flatnonzero(~np.isnan(self.full_at) & (self.rung < 2) & ok)
        if len(rows):
            hours = np.maximum(self.full_at[rows] - ctx.now_ms, 0.0) / _HOUR_MS
            fields = {"fill": self.fill[rows].astype(np.float64), "hours_to_full": hours}
            ctx.records.append(
                KpiTable("bin_forecast", BIN.value, tuple(self.bins.id_text(rows)), fields, ctx.now_ms)
            )
