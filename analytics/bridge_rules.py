"""Bridge and tunnel sensor nodes (DOMAIN.md section 3): static limits in three levels, modal frequency
drop, and slow trends; all over the nodes' interval summaries (subject ``bridge_node``).

=======================  ===================================================  ==============================
rule                     value                                                threshold
=======================  ===================================================  ==============================
bridge_crack_width       crack width (mm)                                     the level's limit (mm)
bridge_deflection        peak deflection from the baseline (mm)               the level's limit (mm)
bridge_strain            peak strain from the baseline (µε)                   the level's limit (µε)
bridge_tilt              tilt from the baseline (°)                           the level's limit (°)
bridge_vibration         RMS acceleration (m/s²)                              the level's limit (m/s²)
bridge_freq_drop         modal frequency drop below the baseline (%)          mode 1 baseline (Hz)
bridge_deflection_trend  drift of daily mean deflection (mm/year)             growth limit (mm/year)
bridge_crack_trend       growth of daily mean crack width (mm/day)            growth limit (mm/day)
=======================  ===================================================  ==============================

Levels: 1 is the most severe (DOMAIN: three alarm levels). A channel reaches level 3 / 2 / 1 at 0.75 / 1 /
1.5 × its limit (CHOICE) at once, and steps down only after a whole day below 95 % of its level's threshold:
cracks breathe with the temperature and traffic peaks twice a day, so a value hovering at a limit or
dipping under it every afternoon keeps one finding. The value reported is the episode's peak.

Absolute or relative limits (``ChannelLimit.relative``). Crack width and vibration have a natural zero and
published limits, so they are judged as read (crack width against the node's registry ``crack_limit_mm``,
0.20 / 0.15 mm by environment, STD). Strain, deflection and tilt sensors read zero wherever they were
installed and move with the deck's temperature, so they are judged as the change from the node's own
baseline: what the node's thermal model (below) predicts at the reading's temperature and the reference
period's mean traffic. A registry param (``deflection_limit_mm`` ...) sets a node's own limit.

The thermal model. Per node and channel, least squares of the reading on ``[1, T, min(T - knee, 0), L]``:
T the deck temperature, the knee term the stiffening of bearings and asphalt below ~0 °C (Z24, KW51; for
the frequencies only, the other channels stay linear), L the interval's RMS acceleration as a proxy of
traffic load: without it, rush-hour traffic (heaviest when the deck is warm) leaks into the thermal slope
and the season's warming looks like a deflection trend. It learns from every reading of a node's first
``reference_days``; frequencies keep learning while the node is healthy, so the first frosts teach the knee
instead of alarming. Only running sums are kept (``X'X``, ``X'y``, ``y'y`` per node and channel, float64:
a city has a few hundred nodes, and float32 sums of a year of readings lose the digits a 0.1 % residual
needs); a small ridge keeps a slope the data cannot determine yet (a constant temperature, no frost) at 0.

Frequency drop: r = f / f̂ - 1 per mode, averaged over the modes. The drop is the larger of an EWMA of -r
(drift) and, after ``jump_readings`` consecutive readings each below -(level-3 drop) and ``jump_sigmas``
residual sigmas, the smallest drop of that run (a jump, caught in a few readings). Levels: DOMAIN's example
platform grades 5 / 13 / 16 %. The model takes out the up to 4 % that temperature moves frequencies; a
retrofit moved KW51's by 2.6 % and the simulator injects drops of 3 to 8 %: level 3 here starts at 2 %.

Trends: each node's readings minus the model's temperature terms (the load term stays: its proxy also
feels the wind) are averaged per UTC day; the last ``trend_days`` daily means give a Theil-Sen slope
(median of pairwise slopes), recomputed when a node's day closes.

A node that a wider finding explains (``ctx.suppressed``: a dead gateway) reports none of these rules.
Pure: values in, values out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.engine import KpiTable, TickContext
from analytics.findings import Conditions, RuleInfo
from analytics.seasonal import nanmedian_rows
from analytics.state import NEVER, Batch, LiveState
from analytics.topology import Topology
from devices.kinds import FIELDS, DeviceKind

Int8Array = npt.NDArray[np.int8]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

NODE = DeviceKind.BRIDGE_NODE
TEMPERATURE = "temperature"
_DAY_MS = 86_400_000
_DAYS_PER_YEAR = 365.25
_BRIDGE_FIELDS = FIELDS[NODE]

CRACK_WIDTH = "bridge_crack_width"
DEFLECTION = "bridge_deflection"
STRAIN = "bridge_strain"
TILT = "bridge_tilt"
VIBRATION = "bridge_vibration"
FREQ_DROP = "bridge_freq_drop"
DEFLECTION_TREND = "bridge_deflection_trend"
CRACK_TREND = "bridge_crack_trend"


def _check_levels(name: str, values: tuple[float, float, float], upper: float) -> None:
    if len(values) != 3 or not all(0 < v < upper for v in values) or not values[0] > values[1] > values[2]:
        raise RuleConfigError(
            f"{name} must be three numbers in (0, {upper:g}) for levels 1 > 2 > 3: {values}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLimit:
    """A static limit on one reading field; ``limit`` is the level-2 threshold, ``param`` a registry param
    that sets it per node."""

    field: str
    limit: float
    unit: str
    label: str
    relative: bool  # judge the change from the node's temperature-corrected baseline, not the reading
    param: str = ""
    level_factors: tuple[float, float, float] = (1.5, 1.0, 0.75)  # levels 1, 2, 3 (CHOICE, DOMAIN s. 3)
    decimals: int = 2

    def __post_init__(self) -> None:
        if self.field not in _BRIDGE_FIELDS or self.field == TEMPERATURE:
            raise RuleConfigError(f"{self.field!r} is not a bridge_node reading field to limit")
        if not (self.limit > 0 and math.isfinite(self.limit)):
            raise RuleConfigError(f"{self.field}: limit must be a positive number, not {self.limit}")
        _check_levels(f"{self.field} level_factors", self.level_factors, math.inf)


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeRules:
    """Bridge rule settings; DOMAIN.md section 3 unless said otherwise."""

    # STD: dead-load crack width of reinforced concrete, 0.20 mm (environment A/B) or 0.15 mm (C/D); the
    # node's registry param crack_limit_mm says which applies.
    crack_width: ChannelLimit = ChannelLimit(
        field="crack_width",
        limit=0.20,
        unit="mm",
        label="crack width",
        relative=False,
        param="crack_limit_mm",
        decimals=3,
    )
    # CHOICE: of the order of a beam's live-load deflection allowance, span / 600 for a 30 m span.
    deflection: ChannelLimit = ChannelLimit(
        field="deflection_max",
        limit=50.0,
        unit="mm",
        label="peak deflection",
        relative=True,
        param="deflection_limit_mm",
        decimals=1,
    )
    # CHOICE: 400 µε is 80 MPa in steel (E = 200 GPa); a member's design value belongs in the registry.
    strain: ChannelLimit = ChannelLimit(
        field="strain_max",
        limit=400.0,
        unit="µε",
        label="peak strain",
        relative=True,
        param="strain_limit_ue",
        decimals=0,
    )
    # CHOICE: 0.1° of rotation of a pier or bearing from where it stood.
    tilt: ChannelLimit = ChannelLimit(
        field="tilt",
        limit=0.1,
        unit="°",
        label="tilt",
        relative=True,
        param="tilt_limit_deg",
        decimals=3,
    )
    # CHOICE: the order of footbridge comfort criteria (EN 1990 Annex A2: 0.7 m/s² vertical, a peak).
    vibration: ChannelLimit = ChannelLimit(
        field="accel_rms",
        limit=0.5,
        unit="m/s²",
        label="RMS acceleration",
        relative=False,
        param="accel_limit_m_s2",
        decimals=3,
    )
    clear_fraction: float = 0.95  # CHOICE: a level clears below 95 % of its threshold...
    # CHOICE: ...held for a whole daily cycle: cracks open in the cold night, traffic peaks twice a day.
    clear_hold_s: float = 86_400.0

    # Thermal model (DOMAIN s. 3: fit on a healthy reference period, bilinear with a knee near 0-2.5 °C).
    reference_days: float = 2.0  # CHOICE: two daily temperature cycles
    min_reference_readings: int = 360  # CHOICE: and at least 6 hours of minute readings
    knee_c: float = 0.0  # CHOICE: Z24's knee; KW51's lies nearer 2.5 °C
    load_field: str = "accel_rms"  # traffic proxy; "" for none
    load_scale: float = 0.01  # m/s²: the load term's unit for the ridge
    ridge_readings: float = 100.0  # CHOICE: the ridge weighs like this many readings one unit off the mean

    # Frequency drop (DOMAIN s. 3 grades 5 / 13 / 16 %; see the module docstring for level 3 at 2 %).
    freq_fields: tuple[str, ...] = ("freq_1", "freq_2", "freq_3")
    drop_levels: tuple[float, float, float] = (0.16, 0.13, 0.02)  # levels 1, 2, 3 (fractions)
    ewma_alpha: float = 0.05  # CHOICE: drift statistic remembers ~20 readings
    jump_sigmas: float = 4.0  # CHOICE: a jump reading is also this many residual sigmas below 0
    jump_readings: int = 3  # CHOICE: consecutive jump readings that raise a finding
    learn_while_healthy: bool = True
    # CHOICE: the compensated residual goes to the bridge_modal series this often (data time), so the
    # screens show it between alarm level changes; a few hundred nodes every 5 min is a few KB.
    record_every_s: float = 300.0

    # Trends (DOMAIN s. 3: deflection growth per year, crack growth per day, after temperature correction).
    trend_days: int = 30  # CHOICE: daily means kept per node
    trend_min_days: int = 7  # CHOICE: daily means needed before a slope counts
    min_day_readings: int = 24  # CHOICE: a day with fewer readings gives no mean
    deflection_trend_field: str = "deflection"
    deflection_growth_mm_per_year: float = 5.0  # CHOICE
    crack_growth_mm_per_day: float = 0.002  # CHOICE: 0.1 mm to a 0.2 mm limit within two months

    def __post_init__(self) -> None:
        if not (0 < self.clear_fraction < 1 and self.clear_hold_s >= 0):
            raise RuleConfigError("clear_fraction must be in (0, 1) and clear_hold_s >= 0")
        if not (self.reference_days > 0 and self.min_reference_readings >= 5):
            raise RuleConfigError("reference_days must be > 0 and min_reference_readings >= 5")
        if not (math.isfinite(self.knee_c) and self.load_scale > 0 and self.ridge_readings > 0):
            raise RuleConfigError("knee_c must be finite, load_scale and ridge_readings > 0")
        fields = (
            *self.freq_fields,
            self.deflection_trend_field,
            *((self.load_field,) if self.load_field else ()),
        )
        if not self.freq_fields or any(f not in _BRIDGE_FIELDS for f in fields):
            raise RuleConfigError(f"unknown bridge_node field among {fields}")
        _check_levels("drop_levels", self.drop_levels, 1.0)
        if not (0 < self.ewma_alpha <= 1 and self.jump_sigmas >= 0 and self.jump_readings >= 1):
            raise RuleConfigError("need 0 < ewma_alpha <= 1, jump_sigmas >= 0, jump_readings >= 1")
        if not (2 <= self.trend_min_days <= self.trend_days <= 400 and self.min_day_readings >= 1):
            raise RuleConfigError("need 2 <= trend_min_days <= trend_days <= 400 and min_day_readings >= 1")
        if not (self.deflection_growth_mm_per_year > 0 and self.crack_growth_mm_per_day > 0):
            raise RuleConfigError("trend growth limits must be > 0")
        if not self.record_every_s > 0:
            raise RuleConfigError("record_every_s must be > 0")


def grade(magnitude: FloatArray, thresholds: FloatArray, held: Int8Array, clear_fraction: float) -> Int8Array:
    """Level (1 most severe, 0 none) of each ``magnitude`` against ``thresholds[..., :]`` (levels 1, 2,
    3). A level already ``held`` (or a less severe one) stays while the magnitude is at least
    ``clear_fraction`` × its threshold; a NaN magnitude keeps the held level."""
    level = np.zeros(magnitude.shape, np.int8)
    for lv in (3, 2, 1):
        threshold = thresholds[..., lv - 1]
        keep = (held > 0) & (held <= lv) & (magnitude >= clear_fraction * threshold)
        level = np.where((magnitude >= threshold) | keep, np.int8(lv), level)
    return np.where(np.isnan(magnitude), held, level).astype(np.int8)


class _ThermalFit:
    """Per node and target: least squares of y on [1, T, min(T - knee, 0), L] from running sums."""

    def __init__(self, n: int, targets: int, ridge: FloatArray) -> None:
        """``ridge``: (targets, 4), the penalty on each coefficient of each target."""
        self.xx = np.zeros((n, targets, 4, 4))
        self.xy = np.zeros((n, targets, 4))
        self.yy = np.zeros((n, targets))
        self.coef = np.full((n, targets, 4), np.nan)
        self.stale = np.zeros((n, targets), np.bool_)
        self.ridge = ridge[:, :, None] * np.eye(4)[None, :, :]

    def add(self, nodes: npt.NDArray[np.int32], x: FloatArray, y: FloatArray, use: BoolArray) -> None:
        w = use.astype(np.float64)
        xs = np.where(np.isfinite(x), x, 0.0)
        ys = np.where(use, y, 0.0)
        self.xx[nodes] += w[:, :, None, None] * (xs[:, None, :, None] * xs[:, None, None, :])
        self.xy[nodes] += (w * ys)[:, :, None] * xs[:, None, :]
        self.yy[nodes] += w * ys * ys
        self.stale[nodes] |= use

    def count(self, nodes: npt.NDArray[np.int32]) -> FloatArray:
        return self.xx[nodes, :, 0, 0]

    def coefficients(self, nodes: npt.NDArray[np.int32]) -> FloatArray:
        stale = self.stale[nodes]
        if stale.any():
            row, k = np.nonzero(stale)
            who = nodes[row]
            a = self.xx[who, k] + self.ridge[k]
            self.coef[who, k] = np.linalg.solve(a, self.xy[who, k][..., None])[..., 0]
            self.stale[who, k] = False
        return self.coef[nodes]

    def sigma(self, nodes: npt.NDArray[np.int32], coef: FloatArray, targets: slice) -> FloatArray:
        """Residual standard deviation of the fits (NaN with fewer than 5 readings)."""
        xx, xy, b = self.xx[nodes, targets], self.xy[nodes, targets], coef[:, targets]
        n = xx[..., 0, 0]
        rss = self.yy[nodes, targets] - 2 * np.einsum("mkj,mkj->mk", b, xy)
        rss += np.einsum("mki,mkij,mkj->mk", b, xx, b)
        return np.where(n > 4, np.sqrt(np.maximum(rss, 0.0) / np.maximum(n - 4, 1)), np.nan)

    @property
    def nbytes(self) -> int:
        return self.xx.nbytes + self.xy.nbytes + self.yy.nbytes + self.coef.nbytes + self.stale.nbytes


def _rule(rule: str, title: str, unit: str, explain: str) -> RuleInfo:
    return RuleInfo(rule, NODE.value, "bridge", f"Bridge {title}", explain, unit)


def _info(rule: str, ch: ChannelLimit) -> RuleInfo:
    p, unit = ch.decimals, ch.unit
    value = f"{{value:.{p}f}} {unit}"
    if ch.relative:
        value = f"{{value:+.{p}f}} {unit} from the node's temperature-corrected baseline"
    explain = f"{ch.label} up to {value}, over the level {{level}} limit of {{threshold:.{p}f}} {unit}, "
    return _rule(rule, f"{ch.label} over its limit", unit, explain + "since {since}")


class BridgeDetector:
    """The bridge rules of the module docstring over every bridge node of ``topology``."""

    def __init__(self, topology: Topology, config: BridgeRules | None = None) -> None:
        self.config = c = config or BridgeRules()
        table = topology.table(NODE)
        self._nodes = table
        self._next_record_ms = 0
        n = len(table)
        self._in_service = table.in_service
        self._channels = (
            (CRACK_WIDTH, c.crack_width),
            (DEFLECTION, c.deflection),
            (STRAIN, c.strain),
            (TILT, c.tilt),
            (VIBRATION, c.vibration),
        )
        limits = [
            table.param(ch.param, ch.limit) if ch.param else np.full(n, ch.limit) for _, ch in self._channels
        ]
        default = np.array([ch.limit for _, ch in self._channels])
        stacked = np.stack(limits, axis=1) if n else np.zeros((0, len(self._channels)))
        self._limits = np.where(stacked > 0, stacked, default).astype(np.float32)  # a bad registry value
        self._factors = np.array([ch.level_factors for _, ch in self._channels])  # (channel, level)
        relative = [ch.field for _, ch in self._channels if ch.relative]
        trend = (c.deflection_trend_field, c.crack_width.field)
        self._targets = tuple(dict.fromkeys((*c.freq_fields, *relative, *trend)))
        self._index = {name: k for k, name in enumerate(self._targets)}
        self._trend_targets = [self._index[f] for f in trend]
        # Only stiffness (the frequencies) has a knee; a ridge of 1e12 keeps the other channels linear.
        ridge = np.tile(
            c.ridge_readings * np.array([0.0, 1.0, 1.0, c.load_scale**2]), (len(self._targets), 1)
        )
        ridge[len(c.freq_fields) :, 2] = 1e12
        self._fit = _ThermalFit(n, len(self._targets), ridge)
        self._first_ts: Int64Array = np.full(n, NEVER, np.int64)
        self._seen: npt.NDArray[np.int32] = np.zeros(n, np.int32)
        self._load_sum = np.zeros(n)  # traffic proxy over the reference period
        self._load_n: npt.NDArray[np.int32] = np.zeros(n, np.int32)
        channels = len(self._channels)
        self._level: Int8Array = np.zeros((n, channels), np.int8)
        self._since: Int64Array = np.zeros((n, channels), np.int64)
        self._value: Float32Array = np.full((n, channels), np.nan, np.float32)  # the episode's peak
        self._below_since: Int64Array = np.full((n, channels), NEVER, np.int64)
        # Frequency drop.
        self._ewma: Float32Array = np.zeros(n, np.float32)
        self._run: npt.NDArray[np.int16] = np.zeros(n, np.int16)
        self._run_drop: Float32Array = np.zeros(n, np.float32)
        self._run_start: Int64Array = np.zeros(n, np.int64)
        self._freq_level: Int8Array = np.zeros(n, np.int8)
        self._freq_since: Int64Array = np.zeros(n, np.int64)
        self._drop: Float32Array = np.full(n, np.nan, np.float32)
        self._f1: Float32Array = np.full(n, np.nan, np.float32)
        # Trends: the open day's sums, a ring of daily means (slot = day % trend_days), the slopes.
        days = c.trend_days
        self._day: Int64Array = np.full(n, NEVER, np.int64)
        self._day_sum = np.zeros((n, 2))
        self._day_n: npt.NDArray[np.int32] = np.zeros((n, 2), np.int32)
        self._ring_day: npt.NDArray[np.int32] = np.full((n, days), -1, np.int32)
        self._ring_mean: Float32Array = np.full((n, 2, days), np.nan, np.float32)
        self._slope: Float32Array = np.full((n, 2), np.nan, np.float32)  # per day
        self._trend_on: BoolArray = np.zeros((n, 2), np.bool_)
        self._trend_since: Int64Array = np.zeros((n, 2), np.int64)
        self._pairs = np.triu_indices(days, k=1)
        self._rules = (
            *(_info(rule, ch) for rule, ch in self._channels),
            _rule(FREQ_DROP, "modal frequency drop", "%",
                  "modal frequencies {value:.1f} % below the node's temperature-compensated baseline (mode 1 "
                  "expected at {threshold:.3f} Hz), level {level}, since {since}"),
            _rule(DEFLECTION_TREND, "deflection drifting", "mm/year",
                  "daily mean deflection drifting {value:+.1f} mm/year after temperature correction, limit "
                  "{threshold:.1f} mm/year, since {since}"),
            _rule(CRACK_TREND, "crack growing", "mm/day",
                  "daily mean crack width growing {value:.4f} mm/day after temperature correction, limit "
                  "{threshold:.4f} mm/day, since {since}"),
        )  # fmt: skip

    @property
    def kinds(self) -> frozenset[DeviceKind]:
        return frozenset({NODE})

    @property
    def rules(self) -> Sequence[RuleInfo]:
        return self._rules

    # ------------------------------------------------------------------------------------------ observe

    def observe(self, batch: Batch, state: LiveState) -> None:
        c = self.config
        nodes, ts = batch.device, batch.ts_ms
        first = np.where(self._first_ts[nodes] == NEVER, ts, self._first_ts[nodes])
        self._first_ts[nodes] = first
        self._seen[nodes] = np.minimum(self._seen[nodes].astype(np.int64) + 1, np.iinfo(np.int32).max)
        learning = (ts - first < c.reference_days * _DAY_MS) | (self._seen[nodes] <= c.min_reference_readings)
        temp = batch.column(TEMPERATURE)
        load = batch.column(c.load_field) if c.load_field else np.zeros(len(nodes))
        load_mean = np.divide(
            self._load_sum[nodes],
            self._load_n[nodes],
            out=np.zeros(len(nodes)),
            where=self._load_n[nodes] > 0,
        )
        x = np.stack(
            [
                np.ones(len(nodes)),
                temp,
                np.minimum(temp - c.knee_c, 0.0),
                np.where(np.isnan(load), load_mean, load),
            ],
            axis=1,
        )
        y = np.stack([batch.column(name) for name in self._targets], axis=1)
        valid = ~np.isnan(y) & ~np.isnan(temp)[:, None]
        coef = self._fit.coefficients(nodes)
        with np.errstate(invalid="ignore"):
            predicted = np.einsum("mkj,mj->mk", coef, x)
        ready = valid & ~learning[:, None] & (self._fit.count(nodes) >= c.min_reference_readings)
        ready &= ~np.isnan(predicted)
        # The model's baseline at this temperature and the reference period's mean traffic.
        baseline = predicted - coef[:, :, 3] * (x[:, 3] - load_mean)[:, None]
        self._judge_limits(batch, nodes, ts, y - baseline, ready)
        healthy = self._judge_frequencies(nodes, ts, y, predicted, coef, ready)
        # Daily means without the temperature terms; the load term stays in (its proxy also feels the wind).
        corrected = y - coef[:, :, 1] * x[:, 1:2] - coef[:, :, 2] * x[:, 2:3]
        self._add_days(nodes, ts, corrected[:, self._trend_targets], ready[:, self._trend_targets])
        learn = valid & learning[:, None]
        if c.learn_while_healthy:
            f = len(c.freq_fields)
            learn[:, :f] |= valid[:, :f] & ~learning[:, None] & healthy[:, None]
        self._fit.add(nodes, x, y, learn)
        loads = learning & ~np.isnan(load)
        self._load_sum[nodes] += np.where(loads, load, 0.0)
        self._load_n[nodes] += loads

    def _judge_limits(
        self, batch: Batch, nodes: npt.NDArray[np.int32], ts: Int64Array, change: FloatArray, ready: BoolArray
    ) -> None:
        value = np.empty((len(nodes), len(self._channels)))
        for i, (_, ch) in enumerate(self._channels):
            k = self._index[ch.field] if ch.relative else -1
            value[:, i] = np.where(ready[:, k], change[:, k], np.nan) if k >= 0 else batch.column(ch.field)
        size, held, tick = np.abs(value), self._level[nodes], ts[:, None]
        thresholds = self._limits[nodes][:, :, None] * self._factors[None, :, :]
        raw = grade(size, thresholds, np.zeros_like(held), self.config.clear_fraction)
        kept = grade(size, thresholds, held, self.config.clear_fraction)
        up = (raw > 0) & ((held == 0) | (raw < held))  # escalates at once
        down = ~up & (kept != held)  # steps down or clears once it stayed down for clear_hold_s
        below = self._below_since[nodes]
        below = np.where(down, np.where(below == NEVER, tick, below), np.where(np.isnan(size), below, NEVER))
        release = down & (tick - below >= self.config.clear_hold_s * 1000)
        level = np.where(up, raw, np.where(release, kept, held))
        self._below_since[nodes] = np.where(release, NEVER, below)
        began = (held == 0) & (level > 0)
        self._since[nodes] = np.where(began, tick, self._since[nodes])
        self._level[nodes] = level
        peak = self._value[nodes]
        higher = began | (level == 0) | (size > np.abs(peak)) | np.isnan(peak)
        self._value[nodes] = np.where(higher & ~np.isnan(value), value, peak)

    def _judge_frequencies(
        self,
        nodes: npt.NDArray[np.int32],
        ts: Int64Array,
        y: FloatArray,
        predicted: FloatArray,
        coef: FloatArray,
        ready: BoolArray,
    ) -> BoolArray:
        """Update the drop statistics; return which readings look healthy enough to learn from."""
        c = self.config
        modes = slice(0, len(c.freq_fields))
        ok = ready[:, modes] & (predicted[:, modes] > 0)
        f_hat = np.where(ok, predicted[:, modes], 1.0)
        r = np.where(ok, y[:, modes] / f_hat - 1.0, 0.0)
        sigma = np.where(ok, self._fit.sigma(nodes, coef, modes) / f_hat, 0.0)
        count = ok.sum(axis=1)
        have = count > 0
        per = np.maximum(count, 1)
        r_mean = r.sum(axis=1) / per
        sigma_mean = np.sqrt(np.nansum(sigma**2, axis=1)) / per
        ewma = np.where(
            have, (1 - c.ewma_alpha) * self._ewma[nodes] + c.ewma_alpha * r_mean, self._ewma[nodes]
        )
        self._ewma[nodes] = ewma
        level3 = c.drop_levels[2]
        jumping = have & (r_mean <= -level3) & (r_mean <= -c.jump_sigmas * sigma_mean)
        run = np.where(jumping, self._run[nodes] + 1, np.where(have, 0, self._run[nodes]))
        run = np.minimum(run, np.iinfo(np.int16).max)
        fresh_run = jumping & (run == 1)
        self._run_start[nodes] = np.where(fresh_run, ts, self._run_start[nodes])
        run_drop = np.where(
            fresh_run, -r_mean, np.where(jumping, np.minimum(self._run_drop[nodes], -r_mean), 0.0)
        )
        self._run[nodes], self._run_drop[nodes] = run, run_drop
        jump = np.where(run >= c.jump_readings, run_drop, 0.0)
        drop = np.where(have, np.maximum(-ewma, jump), np.nan)
        held = self._freq_level[nodes]
        level = grade(
            drop, np.broadcast_to(np.asarray(c.drop_levels), (len(nodes), 3)), held, c.clear_fraction
        )
        began = np.where(jump >= level3, self._run_start[nodes], ts)
        self._freq_since[nodes] = np.where((held == 0) & (level > 0), began, self._freq_since[nodes])
        self._freq_level[nodes] = level
        self._drop[nodes] = np.where(have, drop, self._drop[nodes])
        self._f1[nodes] = np.where(ok[:, 0], predicted[:, 0], self._f1[nodes])
        return np.asarray(have & (level == 0) & (r_mean > -level3 / 2), dtype=np.bool_)

    def _add_days(
        self, nodes: npt.NDArray[np.int32], ts: Int64Array, values: FloatArray, ok: BoolArray
    ) -> None:
        day = ts // _DAY_MS
        current = self._day[nodes]
        rolled = (current != day) & (current != NEVER)
        if rolled.any():
            self._close_days(nodes[rolled], current[rolled], ts[rolled])
        new = current != day
        self._day_sum[nodes] = np.where(new[:, None], 0.0, self._day_sum[nodes]) + np.where(ok, values, 0.0)
        self._day_n[nodes] = np.where(new[:, None], 0, self._day_n[nodes]) + ok
        self._day[nodes] = day

    def _close_days(self, who: npt.NDArray[np.int32], day: Int64Array, ts: Int64Array) -> None:
        c = self.config
        enough = self._day_n[who] >= c.min_day_readings
        mean = np.divide(
            self._day_sum[who], self._day_n[who], out=np.full((len(who), 2), np.nan), where=enough
        )
        slot = day % c.trend_days
        self._ring_day[who, slot] = day
        self._ring_mean[who, :, slot] = mean
        days = self._ring_day[who]
        recent = days > (day - c.trend_days)[:, None]
        means = np.where(recent[:, None, :], self._ring_mean[who], np.nan)
        i, j = self._pairs
        gap = (days[:, j] - days[:, i]).astype(np.float64)
        gap = np.where(gap == 0, np.nan, gap)
        slope = nanmedian_rows((means[:, :, j] - means[:, :, i]) / gap[:, None, :])
        counted = np.count_nonzero(~np.isnan(means), axis=2)
        limits = np.array([c.deflection_growth_mm_per_year / _DAYS_PER_YEAR, c.crack_growth_mm_per_day])
        size = np.stack([np.abs(slope[:, 0]), slope[:, 1]], axis=1)  # deflection either way; cracks open
        was = self._trend_on[who]
        on = (counted >= c.trend_min_days) & ((size >= limits) | (was & (size >= c.clear_fraction * limits)))
        self._trend_since[who] = np.where(on & ~was, ts[:, None], self._trend_since[who])
        self._trend_on[who] = on
        self._slope[who] = slope

    # ----------------------------------------------------------------------------------------- evaluate

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        out: list[Conditions] = []
        for i, (rule, ch) in enumerate(self._channels):
            level = self._level[:, i]
            factor = np.asarray(ch.level_factors, dtype=np.float32)[np.maximum(level - 1, 0)]
            out.append(
                self._where(
                    ctx,
                    rule,
                    level > 0,
                    self._value[:, i],
                    self._limits[:, i] * factor,
                    level,
                    self._since[:, i],
                )
            )
        out.append(
            self._where(
                ctx,
                FREQ_DROP,
                self._freq_level > 0,
                100.0 * self._drop,
                self._f1,
                self._freq_level,
                self._freq_since,
            )
        )
        c = self.config
        trends = (
            (DEFLECTION_TREND, _DAYS_PER_YEAR * self._slope[:, 0], c.deflection_growth_mm_per_year),
            (CRACK_TREND, self._slope[:, 1], c.crack_growth_mm_per_day),
        )
        for k, (rule, value, limit) in enumerate(trends):
            out.append(
                self._where(ctx, rule, self._trend_on[:, k], value, limit, None, self._trend_since[:, k])
            )
        self._record(ctx)
        return out

    def _record(self, ctx: TickContext) -> None:
        """``bridge_modal``: every node's temperature-compensated frequency statistics, for the screens:
        the drop the levels are judged on (%), the drift statistic (EWMA of the residual, %) and mode 1's
        frequency expected at the current temperature (Hz)."""
        if ctx.now_ms < self._next_record_ms:
            return
        every = round(self.config.record_every_s * 1000)
        self._next_record_ms = (ctx.now_ms // every + 1) * every
        rows = np.flatnonzero(~np.isnan(self._drop))
        if len(rows):
            fields = {
                "freq_drop_pct": 100.0 * self._drop[rows].astype(np.float64),
                "residual_pct": 100.0 * self._ewma[rows].astype(np.float64),
                "freq_1_expected": self._f1[rows].astype(np.float64),
            }
            ctx.records.append(
                KpiTable("bridge_modal", NODE.value, tuple(self._nodes.id_text(rows)), fields, ctx.now_ms)
            )

    def _where(
        self,
        ctx: TickContext,
        rule: str,
        mask: BoolArray,
        value: npt.ArrayLike,
        threshold: npt.ArrayLike,
        level: Int8Array | None,
        since: Int64Array,
    ) -> Conditions:
        mask = mask & self._in_service
        quiet = ctx.suppressed.get(NODE)  # explained by a wider finding (a dead gateway): none of ours
        if quiet is not None:
            mask &= ~quiet
        active = np.flatnonzero(mask).astype(np.int32)
        return Conditions(
            rule,
            active,
            np.broadcast_to(np.asarray(value, np.float64), mask.shape)[active],
            np.broadcast_to(np.asarray(threshold, np.float64), mask.shape)[active],
            None if level is None else level[active].astype(np.int32),
            since[active],
        )

    @property
    def nbytes(self) -> int:
        own = [v for k, v in vars(self).items() if isinstance(v, np.ndarray) and k != "_in_service"]
        return self._fit.nbytes + sum(a.nbytes for a in own)
