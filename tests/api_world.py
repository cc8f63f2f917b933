"""A small city behind the API, for the API tests: a registry of a few assets, an alert store with alerts of
two crews, an InfluxDB database with telemetry, findings and KPI counts of two partitions, and a user of
every role. Everything is real (SQLite files, the session's InfluxDB); only the clock is the test's.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from analytics.alerts.model import Alert, AlertState, Severity, Transition
from analytics.alerts.policy import AlertPolicy, Changes, PolicyConfig
from analytics.alerts.routing import Contacts, Locator
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from analytics.alerts.store import AlertStore
from analytics.reports.model import ReportConfig
from api.accounts import AccountStore
from api.app import create_app
from api.deps import ApiDeps
from api.roles import Role
from api.settings import ApiSettings
from devices.assets import Asset
from devices.registry import Registry
from ingest.influx import InfluxTarget

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 in its test client, once, at import; httpx 0.28 (installed) works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
# A fixed "now" a little in the past, on a whole hour: every time in the world is relative to it.
NOW = (1_790_000_000_000 // HOUR) * HOUR
PASSWORD = "correct horse battery staple"
EAST, WEST = "hongshan-lighting", "wuchang-lighting"
# Cheap Argon2 parameters: the tests sign in dozens of times (the production default costs ~50 ms).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

USERS = {
    "ada": (Role.ADMIN, ""),
    "otto": (Role.OPERATOR, ""),
    "vera": (Role.VIEWER, ""),
    "east": (Role.CREW, EAST),
    "west": (Role.CREW, WEST),
}


class Clock:
    def __init__(self, now_ms: int = NOW) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def lamp(i: int, *, circuit: str = "C-1", district: str = "hongshan", crew: str = EAST) -> Asset:
    return Asset(
        id=f"LMP-{i:03d}",
        kind="lamp",
        district=district,
        road="Luoyu Road" if district == "hongshan" else "Zhongnan Road",
        road_class="trunk",
        grid_cell=f"G-{district}",
        circuit=circuit,
        cabinet="CAB-1" if circuit == "C-1" else "",
        gateway="GW-1" if district == "hongshan" else "",
        lat=30.5 + i * 1e-4,
        lon=114.4 + i * 1e-4,
        rated_power_w=100.0,
        crew=crew,
    )


def assets() -> list[Asset]:
    return [
        Asset(id="GW-1", kind="gateway", district="hongshan", lat=30.5, lon=114.4),
        Asset(
            id="CAB-1",
            kind="cabinet",
            district="hongshan",
            road="Luoyu Road",
            circuit="C-1",
            gateway="GW-1",
            lat=30.5,
            lon=114.4,
            crew=EAST,
        ),
        *(lamp(i) for i in range(1, 5)),
        lamp(101, circuit="C-2", district="wuchang", crew=WEST),
        Asset(
            id="PS-1",
            kind="pump_station",
            district="hongshan",
            road="Luoyu Road",
            lat=30.51,
            lon=114.41,
            capacity=3000.0,
            crew="hongshan-drainage",
        ),
        Asset(
            id="FG-1",
            kind="flood_gauge",
            district="hongshan",
            road="Luoyu Road",
            lat=30.52,
            lon=114.42,
            params={"station": "PS-1"},
            crew="hongshan-drainage",
        ),
        Asset(id="BIN-1", kind="bin", district="wuchang", lat=30.6, lon=114.3, crew="wuchang-sanitation"),
    ]


def make_alert(
    subject: str,
    crew: str,
    *,
    rule: str = "lamp_failure",
    state: AlertState = AlertState.OPEN,
    opened: int = NOW - 2 * HOUR,
    deadline: int = NOW + 22 * HOUR,
    resolved: int | None = None,
    severity: Severity = Severity.ORDINARY,
    district: str = "hongshan",
    road: str = "Luoyu Road",
) -> Alert:
    return Alert(
        id=f"{rule}:{subject}:{opened}",
        key=f"{rule}:{subject}",
        rule=rule,
        family="streetlight" if rule.startswith(("lamp", "circuit")) else "drainage",
        subject_kind="lamp" if subject.startswith("LMP") else "pump_station",
        subject=subject,
        district=district,
        road=road,
        grid_cell=f"G-{district}",
        crew=crew,
        severity=severity,
        state=state,
        opened_ms=opened,
        deadline_ms=deadline,
        explanation=f"{rule} on {subject}",
        escalation=0,
        acknowledged_ms=opened + MIN if state is not AlertState.OPEN else None,
        resolved_ms=resolved,
    )


def store_alerts(store: AlertStore, alerts: Iterable[Alert]) -> None:
    alerts = list(alerts)
    transitions = [Transition(a.id, None, AlertState.OPEN, "create", "system", a.opened_ms) for a in alerts]
    store.apply(Changes(alerts=tuple(alerts), transitions=tuple(transitions)))


def contacts() -> Contacts:
    people = {
        f"{crew}-on-call": {"name": f"{crew} on call", "urls": [f"json://localhost/{crew}"]}
        for crew in (EAST, WEST, "hongshan-drainage")
    }
    people["chief"] = {"name": "Supervisor", "urls": ["json://localhost/chief"]}
    crews = {crew: {"members": [f"{crew}-on-call"], "on_call": f"{crew}-on-call"} for crew in (EAST, WEST)}
    return Contacts.from_mapping({"people": people, "crews": crews, "supervisors": {"*": "chief"}})


def _lines() -> Iterator[str]:
    # LMP-001: a reading a minute for the last two hours; power ramps so windows have distinct means.
    for k in range(120):
        t = NOW - (120 - k) * MIN
        on = "true" if k % 2 else "false"
        fields = f"active_power={80.0 + k},lamp_on={on},dim_level=100i,seq={k}i"
        yield f"lamp,device=LMP-001,district=hongshan {fields} {t}"
    for i in (2, 3):
        fields = "active_power=95.5,lamp_on=true,dim_level=80i,seq=1i"
        yield f"lamp,device=LMP-{i:03d},district=hongshan {fields} {NOW - 5 * MIN}"
    yield f"cabinet,device=CAB-1,district=hongshan voltage_l1=229.0,door_open=false,seq=3i {NOW - 3 * MIN}"
    yield (
        "pump_station,device=PS-1,district=hongshan wet_well_level=2.5,power_ok=true,pump1_running=true,"
        f"pump1_current=41.5,pump2_running=false,pump2_fault=true,seq=9i {NOW - 2 * MIN}"
    )
    yield f"flood_gauge,device=FG-1,district=hongshan water_depth=12.0,seq=4i {NOW - 4 * MIN}"
    # an open lamp failure on LMP-001 and a cleared one on LMP-002
    yield (
        "finding,district=hongshan,family=streetlight,partition=p1,rule=lamp_failure,subject=LMP-001,"
        'subject_kind=lamp state="open",change="opened",level=0i,since_ms='
        f'{NOW - 2 * HOUR}i,explanation="dark while switched on",children="",child_kind="",children_count=0i,'
        f"value=3.0,threshold=40.0 {NOW - 2 * HOUR}"
    )
    for state, at in (("open", NOW - 3 * HOUR), ("cleared", NOW - HOUR)):
        yield (
            "finding,district=hongshan,family=streetlight,partition=p1,rule=lamp_failure,subject=LMP-002,"
            f'subject_kind=lamp state="{state}",change="opened",level=0i,since_ms={NOW - 3 * HOUR}i,'
            f'explanation="x",children="",child_kind="",children_count=0i {at}'
        )
    # KPI counts, every 10 min for the last 6 hours, from two partitions (p1 and p2 each a district).
    for k in range(36):
        t = NOW - (36 - k) * 10 * MIN
        for partition, district, lit, due, unknown in (
            ("p1", "hongshan", 90, 100, 2),
            ("p2", "wuchang", 40, 50, 0),
        ):
            counts = f"lit={lit}.0,due={due}.0,unknown={unknown}.0,items=120.0,intact=114.0"
            counts += ",installed=100.0,registered=110.0"
            yield f"kpi,partition={partition},scope=district,scope_id={district} {counts} {t}"
            yield f"kpi,partition={partition},scope=city,scope_id=city {counts} {t}"


def load_influx(url: str, db: str) -> None:
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        client.post(f"{url}/query", data={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
        response = client.post(
            f"{url}/write", params={"db": db, "precision": "ms"}, content="\n".join(_lines()).encode()
        )
        response.raise_for_status()


def drop_influx(url: str, db: str) -> None:
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        client.post(f"{url}/query", data={"q": f'DROP DATABASE "{db}"'})


@dataclass
class World:
    folder: Path
    influx_url: str
    db: str
    clock: Clock
    deps: ApiDeps
    tokens: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)

    def store(self) -> AlertStore:
        return AlertStore(self.deps.alerts_url)

    def registry(self) -> Registry:
        return Registry(self.deps.registry_url)

    def accounts(self) -> AccountStore:
        return AccountStore(self.deps.accounts_url, FAST_HASHER)

    def app(self) -> FastAPI:
        return create_app(self.deps)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def add_alerts(self, alerts: Sequence[Alert]) -> None:
        with self.store() as store:
            store_alerts(store, alerts)


def build_world(folder: Path, influx_url: str, **settings: object) -> World:
    folder.mkdir(parents=True, exist_ok=True)
    db = f"api_{uuid.uuid4().hex[:10]}"
    load_influx(influx_url, db)
    clock = Clock()
    registry_url = f"sqlite:///{folder / 'registry.db'}"
    with Registry(registry_url) as registry:
        registry.upsert(assets())
    crew_contacts = contacts()

    def policy(locator: Locator) -> AlertPolicy:
        return AlertPolicy(
            PolicyConfig(), SeverityPolicy(SeverityConfig(), WorkCalendar()), crew_contacts, locator
        )

    deps = ApiDeps(
        settings=ApiSettings(**settings),  # type: ignore[arg-type]
        registry_url=registry_url,
        alerts_url=f"sqlite:///{folder / 'alerts.db'}",
        accounts_url=f"sqlite:///{folder / 'api.db'}",
        influx=InfluxTarget(url=influx_url, db=db),
        alert_policy=policy,
        report_config=ReportConfig(),
        clock_ms=clock,
        password_hasher=FAST_HASHER,
    )
    world = World(folder, influx_url, db, clock, deps)
    base = [
        make_alert("LMP-001", EAST),
        make_alert("LMP-101", WEST, district="wuchang", road="Zhongnan Road"),
        make_alert(
            "PS-1",
            "hongshan-drainage",
            rule="pump_fault",
            severity=Severity.SERIOUS,
            opened=NOW - 3 * DAY,
            deadline=NOW - HOUR,
        ),
        make_alert(
            "LMP-003",
            EAST,
            state=AlertState.RESOLVED,
            opened=NOW - 10 * HOUR,
            deadline=NOW - 2 * HOUR,
            resolved=NOW - 4 * HOUR,
        ),
    ]
    world.add_alerts(base)
    world.alerts = {a.subject: a for a in base}
    with world.accounts() as accounts:
        for name, (role, crew) in USERS.items():
            accounts.add_user(name, role, crew, PASSWORD, NOW)
            issued = accounts.sign_in(name, PASSWORD, NOW, 3600 * 24 * 365)
            assert issued is not None
            world.tokens[name] = issued.token
    return world


def client(world: World) -> TestClient:
    return TestClient(world.app(), raise_server_exceptions=False)
