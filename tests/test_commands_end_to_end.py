"""Commands end to end: a real Mosquitto, the simulated city obeying at one tick a second, the command desk.

The city runs at Wuhan's noon (its lamps off by the schedule), in the recent past at real speed, so a
"switch on" can only be confirmed by the lamp really drawing power after the command. Timeouts are short
(ack 3 s, verification 5 s) so the module runs in well under a minute.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from analytics.findings import Change, FindingEvent
from api.commanding.findings import RULE
from api.commanding.fleet import Fleet
from api.commanding.model import CommandRequest, CommandState, CommandView, RequestState, TargetKind
from api.commanding.routes import commands_router
from api.commanding.service import CommandDesk
from api.commanding.settings import CommandSettings
from api.commanding.sinks import FindingWriter
from citywatch.localstack import LocalInfluxDB, LocalMosquitto, free_port
from devices.broker import BrokerAddress
from devices.commands import PumpRun, Switch
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.city import City
from firmware_sim.faults import FaultInjector, parse_schedule
from firmware_sim.inventory import generate_city, write_inventory
from firmware_sim.publisher import MqttPublisher
from firmware_sim.runner import JsonlTruth, RunOptions, SystemClock, run
from firmware_sim.simulation import SimConfig, Simulation
from ingest.influx import InfluxTarget, InfluxV1
from tests.conftest import _influx_query
from tests.mqtt_tools import influx_rows
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

SETTINGS = CommandSettings(
    ack_timeout_s=3.0, ack_grace_s=0.5, verify_window_s=5.0, tick_s=0.1, default_hold_s=600.0
)


@dataclass
class Collector:
    """A finding sink that keeps what it is told."""

    events: list[FindingEvent] = field(default_factory=list)

    def on_events(self, events: Sequence[FindingEvent], now_ms: int) -> None:
        self.events.extend(events)


@dataclass
class Scene:
    broker: LocalMosquitto
    city: City
    fleet: Fleet
    desk: CommandDesk
    findings: Collector
    influx: InfluxTarget
    db_url: str
    truth: Path
    lamps: dict[str, str]  # role -> lamp id
    circuit: str  # a circuit with one deaf lamp among healthy ones
    station: str


def wuhan_noon_before(now: float) -> float:
    """The latest 04:00 UTC (noon in Wuhan) before ``now``: lamps off by their schedule for hours."""
    day = 86_400
    noon = math.floor(now / day) * day + 4 * 3600
    return noon if noon <= now else noon - day


def lamps_by_circuit(city: City) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lamp, circuit in zip(city.lamps.ids.tolist(), city.lamps.circuit.tolist(), strict=True):
        out.setdefault(city.circuits[circuit], []).append(lamp)
    return out


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, influxdb_server: LocalInfluxDB) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("commands")
    city = generate_city(120, seed=5)
    inventory = root / "city.csv"
    write_inventory(city, inventory)
    registry_url = f"sqlite:///{root / 'registry.db'}"
    with Registry(registry_url) as registry:
        assert import_file(registry, inventory).rejected == 0
        fleet = Fleet(registry.iter_assets())
    circuits = sorted(lamps_by_circuit(city).items(), key=lambda kv: len(kv[1]))
    (small, small_lamps), (_, other) = circuits[0], circuits[-1]
    lamps = {"on": other[0], "ignoring": other[1], "deaf": other[2], "http": other[3], "restart": other[4]}
    lamps["deaf_in_circuit"] = small_lamps[0]
    start = wuhan_noon_before(time.time())
    schedule = [
        {"fault": "ignores_commands", "target": lamps["ignoring"], "start": start - 60, "duration_s": 86_400},
        {"fault": "command_deaf", "target": lamps["deaf"], "start": start - 60, "duration_s": 86_400},
        {
            "fault": "command_deaf",
            "target": lamps["deaf_in_circuit"],
            "start": start - 60,
            "duration_s": 86_400,
        },
    ]
    faults = FaultInjector(city, seed=3, schedule=parse_schedule(orjson.dumps(schedule).decode()))
    sim = Simulation(city, seed=3, start=start, config=SimConfig(interval_s=1.0), faults=faults)
    influx = InfluxTarget(influxdb_server.url, "commands_e2e")
    _influx_query(influx.url, f'CREATE DATABASE "{influx.db}"')
    truth = root / "truth.jsonl"
    stop = threading.Event()
    with LocalMosquitto(root / "mosquitto") as broker:
        address = BrokerAddress.from_url(broker.url)
        with (
            MqttPublisher(address, client_id="sim-commands", listen=True) as publisher,
            JsonlTruth(truth) as log,
        ):
            runner = threading.Thread(
                target=run,
                args=(sim, publisher, RunOptions(speed=1.0)),
                kwargs={"wall": SystemClock(stop), "truth": log, "commands": publisher},
                daemon=True,
            )
            runner.start()
            findings = Collector()
            writer = FindingWriter(InfluxV1(influx))
            db_url = f"sqlite:///{root / 'commands.db'}"
            with CommandDesk(SETTINGS, address, fleet, db_url, findings=[findings, writer]) as desk:
                wait_until(desk.connected.is_set, 10, "the desk connected")
                wait_until(lambda: sim.tick_index > 2, 10, "the simulator ticking")
                yield Scene(
                    broker,
                    city,
                    fleet,
                    desk,
                    findings,
                    influx,
                    db_url,
                    truth,
                    lamps,
                    small,
                    str(city.stations.ids[0]),
                )
            stop.set()
            runner.join(10)
            writer.close()
    _influx_query(influx.url, f'DROP DATABASE "{influx.db}"')


def settled(desk: CommandDesk, command_id: str, timeout: float = 15.0) -> CommandView:
    """The command once no device command is open any more."""

    def done() -> CommandView | None:
        view = desk.get(command_id)
        return view if view.state not in (RequestState.PENDING, RequestState.DELIVERED) else None

    return wait_until(done, timeout, f"command {command_id} to settle", interval=0.05)


def test_switch_on_at_noon_is_delivered_then_confirmed_by_the_lamps_power(scene: Scene) -> None:
    lamp = scene.lamps["on"]
    view = scene.desk.submit(CommandRequest(TargetKind.LAMP, lamp, Switch(True)), "operator-ann")
    assert view.state is RequestState.PENDING and view.actor == "operator-ann"
    done = settled(scene.desk, view.id)
    assert done.state is RequestState.CONFIRMED
    (command,) = done.devices
    assert command.delivered_ms is not None and command.effective_ts_ms is not None
    rated = scene.fleet.get(lamp).rated  # type: ignore[union-attr]
    assert command.observed >= 0.3 * rated, command.detail
    assert "telemetry shows it" in command.detail


def test_a_lamp_that_ignores_commands_is_not_effective_and_raises_a_finding(scene: Scene) -> None:
    lamp = scene.lamps["ignoring"]
    view = scene.desk.submit(CommandRequest(TargetKind.LAMP, lamp, Switch(True)), "operator-ann")
    done = settled(scene.desk, view.id)
    assert done.state is RequestState.NOT_EFFECTIVE
    (command,) = done.devices
    assert command.delivered_ms is not None  # it did acknowledge
    assert command.observed < 2.0 and "does not show it" in command.detail
    opened = wait_until(
        lambda: [e for e in scene.findings.events if e.finding.subject == lamp and e.change is Change.OPENED],
        5,
        "the finding",
    )
    assert opened[0].finding.rule == RULE and opened[0].finding.subject_kind == "lamp"
    stored = wait_until(
        lambda: influx_rows(
            scene.influx.url,
            scene.influx.db,
            f"SELECT state, explanation FROM finding WHERE rule = '{RULE}' AND subject = '{lamp}'",
        ),
        10,
        "the finding in InfluxDB",
    )
    assert stored[0][1] == "open" and "switch on" in stored[0][2]
    truth = [orjson.loads(line) for line in scene.truth.read_bytes().splitlines()]
    assert {"fault": "ignores_commands", "target": lamp} in [
        {k: t[k] for k in ("fault", "target")} for t in truth
    ]


def test_a_deaf_lamp_times_out(scene: Scene) -> None:
    view = scene.desk.submit(
        CommandRequest(TargetKind.LAMP, scene.lamps["deaf"], Switch(True)), "operator-ann"
    )
    done = settled(scene.desk, view.id)
    assert done.state is RequestState.TIMED_OUT
    (command,) = done.devices
    assert command.delivered_ms is None and "no acknowledgement" in command.detail


def test_a_pump_stops_and_starts_confirmed_by_its_current(scene: Scene) -> None:
    hold = int(time.time() * 1000) + 600_000
    rated = scene.fleet.get(scene.station).rated  # type: ignore[union-attr]
    stop = scene.desk.submit(
        CommandRequest(TargetKind.PUMP_STATION, scene.station, PumpRun(1, False, hold)), "operator-bo"
    )
    assert settled(scene.desk, stop.id).state is RequestState.CONFIRMED
    start = scene.desk.submit(
        CommandRequest(TargetKind.PUMP_STATION, scene.station, PumpRun(1, True, hold)), "operator-bo"
    )
    done = settled(scene.desk, start.id)
    assert done.state is RequestState.CONFIRMED
    (command,) = done.devices
    assert command.observed >= 0.3 * rated and "pump 1" in command.detail


def test_a_circuit_command_aggregates_its_lamps(scene: Scene) -> None:
    members = lamps_by_circuit(scene.city)[scene.circuit]
    view = scene.desk.submit(CommandRequest(TargetKind.CIRCUIT, scene.circuit, Switch(True)), "operator-ann")
    assert view.device_count == len(members) > 2
    done = settled(scene.desk, view.id)
    assert done.state is RequestState.PARTIAL  # one deaf lamp among them
    assert done.counts == {CommandState.CONFIRMED: len(members) - 1, CommandState.TIMED_OUT: 1}
    by_device = {c.device: c.state for c in done.devices}
    assert by_device[scene.lamps["deaf_in_circuit"]] is CommandState.TIMED_OUT
    listed = next(v for v in scene.desk.list(20) if v.id == view.id)
    assert listed.state is RequestState.PARTIAL and listed.device_count == len(members)


@contextmanager
def serving(app: FastAPI) -> Iterator[httpx.Client]:
    """``app`` served by uvicorn on a free loopback port, and a client for it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, "uvicorn started")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_http_route_accepts_with_202_and_the_state_can_be_polled(scene: Scene) -> None:
    app = FastAPI()
    app.include_router(commands_router(desk=lambda: scene.desk, actor=lambda: "operator-cy"))
    lamp = scene.lamps["http"]
    with serving(app) as client:
        body = {"target": {"kind": "lamp", "id": lamp}, "action": "dim", "params": {"level": 40}}
        response = client.post("/api/v1/commands", json=body)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["state"] == "pending" and accepted["actor"] == "operator-cy"
        assert accepted["devices"][0]["device"] == lamp

        def confirmed() -> dict[str, object] | None:
            got = client.get(f"/api/v1/commands/{accepted['id']}").json()
            return got if got["state"] not in ("pending", "delivered") else None

        final = wait_until(confirmed, 15, "the dim command to settle", interval=0.05)
        assert final["state"] == "confirmed" and final["counts"] == {"confirmed": 1}
        assert final["params"] == {"level": 40, "on": None, "pump": None, "run": None, "until": None}
        listed = client.get("/api/v1/commands", params={"state": "confirmed", "limit": 100}).json()
        assert accepted["id"] in [c["id"] for c in listed]
        unknown = {"target": {"kind": "lamp", "id": "LMP-999999"}, "action": "switch", "params": {"on": True}}
        assert client.post("/api/v1/commands", json=unknown).status_code == 404
        wrong = {"target": {"kind": "lamp", "id": lamp}, "action": "pump", "params": {"pump": 1, "run": True}}
        refused = client.post("/api/v1/commands", json=wrong)
        assert refused.status_code == 422 and "lamp orders" in refused.json()["detail"]
        assert client.post("/api/v1/commands", json={**body, "params": {"level": 140}}).status_code == 422
        assert client.get("/api/v1/commands/no-such-command").status_code == 404
        schema = client.get("/openapi.json").json()
        assert "202" in schema["paths"]["/api/v1/commands"]["post"]["responses"]


def test_commands_survive_a_restart_of_the_desk(scene: Scene, tmp_path: Path) -> None:
    address = BrokerAddress.from_url(scene.broker.url)
    db_url = f"sqlite:///{tmp_path / 'restart.db'}"
    settings = SETTINGS.model_copy(update={"client_id": "desk-before"})
    with CommandDesk(settings, address, scene.fleet, db_url) as before:
        wait_until(before.connected.is_set, 10, "the first desk connected")
        done = before.submit(CommandRequest(TargetKind.LAMP, scene.lamps["restart"], Switch(True)), "ann")
        assert settled(before, done.id).state is RequestState.CONFIRMED
        left_open = before.submit(CommandRequest(TargetKind.LAMP, scene.lamps["deaf"], Switch(False)), "ann")
    after_settings = SETTINGS.model_copy(update={"client_id": "desk-after"})
    with CommandDesk(after_settings, address, scene.fleet, db_url) as after:
        assert after.get(done.id).state is RequestState.CONFIRMED
        assert after.get(left_open.id).state is RequestState.PENDING
        assert settled(after, left_open.id).state is RequestState.TIMED_OUT  # tracked on after the restart
        assert [v.id for v in after.list(10)] == [left_open.id, done.id]


def test_an_operators_switch_on_through_the_api_is_confirmed_and_audited(
    scene: Scene, tmp_path: Path
) -> None:
    """The real API app with the desk wired in as `citywatch run` and `citywatch api run` do: a viewer may
    not command, an operator's "switch on" at noon is confirmed by the lamp's power, and the audit log
    says who did it."""
    from api.app import create_app
    from api.security import caller_name
    from tests.api_world import build_world, drop_influx

    world = build_world(tmp_path / "api", scene.influx.url)
    router = commands_router(desk=lambda: scene.desk, actor=caller_name, reader=caller_name)
    lamp = sorted(lamps_by_circuit(scene.city).values(), key=len)[-1][5]
    body = {"target": {"kind": "lamp", "id": lamp}, "action": "switch", "params": {"on": True}}
    try:
        with serving(create_app(world.deps, extra_routers=[router])) as client:
            refused = client.post("/api/v1/commands", json=body, headers=world.auth("vera"))
            assert refused.status_code == 403, refused.text
            accepted = client.post("/api/v1/commands", json=body, headers=world.auth("otto"))
            assert accepted.status_code == 202, accepted.text
            command = accepted.json()["id"]

            def settled_view() -> dict[str, object] | None:
                got = client.get(f"/api/v1/commands/{command}", headers=world.auth("vera")).json()
                return got if got["state"] not in ("pending", "delivered") else None

            final = wait_until(settled_view, 15, "the switch-on to settle", interval=0.05)
            assert final["state"] == "confirmed" and final["actor"] == "otto"
            audit = client.get("/api/v1/audit", headers=world.auth("ada")).json()
            posts = [
                e for e in audit["entries"] if e["route"] == "/api/v1/commands" and e["method"] == "POST"
            ]
            assert {(e["who"], e["outcome"]) for e in posts} == {("otto", "ok"), ("vera", "denied")}
    finally:
        drop_influx(world.influx_url, world.db)
