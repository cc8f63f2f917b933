"""An injected fault reaches the crew's inbox, the crew acknowledges and resolves it from the command line,
and the monthly bulletin shows it: simulator → MQTT → ingest + analytics → alert store → SMTP sink.

Real Mosquitto, InfluxDB and SMTP server (aiosmtpd) on loopback; the alert store is a SQLite file.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from analytics.alerts.settings import AlertSettings
from analytics.alerts.store import AlertStore
from analytics.settings import AnalyticsSettings
from citywatch.cli import app
from citywatch.demo_contacts import ensure_demo_contacts
from citywatch.localstack import LocalMosquitto
from citywatch.mailsink import LocalMailSink, text_of
from citywatch.services import build_analytics_worker
from citywatch.settings import CommonSettings
from devices.broker import BrokerAddress
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.faults import FaultEvent, FaultInjector, FaultType
from firmware_sim.inventory import generate_city, write_inventory
from firmware_sim.publisher import MqttPublisher
from firmware_sim.runner import RunOptions, run
from firmware_sim.simulation import Simulation
from ingest.influx import InfluxTarget as IngestTarget
from ingest.influx import InfluxV1
from ingest.settings import IngestSettings
from ingest.worker import IngestWorker
from tests.conftest import InfluxTarget
from tests.test_analytics_pipeline import night_start
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TICK_S = 60
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_lamp_failure_reaches_the_crew_is_resolved_from_the_cli_and_shows_in_the_bulletin(
    mosquitto: LocalMosquitto, influx_db: InfluxTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    city = generate_city(300, seed=5)
    inventory = tmp_path / "city.csv"
    write_inventory(city, inventory)
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    with Registry(registry_url) as registry:
        assert import_file(registry, inventory).rejected == 0
        directory = registry.directory()
    lamp = str(city.lamps.ids[7])
    crew = city.crews[int(city.lamps.crew[7])]
    start = night_start()
    plan = [FaultEvent(FaultType.LAMP_FAILURE, lamp, "", start + 5 * TICK_S, start + 6 * 3600)]
    sim = Simulation(city, seed=2, start=start, faults=FaultInjector(city, seed=1, schedule=plan))

    alerts_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    env = {
        "CITYWATCH_VAR_DIR": str(tmp_path / "var"),
        "CITYWATCH_REGISTRY_URL": registry_url,
        "CITYWATCH_INFLUX_URL": influx_db.url,
        "CITYWATCH_INFLUX_DB": influx_db.db,
        "CITYWATCH_ALERTS_DB_URL": alerts_url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    common = CommonSettings()
    ingest = IngestWorker(
        IngestSettings(client_id="ingest-alerts", batch_max_age_s=0.05),
        BrokerAddress.from_url(mosquitto.url),
        InfluxV1(IngestTarget(influx_db.url, influx_db.db)),
        lambda: directory,
        tmp_path / "var",
    )
    with LocalMailSink(tmp_path / "mail") as mail, ingest:
        contacts = ensure_demo_contacts(tmp_path / "contacts.toml", registry_url, mail)
        alert_settings = AlertSettings(db_url=alerts_url, contacts_file=contacts)
        analytics = build_analytics_worker(
            common,
            AnalyticsSettings(client_id="analytics-alerts", clock="data", tick_s=0.2),
            mosquitto.url,
            influx_db.url,
            alert_settings,
        )
        with analytics, MqttPublisher(BrokerAddress.from_url(mosquitto.url)) as publisher:
            wait_until(analytics.restored.is_set, 60, "analytics ready")
            run(sim, publisher, RunOptions(speed=math.inf, duration_s=30 * TICK_S, status=False))

            def crew_mail() -> list[str]:
                texts = [text_of(m) for m in mail.messages() if f"{crew}@crews" in str(m.get("To", ""))]
                return [t for t in texts if lamp in t]

            (message,) = wait_until(crew_mail, 90, f"the mail to {crew} about {lamp}")
        assert "lamp_failure" in message or "Lamp failure" in message
        assert analytics.error is None

    with AlertStore(alerts_url) as store:
        (alert,) = [a for a in store.list(limit=1000) if a.subject == lamp]
        assert alert.rule == "lamp_failure" and alert.crew == crew and alert.state.value == "open"

    fault_day = dt.datetime.fromtimestamp(start, SHANGHAI).date()
    next_month = (fault_day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    runner = CliRunner()

    # The bulletin lists the fault as overdue (its 24 h deadline passed days ago) ...
    out = tmp_path / "bulletin-open"
    result = runner.invoke(app, ["report", "monthly", "--end", next_month.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "overdue.csv").open(encoding="utf-8-sig") as f:
        overdue = list(csv.DictReader(f))
    assert lamp in [row["subject"] for row in overdue]

    # ... the crew acknowledges and resolves it from the command line ...
    who = f"{crew}-on-call"
    result = runner.invoke(app, ["alerts", "ack", alert.id, "--who", who, "--note", "on my way"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["alerts", "resolve", alert.id, "--who", who, "--note", "LED module replaced"]
    )
    assert result.exit_code == 0, result.output
    with AlertStore(alerts_url) as store:
        assert store.get(alert.id).state.value == "resolved"
        history = [(t.event, t.actor, t.note) for t in store.history(alert.id)]
    assert ("acknowledge", who, "on my way") in history
    assert ("resolve", who, "LED module replaced") in history

    # ... and the bulletin counts it as a case due in the month, fixed late.
    out = tmp_path / "bulletin-resolved"
    result = runner.invoke(app, ["report", "monthly", "--end", next_month.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "closure_crew.csv").open(encoding="utf-8-sig") as f:
        crews = {row["crew"]: row for row in csv.DictReader(f)}
    assert (crews[crew]["due"], crews[crew]["on_time"]) == ("1", "0")
    with (out / "overdue.csv").open(encoding="utf-8-sig") as f:
        assert lamp not in [row["subject"] for row in csv.DictReader(f)]
