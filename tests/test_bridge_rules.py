"""Bridge rules (pure tier): static limits in three levels, frequency drop and trends, via the Engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.bridge_rules import (
    CRACK_TREND,
    CRACK_WIDTH,
    DEFLECTION,
    DEFLECTION_TREND,
    FREQ_DROP,
    VIBRATION,
    BridgeDetector,
    BridgeRules,
    ChannelLimit,
)
from analytics.engine import Detector, Engine, LampSchedule, TickContext
from analytics.findings import Change, Conditions, FindingEvent, RuleInfo
from analytics.state import Batch, LiveState
from analytics.topology import Topology, build_topology
from devices.assets import Asset
from devices.kinds import DeviceKind
from firmware_sim.structures import frequency_factor

NODE = DeviceKind.BRIDGE_NODE
T0 = 1_780_000_000_000  # 2026-05-28
HOUR = 3_600_000
DAY = 24 * HOUR
# Faster than the defaults: readings every 20 minutes, so two days are 144 readings, not 2880.
RULES = BridgeRules(min_reference_readings=100)


class NoLamps:
    def at(self, now_ms: int) -> LampSchedule:
        none = np.zeros(0, np.bool_)
        return LampSchedule(none, none, np.zeros(0, np.float32), none)


def topology(limits: Sequence[float]) -> Topology:
    """One node per crack limit (0.20 mm environment A/B, 0.15 mm C/D)."""
    return build_topology(
        Asset(id=f"BRN-01-{i + 1}", kind="bridge_node", district="hanyang", lat=30.55, lon=114.28,
              params={"bridge": "BR-01", "crack_limit_mm": limit})
        for i, limit in enumerate(limits)
    )  # fmt: skip


@dataclass
class Deck:
    """Readings of healthy nodes that behave like the simulator's (firmware_sim.structures): thermal movement,
    traffic, and modal frequencies by the simulator's own ``frequency_factor``."""

    n: int
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.freq0 = np.array([1.8, 5.2, 9.9]) * self.rng.uniform(0.8, 1.2, (self.n, 1))
        self.deflection0 = self.rng.uniform(-20.0, 20.0, self.n)
        self.crack0 = self.rng.uniform(0.05, 0.09, self.n)

    def readings(
        self, temp: np.ndarray, *, drop: np.ndarray | float = 0.0, load: float = 0.5
    ) -> dict[str, np.ndarray]:
        noise = self.rng.standard_normal((9, self.n))
        t = temp + 0.15 * noise[0]  # the node's own thermometer
        traffic = load * (1 + 0.2 * noise[1])
        fields = {
            "temperature": t,
            "strain_mean": 100 - 10 * (temp - 20) + 40 * traffic + 2 * noise[2],
            "strain_max": 100 - 10 * (temp - 20) + 100 * traffic + 2 * noise[2],
            "deflection": self.deflection0 - 0.2 * (temp - 20) + 4 * traffic + 0.2 * noise[3],
            "deflection_max": self.deflection0 - 0.2 * (temp - 20) + 14 * traffic + 0.2 * noise[4],
            "accel_rms": 0.003 + 0.04 * traffic,
            "tilt": 0.01 + 0.001 * (temp - 20) + 0.002 * noise[5],
            "crack_width": np.maximum(self.crack0 * (1 + 0.008 * (20 - temp)) + 0.002 * noise[6], 0.0),
            "wind_speed": np.full(self.n, 3.0),
        }
        factor = frequency_factor(temp) * (1.0 - np.asarray(drop))
        jitter = 1.0 + 0.002 * self.rng.standard_normal((self.n, 3))
        for k in range(3):
            fields[f"freq_{k + 1}"] = self.freq0[:, k] * factor * jitter[:, k]
        return fields


class Run:
    """An Engine with the bridge detector; feed readings, collect finding events."""

    def __init__(self, top: Topology, rules: BridgeRules = RULES, before: Sequence[Detector] = ()) -> None:
        self.n = len(top.table(NODE))
        self.detector = BridgeDetector(top, rules)
        self.engine = Engine(top, [*before, self.detector], NoLamps())
        self.events: list[FindingEvent] = []
        self.rounds = 0

    def feed(self, ts: int, fields: Mapping[str, np.ndarray | float], tick: bool = True) -> None:
        who = np.arange(self.n, dtype=np.int32)
        cols = MappingProxyType(
            {k: np.asarray(np.broadcast_to(v, (self.n,)), np.float64) for k, v in fields.items()}
        )
        self.engine.ingest([Batch(NODE, who, np.full(self.n, ts), np.full(self.n, self.rounds), cols)])
        self.rounds += 1
        if tick:
            self.events.extend(self.engine.tick(ts).events)

    def opened(self, rule: str) -> list[FindingEvent]:
        return [e for e in self.events if e.finding.rule == rule and e.change is Change.OPENED]

    def changes(self, rule: str) -> list[tuple[Change, str, int]]:
        return [(e.change, e.finding.subject, e.finding.level) for e in self.events if e.finding.rule == rule]


def daily_temp(ts: int, mean: np.ndarray | float, swing: float = 8.0) -> np.ndarray:
    """Deck temperature: warmest at 09:00 UTC (17:00 in Wuhan), ``swing`` °C either way."""
    return np.asarray(mean + swing * np.cos(2 * np.pi * ((ts % DAY) / DAY - 9 / 24)), dtype=np.float64)


def reference(run: Run, deck: Deck, mean: np.ndarray | float, *, step: int = 20 * 60_000) -> int:
    """Two healthy days of readings; returns the time after them."""
    ts = T0
    while ts < T0 + 2 * DAY + step:
        run.feed(ts, deck.readings(daily_temp(ts, mean)))
        ts += step
    return ts


# ------------------------------------------------------------------------------------------- static limits


def test_crack_width_climbs_through_the_levels_and_clears_a_day_after_it_is_back() -> None:
    run = Run(topology([0.20]))
    ts = T0
    for width in [0.10, 0.16, 0.21, 0.31, 0.31, 0.05] + [0.05] * 24:  # hourly readings
        run.feed(ts, {"crack_width": width, "temperature": 20.0})
        ts += HOUR
    assert run.changes(CRACK_WIDTH) == [
        (Change.OPENED, "BRN-01-1", 3),  # 0.16 >= 0.75 x 0.20
        (Change.LEVEL, "BRN-01-1", 2),  # 0.21 >= 0.20
        (Change.LEVEL, "BRN-01-1", 1),  # 0.31 >= 1.5 x 0.20
        (Change.CLEARED, "BRN-01-1", 1),
    ]
    cleared = run.events[-1]
    assert cleared.at_ms == T0 + 5 * HOUR + DAY  # 0.05 from hour 5, for a whole day
    assert run.opened(CRACK_WIDTH)[0].finding.explanation.startswith(
        "crack width up to 0.160 mm, over the level 3 limit of 0.150 mm, since"
    )


def test_a_crack_hovering_at_a_limit_and_breathing_with_the_temperature_stays_one_finding() -> None:
    run = Run(topology([0.20]))
    for h in range(72):  # at the level-3 limit by night, 10 % under it in the afternoon
        width = 0.150 + 0.003 * (-1) ** h if h % 24 < 16 else 0.135
        run.feed(T0 + h * HOUR, {"crack_width": width})
    assert run.changes(CRACK_WIDTH) == [(Change.OPENED, "BRN-01-1", 3)]


def test_the_registry_crack_limit_of_each_node_applies() -> None:
    run = Run(topology([0.20, 0.15]))
    run.feed(T0, {"crack_width": 0.16})
    assert sorted(run.changes(CRACK_WIDTH)) == [
        (Change.OPENED, "BRN-01-1", 3),
        (Change.OPENED, "BRN-01-2", 2),
    ]


def test_vibration_is_judged_as_read() -> None:
    run = Run(topology([0.2, 0.2]))
    run.feed(T0, {"accel_rms": np.array([0.1, 0.8])})
    (event,) = run.events
    assert (event.finding.rule, event.finding.subject, event.finding.level) == (VIBRATION, "BRN-01-2", 1)
    assert (
        "RMS acceleration up to 0.800 m/s², over the level 1 limit of 0.750 m/s²" in event.finding.explanation
    )


def test_deflection_is_judged_from_the_temperature_corrected_baseline() -> None:
    top = topology([0.2] * 3)
    deck, run = Deck(3, seed=1), Run(top)
    ts = reference(run, deck, 15.0)
    for _ in range(3):  # a cold snap moves the decks by 4 mm: the model expects that
        run.feed(ts, deck.readings(np.full(3, -5.0)))
        ts += HOUR
    assert run.opened(DEFLECTION) == []
    heavy = deck.readings(daily_temp(ts, 15.0))
    heavy["deflection_max"] = heavy["deflection_max"] + np.array([0.0, 40.0, -55.0])
    run.feed(ts, heavy)
    assert sorted(run.changes(DEFLECTION)) == [(Change.OPENED, "BRN-01-2", 3), (Change.OPENED, "BRN-01-3", 2)]
    text = next(e for e in run.events if e.finding.subject == "BRN-01-3").finding.explanation
    assert "peak deflection up to -5" in text
    assert "mm from the node's temperature-corrected baseline, over the level 2 limit of 50.0 mm" in text


# ------------------------------------------------------------------------------------------ frequency drop


def test_a_healthy_deck_through_frost_and_heat_never_reports_a_frequency_drop() -> None:
    """Nodes that learn their model in spring, summer or winter, then see their temperature swing through
    -10..35 °C (the season compressed into 12 days, the daily cycle of ±8 °C kept)."""
    n = 12
    deck, run = Deck(n, seed=2), Run(topology([0.2] * n))
    start = np.linspace(-2.0, 27.0, n)  # reference seasons
    end = np.where(np.arange(n) % 2 == 0, -2.0, 27.0)  # then colder or warmer: -10..35 with the daily swing
    ts = reference(run, deck, start)
    t_ref, worst = ts, 0.0
    for k in range(16 * 48):  # half-hourly, a tick every 1.5 h
        mean = start + (end - start) * min(1.0, (ts - t_ref) / (12 * DAY))
        run.feed(ts, deck.readings(daily_temp(ts, mean)), tick=k % 3 == 0)
        worst = max(worst, float(np.nanmax(run.detector._drop)))
        ts += 30 * 60_000
    assert run.opened(FREQ_DROP) == []
    assert run.opened(DEFLECTION) == run.opened(CRACK_WIDTH) == []
    assert worst < 0.006  # the drop statistic stayed far below level 3's 2 %


@pytest.mark.parametrize("varying", [False, True], ids=["constant temperature", "daily swing"])
def test_a_three_percent_drop_is_reported_within_three_readings_and_clears_after_repair(
    varying: bool,
) -> None:
    n = 2
    deck, run = Deck(n, seed=3), Run(topology([0.2] * n))
    ts = reference(run, deck, 12.0 if varying else np.full(n, 12.0), step=20 * 60_000)

    def temp(t: int) -> np.ndarray:
        return daily_temp(t, 12.0) if varying else np.full(n, 12.0)

    for _ in range(20):
        run.feed(ts, deck.readings(temp(ts)))
        ts += 20 * 60_000
    damaged = ts
    for _ in range(3):
        run.feed(ts, deck.readings(temp(ts), drop=np.array([0.03, 0.0])))
        ts += 20 * 60_000
    (opened,) = run.opened(FREQ_DROP)
    assert (opened.finding.subject, opened.finding.level, opened.finding.since_ms) == ("BRN-01-1", 3, damaged)
    assert opened.finding.value == pytest.approx(3.0, abs=0.3)
    assert (
        "% below the node's temperature-compensated baseline (mode 1 expected at"
        in opened.finding.explanation
    )
    for _ in range(40):  # repaired
        run.feed(ts, deck.readings(temp(ts)))
        ts += 20 * 60_000
    assert run.changes(FREQ_DROP) == [(Change.OPENED, "BRN-01-1", 3), (Change.CLEARED, "BRN-01-1", 3)]


def test_severe_drops_reach_levels_two_and_one() -> None:
    n = 3
    deck, run = Deck(n, seed=4), Run(topology([0.2] * n))
    ts = reference(run, deck, 20.0)
    for _ in range(4):
        run.feed(ts, deck.readings(daily_temp(ts, 20.0), drop=np.array([0.0, 0.14, 0.17])))
        ts += 20 * 60_000
    assert sorted(run.changes(FREQ_DROP)) == [(Change.OPENED, "BRN-01-2", 2), (Change.OPENED, "BRN-01-3", 1)]


def test_a_slow_stiffness_loss_is_caught_by_the_drift_statistic() -> None:
    deck, run = Deck(1, seed=5), Run(topology([0.2]))
    ts = reference(run, deck, 18.0)
    begin = ts
    for k in range(150):  # 0.02 % per reading, no step anywhere: 3 % after 150 readings
        run.feed(ts, deck.readings(daily_temp(ts, 18.0), drop=0.0002 * k))
        ts += 20 * 60_000
    (opened,) = run.opened(FREQ_DROP)
    assert begin + 90 * 20 * 60_000 <= opened.at_ms <= begin + 125 * 20 * 60_000  # once ~2 % is reached


# ------------------------------------------------------------------------------------------------- trends


def test_a_growing_crack_is_reported_and_a_breathing_one_is_not() -> None:
    n = 2
    deck, run = Deck(n, seed=6), Run(topology([0.2] * n))
    ts = reference(run, deck, 10.0, step=HOUR)
    begin = ts
    while ts < begin + 12 * DAY:
        days = (ts - begin) / DAY
        fields = deck.readings(daily_temp(ts, 10.0 + 0.25 * days))  # spring: the cracks close a little
        fields["crack_width"] = fields["crack_width"] + np.array([0.004 * days, 0.0])
        run.feed(ts, fields)
        ts += HOUR
    (opened,) = run.opened(CRACK_TREND)
    assert opened.finding.subject == "BRN-01-1"
    assert opened.finding.value == pytest.approx(0.004, rel=0.2)
    assert "daily mean crack width growing 0.00" in opened.finding.explanation
    assert opened.at_ms >= begin + 7 * DAY  # seven daily means first


def test_a_sagging_deck_is_reported_as_a_deflection_trend() -> None:
    n = 2
    deck, run = Deck(n, seed=7), Run(topology([0.2] * n))
    ts = reference(run, deck, 25.0, step=HOUR)
    begin = ts
    while ts < begin + 10 * DAY:
        days = (ts - begin) / DAY
        fields = deck.readings(daily_temp(ts, 25.0 - 0.2 * days))  # autumn: 2 °C colder in ten days
        sag = np.array([-20.0, 0.0]) * days / 365.25  # 20 mm a year
        fields["deflection"] = fields["deflection"] + sag
        fields["deflection_max"] = fields["deflection_max"] + sag
        run.feed(ts, fields)
        ts += HOUR
    (opened,) = run.opened(DEFLECTION_TREND)
    assert opened.finding.subject == "BRN-01-1"
    assert opened.finding.value == pytest.approx(-20.0, abs=5.0)  # mm/year, from ten noisy daily means


# --------------------------------------------------------------------------------------- engine contract


class SuppressAll:
    """A detector that explains every bridge node with a wider finding (a dead gateway, say)."""

    kinds = frozenset({NODE})
    rules: Sequence[RuleInfo] = ()
    nbytes = 0

    def observe(self, batch: Batch, state: LiveState) -> None:
        return

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        ctx.suppressed_mask(NODE)[:] = True
        return []


def test_a_node_explained_by_a_wider_finding_raises_none_of_its_own() -> None:
    run = Run(topology([0.2]), before=[SuppressAll()])
    run.feed(T0, {"crack_width": 0.5})
    assert run.events == []


def test_the_detector_reports_every_rule_each_tick_and_sizes_its_memory() -> None:
    top = topology([0.2] * 4)
    detector = BridgeDetector(top)
    engine = Engine(top, [detector], NoLamps())
    conditions = detector.evaluate(TickContext(T0, top, engine.state, NoLamps().at(T0), engine.book))
    assert [c.rule for c in conditions] == [r.rule for r in detector.rules]
    assert 0 < detector.nbytes < 4 * 4096


@settings(max_examples=8, deadline=None)
@given(
    temp=st.floats(-10.0, 35.0),
    strain=st.floats(-300.0, 300.0),
    crack=st.floats(0.0, 0.14),
    seed=st.integers(0, 1000),
)
def test_a_constant_healthy_node_never_fires(temp: float, strain: float, crack: float, seed: int) -> None:
    rules = replace(
        RULES, min_reference_readings=20, reference_days=0.5, trend_min_days=2, min_day_readings=12
    )
    run = Run(topology([0.2]), rules)
    rng = np.random.default_rng(seed)
    steady = {"temperature": temp, "strain_max": strain, "deflection_max": -12.0, "deflection": -14.0}
    steady |= {"tilt": 0.02, "accel_rms": 0.03, "crack_width": crack}
    for k in range(70):  # hourly: the reference, then two days judged
        jitter = 1.0 + 0.002 * rng.standard_normal(3)
        modes = {"freq_1": 2.0 * jitter[0], "freq_2": 6.0 * jitter[1], "freq_3": 11.0 * jitter[2]}
        run.feed(T0 + k * HOUR, steady | modes)
    assert run.events == []


def test_inconsistent_settings_are_refused() -> None:
    with pytest.raises(RuleConfigError):
        BridgeRules(drop_levels=(0.13, 0.16, 0.02))
    with pytest.raises(RuleConfigError):
        BridgeRules(freq_fields=("freq_9",))
    with pytest.raises(RuleConfigError):
        ChannelLimit(
            field="tilt", limit=0.1, unit="°", label="tilt", relative=True, level_factors=(1.0, 1.0, 0.5)
        )
    with pytest.raises(RuleConfigError):
        ChannelLimit(field="temperature", limit=40.0, unit="°C", label="temperature", relative=False)


def test_the_compensated_frequency_drop_is_recorded_for_the_screens_every_five_minutes() -> None:
    n = 2
    deck, run = Deck(n, seed=3), Run(topology([0.2] * n))
    ts = reference(run, deck, np.full(n, 12.0))
    tables = []
    for _ in range(6):
        run.feed(ts, deck.readings(np.full(n, 12.0), drop=np.array([0.03, 0.0])), tick=False)
        tables += [t for t in run.engine.tick(ts).kpis if t.measurement == "bridge_modal"]
        ts += 20 * 60_000
    assert len(tables) == 6  # every tick here is 20 min apart: each is due
    last = tables[-1]
    assert last.scope == NODE.value and last.scope_ids == ("BRN-01-1", "BRN-01-2")
    assert last.fields["freq_drop_pct"][0] == pytest.approx(3.0, abs=0.4)
    assert abs(last.fields["freq_drop_pct"][1]) < 0.5
    assert last.fields["residual_pct"][0] < -0.5 < last.fields["residual_pct"][1]
    expected = deck.freq0[:, 0] * frequency_factor(12.0)
    assert last.fields["freq_1_expected"] == pytest.approx(expected, rel=0.02)
    again = [t for t in run.engine.tick(ts - 20 * 60_000 + 60_000).kpis if t.measurement == "bridge_modal"]
    assert again == []  # a minute later: not due yet
