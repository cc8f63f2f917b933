"""Operators' manual commands in the analytics: a lamp switched off on purpose at night is planned off, one
switched on at noon is not day burning, while the command holds; only what the device accepted counts.

Pure tier: the command and ack bytes the devices exchange (the simulator's own ``CommandTaker`` answers),
the lamp scheduler and the engine as the worker builds it, over a simulated night and a simulated noon.
Integration tier: a real Mosquitto and InfluxDB, the simulated city obeying at one tick a second, the
command desk, and the analytics worker, restarted once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.assembly import Assembly, build_assembly
from analytics.findings import Change, FindingEvent
from analytics.overrides import (
    ManualOverride,
    ManualOverrides,
    OverrideConfig,
    override_line,
    overrides_from_rows,
)
from analytics.schedule import LampScheduler, ScheduleConfig
from analytics.settings import AnalyticsSettings
from analytics.state import Batch
from analytics.topology import Topology, build_topology
from analytics.worker import AnalyticsWorker
from api.commanding.fleet import Fleet
from api.commanding.model import CommandRequest, CommandView, RequestState, TargetKind
from api.commanding.service import CommandDesk
from api.commanding.settings import CommandSettings
from citywatch.localstack import LocalMosquitto
from devices import topics
from devices.assets import Asset
from devices.broker import BrokerAddress
from devices.commands import (
    Ack,
    AckStatus,
    Command,
    Dim,
    Order,
    Override,
    PumpRun,
    Switch,
    encode_ack,
    encode_command,
)
from devices.contract import DeviceRef
from devices.kinds import DeviceKind
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.city import City
from firmware_sim.commands import CommandTaker
from firmware_sim.faults import FaultEvent, FaultInjector, FaultType
from firmware_sim.inventory import generate_city, write_inventory
from firmware_sim.publisher import MqttPublisher
from firmware_sim.runner import RunOptions, SystemClock, run
from firmware_sim.simulation import SimConfig, Simulation
from ingest.influx import InfluxTarget as IngestTarget
from ingest.influx import InfluxV1
from tests.conftest import InfluxTarget
from tests.mqtt_tools import influx_rows
from tests.waiting import wait_until

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE = 60_000
LAMP = DeviceKind.LAMP


def wuhan_ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return round(dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


# -- a few lamps, the scheduler and the overrides core, messages as bytes ---------------------------------


def street(n: int = 4) -> Topology:
    return build_topology(
        Asset(
            id=f"LMP-{i}",
            kind="lamp",
            district="hongshan",
            road="Road A",
            road_class="trunk",
            circuit="CIR-A",
            lat=30.5928,
            lon=114.3055,
        )
        for i in range(n)
    )


class Desk:
    """Commands and acks as bytes on their real topics, fed to a ``ManualOverrides``."""

    def __init__(self, n: int = 4, config: OverrideConfig | None = None) -> None:
        self.topology = street(n)
        self.scheduler = LampScheduler(self.topology, ScheduleConfig())
        self.overrides = ManualOverrides(self.topology.table(LAMP), self.scheduler, config)

    def send(self, lamp: str, order: Order, at_ms: int) -> Command:
        command = Command(str(uuid.uuid4()), lamp, order, at_ms, at_ms + 30_000)
        assert self.overrides.feed(topics.command(lamp), encode_command(command), at_ms)
        return command

    def answer(self, command: Command, status: AckStatus, ts_ms: int) -> None:
        ack = Ack(
            command.id, command.device, status, ts_ms, "expired" if status is AckStatus.REJECTED else ""
        )
        assert self.overrides.feed(topics.command_ack(command.device), encode_ack(ack), ts_ms)

    def accepted(self, lamp: str, order: Order, at_ms: int) -> Command:
        command = self.send(lamp, order, at_ms)
        self.answer(command, AckStatus.ACCEPTED, at_ms + 500)
        return command

    def view(self, now_ms: int, lamp: str) -> tuple[bool, bool, bool, float]:
        """(due, planned off, daytime, dim) of ``lamp`` at ``now_ms``, after settling what came in."""
        self.overrides.settle(now_ms, now_ms)
        self.scheduler.set_manual(self.overrides.manual)
        s = self.scheduler.at(now_ms)
        i = int(self.topology.table(LAMP).find([lamp])[0])
        return bool(s.due[i]), bool(s.planned_off[i]), bool(s.daytime[i]), float(s.dim[i])


NIGHT = wuhan_ms(2026, 11, 10, 22)  # sunset about 17:35, sunrise about 06:45
NOON = wuhan_ms(2026, 11, 10, 12)
DUE = (True, False, False, 100.0)
OFF_BY_PLAN = (False, True, False, 0.0)


def test_an_accepted_switch_off_at_night_is_planned_off_until_the_lamp_switches_at_sunrise() -> None:
    desk = Desk()
    desk.accepted("LMP-1", Switch(False), NIGHT)
    assert desk.view(NIGHT + MINUTE, "LMP-1") == OFF_BY_PLAN
    assert desk.view(NIGHT + MINUTE, "LMP-2") == DUE  # its neighbours stay due
    (held,) = desk.overrides.active()
    _, sunrise = desk.scheduler.switch_times(NIGHT)
    assert held.from_ms == NIGHT + 500 and abs(held.until_ms - sunrise[1]) < 10
    assert desk.view(wuhan_ms(2026, 11, 11, 5), "LMP-1") == OFF_BY_PLAN  # still in the small hours
    assert desk.view(wuhan_ms(2026, 11, 11, 12), "LMP-1")[2]  # daytime: back to the schedule
    assert desk.overrides.active() == []
    assert desk.view(wuhan_ms(2026, 11, 11, 22), "LMP-1") == DUE  # the next night, due again


def test_a_refused_failed_or_unanswered_command_changes_nothing() -> None:
    desk = Desk()
    refused = desk.send("LMP-0", Switch(False), NIGHT)
    desk.answer(refused, AckStatus.REJECTED, NIGHT + 100)
    failed = desk.send("LMP-1", Switch(False), NIGHT)
    desk.answer(failed, AckStatus.FAILED, NIGHT + 100)
    desk.send("LMP-2", Switch(False), NIGHT)  # never answered
    for lamp in ("LMP-0", "LMP-1", "LMP-2"):
        assert desk.view(NIGHT + MINUTE, lamp) == DUE
    assert desk.overrides.counts["refused"] == 2 and desk.overrides.pending == 1


def test_an_override_holds_until_its_end_and_a_dim_is_due_at_its_level() -> None:
    desk = Desk()
    desk.accepted("LMP-0", Override(False, 0, NIGHT + 30 * MINUTE), NIGHT)
    desk.accepted("LMP-1", Dim(40), NIGHT)
    assert desk.view(NIGHT + 29 * MINUTE, "LMP-0") == OFF_BY_PLAN
    assert desk.view(NIGHT + 29 * MINUTE, "LMP-1") == (True, False, False, 40.0)
    assert desk.view(NIGHT + 30 * MINUTE, "LMP-0") == DUE  # the end is exclusive
    assert [o.lamp for o in desk.overrides.active()] == ["LMP-1"]


def test_an_override_off_through_the_day_leaves_the_lamp_off_and_an_override_on_not_day_burning() -> None:
    desk = Desk()
    week = NOON + 7 * 86_400_000
    desk.accepted("LMP-0", Override(True, 100, week), NOON)
    desk.accepted("LMP-1", Override(False, 0, week), NOON)
    assert desk.view(NOON + MINUTE, "LMP-0") == (False, False, False, 0.0)  # not daytime: not day burning
    assert desk.view(NOON + MINUTE, "LMP-1") == (False, False, True, 0.0)  # off by day is the schedule
    assert desk.view(NIGHT, "LMP-0") == DUE
    assert desk.view(NIGHT, "LMP-1") == OFF_BY_PLAN


def test_a_newer_accepted_command_replaces_the_older_and_a_late_answer_to_an_older_one_does_not() -> None:
    desk = Desk()
    older = desk.send("LMP-0", Switch(False), NIGHT)
    desk.accepted("LMP-0", Dim(30), NIGHT + MINUTE)
    assert desk.view(NIGHT + 2 * MINUTE, "LMP-0") == (True, False, False, 30.0)
    desk.answer(older, AckStatus.ACCEPTED, NIGHT + 500)  # took effect before the dim, answered after it
    assert desk.view(NIGHT + 3 * MINUTE, "LMP-0") == (True, False, False, 30.0)
    desk.accepted("LMP-0", Switch(False), NIGHT + 4 * MINUTE)
    assert desk.view(NIGHT + 5 * MINUTE, "LMP-0") == OFF_BY_PLAN
    assert desk.overrides.counts["superseded"] == 1 and desk.overrides.counts["replaced"] == 1


def test_an_ack_before_its_command_counts_and_other_partitions_and_pumps_are_ignored() -> None:
    desk = Desk()
    command = Command(str(uuid.uuid4()), "LMP-3", Switch(False), NIGHT, NIGHT + 30_000)
    desk.answer(command, AckStatus.ACCEPTED, NIGHT + 200)  # the ack topic overtook the command topic
    assert desk.overrides.feed(topics.command("LMP-3"), encode_command(command), NIGHT + 300)
    desk.accepted("LMP-77", Switch(False), NIGHT)  # not this partition's lamp
    desk.accepted("LMP-2", PumpRun(1, True, NIGHT + MINUTE), NIGHT)  # not a lamp order
    assert desk.view(NIGHT + MINUTE, "LMP-3") == OFF_BY_PLAN
    assert desk.view(NIGHT + MINUTE, "LMP-2") == DUE
    assert [o.lamp for o in desk.overrides.active()] == ["LMP-3"]
    assert desk.overrides.counts["foreign"] == 1 and desk.overrides.counts["not_lamp_orders"] == 1


def test_pending_commands_without_answers_are_bounded_and_age_out() -> None:
    desk = Desk(config=OverrideConfig(max_pending=100, pending_max_age_s=60))
    for k in range(1000):
        desk.send("LMP-0", Switch(k % 2 == 0), NIGHT + k)
    assert desk.overrides.pending == 100 and desk.overrides.counts["evicted"] == 900
    desk.overrides.settle(NIGHT + MINUTE, NIGHT + MINUTE + 500)  # only the newest are younger than 60 s
    assert desk.overrides.pending == 100
    desk.overrides.settle(NIGHT + 2 * MINUTE, NIGHT + 2 * MINUTE)
    assert desk.overrides.pending == 0 and desk.overrides.counts["unanswered"] == 100


def test_bad_command_and_ack_payloads_are_counted_by_reason_and_ignored() -> None:
    desk = Desk()
    feed = desk.overrides.feed
    assert feed(topics.command("LMP-0"), b"{not json", NIGHT)
    assert feed(topics.command_ack("LMP-0"), b'{"v": 2}', NIGHT)
    assert feed(topics.command("LMP-0"), b"x" * 5000, NIGHT)
    assert not feed(topics.telemetry("LMP-0"), b"{}", NIGHT)  # not a command topic: not ours
    counts = desk.overrides.counts
    assert desk.overrides.rejected == 3
    assert counts["rejected_malformed_json"] == counts["rejected_unsupported_version"] == 1
    assert counts["rejected_oversized"] == 1
    assert desk.view(NIGHT + MINUTE, "LMP-0") == DUE


MESSAGE = st.one_of(
    st.tuples(st.just("cmd"), st.sampled_from(["LMP-0", "LMP-1", "LMP-9", "PMP-1"]), st.booleans()),
    st.tuples(st.just("ack"), st.integers(0, 40), st.sampled_from(list(AckStatus))),
    st.tuples(st.just("junk"), st.binary(max_size=64), st.booleans()),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(MESSAGE, max_size=120))
def test_any_stream_of_messages_keeps_memory_bounded_and_never_raises(
    stream: list[tuple[str, Any, Any]],
) -> None:
    desk = Desk(config=OverrideConfig(max_pending=8, pending_max_age_s=60))
    sent: list[Command] = []
    for k, (what, a, b) in enumerate(stream):
        at = NIGHT + k * 1000
        if what == "cmd":
            sent.append(desk.send(str(a), Switch(bool(b)), at))
        elif what == "ack":
            if sent:
                desk.answer(sent[a % len(sent)], b, at)
        else:
            desk.overrides.feed(topics.command_ack("LMP-0") if b else topics.command("LMP-0"), a, at)
        assert desk.overrides.pending <= 16
        if k % 10 == 0:
            desk.view(at, "LMP-0")
    due, planned_off, daytime, _ = desk.view(NIGHT + 200 * 1000, "LMP-0")
    assert not daytime and due != planned_off  # at night a lamp is either due or off by command


def test_the_scheduler_without_overrides_is_unchanged_and_next_switch_follows_its_switch_times() -> None:
    topology = street(3)
    plain, manual = LampScheduler(topology, ScheduleConfig()), LampScheduler(topology, ScheduleConfig())
    manual.set_manual(None)
    for now in (NOON, NIGHT, wuhan_ms(2026, 11, 11, 6, 50)):
        a, b = plain.at(now), manual.at(now)
        for field in ("due", "daytime", "dim", "planned_off"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
    lamps = np.zeros(3, dtype=np.int32)
    on, off = plain.switch_times(NIGHT)
    after = np.array([NOON, NIGHT, wuhan_ms(2026, 11, 11, 9)], dtype=np.int64)
    next_on, _ = plain.switch_times(wuhan_ms(2026, 11, 11, 22))
    expected = np.array([on[0], off[0], next_on[0]])
    assert np.abs(manual.next_switch_ms(lamps, after) - expected).max() < 10  # ms


def test_overrides_read_back_from_influx_rows_newest_per_lamp_winning() -> None:
    desk = Desk()
    first = ManualOverride("LMP-0", False, 0, NIGHT, NIGHT + 86_400_000, "override", str(uuid.uuid4()))
    newer = ManualOverride("LMP-0", True, 50, NIGHT + MINUTE, NIGHT + 2 * MINUTE, "dim", str(uuid.uuid4()))
    other = ManualOverride("LMP-1", False, 0, NIGHT, NIGHT + 3 * MINUTE, "switch", str(uuid.uuid4()))
    line = override_line(first, "east")
    assert line.startswith("manual_override,lamp=LMP-0,partition=east lamp_on=false,level=0i,")
    assert line.endswith(f" {NIGHT}") and f'command="{first.command_id}"' in line
    columns = ["time", "lamp", "lamp_on", "level", "until_ms", "action", "command"]
    rows = [
        [o.from_ms, o.lamp, o.on, o.level, o.until_ms, o.action, o.command_id] for o in (newer, first, other)
    ]
    series = [{"name": "manual_override", "columns": columns, "values": [*rows, [NIGHT, None, *rows[0][2:]]]}]
    read = overrides_from_rows(series)
    assert read == [newer, first, other]  # the row without a lamp is skipped
    # the newest for LMP-0 ended at +2 min: the older all-night override it replaced does not come back
    assert desk.overrides.restore(read, NIGHT + 150_000) == 1
    assert desk.view(NIGHT + 150_000, "LMP-0") == DUE
    assert desk.view(NIGHT + 150_000, "LMP-1") == OFF_BY_PLAN


# -- the simulated city obeying, judged by the engine the worker builds ------------------------------------


def topology_of(city: City, tmp_path: Path) -> Topology:
    inventory = tmp_path / "city.csv"
    write_inventory(city, inventory)
    with Registry(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        assert import_file(registry, inventory).rejected == 0
        with contextlib.closing(registry.iter_assets()) as assets:
            return build_topology(assets)


class Obeying:
    """The simulated city at one reading a minute, its devices answering commands, and the analytics engine
    as the worker builds it; with ``honour`` False the engine is not told of the commands (the old way)."""

    def __init__(self, city: City, topology: Topology, start_ms: int, *, honour: bool = True) -> None:
        self.city, self.topology, self.honour = city, topology, honour
        self.assembly: Assembly = build_assembly(topology, AnalyticsSettings())
        self.sim = Simulation(city, seed=2, start=start_ms / 1000)
        self.taker = CommandTaker(self.sim)
        self.overrides = ManualOverrides(topology.table(LAMP), self.assembly.schedule)
        self.number = {kind: topology.table(kind).find(t.ids) for kind, t in city.devices().items()}
        self.events: list[FindingEvent] = []
        self.lighting_rate: list[float] = []

    def command(self, lamps: list[str], order: Order) -> None:
        now_ms = round(self.sim.next_time * 1000)
        for lamp in lamps:
            command = Command(str(uuid.uuid4()), lamp, order, now_ms, now_ms + 30_000)
            topic = topics.command(lamp)
            self.overrides.feed(topic, encode_command(command), now_ms)
            for answer in self.taker.take(topic, encode_command(command), self.sim.next_time):
                self.overrides.feed(answer.topic, answer.payload, now_ms)

    def minutes(self, count: int) -> None:
        engine = self.assembly.engine
        for _ in range(count):
            tick = self.sim.step()
            engine.ingest(
                Batch(
                    f.kind,
                    self.number[f.kind][f.device],
                    f.ts_ms,
                    f.seq,
                    MappingProxyType({k: np.asarray(v, dtype=np.float64) for k, v in f.fields.items()}),
                )
                for f in tick.frames
                if len(f)
            )
            now = round(tick.t * 1000) + 2000
            update = self.overrides.settle(now, now)
            if self.honour and update.changed:
                self.assembly.schedule.set_manual(self.overrides.manual)
            result = engine.tick(now)
            self.events.extend(result.events)
            city = next(t for t in result.kpis if t.measurement == "kpi" and t.scope == "city")
            self.lighting_rate.append(float(city.fields["lighting_rate"][0]))

    def opened(self) -> set[tuple[str, str]]:
        return {(e.finding.rule, e.finding.subject) for e in self.events if e.change is Change.OPENED}


@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> tuple[City, Topology]:
    city = generate_city(60, seed=5)
    return city, topology_of(city, tmp_path_factory.mktemp("overrides"))


def circuit_lamps(city: City) -> list[str]:
    """The lamps of the circuit of lamp 0: road works ordered by phone switch them all off."""
    circuit = city.lamps.circuit[0]
    return [
        str(i)
        for i, c in zip(city.lamps.ids.tolist(), city.lamps.circuit.tolist(), strict=True)
        if c == circuit
    ]


def test_a_circuit_switched_off_at_night_by_command_looks_like_a_normal_night(
    small_city: tuple[City, Topology],
) -> None:
    city, topology = small_city
    evening = wuhan_ms(2026, 11, 10, 21, 20)  # through the 22:00 night check
    normal, honoured, unaware = (Obeying(city, topology, evening, honour=h) for h in (True, True, False))
    off = circuit_lamps(city)
    assert len(off) >= 3
    for run_ in (normal, honoured, unaware):
        run_.minutes(5)
    for run_ in (honoured, unaware):
        run_.command(off, Switch(False))
    for run_ in (normal, honoured, unaware):
        run_.minutes(55)
    switched = city.lamps.find(off)
    assert not honoured.sim.physics.lighting.view.burning[switched].any()  # they really are off
    # the old way: the switched-off lamps counted dark, a shortfall found at the 22:00 check
    assert min(unaware.lighting_rate) < 1.0
    assert any(rule.startswith("rate_lighting") for rule, _ in unaware.opened())
    # honoured: the same findings as a night without any command, the lighting rate whole
    assert honoured.opened() == normal.opened()
    assert not [s for r, s in honoured.opened() if r == "lamp_failure"]
    assert min(honoured.lighting_rate[6:]) == 1.0
    held = honoured.overrides.active()
    assert sorted(o.lamp for o in held) == sorted(off) and all(not o.on for o in held)


def test_a_lamp_switched_on_at_noon_by_command_is_not_day_burning(small_city: tuple[City, Topology]) -> None:
    city, topology = small_city
    noon = wuhan_ms(2026, 11, 10, 12)
    honoured, unaware = (Obeying(city, topology, noon, honour=h) for h in (True, False))
    lamp = str(city.lamps.ids[3])
    for run_ in (honoured, unaware):
        run_.minutes(3)
        run_.command([lamp], Switch(True))
        run_.minutes(10)
    assert ("day_burning", lamp) in unaware.opened()
    assert not [s for r, s in honoured.opened() if r == "day_burning"]
    assert honoured.sim.physics.lighting.view.burning[3]  # it really burns
    (held,) = honoured.overrides.active()
    sunset, _ = honoured.assembly.schedule.switch_times(wuhan_ms(2026, 11, 10, 20))  # this evening's
    number = int(topology.table(LAMP).find([lamp])[0])
    assert held.on and abs(held.until_ms - sunset[number]) < 10  # until the lamp's schedule switches


# -- integration: broker, simulator, command desk, analytics worker, restart ------------------------------


DESK = CommandSettings(ack_timeout_s=3.0, ack_grace_s=0.5, verify_window_s=5.0, tick_s=0.1)


def wuhan_noon_before(now: float) -> float:
    """The latest 04:00 UTC (noon in Wuhan) before ``now``: lamps off by their schedule for hours."""
    noon = math.floor(now / 86_400) * 86_400 + 4 * 3600
    return noon if noon <= now else noon - 86_400


@contextlib.contextmanager
def analytics(
    name: str, topology: Topology, directory: dict[str, DeviceRef], broker: str, influx: InfluxTarget
) -> Iterator[AnalyticsWorker]:
    settings = AnalyticsSettings(client_id=name, clock="data", tick_s=0.2, kpi_every_s=1)
    assembly = build_assembly(topology, settings)
    worker = AnalyticsWorker(
        settings,
        BrokerAddress.from_url(broker),
        InfluxV1(IngestTarget(influx.url, influx.db)),
        assembly.engine,
        directory,
        gateway_sink=assembly.comm,
    )
    with worker:
        wait_until(worker.restored.is_set, 30, f"{name} restored its state")
        yield worker
    assert worker.error is None


def settled(desk: CommandDesk, command_id: str) -> CommandView:
    def done() -> CommandView | None:
        view = desk.get(command_id)
        return view if view.state not in (RequestState.PENDING, RequestState.DELIVERED) else None

    view = wait_until(done, 15, f"command {command_id} to settle", interval=0.05)
    assert view is not None
    return view


def day_burning(worker: AnalyticsWorker) -> set[str]:
    return {f.subject for f in worker.engine.book.open_findings() if f.rule == "day_burning"}


@pytest.mark.integration
def test_a_lamp_switched_on_at_noon_through_the_desk_is_no_day_burning_even_after_a_restart(
    mosquitto: LocalMosquitto, influx_db: InfluxTarget, tmp_path: Path
) -> None:
    city = generate_city(40, seed=5)
    inventory = tmp_path / "city.csv"
    write_inventory(city, inventory)
    with Registry(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        assert import_file(registry, inventory).rejected == 0
        with contextlib.closing(registry.iter_assets()) as assets:
            topology = build_topology(assets)
        fleet = Fleet(registry.iter_assets())
        directory = registry.directory()
    commanded, burning = str(city.lamps.ids[1]), str(city.lamps.ids[2])
    start = wuhan_noon_before(time.time())
    faults = FaultInjector(
        city, schedule=[FaultEvent(FaultType.DAY_BURNING, burning, "lamp", start - 60, start + 3600)]
    )
    sim = Simulation(city, seed=3, start=start, config=SimConfig(interval_s=1.0), faults=faults)
    address = BrokerAddress.from_url(mosquitto.url)
    stop = threading.Event()
    with MqttPublisher(address, client_id="sim-overrides", listen=True) as publisher:
        runner = threading.Thread(
            target=run,
            args=(sim, publisher, RunOptions(speed=1.0)),
            kwargs={"wall": SystemClock(stop), "commands": publisher},
            daemon=True,
        )
        runner.start()
        try:
            with (
                CommandDesk(DESK, address, fleet, f"sqlite:///{tmp_path / 'commands.db'}") as desk,
                analytics("analytics-a", topology, directory, mosquitto.url, influx_db) as first,
            ):
                wait_until(desk.connected.is_set, 10, "the desk connected")
                # the worker judges day burning: the lamp the fault lights by day is found
                wait_until(lambda: burning in day_burning(first), 20, "the faulty lamp's day burning")
                view = desk.submit(CommandRequest(TargetKind.LAMP, commanded, Switch(True)), "operator-ann")
                done = settled(desk, view.id)
                assert done.state is RequestState.CONFIRMED  # the lamp really burns
                (command,) = done.devices
                effect = command.effective_ts_ms
                assert effect is not None
                wait_until(
                    lambda: first.snapshot().data_time_ms >= effect + 6000, 20, "six readings after it"
                )
                assert commanded not in day_burning(first)
            stored = influx_rows(
                influx_db.url,
                influx_db.db,
                f'SELECT "lamp_on", "level", "command" FROM "manual_override" WHERE "lamp" = \'{commanded}\'',
            )
            assert [row[1:] for row in stored] == [[True, 100, command.id]]
            # a new worker knows the override from InfluxDB alone: it was acknowledged before the worker began
            with analytics("analytics-b", topology, directory, mosquitto.url, influx_db) as second:
                wait_until(lambda: burning in day_burning(second), 20, "the restarted worker judging")
                resumed = second.snapshot().data_time_ms
                wait_until(lambda: second.snapshot().data_time_ms >= resumed + 6000, 20, "six more readings")
                assert commanded not in day_burning(second)
                metrics = wait_until(
                    lambda: influx_rows(
                        influx_db.url,
                        influx_db.db,
                        'SELECT last("manual_overrides") FROM "citywatch_analytics" '
                        "WHERE \"worker\" = 'analytics-b'",
                    ),
                    10,
                    "the second worker's self-metrics",
                )
                assert metrics[0][1] == 1
        finally:
            stop.set()
            runner.join(10)
