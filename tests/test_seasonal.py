"""The seasonal anomaly score and the cabinet energy detector built on it (pure tier)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.engine import Detector, Engine, LampSchedule, TickContext
from analytics.findings import Change, Conditions, FindingEvent, RuleInfo
from analytics.seasonal import (
    ENERGY_ANOMALY,
    EnergyAnomalyDetector,
    EnergyAnomalyRules,
    SeasonalBaseline,
    SeasonalConfig,
    anomaly_scores,
    nanmedian_rows,
)
from analytics.state import Batch, LiveState
from analytics.topology import Topology, build_topology
from devices import solar
from devices.assets import Asset
from devices.kinds import DeviceKind

DAY_MS = 86_400_000
STEP_MS = 300_000  # five-minute readings keep these tests fast; the cabinets really report every minute
THRESHOLD = 6.0  # the documented alarm threshold
WUHAN = (30.59, 114.31)


class NoLamps:
    def at(self, now_ms: int) -> LampSchedule:
        none = np.zeros(0, np.bool_)
        return LampSchedule(none, none, np.zeros(0, np.float32), none)


def daily_series(days: int, rng: np.random.Generator, noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    ts = np.arange(0, days * DAY_MS, STEP_MS, dtype=np.int64)
    values = 100.0 + 30.0 * np.sin(2 * np.pi * ts / DAY_MS) + rng.normal(0.0, noise, len(ts))
    return ts, values


# ------------------------------------------------------------------------------------------ batch scores


def test_the_daily_cycle_scores_low_and_a_spike_high() -> None:
    ts, values = daily_series(10, np.random.default_rng(1))
    spike = int(np.searchsorted(ts, 8 * DAY_MS + 3 * 3_600_000))
    values[spike] += 40.0  # 20 noise sigmas, though well inside the day's range of 70 to 130
    scores = anomaly_scores(ts, values)
    assert scores[spike] > 2 * THRESHOLD
    normal = ts >= 3 * DAY_MS
    normal[spike] = False
    assert np.nanmax(scores[normal]) < THRESHOLD
    assert np.nanmedian(scores[normal]) < 1.0


def test_a_level_shift_scores_high_until_it_is_history() -> None:
    ts, values = daily_series(12, np.random.default_rng(2))
    shifted = ts >= 8 * DAY_MS
    values[shifted] += 25.0
    scores = anomaly_scores(ts, values)
    first_day = shifted & (ts < 9 * DAY_MS)
    assert np.mean(scores[first_day] > THRESHOLD) > 0.9


def test_scores_wait_for_history_and_skip_missing_values() -> None:
    ts, values = daily_series(4, np.random.default_rng(3))
    values[500] = np.nan
    scores = anomaly_scores(ts, values, min_points=10)
    assert np.isnan(scores[500])
    assert np.isnan(scores[:6]).all()  # the first readings of a bin have no history to be judged against
    assert not np.isnan(scores[ts >= 3 * DAY_MS][:499]).any()


def test_an_edge_that_moved_into_the_previous_bin_matches_its_neighbour() -> None:
    minute = 60_000
    ts = np.arange(0, 8 * DAY_MS, minute, dtype=np.int64)
    switch = 18 * 3_600_000 + 31 * minute  # lamps on at 18:31 for a week, then at 18:27
    on_at = np.where(ts >= 7 * DAY_MS, switch - 4 * minute, switch)
    values = np.where(ts % DAY_MS >= on_at, 5000.0, 12.0)
    bin_edge = 7 * DAY_MS + 18 * 3_600_000 + 30 * minute
    early = (ts >= 7 * DAY_MS + switch - 4 * minute) & (ts < bin_edge)  # 18:27 to 18:29, the earlier bin
    assert np.nanmax(anomaly_scores(ts, values, neighbours=1)[early]) < 1.0
    assert np.nanmin(anomaly_scores(ts, values, neighbours=0)[early]) > THRESHOLD


def test_input_order_does_not_matter() -> None:
    ts, values = daily_series(5, np.random.default_rng(4))
    shuffle = np.random.default_rng(5).permutation(len(ts))
    in_order = anomaly_scores(ts, values)
    shuffled = anomaly_scores(ts[shuffle], values[shuffle])
    np.testing.assert_allclose(shuffled, in_order[shuffle], equal_nan=True)


@settings(max_examples=20, deadline=None)
@given(
    amplitude=st.floats(1.0, 1000.0),
    offset=st.floats(-1000.0, 1000.0),
    noise=st.floats(0.0, 0.2),
    phase=st.floats(0.0, 2 * np.pi),
    step_s=st.sampled_from([300, 420, 600, 900]),
    seed=st.integers(0, 2**16),
)
def test_a_seasonal_series_with_bounded_noise_never_alarms_after_warm_up(
    amplitude: float, offset: float, noise: float, phase: float, step_s: int, seed: int
) -> None:
    ts = np.arange(0, 10 * DAY_MS, step_s * 1000, dtype=np.int64)
    wave = amplitude * np.sin(2 * np.pi * ts / DAY_MS + phase)
    values = offset + wave + noise * amplitude * np.random.default_rng(seed).uniform(-1, 1, len(ts))
    scores = anomaly_scores(ts, values)
    assert np.nanmax(scores[ts >= 6 * DAY_MS]) < THRESHOLD


# -------------------------------------------------------------------------------------- streaming form


def test_streaming_scores_match_the_batch_scores() -> None:
    ts, values = daily_series(14, np.random.default_rng(6))
    values[3000] += 40.0
    batch = anomaly_scores(ts, values, memory=40, min_points=6)
    stream = SeasonalBaseline(1, SeasonalConfig(memory=40, min_points=6))
    one = np.zeros(1, np.int32)
    streamed = np.array([stream.update(one, ts[i : i + 1], values[i : i + 1])[0] for i in range(len(ts))])
    assert (np.isnan(batch) == np.isnan(streamed)).all()
    warm = ts >= 3 * DAY_MS
    gap = np.abs(batch - streamed)[warm]
    assert np.nanmean(gap) < 0.25
    assert np.nanquantile(gap, 0.99) < 0.75
    assert batch[3000] > THRESHOLD
    assert streamed[3000] > THRESHOLD


def test_streaming_serves_many_series_at_once_like_one_at_a_time() -> None:
    rng = np.random.default_rng(7)
    ts = np.arange(0, 2 * DAY_MS, STEP_MS, dtype=np.int64)
    series = 100.0 + 10.0 * rng.standard_normal((3, len(ts)))
    config = SeasonalConfig(min_points=3)
    together, alone = SeasonalBaseline(3, config), [SeasonalBaseline(1, config) for _ in range(3)]
    everyone = np.arange(3, dtype=np.int32)
    for i, t in enumerate(ts.tolist()):
        got = together.update(everyone, np.full(3, t), series[:, i])
        one = [
            alone[k].update(np.zeros(1, np.int32), np.array([t]), series[k, i : i + 1])[0] for k in range(3)
        ]
        np.testing.assert_allclose(got, one, equal_nan=True)


def test_a_wild_reading_barely_moves_the_streaming_baseline() -> None:
    config = SeasonalConfig(bins=1, neighbours=0, min_points=5)
    baseline = SeasonalBaseline(1, config, floor=1.0)
    one = np.zeros(1, np.int32)
    for i in range(50):
        baseline.update(one, np.array([i * STEP_MS]), np.array([100.0]))
    baseline.update(one, np.array([50 * STEP_MS]), np.array([1e6]))
    assert baseline.expected(one, np.array([0]))[0] == pytest.approx(100.0, abs=0.5)


def test_nanmedian_rows_ignores_nan_without_warning() -> None:
    rows = np.array([[3.0, np.nan, 1.0, 2.0], [np.nan, np.nan, np.nan, np.nan], [4.0, 1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(nanmedian_rows(rows), [2.0, np.nan, 2.5])


@pytest.mark.parametrize(
    "bad",
    [{"bins": 0}, {"memory": 5, "min_points": 6}, {"neighbours": 24}, {"rel_floor": -1.0}, {"clip": 0.0}],
)
def test_inconsistent_seasonal_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(RuleConfigError):
        SeasonalConfig(**bad)  # type: ignore[arg-type]


def test_inconsistent_energy_settings_are_refused() -> None:
    with pytest.raises(RuleConfigError):
        EnergyAnomalyRules(threshold=4.0, clear_threshold=5.0)
    with pytest.raises(RuleConfigError):
        EnergyAnomalyRules(consecutive=0)


# ------------------------------------------------------------------------------ cabinet energy detector

CABINETS = 12
CABINET_STEP_MS = 600_000  # ten-minute readings: three a day in each 30-minute bin


def cabinet_topology() -> Topology:
    """Cabinets of 5-16 kW of lamps, 0.625° of longitude apart: their switching times lie 2.5 minutes apart
    and together cover a whole 30-minute bin, so some edges cross from one bin into the next."""
    assets = [
        Asset(
            id=f"CAB-{i:03d}",
            kind="cabinet",
            district="jianghan",
            circuit=f"CIR-{i:03d}",
            lat=WUHAN[0],
            lon=WUHAN[1] + 0.625 * i,
            rated_power_w=5000.0 + 1000.0 * i,
        )
        for i in range(CABINETS)
    ]
    return build_topology(assets)


def cabinet_power(
    topology: Topology, start: dt.date, days: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Readings like the simulator's cabinets: lamps on from sunset to sunrise at the cabinet (the
    astronomical clock shifts the edges by about a minute a day), lamp noise, 12 W of controller."""
    table = topology.table(DeviceKind.CABINET)
    t0 = (start - dt.date(1970, 1, 1)).days * DAY_MS
    ts = np.arange(t0, t0 + days * DAY_MS, CABINET_STEP_MS, dtype=np.int64)
    night = np.zeros((len(ts), len(table)), np.bool_)
    for d in range(-1, days + 1):
        rise, fall = solar.sun_times(table.lat, table.lon, start + dt.timedelta(days=d))
        t = ts[:, None] / 1000.0
        night |= (t >= fall[None, :]) & (t < rise[None, :] + 86_400.0)  # sunset to the next sunrise
    lamps = 0.97 * 1.03 * table.rated_power_w
    noise = 1.0 + 0.001 * np.random.default_rng(seed).standard_normal(night.shape)
    return ts, np.round(np.where(night, lamps * noise, 0.0) + 12.0, 1)


def run(
    topology: Topology,
    ts: np.ndarray,
    power: np.ndarray,
    config: EnergyAnomalyRules | None = None,
    before: Sequence[Detector] = (),
) -> list[FindingEvent]:
    engine = Engine(topology, [*before, EnergyAnomalyDetector(topology, config)], NoLamps())
    n = power.shape[1]
    everyone = np.arange(n, dtype=np.int32)
    events: list[FindingEvent] = []
    for i, t in enumerate(ts.tolist()):
        fields = MappingProxyType({"active_power": power[i]})
        engine.ingest([Batch(DeviceKind.CABINET, everyone, np.full(n, t), np.full(n, i), fields)])
        if i % 3 == 0:
            events.extend(engine.tick(t).events)
    return events


def ten_minute_rules() -> EnergyAnomalyRules:
    return EnergyAnomalyRules(baseline=SeasonalConfig(memory=60))  # 20 days of a bin, as 200 minute readings


def test_switching_at_sunset_and_sunrise_does_not_fire_as_the_days_shorten() -> None:
    topology = cabinet_topology()
    ts, power = cabinet_power(topology, dt.date(2026, 10, 15), days=14)  # sunset a minute earlier a day
    assert run(topology, ts, power, ten_minute_rules()) == []


def burning_by_day(topology: Topology) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Six days of readings; cabinet CAB-003's circuit burns for two hours from noon on the fifth."""
    ts, power = cabinet_power(topology, dt.date(2026, 6, 1), days=6)
    noon = dt.datetime(2026, 6, 5, 4, 0, tzinfo=dt.UTC).timestamp() * 1000  # 12:00 in Wuhan
    burning = (ts >= noon) & (ts < noon + 2 * 3_600_000)
    power[burning, 3] = 0.97 * 1.03 * 8000.0 + 12.0
    return ts, power, noon, burning


def test_a_circuit_burning_by_day_opens_one_finding_and_clears_when_it_stops() -> None:
    topology = cabinet_topology()
    ts, power, noon, burning = burning_by_day(topology)
    events = run(topology, ts, power, ten_minute_rules())
    assert [(e.change, e.finding.subject) for e in events] == [
        (Change.OPENED, "CAB-003"),
        (Change.CLEARED, "CAB-003"),
    ]
    opened = events[0].finding
    assert opened.rule == ENERGY_ANOMALY
    assert opened.since_ms == int(ts[burning][0])  # the first unusual reading, not the third
    assert opened.value > 7000.0
    assert opened.threshold == pytest.approx(12.0, abs=1.0)
    assert "W where about 12 W is usual at this time of day" in opened.explanation
    assert events[1].at_ms < noon + 3 * 3_600_000


class CircuitOutage:
    """A detector that explains cabinet CAB-003 with a wider finding."""

    kinds: frozenset[DeviceKind] = frozenset()
    rules: Sequence[RuleInfo] = ()
    nbytes = 0

    def observe(self, batch: Batch, state: LiveState) -> None:
        return

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        ctx.suppressed_mask(DeviceKind.CABINET)[3] = True
        return []


def test_a_cabinet_explained_by_a_wider_finding_raises_no_energy_finding() -> None:
    topology = cabinet_topology()
    ts, power, _, _ = burning_by_day(topology)
    assert run(topology, ts, power, ten_minute_rules(), before=[CircuitOutage()]) == []


def test_nothing_fires_during_warm_up() -> None:
    topology = cabinet_topology()
    ts, power = cabinet_power(topology, dt.date(2026, 6, 1), days=3)
    day_two = (ts >= ts[0] + DAY_MS + 4 * 3_600_000) & (ts < ts[0] + DAY_MS + 6 * 3_600_000)
    power[day_two, 0] = 9000.0
    assert run(topology, ts, power, ten_minute_rules()) == []
