"""Pump station and flood point rules, driven through the real Engine with crafted readings: each fires
when the station or the road is in trouble and stays quiet while a healthy PLC pumps its well."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.drainage_rules import DrainageDetector, DrainageRules, ladder_rung
from analytics.engine import Engine, LampSchedule, TickContext
from analytics.findings import Change, Conditions, Finding, FindingEvent
from analytics.state import Batch, LiveState
from analytics.topology import Topology, build_topology
from devices.assets import Asset, parse_csv
from devices.kinds import DeviceKind
from firmware_sim.city import City
from firmware_sim.faults import FaultInjector, parse_schedule
from firmware_sim.inventory import generate_city, write_inventory
from firmware_sim.physics import PhysicsConfig
from firmware_sim.simulation import SimConfig, Simulation, Tick
from firmware_sim.weather import RainConfig

STATION = DeviceKind.PUMP_STATION
GAUGE = DeviceKind.FLOOD_GAUGE
T0 = 1_782_000_000_000  # 2026-06-21, device time in ms
MIN = 60_000


class NoLamps:
    def at(self, now_ms: int) -> LampSchedule:
        none = np.zeros(0, np.bool_)
        return LampSchedule(none, none, np.zeros(0, np.float32), none)


def station(sid: str = "PS-01", pumps: int = 2, **params: float) -> Asset:
    values: dict[str, float] = {
        "pumps": pumps,
        "start_level_m": 2.5,
        "stop_level_m": 0.8,
        "overflow_level_m": 5.0,
        "rated_current_a": 100.0,
        **params,
    }
    return Asset(id=sid, kind="pump_station", district="hanyang", lat=30.55, lon=114.27, params=values)


def gauge(gid: str = "FG-01", serving: str = "PS-01") -> Asset:
    params = {"station": serving} if serving else {}
    return Asset(id=gid, kind="flood_gauge", district="hanyang", lat=30.56, lon=114.28, params=params)


class Drainage:
    """The engine with the drainage detector; readings go in one at a time, each followed by a tick."""

    def __init__(
        self, assets: Sequence[Asset] = (station(), gauge()), config: DrainageRules | None = None
    ) -> None:
        self.topology = build_topology(assets)
        self.detector = DrainageDetector(self.topology, config or DrainageRules())
        self.engine = Engine(self.topology, [self.detector], NoLamps())
        self.events: list[FindingEvent] = []
        self.seq = 0

    def send(self, kind: DeviceKind, device: str, ts_ms: int, fields: Mapping[str, float]) -> None:
        number = self.topology.table(kind).find([device])
        columns = MappingProxyType({k: np.array([float(v)]) for k, v in fields.items()})
        self.seq += 1
        batch = Batch(kind, number, np.array([ts_ms], np.int64), np.array([self.seq], np.int64), columns)
        self.engine.ingest([batch])
        self.events.extend(self.engine.tick(ts_ms).events)

    def open(self, rule: str) -> dict[str, Finding]:
        return {f.subject: f for f in self.engine.book.open_findings() if f.rule == rule}

    def opened(self, rule: str) -> list[Finding]:
        return [e.finding for e in self.events if e.change is Change.OPENED and e.finding.rule == rule]

    def rules_opened(self) -> set[str]:
        return {e.finding.rule for e in self.events if e.change is Change.OPENED}


@dataclass
class Plc:
    """A healthy station: the lead pump starts at the start level, each further pump 0.4 m higher, all stop
    at the stop level and the lead moves on; one pump lowers the well 0.15 m a minute."""

    pumps: int = 2
    start: float = 2.5
    stop: float = 0.8
    level: float = 1.0
    rated: float = 100.0
    lead: int = 0
    running: list[bool] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    no_start: bool = False  # the lead pump fails to start (the simulator's pump_fail_to_start)

    def __post_init__(self) -> None:
        self.running = [False] * self.pumps
        self.starts = [100 * (k + 1) for k in range(self.pumps)]

    def step(self, inflow_m_min: float, noise: float = 0.0) -> dict[str, float]:
        self.level = max(self.level + inflow_m_min - 0.15 * sum(self.running), 0.05)
        for rank in range(self.pumps):
            k = (self.lead + rank) % self.pumps
            blocked = self.no_start and rank == 0
            if not self.running[k] and not blocked and self.level >= self.start + 0.4 * rank:
                self.running[k] = True
                self.starts[k] += 1
        if self.level <= self.stop and any(self.running):
            self.running = [False] * self.pumps
            self.lead = (self.lead + 1) % self.pumps
        return self.reading(noise)

    def reading(self, noise: float = 0.0, **override: float) -> dict[str, float]:
        fields: dict[str, float] = {
            "wet_well_level": round(self.level + noise, 3),
            "inflow": 500.0,
            "outflow": 950.0 * sum(self.running),
            "rainfall": 0.0,
            "power_ok": 1.0,
        }
        for k, on in enumerate(self.running, start=1):
            fields |= {
                f"pump{k}_running": float(on),
                f"pump{k}_fault": 0.0,
                f"pump{k}_current": 0.9 * self.rated if on else 0.0,
                f"pump{k}_vibration": 1.8 if on else 0.05,
                f"pump{k}_bearing_temp": 55.0 if on else 30.0,
                f"pump{k}_starts": float(self.starts[k - 1]),
            }
        return fields | override


def run_plc(
    city: Drainage, plc: Plc, inflows: Sequence[float], t: int = T0, noise: Sequence[float] = ()
) -> int:
    for i, inflow in enumerate(inflows):
        t += MIN
        city.send(STATION, "PS-01", t, plc.step(inflow, noise[i] if i < len(noise) else 0.0))
    return t


# --- healthy stations -----------------------------------------------------------------------------------


def test_a_healthy_station_pumping_through_a_storm_raises_nothing() -> None:
    city = Drainage()
    plc = Plc()
    dry, storm = [0.04] * 150, [0.25] * 120  # the storm needs both pumps, within capacity (0.30 m/min)
    run_plc(city, plc, dry + storm + dry)
    assert sum(plc.starts) - 300 >= 8, "the test station should have cycled several times"
    assert city.events == []


@settings(max_examples=8, deadline=None)
@given(
    pumps=st.integers(1, 4),
    load=st.floats(0.02, 0.9),
    level=st.floats(0.8, 2.5),
    noise_seed=st.integers(0, 2**31),
)
def test_property_a_healthy_plc_within_capacity_never_fires(
    pumps: int, load: float, level: float, noise_seed: int
) -> None:
    city = Drainage([station(pumps=pumps), gauge()])
    plc = Plc(pumps=pumps, level=level)
    noise = np.random.default_rng(noise_seed).normal(0.0, 0.005, 180)
    run_plc(city, plc, [load * 0.15 * pumps] * 180, noise=noise.tolist())
    assert city.events == []


# --- station rules --------------------------------------------------------------------------------------


def test_fail_to_start_opens_after_five_minutes_and_stays_until_a_prompt_start() -> None:
    city = Drainage()
    plc = Plc(level=2.3, no_start=True)
    t = run_plc(city, plc, [0.05] * 4)  # reaches 2.5 m at the 4th minute
    high_since = t
    t = run_plc(city, plc, [0.05] * 4, t)
    assert city.open("pump_fail_to_start") == {}, "4 minutes at the start level is not yet a failure"
    t = run_plc(city, plc, [0.05] * 2, t)
    finding = city.open("pump_fail_to_start")["PS-01"]
    assert finding.since_ms == high_since
    assert finding.threshold == 2.5
    assert "no pump starting within 5 min" in finding.explanation
    # The standby pump rescues the well at start + 0.4 m, every cycle: still the same open finding.
    t = run_plc(city, plc, [0.05] * 120, t)
    assert any(plc.running) or plc.level < 2.5
    assert len(city.opened("pump_fail_to_start")) == 1
    assert "PS-01" in city.open("pump_fail_to_start")
    plc.no_start = False  # repaired: the next cycle starts on time
    run_plc(city, plc, [0.05] * 120, t)
    assert city.open("pump_fail_to_start") == {}
    assert len(city.opened("pump_fail_to_start")) == 1


def test_power_loss_is_reported_and_explains_the_idle_pumps() -> None:
    city = Drainage()
    plc = Plc(level=2.6)
    t = T0
    for _ in range(10):
        t += MIN
        plc.level += 0.03
        city.send(STATION, "PS-01", t, plc.reading(power_ok=0.0))
    assert city.open("station_power_loss")["PS-01"].since_ms == T0 + MIN
    assert city.open("pump_fail_to_start") == {}
    run_plc(city, plc, [0.03] * 60, t)  # the power is back and the lead pump starts at once
    assert city.open("station_power_loss") == {}
    assert city.rules_opened() == {"station_power_loss"}


def test_dry_run_needs_two_readings_and_names_the_pump() -> None:
    city = Drainage()
    plc = Plc(level=0.7)
    plc.running = [False, True]
    city.send(STATION, "PS-01", T0, plc.reading())
    assert city.open("pump_dry_run") == {}, "one reading below the stop level is the PLC about to stop it"
    city.send(STATION, "PS-01", T0 + MIN, plc.reading())
    finding = city.open("pump_dry_run")["PS-01"]
    assert finding.value == 2
    assert finding.explanation.startswith("pump 2 running with nothing to pump")


def test_dry_run_from_low_current_and_no_outflow() -> None:
    city = Drainage()
    plc = Plc(level=2.0)
    plc.running = [True, False]
    for i in range(3):
        city.send(STATION, "PS-01", T0 + i * MIN, plc.reading(pump1_current=12.0, outflow=0.0))
    assert city.open("pump_dry_run")["PS-01"].value == 1
    city.send(STATION, "PS-01", T0 + 3 * MIN, plc.reading())
    assert city.open("pump_dry_run") == {}


def test_overcurrent_must_last_two_minutes() -> None:
    city = Drainage()
    plc = Plc(level=2.0)
    plc.running = [True, True]
    city.send(STATION, "PS-01", T0, plc.reading(pump2_current=125.0))
    city.send(STATION, "PS-01", T0 + MIN, plc.reading(pump2_current=126.0))
    assert city.open("pump_overcurrent") == {}
    city.send(STATION, "PS-01", T0 + 2 * MIN, plc.reading(pump2_current=127.0))
    finding = city.open("pump_overcurrent")["PS-01"]
    assert (finding.value, finding.threshold, finding.since_ms) == (127.0, pytest.approx(110.0), T0)
    city.send(STATION, "PS-01", T0 + 3 * MIN, plc.reading())
    assert city.open("pump_overcurrent") == {}


def test_short_cycling_counts_starts_over_a_sliding_hour() -> None:
    city = Drainage()
    plc = Plc(level=2.0)
    t = T0
    city.send(STATION, "PS-01", t - MIN, plc.reading())
    for _ in range(7):  # pump 1 starts and stops every 8 minutes: 7 starts in 56 minutes
        plc.running = [True, False]
        plc.starts[0] += 1
        city.send(STATION, "PS-01", t, plc.reading())
        plc.running = [False, False]
        city.send(STATION, "PS-01", t + 4 * MIN, plc.reading())
        t += 8 * MIN
    finding = city.open("pump_short_cycling")["PS-01"]
    assert (finding.value, finding.threshold) == (7, 6)
    for _ in range(70):  # an hour of rest: the window slides past the starts
        city.send(STATION, "PS-01", t, plc.reading())
        t += MIN
    assert city.open("pump_short_cycling") == {}


def test_six_starts_an_hour_is_within_the_design_limit() -> None:
    city = Drainage()
    plc = Plc(level=2.0)
    for i in range(60):
        if i % 10 == 0:
            plc.starts[1] += 1
        city.send(STATION, "PS-01", T0 + i * MIN, plc.reading())
    assert city.open("pump_short_cycling") == {}


def test_a_counter_jump_after_a_long_silence_is_not_short_cycling() -> None:
    city = Drainage()
    plc = Plc(level=2.0)
    city.send(STATION, "PS-01", T0, plc.reading())
    plc.starts[0] += 20
    city.send(STATION, "PS-01", T0 + 5 * 60 * MIN, plc.reading())
    assert city.open("pump_short_cycling") == {}


def test_capacity_shortfall_when_the_well_rises_with_every_pump_running() -> None:
    city = Drainage()
    plc = Plc(level=3.0)
    plc.running = [True, True]
    t = T0
    for _ in range(9):
        t += MIN
        plc.level += 0.02  # 1.2 m/h
        city.send(STATION, "PS-01", t, plc.reading())
    assert city.open("pump_capacity_shortfall") == {}, "nine readings are not yet a trend"
    t += MIN
    plc.level += 0.02
    city.send(STATION, "PS-01", t, plc.reading())
    finding = city.open("pump_capacity_shortfall")["PS-01"]
    assert finding.value == pytest.approx(1.2, rel=0.01)
    for _ in range(20):  # pinned at the top of the well: still short of capacity
        t += MIN
        city.send(STATION, "PS-01", t, plc.reading())
    assert "PS-01" in city.open("pump_capacity_shortfall")
    for _ in range(10):
        t += MIN
        plc.level -= 0.03
        city.send(STATION, "PS-01", t, plc.reading())
    assert city.open("pump_capacity_shortfall") == {}
    assert len(city.opened("pump_capacity_shortfall")) == 1


def test_a_rising_well_with_a_pump_in_reserve_is_not_a_shortfall() -> None:
    city = Drainage()
    plc = Plc(level=2.6)
    plc.running = [True, False]
    for i in range(15):
        plc.level += 0.02
        city.send(STATION, "PS-01", T0 + i * MIN, plc.reading())
    assert city.open("pump_capacity_shortfall") == {}


def test_overflow_risk_at_the_overflow_level_with_hysteresis() -> None:
    city = Drainage()
    plc = Plc()
    plc.running = [True, True]
    for i, level in enumerate([4.9, 5.0, 4.97, 5.02, 4.9]):
        plc.level = level
        city.send(STATION, "PS-01", T0 + i * MIN, plc.reading())
        if i == 2:
            assert city.open("overflow_risk")["PS-01"].value == pytest.approx(5.0)
    assert city.open("overflow_risk") == {}
    assert len(city.opened("overflow_risk")) == 1


def test_bearing_limit_rolling_by_default_sliding_by_config_or_registry() -> None:
    plc = Plc(level=2.0)
    plc.running = [True, False]
    hot = plc.reading(pump1_bearing_temp=70.0)
    rolling = Drainage()
    rolling.send(STATION, "PS-01", T0, hot)
    assert rolling.open("pump_bearing_temp") == {}
    sliding = Drainage(config=DrainageRules(bearing="sliding"))
    sliding.send(STATION, "PS-01", T0, hot)
    assert sliding.open("pump_bearing_temp")["PS-01"].threshold == 65.0
    registry = Drainage([station(bearing_limit_c=68.0)])
    registry.send(STATION, "PS-01", T0, hot)
    assert registry.open("pump_bearing_temp")["PS-01"].explanation.startswith(
        "pump bearing at 70.0 °C, above 68"
    )


def test_vibration_zones_c_and_d_as_levels_two_and_one() -> None:
    city = Drainage()
    plc = Plc(level=2.0)
    plc.running = [True, True]
    city.send(STATION, "PS-01", T0, plc.reading(pump2_vibration=3.1))
    assert city.open("pump_vibration") == {}, "one rough reading is a transient"
    city.send(STATION, "PS-01", T0 + MIN, plc.reading(pump2_vibration=3.2))
    assert city.open("pump_vibration")["PS-01"].level == 2
    city.send(STATION, "PS-01", T0 + 2 * MIN, plc.reading(pump2_vibration=5.0))
    assert city.open("pump_vibration")["PS-01"].level == 1
    city.send(STATION, "PS-01", T0 + 3 * MIN, plc.reading(pump2_vibration=2.6))
    assert city.open("pump_vibration")["PS-01"].level == 2, "hysteresis: 2.6 mm/s holds zone C"
    city.send(STATION, "PS-01", T0 + 4 * MIN, plc.reading())
    assert city.open("pump_vibration") == {}


def test_pump_fault_names_the_first_faulted_pump_and_counts_them() -> None:
    city = Drainage([station(pumps=4)])
    plc = Plc(pumps=4, level=2.0)
    city.send(STATION, "PS-01", T0, plc.reading(pump3_fault=1.0, pump4_fault=1.0))
    finding = city.open("pump_fault")["PS-01"]
    assert (finding.value, finding.threshold) == (3, 2)
    assert finding.explanation.startswith("fault relay set on pump 3 (2 pump(s) in fault)")


def test_a_station_without_registry_levels_raises_no_level_rules() -> None:
    bare = Asset(id="PS-01", kind="pump_station", district="hanyang", lat=30.5, lon=114.3)
    city = Drainage([bare])
    plc = Plc(level=9.0)
    for i in range(10):
        city.send(STATION, "PS-01", T0 + i * MIN, plc.reading())
    assert city.events == []


def test_a_suppressed_station_is_left_to_the_wider_finding() -> None:
    class StationsOffline:
        kinds = frozenset({STATION})
        rules = ()
        nbytes = 0

        def observe(self, batch: Batch, state: LiveState) -> None:
            pass

        def evaluate(self, ctx: TickContext) -> list[Conditions]:
            ctx.suppressed_mask(STATION)[:] = True
            return []

    city = Drainage()
    city.engine = Engine(city.topology, [StationsOffline(), city.detector], NoLamps())
    city.send(STATION, "PS-01", T0, Plc(level=2.0).reading(power_ok=0.0))
    assert city.events == []


# --- flood points ---------------------------------------------------------------------------------------


def depths(city: Drainage, values: Sequence[float], t: int = T0, gid: str = "FG-01") -> int:
    for d in values:
        t += MIN
        city.send(GAUGE, gid, t, {"water_depth": d, "rainfall": 30.0, "battery": 80.0})
    return t


def test_depth_ladder_levels_three_two_one_with_hysteresis() -> None:
    city = Drainage()
    levels = []
    for d in [10, 16, 20, 28, 41, 39, 37, 26, 24, 14, 12.5]:
        depths(city, [d], T0 + len(levels) * 5 * MIN)
        found = city.open("flood_depth").get("FG-01")
        levels.append(found.level if found else None)
    assert levels == [None, 3, 3, 2, 1, 1, 2, 2, 3, 3, None]
    assert [e.change for e in city.events if e.finding.rule == "flood_depth"].count(Change.OPENED) == 1


def test_rise_rate_in_cm_per_ten_minutes() -> None:
    city = Drainage()
    t = depths(city, [0.0] * 5)
    t = depths(city, [0.6 * i for i in range(1, 12)], t)  # 6 cm per 10 min
    finding = city.open("flood_rise_rate")["FG-01"]
    assert 5.0 < finding.value <= 6.0
    assert finding.explanation.startswith(f"water rising {finding.value:.1f} cm per 10 min, above 5.0")
    depths(city, [6.6] * 12, t)
    assert city.open("flood_rise_rate") == {}


def test_a_slow_rise_is_not_a_rise_alarm() -> None:
    city = Drainage()
    depths(city, [0.3 * i for i in range(40)])  # 3 cm per 10 min
    assert city.open("flood_rise_rate") == {}


def test_a_gauge_reporting_every_fifteen_minutes_still_has_a_rise_rate() -> None:
    city = Drainage()
    for i in range(4):
        city.send(GAUGE, "FG-01", T0 + i * 15 * MIN, {"water_depth": 10.0 * i})
    assert city.open("flood_rise_rate")["FG-01"].value == pytest.approx(6.67, rel=0.01)


def test_flood_duration_after_thirty_minutes_above_the_first_rung() -> None:
    city = Drainage()
    t = depths(city, [18.0] * 30)
    assert city.open("flood_duration") == {}
    depths(city, [18.0], t)
    finding = city.open("flood_duration")["FG-01"]
    assert finding.since_ms == T0 + MIN
    assert finding.explanation.startswith("water deeper than 15 cm for over 30 min, now 18 cm")


def idle_station(city: Drainage, level: float, t: int, **override: float) -> None:
    plc = Plc(level=level)
    city.send(STATION, "PS-01", t, plc.reading(**override))


def test_flooding_with_the_station_idle_at_its_start_level() -> None:
    city = Drainage()
    t = T0
    for i in range(12):
        t += MIN
        idle_station(city, 2.8, t)
        city.send(GAUGE, "FG-01", t, {"water_depth": 4.0 + 0.3 * i})
    finding = city.open("flood_station_idle")["FG-01"]
    assert finding.children == ("PS-01",)
    assert finding.child_kind == "pump_station"
    assert finding.value == pytest.approx(3.0, rel=0.05)


def test_no_station_idle_finding_while_the_station_pumps_or_its_well_is_low() -> None:
    for level, running in [(2.8, 1.0), (1.5, 0.0)]:
        city = Drainage()
        t = T0
        for i in range(12):
            t += MIN
            idle_station(city, level, t, pump1_running=running, pump1_current=90.0 * running)
            city.send(GAUGE, "FG-01", t, {"water_depth": 4.0 + 0.3 * i})
        assert city.open("flood_station_idle") == {}, (level, running)


def test_flooding_while_the_station_is_not_heard_from() -> None:
    city = Drainage()
    idle_station(city, 1.5, T0, pump1_running=1.0)
    depths(city, [4.0 + 0.3 * i for i in range(25)])
    assert "FG-01" in city.open("flood_station_idle")


def test_a_gauge_with_no_serving_station_raises_no_idle_finding() -> None:
    city = Drainage([station(), gauge("FG-09", serving="")])
    depths(city, [4.0 + 0.5 * i for i in range(25)], gid="FG-09")
    assert city.open("flood_station_idle") == {}
    assert "FG-09" in city.open("flood_rise_rate")


@settings(max_examples=20, deadline=None)
@given(depth=st.floats(0.0, 12.9), minutes=st.integers(1, 60))
def test_property_a_constant_shallow_depth_never_fires(depth: float, minutes: int) -> None:
    city = Drainage()
    idle_station(city, 2.9, T0)
    depths(city, [depth] * minutes)
    assert city.events == []


@given(
    rung=st.integers(0, 3),
    value=st.floats(-10.0, 100.0) | st.just(float("nan")),
)
def test_property_ladder_steps_down_only_past_the_hysteresis(rung: int, value: float) -> None:
    ladder = (15.0, 27.0, 40.0)
    new = int(ladder_rung(np.array([rung], np.int8), np.array([value]), ladder, 2.0)[0])
    if np.isnan(value):
        assert new == rung
    else:
        assert new >= sum(value >= r for r in ladder)  # at least the rung the value stands on
        assert new <= max(rung, sum(value >= r for r in ladder))  # never climbs past it
        if new < rung:
            assert value < ladder[rung - 1] - 2.0


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"fail_to_start_s": 0},
        {"overcurrent_factor": 1.0},
        {"dry_run_current_fraction": 1.5},
        {"starts_bucket_s": 7.0},
        {"vibration_zone_d_mm_s": 2.0},
        {"depth_ladder_cm": (15.0, 40.0, 27.0)},
        {"bearing": "magnetic"},
        {"rise_readings": 2},
    ],
)
def test_inconsistent_settings_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(RuleConfigError):
        dataclasses.replace(DrainageRules(), **change)  # type: ignore[arg-type]


def test_every_rule_has_an_explanation_and_memory_is_counted() -> None:
    city = Drainage()
    names = {info.rule for info in city.detector.rules}
    assert len(names) == 14
    assert city.detector.nbytes > 0


# --- the simulated city ---------------------------------------------------------------------------------

MIDSUMMER = dt.datetime(2026, 6, 21, tzinfo=dt.UTC).timestamp()


def simulated_topology(city: City, tmp_path: Path) -> Topology:
    """The registry the city's inventory CSV imports as."""
    path = tmp_path / "inventory.csv"
    write_inventory(city, path)
    with path.open(encoding="utf-8") as f:
        return build_topology([a for a in parse_csv(f) if isinstance(a, Asset)])


def sim_batches(tick: Tick, city: City, topology: Topology, kinds: frozenset[DeviceKind]) -> list[Batch]:
    batches = []
    for frame in tick.frames:
        if frame.kind in kinds and len(frame):
            number = topology.table(frame.kind).find(city.devices()[frame.kind].ids[frame.device])
            columns = {k: np.asarray(v, dtype=np.float64) for k, v in frame.fields.items()}
            batches.append(Batch(frame.kind, number, frame.ts_ms, frame.seq, MappingProxyType(columns)))
    return batches


def test_the_simulated_station_fails_to_start_once_and_recovers(tmp_path: Path) -> None:
    city = generate_city(600, seed=11)
    topology = simulated_topology(city, tmp_path)
    fault = '{"fault": "pump_fail_to_start", "target": "PS-01", "start": %d, "duration_s": 10800}'
    faults = FaultInjector(city, seed=11, schedule=parse_schedule(fault % (MIDSUMMER + 3600)))
    dry = SimConfig(physics=PhysicsConfig(rain=RainConfig(events_per_day=0)))
    sim = Simulation(city, seed=11, start=MIDSUMMER, config=dry, faults=faults)
    engine = Engine(topology, [DrainageDetector(topology, DrainageRules())], NoLamps())
    events: list[FindingEvent] = []
    for _ in range(7 * 60):
        tick = sim.step()
        engine.ingest(sim_batches(tick, city, topology, frozenset({STATION, GAUGE})))
        events.extend(engine.tick(round(tick.t * 1000)).events)
    assert [(e.change, e.finding.rule, e.finding.subject) for e in events] == [
        (Change.OPENED, "pump_fail_to_start", "PS-01"),
        (Change.CLEARED, "pump_fail_to_start", "PS-01"),
    ]
    opened, cleared = (e.at_ms / 1000 for e in events)
    assert MIDSUMMER + 3600 + 300 <= opened < MIDSUMMER + 4 * 3600
    assert cleared > MIDSUMMER + 4 * 3600, "open until the repaired pump starts on time"
