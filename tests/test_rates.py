"""City rates on hand-computed cities: lighting rate (observed and lower bound), facility intact rate,
installation rate, the per-road rule, shortfalls judged at night check times, nightly minimum and mean."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from unittest import mock
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analytics.rate_scopes
from analytics import RuleConfigError
from analytics.engine import Engine, KpiTable, LampSchedule, TickContext, TickResult
from analytics.findings import Change, Conditions, RuleInfo
from analytics.lamps import LampPower
from analytics.rates import NATIONAL_PLAN_TARGETS, CityRates, RateConfig
from analytics.schedule import LampScheduler, ScheduleConfig
from analytics.state import Batch, LiveState
from analytics.topology import Topology, build_topology
from devices.assets import Asset
from devices.kinds import DeviceKind

BoolArray = npt.NDArray[np.bool_]
SHANGHAI = ZoneInfo("Asia/Shanghai")
LAMP, CABINET = DeviceKind.LAMP, DeviceKind.CABINET


def at(month: int, day: int, hour: int, minute: int = 0) -> int:
    return round(dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


class FixedSchedule:
    """Every lamp due except those named planned off."""

    def __init__(self, topology: Topology, planned_off: Sequence[str] = ()) -> None:
        off = np.zeros(len(topology.table(LAMP)), dtype=np.bool_)
        off[topology.table(LAMP).find(list(planned_off))] = True
        self.view = LampSchedule(
            ~off, np.zeros(len(off), np.bool_), np.where(off, 0, 100).astype(np.float32), off
        )

    def at(self, now_ms: int) -> LampSchedule:
        return self.view


class Comm:
    """Which devices the comm detector calls offline."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.offline: set[str] = set()

    def offline_mask(self, kind: DeviceKind, now_ms: int) -> BoolArray:
        mask = np.zeros(len(self.topology.table(kind)), dtype=np.bool_)
        if self.offline:
            found = self.topology.table(kind).find(sorted(self.offline))
            mask[found[found >= 0]] = True
        return mask


FAULTS = {
    "lamp_failure": LAMP.value,
    "cabinet_door": CABINET.value,
    "circuit_outage": "circuit",
    "circuit_under_voltage": "circuit",
}


class Scripted:
    """A stand-in for the fault detectors: reports the fault findings a test sets."""

    kinds = frozenset({LAMP})
    nbytes = 0

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.rules = tuple(RuleInfo(r, s, "streetlight", r, "{subject}") for r, s in FAULTS.items())
        self.open: dict[str, dict[str, tuple[str, ...]]] = {r: {} for r in FAULTS}  # rule: subject: children

    def observe(self, batch: Batch, state: LiveState) -> None:
        pass

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        out = []
        for rule, subjects in self.open.items():
            numbers = [self.topology.number(FAULTS[rule], s) for s in subjects]
            order = np.argsort(numbers)
            active = np.asarray(numbers, dtype=np.int32)[order]
            kids = {
                n: self.topology.table(LAMP).find(list(c))
                for n, c in zip(numbers, subjects.values(), strict=True)
            }
            out.append(
                Conditions(
                    rule,
                    active,
                    np.zeros(len(active)),
                    np.zeros(len(active)),
                    children=kids,
                    child_subject="lamp",
                )
            )
        return out


def report(engine: Engine, ts: int, lamps: Mapping[str, tuple[float, float, float, float]]) -> None:
    """Lamp readings: id -> (lamp_on, dim_level, active_power, lamp_failure)."""
    table = engine.topology.table(LAMP)
    ids = sorted(lamps)
    values = np.array([lamps[i] for i in ids], dtype=np.float64).reshape(-1, 4)
    fields = dict(zip(("lamp_on", "dim_level", "active_power", "lamp_failure"), values.T, strict=True))
    n = len(ids)
    device = table.find(ids)
    engine.ingest(
        [
            Batch(
                LAMP, device, np.full(n, ts, np.int64), np.arange(n, dtype=np.int64), MappingProxyType(fields)
            )
        ]
    )


LIT, DARK = (1.0, 100.0, 95.0, 0.0), (1.0, 100.0, 0.4, 0.0)


def hand_city() -> list[Asset]:
    """Luoyu Road (trunk, hongshan): A1-A6 in service, A7 not; Bayi Road (branch, wuchang): B1-B4; New Road
    (branch, wuchang): C1, not in service. Grids: A1-A3 G1, A4-A7 and B G2, C1 G3."""
    assets = []
    for i in range(1, 8):
        assets.append(
            Asset(id=f"A{i}", kind="lamp", district="hongshan", road="Luoyu Road", road_class="trunk",
                  grid_cell="G1" if i <= 3 else "G2", circuit="CIR-A", lat=30.59, lon=114.30,
                  rated_power_w=100.0, in_service=i != 7)
        )  # fmt: skip
    for i in range(1, 5):
        assets.append(
            Asset(id=f"B{i}", kind="lamp", district="wuchang", road="Bayi Road", road_class="branch",
                  grid_cell="G2", circuit="CIR-B", lat=30.55, lon=114.31, rated_power_w=100.0)
        )  # fmt: skip
    assets.append(
        Asset(id="C1", kind="lamp", district="wuchang", road="New Road", road_class="branch", grid_cell="G3",
              lat=30.56, lon=114.32, in_service=False)
    )  # fmt: skip
    assets.append(
        Asset(
            id="CAB-A",
            kind="cabinet",
            district="hongshan",
            road="Luoyu Road",
            grid_cell="G1",
            circuit="CIR-A",
            lat=30.59,
            lon=114.3,
        )
    )
    assets.append(
        Asset(
            id="CAB-B",
            kind="cabinet",
            district="wuchang",
            road="Bayi Road",
            grid_cell="G2",
            circuit="CIR-B",
            lat=30.55,
            lon=114.31,
        )
    )
    return assets


def hand_engine() -> tuple[Engine, Comm, Scripted]:
    topo = build_topology(hand_city())
    comm, faults = Comm(topo), Scripted(topo)
    rates = CityRates(topo, RateConfig(), LampPower(), comm)
    return Engine(topo, [faults], FixedSchedule(topo, planned_off=["B4"]), rates), comm, faults


def hand_readings(engine: Engine, ts: int) -> None:
    report(
        engine,
        ts,
        {
            "A1": LIT, "A2": (1.0, 100.0, 96.0, 0.0), "A3": DARK, "A4": LIT,
            "A5": (1.0, 50.0, 48.0, 0.0),  # dimmed to 50 %: lit above 100 W x 0.3 x 0.5 = 15 W
            "B1": LIT, "B2": (1.0, 100.0, 95.0, 1.0),  # the controller flags a lamp failure
            "B3": (1.0, 100.0, 90.0, 0.0), "B4": (0.0, 0.0, 0.4, 0.0),  # B4: off by plan, not due
        },
    )  # fmt: skip  # A6 has never reported, A7 and C1 are not in service


def kpi(result: TickResult, scope: str, measurement: str = "kpi") -> dict[str, dict[str, float]]:
    (table,) = [k for k in result.kpis if k.scope == scope and k.measurement == measurement]
    return {sid: {f: float(v[i]) for f, v in table.fields.items()} for i, sid in enumerate(table.scope_ids)}


def test_hand_computed_lighting_rates() -> None:
    engine, comm, _ = hand_engine()
    now = at(6, 21, 21)
    hand_readings(engine, now - 60_000)
    comm.offline = {"A4"}  # reported lit a minute ago, but its controller is offline now: unknown
    result = engine.tick(now)
    roads = kpi(result, "road")
    luoyu, bayi, new = roads["Luoyu Road"], roads["Bayi Road"], roads["New Road"]
    # Luoyu: due A1-A6 (A7 not in service); lit A1, A2, A5; unknown A4 (offline), A6 (never heard)
    assert (luoyu["due"], luoyu["lit"], luoyu["unknown"]) == (6, 3, 2)
    assert luoyu["lighting_rate"] == pytest.approx(3 / 4)
    assert luoyu["lighting_rate_lower"] == pytest.approx(3 / 6)
    # Bayi: due B1-B3 (B4 planned off); B2 dark by its failure flag
    assert (bayi["due"], bayi["lit"], bayi["unknown"]) == (3, 2, 0)
    assert bayi["lighting_rate"] == bayi["lighting_rate_lower"] == pytest.approx(2 / 3)
    assert new["due"] == 0 and np.isnan(new["lighting_rate"]) and np.isnan(new["lighting_rate_lower"])
    city = kpi(result, "city")["city"]
    assert (city["due"], city["lit"], city["unknown"]) == (9, 5, 2)
    assert city["lighting_rate"] == pytest.approx(5 / 7)
    assert city["lighting_rate_lower"] == pytest.approx(5 / 9)
    grids = kpi(result, "grid_cell")
    assert grids["G1"]["lighting_rate"] == pytest.approx(2 / 3)
    assert (grids["G2"]["due"], grids["G2"]["lit"], grids["G2"]["unknown"]) == (6, 3, 2)
    assert grids["G2"]["lighting_rate"] == pytest.approx(3 / 4)
    assert grids["G2"]["lighting_rate_lower"] == pytest.approx(1 / 2)
    districts = kpi(result, "district")
    assert districts["hongshan"]["lighting_rate"] == pytest.approx(3 / 4)
    assert districts["wuchang"]["lighting_rate"] == pytest.approx(2 / 3)
    classes = kpi(result, "road_class")
    assert classes["trunk"]["lighting_rate"] == pytest.approx(3 / 4)
    assert classes["branch"]["lighting_rate"] == pytest.approx(2 / 3)
    assert np.isnan(classes["secondary"]["lighting_rate"])


def test_hand_computed_intact_and_installation_rates() -> None:
    engine, _, faults = hand_engine()
    now = at(6, 21, 21)
    hand_readings(engine, now - 60_000)
    faults.open["lamp_failure"] = {"A3": (), "B2": ()}
    faults.open["cabinet_door"] = {"CAB-A": ()}
    result = engine.tick(now)
    city = kpi(result, "city")["city"]
    # items: 10 lamp heads in service, 2 cabinets, 2 circuits; not intact: A3, B2, CAB-A
    assert (city["items"], city["intact"]) == (14, 11)
    assert city["intact_rate"] == pytest.approx(11 / 14)
    districts = kpi(result, "district")
    assert (districts["hongshan"]["items"], districts["hongshan"]["intact"]) == (8, 6)
    assert districts["wuchang"]["intact_rate"] == pytest.approx(5 / 6)
    grids = kpi(result, "grid_cell")  # CIR-A sits in G1 with its cabinet
    assert (grids["G1"]["items"], grids["G1"]["intact"]) == (5, 3)
    assert (grids["G2"]["items"], grids["G2"]["intact"]) == (9, 8)
    # installation: lamp heads in service / registered; roads with a lamp in service / with any lamp
    assert (city["registered"], city["installed"], city["roads"], city["roads_installed"]) == (12, 10, 3, 2)
    assert city["installation_rate"] == pytest.approx(10 / 12)
    assert city["road_installation_rate"] == pytest.approx(2 / 3)
    wuchang = districts["wuchang"]
    assert (wuchang["registered"], wuchang["installed"], wuchang["roads"], wuchang["roads_installed"]) == (
        5,
        4,
        2,
        1,
    )
    assert kpi(result, "road")["Luoyu Road"]["installation_rate"] == pytest.approx(6 / 7)
    assert kpi(result, "grid_cell")["G3"]["installation_rate"] == 0.0


def test_circuit_findings_make_their_lamps_not_intact() -> None:
    engine, _, faults = hand_engine()
    now = at(6, 21, 21)
    faults.open["circuit_outage"] = {"CIR-B": ("B1", "B2")}  # the lamps the finding names
    result = engine.tick(now)
    assert kpi(result, "road")["Bayi Road"]["intact"] == 6 - 3  # B1, B2 and the circuit itself
    faults.open["circuit_outage"] = {}
    faults.open["circuit_under_voltage"] = {"CIR-A": ()}  # no children named: every lamp on the circuit
    result = engine.tick(now + 60_000)
    assert kpi(result, "road")["Luoyu Road"]["intact"] == 8 - 6  # the cabinet and circuit stay intact
    assert kpi(result, "road")["Bayi Road"]["intact"] == 6


def test_silent_lamps_of_a_cut_circuit_are_dark_not_unknown() -> None:
    engine, comm, faults = hand_engine()
    now = at(6, 21, 21)
    hand_readings(engine, now - 60_000)
    comm.offline = {"B1", "B3"}  # they fell silent: the cable was cut after their last (lit) reading
    assert kpi(engine.tick(now), "road")["Bayi Road"]["unknown"] == 2
    faults.open["circuit_outage"] = {"CIR-B": ("B1", "B2", "B3")}
    bayi = kpi(engine.tick(now + 60_000), "road")["Bayi Road"]
    assert (bayi["due"], bayi["lit"], bayi["unknown"]) == (3, 0, 0)
    assert bayi["lighting_rate"] == bayi["lighting_rate_lower"] == 0.0


def night_engine(n: int = 4) -> tuple[Engine, Comm]:
    topo = build_topology(
        Asset(id=f"L{i}", kind="lamp", district="hongshan", road="Luoyu Road", road_class="trunk",
              lat=30.59, lon=114.30 + i * 1e-3)
        for i in range(n)
    )  # fmt: skip
    scheduler = LampScheduler(topo, ScheduleConfig())
    comm = Comm(topo)
    return Engine(topo, [], scheduler, CityRates(topo, RateConfig(), LampPower(), comm, scheduler)), comm


def test_nightly_minimum_and_mean_over_the_check_times() -> None:
    # Wuhan, 21 June 2026: sunset 19:28, sunrise 05:21; checks at switch-on + 30 min, 22:00 and 02:00.
    engine, comm = night_engine()
    results = []
    opened: dict[str, int] = {}
    cleared: dict[str, int] = {}
    start = at(6, 21, 18)
    for step in range(13 * 6):  # every 10 minutes, 18:00 to 06:50
        now = start + step * 600_000
        hour = (18 + step // 6) % 24
        dark = {"L3"} if 21 <= hour < 23 else set()
        comm.offline = {"L2"} if 1 <= hour < 12 else set()
        report(engine, now - 30_000, {f"L{i}": DARK if f"L{i}" in dark else LIT for i in range(4)})
        result = engine.tick(now)
        results.append(result)
        for event in result.events:
            book = opened if event.change is Change.OPENED else cleared
            book[f"{event.finding.rule}:{event.finding.subject}"] = now
    checks = [r for r in results if any(k.measurement == "kpi_check" for k in r.kpis)]
    assert [dt.datetime.fromtimestamp(r.now_ms / 1000, SHANGHAI).strftime("%H:%M") for r in checks] == [
        "20:00",
        "22:00",
        "02:00",
    ]
    (night,) = [r for r in results if any(k.measurement == "kpi_night" for k in r.kpis)]
    assert (
        dt.datetime.fromtimestamp(night.now_ms / 1000, SHANGHAI).strftime("%H:%M") == "05:30"
    )  # after sunrise
    summary = kpi(night, "district", "kpi_night")["hongshan"]
    # observed: 1 (20:00), 3/4 (22:00: L3 dark), 1 (02:00: L2 offline, left out); lower bound counts L2 dark
    assert summary["checks"] == 3
    assert summary["lighting_rate_min"] == pytest.approx(0.75)
    assert summary["lighting_rate_mean"] == pytest.approx((1 + 0.75 + 1) / 3)
    assert summary["lighting_rate_lower_min"] == pytest.approx(0.75)
    assert summary["lighting_rate_lower_mean"] == pytest.approx((1 + 0.75 + 0.75) / 3)
    (table,) = [k for k in night.kpis if k.measurement == "kpi_night" and k.scope == "city"]
    assert abs(table.ts_ms - at(6, 22, 5, 21)) < 120_000  # stamped at the night's switch-off
    # the shortfall opened at the 22:00 check, stayed open after L3 came back at 23:00, cleared at 02:00
    assert opened["rate_lighting_district:hongshan"] == at(6, 21, 22)
    assert opened["rate_lighting_class:trunk"] == at(6, 21, 22)
    assert cleared["rate_lighting_district:hongshan"] == at(6, 22, 2)
    assert "rate_lighting_road:Luoyu Road" not in opened  # 1 dark of 4: within the short-road cap of 2


def test_shortfall_explanation_reads_well() -> None:
    engine, _ = night_engine()
    report(engine, at(6, 21, 18, 59), {"L0": DARK, "L1": LIT, "L2": LIT, "L3": LIT})
    engine.tick(at(6, 21, 19))  # before the first check: nothing judged, nothing reported
    assert not engine.book.open_findings()
    report(engine, at(6, 21, 21, 59), {"L0": DARK, "L1": LIT, "L2": LIT, "L3": LIT})
    events = engine.tick(at(6, 21, 22)).events  # the 19:58 and 22:00 checks, passed unseen, count once
    texts = {e.finding.rule: e.finding.explanation for e in events}
    assert texts["rate_lighting_district"].startswith(
        "lighting rate of district hongshan 75.00 % below the target 100.00 %"
    )


def test_a_scope_with_nothing_to_judge_keeps_its_shortfall() -> None:
    engine, comm = night_engine()
    changes = []
    for now, dark, offline in (
        (at(6, 21, 22), {"L3"}, set()),  # a check: 3 of 4 lit, short
        (at(6, 22, 2), set(), {"L0", "L1", "L2", "L3"}),  # a check with every controller offline: undecided
        (at(6, 22, 20), set(), set()),  # the next evening's first check: all lit
    ):
        comm.offline = offline
        report(engine, now - 30_000, {f"L{i}": DARK if f"L{i}" in dark else LIT for i in range(4)})
        changes.append(
            {e.change for e in engine.tick(now).events if e.finding.rule == "rate_lighting_district"}
        )
    assert changes == [{Change.OPENED}, set(), {Change.CLEARED}]


def long_road_engine(lamps: int) -> Engine:
    topo = build_topology(
        Asset(
            id=f"L{i:03d}",
            kind="lamp",
            district="d",
            road="Long Road",
            road_class="trunk",
            lat=30.59,
            lon=114.3,
        )
        for i in range(lamps)
    )
    rates = CityRates(
        topo, RateConfig(class_targets=NATIONAL_PLAN_TARGETS, district_target=0.5), LampPower(), Comm(topo)
    )
    return Engine(topo, [], FixedSchedule(topo), rates)


@pytest.mark.parametrize(
    ("lamps", "dark", "finding"), [(120, 3, None), (120, 4, (4, 3)), (250, 7, None), (250, 8, (8, 7))]
)
def test_the_per_road_rule(lamps: int, dark: int, finding: tuple[int, int] | None) -> None:
    # Changsha: a road of 100-149 lamps may have 3 dark; a road of 200 or more must be 97 % lit (250: 7 dark)
    engine = long_road_engine(lamps)
    report(engine, at(6, 21, 21, 59), {f"L{i:03d}": DARK if i < dark else LIT for i in range(lamps)})
    events = [e for e in engine.tick(at(6, 21, 22)).events if e.finding.rule == "rate_lighting_road"]
    if finding is None:
        assert not events
    else:
        (event,) = events
        assert (event.finding.value, event.finding.threshold) == finding
        assert event.finding.explanation.startswith(
            f"{finding[0]} lamps dark on Long Road at the night check, more than the {finding[1]}"
        )


def test_short_road_caps() -> None:
    config = RateConfig()
    lamps = np.array([1, 99, 100, 149, 150, 199], dtype=np.int32)
    assert config.dark_cap(lamps).tolist() == [2, 2, 3, 3, 4, 4]
    custom = RateConfig(big_road_lamps=50, short_road_caps=((20, 1), (0, 0)))
    assert custom.dark_cap(np.array([5, 20, 49], dtype=np.int32)).tolist() == [0, 1, 1]


def test_rate_config_is_validated() -> None:
    with pytest.raises(RuleConfigError, match="class_targets"):
        RateConfig(class_targets={"motorway": 0.9})
    with pytest.raises(RuleConfigError, match="intact_target"):
        RateConfig(intact_target=1.5)
    with pytest.raises(RuleConfigError, match="short_road_caps"):
        RateConfig(short_road_caps=((100, 3), (150, 4), (0, 2)))
    with pytest.raises(RuleConfigError, match="short_road_caps"):
        RateConfig(short_road_caps=((100, 3),))  # no band down to 0 lamps
    with pytest.raises(RuleConfigError, match="check time"):
        RateConfig(check_local_times=("25:00",))
    assert RateConfig(class_targets={"trunk": 0.98}).class_targets["branch"] == 1.0


# -- properties -----------------------------------------------------------------------------------------

lamp_rows = st.lists(
    st.tuples(
        st.integers(0, 3),  # road (class = road % 4)
        st.integers(0, 2),  # district
        st.integers(-1, 3),  # grid cell, -1 none
        st.booleans(),  # in service
        st.booleans(),  # due
        st.sampled_from(["lit", "dark", "offline", "silent"]),
        st.booleans(),  # open lamp fault
    ),
    min_size=1,
    max_size=25,
)

SUMMED = ("due", "lit", "unknown", "items", "intact", "registered", "installed")


def random_city(rows: list[tuple[int, int, int, bool, bool, str, bool]]) -> tuple[Engine, Comm, Scripted]:
    classes = ("trunk", "secondary", "branch", "public_place")
    assets = [
        Asset(id=f"L{i:02d}", kind="lamp", district=f"d{d}", road=f"R{r}", road_class=classes[r],
              grid_cell=f"G{g}" if g >= 0 else "", circuit=f"C{r}", lat=30.59, lon=114.3, in_service=s)
        for i, (r, d, g, s, *_) in enumerate(rows)
    ]  # fmt: skip
    assets += [
        Asset(id=f"CAB{r}", kind="cabinet", district="d0", road=f"R{r}", grid_cell="G0", circuit=f"C{r}",
              lat=30.59, lon=114.3)
        for r in sorted({row[0] for row in rows})
    ]  # fmt: skip
    topo = build_topology(assets)
    comm, faults = Comm(topo), Scripted(topo)
    off = [f"L{i:02d}" for i, row in enumerate(rows) if not row[4]]
    engine = Engine(
        topo, [faults], FixedSchedule(topo, off), CityRates(topo, RateConfig(), LampPower(), comm)
    )
    readings = {
        f"L{i:02d}": (LIT if row[5] != "dark" else DARK) for i, row in enumerate(rows) if row[5] != "silent"
    }
    if readings:
        report(engine, at(6, 21, 21), readings)
    comm.offline = {f"L{i:02d}" for i, row in enumerate(rows) if row[5] == "offline"}
    faults.open["lamp_failure"] = {f"L{i:02d}": () for i, row in enumerate(rows) if row[6]}
    faults.open["cabinet_door"] = {"CAB0": ()} if any(row[0] == 0 for row in rows) else {}
    return engine, comm, faults


def totals(table: KpiTable) -> dict[str, float]:
    return {f: float(np.sum(table.fields[f])) for f in SUMMED}


@settings(max_examples=40, deadline=None)
@given(lamp_rows)
def test_roll_ups_sum_to_the_city(rows: list[tuple[int, int, int, bool, bool, str, bool]]) -> None:
    engine, _, _ = random_city(rows)
    result = engine.tick(at(6, 21, 21, 30))
    tables = {k.scope: k for k in result.kpis if k.measurement == "kpi"}
    city = totals(tables["city"])
    for scope in ("road", "road_class", "district"):
        assert totals(tables[scope]) == city, scope
    if all(row[2] >= 0 for row in rows):
        assert totals(tables["grid_cell"]) == city
    # and by hand: due lamps are the due ones in service; unknown the offline or silent ones among them
    due = [row for row in rows if row[3] and row[4]]
    assert city["due"] == len(due)
    assert city["unknown"] == sum(row[5] in ("offline", "silent") for row in due)
    assert city["lit"] == sum(row[5] == "lit" for row in due)
    for table in tables.values():
        rate, lower = table.fields["lighting_rate"], table.fields["lighting_rate_lower"]
        both = ~np.isnan(rate) & ~np.isnan(lower)
        assert (lower[both] <= rate[both] + 1e-12).all()
        assert ((rate[both] >= 0) & (rate[both] <= 1)).all()


@settings(max_examples=25, deadline=None)
@given(lamp_rows)
def test_counting_in_cells_or_in_segments_gives_the_same_rates(
    rows: list[tuple[int, int, int, bool, bool, str, bool]],
) -> None:
    with mock.patch.object(analytics.rate_scopes, "_CELL_BUDGET", 0.0):
        split, _, _ = random_city(rows)
    with mock.patch.object(analytics.rate_scopes, "_CELL_BUDGET", 1e9):
        cells, _, _ = random_city(rows)
    assert len(split.rates._counts.bin_sets) == 2 and len(cells.rates._counts.bin_sets) == 1  # type: ignore[union-attr]
    now = at(6, 21, 21, 30)
    for a, b in zip(split.tick(now).kpis, cells.tick(now).kpis, strict=True):
        assert a.scope == b.scope and a.scope_ids == b.scope_ids
        for name, values in a.fields.items():
            np.testing.assert_array_equal(values, b.fields[name], err_msg=f"{a.scope}.{name}")


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 30), st.integers(5, 90))
def test_a_fully_lit_city_never_falls_short(lamps: int, step_min: int) -> None:
    engine, _ = night_engine(lamps)
    now = at(6, 21, 12)
    while now < at(6, 22, 12):
        report(engine, now - 30_000, {f"L{i}": LIT for i in range(lamps)})
        result = engine.tick(now)
        assert not result.events
        now += step_min * 60_000
