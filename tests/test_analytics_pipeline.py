"""Simulator with injected faults → MQTT → ingest → InfluxDB, and the analytics worker beside it → findings.

A real Mosquitto and a real InfluxDB (the fixtures). The simulated night is replayed as fast as it goes;
the analytics worker judges it by the readings' own clock (``clock="data"``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.assembly import build_assembly
from analytics.settings import AnalyticsSettings
from analytics.topology import Topology, build_topology
from analytics.worker import AnalyticsWorker
from citywatch.localstack import LocalMosquitto
from devices.broker import BrokerAddress
from devices.contract import DeviceRef
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.city import City
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
from tests.mqtt_tools import influx_rows
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TICK_S = 60


def night_start() -> float:
    """22:00 in Wuhan (14:00 UTC) three days ago: lamps are due on for hours."""
    day = datetime.now(UTC).date() - timedelta(days=3)
    return datetime(day.year, day.month, day.day, 14, 0, tzinfo=UTC).timestamp()


def registered(city: City, tmp_path: Path) -> tuple[Topology, dict[str, DeviceRef]]:
    inventory = tmp_path / "city.csv"
    write_inventory(city, inventory)
    with Registry(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        assert import_file(registry, inventory).rejected == 0
        with contextlib.closing(registry.iter_assets()) as assets:
            topology = build_topology(assets)
        return topology, registry.directory()


def findings(influx: InfluxTarget, rule: str) -> list[dict[str, object]]:
    rows = influx_rows(
        influx.url,
        influx.db,
        f'SELECT "subject", "change", "state", "children_count", "explanation" FROM "finding" '
        f"WHERE \"rule\" = '{rule}'",
    )
    return [
        {"time": r[0], "subject": r[1], "change": r[2], "state": r[3], "children": r[4], "explanation": r[5]}
        for r in rows
    ]


@contextlib.contextmanager
def analytics_worker(
    name: str, topology: Topology, directory: dict[str, DeviceRef], broker: str, influx: InfluxTarget
) -> Iterator[AnalyticsWorker]:
    settings = AnalyticsSettings(client_id=name, clock="data", tick_s=0.2, kpi_every_s=60)
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
        wait_until(worker.restored.is_set, 60, f"{name} restored its state")
        yield worker
    assert worker.error is None


def test_injected_faults_become_one_finding_each_in_influxdb_and_survive_a_restart(
    mosquitto: LocalMosquitto, influx_db: InfluxTarget, tmp_path: Path
) -> None:
    city = generate_city(300, seed=5)
    topology, directory = registered(city, tmp_path)
    start = night_start()
    lamps = city.lamps
    stolen = city.circuits[int(lamps.circuit[-1])]
    failing = str(
        next(i for i, c in zip(lamps.ids, lamps.circuit, strict=True) if city.circuits[c] != stolen)
    )
    on_stolen = sorted(
        str(i) for i, c in zip(lamps.ids, lamps.circuit, strict=True) if city.circuits[c] == stolen
    )
    plan = [
        FaultEvent(FaultType.LAMP_FAILURE, failing, "", start + 10 * TICK_S, start + 3 * 3600),
        FaultEvent(
            FaultType.CABLE_THEFT, stolen, "", start + 15 * TICK_S, start + 3 * 3600, mode="zero_power"
        ),
    ]
    sim = Simulation(city, seed=2, start=start, faults=FaultInjector(city, seed=1, schedule=plan))
    ingest = IngestWorker(
        IngestSettings(client_id="ingest-a", batch_max_age_s=0.05),
        BrokerAddress.from_url(mosquitto.url),
        InfluxV1(IngestTarget(influx_db.url, influx_db.db)),
        lambda: directory,
        tmp_path / "var",
    )
    options = RunOptions(speed=math.inf, duration_s=40 * TICK_S, status=False)
    with ingest, MqttPublisher(BrokerAddress.from_url(mosquitto.url)) as publisher:
        wait_until(ingest.connected.is_set, 10, "ingest connected")
        with analytics_worker("analytics-a", topology, directory, mosquitto.url, influx_db) as first:
            run(sim, publisher, options)
            wait_until(
                lambda: len(findings(influx_db, "circuit_outage")) >= 1, 60, "the circuit outage stored"
            )
            wait_until(lambda: len(findings(influx_db, "lamp_failure")) >= 1, 60, "the lamp failure stored")
            snapshot = first.snapshot()
        # The restarted worker replays the stored night and carries on with the next 30 minutes.
        with analytics_worker("analytics-b", topology, directory, mosquitto.url, influx_db) as second:
            # duration_s counts from the simulation's start: minutes 40 to 70
            run(sim, publisher, RunOptions(speed=math.inf, duration_s=70 * TICK_S, status=False))
            wait_until(
                lambda: second.snapshot().data_time_ms >= (start + 68 * TICK_S) * 1000, 60, "caught up"
            )
            after = second.snapshot()

    outage = findings(influx_db, "circuit_outage")
    assert [(f["subject"], f["change"]) for f in outage] == [(stolen, "opened")]  # one incident, once
    assert outage[0]["children"] == len(on_stolen)
    failure = findings(influx_db, "lamp_failure")
    assert [(f["subject"], f["change"]) for f in failure] == [(failing, "opened")]  # not again after restart
    assert "W" in str(failure[0]["explanation"])
    # no lamp of the stolen circuit got a lamp finding of its own
    for rule in ("lamp_failure", "offline_lamp", "under_voltage"):
        assert not {f["subject"] for f in findings(influx_db, rule)} & set(on_stolen)
    assert snapshot.open_findings.get("circuit_outage") == 1
    assert after.open_findings.get("lamp_failure") == 1 and after.open_findings.get("circuit_outage") == 1
    # the lighting rate the operator sees counts the dark lamps
    in_service = {str(i) for i, ok in zip(lamps.ids, lamps.in_service, strict=True) if ok}
    dark = {failing, *on_stolen} & in_service
    assert after.lighting_rate == pytest.approx((len(in_service) - len(dark)) / len(in_service), abs=1e-9)
    city_rate = influx_rows(
        influx_db.url, influx_db.db, 'SELECT last("lighting_rate") FROM "kpi" WHERE "scope" = \'city\''
    )
    assert city_rate and city_rate[0][1] == pytest.approx(after.lighting_rate, abs=1e-9)
