"""The simulated city, pure tier: inventory, physics, faults, clock and payloads; no broker."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import assets, solar, topics
from devices.contract import Decoded, DeviceRef, Reading, Rejection, decode
from devices.kinds import DeviceKind
from firmware_sim import FaultPlanError
from firmware_sim.city import City
from firmware_sim.clock import RateLimit, SimClock
from firmware_sim.faults import FaultEvent, FaultInjector, FaultType, parse_schedule
from firmware_sim.inventory import COLUMNS, generate_city, load_inventory, write_inventory
from firmware_sim.payloads import Message, PayloadBuilder
from firmware_sim.physics import PhysicsConfig
from firmware_sim.runner import JsonlTruth, RunOptions, publish_readings, run
from firmware_sim.simulation import SimConfig, Simulation, Tick
from firmware_sim.weather import RainConfig, RainEvent

BEIJING = dt.timezone(dt.timedelta(hours=8))
MIDSUMMER = dt.datetime(2026, 6, 21, tzinfo=BEIJING).timestamp()  # local midnight


@pytest.fixture(scope="module")
def city() -> City:
    return generate_city(600, seed=11)


def directory(city: City) -> dict[str, DeviceRef]:
    gateways = city.gateways.ids.tolist()
    refs = {}
    for kind, table in city.devices().items():
        for device, district, gw in zip(
            table.ids.tolist(), table.district.tolist(), table.gateway.tolist(), strict=True
        ):
            refs[device] = DeviceRef(
                device, kind, city.districts[district], gateways[gw] if gw >= 0 else None
            )
    return refs


class ListSink:
    def __init__(self, wall: FakeWall | None = None) -> None:
        self.messages: list[Message] = []
        self.sent_at: list[float] = []
        self.wall = wall

    def publish(self, message: Message) -> None:
        self.messages.append(message)
        self.sent_at.append(self.wall.time() if self.wall else math.nan)

    def flush(self, timeout: float | None = None) -> None:
        pass


class FakeWall:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def frames(tick: Tick) -> dict[DeviceKind, dict[str, np.ndarray]]:
    return {f.kind: {"device": f.device, "ts": f.ts_ms, "seq": f.seq, **f.fields} for f in tick.frames}


def decode_all(city: City, messages: list[Message], now_ms: int) -> tuple[list[Reading], Decoded]:
    refs = directory(city)
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    for m in messages:
        if m.readings:
            out = decode(m.topic, m.payload, now_ms, refs)
            readings.extend(out.readings)
            rejections.extend(out.rejections)
    return readings, Decoded(tuple(readings), tuple(rejections))


# --- inventory ------------------------------------------------------------------------------------------


def test_same_seed_same_city_other_seed_other_city() -> None:
    a, b, c = generate_city(400, 5), generate_city(400, 5), generate_city(400, 6)
    for kind in a.tables():
        assert np.array_equal(a.tables()[kind].ids, b.tables()[kind].ids)
        assert np.array_equal(a.tables()[kind].lat, b.tables()[kind].lat)
    assert a.roads == b.roads
    assert not np.array_equal(a.lamps.lat, c.lamps.lat)


def test_city_shape(city: City) -> None:
    assert len(city.lamps) == 600
    assert set(city.districts) == {
        "jiangan",
        "jianghan",
        "qiaokou",
        "hanyang",
        "wuchang",
        "qingshan",
        "hongshan",
    }
    # one cabinet and one concentrator per circuit; the concentrator owns the cabinet and its lamps
    assert len(city.cabinets) == len(city.circuits)
    assert np.array_equal(city.cabinets.circuit, np.arange(len(city.circuits)))
    assert np.array_equal(city.lamps.gateway, city.lamps.circuit)
    assert np.array_equal(city.cabinets.gateway, city.cabinets.circuit)
    assert np.bincount(city.lamps.circuit).max() <= 200
    assert len(city.bridges) >= 1 and np.bincount(city.bridge_nodes.bridge).min() >= 4
    assert np.bincount(city.bridge_nodes.bridge).max() <= 8
    assert len(city.stations) >= 1 and len(city.gauges) >= 2 and len(city.bins) >= 5
    assert city.lamps.rated_power_w.min() >= 60 and city.lamps.rated_power_w.max() <= 250
    # neighbouring lamps on a road stand ~30 m apart
    same_road = city.lamps.road[1:] == city.lamps.road[:-1]
    gap_m = np.hypot(np.diff(city.lamps.lat) * 110_574, np.diff(city.lamps.lon) * 95_900)[same_road]
    assert 25 < np.median(gap_m) < 35
    for table in city.tables().values():
        assert all(topics.ID_PATTERN.fullmatch(i) for i in table.ids.tolist())
        assert (table.gateway >= 0).all() or table is city.gateways
    assert all(re.fullmatch(r"G-[a-z]+-\d+-\d+", g) for g in city.grid_cells)


def test_inventory_round_trips_and_the_registry_accepts_it(city: City, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    rows = write_inventory(city, first)
    write_inventory(load_inventory(first), second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert tuple(COLUMNS) == assets.COLUMNS
    with first.open(encoding="utf-8") as f:
        parsed = list(assets.parse_csv(f, gateways=set(city.gateways.ids.tolist())))
    assert [p for p in parsed if isinstance(p, assets.RowRejection)] == []
    assert len(parsed) == rows
    kinds = Counter(p.kind for p in parsed if isinstance(p, assets.Asset))
    assert kinds["gateway"] == len(city.gateways) and kinds["lamp"] == 600


# --- readings -------------------------------------------------------------------------------------------


def test_same_seed_same_readings_tick_by_tick(city: City) -> None:
    def ticks(seed: int) -> list[Tick]:
        injector = FaultInjector(city, seed=seed, rate=300.0)
        sim = Simulation(city, seed=seed, start=MIDSUMMER, config=SimConfig(interval_s=300), faults=injector)
        return [sim.step() for _ in range(40)]

    a, b, other = ticks(3), ticks(3), ticks(4)
    builder = PayloadBuilder(city)
    for x, y in zip(a, b, strict=True):
        fx, fy = frames(x), frames(y)
        for kind in fx:
            for name in fx[kind]:
                assert np.array_equal(fx[kind][name], fy[kind][name]), (x.index, kind, name)
        assert x.started == y.started
        assert [m.payload for m in builder.batches(builder.readings(x))] == [
            m.payload for m in builder.batches(builder.readings(y))
        ]
    assert any(
        not np.array_equal(
            frames(x)[DeviceKind.LAMP]["supply_voltage"], frames(y)[DeviceKind.LAMP]["supply_voltage"]
        )
        for x, y in zip(a, other, strict=True)
    )


def test_every_payload_decodes_without_rejection(city: City) -> None:
    """36 hours of 20-minute ticks with storms and every fault kind: the ingest accepts every reading."""
    rain = RainConfig(events_per_day=2.0, peak_mm_h=(20.0, 120.0))
    config = SimConfig(interval_s=1200, physics=PhysicsConfig(rain=rain))
    injector = FaultInjector(city, seed=9, rate=2000.0)
    sim = Simulation(city, seed=9, start=MIDSUMMER, config=config, faults=injector)
    builder = PayloadBuilder(city)
    batches: list[Message] = []
    singles: list[Message] = []
    faults = Counter[FaultType]()
    for _ in range(108):
        tick = sim.step()
        faults.update(e.fault for e in tick.started)
        batches.extend(builder.batches(builder.readings(tick)))
        singles.extend(builder.singles(builder.readings(tick)) if tick.index % 50 == 0 else [])
    readings, decoded = decode_all(city, batches, now_ms=int(sim.next_time * 1000))
    assert decoded.rejections == ()
    assert decode_all(city, singles, now_ms=int(sim.next_time * 1000))[1].rejections == ()
    assert len(readings) > 20_000
    assert set(faults) == set(FaultType)
    assert {r.kind for r in readings} == set(DeviceKind)
    seqs: dict[str, list[int]] = {}
    for r in readings:
        seqs.setdefault(r.device, []).append(r.seq)
    assert all(s == list(range(s[0], s[0] + len(s))) for s in seqs.values())


def test_lamps_on_at_night_off_by_day_at_wuhan(city: City) -> None:
    sim = Simulation(city, seed=1, start=MIDSUMMER, config=SimConfig(interval_s=600))
    day = dt.date(2026, 6, 21)
    rise, fall = solar.sun_times(city.lamps.lat, city.lamps.lon, day)
    for _ in range(24 * 6):
        tick = sim.step()
        lamps = frames(tick)[DeviceKind.LAMP]
        expected = (tick.t < rise) | (tick.t >= fall)
        assert np.array_equal(lamps["lamp_on"], expected[lamps["device"]]), tick.t
        on = lamps["lamp_on"]
        assert (lamps["active_power"][on] > 0.9 * city.lamps.rated_power_w[lamps["device"]][on]).all()
        assert (lamps["active_power"][~on] < 1.0).all()
        assert (lamps["supply_voltage"] >= 198).all() and (lamps["supply_voltage"] <= 242).all()
    local = {h: MIDSUMMER + h * 3600 for h in (2, 12, 22)}
    assert (rise > local[2]).all() and (fall < local[22]).all()  # 02:00 and 22:00 are night everywhere
    assert ((rise < local[12]) & (fall > local[12])).all()  # noon is day everywhere


def _run_with_truth(
    city: City, events: list[FaultEvent], tmp_path: Path, ticks: int
) -> tuple[ListSink, int, list[dict[str, object]]]:
    """``ticks`` 5-minute ticks from MIDSUMMER: the messages, the wall clock at the end (ms), the truth."""
    wall = FakeWall(MIDSUMMER + 10 * 86_400)
    sink = ListSink(wall)
    injector = FaultInjector(city, seed=2, schedule=events)
    sim = Simulation(city, seed=2, start=MIDSUMMER, config=SimConfig(interval_s=300), faults=injector)
    with JsonlTruth(tmp_path / "truth.jsonl") as truth:
        run(sim, sink, RunOptions(speed=math.inf, duration_s=(ticks - 1) * 300), wall=wall, truth=truth)
    lines = (tmp_path / "truth.jsonl").read_bytes().splitlines()
    return sink, int(wall.now * 1000), [orjson.loads(line) for line in lines]


def test_cable_theft_zeroes_one_circuit_and_is_logged_once(city: City, tmp_path: Path) -> None:
    circuit = city.circuits[1]
    theft = FaultEvent(
        FaultType.CABLE_THEFT, circuit, "", MIDSUMMER + 3600, MIDSUMMER + 3 * 3600, "zero_power"
    )
    sink, now_ms, truth = _run_with_truth(city, [theft], tmp_path, ticks=36)
    assert truth == [
        {
            "fault": "cable_theft",
            "target": circuit,
            "kind": "circuit",
            "start": "2026-06-20T17:00:00+00:00",
            "end": "2026-06-20T19:00:00+00:00",
            "mode": "zero_power",
        }
    ]
    readings, decoded = decode_all(city, sink.messages, now_ms)
    assert decoded.rejections == ()
    on_circuit = set(city.lamps.ids[city.lamps.circuit == 1].tolist())
    during = [r for r in readings if MIDSUMMER + 3600 <= r.ts_ms / 1000 < MIDSUMMER + 3 * 3600 - 5]
    lamps = [r for r in during if r.kind is DeviceKind.LAMP]
    assert lamps and all(r.fields["active_power"] == 0 for r in lamps if r.device in on_circuit)
    assert all(
        r.fields["active_power"] > 50 for r in lamps if r.device not in on_circuit and r.fields["lamp_on"]
    )
    cabinet = city.cabinets.ids[1]
    amps = [r.fields["current_l1"] for r in during if r.device == cabinet]
    assert amps and max(amps) < 0.05
    before = [r for r in readings if r.device == cabinet and r.ts_ms / 1000 < MIDSUMMER + 3600 - 10]
    assert min(r.fields["current_l1"] for r in before) > 1


def test_silent_theft_and_gateway_outage_stop_readings_and_flip_status(city: City, tmp_path: Path) -> None:
    gateway = city.gateways.ids[2]
    events = [
        FaultEvent(FaultType.CABLE_THEFT, city.circuits[0], "", MIDSUMMER + 600, MIDSUMMER + 1800, "silent"),
        FaultEvent(FaultType.GATEWAY_OFFLINE, gateway, "", MIDSUMMER + 600, MIDSUMMER + 1800),
    ]
    sink, now_ms, truth = _run_with_truth(city, events, tmp_path, ticks=12)
    assert [t["fault"] for t in truth] == ["cable_theft", "gateway_offline"]
    readings, _ = decode_all(city, sink.messages, now_ms)
    during = {r.device for r in readings if MIDSUMMER + 600 <= r.ts_ms / 1000 < MIDSUMMER + 1800 - 5}
    assert not during & set(city.lamps.ids[city.lamps.circuit == 0].tolist())
    assert city.cabinets.ids[0] in during  # the cabinet still reports: its current collapsed
    assert not during & set(city.lamps.ids[city.lamps.gateway == 2].tolist())
    statuses = [(m.topic, m.payload) for m in sink.messages if m.retain]
    gw_topic = topics.status(gateway, gateway=True)
    states = [orjson.loads(p) for t, p in statuses if t == gw_topic]
    assert [s["state"] for s in states] == ["online", "offline", "online", "offline"]
    assert all(s["v"] == 1 and isinstance(s["ts"], int) for s in states)


def test_voltage_sag_lowers_one_circuit_below_198_v(city: City) -> None:
    sag = FaultEvent(FaultType.VOLTAGE_SAG, city.circuits[2], "", MIDSUMMER, MIDSUMMER + 3600)
    sim = Simulation(city, seed=4, start=MIDSUMMER, faults=FaultInjector(city, schedule=[sag]))
    lamps = frames(sim.step())[DeviceKind.LAMP]
    sagging = city.lamps.circuit[lamps["device"]] == 2
    assert (lamps["supply_voltage"][sagging] < 198).all()
    assert (lamps["supply_voltage"][~sagging] >= 198).all()


def test_lamp_faults(city: City) -> None:
    noon = MIDSUMMER + 12 * 3600
    lamp_a, lamp_b = city.lamps.ids[5], city.lamps.ids[6]
    events = [
        FaultEvent(FaultType.LAMP_FAILURE, lamp_a, "", MIDSUMMER, noon + 3600),
        FaultEvent(FaultType.DAY_BURNING, lamp_b, "", MIDSUMMER, noon + 3600),
    ]
    sim = Simulation(city, seed=4, start=MIDSUMMER, faults=FaultInjector(city, schedule=events))
    night = frames(sim.step())[DeviceKind.LAMP]
    assert night["lamp_on"][5] and night["lamp_failure"][5] and night["active_power"][5] < 1
    sim = Simulation(city, seed=4, start=noon, faults=FaultInjector(city, schedule=events))
    day = frames(sim.step())[DeviceKind.LAMP]
    assert day["lamp_on"][6] and day["day_burning"][6] and day["active_power"][6] > 50
    assert day["lamp_on"].sum() == 1


def test_bins_fill_and_get_emptied(city: City) -> None:
    sim = Simulation(city, seed=5, start=MIDSUMMER, config=SimConfig(interval_s=1800))
    fill = np.zeros((4 * 48, len(city.bins)))
    for k in range(len(fill)):
        sim.step()
        fill[k] = sim.physics.sanitation.fill
    assert fill.max() <= 1.0 and fill.min() >= 0.0
    emptied = (np.diff(fill, axis=0) < -0.15).any(axis=0)
    assert emptied.mean() > 0.9  # nearly every bin was collected within four days
    assert np.isfinite(sim.physics.sanitation.emptied_at).mean() > 0.9


def test_burning_bin_heats_up_fast_and_reports_every_interval(city: City) -> None:
    fire = FaultEvent(FaultType.BIN_FIRE, city.bins.ids[0], "", MIDSUMMER, MIDSUMMER + 3 * 3600)
    sim = Simulation(
        city,
        seed=5,
        start=MIDSUMMER,
        config=SimConfig(interval_s=600),
        faults=FaultInjector(city, schedule=[fire]),
    )
    temps = []
    for _ in range(8):
        bins = frames(sim.step())[DeviceKind.BIN]
        assert bins["device"][0] == 0  # in alarm, the meter reports every interval (others hourly)
        temps.append(float(bins["temperature"][0]))
    rises = np.diff(temps)
    assert (rises[np.array(temps[1:]) < 75] > 5).all() and 75 < max(temps) < 85


def test_bridge_frequencies_fall_as_the_deck_warms_and_drop_under_a_fault(city: City) -> None:
    node = city.bridge_nodes.ids[0]
    drop = FaultEvent(
        FaultType.BRIDGE_FREQ_DROP, node, "", MIDSUMMER + 86_400, MIDSUMMER + 2 * 86_400, drop=0.06
    )
    sim = Simulation(
        city,
        seed=6,
        start=MIDSUMMER,
        config=SimConfig(interval_s=1800),
        faults=FaultInjector(city, schedule=[drop]),
    )
    temp, freq = [], []
    for _ in range(96):
        nodes = frames(sim.step())[DeviceKind.BRIDGE_NODE]
        temp.append(nodes["temperature"][0])
        freq.append(nodes["freq_1"][0])
    healthy, faulty = np.array(freq[:48]), np.array(freq[48:])
    assert np.ptp(temp[:48]) > 12  # a daily cycle of ~±8 °C
    assert np.corrcoef(temp[:48], healthy)[0, 1] < -0.8
    assert 0.9 < faulty.mean() / healthy.mean() < 0.97


def test_pump_that_fails_to_start_lets_the_well_rise(city: City) -> None:
    storm = RainEvent(MIDSUMMER + 3600, 3 * 3600, 35.0)
    config = SimConfig(
        interval_s=120, physics=PhysicsConfig(rain=RainConfig(events_per_day=0, scheduled=(storm,)))
    )
    station = city.stations.ids[0]
    fail = FaultEvent(FaultType.PUMP_FAIL_TO_START, station, "", MIDSUMMER, MIDSUMMER + 86_400)

    def peak(faults: list[FaultEvent]) -> tuple[float, int]:
        sim = Simulation(
            city, seed=7, start=MIDSUMMER, config=config, faults=FaultInjector(city, schedule=faults)
        )
        level, late_start = 0.0, 0
        start_level = city.stations.start_level_m[0]
        for _ in range(5 * 30):
            s = frames(sim.step())[DeviceKind.PUMP_STATION]
            running = sum(bool(s[f"pump{p + 1}_running"][0]) for p in range(city.stations.pumps[0]))
            level = max(level, float(s["wet_well_level"][0]))
            late_start += int(running == 0 and s["wet_well_level"][0] > start_level + 0.1)
        return level, late_start

    healthy_peak, healthy_late = peak([])
    failing_peak, failing_late = peak([fail])
    assert healthy_late == 0 and failing_late > 0
    assert failing_peak > healthy_peak


def test_flood_depth_follows_rain(city: City) -> None:
    storm = RainEvent(MIDSUMMER + 3600, 2 * 3600, 80.0)
    config = SimConfig(
        interval_s=300, physics=PhysicsConfig(rain=RainConfig(events_per_day=0, scheduled=(storm,)))
    )
    sim = Simulation(city, seed=8, start=MIDSUMMER, config=config)
    depth = [frames(sim.step())[DeviceKind.FLOOD_GAUGE]["water_depth"].max() for _ in range(6 * 12)]
    assert depth[0] == 0 and max(depth) > 15 and depth[-1] < max(depth) / 4


# --- the fault kinds added for the detection report ---------------------------------------------------


def _ticks(
    city: City, events: list[FaultEvent], start: float, n: int, interval_s: float = 60.0
) -> list[Tick]:
    sim = Simulation(
        city,
        seed=12,
        start=start,
        config=SimConfig(interval_s=interval_s),
        faults=FaultInjector(city, schedule=events),
    )
    return [sim.step() for _ in range(n)]


def test_cycling_lamp_switches_10_to_30_times_an_hour_at_night_only(city: City) -> None:
    lamp = city.lamps.ids[7]
    night, noon = MIDSUMMER + 3600, MIDSUMMER + 12 * 3600
    cycling = FaultEvent(FaultType.LAMP_CYCLING, lamp, "", MIDSUMMER, noon + 7200)
    at_night = [frames(t)[DeviceKind.LAMP] for t in _ticks(city, [cycling], night, 61)]
    counts = np.array([f["switch_count"][7] for f in at_night])
    assert 10 <= counts[-1] - counts[0] <= 30  # over one hour
    assert all(f["cycling"][7] for f in at_night) and not any(f["cycling"][8] for f in at_night)
    on = np.array([f["lamp_on"][7] for f in at_night])
    assert 0.5 < on.mean() < 0.9  # the relay is open for a part of each cycle
    assert all(f["active_power"][7] < 1 for f, o in zip(at_night, on, strict=True) if not o)
    assert all(f["dim_level"][7] == 0 for f, o in zip(at_night, on, strict=True) if not o)
    neighbour = np.array([f["switch_count"][8] for f in at_night])
    assert neighbour[-1] == neighbour[0]
    by_day = [frames(t)[DeviceKind.LAMP] for t in _ticks(city, [cycling], noon, 30)]
    assert not any(f["cycling"][7] or f["lamp_on"][7] for f in by_day)
    assert len({f["switch_count"][7] for f in by_day}) == 1


def test_stuck_relay_burns_while_commanded_off(city: City) -> None:
    lamp = city.lamps.ids[9]
    noon = MIDSUMMER + 12 * 3600
    stuck = FaultEvent(FaultType.RELAY_STUCK, lamp, "", MIDSUMMER, noon + 7200)
    day = frames(_ticks(city, [stuck], noon, 1)[0])
    lamps = day[DeviceKind.LAMP]
    assert not lamps["lamp_on"][9] and lamps["dim_level"][9] == 0
    assert lamps["active_power"][9] > 0.9 * city.lamps.rated_power_w[9] and lamps["relay_failure"][9]
    assert not lamps["day_burning"][9]  # the controller did not command it on
    assert lamps["relay_failure"].sum() == 1 and (lamps["active_power"] > 1).sum() == 1
    cabinet = day[DeviceKind.CABINET]
    c = int(city.lamps.circuit[9])
    assert cabinet["contactor_closed"][c] and cabinet["current_l1"][c] + cabinet["current_l2"][c] > 0.2
    night = frames(_ticks(city, [stuck], MIDSUMMER + 3600, 1)[0])[DeviceKind.LAMP]
    assert night["lamp_on"][9] and not night["relay_failure"][9]  # switched on as it should be


def test_over_voltage_lifts_one_circuit_above_242_v(city: City) -> None:
    over = FaultEvent(FaultType.OVER_VOLTAGE, city.circuits[3], "", MIDSUMMER, MIDSUMMER + 3600)
    tick = frames(_ticks(city, [over], MIDSUMMER, 1)[0])
    lamps, cabinets = tick[DeviceKind.LAMP], tick[DeviceKind.CABINET]
    high = city.lamps.circuit[lamps["device"]] == 3
    assert ((lamps["supply_voltage"][high] > 242) & (lamps["supply_voltage"][high] < 265)).all()
    assert ((lamps["supply_voltage"][~high] >= 198) & (lamps["supply_voltage"][~high] <= 242)).all()
    assert (lamps["active_power"][high] > 50).all()  # an LED driver still draws its rated power
    for phase in ("voltage_l1", "voltage_l2", "voltage_l3"):
        assert 242 < cabinets[phase][3] < 265 and (np.delete(cabinets[phase], 3) <= 242).all()


def test_cabinet_leakage_and_open_door(city: City) -> None:
    events = parse_schedule(
        f'{{"fault": "leakage", "target": "{city.cabinets.ids[1]}", "start": {MIDSUMMER}, "duration_s": 3600,'
        ' "residual_ma": 220}\n'
        f'{{"fault": "cabinet_door", "target": "{city.cabinets.ids[4]}", "start": {MIDSUMMER},'
        ' "duration_s": 600}\n'
    )
    ticks = [frames(t)[DeviceKind.CABINET] for t in _ticks(city, events, MIDSUMMER, 20)]
    for k, cab in enumerate(ticks):
        assert 200 < cab["residual_current"][1] < 240
        assert (np.delete(cab["residual_current"], 1) < 30).all()  # a healthy circuit leaks a few mA
        assert list(np.flatnonzero(cab["door_open"])) == ([4] if k < 10 else [])
    assert events[0].record()["residual_ma"] == 220


def test_pump_overcurrent_shows_while_that_pump_runs(city: City) -> None:
    storm = RainEvent(MIDSUMMER + 1800, 3 * 3600, 60.0)  # every pump runs in the storm
    config = SimConfig(
        interval_s=300, physics=PhysicsConfig(rain=RainConfig(events_per_day=0, scheduled=(storm,)))
    )
    station = city.stations.ids[0]
    (fault,) = parse_schedule(
        f'{{"fault": "pump_overcurrent", "target": "{station}", "start": {MIDSUMMER}, "duration_s": 86400,'
        ' "pump": 2, "current_factor": 1.4}'
    )
    assert fault.record()["pump"] == 2 and fault.record()["current_factor"] == 1.4
    sim = Simulation(
        city, seed=7, start=MIDSUMMER, config=config, faults=FaultInjector(city, schedule=[fault])
    )
    rated = city.stations.rated_current_a[0]
    seen = 0
    for _ in range(4 * 12):
        s = frames(sim.step())[DeviceKind.PUMP_STATION]
        for p in range(city.stations.pumps[0]):
            if s[f"pump{p + 1}_running"][0]:
                ratio = s[f"pump{p + 1}_current"][0] / rated
                assert 1.3 < ratio < 1.5 if p == 1 else 0.8 < ratio < 1.0
                seen += p == 1
            else:
                assert s[f"pump{p + 1}_current"][0] == 0
    assert seen > 3
    with pytest.raises(FaultPlanError, match="pumps"):
        FaultInjector(city, schedule=[replace(fault, pump=int(city.stations.pumps[0]) + 1)])
    for bad in ('"current_factor": 0.9', '"pump": 0', '"pump": true'):
        with pytest.raises(FaultPlanError):
            parse_schedule(
                f'{{"fault": "pump_overcurrent", "target": "{station}", "start": 0, "end": 5, {bad}}}'
            )


def test_stuck_bin_meter_repeats_its_distance_while_the_bin_fills(city: City) -> None:
    stuck = FaultEvent(FaultType.BIN_STUCK_SENSOR, city.bins.ids[3], "", MIDSUMMER + 7200, MIDSUMMER + 86_400)
    sim = Simulation(
        city,
        seed=5,
        start=MIDSUMMER,
        config=SimConfig(interval_s=1800),
        faults=FaultInjector(city, schedule=[stuck]),
    )
    reported: dict[float, tuple[float, float]] = {}
    fill = []
    for _ in range(2 * 24 * 2):
        tick = sim.step()
        bins = frames(tick)[DeviceKind.BIN]
        fill.append(sim.physics.sanitation.fill[3])
        rows = np.flatnonzero(bins["device"] == 3)
        if len(rows):
            reported[tick.t] = (float(bins["distance"][rows[0]]), float(bins["fill_level"][rows[0]]))
    during = {v for t, v in reported.items() if stuck.start < t < stuck.end}
    after = [v for t, v in reported.items() if t >= stuck.end]
    assert len(during) == 1 and len(after) > 10 and len(set(after)) > 3
    assert np.ptp(fill[4:48]) > 0.1  # the bin itself went on filling (or was emptied)


def test_lighting_truth_counts_due_and_burning_lamps(city: City) -> None:
    circuit = 2
    on_circuit = int(np.count_nonzero(city.lamps.circuit == circuit))
    events = [
        FaultEvent(FaultType.LAMP_FAILURE, city.lamps.ids[0], "", MIDSUMMER, MIDSUMMER + 86_400),
        FaultEvent(FaultType.DEVICE_OFFLINE, city.lamps.ids[1], "", MIDSUMMER, MIDSUMMER + 86_400),
        FaultEvent(
            FaultType.CABLE_THEFT, city.circuits[circuit], "", MIDSUMMER, MIDSUMMER + 86_400, "silent"
        ),
    ]
    night, noon = (_ticks(city, events, t, 1)[0].lighting for t in (MIDSUMMER + 3600, MIDSUMMER + 12 * 3600))
    n = len(city.lamps)
    assert int(city.lamps.circuit[0]) != circuit and int(city.lamps.circuit[1]) != circuit
    assert night.due == n and night.lit == n - 1 - on_circuit
    assert night.due_silent == 1 + on_circuit and night.lit_silent == 1  # the offline lamp still burns
    assert night.rate == pytest.approx((n - 1 - on_circuit) / n)
    assert night.reporting_rate == pytest.approx((n - 2 - on_circuit) / (n - 1 - on_circuit))
    assert noon.due == noon.lit == 0 and math.isnan(noon.rate)


# --- faults, clock, runner ------------------------------------------------------------------------------


def test_fault_schedule_parsing_and_errors(city: City) -> None:
    text = (
        "# a planned drill\n"
        '{"fault": "lamp_failure", "target": "LMP-000001", "start": "2026-06-21T20:00:00+08:00",'
        ' "duration_s": 3600}\n'
        "\n"
        '{"fault": "bin_tipped", "target": "BIN-00001", "start": 1782043200, "end": 1782046800}\n'
    )
    events = parse_schedule(text)
    assert [e.fault for e in events] == [FaultType.LAMP_FAILURE, FaultType.BIN_TIPPED]
    assert events[0].end - events[0].start == 3600
    FaultInjector(city, schedule=events)  # every target exists
    with pytest.raises(FaultPlanError, match="not a lamp"):
        FaultInjector(city, schedule=[FaultEvent(FaultType.LAMP_FAILURE, "BIN-00001", "", 0, 1)])
    for bad in (
        '{"fault": "meteor", "target": "x", "start": 0, "end": 1}',
        '{"fault": "bin_fire", "start": 0}',
    ):
        with pytest.raises(FaultPlanError):
            parse_schedule(bad)
    with pytest.raises(FaultPlanError, match="no UTC offset"):
        parse_schedule('[{"fault": "bin_fire", "target": "B", "start": "2026-06-21T00:00", "end": 5}]')


@given(
    start=st.floats(1.6e9, 1.9e9),
    speed=st.one_of(st.floats(0.01, 1e6), st.just(math.inf)),
    lag=st.floats(-1e6, 1e7),
    later=st.lists(st.floats(0, 1e7), min_size=1, max_size=5),
)
def test_clock_never_runs_ahead_of_the_wall(
    start: float, speed: float, lag: float, later: list[float]
) -> None:
    clock = SimClock(start=start, speed=speed, wall_start=start + lag)
    previous = -math.inf
    for wall in sorted(start + lag + x for x in later):
        now = clock.now(wall)
        assert now <= wall
        assert now >= previous
        previous = now
        assert clock.now(clock.wall_at(now)) >= now - 1e-6 * max(1.0, abs(now))


def test_clock_replays_fast_then_runs_at_real_time() -> None:
    wall0 = 1_800_000_000.0
    clock = SimClock(start=wall0 - 7 * 86_400, speed=1000.0, wall_start=wall0)
    assert clock.now(wall0 + 60) == wall0 - 7 * 86_400 + 60_000
    assert clock.now(wall0 + 3600) == wall0 + 3600  # caught up: 1x from here on
    assert clock.wall_at(wall0 - 86_400) == pytest.approx(wall0 + 6 * 86.4)


def test_rate_limit_paces_readings() -> None:
    limit, now, waited = RateLimit(per_second=1000.0, burst=1000.0), 0.0, 0.0
    for _ in range(100):
        delay = limit.delay(now, 100)
        now += delay
        waited += delay
    assert waited == pytest.approx(9.0)  # 10 000 readings, the first 1000 in the burst


def test_run_never_publishes_from_the_future(city: City) -> None:
    wall = FakeWall(MIDSUMMER)
    sink = ListSink(wall)
    sim = Simulation(city, seed=1, start=MIDSUMMER - 1800, config=SimConfig(interval_s=60))
    run(sim, sink, RunOptions(speed=10.0, duration_s=3600), wall=wall)
    stamps = []
    for message, sent in zip(sink.messages, sink.sent_at, strict=True):
        if message.readings:
            ts = [r["ts"] for r in orjson.loads(message.payload)["readings"]]
            assert max(ts) <= sent * 1000
            stamps.extend(ts)
    assert min(stamps) < (MIDSUMMER - 1700) * 1000 and max(stamps) > (MIDSUMMER + 1700) * 1000
    assert wall.now >= MIDSUMMER + 1800  # the second half ran at 1x


def test_publish_exactly_k_readings(city: City) -> None:
    for single in (False, True):
        sink = ListSink()
        result = publish_readings(city, sink, 2_345, seed=3, single=single)
        assert result.readings == 2_345 == sum(m.readings for m in sink.messages)
        assert len(result.published) == 2_345
        readings, decoded = decode_all(
            city, sink.messages, now_ms=int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        )
        assert decoded.rejections == ()
        assert {(r.device, r.ts_ms) for r in readings} == result.published
        assert all(not m.retain for m in sink.messages)
    batches = [m for m in sink.messages if m.topic.endswith("/batch")]
    assert not batches  # the last run was --single


def test_cli_generates_an_inventory(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from citywatch.cli import app

    out = tmp_path / "city.csv"
    result = CliRunner().invoke(app, ["sim", "generate", "--lamps", "300", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(load_inventory(out).lamps) == 300
    assert "300 lamp" in result.output
