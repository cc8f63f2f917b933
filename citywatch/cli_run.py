"""`citywatch run`: the whole pipeline on this machine, with a simulated city.

Starts what is not configured (a local Mosquitto and InfluxDB under ``var/``), makes sure a city exists
in the asset registry (generating a simulated one the first time), runs the ingest worker, the analytics
worker and the simulator, prints where to look and a one-line live status (with the city's lighting rate
and open findings), and stops everything on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from analytics.alerts.settings import AlertSettings
from analytics.settings import AnalyticsSettings
from api.commanding.settings import CommandSettings
from api.settings import ApiSettings
from citywatch.broker_acl import SERVICES
from citywatch.cli_api import start_dev_api
from citywatch.demo_contacts import ensure_demo_contacts
from citywatch.localstack import LocalInfluxDB, LocalMosquitto, free_port
from citywatch.mailsink import LocalMailSink
from citywatch.services import build_analytics_worker, build_command_desk, build_ingest_worker
from citywatch.settings import CommonSettings
from citywatch.simulated_city import SimulatedCity, ensure_city
from citywatch.status import StatusLine
from devices.broker import BrokerAddress
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)
console = Console(highlight=False)


@dataclass(frozen=True, slots=True)
class Endpoints:
    mqtt_url: str  # the broker as configured; our own broker's without credentials
    influx_url: str
    # Our own broker's per-service accounts (ingest, analytics, api, sim -> URL with credentials) and
    # the file holding them; empty and None with a configured broker, which every service shares.
    mqtt_accounts: Mapping[str, str] = field(default_factory=dict)
    mqtt_credentials: Path | None = None

    def mqtt_url_for(self, service: str) -> str:
        """The URL ``service`` connects with: its own account on our broker, else the configured one."""
        return self.mqtt_accounts.get(service, self.mqtt_url)


@contextlib.contextmanager
def _services(common: CommonSettings, stack: ExitStack) -> Iterator[Endpoints]:
    mqtt_url, influx_url = common.mqtt_url, common.influx_url
    accounts: dict[str, str] = {}
    credentials = None
    if mqtt_url is None:
        broker = LocalMosquitto(common.var_dir / "mosquitto", common.local_mqtt_port, auth=True)
        stack.enter_context(broker)
        mqtt_url = broker.url
        accounts = {service: broker.service_url(service) for service in SERVICES}
        credentials = broker.credentials_path
    if influx_url is None:
        influx = LocalInfluxDB(common.var_dir / "influxdb", common.local_influx_port)
        stack.enter_context(influx)
        influx_url = influx.url
    yield Endpoints(mqtt_url, influx_url, accounts, credentials)


def run(
    lamps: int = typer.Option(2000, min=1, help="Lamps in the simulated city, when a new one is generated."),
    seed: int = typer.Option(1, help="Seed of the simulated city and its readings."),
    speed: float = typer.Option(
        1.0, min=0.01, help="Simulated seconds per wall second (until it catches up)."
    ),
    start: str | None = typer.Option(
        None, help="Simulated start, ISO with offset, e.g. 2026-11-16T00:00:00Z; default now."
    ),
    faults: str = typer.Option("random", help="Fault injection: random, none, or a schedule file."),
    simulate: bool = typer.Option(True, help="Run the simulated city (off: ingest real devices only)."),
    duration: float | None = typer.Option(
        None, min=1, help="Stop after this many seconds (default: Ctrl-C)."
    ),
) -> None:
    """Run broker, database, ingest, analytics and the simulated city on this machine."""
    common = CommonSettings()
    ingest_settings = IngestSettings()
    common.var_dir.mkdir(parents=True, exist_ok=True)
    if ingest_settings.metrics_port is None:
        ingest_settings = ingest_settings.model_copy(update={"metrics_port": free_port()})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ExitStack() as stack, _services(common, stack) as endpoints:
        inventory = ensure_city(common, lamps, seed, console) if simulate else None
        worker = build_ingest_worker(
            common, ingest_settings, endpoints.mqtt_url_for("ingest"), endpoints.influx_url
        )
        stack.enter_context(worker)
        analytics_settings = AnalyticsSettings()
        if simulate and (speed != 1.0 or start is not None):
            # The simulated past replays faster than real time: judge it by its own clock.
            analytics_settings = analytics_settings.model_copy(update={"clock": "data"})
        alert_settings = AlertSettings()
        mail: LocalMailSink | None = None
        if alert_settings.contacts_file is None:
            # The demo: crews read their mail from a local sink under var/mail.
            mail = stack.enter_context(LocalMailSink(common.var_dir / "mail"))
            contacts = ensure_demo_contacts(
                common.var_dir / "contacts.toml", common.registry_sqlalchemy_url(), mail
            )
            alert_settings = alert_settings.model_copy(update={"contacts_file": contacts})
        analytics = build_analytics_worker(
            common,
            analytics_settings,
            endpoints.mqtt_url_for("analytics"),
            endpoints.influx_url,
            alert_settings,
        )
        stack.enter_context(analytics)
        # Operators' commands to the simulated devices; a not-effective one raises a finding and an alert.
        desk = stack.enter_context(
            build_command_desk(
                common,
                CommandSettings(),
                endpoints.mqtt_url_for("api"),
                endpoints.influx_url,
                analytics.listener,
            )
        )
        api = start_dev_api(common, ApiSettings(), alert_settings, endpoints.influx_url, stack, desk)
        sim: SimulatedCity | None = None
        if inventory is not None:
            truth = common.var_dir / "truth.jsonl"
            sim = SimulatedCity(
                inventory,
                endpoints.mqtt_url_for("sim"),
                seed=seed,
                speed=speed,
                start=start,
                faults=faults,
                truth=truth,
            )
            stack.callback(sim.stop)
            sim.start()
        _print_where_to_look(common, endpoints, ingest_settings, sim, mail)
        api.print_where(console)
        status = StatusLine(worker, sim, analytics)
        deadline = time.monotonic() + duration if duration else None
        with contextlib.suppress(KeyboardInterrupt):
            status.run(stop, deadline, live=sys.stdout.isatty())
        console.print("stopping ...")
    console.print("stopped")


def _print_where_to_look(
    common: CommonSettings,
    ep: Endpoints,
    ingest: IngestSettings,
    sim: SimulatedCity | None,
    mail: LocalMailSink | None,
) -> None:
    influx_host_port = ep.influx_url.split("://", 1)[-1].rstrip("/")
    host, _, port = influx_host_port.partition(":")
    console.print("[bold]CityWatch is running[/bold] (Ctrl-C stops everything)")
    console.print(f"  MQTT broker   {BrokerAddress.from_url(ep.mqtt_url)}")  # never its password
    if ep.mqtt_credentials is not None:
        console.print(f"  broker logins {ep.mqtt_credentials} (admin and service accounts; mode 0600)")
    console.print(f"  InfluxDB      {ep.influx_url}  database {common.influx_db}")
    query = "SELECT count(seq) FROM lamp GROUP BY district"
    influx_cli = f"influx -host {host} -port {port or 8086} -database {common.influx_db}"
    console.print(f"                {influx_cli} -execute '{query}'")
    console.print(f"  metrics       http://{ingest.metrics_host}:{ingest.metrics_port}/metrics")
    console.print(f"  registry      {common.registry_sqlalchemy_url()}")
    console.print("  rejects       citywatch ingest rejects")
    findings = "SELECT * FROM finding ORDER BY time DESC LIMIT 20"
    console.print(f"  findings      {influx_cli} -execute '{findings}'")
    rates = "SELECT last(lighting_rate) FROM kpi WHERE scope = 'district' GROUP BY scope_id"
    console.print(f'  rates         {influx_cli} -execute "{rates}"')
    console.print("  alerts        citywatch alerts list | show ID | ack ID --who NAME | resolve ID ...")
    console.print("  bulletin      citywatch report monthly | weekly")
    console.print("  commission    citywatch sim serial (prints a pty), then citywatch commission /dev/pts/N")
    console.print("  dashboards    citywatch dashboards push --grafana-url URL --token TOKEN")
    if mail is not None:
        console.print(f"  crews' mail   {mail.directory} (Maildir; SMTP sink on 127.0.0.1:{mail.port})")
    if sim is not None:
        console.print(f"  fault truth   {sim.truth_path}")
        console.print(f"  city          {sim.inventory}")
