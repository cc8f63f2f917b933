"""How unusual a reading is for its time of day: a generic detector for series without a physical rule.

The score of a reading is a robust z against what the same series did at the same time of day before::

    score = |x - level| / scale

``level`` and ``scale`` belong to the reading's time-of-day bin (``bins`` bins per ``period_s``): the
median of the series' earlier readings in that bin and 1.4826 × their median absolute deviation (MAD),
which for Gaussian noise is the standard deviation, so a score reads as "sigmas from usual". Two guards:

- The scale has a floor (``rel_floor`` × |level|, and an absolute ``min_scale``): a bin whose history is
  constant (a cabinet's 12 W by day) would otherwise call a watt's change infinitely unusual.
- A reading is also compared with the ``neighbours`` bins on either side and keeps its lowest score: an
  event that drifts in time of day (streetlights switch at sunset, about a minute earlier or later each day)
  moves from one bin into the next without looking unusual to either.

Scores of 0-3 are everyday noise. A sensible alarm threshold is 6: for Gaussian noise one reading in ~10^9
scores that high, and requiring a few consecutive readings above it (``EnergyAnomalyDetector``) leaves only
real changes: a circuit burning by day, half a circuit dark, a load that should not be there.

``anomaly_scores`` is the batch form (exact medians over each bin's last ``memory`` readings; a reference and
an analysis tool). ``SeasonalBaseline`` is the streaming form for many series at once: per series and bin an
EWMA of the level and of the absolute deviation in float32 arrays (scale = √(π/2) × mean absolute deviation,
which also equals the standard deviation for Gaussian noise), with updates clipped to ``clip`` scales so one
wild reading barely moves the baseline. On the same data both give nearly the same scores.
``EnergyAnomalyDetector`` applies it to every lighting cabinet's active power. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.engine import TickContext
from analytics.findings import Conditions, RuleInfo
from analytics.state import NEVER, Batch, LiveState
from analytics.topology import Topology
from devices.kinds import DeviceKind

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

MAD_TO_SIGMA = 1.4826  # 1 / Φ⁻¹(3/4): MAD × this is σ for Gaussian noise
MEAN_AD_TO_SIGMA = math.sqrt(math.pi / 2)  # mean absolute deviation × this is σ for Gaussian noise
_TINY = 1e-12  # scale floor when every other floor is 0: a constant series scores any change as huge
_DAY_MS = 86_400_000
_CHUNK = 4096  # rows of the batch form's window matrix at a time
_RUN_MAX = np.iinfo(np.int16).max


@dataclass(frozen=True, slots=True, kw_only=True)
class SeasonalConfig:
    """How a seasonal baseline bins, remembers and floors. All CHOICE (DOMAIN.md has no generic rule)."""

    period_s: float = 86_400.0  # one day: lighting, traffic and drainage all follow the daily cycle
    bins: int = 48  # half-hour bins: narrow enough for a switching edge, wide enough to fill up in days
    memory: int = 200  # readings per bin remembered: a week of 1-minute readings in a 30-minute bin
    min_points: int = 10  # a bin scores nothing until it has seen this many readings
    neighbours: int = 1  # bins on either side a reading may match (events drifting in time of day)
    rel_floor: float = 0.02  # the scale is at least 2 % of the level: slow drifts of that size are no news
    min_scale: float = 0.0  # and at least this much, in the series' unit
    clip: float = 3.0  # streaming: one reading moves the baseline by at most this many scales

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise RuleConfigError(f"period_s must be a positive number, not {self.period_s}")
        if not 1 <= self.bins <= 10_000:
            raise RuleConfigError(f"bins must be 1 to 10000, not {self.bins}")
        if not 1 <= self.min_points <= self.memory <= 65_535:
            raise RuleConfigError(
                f"need 1 <= min_points <= memory <= 65535, not {self.min_points} / {self.memory}"
            )
        if not 0 <= 2 * self.neighbours < self.bins:
            raise RuleConfigError(f"neighbours must be >= 0 and leave bins apart, not {self.neighbours}")
        if not (self.rel_floor >= 0 and self.min_scale >= 0 and math.isfinite(self.min_scale)):
            raise RuleConfigError("rel_floor and min_scale must be finite numbers >= 0")
        if not self.clip > 0:
            raise RuleConfigError(f"clip must be > 0, not {self.clip}")

    def bin_of(self, ts_ms: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Time-of-day bin of each timestamp (epoch ms, UTC)."""
        period_ms = self.period_s * 1000.0
        phase = np.mod(np.asarray(ts_ms, dtype=np.float64), period_ms) / period_ms
        return np.minimum((phase * self.bins).astype(np.intp), self.bins - 1)


def nanmedian_rows(a: npt.ArrayLike) -> FloatArray:
    """Median along the last axis ignoring NaN; NaN for a row with no number (and no warning)."""
    arr = np.sort(np.asarray(a, dtype=np.float64), axis=-1)  # NaN sorts last
    if arr.shape[-1] == 0:
        return np.full(arr.shape[:-1], np.nan)
    count = np.count_nonzero(~np.isnan(arr), axis=-1)
    lo = np.maximum((count - 1) // 2, 0)[..., None]
    hi = np.maximum(count // 2, 0)[..., None]
    mid = 0.5 * (np.take_along_axis(arr, lo, -1) + np.take_along_axis(arr, hi, -1))[..., 0]
    return np.where(count > 0, mid, np.nan)


def _scale(spread: npt.ArrayLike, level: npt.ArrayLike, rel_floor: float, floor: npt.ArrayLike) -> FloatArray:
    floored = np.maximum(np.asarray(spread, np.float64), rel_floor * np.abs(np.asarray(level, np.float64)))
    return np.maximum(np.maximum(floored, np.asarray(floor, np.float64)), _TINY)


def _circular_distance(bins: npt.NDArray[np.intp], j: int, n: int) -> npt.NDArray[np.intp]:
    d = np.abs(bins - j)
    return np.asarray(np.minimum(d, n - d), dtype=np.intp)


def anomaly_scores(
    ts_ms: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    period_s: float = 86_400.0,
    bins: int = 48,
    memory: int = 200,
    min_points: int = 10,
    neighbours: int = 1,
    rel_floor: float = 0.02,
    min_scale: float = 0.0,
) -> FloatArray:
    """One anomaly score per reading of one series (see the module docstring), computed causally.

    A reading is scored against the last ``memory`` earlier readings (in time order; ties keep input
    order) of its own time-of-day bin and of the ``neighbours`` bins on either side, and keeps the lowest
    of those scores; a bin with fewer than ``min_points`` earlier readings takes no part. The score is NaN
    for a NaN value and while no bin in reach has enough history. ``ts_ms``: epoch milliseconds (UTC),
    in any order. Costs O(readings × (2 × neighbours + 1) × memory).
    """
    config = SeasonalConfig(
        period_s=period_s,
        bins=bins,
        memory=memory,
        min_points=min_points,
        neighbours=neighbours,
        rel_floor=rel_floor,
        min_scale=min_scale,
    )
    ts = np.asarray(ts_ms, dtype=np.int64)
    x_in = np.asarray(values, dtype=np.float64)
    if ts.shape != x_in.shape or ts.ndim != 1:
        raise ValueError(f"ts_ms and values must be 1-d of one length, not {ts.shape} and {x_in.shape}")
    order = np.argsort(ts, kind="stable")
    x = x_in[order]
    valid = ~np.isnan(x)
    which = config.bin_of(ts[order])
    best = np.full(len(x), np.inf)
    for j in range(config.bins):
        history = np.flatnonzero(valid & (which == j))  # positions in time order
        if len(history) < config.min_points:
            continue
        asking = np.flatnonzero(valid & (_circular_distance(which, j, config.bins) <= config.neighbours))
        end = np.searchsorted(history, asking, side="left")  # earlier readings of bin j
        count = np.minimum(end, config.memory)
        scored = count >= config.min_points
        asking, end, count = asking[scored], end[scored], count[scored]
        for start in range(0, len(asking), _CHUNK):
            rows = slice(start, start + _CHUNK)
            z = _window_scores(x[history], x[asking[rows]], end[rows], count[rows], config)
            best[asking[rows]] = np.minimum(best[asking[rows]], z)
    scores = np.full(len(x), np.nan)
    scores[order] = np.where(np.isinf(best), np.nan, best)
    return scores


def _window_scores(
    history: FloatArray,
    x: FloatArray,
    end: npt.NDArray[np.intp],
    count: npt.NDArray[np.intp],
    c: SeasonalConfig,
) -> FloatArray:
    """Robust z of ``x`` against ``history[end - count : end]`` row by row."""
    offsets = np.arange(c.memory)
    index = end[:, None] - c.memory + offsets[None, :]
    inside = offsets[None, :] >= (c.memory - count)[:, None]
    window = np.where(inside, history[np.maximum(index, 0)], np.nan)
    level = nanmedian_rows(window)
    mad = nanmedian_rows(np.abs(window - level[:, None]))
    return np.abs(x - level) / _scale(MAD_TO_SIGMA * mad, level, c.rel_floor, c.min_scale)


class SeasonalBaseline:
    """Streaming seasonal baselines of ``n_series`` series: per series and bin, EWMA level and spread.

    ``floor``: an absolute scale floor per series (or one for all) on top of the config's, in the series'
    unit. Memory: 10 bytes per series and bin.
    """

    def __init__(self, n_series: int, config: SeasonalConfig, floor: npt.ArrayLike = 0.0) -> None:
        self.config = config
        shape = (n_series, config.bins)
        self.level: Float32Array = np.zeros(shape, np.float32)
        self.spread: Float32Array = np.zeros(shape, np.float32)  # EWMA of |x - level|
        self.count: npt.NDArray[np.uint16] = np.zeros(shape, np.uint16)  # saturates at memory
        floors = np.broadcast_to(np.asarray(floor, np.float64), (n_series,))
        self.floor: Float32Array = np.maximum(floors, config.min_scale).astype(np.float32)

    def _scale(self, series: npt.NDArray[np.intp], which: npt.NDArray[np.intp]) -> FloatArray:
        return _scale(
            MEAN_AD_TO_SIGMA * self.spread[series, which],
            self.level[series, which],
            self.config.rel_floor,
            self.floor[series],
        )

    def scores(self, series_idx: npt.ArrayLike, ts_ms: npt.ArrayLike, values: npt.ArrayLike) -> FloatArray:
        """Scores of readings against the baselines as they stand (no update); NaN as in the batch form."""
        series = np.asarray(series_idx, dtype=np.intp)
        return self._scores(series, self.config.bin_of(ts_ms), np.asarray(values, dtype=np.float64))

    def _scores(self, series: npt.NDArray[np.intp], which: npt.NDArray[np.intp], x: FloatArray) -> FloatArray:
        c = self.config
        best = np.full(len(x), np.inf)
        for step in range(-c.neighbours, c.neighbours + 1):
            other = np.mod(which + step, c.bins)
            ready = self.count[series, other] >= c.min_points
            z = np.abs(x - self.level[series, other]) / self._scale(series, other)
            best = np.where(ready, np.minimum(best, z), best)
        return np.where(np.isinf(best) | np.isnan(x), np.nan, best)

    def update(self, series_idx: npt.ArrayLike, ts_ms: npt.ArrayLike, values: npt.ArrayLike) -> FloatArray:
        """Score readings (each series at most once per call), then learn from them. NaN values are
        skipped."""
        c = self.config
        series = np.asarray(series_idx, dtype=np.intp)
        x = np.asarray(values, dtype=np.float64)
        which = c.bin_of(ts_ms)
        scores = self._scores(series, which, x)
        known = ~np.isnan(x)
        series, x, which = series[known], x[known], which[known]
        count = self.count[series, which].astype(np.float64)
        level = self.level[series, which].astype(np.float64)
        spread = self.spread[series, which].astype(np.float64)
        alpha = 1.0 / np.minimum(count + 1.0, c.memory)  # a running mean until the memory is full
        deviation = x - level
        # Before min_points the bin is still finding its level: no clipping, or it would never get there.
        limit = np.where(count >= c.min_points, c.clip * self._scale(series, which), np.inf)
        step = np.clip(deviation, -limit, limit)
        self.level[series, which] = level + alpha * step
        new_spread = spread + alpha * (np.minimum(np.abs(deviation), limit) - spread)
        self.spread[series, which] = np.where(count == 0, 0.0, new_spread)
        self.count[series, which] = np.minimum(count + 1, c.memory).astype(np.uint16)
        return scores

    def expected(self, series_idx: npt.ArrayLike, ts_ms: npt.ArrayLike) -> FloatArray:
        """The usual value (the bin's level) for each series at each time; NaN before min_points."""
        series = np.asarray(series_idx, dtype=np.intp)
        which = self.config.bin_of(ts_ms)
        ready = self.count[series, which] >= self.config.min_points
        return np.where(ready, self.level[series, which].astype(np.float64), np.nan)

    @property
    def nbytes(self) -> int:
        return self.level.nbytes + self.spread.nbytes + self.count.nbytes + self.floor.nbytes


# ------------------------------------------------------------------------------- energy anomaly detector


ENERGY_ANOMALY = "energy_anomaly"
CABINET = DeviceKind.CABINET


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyAnomalyRules:
    """When a cabinet's active power is unusual for the time of day. All CHOICE (DOMAIN.md section 2 has
    no rule on circuit energy; the numbers keep the simulator's healthy circuits quiet)."""

    baseline: SeasonalConfig = field(default_factory=SeasonalConfig)
    power_field: str = "active_power"
    threshold: float = 6.0  # score that counts as unusual (see the module docstring)
    clear_threshold: float = 4.0  # a finding clears after `consecutive` readings below this (hysteresis)
    consecutive: int = 3  # readings in a row above the threshold before a finding opens
    warmup_days: float = 2.0  # a cabinet's first days only teach the baseline
    # The scale is at least 1 % of the circuit's rated load: one failed lamp head on a circuit of 50 to 150
    # is the lamp rules' business, not an energy anomaly.
    rated_floor_fraction: float = 0.01
    min_scale_w: float = 5.0  # for a cabinet without a rated power: a few lamp heads' standby draw

    def __post_init__(self) -> None:
        if not 0 < self.clear_threshold <= self.threshold:
            raise RuleConfigError(
                f"need 0 < clear_threshold <= threshold, not {self.clear_threshold} / {self.threshold}"
            )
        if self.consecutive < 1:
            raise RuleConfigError(f"consecutive must be >= 1, not {self.consecutive}")
        if not self.warmup_days >= 0:
            raise RuleConfigError(f"warmup_days must be >= 0, not {self.warmup_days}")
        if not (self.rated_floor_fraction >= 0 and self.min_scale_w >= 0):
            raise RuleConfigError("rated_floor_fraction and min_scale_w must be >= 0")


class EnergyAnomalyDetector:
    """Rule ``energy_anomaly`` (subject cabinet): active power unusual for the time of day, for
    ``consecutive`` readings, after the cabinet's warm-up. Value: the latest power; threshold: the power
    usual at that time of day. A change that persists becomes the usual after about a week (the clipped
    updates) and the finding clears; a cabinet that a wider finding explains (a circuit outage, a dead
    gateway: ``ctx.suppressed``) reports none."""

    def __init__(self, topology: Topology, config: EnergyAnomalyRules | None = None) -> None:
        self.config = c = config or EnergyAnomalyRules()
        table = topology.table(CABINET)
        n = len(table)
        rated_floor = np.where(
            np.isnan(table.rated_power_w), c.min_scale_w, c.rated_floor_fraction * table.rated_power_w
        )
        self.baseline = SeasonalBaseline(n, c.baseline, np.maximum(rated_floor, c.min_scale_w))
        self._in_service = table.in_service
        self._first_ts: Int64Array = np.full(n, NEVER, np.int64)
        self._above: npt.NDArray[np.int16] = np.zeros(n, np.int16)  # readings in a row above threshold
        self._below: npt.NDArray[np.int16] = np.zeros(n, np.int16)  # ... below clear_threshold
        self._run_start: Int64Array = np.zeros(n, np.int64)
        self._active: BoolArray = np.zeros(n, np.bool_)
        self._since: Int64Array = np.zeros(n, np.int64)
        self._value: Float32Array = np.full(n, np.nan, np.float32)
        self._expected: Float32Array = np.full(n, np.nan, np.float32)
        self._rules = (
            RuleInfo(
                ENERGY_ANOMALY,
                CABINET.value,
                "generic",
                "Unusual circuit power for the time of day",
                "active power {value:.0f} W where about {threshold:.0f} W is usual at this time of day, "
                "since {since}",
                "W",
            ),
        )

    @property
    def kinds(self) -> frozenset[DeviceKind]:
        return frozenset({CABINET})

    @property
    def rules(self) -> Sequence[RuleInfo]:
        return self._rules

    def observe(self, batch: Batch, state: LiveState) -> None:
        power = batch.fields.get(self.config.power_field)
        if power is None:
            return
        c = self.config
        cab, ts = batch.device, batch.ts_ms
        first = np.where(self._first_ts[cab] == NEVER, ts, self._first_ts[cab])
        self._first_ts[cab] = first
        usual = self.baseline.expected(cab, ts)  # before this reading teaches the baseline
        scores = self.baseline.update(cab, ts, power)
        judged = ~np.isnan(scores) & (ts - first >= c.warmup_days * _DAY_MS)
        high = judged & (scores > c.threshold)
        low = judged & (scores < c.clear_threshold)
        above = np.where(high, self._above[cab] + 1, 0)
        self._run_start[cab] = np.where(high & (above == 1), ts, self._run_start[cab])
        self._above[cab] = np.minimum(above, _RUN_MAX)
        self._below[cab] = np.minimum(np.where(low, self._below[cab] + 1, 0), _RUN_MAX)
        was = self._active[cab]
        opens = ~was & (above >= c.consecutive)
        clears = was & (self._below[cab] >= c.consecutive)
        self._active[cab] = (was | opens) & ~clears
        self._since[cab] = np.where(opens, self._run_start[cab], self._since[cab])
        known = ~np.isnan(power)
        self._value[cab[known]] = power[known]
        self._expected[cab[known]] = usual[known]

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        mask = self._active & self._in_service
        quiet = ctx.suppressed.get(CABINET)  # explained by a wider finding (a circuit outage, a dead gateway)
        if quiet is not None:
            mask &= ~quiet
        return [Conditions.where(ENERGY_ANOMALY, mask, self._value, self._expected, since_ms=self._since)]

    @property
    def nbytes(self) -> int:
        arrays = (
            self._first_ts,
            self._above,
            self._below,
            self._run_start,
            self._active,
            self._since,
            self._value,
            self._expected,
        )
        return self.baseline.nbytes + sum(a.nbytes for a in arrays)
