"""The commissioning protocol's pure core: frames, messages, the flow table, placement, the device's console.

Property tests: any byte stream deframes into valid frames or is skipped and counted, never a crash; a
frame survives any garbage before it and any chunking; a damaged frame never passes for another one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.commission import (
    CommissionError,
    ConfigRejected,
    NeverReported,
    NoAnswer,
    NotCommissionable,
    PlacementMissing,
    SelfTestFailed,
)
from citywatch.commission.backends import StoredReading
from citywatch.commission.client import DeviceClient
from citywatch.commission.progress import ProgressStore
from citywatch.commission.runner import Commissioning, Order
from citywatch.commission.settings import CommissionSettings
from devices.assets import Asset
from devices.commissioning import FrameTooLong, IllegalStep, MessageError
from devices.commissioning import flow as fl
from devices.commissioning.config import DeviceConfig, Identity, Position, StoredConfig, password_digest
from devices.commissioning.flow import Event, Progress, Stage, Undo
from devices.commissioning.flow_doc import flow_tables
from devices.commissioning.framing import (
    MAX_PAYLOAD,
    MAX_STUFFED,
    PROTOCOL_VERSION,
    Deframer,
    Frame,
    cobs_decode,
    cobs_encode,
    crc32,
    encode,
)
from devices.commissioning.messages import (
    Check,
    ConfigAnswer,
    ConfigWritten,
    DeviceErrorReply,
    ErrorCode,
    Identify,
    LogLines,
    MessageType,
    ReadConfig,
    ReadLog,
    Reboot,
    Rebooting,
    SelfTest,
    SelfTestReport,
    WriteConfig,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from devices.commissioning.placement import PlacementHints, missing, nearest, new_asset
from devices.kinds import DeviceKind
from firmware_sim import SimError
from firmware_sim.console_device import ConsoleDevice, Effect, Misbehaviour, parse_misbehaviour

frames = st.builds(
    Frame,
    version=st.integers(0, 255),
    address=st.integers(0, 255),
    seq=st.integers(0, 255),
    type=st.integers(0, 255),
    payload=st.binary(max_size=MAX_PAYLOAD),
)


def config(**changes: object) -> DeviceConfig:
    values: dict[str, object] = {
        "device_id": "LMP-000042",
        "kind": DeviceKind.LAMP,
        "broker_url": "mqtt://10.0.0.5:1883",
        "username": "LMP-000042",
        "password": "s3cret-password",
        "interval_s": 60,
        "position": Position(30.5928, 114.3055),
        "circuit": "CIR-07",
        "road": "Jiefang Avenue",
    }
    return DeviceConfig(**{**values, **changes})  # type: ignore[arg-type]


IDENTITY = Identity(
    model="CW-LC100 single-lamp controller",
    serial="SN0001",
    firmware="1.4.2",
    hardware="rev C",
    kinds=(DeviceKind.LAMP,),
    protocols=(1,),
    gnss=Position(30.5928, 114.3055),
)

# -- framing ----------------------------------------------------------------------------------------------


def test_the_crc_is_crc32() -> None:
    assert crc32(b"123456789") == 0xCBF43926  # the catalogue's check value


@given(st.binary(max_size=2000))
def test_cobs_round_trips_and_leaves_no_zero(data: bytes) -> None:
    stuffed = cobs_encode(data)
    assert 0 not in stuffed
    assert cobs_decode(stuffed) == data
    assert len(stuffed) <= len(data) + len(data) // 254 + 1


@given(frames)
def test_a_frame_comes_back_as_itself(frame: Frame) -> None:
    wire = encode(frame)
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert len(wire) - 2 <= MAX_STUFFED
    assert Deframer().feed(wire) == [frame]


@settings(max_examples=300)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 64), max_size=40))
def test_any_byte_stream_yields_valid_frames_or_skips_never_a_crash(data: bytes, cuts: list[int]) -> None:
    deframer = Deframer()
    out: list[Frame] = []
    start = 0
    for size in cuts:
        out += deframer.feed(data[start : start + size])
        start += size
    out += deframer.feed(data[start:])
    for frame in out:  # everything that came out is a frame that would go on the wire as it is
        assert Deframer().feed(encode(frame)) == [frame]
    counts = deframer.counts()
    assert counts.frames == len(out)
    assert counts.skipped_bytes <= len(data)


@given(st.binary(max_size=2500), frames, st.lists(st.integers(1, 50), max_size=30))
def test_a_frame_after_any_garbage_is_found_however_the_bytes_arrive(
    garbage: bytes, frame: Frame, cuts: list[int]
) -> None:
    wire = garbage + encode(frame)
    whole = Deframer().feed(wire)
    assert whole[-1] == frame
    deframer, chunked, start = Deframer(), [], 0
    for size in cuts:
        chunked += deframer.feed(wire[start : start + size])
        start += size
    chunked += deframer.feed(wire[start:])
    assert chunked == whole


@settings(max_examples=500)
@given(frames, frames, st.data())
def test_one_flipped_bit_costs_only_its_own_frame(first: Frame, second: Frame, data: st.DataObject) -> None:
    wire = bytearray(encode(first))
    position = data.draw(st.integers(0, len(wire) - 1))
    wire[position] ^= 1 << data.draw(st.integers(0, 7))
    deframer = Deframer()
    got = deframer.feed(bytes(wire) + encode(second))
    # The damaged frame never passes for a frame (a CRC-16 did: a flipped COBS code byte moves bytes).
    assert got == [second]
    assert deframer.counts().damaged >= 1 or position in (0, len(wire) - 1)


def test_a_run_without_delimiter_is_dropped_and_the_next_frame_found() -> None:
    deframer = Deframer()
    frame = Frame(PROTOCOL_VERSION, 0, 7, MessageType.IDENTIFY)
    assert deframer.feed(b"\x01" * (MAX_STUFFED + 500)) == []
    assert deframer.feed(b"\x02" * 100 + encode(frame)) == [frame]
    counts = deframer.counts()
    assert (counts.overlong, counts.skipped_bytes) == (1, MAX_STUFFED + 600)


def test_a_payload_too_long_for_a_frame_is_refused() -> None:
    with pytest.raises(FrameTooLong):
        encode(Frame(1, 0, 0, 1, b"x" * (MAX_PAYLOAD + 1)))


# -- messages ---------------------------------------------------------------------------------------------

REQUESTS = [Identify(), ReadConfig(), WriteConfig(config()), SelfTest(), Reboot(), ReadLog(5)]
RESPONSES = [
    IDENTITY,
    ConfigAnswer(None),
    ConfigAnswer(config().stored()),
    ConfigWritten(),
    SelfTestReport((Check("relay", True), Check("broker", False, "refused: not authorised"))),
    Rebooting(2.5),
    LogLines(("boot: ok", "mqtt: connected")),
    DeviceErrorReply(ErrorCode.REJECTED, "write-protected", "kind"),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_every_request_round_trips(request_: object) -> None:
    kind, payload = encode_request(request_)  # type: ignore[arg-type]
    assert decode_request(kind, payload) == request_


@pytest.mark.parametrize("response", RESPONSES, ids=lambda r: type(r).__name__)
def test_every_response_round_trips(response: object) -> None:
    kind, payload = encode_response(response)  # type: ignore[arg-type]
    assert len(payload) <= MAX_PAYLOAD
    assert decode_response(kind, payload) == response


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"device_id": "LMP 42"}, "device_id"),
        ({"broker_url": "mqtt://user:pw@host:1883"}, "broker_url"),
        ({"broker_url": "http://host"}, "broker_url"),
        ({"interval_s": 0}, "interval_s"),
        ({"interval_s": 1.5}, "interval_s"),
        ({"position": [91, 0]}, "lat"),
        ({"kind": "tram"}, "kind"),
        ({"road": "a\nb"}, "road"),
        ({"password": ""}, "password"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_configuration_names_its_field(changes: dict[str, object], field: str) -> None:
    body = {**config().to_json(), **changes}
    with pytest.raises(MessageError) as caught:
        DeviceConfig.from_json(body)
    assert caught.value.field == field


@settings(max_examples=300)
@given(st.integers(0, 255), st.one_of(st.binary(max_size=300), st.builds(lambda t: t.encode(), st.text())))
def test_any_payload_decodes_or_is_refused_with_a_reason(kind: int, payload: bytes) -> None:
    reasons = []
    for decode in (decode_request, decode_response):
        try:
            decode(kind, payload)
        except MessageError as exc:
            reasons.append(str(exc))
    assert all(reasons)


def test_the_password_never_comes_back_and_never_prints() -> None:
    written = config()
    stored = written.stored()
    assert "password" not in stored.to_json()
    assert stored.password_digest == password_digest("s3cret-password")
    assert "s3cret" not in repr(written)
    assert stored.differences(config(password="other").stored()) == ("password_digest",)


def test_a_long_log_is_cut_to_one_frame_keeping_the_newest_lines() -> None:
    lines = tuple(f"line {n} " + "x" * 150 for n in range(50))
    kind, payload = encode_response(LogLines(lines))
    assert len(payload) <= MAX_PAYLOAD
    shown = decode_response(kind, payload)
    assert isinstance(shown, LogLines)
    assert shown.lines[-1] == lines[-1] and len(shown.lines) < 50


# -- the flow table ---------------------------------------------------------------------------------------

HAPPY = [
    Event.REGISTERED,
    Event.CREDENTIALS_ISSUED,
    Event.CONFIG_VERIFIED,
    Event.SELF_TEST_PASSED,
    Event.PUT_IN_SERVICE,
    Event.RESTARTED,
    Event.FIRST_READING,
]


def progress(stage: Stage = Stage.NEW) -> Progress:
    return Progress(serial="SN0001", device_id="LMP-SN0001", kind=DeviceKind.LAMP, stage=stage)


def test_the_happy_path_visits_every_action_once_and_ends_in_service() -> None:
    p = progress()
    actions = []
    for n, event in enumerate(HAPPY):
        actions.append(p.action)
        p = fl.step(p, event, 1000 + n)
    assert p.done and p.action is None
    assert actions == list(fl.ACTIONS.values())
    assert [m.event for m in p.history] == HAPPY


def test_every_stage_but_the_last_has_an_action_and_start_over_leaves_every_stage_but_new() -> None:
    assert set(fl.ACTIONS) == set(Stage) - {Stage.IN_SERVICE}
    for stage, moves in fl.TRANSITIONS.items():
        assert (Event.START_OVER in moves) is (stage is not Stage.NEW)


def test_a_move_the_table_lacks_is_refused() -> None:
    with pytest.raises(IllegalStep) as caught:
        fl.step(progress(Stage.REGISTERED), Event.FIRST_READING, 0)
    assert (caught.value.state, caught.value.event) == ("registered", "first_reading")


@given(st.lists(st.sampled_from(list(Event)), max_size=40))
def test_any_event_sequence_moves_by_the_table_or_is_refused(events: list[Event]) -> None:
    p = progress()
    for event in events:
        target = fl.TRANSITIONS[p.stage].get(event)
        if target is None:
            with pytest.raises(IllegalStep):
                fl.step(p, event, 0)
            continue
        p = fl.step(p, event, 0)
        assert p.stage is target
        if target in (Stage.NEW, Stage.REGISTERED):
            assert p.expected is None and p.restarted_ms is None  # what was verified is forgotten


@pytest.mark.parametrize(
    ("before", "event", "undone"),
    [
        (Stage.CREDENTIALED, Event.CONFIG_REJECTED, (Undo.REVOKE_CREDENTIALS,)),
        (Stage.CREDENTIALED, Event.SECRET_LOST, (Undo.REVOKE_CREDENTIALS,)),
        (Stage.RESTARTED, Event.SILENT, (Undo.OUT_OF_SERVICE,)),
        (Stage.LIVE, Event.RESTART_FAILED, (Undo.OUT_OF_SERVICE,)),
        (Stage.TESTED, Event.CONFIG_LOST, (Undo.REVOKE_CREDENTIALS,)),
        (Stage.IN_SERVICE, Event.START_OVER, (Undo.REVOKE_CREDENTIALS, Undo.OUT_OF_SERVICE)),
        (Stage.REGISTERED, Event.CREDENTIALS_ISSUED, ()),
    ],
)
def test_backward_moves_take_back_the_work(before: Stage, event: Event, undone: tuple[Undo, ...]) -> None:
    assert fl.undo(before, fl.TRANSITIONS[before][event]) == undone


def test_a_resumed_run_checks_the_device_against_the_saved_progress() -> None:
    written = config().stored()
    configured = Progress(
        serial="SN0001", device_id="LMP-000042", kind=DeviceKind.LAMP, stage=Stage.TESTED, expected=written
    )
    assert fl.resume_event(progress(Stage.CREDENTIALED), None, have_secret=False) is Event.SECRET_LOST
    assert fl.resume_event(configured, written, have_secret=False) is None
    assert fl.resume_event(configured, None, have_secret=False) is Event.CONFIG_LOST  # factory reset
    other = config(interval_s=5).stored()
    assert fl.resume_event(configured, other, have_secret=False) is Event.CONFIG_LOST


def test_device_id_and_kind_choices() -> None:
    assert fl.default_device_id(DeviceKind.LAMP, "SN0001") == "LMP-SN0001"
    stored = config().stored()
    pick = fl.choose_device_id
    assert pick(DeviceKind.LAMP, IDENTITY, given=None, saved=None, stored=stored) == "LMP-000042"
    assert pick(DeviceKind.LAMP, IDENTITY, given="LMP-9", saved="LMP-8", stored=stored) == "LMP-9"
    assert pick(DeviceKind.LAMP, IDENTITY, given=None, saved=None, stored=None) == "LMP-SN0001"
    assert fl.choose_kind(IDENTITY, None) is DeviceKind.LAMP
    assert "cannot act as a bin" in str(fl.choose_kind(IDENTITY, DeviceKind.BIN))
    assert "protocol 2" in str(fl.identity_problem(replace(IDENTITY, protocols=(2,))))


def test_the_docs_state_table_is_the_code_s() -> None:
    docs = Path(__file__).parent.parent / "docs" / "commissioning.md"
    assert flow_tables() in docs.read_text(encoding="utf-8"), (
        "docs/commissioning.md is stale: paste `python -m devices.commissioning.flow_doc`"
    )


# -- placement --------------------------------------------------------------------------------------------


def lamp(asset_id: str, lat: float, lon: float, **values: object) -> Asset:
    base = {"district": "jiangan", "road": "Jiefang Avenue", "road_class": "trunk", "circuit": "CIR-07"}
    return Asset(id=asset_id, kind="lamp", lat=lat, lon=lon, **{**base, **values})  # type: ignore[arg-type]


def test_a_new_lamp_takes_road_and_circuit_from_its_nearest_neighbour() -> None:
    here = Position(30.59, 114.30)
    city = [
        lamp("LMP-1", 30.5903, 114.30, road="Far Road"),  # ~33 m
        lamp("LMP-2", 30.5901, 114.30),  # ~11 m
        Asset(id="BIN-1", kind="bin", district="jiangan", lat=30.59, lon=114.30),  # 0 m, another kind
        lamp("LMP-3", 30.60, 114.30),  # ~1.1 km
    ]
    neighbour = nearest(here, city, DeviceKind.LAMP)
    assert neighbour is not None and neighbour.id == "LMP-2"
    assert nearest(Position(31.0, 114.0), city, DeviceKind.LAMP) is None
    hints = PlacementHints(circuit="CIR-99")
    assert missing(DeviceKind.LAMP, hints, here, neighbour) == ()
    asset = new_asset("LMP-NEW", DeviceKind.LAMP, hints, here, neighbour)
    assert (asset.road, asset.circuit, asset.district, asset.in_service) == (
        "Jiefang Avenue",
        "CIR-99",
        "jiangan",
        False,
    )
    assert (asset.lat, asset.lon) == (30.59, 114.30)


def test_an_isolated_device_without_gnss_needs_its_place_given() -> None:
    assert missing(DeviceKind.LAMP, PlacementHints(), None, None) == ("lat", "lon", "district", "road_class")
    assert missing(DeviceKind.BIN, PlacementHints(lat=1.0, lon=2.0), None, None) == ("district",)


# -- the simulated device's console -----------------------------------------------------------------------


def ask(device: ConsoleDevice, request: object, seq: int = 1, version: int = PROTOCOL_VERSION) -> object:
    kind, payload = encode_request(request)  # type: ignore[arg-type]
    reply = device.handle(Frame(version, 0, seq, kind, payload))
    assert reply.frame is not None and reply.frame.seq == seq
    return decode_response(reply.frame.type, reply.frame.payload)


def test_the_console_stores_a_configuration_and_answers_a_retry_without_doing_it_twice() -> None:
    device = ConsoleDevice(IDENTITY)
    assert ask(device, Identify()) == IDENTITY
    assert ask(device, WriteConfig(config()), seq=2) == ConfigWritten()
    logged = len(device.log)
    assert ask(device, WriteConfig(config()), seq=2) == ConfigWritten()  # the same request again
    assert len(device.log) == logged
    assert ask(device, ReadConfig(), seq=3) == ConfigAnswer(config().stored())


def test_the_console_refuses_what_it_cannot_take_with_a_reason() -> None:
    device = ConsoleDevice(IDENTITY, misbehaviour=Misbehaviour(refuse_write=True))
    refused = ask(device, WriteConfig(config()))
    assert isinstance(refused, DeviceErrorReply) and refused.code is ErrorCode.REJECTED
    wrong_kind = ask(ConsoleDevice(IDENTITY), WriteConfig(config(kind=DeviceKind.BIN)))
    assert isinstance(wrong_kind, DeviceErrorReply) and wrong_kind.field == "kind"
    future = ask(ConsoleDevice(IDENTITY), Identify(), version=9)
    assert isinstance(future, DeviceErrorReply) and future.code is ErrorCode.UNSUPPORTED_VERSION
    reply = ConsoleDevice(IDENTITY).handle(Frame(1, 0, 1, MessageType.READ_LOG, b'{"lines": 0}'))
    assert reply.frame is not None
    bad = decode_response(reply.frame.type, reply.frame.payload)
    assert isinstance(bad, DeviceErrorReply) and (bad.code, bad.field) == (ErrorCode.BAD_REQUEST, "lines")


def test_a_self_test_waits_for_the_broker_check_and_restart_is_an_effect() -> None:
    device = ConsoleDevice(IDENTITY, config=config())
    kind, payload = encode_request(SelfTest())
    assert device.handle(Frame(1, 0, 5, kind, payload)).effect is Effect.CHECK_BROKER
    frame = device.self_test_done(Check("broker", False, "refused"))
    assert frame is not None
    report = decode_response(frame.type, frame.payload)
    assert isinstance(report, SelfTestReport) and [c.name for c in report.failed] == ["broker"]
    kind, payload = encode_request(Reboot())
    assert device.handle(Frame(1, 0, 6, kind, payload)).effect is Effect.RESTART


def test_misbehaviour_specs() -> None:
    assert parse_misbehaviour(["garble=0.5", "refuse-write", "delay"]) == Misbehaviour(
        garble=0.5, delay_s=2.0, refuse_write=True
    )
    with pytest.raises(SimError):
        parse_misbehaviour(["garble=2"])
    with pytest.raises(SimError):
        parse_misbehaviour(["explode"])


def test_stored_config_requires_its_digest() -> None:
    body = config().stored().to_json()
    del body["password_digest"]
    with pytest.raises(MessageError):
        StoredConfig.from_json(body)


# -- the runner over an in-memory line --------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def pause(self, seconds: float) -> None:
        self.t += seconds


class Loopback:
    """An in-memory line to a pure ConsoleDevice: what the pty and the console thread do, without them."""

    name = "loopback"

    def __init__(self, device: ConsoleDevice, clock: FakeClock) -> None:
        self.device, self.clock = device, clock
        self.deframer = Deframer()
        self.pending = bytearray()
        self.broker_ok = True
        self.reporting = device.config is not None

    def write(self, data: bytes) -> None:
        for frame in self.deframer.feed(data):
            if not self.device.hears(frame):
                continue
            reply = self.device.handle(frame)
            if reply.frame is not None:
                self.pending += encode(reply.frame)
            if reply.effect is Effect.CHECK_BROKER:
                answer = self.device.self_test_done(Check("broker", self.broker_ok, "fake broker"))
                assert answer is not None
                self.pending += encode(answer)
            elif reply.effect is Effect.RESTART:
                self.device.restarted()
                self.reporting = self.device.config is not None

    def read(self, timeout_s: float) -> bytes:
        if not self.pending:
            self.clock.t += timeout_s
            return b""
        data = bytes(self.pending)
        self.pending.clear()
        return data


@dataclass
class Creds:
    username: str
    password: str


class FakeAccounts:
    def __init__(self) -> None:
        self.accounts: dict[str, str] = {}
        self.issued = 0
        self.revoked: list[str] = []

    def issue(self, device_id: str) -> Creds:
        self.issued += 1
        self.accounts[device_id] = f"password-{self.issued}"
        return Creds(device_id, self.accounts[device_id])

    def revoke(self, device_id: str) -> None:
        self.revoked.append(device_id)
        self.accounts.pop(device_id, None)


class FakeAssets:
    def __init__(self, *assets: Asset) -> None:
        self.rows = {a.id: a for a in assets}

    def get(self, asset_id: str) -> Asset | None:
        return self.rows.get(asset_id)

    def upsert(self, assets: Iterable[Asset]) -> int:
        batch = list(assets)
        self.rows.update((a.id, a) for a in batch)
        return len(batch)

    def near(self, position: Position, kind: DeviceKind, max_m: float) -> Iterator[Asset]:
        return iter([a for a in self.rows.values() if a.kind == kind.value])


class FakeReadings:
    """InfluxDB as the device's reporting makes it: a reading once it runs configured (and in service)."""

    def __init__(self, line: Loopback, assets: FakeAssets, accounts: FakeAccounts) -> None:
        self.line, self.assets, self.accounts = line, assets, accounts
        self.silent = False

    def first_reading(self, kind: DeviceKind, device_id: str, since_ms: int) -> StoredReading | None:
        config = self.line.device.config
        asset = self.assets.get(device_id)
        accepted = asset is not None and asset.in_service and not self.silent
        if self.line.reporting and config is not None and accepted:
            assert self.accounts.accounts.get(config.username) == config.password  # the broker lets it in
            return StoredReading(since_ms + 1, {"active_power": 100.0})
        return None


class Interrupt(BaseException):
    """Stands for Ctrl-C or a crash right after a step was saved."""


class Recorder:
    def __init__(self, stop_after: fl.Action | None = None) -> None:
        self.stop_after = stop_after
        self.moves: list[fl.Move] = []
        self.resumed: bool | None = None

    def identified(self, identity: Identity, progress: Progress, resumed: bool) -> None:
        self.resumed = resumed

    def started(self, action: fl.Action) -> None:
        pass

    def done(self, action: fl.Action, detail: str) -> None:
        if action is self.stop_after:
            raise Interrupt(action)

    def failed(self, action: fl.Action | None, error: CommissionError) -> None:
        pass

    def moved(self, move: fl.Move, undone: tuple[Undo, ...]) -> None:
        self.moves.append(move)

    def waiting(self, action: fl.Action, elapsed_s: float) -> None:
        pass


@dataclass
class Bench:
    """One device on an in-memory line, with in-memory registry, broker accounts and InfluxDB."""

    device: ConsoleDevice
    clock: FakeClock
    line: Loopback
    assets: FakeAssets
    accounts: FakeAccounts
    readings: FakeReadings
    store: ProgressStore

    def runner(self, reporter: Recorder | None = None) -> Commissioning:
        return Commissioning(
            DeviceClient(self.line, timeout_s=0.5, attempts=2, clock=self.clock),
            settings=CommissionSettings(first_reading_timeout_s=10, poll_interval_s=1),
            assets=self.assets,
            accounts=self.accounts,
            readings=self.readings,
            store=self.store,
            broker_url="mqtt://10.0.0.5:1883",
            reporter=reporter or Recorder(),
            now_ms=lambda: 1_795_000_000_000 + int(self.clock.t * 1000),
            clock=self.clock,
            pause=self.clock.pause,
        )


HINTS = PlacementHints(district="jiangan", road_class="trunk", road="Jiefang Avenue")


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    device = ConsoleDevice(IDENTITY)
    clock = FakeClock()
    line = Loopback(device, clock)
    assets, accounts = FakeAssets(), FakeAccounts()
    return Bench(
        device, clock, line, assets, accounts, FakeReadings(line, assets, accounts), ProgressStore(tmp_path)
    )


def test_the_runner_takes_a_new_device_to_in_service(bench: Bench) -> None:
    final = bench.runner().run(Order(hints=HINTS))
    assert final.done and final.device_id == "LMP-SN0001"
    asset = bench.assets.get("LMP-SN0001")
    assert asset is not None and asset.in_service and asset.road == "Jiefang Avenue"
    assert bench.device.config is not None
    assert bench.device.config.password == bench.accounts.accounts["LMP-SN0001"]
    saved = bench.store.load("SN0001")
    assert saved is not None and saved.stage is Stage.IN_SERVICE
    assert bench.device.config.password not in bench.store.path("SN0001").read_text()  # only its digest


@pytest.mark.parametrize("stop_after", list(fl.Action))
def test_an_interrupted_run_resumes_where_it_stopped(bench: Bench, stop_after: fl.Action) -> None:
    with pytest.raises(Interrupt):
        bench.runner(Recorder(stop_after)).run(Order(hints=HINTS))
    saved = bench.store.load("SN0001")
    assert saved is not None and saved.action is not stop_after  # the step was saved before the stop
    again = Recorder()
    final = bench.runner(again).run(Order())
    assert again.resumed is (saved.stage is not Stage.NEW)
    assert final.done and bench.assets.rows["LMP-SN0001"].in_service
    events = [m.event for m in final.history]
    assert events.count(Event.REGISTERED) == 1
    if stop_after is fl.Action.ISSUE_CREDENTIALS:  # the password was never saved: issued again
        assert Event.SECRET_LOST in events and bench.accounts.issued == 2
        assert bench.accounts.revoked == ["LMP-SN0001"]
    else:
        assert bench.accounts.issued == 1 and not bench.accounts.revoked


def test_a_device_reset_between_runs_is_configured_again(bench: Bench) -> None:
    with pytest.raises(Interrupt):
        bench.runner(Recorder(fl.Action.SELF_TEST)).run(Order(hints=HINTS))
    bench.device.config = None  # someone pressed the factory-reset button
    final = bench.runner().run(Order())
    assert final.done and Event.CONFIG_LOST in [m.event for m in final.history]
    assert bench.accounts.issued == 2


def test_a_refused_configuration_revokes_the_credentials(bench: Bench) -> None:
    bench.device.misbehaviour = Misbehaviour(refuse_write=True)
    with pytest.raises(ConfigRejected, match="write-protected"):
        bench.runner().run(Order(hints=HINTS))
    saved = bench.store.load("SN0001")
    assert saved is not None and saved.stage is Stage.REGISTERED
    assert bench.accounts.accounts == {} and bench.accounts.revoked == ["LMP-SN0001"]
    bench.device.misbehaviour = Misbehaviour()
    assert bench.runner().run(Order()).done


def test_a_device_that_never_reports_goes_out_of_service_again(bench: Bench) -> None:
    bench.readings.silent = True
    with pytest.raises(NeverReported) as caught:
        bench.runner().run(Order(hints=HINTS))
    assert any("device log: console: restarting" in line for line in caught.value.details)
    assert not bench.assets.rows["LMP-SN0001"].in_service
    saved = bench.store.load("SN0001")
    assert saved is not None and saved.stage is Stage.TESTED
    bench.readings.silent = False
    assert bench.runner().run(Order()).done


def test_a_failed_self_test_names_the_check(bench: Bench) -> None:
    bench.line.broker_ok = False
    with pytest.raises(SelfTestFailed) as caught:
        bench.runner().run(Order(hints=HINTS))
    assert "broker" in caught.value.message and "broker: fake broker" in caught.value.details


def test_starting_over_revokes_and_takes_out_of_service(bench: Bench) -> None:
    bench.runner().run(Order(hints=HINTS))
    final = bench.runner().run(Order(start_over=True))
    assert final.done and bench.accounts.issued == 2 and bench.accounts.revoked == ["LMP-SN0001"]
    assert [m.event for m in final.history].count(Event.START_OVER) == 1


def test_a_half_done_device_keeps_its_id_unless_started_over(bench: Bench) -> None:
    with pytest.raises(Interrupt):
        bench.runner(Recorder(fl.Action.ISSUE_CREDENTIALS)).run(Order(hints=HINTS))
    with pytest.raises(NotCommissionable, match="part-way through commissioning as LMP-SN0001"):
        bench.runner().run(Order(device_id="LMP-777", hints=HINTS))
    final = bench.runner().run(Order(device_id="LMP-777", hints=HINTS, start_over=True))
    assert final.done and final.device_id == "LMP-777"


def test_an_unregistered_device_without_gnss_or_neighbour_asks_for_its_place(bench: Bench) -> None:
    bench.device.identity = replace(IDENTITY, gnss=None)
    with pytest.raises(PlacementMissing) as caught:
        bench.runner().run(Order())
    assert caught.value.needed == ("lat", "lon", "district", "road_class")
    assert "--lat, --lon, --district, --road-class" in caught.value.hint


def test_a_mute_device_is_no_answer_and_a_noisy_line_garbled(bench: Bench) -> None:
    bench.device.misbehaviour = Misbehaviour(mute=True)
    with pytest.raises(NoAnswer, match="no answer to Identify from loopback after 2 attempts"):
        bench.runner().run(Order())
