"""Every query of every dashboard, its variables filled in, runs against a real InfluxDB 1.x loaded with a
simulated city, and returns rows of the shape its panel draws: no panel is silently empty.

The load (once per module, ~20 s): a simulated day, 05:00 to 20:00 local two days ago, devices reporting
every two minutes, with a fault of each kind the screens show. Each tick's MQTT payloads go through the
contract decoder and the ingest's line encoding into InfluxDB (with the ingest's self-metrics and some
rejected readings), and through a real analytics worker (queue, engine, store: findings, KPIs,
completeness, assets, self-metrics, data clock) whose alert service writes alert events and the closure
series. No broker: the worker's queue is fed directly, and ``step()`` is called every other tick.
"""

from __future__ import annotations

import contextlib
import math
import types
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.alerts.model import Alert, AlertState, Severity
from analytics.alerts.policy import AlertPolicy, PolicyConfig
from analytics.alerts.routing import Contacts, TopologyLocator
from analytics.alerts.service import AlertService, closure_tables
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from analytics.alerts.store import AlertStore
from analytics.assembly import build_assembly
from analytics.bridge_rules import BridgeRules
from analytics.settings import AnalyticsSettings
from analytics.topology import Topology, build_topology
from analytics.worker import AnalyticsWorker
from citywatch.localstack import LocalInfluxDB
from dashboards.build import build_all
from dashboards.structure import DashboardQuery, interpolate, output_columns, queries, variable_names
from devices.broker import BrokerAddress
from devices.contract import DeviceRef, decode
from devices.kinds import DeviceKind
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.city import City
from firmware_sim.faults import FaultEvent, FaultInjector, FaultType
from firmware_sim.inventory import generate_city, write_inventory
from firmware_sim.payloads import PayloadBuilder
from firmware_sim.simulation import SimConfig, Simulation
from ingest.influx import InfluxTarget, InfluxV1
from ingest.lineproto import reading_line
from ingest.metrics import IngestMetrics
from tests.conftest import _influx_query

pytestmark = pytest.mark.integration

HOUR = 3600.0
TICK_S = 120  # devices report every 2 min: half the readings of the usual minute, same screens
KPI_EVERY_S = 300
HOURS = 15  # 05:00 to 20:00 local: morning bin rounds, the day, switch-on and the first night check


@dataclass(frozen=True, slots=True)
class LoadedCity:
    influx: InfluxV1
    start_ms: int
    end_ms: int
    choices: Mapping[str, Mapping[str, Sequence[str]]]  # dashboard uid: variable: the values to pick
    failing_lamp_at: tuple[float, float]  # (lat, lon) in the registry
    in_service: int  # devices in service


def _registered(city: City, workdir: Path) -> tuple[Topology, dict[str, DeviceRef]]:
    inventory = workdir / "city.csv"
    write_inventory(city, inventory)
    with Registry(f"sqlite:///{workdir / 'registry.db'}") as registry:
        assert import_file(registry, inventory).rejected == 0
        with contextlib.closing(registry.iter_assets()) as assets:
            topology = build_topology(assets)
        return topology, registry.directory()


def _start() -> float:
    """05:00 in Wuhan (21:00 UTC the day before), two days ago: the whole day lies in the past."""
    day = datetime.now(UTC).date() - timedelta(days=2)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() - 3 * HOUR


def _plan(city: City, start: float) -> tuple[list[FaultEvent], dict[str, str]]:
    """A fault of each kind the screens show, and the subjects the drill-down picks."""
    lamps = city.lamps
    circuit_of = {str(i): city.circuits[c] for i, c in zip(lamps.ids, lamps.circuit, strict=True)}
    district_of = {str(i): city.districts[d] for i, d in zip(lamps.ids, lamps.district, strict=True)}
    failing = str(lamps.ids[7])
    burning = next(i for i in circuit_of if i != failing and district_of[i] == district_of[failing])
    stolen = next(c for c in city.circuits if c != circuit_of[failing])
    cabinet = str(city.cabinets.ids[0])
    node = str(city.bridge_nodes.ids[0])
    bin_id = str(city.bins.ids[3])
    station = str(city.stations.ids[0])
    end = start + HOURS * HOUR
    plan = [
        FaultEvent(FaultType.LEAKAGE, cabinet, "", start + 2 * HOUR, start + 2.5 * HOUR, magnitude=120.0),
        FaultEvent(FaultType.DAY_BURNING, burning, "", start + 3 * HOUR, start + 5 * HOUR),
        FaultEvent(FaultType.BIN_FIRE, bin_id, "", start + 4 * HOUR, start + 4.5 * HOUR),
        FaultEvent(FaultType.BRIDGE_FREQ_DROP, node, "", start + 5 * HOUR, end, drop=0.06),
        FaultEvent(FaultType.PUMP_FAIL_TO_START, station, "", start + 6 * HOUR, end),
        FaultEvent(FaultType.CABLE_THEFT, stolen, "", start + 12.6 * HOUR, end, mode="zero_power"),
        FaultEvent(FaultType.LAMP_FAILURE, failing, "", start + 12.6 * HOUR, end),
    ]
    picks = {"lamp": failing, "circuit": circuit_of[failing], "district": district_of[failing], "node": node}
    return plan, picks


class _Ingest:
    """The ingest's pure path: contract decoder, line encoding, self-metrics; written in big batches."""

    def __init__(self, influx: InfluxV1, directory: Mapping[str, DeviceRef]) -> None:
        self.influx, self.directory = influx, directory
        self.metrics = IngestMetrics("ingest-dash")
        self.lines: list[str] = []

    def take(self, topic: str, payload: bytes, now_ms: int) -> None:
        decoded = decode(topic, payload, now_ms, self.directory)
        self.lines += [reading_line(r) for r in decoded.readings]
        self.metrics.messages.inc()
        self.metrics.received.inc(len(decoded.readings) + len(decoded.rejections))
        self.metrics.written.inc(len(decoded.readings))
        for rejection in decoded.rejections:
            self.metrics.reject(rejection.reason)

    def flush(self, at_ms: int) -> None:
        self.metrics.last_lag_s = 0.4
        self.lines.append(self.metrics.line(at_ms))
        self.influx.write("\n".join(self.lines).encode())
        self.lines.clear()


def _bad_readings(ts_ms: int) -> list[tuple[str, bytes]]:
    """Readings the ingest refuses: a device nobody registered, a lamp voltage out of range."""
    unknown = b'{"v":1,"device":"LMP-999999","ts":%d,"seq":1,"fields":{"active_power":1.0}}' % ts_ms
    wild = b'{"v":1,"device":"LMP-000001","ts":%d,"seq":1,"fields":{"supply_voltage":9999.0}}' % ts_ms
    return [("cw/v1/dev/LMP-999999/telemetry", unknown), ("cw/v1/dev/LMP-000001/telemetry", wild)]


def _alert_service(
    topology: Topology, catalogue: Mapping[str, Any], influx: InfluxV1, db: Path
) -> AlertService:
    policy = AlertPolicy(
        PolicyConfig(),
        SeverityPolicy(SeverityConfig(), WorkCalendar()),
        Contacts.empty(),
        TopologyLocator(topology),
        catalogue=catalogue,
    )
    return AlertService(
        policy, AlertStore(f"sqlite:///{db}"), None, influx, "all", closure_every_s=KPI_EVERY_S
    )


def _load(influx: InfluxV1, workdir: Path) -> LoadedCity:
    city = generate_city(300, seed=5)
    topology, directory = _registered(city, workdir)
    start = _start()
    plan, picks = _plan(city, start)
    # a short reference period, so the bridge model is fitted before the frequency drop
    settings = AnalyticsSettings(
        client_id="analytics-dash",
        clock="data",
        kpi_every_s=KPI_EVERY_S,
        bridges=BridgeRules(reference_days=0.1, min_reference_readings=100),
    )
    assembly = build_assembly(topology, settings)
    service = _alert_service(topology, assembly.engine.rule_catalogue, influx, workdir / "alerts.db")
    worker = AnalyticsWorker(
        settings,
        BrokerAddress.from_url("mqtt://127.0.0.1:1"),  # never connected: the test feeds the queue itself
        influx,
        assembly.engine,
        directory,
        gateway_sink=assembly.comm,
        listener=service,
    )
    config = SimConfig(interval_s=TICK_S, report_every_s={DeviceKind.BIN: HOUR})
    faults = FaultInjector(city, seed=1, schedule=plan)
    sim = Simulation(city, seed=2, start=start, config=config, faults=faults)
    builder = PayloadBuilder(city)
    ingest = _Ingest(influx, directory)
    now_ms = round(datetime.now(UTC).timestamp() * 1000)
    for index in range(HOURS * 3600 // TICK_S):
        tick = sim.step()
        tick_ms = round(tick.t * 1000)
        messages = [(m.topic, m.payload) for m in builder.batches(builder.readings(tick))]
        if index % 15 == 0:
            messages += _bad_readings(tick_ms)
        for topic, payload in messages:
            ingest.take(topic, payload, now_ms)
            worker._on_message(None, None, types.SimpleNamespace(topic=topic, payload=payload))  # type: ignore[arg-type]
        if index % 5 == 4:
            ingest.flush(tick_ms)
        if index % 2:  # the worker evaluates every 4 min of data time, as a slow tick would
            worker.step()
    ingest.flush(round(sim.next_time * 1000))
    assert worker.store.flush_findings() and worker.error is None and service.errors == 0
    service.close()
    bridge = city.bridge_nodes.params[city.bridge_nodes.find([picks["node"]])[0]]
    lamp_road = city.roads[int(city.lamps.road[city.lamps.find([picks["lamp"]])[0]])]
    choices = {
        "citywatch-streetlights": {
            "district": [picks["district"]],
            "road": [lamp_road],
            "circuit": [picks["circuit"]],
            "lamp": [picks["lamp"]],
        },
        "citywatch-bridges": {"bridge": [_param(bridge, "bridge")], "node": [picks["node"]]},
    }
    lamp = int(city.lamps.find([picks["lamp"]])[0])
    in_service = sum(int(t.in_service.sum()) for t in city.devices().values())
    at = (float(city.lamps.lat[lamp]), float(city.lamps.lon[lamp]))
    return LoadedCity(influx, round(start * 1000), round(sim.next_time * 1000), choices, at, in_service)


def _param(params_json: str, name: str) -> str:
    import orjson

    return str(orjson.loads(params_json)[name])


@pytest.fixture(scope="module")
def loaded(influxdb_server: LocalInfluxDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedCity]:
    db = f"dash_{uuid.uuid4().hex[:10]}"
    _influx_query(influxdb_server.url, f'CREATE DATABASE "{db}"')
    influx = InfluxV1(InfluxTarget(influxdb_server.url, db, timeout_s=60.0))
    try:
        yield _load(influx, tmp_path_factory.mktemp("dashboards"))
    finally:
        influx.close()
        _influx_query(influxdb_server.url, f'DROP DATABASE "{db}"')


def _run(
    city: LoadedCity, query: DashboardQuery, values: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    text = interpolate(query.query, values, city.start_ms, city.end_ms, interval="10m")
    return city.influx.query(text, method="POST")


def _variable_values(series: list[dict[str, Any]]) -> list[str]:
    """What Grafana offers from a variable query's rows: the second column of each (SHOW TAG VALUES:
    the value; SELECT: the field after the time), once each."""
    return list(dict.fromkeys(str(row[1]) for s in series for row in s["values"] if row[1] is not None))


def _fill_variables(city: LoadedCity, model: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each variable in order, from its own query with the earlier ones filled in: the test's pick
    (which must be among the offered values: the drill-down reaches it), else every value (All)."""
    uid = model["uid"]
    picks = city.choices.get(uid, {})
    variables = {q.where: q for q in queries(model) if q.kind == "variable"}
    values: dict[str, list[str]] = {}
    for name in variable_names(model):
        offered = _variable_values(_run(city, variables[name], values))
        assert offered, f"{uid}: variable {name} offers no value"
        wanted = list(picks.get(name, offered))
        assert set(wanted) <= set(offered), f"{uid}: {name} offers {offered}, not {wanted}"
        values[name] = wanted
    return values


def _all_queries() -> list[tuple[str, DashboardQuery]]:
    return [(uid, q) for uid, model in build_all().items() for q in queries(model) if q.kind == "panel"]


@pytest.fixture(scope="module")
def variables(loaded: LoadedCity) -> dict[str, dict[str, list[str]]]:
    return {uid: _fill_variables(loaded, model) for uid, model in build_all().items()}


@pytest.mark.parametrize(
    ("uid", "query"), _all_queries(), ids=[f"{u}:{q.where}:{q.ref_id}" for u, q in _all_queries()]
)
def test_every_panel_query_returns_rows_of_the_panels_shape(
    loaded: LoadedCity, variables: dict[str, dict[str, list[str]]], uid: str, query: DashboardQuery
) -> None:
    series = _run(loaded, query, variables[uid])
    rows = [row for s in series for row in s["values"]]
    assert any(any(v is not None for v in row[1:]) for row in rows), f"{query.where}: no value in {series}"
    expected = output_columns(query.query)
    for s in series:
        assert s["columns"][0] == "time"
        if expected is not None:
            assert s["columns"][1:] == expected, f"{query.where}: columns {s['columns']}"


def test_alert_transitions_annotate_the_screens(loaded: LoadedCity, variables: dict[str, Any]) -> None:
    """Each dashboard's annotation queries run; the overview and streetlights show the injected faults'
    alerts, each event with its title and tags."""
    shown: dict[str, int] = {}
    for uid, model in build_all().items():
        for query in (q for q in queries(model) if q.kind == "annotation"):
            series = _run(loaded, query, variables[uid])
            for s in series:
                assert s["columns"][1:] == output_columns(query.query)
            shown[uid] = shown.get(uid, 0) + sum(len(s["values"]) for s in series)
    assert shown["citywatch-overview"] >= 3 and shown["citywatch-streetlights"] >= 2, shown


def test_the_drill_down_reaches_the_failing_lamp(loaded: LoadedCity, variables: dict[str, Any]) -> None:
    """District, road, circuit and lamp variables each offer the failing lamp's own (checked while
    filling them); its findings panel lists the lamp failure."""
    model = build_all()["citywatch-streetlights"]
    (findings,) = [q for q in queries(model) if q.where.startswith("Findings on")]
    rows = [row for s in _run(loaded, findings, variables["citywatch-streetlights"]) for row in s["values"]]
    assert ("lamp_failure", variables["citywatch-streetlights"]["lamp"][0]) in {(r[1], r[2]) for r in rows}


def test_the_closure_series_counts_the_leakage_fixed_in_time(loaded: LoadedCity) -> None:
    series = loaded.influx.query(
        'SELECT last("due"), last("on_time"), last("open_emergency") FROM "alert_closure" '
        "WHERE \"scope\" = 'city'"
    )
    (_, due, on_time, _open) = series[0]["values"][0]
    assert due >= 1 and on_time >= 1 and not math.isnan(on_time / due)


def test_a_fault_is_placed_where_the_registry_puts_its_subject(loaded: LoadedCity) -> None:
    series = loaded.influx.query(
        'SELECT "lat", "lon", "subject" FROM "finding" '
        "WHERE \"rule\" = 'lamp_failure' AND \"change\" = 'opened'"
    )
    (row,) = series[0]["values"]
    assert row[1:3] == pytest.approx(loaded.failing_lamp_at, abs=1e-5)  # float32 in the topology


def test_completeness_counts_every_device_in_service(loaded: LoadedCity) -> None:
    series = loaded.influx.query(
        'SELECT sum("d"), sum("r") FROM (SELECT last("devices") AS "d", last("reporting") AS "r" '
        'FROM "completeness" GROUP BY "scope_id", "partition")'
    )
    (_, devices, reporting) = series[0]["values"][0]
    # the stolen circuit's lamps report 0 W and are heard from; the only silent devices would be offline
    assert devices == loaded.in_service and 0.9 * devices <= reporting <= devices


def _alert(n: int, **changes: Any) -> Alert:
    base = Alert(
        id=f"lamp_failure:L{n}:0",
        key=f"lamp_failure:L{n}",
        rule="lamp_failure",
        family="streetlight",
        subject_kind="lamp",
        subject=f"L{n}",
        district="east" if n % 2 else "west",
        road="",
        grid_cell="",
        crew="",
        severity=Severity.ORDINARY,
        state=AlertState.OPEN,
        opened_ms=1_000,
        deadline_ms=5_000,
        explanation="",
    )
    return replace(base, **changes)


def test_the_closure_series_counts_cases_due_so_far_and_live_alerts_by_severity() -> None:
    """Pure: month start 0, now 10 000; cases whose deadline passed count, an incident's child does not."""
    fixed = _alert(1, state=AlertState.RESOLVED, resolved_ms=4_000)
    late = _alert(2, state=AlertState.RESOLVED, resolved_ms=6_000)
    open_now = _alert(3, severity=Severity.EMERGENCY, deadline_ms=20_000)
    child = _alert(5, parent="circuit_outage:C1:0", deadline_ms=20_000)
    tables = closure_tables([fixed, late, open_now, child], [open_now, child], 0, 10_000)

    city = next(t for t in tables if t.scope == "city")
    fields = {name: float(values[0]) for name, values in city.fields.items()}
    assert (fields["due"], fields["on_time"], fields["on_time_rate"]) == (2, 1, 0.5)
    assert (fields["open"], fields["open_emergency"], fields["open_ordinary"], fields["overdue"]) == (
        1,
        1,
        0,
        0,
    )
    district = next(t for t in tables if t.scope == "district")
    assert district.scope_ids == ("east", "west")
