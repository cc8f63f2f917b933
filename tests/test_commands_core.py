"""Device commands, pure tier: the contract, the lifecycle table, effect judging, the tracker with an
injected clock, group aggregation, the not-effective finding, and the simulated devices obeying."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import uuid
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.findings import Change
from api.commanding import InvalidRequest, UnknownTarget
from api.commanding.effects import EffectConfig, judge
from api.commanding.findings import RULE, IneffectiveBook
from api.commanding.fleet import Fleet
from api.commanding.model import (
    FINAL,
    TRANSITIONS,
    CommandEvent,
    CommandRequest,
    CommandState,
    DeviceCommand,
    RequestState,
    TargetKind,
    advance,
    aggregate,
)
from api.commanding.tracker import CommandTracker, TrackerConfig, plan
from devices import ContractError, topics
from devices.assets import Asset
from devices.commands import (
    Ack,
    AckStatus,
    Command,
    CommandRejected,
    CommandRejectReason,
    Dim,
    Order,
    Override,
    PumpRun,
    Route,
    Switch,
    decode_ack,
    decode_command,
    encode_ack,
    encode_command,
)
from devices.contract import Reading
from devices.kinds import DeviceKind
from firmware_sim.commands import CommandTaker
from firmware_sim.faults import CommandFault, FaultInjector, parse_schedule
from firmware_sim.inventory import generate_city
from firmware_sim.simulation import SimConfig, Simulation, Tick

T0 = 1_795_000_000_000
CID = "7d0f4f7e-5a53-4c43-9a53-8f0c3f2a9b11"
EFFECTS = EffectConfig()

# --- the contract ---------------------------------------------------------------------------------------

orders = st.one_of(
    st.builds(Switch, st.booleans()),
    st.builds(Dim, st.integers(0, 100)),
    st.booleans().flatmap(
        lambda on: st.builds(
            Override,
            st.just(on),
            st.integers(1, 100) if on else st.just(0),
            st.integers(T0 + 1, T0 + 10**9),
        )
    ),
    st.builds(PumpRun, st.integers(1, 8), st.booleans(), st.integers(T0 + 1, T0 + 10**9)),
)


@given(order=orders, gateway=st.booleans(), expiry=st.integers(1, 10**7))
def test_every_command_survives_the_wire(order: Order, gateway: bool, expiry: int) -> None:
    command = Command(CID, "LMP-000001", order, T0, T0 + expiry)
    topic = topics.command("GW-1" if gateway else "LMP-000001", gateway=gateway)
    route, back = decode_command(topic, encode_command(command))
    assert back == command
    assert route == Route("GW-1" if gateway else "LMP-000001", gateway)


@given(payload=st.binary(max_size=300))
def test_any_bytes_are_a_command_or_a_rejection_with_a_reason(payload: bytes) -> None:
    try:
        outcome: object = decode_command(topics.command("LMP-1"), payload)
    except CommandRejected as exc:
        outcome = exc
    if isinstance(outcome, CommandRejected):
        assert outcome.reason in CommandRejectReason and outcome.detail
    else:
        assert isinstance(outcome, tuple) and isinstance(outcome[1], Command)


def _command_body(**changes: object) -> bytes:
    body: dict[str, object] = {
        "v": 1,
        "id": CID,
        "device": "LMP-1",
        "action": "dim",
        "params": {"level": 40},
        "issued_at": T0,
        "expires_at": T0 + 30_000,
    }
    body.update(changes)
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("cw/v1/dev/LMP-1/telemetry", _command_body(), CommandRejectReason.BAD_TOPIC),
        ("cw/v1/dev/LMP-1/cmd", b"{not json", CommandRejectReason.MALFORMED_JSON),
        ("cw/v1/dev/LMP-1/cmd", b"[1, 2]", CommandRejectReason.BAD_SCHEMA),
        ("cw/v1/dev/LMP-1/cmd", _command_body(v=2), CommandRejectReason.UNSUPPORTED_VERSION),
        ("cw/v1/dev/LMP-1/cmd", _command_body(id="42"), CommandRejectReason.BAD_COMMAND_ID),
        ("cw/v1/dev/LMP-1/cmd", _command_body(device="a b"), CommandRejectReason.BAD_DEVICE_ID),
        ("cw/v1/dev/LMP-2/cmd", _command_body(), CommandRejectReason.DEVICE_TOPIC_MISMATCH),
        ("cw/v1/dev/LMP-1/cmd", _command_body(action="explode"), CommandRejectReason.UNKNOWN_ACTION),
        ("cw/v1/dev/LMP-1/cmd", _command_body(params={"level": 140}), CommandRejectReason.BAD_PARAMS),
        ("cw/v1/dev/LMP-1/cmd", _command_body(params={"lvl": 40}), CommandRejectReason.BAD_PARAMS),
        ("cw/v1/dev/LMP-1/cmd", _command_body(expires_at=T0), CommandRejectReason.BAD_TIMESTAMP),
        ("cw/v1/dev/LMP-1/cmd", _command_body(issued_at="now"), CommandRejectReason.BAD_TIMESTAMP),
        ("cw/v1/dev/LMP-1/cmd", b" " * 5000, CommandRejectReason.OVERSIZED),
        (
            "cw/v1/dev/LMP-1/cmd",
            _command_body(action="override", params={"on": True, "level": 0, "until": T0 + 1}),
            CommandRejectReason.BAD_PARAMS,
        ),
    ],
)
def test_a_bad_command_is_rejected_with_its_own_reason(
    topic: str, payload: bytes, reason: CommandRejectReason
) -> None:
    with pytest.raises(CommandRejected) as caught:
        decode_command(topic, payload)
    assert caught.value.reason is reason


def test_acks_round_trip_and_bad_ones_say_why() -> None:
    ack = Ack(CID, "LMP-1", AckStatus.REJECTED, T0, "expired")
    assert decode_ack(topics.command_ack("GW-1", gateway=True), encode_ack(ack)) == (Route("GW-1", True), ack)
    bad = orjson.dumps({"v": 1, "id": CID, "device": "LMP-1", "status": "maybe", "ts": T0})
    with pytest.raises(CommandRejected) as caught:
        decode_ack(topics.command_ack("LMP-1"), bad)
    assert caught.value.reason is CommandRejectReason.UNKNOWN_STATUS
    with pytest.raises(ContractError):
        Dim(101)


# --- the lifecycle table ----------------------------------------------------------------------------------


def test_the_table_is_the_lifecycle_the_issue_describes() -> None:
    assert set(TRANSITIONS) == set(CommandState)
    assert {
        CommandState.CONFIRMED,
        CommandState.FAILED,
        CommandState.TIMED_OUT,
        CommandState.NOT_EFFECTIVE,
        CommandState.SUPERSEDED,
    } == FINAL
    pending, delivered = TRANSITIONS[CommandState.PENDING], TRANSITIONS[CommandState.DELIVERED]
    assert pending[CommandEvent.ACCEPTED] is CommandState.DELIVERED
    assert pending[CommandEvent.ACK_OVERDUE] is CommandState.TIMED_OUT
    assert delivered[CommandEvent.EFFECT_SHOWN] is CommandState.CONFIRMED
    assert delivered[CommandEvent.EFFECT_OVERDUE] is CommandState.NOT_EFFECTIVE
    # every state is reachable from pending
    seen, frontier = {CommandState.PENDING}, [CommandState.PENDING]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()].values():
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(CommandState)


@given(
    events=st.lists(st.sampled_from(list(CommandEvent)), max_size=8),
)
def test_a_command_only_moves_along_the_table_and_an_ended_one_never_moves(
    events: list[CommandEvent],
) -> None:
    command = lamp_command(Switch(True))
    for i, event in enumerate(events):
        moved = advance(command, event, T0 + i)
        expected = TRANSITIONS[command.state].get(event)
        if expected is None:
            assert moved is None
            continue
        assert moved is not None and moved.state is expected
        assert (moved.ended_ms is not None) == (expected in FINAL)
        command = moved


@given(states=st.lists(st.sampled_from(list(CommandState)), min_size=1, max_size=12))
def test_a_request_aggregates_its_devices(states: list[CommandState]) -> None:
    state = aggregate(states)
    open_ = [s for s in states if s not in FINAL]
    if open_:
        moved = any(s is not CommandState.PENDING for s in states)
        assert state is (RequestState.DELIVERED if moved else RequestState.PENDING)
    elif len(set(states)) == 1:
        assert state.value == states[0].value
    elif CommandState.CONFIRMED in states:
        assert state is RequestState.PARTIAL
    else:
        assert state is RequestState.FAILED


# --- judging effects --------------------------------------------------------------------------------------


def test_lamp_effects_are_judged_by_power_against_its_rating() -> None:
    on, off = Switch(True), Switch(False)
    assert judge(on, 100.0, {"active_power": 96.0, "lamp_on": True, "dim_level": 100}, EFFECTS).shown
    dark = judge(on, 100.0, {"active_power": 0.4, "lamp_on": True, "dim_level": 100}, EFFECTS)
    assert dark.shown is False and dark.expected == pytest.approx(30.0) and "0.4 W" in dark.seen
    assert judge(on, 100.0, {"lamp_on": True}, EFFECTS).shown is None  # no power: tells nothing
    assert judge(off, 100.0, {"active_power": 0.4, "lamp_on": False}, EFFECTS).shown
    assert judge(off, 100.0, {"active_power": 95.0, "lamp_on": False}, EFFECTS).shown is False  # stuck relay
    assert judge(Dim(40), 100.0, {"active_power": 39.0, "dim_level": 40}, EFFECTS).shown
    assert judge(Dim(40), 100.0, {"active_power": 96.0, "dim_level": 40}, EFFECTS).shown is False
    assert judge(Dim(40), 100.0, {"active_power": 39.0, "dim_level": 100}, EFFECTS).shown is False
    # no rating in the registry: the analytics default (100 W)
    assert judge(on, math.nan, {"active_power": 35.0}, EFFECTS).shown


def test_pump_effects_are_judged_by_current_against_its_rating() -> None:
    start, stop = PumpRun(2, True, T0 + 1), PumpRun(2, False, T0 + 1)
    assert judge(start, 155.0, {"pump2_running": True, "pump2_current": 139.0}, EFFECTS).shown
    assert judge(start, 155.0, {"pump2_running": True, "pump2_current": 9.0}, EFFECTS).shown is False
    assert judge(start, 155.0, {"pump1_current": 139.0}, EFFECTS).shown is None  # another pump
    assert judge(stop, 155.0, {"pump2_running": False, "pump2_current": 0.0}, EFFECTS).shown
    assert judge(stop, math.nan, {"pump2_running": False, "pump2_current": 3.0}, EFFECTS).shown is False


# --- the tracker with an injected clock ---------------------------------------------------------------------


def lamp_command(order: Order, device: str = "LMP-1", request: str = "req-1", **kw: object) -> DeviceCommand:
    values: dict[str, object] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, device + request)),
        "request_id": request,
        "device": device,
        "kind": DeviceKind.LAMP,
        "district": "jiangan",
        "route": Route("GW-1", True),
        "order": order,
        "rated": 100.0,
        "issued_ms": T0,
        "expires_ms": T0 + 30_000,
        "updated_ms": T0,
    }
    values.update(kw)
    return DeviceCommand(**values)  # type: ignore[arg-type]


def reading(device: str, ts_ms: int, **fields: float | bool) -> Reading:
    return Reading(device, DeviceKind.LAMP, "jiangan", ts_ms, 1, fields)


CONFIG = TrackerConfig(ack_timeout_ms=30_000, ack_grace_ms=5_000, verify_window_ms=180_000)
# A device clock an hour behind CityWatch's: effects are judged on the device's own timeline.
DEVICE_CLOCK = T0 - 3_600_000


def accepted(command: DeviceCommand, ts: int = DEVICE_CLOCK) -> Ack:
    return Ack(command.id, command.device, AckStatus.ACCEPTED, ts)


def test_switch_on_is_delivered_by_the_ack_and_confirmed_by_the_power() -> None:
    tracker = CommandTracker(CONFIG)
    command = lamp_command(Switch(True))
    tracker.track([command])
    delivered = tracker.on_ack(command.route, accepted(command), T0 + 400)
    assert [c.state for c in delivered.commands] == [CommandState.DELIVERED]
    assert delivered.requests == {"req-1": RequestState.DELIVERED}
    # a reading taken before the command took effect proves nothing, a dark one after it does not confirm
    assert not tracker.on_reading(reading("LMP-1", DEVICE_CLOCK - 1, active_power=96.0), T0 + 500)
    assert not tracker.on_reading(reading("LMP-1", DEVICE_CLOCK, active_power=0.4), T0 + 600)
    done = tracker.on_reading(reading("LMP-1", DEVICE_CLOCK + 60_000, active_power=96.0), T0 + 61_000)
    (confirmed,) = done.commands
    assert confirmed.state is CommandState.CONFIRMED and confirmed.observed == 96.0
    assert done.requests == {"req-1": RequestState.CONFIRMED}
    assert tracker.open_commands() == []


def test_a_reading_that_overtakes_the_ack_still_confirms() -> None:
    tracker = CommandTracker(CONFIG)
    command = lamp_command(Switch(True))
    tracker.track([command])
    assert not tracker.on_reading(reading("LMP-1", DEVICE_CLOCK + 100, active_power=96.0), T0 + 300)
    (confirmed,) = tracker.on_ack(command.route, accepted(command), T0 + 400).commands
    assert confirmed.state is CommandState.CONFIRMED and confirmed.delivered_ms == T0 + 400


def test_no_ack_times_out_after_the_expiry_and_its_grace() -> None:
    tracker = CommandTracker(CONFIG)
    tracker.track([lamp_command(Switch(True))])
    assert not tracker.tick(T0 + 35_000)
    (timed_out,) = tracker.tick(T0 + 35_001).commands
    assert timed_out.state is CommandState.TIMED_OUT and "no acknowledgement within 30 s" in timed_out.detail
    late = tracker.on_ack(timed_out.route, accepted(timed_out), T0 + 36_000)
    assert not late  # a late ack changes nothing


def test_acknowledged_but_dark_ends_not_effective_explained_by_the_last_reading() -> None:
    tracker = CommandTracker(CONFIG)
    command = lamp_command(Switch(True))
    tracker.track([command])
    tracker.on_ack(command.route, accepted(command), T0 + 400)
    tracker.on_reading(reading("LMP-1", DEVICE_CLOCK + 60_000, active_power=0.4, lamp_on=False), T0 + 60_000)
    assert not tracker.tick(T0 + 400 + 180_000)
    (ineffective,) = tracker.tick(T0 + 400 + 180_001).commands
    assert ineffective.state is CommandState.NOT_EFFECTIVE
    assert ineffective.observed == 0.4 and "relay off" in ineffective.detail


def test_refusals_wrong_routes_and_duplicates() -> None:
    tracker = CommandTracker(CONFIG)
    a, b = lamp_command(Dim(40), "LMP-1"), lamp_command(Dim(40), "LMP-2")
    tracker.track([a, b])
    assert not tracker.on_ack(Route("GW-9", True), accepted(a), T0 + 1)  # not where it was sent
    (failed,) = tracker.on_ack(
        a.route, Ack(a.id, a.device, AckStatus.REJECTED, T0, "expired"), T0 + 2
    ).commands
    assert failed.state is CommandState.FAILED and "expired" in failed.detail
    assert tracker.on_ack(b.route, accepted(b), T0 + 3)
    assert not tracker.on_ack(b.route, accepted(b), T0 + 4)  # QoS 1 redelivery


def test_a_newer_command_supersedes_the_open_one() -> None:
    tracker = CommandTracker(CONFIG)
    old = lamp_command(Switch(True), request="old")
    tracker.track([old])
    new = lamp_command(Switch(False), request="new")
    (superseded,) = tracker.supersede([new], T0 + 5).commands
    assert superseded.state is CommandState.SUPERSEDED and new.id in superseded.detail


def test_a_circuit_request_aggregates_its_lamps() -> None:
    tracker = CommandTracker(CONFIG)
    lamps = [lamp_command(Switch(True), f"LMP-{i}", request="circuit") for i in range(3)]
    tracker.track(lamps)
    for lamp in lamps:
        tracker.on_ack(lamp.route, accepted(lamp), T0 + 100)
    progress = tracker.on_reading(reading("LMP-0", DEVICE_CLOCK + 1, active_power=96.0), T0 + 200)
    assert progress.requests == {"circuit": RequestState.DELIVERED}
    tracker.on_reading(reading("LMP-1", DEVICE_CLOCK + 1, active_power=96.0), T0 + 200)
    assert tracker.tick(T0 + 200_000).requests == {"circuit": RequestState.PARTIAL}


@given(
    acks=st.lists(st.booleans(), min_size=1, max_size=6),
    lit=st.lists(st.booleans(), min_size=6, max_size=6),
    gap_s=st.integers(0, 400),
)
def test_time_always_ends_every_command(acks: list[bool], lit: list[bool], gap_s: int) -> None:
    tracker = CommandTracker(CONFIG)
    lamps = [lamp_command(Switch(True), f"LMP-{i}", request="road") for i in range(len(acks))]
    tracker.track(lamps)
    for lamp, acked, bright in zip(lamps, acks, lit, strict=False):
        if acked:
            tracker.on_ack(lamp.route, accepted(lamp), T0 + gap_s * 1000)
            watts = 96.0 if bright else 0.4
            tracker.on_reading(reading(lamp.device, DEVICE_CLOCK + 1, active_power=watts), T0 + gap_s * 1000)
    final = tracker.tick(T0 + (gap_s + 200) * 1000 + CONFIG.verify_window_ms)
    assert tracker.open_commands() == []
    if final:
        assert final.requests["road"] is not RequestState.PENDING
        assert final.requests["road"] is not RequestState.DELIVERED


# --- planning a request through the registry's relations ----------------------------------------------------


def fleet() -> Fleet:
    def lamp(i: int, circuit: str, road: str) -> Asset:
        return Asset(
            id=f"LMP-{i}",
            kind="lamp",
            district="jiangan",
            road=road,
            road_class="trunk",
            circuit=circuit,
            gateway="GW-C1",
            lat=30.6,
            lon=114.3,
            rated_power_w=150.0,
        )

    return Fleet(
        [
            Asset(id="GW-C1", kind="gateway", district="jiangan", lat=30.6, lon=114.3),
            lamp(1, "CIR-1", "Jiefang Avenue"),
            lamp(2, "CIR-1", "Jiefang Avenue"),
            lamp(3, "CIR-2", "Jiefang Avenue"),
            Asset(
                id="PS-1",
                kind="pump_station",
                district="jiangan",
                lat=30.6,
                lon=114.3,
                params={"pumps": 3, "rated_current_a": 155.0},
            ),
            Asset(id="BIN-1", kind="bin", district="jiangan", lat=30.6, lon=114.3),
        ]
    )


def ids() -> Iterator[str]:
    return (str(uuid.UUID(int=i)) for i in itertools.count(1))


def test_a_road_or_circuit_request_becomes_one_command_per_lamp_behind_its_gateway() -> None:
    new_id = ids().__next__
    view = plan(
        CommandRequest(TargetKind.ROAD, "Jiefang Avenue", Switch(True)), "ops", fleet(), CONFIG, T0, new_id
    )
    assert [c.device for c in view.devices] == ["LMP-1", "LMP-2", "LMP-3"]
    assert {c.route for c in view.devices} == {Route("GW-C1", True)}
    assert all(c.expires_ms == T0 + 30_000 and c.rated == 150.0 for c in view.devices)
    assert view.state is RequestState.PENDING and view.device_count == 3
    circuit = plan(CommandRequest(TargetKind.CIRCUIT, "CIR-1", Dim(50)), "ops", fleet(), CONFIG, T0, new_id)
    assert [c.device for c in circuit.devices] == ["LMP-1", "LMP-2"]
    (station,) = plan(
        CommandRequest(TargetKind.PUMP_STATION, "PS-1", PumpRun(3, True, T0 + 60_000)),
        "ops",
        fleet(),
        CONFIG,
        T0,
        new_id,
    ).devices
    assert station.rated == 155.0 and station.route == Route("PS-1", False)


@pytest.mark.parametrize(
    ("request_", "error", "words"),
    [
        (CommandRequest(TargetKind.LAMP, "LMP-99", Switch(True)), UnknownTarget, "no lamp"),
        (CommandRequest(TargetKind.LAMP, "BIN-1", Switch(True)), UnknownTarget, "no lamp"),
        (CommandRequest(TargetKind.CIRCUIT, "CIR-9", Switch(True)), UnknownTarget, "no circuit"),
        (CommandRequest(TargetKind.ROAD, "Jiefang Avenue", PumpRun(1, True, T0 + 1)), InvalidRequest, "lamp"),
        (CommandRequest(TargetKind.PUMP_STATION, "PS-1", Switch(True)), InvalidRequest, "pump orders"),
        (
            CommandRequest(TargetKind.PUMP_STATION, "PS-1", PumpRun(4, True, T0 + 1)),
            InvalidRequest,
            "3 pumps",
        ),
        (CommandRequest(TargetKind.LAMP, "LMP-1", Override(True, 50, T0 - 1)), InvalidRequest, "future"),
    ],
)
def test_a_request_that_cannot_be_carried_out_says_why(
    request_: CommandRequest, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        plan(request_, "ops", fleet(), CONFIG, T0, ids().__next__)


def test_not_effective_opens_a_finding_once_and_a_later_confirmed_command_clears_it() -> None:
    book = IneffectiveBook()
    bad = lamp_command(
        Switch(True), state=CommandState.NOT_EFFECTIVE, delivered_ms=T0, observed=0.4, expected=30.0
    )
    (opened,) = book.update([bad], T0 + 1)
    assert opened.change is Change.OPENED and opened.finding.rule == RULE
    assert opened.finding.subject == "LMP-1" and opened.finding.subject_kind == "lamp"
    assert opened.finding.value == 0.4 and "switch on" in opened.finding.explanation
    assert book.update([bad], T0 + 2) == []
    good = lamp_command(Switch(True), request="again", state=CommandState.CONFIRMED)
    (cleared,) = book.update([good], T0 + 3)
    assert cleared.change is Change.CLEARED and "LMP-1" not in book


# --- the simulated devices obey ---------------------------------------------------------------------------

NOON_WUHAN = dt.datetime(2026, 6, 21, 4, 0, tzinfo=dt.UTC).timestamp()  # 12:00 local: the lamps are off


def lamp_fields(tick: Tick, number: int) -> tuple[int, dict[str, object]]:
    frame = next(f for f in tick.frames if f.kind is DeviceKind.LAMP)
    row = int(list(frame.device).index(number))
    return int(frame.ts_ms[row]), {k: v[row].item() for k, v in frame.fields.items()}


def sim_city(schedule: list[dict[str, object]] = ()) -> Simulation:  # type: ignore[assignment]
    city = generate_city(120, seed=5)
    faults = FaultInjector(city, seed=1, schedule=parse_schedule(orjson.dumps(schedule).decode()))
    return Simulation(city, seed=1, start=NOON_WUHAN, config=SimConfig(interval_s=1.0), faults=faults)


def send(taker: CommandTaker, sim: Simulation, device: str, order: Order) -> list[Ack]:
    now_s = sim.next_time - 0.5  # between two ticks
    issued = round(now_s * 1000)
    command = Command(str(uuid.uuid4()), device, order, issued, issued + 30_000)
    answers = taker.take(topics.command(device), encode_command(command), now_s)
    return [decode_ack(m.topic, m.payload)[1] for m in answers]


def test_a_simulated_lamp_obeys_and_its_next_reading_shows_it() -> None:
    sim = sim_city()
    taker = CommandTaker(sim)
    before = sim.step()
    _, fields = lamp_fields(before, 0)
    assert fields["active_power"] < 1.0  # noon: off by its schedule
    (ack,) = send(taker, sim, "LMP-000001", Switch(True))
    assert ack.status is AckStatus.ACCEPTED
    prev_ts, _ = lamp_fields(before, 0)
    after = sim.step()
    ts, fields = lamp_fields(after, 0)
    assert prev_ts < ack.ts_ms <= ts  # the ack's clock separates the readings before from those after
    assert fields["lamp_on"] and fields["dim_level"] == 100 and fields["active_power"] > 90
    assert not fields["day_burning"]  # an operator's choice, not the controller's fault
    send(taker, sim, "LMP-000001", Dim(40))
    _, dimmed = lamp_fields(sim.step(), 0)
    assert dimmed["dim_level"] == 40 and 30 < dimmed["active_power"] < 45


def test_an_override_ends_and_the_schedule_takes_over() -> None:
    sim = sim_city()
    taker = CommandTaker(sim)
    sim.step()
    until_ms = round((sim.next_time + 3) * 1000)
    send(taker, sim, "LMP-000001", Override(True, 100, until_ms))
    powers = [lamp_fields(sim.step(), 0)[1]["active_power"] for _ in range(6)]
    assert [p > 50 for p in powers] == [True, True, True, False, False, False]


def test_faulty_simulated_devices_ignore_or_never_answer_and_the_truth_says_so() -> None:
    schedule = [
        {"fault": "ignores_commands", "target": "LMP-000002", "start": NOON_WUHAN - 60, "duration_s": 3600},
        {"fault": "command_deaf", "target": "LMP-000003", "start": NOON_WUHAN - 60, "duration_s": 3600},
    ]
    sim = sim_city(schedule)
    taker = CommandTaker(sim)
    first = sim.step()
    assert {(e.fault, e.target) for e in first.started} == {
        (CommandFault.IGNORES_COMMANDS, "LMP-000002"),
        (CommandFault.COMMAND_DEAF, "LMP-000003"),
    }
    assert first.started[0].record()["fault"] in ("ignores_commands", "command_deaf")
    (ack,) = send(taker, sim, "LMP-000002", Switch(True))
    assert ack.status is AckStatus.ACCEPTED
    assert send(taker, sim, "LMP-000003", Switch(True)) == []
    (refusal,) = send(taker, sim, "LMP-000001", PumpRun(1, True, T0 + 60_000))
    assert refusal.status is AckStatus.REJECTED and "unsupported" in refusal.reason
    after = sim.step()
    assert lamp_fields(after, 1)[1]["active_power"] < 1.0
    assert lamp_fields(after, 2)[1]["active_power"] < 1.0
    assert taker.outcomes == {"ignored": 1, "deaf": 1, "rejected": 1}


def test_a_simulated_pump_starts_and_stops_by_hand() -> None:
    sim = sim_city()
    taker = CommandTaker(sim)
    sim.step()
    station = str(sim.city.stations.ids[0])
    hold = round((sim.next_time + 600) * 1000)

    def pump1() -> tuple[bool, float]:
        frame = next(f for f in sim.step().frames if f.kind is DeviceKind.PUMP_STATION)
        return bool(frame.fields["pump1_running"][0]), float(frame.fields["pump1_current"][0])

    (ack,) = send(taker, sim, station, PumpRun(1, False, hold))
    assert ack.status is AckStatus.ACCEPTED
    assert pump1() == (False, 0.0)
    send(taker, sim, station, PumpRun(1, True, hold))
    running, amps = pump1()
    assert running and amps > 0.3 * float(sim.city.stations.rated_current_a[0])
    (refusal,) = send(taker, sim, station, PumpRun(4, True, hold))
    assert refusal.status is AckStatus.REJECTED and "no pump 4" in refusal.reason


def test_commands_leave_the_simulation_deterministic_elsewhere() -> None:
    """Two runs of one seed, one with a lamp switched by hand: every other device reads the same."""
    plain, commanded = sim_city(), sim_city()
    taker = CommandTaker(commanded)
    plain.step(), commanded.step()
    send(taker, commanded, "LMP-000001", Switch(True))
    a, b = plain.step(), commanded.step()
    for fa, fb in zip(a.frames, b.frames, strict=True):
        for name in fa.fields:
            left, right = fa.fields[name], fb.fields[name]
            if fa.kind is DeviceKind.LAMP:
                left, right = left[1:], right[1:]
            if fa.kind is DeviceKind.CABINET:
                continue  # the lamp's own cabinet carries its load
            assert (left == right).all(), (fa.kind, name)
