"""Waste bin rules, collections and fill forecasts, through the real Engine with crafted meter readings:
what a sanitation crew would see on its list, and when."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.bin_rules import BinDetector, BinRules, collection_route, theil_sen
from analytics.engine import Engine, KpiTable
from analytics.findings import Change, Finding, FindingEvent
from analytics.state import Batch
from analytics.topology import build_topology
from devices.assets import Asset
from devices.kinds import DeviceKind
from firmware_sim.faults import FaultInjector, parse_schedule
from firmware_sim.inventory import generate_city
from firmware_sim.simulation import Simulation
from tests.test_drainage_rules import MIDSUMMER, NoLamps, sim_batches, simulated_topology

BIN = DeviceKind.BIN
T0 = 1_782_000_000_000  # 2026-06-21, a whole quarter hour in ms
HOUR = 3_600_000
EMPTY_CM, BLIND_CM = 120.0, 20.0  # so fill % = 120 - distance


def bin_asset(bid: str = "BIN-001", **params: float) -> Asset:
    values = {"empty_distance_cm": EMPTY_CM, "blind_zone_cm": BLIND_CM} | params
    return Asset(id=bid, kind="bin", district="wuchang", lat=30.54, lon=114.31, params=values)


def meter(fill: float, **override: float) -> dict[str, float]:
    """A healthy meter's reading of a bin ``fill`` % full."""
    distance = EMPTY_CM - fill * (EMPTY_CM - BLIND_CM) / 100.0
    return {
        "distance": distance,
        "fill_level": fill,
        "temperature": 24.0,
        "tilt": 2.0,
        "battery": 88.0,
    } | override


class Street:
    """The engine with the bin detector; readings go in one at a time, each followed by a tick."""

    def __init__(self, assets: Sequence[Asset] = (bin_asset(),), config: BinRules | None = None) -> None:
        self.topology = build_topology(assets)
        self.detector = BinDetector(self.topology, config or BinRules())
        self.engine = Engine(self.topology, [self.detector], NoLamps())
        self.events: list[FindingEvent] = []
        self.kpis: list[KpiTable] = []
        self.seq = 0

    def send(self, ts_ms: int, fields: Mapping[str, float], bid: str = "BIN-001") -> None:
        number = self.topology.table(BIN).find([bid])
        columns = MappingProxyType({k: np.array([float(v)]) for k, v in fields.items()})
        self.seq += 1
        self.engine.ingest([Batch(BIN, number, np.array([ts_ms]), np.array([self.seq]), columns)])
        result = self.engine.tick(ts_ms)
        self.events.extend(result.events)
        self.kpis.extend(result.kpis)

    def hourly(self, fills: Sequence[float], t: int = T0, **override: float) -> int:
        for fill in fills:
            t += HOUR
            self.send(t, meter(fill, **override))
        return t

    def open(self, rule: str) -> Finding | None:
        return next((f for f in self.engine.book.open_findings() if f.rule == rule), None)

    def opened(self) -> list[str]:
        return [e.finding.rule for e in self.events if e.change is Change.OPENED]

    def records(self, measurement: str) -> list[KpiTable]:
        return [k for k in self.kpis if k.measurement == measurement]


# --- fill -----------------------------------------------------------------------------------------------


def test_a_fill_and_empty_cycle_goes_near_full_then_full_and_records_one_collection() -> None:
    street = Street()
    t = street.hourly([10.0 + 3.0 * i for i in range(29)])  # 10 % .. 94 %
    assert street.open("bin_near_full") is None
    assert street.open("bin_full") is not None, "a full bin is on the full list only"
    full = street.open("bin_full")
    assert full is not None and full.explanation.startswith("91 % full (full from 90 %)")
    emptied_at = street.hourly([2.0], t)
    assert street.engine.book.open_findings() == []
    street.hourly([2.0 + 3.0 * i for i in range(1, 10)], emptied_at)
    assert street.opened() == ["bin_near_full", "bin_full"]
    (collection,) = street.records("bin_collection")
    assert collection.scope_ids == ("BIN-001",)
    assert collection.fields["fill_before"][0] == pytest.approx(94.0)
    assert collection.fields["fill_after"][0] == pytest.approx(2.0)
    assert collection.fields["collected_ms"][0] == emptied_at


def test_a_round_collection_of_a_lightly_filled_bin_is_recorded_too() -> None:
    street = Street()
    t = street.hourly([20.0, 22.0, 24.0, 3.0, 5.0])
    assert [r.fields["fill_before"][0] for r in street.records("bin_collection")] == [24.0]
    street.hourly([4.0, 6.0, 3.5, 5.0], t)  # noise and settling are not collections
    assert len(street.records("bin_collection")) == 1


def test_overflow_inside_the_blind_zone_on_top_of_full() -> None:
    street = Street()
    t = street.hourly([85.0, 95.0])
    t += HOUR
    street.send(t, meter(95.0, distance=15.0, fill_level=100.0))
    overflow = street.open("bin_overflow")
    assert overflow is not None and overflow.value == 100.0
    assert street.open("bin_full") is not None
    street.send(t + HOUR, meter(98.0))  # hysteresis: 98 % is still overflowing
    assert street.open("bin_overflow") is not None
    street.send(t + 2 * HOUR, meter(1.0))
    assert street.open("bin_overflow") is None


def test_missed_collection_after_a_day_full() -> None:
    street = Street()
    t = street.hourly([91.0] * 24)
    assert street.open("bin_missed_collection") is None
    street.hourly([92.0], t)
    missed = street.open("bin_missed_collection")
    assert missed is not None
    assert (missed.value, missed.threshold, missed.since_ms) == (24.0, 24.0, T0 + HOUR)


def test_the_meters_own_fill_level_without_a_distance_or_a_bin_height() -> None:
    street = Street([bin_asset(), Asset(id="BIN-002", kind="bin", district="wuchang", lat=30.5, lon=114.3)])
    street.send(T0, {"fill_level": 93.0, "temperature": 20.0}, bid="BIN-001")
    street.send(T0 + HOUR, {"distance": 30.0, "fill_level": 92.5}, bid="BIN-002")
    assert {f.subject for f in street.engine.book.open_findings()} == {"BIN-001", "BIN-002"}


# --- fire, tipping, stuck meters ------------------------------------------------------------------------


def test_fire_from_an_absolute_temperature() -> None:
    street = Street()
    t = street.hourly([30.0, 31.0])
    street.send(t + 60_000, meter(31.0, temperature=61.0))  # also a rise, but over 60 °C says it
    fire = street.open("bin_fire")
    assert fire is not None
    assert (fire.value, fire.threshold) == (61.0, 60.0)


def test_fire_from_a_rise_of_more_than_five_degrees_in_one_interval() -> None:
    street = Street()
    t = street.hourly([30.0, 31.0])
    street.send(t + 60_000, meter(31.0, temperature=30.5))
    fire = street.open("bin_fire")
    assert fire is not None and fire.threshold == pytest.approx(29.0)
    for i in range(2, 5):
        street.send(t + i * 60_000, meter(31.0, temperature=30.0 + 10 * i))
    assert street.open("bin_fire") is not None
    street.send(t + HOUR, meter(31.0, temperature=26.0))
    assert street.open("bin_fire") is None
    assert street.opened() == ["bin_fire"]


def test_a_rise_over_a_long_silence_is_the_weather() -> None:
    street = Street()
    street.send(T0, meter(30.0, temperature=14.0))
    street.send(T0 + 6 * HOUR, meter(31.0, temperature=27.0))
    assert street.open("bin_fire") is None


def test_a_tipped_bin_is_not_an_emptied_one() -> None:
    street = Street()
    t = street.hourly([70.0, 78.0])
    t = street.hourly([0.0] * 3, t, distance=240.0, fill_level=0.0, tilt=95.0)
    tipped = street.open("bin_tipped")
    assert tipped is not None and tipped.value == 95.0
    assert street.open("bin_near_full") is not None, "its fill is unknown, not 0 %"
    street.hourly([79.0], t)
    assert street.open("bin_tipped") is None
    assert street.records("bin_collection") == []


def test_a_stuck_meter_after_three_days_without_a_change() -> None:
    street = Street()
    t = street.hourly([40.0] * 72)
    assert street.open("bin_stuck_sensor") is None
    street.hourly([40.0], t)
    stuck = street.open("bin_stuck_sensor")
    assert stuck is not None
    assert (stuck.value, stuck.since_ms) == (3.0, T0 + HOUR)


def test_a_slowly_filling_bin_reporting_hourly_is_not_stuck() -> None:
    street = Street()
    street.hourly([20.0 + 0.12 * i for i in range(5 * 24)])  # 0.12 cm an hour, 5 days
    assert street.open("bin_stuck_sensor") is None


def test_a_full_bin_reading_its_blind_zone_for_days_is_not_a_stuck_meter() -> None:
    street = Street()
    street.hourly([100.0] * 80, distance=15.0)
    assert street.open("bin_stuck_sensor") is None
    assert street.open("bin_missed_collection") is not None


# --- forecast and routes --------------------------------------------------------------------------------


def test_forecast_of_a_linear_fill_with_noise_and_odd_readings() -> None:
    street = Street()
    rng = np.random.default_rng(7)
    fills = 5.0 + 1.5 * np.arange(1, 41) + rng.normal(0.0, 1.0, 40)
    fills[[9, 23]] = [60.0, 2.0]  # a bag under the sensor, a reflection off the lid
    street.hourly(fills.tolist())
    truth_ms = T0 + (90.0 - 5.0) / 1.5 * HOUR
    forecast = street.detector.forecast_full_ms()[0]
    assert abs(forecast - truth_ms) < 1.5 * HOUR


def test_forecast_over_a_long_slow_cycle_uses_the_whole_cycle() -> None:
    street = Street()
    rng = np.random.default_rng(3)
    fills = 2.0 + 0.4 * np.arange(1, 193) + rng.normal(0.0, 0.8, 192)  # 8 days at 0.4 %/h
    street.hourly(fills.tolist())
    truth_ms = T0 + (90.0 - 2.0) / 0.4 * HOUR
    assert abs(street.detector.forecast_full_ms()[0] - truth_ms) < 3 * HOUR


def test_forecast_records_every_quarter_hour_of_data_time() -> None:
    street = Street()
    for i in range(1, 25):  # a reading every 5 min for 2 h, filling 0.5 % per 5 min (6 %/h)
        street.send(T0 + i * 300_000, meter(20.0 + 0.5 * i))
    records = street.records("bin_forecast")
    times = [r.ts_ms for r in records]
    assert len(times) == 8
    assert all(b - a >= 900_000 for a, b in itertools.pairwise(times))
    last = records[-1]
    assert last.scope_ids == ("BIN-001",)
    assert last.fields["hours_to_full"][0] == pytest.approx((90.0 - last.fields["fill"][0]) / 6.0, abs=0.1)


def test_a_bin_that_is_not_filling_has_no_forecast() -> None:
    street = Street()
    street.hourly([30.0, 30.2, 29.9, 30.1, 30.0])
    assert np.isnan(street.detector.forecast_full_ms()[0])


def test_route_takes_full_bins_and_those_full_before_the_route_after_next() -> None:
    day = 86_400_000
    fill = [95.0, 40.0, 60.0, 10.0, 91.0]
    full_at = [T0 - HOUR, T0 + 1.5 * day, T0 + 0.5 * day, np.nan, T0 - 2 * HOUR]
    route = collection_route([10, 11, 12, 13, 14], fill, full_at, T0 + day // 3)
    assert route == [10, 14, 12]  # full ones fullest first, then by forecast; 11 waits, 13 is not filling


def test_the_detector_plans_a_route_from_its_own_forecasts() -> None:
    street = Street([bin_asset("BIN-001"), bin_asset("BIN-002"), bin_asset("BIN-003")])
    for i in range(1, 11):
        t = T0 + i * HOUR
        street.send(t, meter(50.0 + 4.0 * i), bid="BIN-001")  # full in a few hours
        street.send(t, meter(10.0 + 0.5 * i), bid="BIN-002")  # days away
        street.send(t, meter(95.0), bid="BIN-003")
    assert street.detector.route([0, 1, 2], T0 + 12 * HOUR) == [2, 0]


@given(
    fill=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=30),
    hours=st.lists(st.floats(-48.0, 96.0) | st.just(float("nan")), min_size=30, max_size=30),
    next_h=st.floats(0.0, 48.0),
)
def test_property_route_is_exactly_the_due_bins_most_urgent_first(
    fill: list[float], hours: list[float], next_h: float
) -> None:
    full_at = [T0 + h * HOUR for h in hours[: len(fill)]]
    next_ms = int(T0 + next_h * HOUR)
    route = collection_route(range(len(fill)), fill, full_at, next_ms)
    due = {i for i in range(len(fill)) if fill[i] >= 90.0 or full_at[i] < next_ms + 86_400_000}
    assert set(route) == due and len(route) == len(due)
    urgency = [(-np.inf if fill[i] >= 90.0 else full_at[i]) for i in route]
    assert urgency == sorted(urgency)


@given(
    slope=st.floats(-5.0, 5.0),
    intercept=st.floats(-50.0, 50.0),
    n=st.integers(3, 12),
    outlier=st.floats(-500.0, 500.0),
)
def test_property_theil_sen_recovers_a_line_through_one_outlier(
    slope: float, intercept: float, n: int, outlier: float
) -> None:
    t = np.arange(float(n))[None, :]
    y = intercept + slope * t
    y[0, n // 2] += outlier if n >= 5 else 0.0
    got_slope, got_intercept = theil_sen(t, y, np.ones_like(t, dtype=np.bool_))
    assert got_slope[0] == pytest.approx(slope, abs=1e-9)
    assert got_intercept[0] == pytest.approx(intercept, abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(
    level=st.floats(0.0, 70.0),
    temperature=st.floats(-10.0, 45.0),
    tilt=st.floats(0.0, 30.0),
    seed=st.integers(0, 2**31),
)
def test_property_a_healthy_bin_that_is_not_filling_never_fires(
    level: float, temperature: float, tilt: float, seed: int
) -> None:
    street = Street()
    noise = np.random.default_rng(seed).normal(0.0, 1.0, 48)  # two days of hourly readings
    for i, n in enumerate(noise.tolist()):
        street.send(T0 + i * HOUR, meter(min(max(level + n, 0.0), 72.0), temperature=temperature, tilt=tilt))
    assert street.events == []
    assert street.records("bin_collection") == []


# --- the simulated city ---------------------------------------------------------------------------------


def test_simulated_bins_fire_tip_and_are_emptied_as_the_simulator_says(tmp_path: Path) -> None:
    city = generate_city(600, seed=11)
    topology = simulated_topology(city, tmp_path)
    ids = city.bins.ids
    entry = '{{"fault": "{}", "target": "{}", "start": {}, "duration_s": {}}}'
    plan = "\n".join(
        [
            entry.format("bin_fire", ids[3], MIDSUMMER + 7200, 3600),
            entry.format("bin_tipped", ids[5], MIDSUMMER + 3600, 7200),
        ]
    )
    sim = Simulation(
        city, seed=11, start=MIDSUMMER, faults=FaultInjector(city, seed=11, schedule=parse_schedule(plan))
    )
    engine = Engine(topology, [BinDetector(topology, BinRules())], NoLamps())
    collections, emptied = 0, 0
    before = sim.physics.sanitation.emptied_at.copy()
    seen = np.zeros(len(ids), np.bool_)
    opened: list[tuple[str, str]] = []
    for minute in range(10 * 60):
        tick = sim.step()
        now = sim.physics.sanitation.emptied_at
        if minute < 9 * 60:  # bins report hourly: the last hour's collections are not yet seen
            emptied += int(np.count_nonzero((now != before) & ~np.isnan(now) & seen))  # after a first reading
        before = now.copy()
        for frame in tick.frames:
            if frame.kind is BIN:
                seen[frame.device] = True
        engine.ingest(sim_batches(tick, city, topology, frozenset({BIN})))
        result = engine.tick(round(tick.t * 1000))
        opened += [(e.finding.rule, e.finding.subject) for e in result.events if e.change is Change.OPENED]
        collections += sum(len(k.scope_ids) for k in result.kpis if k.measurement == "bin_collection")
    assert ("bin_fire", ids[3]) in opened
    assert ("bin_tipped", ids[5]) in opened
    assert {rule for rule, _ in opened} <= {
        "bin_fire",
        "bin_tipped",
        "bin_near_full",
        "bin_full",
        "bin_overflow",
    }
    assert emptied > 5
    assert emptied <= collections <= emptied + 5


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"near_full_pct": 95.0},
        {"full_pct": 100.0},
        {"fire_rise_c": 0.0},
        {"forecast_points": 7},
        {"forecast_min_points": 1},
        {"tipped_deg": 3.0},
        {"collection_sla_s": -1.0},
    ],
)
def test_inconsistent_settings_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(RuleConfigError):
        dataclasses.replace(BinRules(), **change)  # type: ignore[arg-type]
