"""The crew page on a phone and the control room's overview, driven in Debian's headless Chromium.

The API runs in-process under uvicorn on a free 127.0.0.1 port (``api.server``), on a real SQLite
registry, alert store and accounts database in tmp and the real InfluxDB of the test fixtures (readings,
a finding and KPI counts written there as the workers would). The alerts come from findings through the
alert service, as the analytics worker makes them. Screenshots go to ``test-artifacts/`` at the
repository root.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, Page, expect, sync_playwright

from analytics.alerts.model import AlertState
from analytics.alerts.policy import AlertPolicy, PolicyConfig
from analytics.alerts.routing import Contacts, Locator
from analytics.alerts.service import AlertService
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from analytics.alerts.store import AlertStore
from analytics.findings import Change, Finding, FindingEvent
from analytics.lineproto import finding_line
from analytics.reports.model import ReportConfig
from api.accounts import AccountStore
from api.app import create_app
from api.deps import ApiDeps, RegistryLocator, wall_ms
from api.roles import Role
from api.server import ApiServer
from api.settings import ApiSettings
from devices.assets import Asset
from devices.registry import Registry
from ingest.influx import InfluxTarget
from tests.conftest import InfluxTarget as InfluxDatabase
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "street-lamps-at-night"
MIN = 60_000
HOUR = 60 * MIN
FRESH, OVERDUE = "LMP-0001", "LMP-0002"  # crew east's two faults
WEST = [f"LMP-01{i:02d}" for i in range(4)]  # crew west's four, metres apart: one cluster on the map
NOTE = "Driver replaced, lamp lit again."


@dataclass(frozen=True, slots=True)
class Site:
    url: str
    registry_url: str
    alerts_url: str
    fresh_alert: str  # the alert on FRESH


def lamp(device: str, crew: str, lat: float, lon: float) -> Asset:
    return Asset(
        id=device,
        kind="lamp",
        district="hongshan",
        road="Luoyu Road",
        road_class="trunk",
        grid_cell="G1",
        circuit="C-EAST" if crew == "east" else "C-WEST",
        crew=crew,
        lat=lat,
        lon=lon,
        rated_power_w=100.0,
    )


def city() -> list[Asset]:
    assets = [lamp(FRESH, "east", 30.5520, 114.3040), lamp(OVERDUE, "east", 30.5580, 114.3120)]
    assets += [lamp(d, "west", 30.5450 + i * 1e-5, 114.2950 + i * 1e-5) for i, d in enumerate(WEST)]
    return assets


def policy(locator: Locator) -> AlertPolicy:
    return AlertPolicy(
        PolicyConfig(), SeverityPolicy(SeverityConfig(), WorkCalendar()), Contacts.from_mapping({}), locator
    )


def lamp_failure(device: str, since_ms: int) -> Finding:
    return Finding(
        rule="lamp_failure",
        subject_kind="lamp",
        subject=device,
        number=0,
        district="hongshan",
        level=0,
        value=0.4,
        threshold=18.0,
        since_ms=since_ms,
        explanation=f"{device} draws 0.40 W while commanded on (below 18.00 W)",
    )


def write_influx(target: InfluxDatabase, lines: list[str]) -> None:
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        response = client.post(
            f"{target.url}/write", params={"db": target.db, "precision": "ms"}, content="\n".join(lines)
        )
    response.raise_for_status()


def record_city_life(alert_service: AlertService, influx: InfluxDatabase, now: int) -> str:
    """The alerts the analytics would have opened, and what InfluxDB would hold; returns FRESH's alert."""
    fresh = FindingEvent(Change.OPENED, lamp_failure(FRESH, now - 40 * MIN), now - 30 * MIN)
    events = [
        FindingEvent(Change.OPENED, lamp_failure(OVERDUE, now - 49 * HOUR), now - 48 * HOUR),
        fresh,
        *(FindingEvent(Change.OPENED, lamp_failure(d, now - 3 * HOUR), now - 2 * HOUR) for d in WEST),
    ]
    for event in events:
        alert_service.on_events([event], event.at_ms)
    info = alert_service.policy.catalogue["lamp_failure"]
    lines = [finding_line(fresh, info, "p0")]
    for k in range(24):  # two hours of readings, every 5 min: lit, then dark for the last 40 min
        at = now - 120 * MIN + k * 5 * MIN
        power = 96.0 + k % 3 if at < now - 40 * MIN else 0.4
        lines.append(f"lamp,device={FRESH},district=hongshan active_power={power},lamp_on=true,seq={k}i {at}")
    for scope, scope_id in (("city", "city"), ("district", "hongshan")):
        counts = "lit=97.0,due=100.0,unknown=0.0,items=100.0,intact=96.0"
        lines.append(f"kpi,partition=p0,scope={scope},scope_id={scope_id} {counts} {now - 10 * MIN}")
    write_influx(influx, lines)
    live = alert_service.store.live_by_key()
    return live[f"lamp_failure:{FRESH}"].id


@pytest.fixture
def site(tmp_path: Path, influx_db: InfluxDatabase) -> Iterator[Site]:
    now = wall_ms()
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    alerts_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    accounts_url = f"sqlite:///{tmp_path / 'api.db'}"
    hasher = PasswordHasher(time_cost=1, memory_cost=8192)  # fast for tests; argon2id all the same
    with Registry(registry_url) as registry, AlertStore(alerts_url) as store:
        registry.upsert(city())
        service = AlertService(policy(RegistryLocator(registry)), store, None, None, "test")
        fresh_alert = record_city_life(service, influx_db, now)
    with AccountStore(accounts_url, hasher) as accounts:
        accounts.add_user("wang", Role.CREW, "east", PASSWORD, now)
        accounts.add_user("control", Role.VIEWER, "", PASSWORD, now)
    deps = ApiDeps(
        settings=ApiSettings(map_faults_check_s=0.0),
        registry_url=registry_url,
        alerts_url=alerts_url,
        accounts_url=accounts_url,
        influx=InfluxTarget(url=influx_db.url, db=influx_db.db),
        alert_policy=policy,
        report_config=ReportConfig(),
        password_hasher=hasher,
    )
    app = create_app(deps)
    with ApiServer(app, "127.0.0.1", 0) as server:  # uvicorn in a thread, on a free port
        wait_until(app.state.fault_layer.ready.is_set, 30, "the fault map's positions")
        yield Site(server.url, registry_url, alerts_url, fresh_alert)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
def phone(browser: Browser, site: Site) -> Iterator[Page]:
    """A phone-sized page that lets the site know where it is (~150 m from FRESH)."""
    context = browser.new_context(
        base_url=site.url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        geolocation={"latitude": 30.5530, "longitude": 114.3050},
        permissions=["geolocation"],
    )
    yield context.new_page()
    context.close()  # before the server stops: it would wait for the page's connections


@pytest.fixture
def screen(browser: Browser, site: Site) -> Iterator[Page]:
    """A control-room screen."""
    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")
    return path


def sign_in(page: Page, name: str, password: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_crew_member_signs_in_on_a_phone_and_closes_an_alert(site: Site, phone: Page) -> None:
    page = phone
    page.goto("/crew")
    sign_in(page, "wang", PASSWORD)

    cards = page.locator("li.card")
    expect(cards).to_have_count(2)  # east's two; west's four are another crew's
    expect(cards.nth(0)).to_contain_text(OVERDUE)
    expect(cards.nth(0)).to_contain_text(re.compile(r"Overdue by \d+ h"))
    expect(cards.nth(1)).to_contain_text(FRESH)
    expect(cards.nth(1)).to_contain_text(re.compile(r"2[23] h \d+ min left"))
    expect(cards.nth(1).locator(".distance")).to_have_text(re.compile(r"^1[0-9]0 m away$"))
    osm = cards.nth(1).get_by_role("link", name=f"Open {FRESH} on OpenStreetMap")
    expect(osm).to_have_attribute(
        "href", re.compile(r"openstreetmap\.org/\?mlat=30\.552000&mlon=114\.304000")
    )
    expect(cards.nth(1).get_by_role("link", name=f"Open {FRESH} in the map app")).to_have_attribute(
        "href", "geo:30.552000,114.304000?q=30.552000,114.304000"
    )
    screenshot(page, "crew-list.png")

    cards.nth(1).locator("a.open").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lamp failure")
    expect(page.locator(".explanation")).to_contain_text(f"{FRESH} draws 0.40 W")
    expect(page.locator(".facts .value")).to_have_text("0.40 (threshold 18.0)")
    expect(page.locator("figure.spark svg")).to_have_attribute("aria-label", re.compile(r"latest 0\.40 W"))

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".state")).to_have_text("Acknowledged")
    expect(page.get_by_role("button", name="Acknowledge")).to_be_disabled()
    page.get_by_role("button", name="Resolve").click()  # without a note: refused in plain words
    expect(page.get_by_role("alert")).to_have_text("Write what you did in the note before resolving.")
    page.get_by_label("Note (what you found, what you did)").fill(NOTE)
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".state")).to_have_text("Resolved")
    expect(page.locator(".history")).to_contain_text(NOTE)
    screenshot(page, "crew-resolved.png")

    with AlertStore(site.alerts_url) as store:
        alert = store.get(site.fresh_alert)
        resolves = [t for t in store.history(site.fresh_alert) if t.event == "resolve"]
    assert alert.state is AlertState.RESOLVED
    assert alert.acknowledged_ms is not None
    assert [(t.actor, t.note) for t in resolves] == [("wang", NOTE)]

    page.get_by_role("link", name="← My open alerts").click()
    expect(page.locator("li.card")).to_have_count(1)


def test_a_wrong_password_is_refused_in_plain_words(phone: Page) -> None:
    page = phone
    page.goto("/crew")
    sign_in(page, "wang", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    expect(page.get_by_label("Password")).to_have_value("")
    screenshot(page, "crew-wrong-password.png")


def test_the_overview_shows_rates_against_targets_and_clustered_faults(site: Site, screen: Page) -> None:
    page = screen
    page.goto("/overview")
    sign_in(page, "control", PASSWORD)

    expect(page.locator("#rate-lighting .value")).to_have_text("97.0 %")
    expect(page.locator("#rate-lighting")).to_have_class(re.compile(r"\bmisses\b"))  # target 100 %
    expect(page.locator("#rate-intact .value")).to_have_text("96.0 %")
    expect(page.locator("#rate-intact")).to_have_class(re.compile(r"\bmeets\b"))  # target 95 %
    expect(page.locator("#open-ordinary .value")).to_have_text("6")
    expect(page.locator("#open-overdue .value")).to_have_text("1")

    west = page.locator("#faultmap circle.cluster[data-count='4']")
    expect(west).to_have_count(1)  # crew west's four lamps, metres apart
    expect(page.locator("#faultmap [role=status]")).to_contain_text("6 open faults in view")
    screenshot(page, "overview.png")

    caption = page.locator("#faultmap [role=status]").inner_text()
    west.click()  # zooms in on the cluster
    expect(page.locator("#faultmap [role=status]")).not_to_have_text(caption)

    # A crew resolves one of west's faults elsewhere (the command line): the live feed updates the screen.
    with Registry(site.registry_url) as registry, AlertStore(site.alerts_url) as store:
        service = AlertService(policy(RegistryLocator(registry)), store, None, None, "cli")
        service.act(
            f"{store.live_by_key()[f'lamp_failure:{WEST[0]}'].id}", "resolve", "li", wall_ms(), "fixed"
        )
    expect(page.locator("#open-ordinary .value")).to_have_text("5")
    expect(page.locator("#live")).to_have_text("Live")


def test_a_crew_user_sees_only_its_own_crews_faults_on_the_map(site: Site) -> None:
    """The map routes the pages draw from, without a browser: crew east's user is shown east's faults."""
    with httpx.Client(base_url=site.url, trust_env=False, timeout=10.0) as client:
        token = client.post("/api/v1/auth/token", data={"username": "wang", "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        faults = client.get("/api/v1/map/faults", params={"bbox": "114.2,30.5,114.4,30.6", "zoom": 18})
        summary = client.get("/api/v1/map/summary")
        with AlertStore(site.alerts_url) as store:
            west = store.live_by_key()[f"lamp_failure:{WEST[0]}"].id
        places = client.get("/api/v1/map/positions", params={"alert": [site.fresh_alert, west]})
        refused = client.get("/api/v1/map/faults", headers={"Authorization": ""})

    assert faults.status_code == 200, faults.text
    body = faults.json()
    assert body["faults_in_view"] == 2
    assert sorted(p["subject"] for p in body["points"]) == [FRESH, OVERDUE]
    assert body["clusters"] == []
    assert summary.json()["open"] == 2
    assert summary.json()["targets"] == {"lighting": 1.0, "intact": 0.95, "on_time_closure": 0.95}
    assert places.json()["positions"] == [{"alert_id": site.fresh_alert, "lat": 30.552, "lon": 114.304}]
    assert refused.status_code == 401
