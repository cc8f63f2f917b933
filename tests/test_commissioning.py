"""Commissioning over a real pseudo-terminal with pyserial, against a real Mosquitto (with per-device
accounts), a real InfluxDB and a real ingest worker: from an unknown device to its first stored reading,
every error a technician can meet, and resuming an interrupted run.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from citywatch.broker_accounts import BrokerAccounts
from citywatch.cli import app
from citywatch.commission.backends import BrokerIssuer, InfluxReadings, RegistryBook
from citywatch.commission.client import DeviceClient
from citywatch.commission.display import ConsoleReporter
from citywatch.commission.link import SerialLink
from citywatch.commission.progress import ProgressStore
from citywatch.commission.runner import Commissioning, Order
from citywatch.commission.settings import CommissionSettings
from citywatch.localstack import LocalMosquitto
from devices.broker import BrokerAddress
from devices.commissioning import flow
from devices.commissioning.config import Position
from devices.commissioning.flow import Action, Event, Stage
from devices.commissioning.placement import PlacementHints
from devices.contract import DeviceRef, RejectReason
from devices.kinds import DeviceKind
from devices.registry import Registry
from firmware_sim.console_device import ConsoleDevice, Misbehaviour
from firmware_sim.serial_console import ConfigStore, SerialConsole, identity
from ingest.influx import InfluxTarget, InfluxV1
from ingest.settings import IngestSettings
from ingest.worker import IngestWorker
from tests.conftest import InfluxTarget as DbTarget
from tests.mqtt_tools import influx_rows
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

WUHAN = Position(30.5928, 114.3055)
PLACE = ["--district", "jiangan", "--road-class", "trunk", "--road", "Jiefang Avenue", "--circuit", "CIR-07"]


@dataclass
class City:
    """The services a technician's laptop talks to, and the ingest that stores what devices send."""

    tmp: Path
    broker: LocalMosquitto
    influx: DbTarget
    registry: Registry
    worker: IngestWorker
    directory_loads: list[float]
    lookups: list[str]  # devices the ingest looked up in the registry on their own

    @property
    def registry_url(self) -> str:
        return f"sqlite:///{self.tmp / 'registry.db'}"

    def env(self, **commission: object) -> dict[str, str]:
        values = {
            "COLUMNS": "250",  # rich wraps at 80 columns otherwise: messages are matched whole
            "CITYWATCH_VAR_DIR": str(self.tmp / "var"),
            "CITYWATCH_MQTT_ADMIN_URL": self.broker.admin_url,
            "CITYWATCH_INFLUX_URL": self.influx.url,
            "CITYWATCH_INFLUX_DB": self.influx.db,
            "CITYWATCH_REGISTRY_URL": self.registry_url,
            "CITYWATCH_COMMISSION_DEVICE_BROKER_URL": self.broker.url,
            "CITYWATCH_COMMISSION_RESPONSE_TIMEOUT_S": "0.3",
            "CITYWATCH_COMMISSION_INTERVAL_S": "1",
            "CITYWATCH_COMMISSION_FIRST_READING_TIMEOUT_S": "15",
            "CITYWATCH_COMMISSION_POLL_INTERVAL_S": "0.2",
            "CITYWATCH_COMMISSION_SELF_TEST_TIMEOUT_S": "5",
            "CITYWATCH_COMMISSION_BUS_ADDRESSES": "3",
            "CITYWATCH_COMMISSION_RESTART_TIMEOUT_S": "5",
        }
        values.update({f"CITYWATCH_COMMISSION_{k.upper()}": str(v) for k, v in commission.items()})
        return values

    def settings(self, **changes: object) -> CommissionSettings:
        env = self.env()
        values = {
            k.removeprefix("CITYWATCH_COMMISSION_").lower(): v for k, v in env.items() if "COMMISSION" in k
        }
        return CommissionSettings(**{**values, **changes})  # type: ignore[arg-type]

    def progress(self, serial: str) -> dict[str, object]:
        path = self.tmp / "var" / "commissioning" / f"{serial}.json"
        body: dict[str, object] = orjson.loads(path.read_bytes())
        return body

    def has_account(self, device_id: str) -> bool:
        with BrokerAccounts(self.broker.admin_url) as accounts:
            return accounts.exists(device_id)

    def readings(self, kind: str, device_id: str) -> list[list[object]]:
        query = f"SELECT seq, active_power FROM \"{kind}\" WHERE device = '{device_id}'"
        return influx_rows(self.influx.url, self.influx.db, query)


@pytest.fixture
def city(tmp_path: Path, influx_db: DbTarget) -> Iterator[City]:
    with (
        LocalMosquitto(tmp_path / "mosquitto", auth=True) as broker,
        Registry(f"sqlite:///{tmp_path / 'registry.db'}") as registry,
    ):
        loads: list[float] = []

        def directory() -> object:
            loads.append(time.monotonic())
            return registry.directory()

        def lookup(device_id: str) -> DeviceRef | None:
            lookups.append(device_id)
            return registry.device_ref(device_id)

        lookups: list[str] = []
        # A directory period of an hour: a device the ingest does not know is looked up on its own.
        settings = IngestSettings(
            client_id="ingest-commissioning",
            batch_max_age_s=0.05,
            retry_budget_s=0.5,
            directory_refresh_s=3600,
            directory_miss_refresh_s=0.2,
        )
        influx = InfluxV1(InfluxTarget(influx_db.url, influx_db.db, timeout_s=2.0))
        address = BrokerAddress.from_url(broker.service_url("ingest"))
        ingest_var = tmp_path / "ingest"
        with IngestWorker(settings, address, influx, directory, ingest_var, lookup) as worker:  # type: ignore[arg-type]
            wait_until(worker.connected.is_set, 10, "the ingest connected")
            yield City(tmp_path, broker, influx_db, registry, worker, loads, lookups)


def device(
    serial: str, *, kind: DeviceKind = DeviceKind.LAMP, address: int = 1, **misbehaviour: object
) -> ConsoleDevice:
    return ConsoleDevice(
        identity(kind, serial, WUHAN),
        address=address,
        misbehaviour=Misbehaviour(**misbehaviour),  # type: ignore[arg-type]
        reboot_s=0.2,
    )


def serve(city: City, *devices: ConsoleDevice, seed: int = 0) -> SerialConsole:
    return SerialConsole(list(devices), ConfigStore(city.tmp / "flash"), seed=seed, broker_timeout_s=2.0)


def commission(city: City, *args: str, **settings: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["commission", *args], env=city.env(**settings))
    return result.exit_code, result.output


# -- the whole way ----------------------------------------------------------------------------------------


def test_an_unknown_lamp_is_commissioned_to_its_first_stored_reading(city: City) -> None:
    wait_until(lambda: len(city.directory_loads) >= 2, 5, "the ingest's first directory refresh")
    loads = len(city.directory_loads)
    with serve(city, device("SIMLAMP01")) as line:
        code, out = commission(city, line.path, *PLACE)
        assert code == 0, out
        flash = line.devices[0].config
    assert "LMP-SIMLAMP01 is in service." in out
    asset = city.registry.get("LMP-SIMLAMP01")
    assert asset is not None and asset.in_service
    assert (asset.district, asset.road, asset.circuit, asset.lat) == (
        "jiangan",
        "Jiefang Avenue",
        "CIR-07",
        WUHAN.lat,
    )
    rows = city.readings("lamp", "LMP-SIMLAMP01")
    assert rows and rows[0][2] > 50  # stored through broker and ingest: a lamp burning at night
    assert city.has_account("LMP-SIMLAMP01")
    assert flash is not None and flash.username == "LMP-SIMLAMP01" and flash.broker_url == city.broker.url
    assert city.progress("SIMLAMP01")["stage"] == "in_service"
    # Its very first reading (sent on connect) is stored: the ingest looked the new device up at once,
    # without reloading its whole directory and without refusing anything.
    assert min(int(str(row[1])) for row in rows) == 1
    assert not city.worker.dead_letters.list(reason=RejectReason.UNREGISTERED, device="LMP-SIMLAMP01")
    assert city.lookups.count("LMP-SIMLAMP01") == 1
    assert len(city.directory_loads) == loads


def test_a_new_device_takes_road_and_circuit_from_its_registered_neighbour(city: City) -> None:
    code, out = 0, ""
    with serve(city, device("SIMLAMP02")) as line:
        code, out = commission(city, line.path, *PLACE)  # the first lamp of the street
        assert code == 0, out
    with serve(city, device("SIMLAMP03")) as line:
        code, out = commission(city, line.path, "--device-id", "LMP-NEXT")
    assert code == 0, out
    assert "as its neighbour LMP-SIMLAMP02" in out
    asset = city.registry.get("LMP-NEXT")
    assert asset is not None and (asset.road, asset.circuit, asset.in_service) == (
        "Jiefang Avenue",
        "CIR-07",
        True,
    )


def test_every_device_on_a_bus_is_commissioned_with_a_summary(city: City) -> None:
    bus = [device(f"SIMBUS-{n}", kind=DeviceKind.BIN, address=n) for n in (1, 3)]
    with serve(city, *bus) as line:
        code, out = commission(city, line.path, "--bus", "--district", "hongshan")
    assert code == 0, out
    assert "devices at bus address 1, 3" in out and "2 of 2 in service" in out
    for n in (1, 3):
        asset = city.registry.get(f"BIN-SIMBUS-{n}")
        assert asset is not None and asset.in_service
        assert city.readings("bin", f"BIN-SIMBUS-{n}") or wait_until(
            lambda n=n: city.readings("bin", f"BIN-SIMBUS-{n}"), 5, "the bin's reading"
        )


# -- the port ---------------------------------------------------------------------------------------------


def test_a_wrong_port_says_so(city: City, tmp_path: Path) -> None:
    code, out = commission(city, str(tmp_path / "ttyUSB9"))
    assert code == 1 and "there is no port" in out and "--list-ports" in out
    not_a_tty = tmp_path / "notes.txt"
    not_a_tty.write_text("hello\n")
    code, out = commission(city, str(not_a_tty))
    assert code == 1 and "is not a serial port" in out


def test_a_port_held_by_another_program_is_busy(city: City) -> None:
    with (
        serve(city, device("SIMBUSY01")) as line,
        subprocess.Popen(
            [sys.executable, "-c", _HOLD, line.path], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
        ) as holder,
    ):
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            code, out = commission(city, line.path)
        finally:
            holder.terminate()
    assert code == 1 and "is in use by another program" in out


_HOLD = """
import sys, serial
port = serial.Serial(sys.argv[1], exclusive=True)
print("held", flush=True)
sys.stdin.read()
"""


# -- the device -------------------------------------------------------------------------------------------


def test_a_device_that_never_answers(city: City) -> None:
    with serve(city, device("SIMMUTE01", mute=True)) as line:
        code, out = commission(city, line.path, attempts=2)
    assert code == 1
    assert "no answer to Identify" in out and "after 2 attempts of 0.3 s" in out
    assert "powered" in out


def test_a_noisy_line_is_recovered_from(city: City) -> None:
    with serve(city, device("SIMNOISY1", garble=0.3, drop=0.1), seed=7) as line:
        code, out = commission(city, line.path, *PLACE, attempts=8, response_timeout_s=0.15)
    assert code == 0, out
    assert "damaged frames" in out and "all recovered" in out


def test_a_line_that_only_garbles_is_reported_as_such(city: City) -> None:
    with serve(city, device("SIMNOISY2", garble=1.0)) as line:
        code, out = commission(city, line.path, attempts=2)
    assert code == 1 and "failed their checksum" in out and "baud" in out.lower()


def test_a_device_that_refuses_the_configuration(city: City) -> None:
    with serve(city, device("SIMREFUSE", refuse_write=True)) as line:
        code, out = commission(city, line.path, *PLACE)
    assert code == 1
    assert "the device refused the configuration: configuration is write-protected" in out
    assert "service switch" in out
    assert not city.has_account("LMP-SIMREFUSE")  # its credentials were revoked
    asset = city.registry.get("LMP-SIMREFUSE")
    assert asset is not None and not asset.in_service
    assert city.progress("SIMREFUSE")["stage"] == "registered"


def test_a_failed_self_test_shows_the_check_and_the_log(city: City) -> None:
    with serve(city, device("SIMOFFLINE", offline=True)) as line:
        code, out = commission(city, line.path, *PLACE)
    assert code == 1
    assert "the self-test failed: broker" in out and "network unreachable" in out
    assert city.progress("SIMOFFLINE")["stage"] == "configured"


def test_a_device_that_never_reports(city: City) -> None:
    with serve(city, device("SIMSILENT", silent=True)) as line:
        code, out = commission(city, line.path, *PLACE, first_reading_timeout_s=2)
    assert code == 1
    assert "no reading of LMP-SIMSILENT was stored within 2 s" in out
    assert "sensor bus timeout" in out  # the device's own log says why
    asset = city.registry.get("LMP-SIMSILENT")
    assert asset is not None and not asset.in_service
    assert city.progress("SIMSILENT")["stage"] == "tested"


# -- resuming ---------------------------------------------------------------------------------------------


class Interrupt(BaseException):
    """A Ctrl-C right after a step was saved."""


class StopAfter:
    def __init__(self, action: Action) -> None:
        self.action = action

    def identified(self, *_: object) -> None: ...

    def started(self, *_: object) -> None: ...

    def failed(self, *_: object) -> None: ...

    def moved(self, *_: object) -> None: ...

    def waiting(self, *_: object) -> None: ...

    def done(self, action: Action, detail: str) -> None:
        if action is self.action:
            raise Interrupt(action)


def run_once(city: City, path: str, reporter: object) -> flow.Progress:
    settings = city.settings()
    with (
        SerialLink(path) as link,
        BrokerIssuer(city.broker.admin_url) as accounts,
        InfluxV1(InfluxTarget(city.influx.url, city.influx.db)) as influx,
        contextlib.closing(RegistryBook(city.registry)) as assets,
    ):
        runner = Commissioning(
            DeviceClient(link, timeout_s=settings.response_timeout_s, attempts=settings.attempts),
            settings=settings,
            assets=assets,
            accounts=accounts,
            readings=InfluxReadings(influx),
            store=ProgressStore(city.tmp / "var" / "commissioning"),
            broker_url=city.broker.url,
            reporter=reporter,  # type: ignore[arg-type]
        )
        hints = PlacementHints(district="jiangan", road_class="trunk")
        return runner.run(Order(hints=hints))


@pytest.mark.parametrize("stop_after", [a for a in Action if a is not Action.AWAIT_READING])
def test_an_interrupted_commissioning_resumes_at_its_stage(city: City, stop_after: Action) -> None:
    serial = f"SIMRESUME{list(Action).index(stop_after)}"
    with serve(city, device(serial)) as line:
        with pytest.raises(Interrupt):
            run_once(city, line.path, StopAfter(stop_after))
        stopped_at = Stage(str(city.progress(serial)["stage"]))
        out = io.StringIO()
        final = run_once(
            city, line.path, ConsoleReporter(Console(file=out, width=200), line.path, live=False)
        )
    assert final.done
    assert f"resuming LMP-{serial} at stage {stopped_at.value}" in out.getvalue()
    asset = city.registry.get(f"LMP-{serial}")
    assert asset is not None and asset.in_service and city.readings("lamp", f"LMP-{serial}")
    events = [m.event for m in final.history]
    assert (Event.SECRET_LOST in events) is (stopped_at is Stage.CREDENTIALED)


def test_a_killed_run_after_the_credentials_resumes_with_new_ones(city: City) -> None:
    """The real thing: SIGKILL the command right after it issued the credentials, then run it again."""
    env = {**os.environ, **city.env()}
    with serve(city, device("SIMKILLED", delay_s=0.5)) as line:  # slow answers: time to kill it mid-way
        run = subprocess.Popen(
            [sys.executable, "-m", "citywatch.cli", "commission", line.path, *PLACE],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            progress_file = city.tmp / "var" / "commissioning" / "SIMKILLED.json"
            wait_until(
                lambda: progress_file.exists() and b'"credentialed"' in progress_file.read_bytes(),
                30,
                "the run to issue the credentials",
                interval=0.01,
            )
            os.kill(run.pid, signal.SIGKILL)
        finally:
            run.wait(10)
        assert city.progress("SIMKILLED")["stage"] == "credentialed"
        assert city.has_account("LMP-SIMKILLED")
        line.devices[0].misbehaviour = Misbehaviour()
        code, out = commission(city, line.path)
    assert code == 0, out
    assert "resuming LMP-SIMKILLED at stage credentialed" in out
    assert "the password was never saved" in out  # the credentials were issued again
    asset = city.registry.get("LMP-SIMKILLED")
    assert asset is not None and asset.in_service


def test_an_error_leaves_a_saved_progress_that_a_rerun_fixes(city: City) -> None:
    with serve(city, device("SIMFIXED", refuse_write=True)) as line:
        code, _ = commission(city, line.path, *PLACE)
        assert code == 1
        line.devices[0].misbehaviour = Misbehaviour()  # the technician flips the service switch
        code, out = commission(city, line.path)
    assert code == 0, out
    assert "resuming LMP-SIMFIXED at stage registered" in out
