"""Communication loss: learned cadences, late and offline devices, dead gateways as one finding."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.comm import CommDetector, CommRules
from analytics.engine import Engine, LampSchedule, TickContext
from analytics.findings import Change, Conditions, FindingEvent, RuleInfo
from analytics.state import Batch, LiveState
from analytics.topology import Topology, build_topology
from devices.assets import Asset
from devices.kinds import DeviceKind

T0 = 1_750_000_000_000  # a June night (flood season does not matter to lamps and bins)
MIN = 60_000


def city(*, lamps: int = 6, bins: int = 2, lone_gauge: bool = True) -> list[Asset]:
    """GW-L: a circuit's lamps and their cabinet; GW-B: bins; GW-G: one flood gauge alone."""
    assets = [
        Asset(id=g, kind="gateway", district="hongshan", lat=30.5, lon=114.3)
        for g in ("GW-B", "GW-G", "GW-L")
    ]
    for i in range(lamps):
        assets.append(
            Asset(
                id=f"LMP-{i:03d}",
                kind="lamp",
                district="hongshan",
                road="Luoyu Road",
                road_class="trunk",
                circuit="CIR-A",
                gateway="GW-L",
                lat=30.5,
                lon=114.3 + i * 1e-4,
                rated_power_w=100.0,
            )
        )
    assets.append(
        Asset(
            id="CAB-A",
            kind="cabinet",
            district="hongshan",
            circuit="CIR-A",
            gateway="GW-L",
            lat=30.5,
            lon=114.3,
        )
    )
    for i in range(bins):
        assets.append(
            Asset(id=f"BIN-{i}", kind="bin", district="hongshan", gateway="GW-B", lat=30.5, lon=114.31)
        )
    if lone_gauge:
        assets.append(
            Asset(id="FG-1", kind="flood_gauge", district="hongshan", gateway="GW-G", lat=30.5, lon=114.32)
        )
    return assets


class Night:
    def __init__(self, n: int) -> None:
        self.view = LampSchedule(
            due=np.ones(n, np.bool_),
            daytime=np.zeros(n, np.bool_),
            dim=np.full(n, 100, np.float32),
            planned_off=np.zeros(n, np.bool_),
        )

    def at(self, now_ms: int) -> LampSchedule:
        return self.view


def engine(topology: Topology, config: CommRules | None = None) -> tuple[Engine, CommDetector]:
    comm = CommDetector(topology, config or CommRules())
    return Engine(topology, [comm], Night(len(topology.table(DeviceKind.LAMP)))), comm


def readings(kind: DeviceKind, devices: Sequence[int], ts_ms: int) -> Batch:
    n = len(devices)
    return Batch(
        kind,
        np.asarray(devices, dtype=np.int32),
        np.full(n, ts_ms, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        MappingProxyType({}),
    )


def opened(events: Sequence[FindingEvent], rule: str | None = None) -> list[str]:
    return [e.finding.subject for e in events if e.change is Change.OPENED and rule in (None, e.finding.rule)]


def cleared(events: Sequence[FindingEvent], rule: str) -> list[str]:
    return [e.finding.subject for e in events if e.change is Change.CLEARED and e.finding.rule == rule]


def every_kind(topology: Topology) -> dict[DeviceKind, list[int]]:
    return {kind: list(range(len(t))) for kind, t in topology.tables.items() if len(t)}


def test_a_device_that_stops_goes_late_then_offline_after_k_periods_and_clears_on_its_next_reading() -> None:
    topo = build_topology(city())
    eng, comm = engine(topo)
    lamp = DeviceKind.LAMP
    for k in range(6):  # everyone reports every minute for a while
        for kind, devices in every_kind(topo).items():
            eng.ingest([readings(kind, devices, T0 + k * MIN)])
        assert not opened(eng.tick(T0 + k * MIN + 5_000).events)
    last = T0 + 5 * MIN
    for kind, devices in every_kind(topo).items():  # LMP-002 falls silent, everyone else goes on
        talking = [d for d in devices if kind is not lamp or d != 2]
        for k in (1, 2, 3):
            eng.ingest([readings(kind, talking, last + k * MIN)])
    assert comm.late_mask(lamp, last + 100_000).tolist() == [False, False, True, False, False, False]
    assert not comm.offline_mask(lamp, last + 100_000).any()
    assert not opened(eng.tick(last + 170_000).events)  # late is not a finding
    events = eng.tick(last + 181_000).events  # 3 periods without a reading
    assert opened(events) == ["LMP-002"]
    finding = next(e.finding for e in events)
    assert finding.rule == "offline_lamp"
    assert "offline after 3 min" in finding.explanation
    eng.ingest([readings(lamp, [2], last + 200_000)])
    assert cleared(eng.tick(last + 201_000).events, "offline_lamp") == ["LMP-002"]


def test_a_dead_gateway_is_one_finding_not_one_per_device() -> None:
    topo = build_topology(city(lamps=12))
    eng, comm = engine(topo)
    for k in range(5):
        for kind, devices in every_kind(topo).items():
            eng.ingest([readings(kind, devices, T0 + k * MIN)])
        eng.tick(T0 + k * MIN + 1000)
    silent_from = T0 + 4 * MIN
    all_events: list[FindingEvent] = []
    for k in range(1, 10):  # GW-L (lamps and cabinet) says nothing; the bins and the gauge go on
        eng.ingest([readings(DeviceKind.FLOOD_GAUGE, [0], silent_from + k * MIN)])
        eng.ingest([readings(DeviceKind.BIN, [0, 1], silent_from + k * MIN)])
        all_events += eng.tick(silent_from + k * MIN + 1000).events
    assert opened(all_events) == ["GW-L"]
    assert opened(all_events, "gateway_offline") == ["GW-L"]
    gw = next(e.finding for e in all_events)
    assert "none of its 13 devices can report" in gw.explanation
    for kind, devices in every_kind(topo).items():
        if kind is not DeviceKind.FLOOD_GAUGE:
            eng.ingest([readings(kind, devices, silent_from + 10 * MIN)])
    events = eng.tick(silent_from + 10 * MIN + 1000).events
    assert cleared(events, "gateway_offline") == ["GW-L"]
    assert not opened(events)
    assert comm.offline_mask(DeviceKind.LAMP, silent_from + 10 * MIN + 1000).sum() == 0


def test_a_gateway_with_one_device_gives_that_device_finding() -> None:
    topo = build_topology(city())
    eng, _ = engine(topo)
    for k in range(4):
        for kind, devices in every_kind(topo).items():
            if kind is not DeviceKind.FLOOD_GAUGE or k == 0:
                eng.ingest([readings(kind, devices, T0 + k * MIN)])
    events = eng.tick(T0 + 3 * MIN + 10_000).events
    assert opened(events) == ["FG-1"]
    assert opened(events, "offline_flood_gauge") == ["FG-1"]


def test_the_last_will_takes_a_gateway_offline_at_once_and_online_or_a_fresh_reading_lifts_it() -> None:
    topo = build_topology(city())
    eng, comm = engine(topo)
    for kind, devices in every_kind(topo).items():
        eng.ingest([readings(kind, devices, T0)])
    eng.tick(T0 + 1000)
    gw_l = topo.gateways.index("GW-L")
    comm.gateway_status(gw_l, online=False, ts_ms=T0 + 2000)
    comm.gateway_status(-1, online=False, ts_ms=T0 + 2000)  # not in this partition: ignored
    events = eng.tick(T0 + 3000).events
    assert opened(events) == ["GW-L"]
    comm.gateway_status(gw_l, online=True, ts_ms=T0 + 4000)
    assert cleared(eng.tick(T0 + 5000).events, "gateway_offline") == ["GW-L"]
    comm.gateway_status(gw_l, online=False, ts_ms=T0 + 6000)
    assert opened(eng.tick(T0 + 7000).events) == ["GW-L"]
    eng.ingest([readings(DeviceKind.LAMP, [0], T0 + 8000)])  # stamped after the will: the gateway is back
    assert cleared(eng.tick(T0 + 9000).events, "gateway_offline") == ["GW-L"]


class CircuitRuleStub:
    """Stands for the streetlight detector: owns the circuit_outage rule, never raises it."""

    kinds = frozenset[DeviceKind]()
    rules = (RuleInfo("circuit_outage", "circuit", "streetlight", "Circuit outage", "{subject}"),)
    nbytes = 0

    def observe(self, batch: Batch, state: LiveState) -> None:
        pass

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        return [Conditions.none("circuit_outage")]


def test_lamps_of_a_circuit_silent_together_behind_a_live_gateway_are_left_to_the_circuit_rule() -> None:
    topo = build_topology(city(lamps=10))
    comm = CommDetector(topo, CommRules())
    eng = Engine(topo, [comm, CircuitRuleStub()], Night(10))
    for k in range(4):
        for kind, devices in every_kind(topo).items():
            eng.ingest([readings(kind, devices, T0 + k * MIN)])
    events: list[FindingEvent] = []
    for k in range(4, 12):  # cable theft: the lamps fall silent, their cabinet on the same gateway reports
        eng.ingest([readings(DeviceKind.CABINET, [0], T0 + k * MIN)])
        eng.ingest([readings(DeviceKind.BIN, [0, 1], T0 + k * MIN)])
        eng.ingest([readings(DeviceKind.FLOOD_GAUGE, [0], T0 + k * MIN)])
        events += eng.tick(T0 + k * MIN + 1000).events
    assert opened(events) == []  # neither the gateway nor ten lamps: the streetlight detector's outage
    circuit = topo.circuits.index("CIR-A")
    assert comm.silent_circuits(T0 + 11 * MIN + 1000)[circuit]
    assert comm.offline_mask(DeviceKind.LAMP, T0 + 11 * MIN + 1000).all()


def test_without_a_circuit_rule_in_the_engine_silent_lamps_are_lamp_findings() -> None:
    topo = build_topology(city(lamps=10))
    eng, _ = engine(topo)  # comm alone: nobody would raise the circuit's outage
    for k in range(4):
        for kind, devices in every_kind(topo).items():
            eng.ingest([readings(kind, devices, T0 + k * MIN)])
    events: list[FindingEvent] = []
    for k in range(4, 8):
        for kind in (DeviceKind.CABINET, DeviceKind.BIN, DeviceKind.FLOOD_GAUGE):
            eng.ingest([readings(kind, every_kind(topo)[kind], T0 + k * MIN)])
        events += eng.tick(T0 + k * MIN + 1000).events
    assert len(opened(events, "offline_lamp")) == 10


def test_a_bin_reporting_hourly_is_not_offline_after_five_minutes_nor_between_its_reports() -> None:
    topo = build_topology(city(lamps=2))
    eng, comm = engine(topo)
    hour = 60 * MIN
    events: list[FindingEvent] = []
    for h in range(6):
        eng.ingest([readings(DeviceKind.BIN, [0, 1], T0 + h * hour)])
        for minutes in (5, 30, 59):
            others = [(kind, d) for kind, d in every_kind(topo).items() if kind is not DeviceKind.BIN]
            eng.ingest([readings(kind, d, T0 + h * hour + minutes * MIN) for kind, d in others])
            events += eng.tick(T0 + h * hour + minutes * MIN + 1000).events
    assert opened(events, "offline_bin") == []
    assert comm.cadence_s(DeviceKind.BIN) == pytest.approx([3600.0, 3600.0])


def test_a_bins_alarm_burst_of_minute_reports_does_not_teach_it_a_minute_cadence() -> None:
    topo = build_topology(city(lamps=2))
    eng, comm = engine(topo)
    hour = 60 * MIN
    for h in range(4):
        eng.ingest([readings(DeviceKind.BIN, [0], T0 + h * hour)])
    fire = T0 + 3 * hour
    for k in range(1, 40):  # a fire: it reports every minute for 40 minutes
        eng.ingest([readings(DeviceKind.BIN, [0], fire + k * MIN)])
    assert comm.cadence_s(DeviceKind.BIN)[0] == pytest.approx(3600.0)
    assert not comm.offline_mask(DeviceKind.BIN, fire + 39 * MIN + 2 * hour).any()


def test_cadence_is_learned_from_irregular_gaps_and_one_outage_does_not_slow_it_down() -> None:
    topo = build_topology(city(lamps=1))
    eng, comm = engine(topo)
    rng = np.random.default_rng(7)
    t = T0
    for _ in range(200):  # a lamp that reports every 90 to 150 s (mean 120 s), not the default 60 s
        t += int(rng.uniform(90_000, 150_000))
        eng.ingest([readings(DeviceKind.LAMP, [0], t)])
    assert comm.cadence_s(DeviceKind.LAMP)[0] == pytest.approx(120.0, rel=0.1)
    t += 3 * 3_600_000  # a three-hour outage
    eng.ingest([readings(DeviceKind.LAMP, [0], t)])
    assert comm.cadence_s(DeviceKind.LAMP)[0] == pytest.approx(120.0, rel=0.1)


def test_a_device_set_to_report_less_often_is_relearned_after_a_few_long_gaps() -> None:
    topo = build_topology(city(lamps=1))
    eng, comm = engine(topo)
    t = T0
    for _ in range(10):
        t += MIN
        eng.ingest([readings(DeviceKind.LAMP, [0], t)])
    for _ in range(3):  # reconfigured: every 10 minutes
        t += 10 * MIN
        eng.ingest([readings(DeviceKind.LAMP, [0], t)])
    assert comm.cadence_s(DeviceKind.LAMP)[0] == pytest.approx(600.0)


def test_never_heard_devices_wait_for_the_grace_and_out_of_service_ones_never_count() -> None:
    assets = city(lamps=3)
    assets = [a if a.id != "LMP-001" else Asset(**{**_fields(a), "in_service": False}) for a in assets]
    topo = build_topology(assets)
    eng, _ = engine(topo, CommRules(never_seen_grace_s=900.0))
    eng.ingest([readings(DeviceKind.LAMP, [0], T0)])  # only LMP-000 ever reports
    assert not opened(eng.tick(T0 + 1000).events)  # the clock starts here
    eng.ingest([readings(DeviceKind.LAMP, [0], T0 + 10 * MIN)])
    assert opened(eng.tick(T0 + 10 * MIN).events, "offline_lamp") == []
    late = opened(eng.tick(T0 + 16 * MIN).events)
    assert "LMP-001" not in late  # out of service
    assert "LMP-002" in late and "CAB-A" in late and "FG-1" in late
    assert "BIN-0" not in late  # an hourly bin gets three of its own periods
    assert set(opened(eng.tick(T0 + 181 * MIN).events)) >= {"GW-B"}  # both bins silent: their gateway


def _fields(asset: Asset) -> dict[str, object]:
    return {name: getattr(asset, name) for name in Asset.__dataclass_fields__}


def test_stations_are_offline_sooner_in_flood_season() -> None:
    rules = CommRules()
    june, january = T0, 1_736_000_000_000
    assert rules.offline_periods(DeviceKind.PUMP_STATION, june) == 2.0
    assert rules.offline_periods(DeviceKind.PUMP_STATION, january) == 3.0
    assert rules.offline_periods(DeviceKind.LAMP, june) == 3.0


@pytest.mark.parametrize(
    "bad",
    [
        {"late_after": 3.0, "offline_after": 3.0},
        {"gateway_fraction": 0.0},
        {"learn_weight": 1.5},
        {"burst_factor": 1.0},
        {"flood_season_months": (13,)},
        {"default_cadence_s": {DeviceKind.LAMP: 0.5}},
    ],
)
def test_inconsistent_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(RuleConfigError):
        CommRules(**bad)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    cadence_s=st.floats(5.0, 7200.0),
    prior_factor=st.floats(0.5, 2.0),
    jitter=st.floats(0.0, 0.2),
    n=st.integers(2, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_steady_device_never_goes_offline(
    cadence_s: float, prior_factor: float, jitter: float, n: int, seed: int
) -> None:
    """Whatever its cadence, a device whose registry interval is within a factor 2 of the truth and which
    reports within ±20 % of it is never offline, however the ticks fall between its readings."""
    asset = Asset(
        id="BIN-0",
        kind="bin",
        district="d",
        lat=30.0,
        lon=114.0,
        params={"report_interval_s": cadence_s * prior_factor},
    )
    topo = build_topology([asset])
    comm = CommDetector(topo, CommRules(never_seen_grace_s=0.0))
    eng = Engine(topo, [comm], Night(0))
    rng = np.random.default_rng(seed)
    t = T0
    eng.ingest([readings(DeviceKind.BIN, [0], t)])
    events: list[FindingEvent] = list(eng.tick(t).events)
    for _ in range(n):
        gap = int(cadence_s * 1000 * (1 + rng.uniform(-jitter, jitter)))
        for frac in sorted(rng.uniform(0.0, 1.0, 2)):
            events += eng.tick(t + int(frac * gap)).events
        t += gap
        eng.ingest([readings(DeviceKind.BIN, [0], t)])
    events += eng.tick(t).events
    assert opened(events) == []


def test_hourly_meters_behind_a_gateway_that_was_down_are_one_finding_and_none_after_it_returns() -> None:
    topo = build_topology(city(lamps=2, bins=6, lone_gauge=False))
    eng, _ = engine(topo)
    hour = 60 * MIN
    # Six meters report hourly, each at its own minute of the hour: they learn their cadence.
    for h in range(4):
        for b in range(6):
            eng.ingest([readings(DeviceKind.BIN, [b], T0 + h * hour + b * 10 * MIN)])
            eng.tick(T0 + h * hour + b * 10 * MIN + 1000)
    down_from = T0 + 4 * hour
    events: list[FindingEvent] = []
    for minute in range(0, 4 * 60, 5):  # GW-B says nothing for four hours
        events += eng.tick(down_from + minute * MIN).events
    assert opened(events) == ["GW-B"]  # one gateway finding, no meter of its own
    back = down_from + 4 * hour
    after: list[FindingEvent] = []
    for minute in range(0, 70, 5):  # the meters come back one by one, each at its own minute
        due = [b for b in range(6) if b * 10 == minute]
        if due:
            eng.ingest([readings(DeviceKind.BIN, due, back + minute * MIN)])
        after += eng.tick(back + minute * MIN + 1000).events
    assert cleared(after, "gateway_offline") == ["GW-B"]
    assert not opened(after)  # none of the meters still waiting for its minute is called offline
