"""What the API answers, against a real InfluxDB loaded with telemetry, findings and KPI counts of two
partitions, and a real alert store: history downsampled to at most the points asked for and bounded,
rates as sums over the scope, alert filters and actions, the live feed over a real HTTP server, the
asset registry's routes, live state, reports, health and metrics."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.server import ApiServer
from citywatch.localstack import LocalInfluxDB, free_port
from tests.api_world import (
    DAY,
    EAST,
    MIN,
    NOW,
    WEST,
    TestClient,
    World,
    build_world,
    client,
    drop_influx,
    make_alert,
)

pytestmark = pytest.mark.integration

LMP1 = "/api/v1/history/LMP-001/active_power"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, influxdb_server: LocalInfluxDB) -> Iterator[World]:
    w = build_world(
        tmp_path_factory.mktemp("api-routes"),
        influxdb_server.url,
        history_max_points=50,
        history_default_points=20,
        history_max_range_days=2,
        feed_poll_s=0.05,
        feed_rate_poll_s=0.2,
    )
    yield w
    drop_influx(w.influx_url, w.db)


@pytest.fixture(scope="module")
def api(world: World) -> Iterator[TestClient]:
    with client(world) as c:
        yield c


def get(api: TestClient, world: World, path: str, user: str = "ada", **params: Any) -> Any:
    response = api.get(path, headers=world.auth(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- history --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("points", [1, 2, 3, 7, 50])
def test_history_returns_at_most_the_points_asked_for(api: TestClient, world: World, points: int) -> None:
    start = "2026-09-21T11:30:00Z"  # two and a half hours: LMP-001 has a reading a minute for the last two
    body = get(api, world, LMP1, start=start, end="2026-09-21T14:00:00Z", points=points)
    assert 1 <= len(body["points"]) <= points
    assert sum(p["count"] for p in body["points"]) == 120  # every reading in exactly one window
    assert body["window_s"] * points >= 2.5 * 3600


def test_history_windows_carry_mean_min_and_max(api: TestClient, world: World) -> None:
    body = get(api, world, LMP1, start="2026-09-21T12:00:00Z", end="2026-09-21T14:00:00Z", points=2)
    assert (body["unit"], body["window_s"]) == ("W", 3600.0)
    assert [(p["start"], p["count"], p["min"], p["max"], p["mean"]) for p in body["points"]] == [
        ("2026-09-21T12:00:00Z", 60, 80.0, 139.0, 109.5),
        ("2026-09-21T13:00:00Z", 60, 140.0, 199.0, 169.5),
    ]
    on = get(api, world, "/api/v1/history/LMP-001/lamp_on", start="2026-09-21T12:00:00Z", points=1)
    assert [(p["mean"], p["min"], p["max"]) for p in on["points"]] == [
        (None, 0.0, 1.0)
    ]  # true/false: no mean


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-09-10T00:00:00Z"}, "the range of 11.5833 days is longer than the limit of 2 days"),
        ({"points": 51}, "points must be 1 to 50, not 51"),
        ({"start": "2026-09-21T15:00:00Z", "end": "2026-09-21T14:00:00Z"}, "the range is empty"),
        ({"start": "2026-09-21T12:00:00"}, "timezone"),
    ],
)
def test_history_bounds_are_enforced_with_a_clear_message(
    api: TestClient, world: World, params: dict[str, Any], message: str
) -> None:
    response = api.get(LMP1, headers=world.auth("vera"), params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert message in response.json()["detail"]


def test_history_knows_the_kinds_fields_and_the_devices(api: TestClient, world: World) -> None:
    unknown_field = api.get("/api/v1/history/LMP-001/water_depth", headers=world.auth("vera"))
    assert unknown_field.status_code == 422
    assert "a lamp has no field 'water_depth'; its fields: active_energy" in unknown_field.json()["detail"]
    assert api.get("/api/v1/history/NOPE-1/active_power", headers=world.auth("vera")).status_code == 404
    gateway = api.get("/api/v1/history/GW-1/seq", headers=world.auth("vera"))
    assert gateway.status_code == 422 and "reports no fields" in gateway.json()["detail"]


# --- rates ----------------------------------------------------------------------------------------------


def test_rates_are_sums_of_counts_over_the_scope_and_partitions(api: TestClient, world: World) -> None:
    # 36 points per partition in the last 6 h: hongshan (p1) lit 90 of 100 due, 2 unknown;
    # wuchang (p2) lit 40 of 50
    city = get(api, world, "/api/v1/rates", metric="lighting", start="2026-09-21T08:00:00Z")
    (only,) = city["series"]
    assert only["scope_id"] == "city"
    (point,) = only["points"]
    assert (point["numerator"], point["denominator"]) == (36 * 130.0, 36 * 148.0)
    assert point["rate"] == pytest.approx(130 / 148)  # not the mean of 90/98 and 40/50
    assert point["lower_bound"] == pytest.approx(130 / 150)
    districts = get(
        api, world, "/api/v1/rates", metric="intact", scope="district", start="2026-09-21T08:00:00Z"
    )
    assert [(s["scope_id"], s["points"][0]["rate"]) for s in districts["series"]] == [
        ("hongshan", pytest.approx(0.95)),
        ("wuchang", pytest.approx(0.95)),
    ]
    one = get(api, world, "/api/v1/rates", metric="installation", scope="district", scope_id="wuchang")
    assert [s["scope_id"] for s in one["series"]] == ["wuchang"]
    assert one["series"][0]["points"][0]["rate"] == pytest.approx(100 / 110)


def test_rates_per_interval_have_one_point_per_window_with_data(api: TestClient, world: World) -> None:
    body = get(
        api,
        world,
        "/api/v1/rates",
        metric="lighting",
        scope="district",
        scope_id="hongshan",
        start="2026-09-21T06:00:00Z",
        end="2026-09-21T14:00:00Z",
        interval="2h",
    )
    assert body["interval_s"] == 7200
    points = body["series"][0]["points"]
    # data from 08:00: the windows 08-10, 10-12, 12-14, each of 12 points
    assert [p["start"] for p in points] == [
        "2026-09-21T08:00:00Z",
        "2026-09-21T10:00:00Z",
        "2026-09-21T12:00:00Z",
    ]
    assert all(p["denominator"] == 12 * 98.0 for p in points)
    none = get(api, world, "/api/v1/rates", metric="lighting", scope="district", scope_id="nowhere")
    assert none["series"] == [{"scope_id": "nowhere", "points": []}]


def test_rates_refuse_what_is_not_kept(api: TestClient, world: World) -> None:
    for params, message in (
        ({"metric": "on_time_closure", "scope": "road_class"}, "not per road_class"),
        ({"metric": "lighting", "scope": "crew"}, "not per crew"),
        ({"metric": "lighting", "interval": "1m"}, "more than the limit of 1000"),
        ({"metric": "lighting", "start": "2024-01-01T00:00:00Z"}, "longer than the limit of 400 days"),
    ):
        response = api.get("/api/v1/rates", headers=world.auth("vera"), params=params)
        assert response.status_code == 422, params
        assert message in response.json()["detail"]


def test_on_time_closure_counts_cases_from_the_alert_store(api: TestClient, world: World) -> None:
    body = get(
        api, world, "/api/v1/rates", metric="on_time_closure", scope="crew", start="2026-09-20T14:00:00Z"
    )
    by_crew = {s["scope_id"]: s["points"][0] for s in body["series"]}
    # LMP-003 (east) fixed before its deadline; PS-1 (drainage) overdue and open
    assert (by_crew[EAST]["numerator"], by_crew[EAST]["denominator"]) == (1.0, 1.0)
    assert (by_crew["hongshan-drainage"]["numerator"], by_crew["hongshan-drainage"]["rate"]) == (0.0, 0.0)


# --- alerts ---------------------------------------------------------------------------------------------


def ids(body: dict[str, Any]) -> list[str]:
    return [a["subject"] for a in body["items"]]


def test_alerts_filter_by_state_severity_crew_road_district_and_overdue(
    api: TestClient, world: World
) -> None:
    path = "/api/v1/alerts"
    assert set(ids(get(api, world, path, state="resolved"))) >= {"LMP-003"}
    assert "LMP-003" not in ids(get(api, world, path, state=["open", "acknowledged", "in_progress"]))
    assert ids(get(api, world, path, severity="serious")) == ["PS-1"]
    assert set(ids(get(api, world, path, crew=WEST))) == {"LMP-101"}
    assert set(ids(get(api, world, path, road="Zhongnan Road"))) == {"LMP-101"}
    assert "LMP-101" not in ids(get(api, world, path, district="hongshan"))
    overdue = get(api, world, path, overdue="true")
    assert ids(overdue) == ["PS-1"] and overdue["items"][0]["overdue"] is True
    assert overdue["items"][0]["title"] == "Pump fault"


def test_alerts_page_by_deadline_with_a_cursor(api: TestClient, world: World) -> None:
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"after": after} if after else {})
        body = get(api, world, "/api/v1/alerts", **params)
        seen += [a["id"] for a in body["items"]]
        after = body["next_after"]
        if after is None:
            break
    everything = get(api, world, "/api/v1/alerts", limit=1000)["items"]
    assert seen == [a["id"] for a in everything]
    assert [a["deadline_at"] for a in everything] == sorted(a["deadline_at"] for a in everything)
    bad = api.get("/api/v1/alerts", headers=world.auth("vera"), params={"after": "x"})
    assert bad.status_code == 422


def test_an_alert_shows_its_history_and_notes_and_moves_by_the_lifecycle(
    api: TestClient, world: World
) -> None:
    alert = make_alert("LMP-002", EAST, rule="under_voltage", opened=NOW - 30 * MIN)
    world.add_alerts([alert])
    east = world.auth("east")
    base = f"/api/v1/alerts/{alert.id}"
    assert api.post(f"{base}/ack", headers=east, json={"note": "on my way"}).json()["state"] == "acknowledged"
    noted = api.post(f"{base}/note", headers=east, json={"note": "cable cut at pole 7"}).json()
    assert noted["state"] == "acknowledged"
    assert api.post(f"{base}/start", headers=east).json()["state"] == "in_progress"
    empty = api.post(f"{base}/resolve", headers=east, json={"note": ""})
    assert empty.status_code == 422  # say what was done
    resolved = api.post(f"{base}/resolve", headers=east, json={"note": "spliced"}).json()
    assert resolved["state"] == "resolved" and resolved["resolved_at"] == "2026-09-21T14:00:00Z"
    again = api.post(f"{base}/start", headers=east)
    assert (
        again.status_code == 409
        and again.json()["detail"] == f"alert {alert.id} is resolved: it cannot be start"
    )
    detail = get(api, world, base, user="east")
    assert [(t["event"], t["actor"], t["to_state"]) for t in detail["history"]] == [
        ("create", "system", "open"),
        ("acknowledge", "east", "acknowledged"),
        ("note", "east", "acknowledged"),
        ("start", "east", "in_progress"),
        ("resolve", "east", "resolved"),
    ]
    assert [n["note"] for n in detail["notes"]] == ["on my way", "cable cut at pole 7", "spliced"]
    closed = api.post(f"{base}/close", headers=world.auth("otto"), json={"note": "checked at night"})
    assert closed.json()["state"] == "closed"
    assert api.post(f"{base}/note", headers=east, json={"note": "late"}).status_code == 409  # closed is final
    assert api.get("/api/v1/alerts/no:such:1", headers=east).status_code == 404


def test_assigning_hands_the_alert_to_another_crew_and_tells_it(api: TestClient, world: World) -> None:
    alert = make_alert("LMP-004", EAST, rule="day_burning", opened=NOW - 40 * MIN)
    world.add_alerts([alert])
    moved = api.post(
        f"/api/v1/alerts/{alert.id}/assign",
        headers=world.auth("otto"),
        json={"crew": WEST, "note": "their road"},
    )
    assert moved.status_code == 200 and moved.json()["crew"] == WEST
    assert api.get(f"/api/v1/alerts/{alert.id}", headers=world.auth("east")).status_code == 403
    detail = get(api, world, f"/api/v1/alerts/{alert.id}", user="west")
    assert detail["history"][-1]["note"] == f"assigned to {WEST} (was {EAST}): their road"
    with world.store() as store:
        told = store.pending_notifications(NOW + DAY)
    (note,) = [n for n in told if alert.id in n.alert_ids]
    assert note.recipients == (f"{WEST}-on-call",)
    assert note.body.startswith("ASSIGNED to your crew by otto")


# --- the live feed, over a real server --------------------------------------------------------------------


class Feed:
    """Reads a server-sent event stream on a thread of the test, event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next_event(self) -> tuple[str, dict[str, Any], str]:
        kind, data, event_id = "", "", ""
        for line in self.lines:
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line == "" and kind:
                return kind, json.loads(data), event_id
        raise AssertionError("the stream ended")

    def until(self, want: str, match: Any = lambda d: True) -> tuple[dict[str, Any], str]:
        while True:
            kind, data, event_id = self.next_event()
            if kind == want and match(data):
                return data, event_id


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    with ApiServer(world.app(), "127.0.0.1", free_port()) as running:
        yield running.url


def test_ack_and_resolve_reach_the_live_feed_of_the_crew_and_not_of_others(server: str, world: World) -> None:
    alert = make_alert("LMP-003", EAST, rule="relay_stuck", opened=NOW - 20 * MIN)
    world.add_alerts([alert])
    with httpx.Client(base_url=server, trust_env=False, timeout=10.0) as http:
        with (
            http.stream(
                "GET", "/api/v1/feed", headers=world.auth("east"), params={"max_s": 20}
            ) as east_stream,
            http.stream(
                "GET", "/api/v1/feed", headers=world.auth("west"), params={"max_s": 3}
            ) as west_stream,
        ):
            east, west = Feed(east_stream), Feed(west_stream)
            ready, _ = east.until("ready")
            west.until("ready")
            rate, _ = east.until("rate", lambda d: d["scope"] == "city")
            assert rate["lighting_rate"] == pytest.approx(130 / 148)
            assert http.post(f"/api/v1/alerts/{alert.id}/ack", headers=world.auth("east")).status_code == 200
            acked, first_id = east.until("alert", lambda d: d["alert"]["id"] == alert.id)
            assert (acked["transition"]["event"], acked["alert"]["state"]) == ("acknowledge", "acknowledged")
            resolve = http.post(
                f"/api/v1/alerts/{alert.id}/resolve", headers=world.auth("otto"), json={"note": "ok"}
            )
            assert resolve.status_code == 200
            done, _ = east.until("alert", lambda d: d["transition"]["event"] == "resolve")
            assert done["transition"]["actor"] == "otto" and int(first_id) > ready["after"]
            seen_by_west = []
            try:
                while True:
                    kind, data, _ = west.next_event()
                    if kind == "alert":
                        seen_by_west.append(data["alert"]["crew"])
            except AssertionError:  # its stream ended (max_s)
                pass
            assert EAST not in seen_by_west
        # a client that reconnects resumes after the last event it saw
        with http.stream(
            "GET",
            "/api/v1/feed",
            headers={**world.auth("east"), "Last-Event-ID": first_id},
            params={"max_s": 5},
        ) as again:
            resumed, _ = Feed(again).until("alert")
            assert resumed["transition"]["event"] == "resolve"


# --- assets ---------------------------------------------------------------------------------------------


def test_assets_are_found_by_road_circuit_kind_and_box_a_page_at_a_time(
    api: TestClient, world: World
) -> None:
    def found(**params: Any) -> list[str]:
        return [a["id"] for a in get(api, world, "/api/v1/assets", user="vera", **params)["items"]]

    assert found(circuit="C-1", kind="lamp") == ["LMP-001", "LMP-002", "LMP-003", "LMP-004"]
    assert found(road="Zhongnan Road") == ["LMP-101"]
    assert found(bbox="114.40005,30.50005,114.40025,30.50025") == ["LMP-001", "LMP-002"]
    assert found(kind="pump_station", in_service="true") == ["PS-1"]
    first = get(api, world, "/api/v1/assets", limit=3)
    assert first["next_after"] == first["items"][-1]["id"]
    second = get(api, world, "/api/v1/assets", limit=3, after=first["next_after"])
    assert second["items"][0]["id"] > first["next_after"]
    bad = api.get("/api/v1/assets", headers=world.auth("vera"), params={"bbox": "1,2,3"})
    assert bad.status_code == 422 and "four numbers" in bad.json()["detail"]


def test_an_admin_creates_and_updates_assets_checked_like_an_import(api: TestClient, world: World) -> None:
    admin = world.auth("ada")
    body = {
        "id": "BIN-9",
        "kind": "bin",
        "district": "wuchang",
        "lat": 30.6,
        "lon": 114.3,
        "params": {"h": 120},
    }
    created = api.post("/api/v1/assets", headers=admin, json=body)
    assert created.status_code == 201 and created.json()["params"] == {"h": 120}
    assert api.post("/api/v1/assets", headers=admin, json=body).status_code == 409
    lamp = {"id": "LMP-900", "kind": "lamp", "district": "wuchang", "lat": 30.6, "lon": 114.3}
    refused = api.post("/api/v1/assets", headers=admin, json=lamp)
    assert refused.status_code == 422 and refused.json()["cause"] == "bad_road_class"
    stray = api.post("/api/v1/assets", headers=admin, json={**body, "id": "BIN-10", "gateway": "GW-404"})
    assert stray.status_code == 422 and "GW-404 is not a gateway" in stray.json()["detail"]
    patched = api.patch(
        "/api/v1/assets/BIN-9", headers=admin, json={"crew": "wuchang-sanitation", "capacity": 240}
    )
    assert (patched.json()["crew"], patched.json()["capacity"], patched.json()["lat"]) == (
        "wuchang-sanitation",
        240,
        30.6,
    )
    assert api.patch("/api/v1/assets/NOPE", headers=admin, json={"crew": "x"}).status_code == 404
    with world.registry() as registry:
        stored = registry.get("BIN-9")
    assert stored is not None and stored.capacity == 240


def test_import_reports_rejections_and_export_gives_the_registry_back(api: TestClient, world: World) -> None:
    admin = world.auth("ada")
    text = (
        "id,kind,district,lat,lon,road\n"
        "BIN-20,bin,wuchang,30.6,114.3,Jiefang Road\n"
        "BIN-21,bin,Bad District,30.6,114.3,\n"
    )
    response = api.post(
        "/api/v1/assets/import", headers=admin, files={"file": ("more.csv", text, "text/csv")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"], body["counts"]) == (1, 1, {"bad_district": 1})
    assert body["rejections"][0]["line"] == 3 and body["rejections"][0]["asset_id"] == "BIN-21"
    header = api.post(
        "/api/v1/assets/import", headers=admin, files={"file": ("x.csv", "name,colour\n", "text/csv")}
    )
    assert header.status_code == 422 and "unknown column 'name'" in header.json()["detail"]
    what = api.post(
        "/api/v1/assets/import", headers=admin, files={"file": ("x.xlsx", b"PK", "application/zip")}
    )
    assert what.status_code == 422
    exported = api.get("/api/v1/assets/export", headers=world.auth("vera"))
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert exported.headers["content-type"].startswith("text/csv")
    assert {"BIN-20", "LMP-001", "GW-1"} <= {r["id"] for r in rows}
    geo = api.get(
        "/api/v1/assets/export", headers=world.auth("vera"), params={"format": "geojson", "kind": "bin"}
    )
    features = geo.json()["features"]
    assert {f["properties"]["id"] for f in features} >= {"BIN-1", "BIN-20"}
    assert all(f["properties"]["kind"] == "bin" for f in features)


# --- live state -----------------------------------------------------------------------------------------


def test_a_devices_live_state_has_its_latest_readings_findings_and_status(
    api: TestClient, world: World
) -> None:
    lamp = get(api, world, "/api/v1/live/devices/LMP-001", user="east")
    assert lamp["status"] == "fault" and lamp["last_seen"] == "2026-09-21T13:59:00Z"
    assert lamp["readings"]["active_power"] == 199 and lamp["readings"]["lamp_on"] is True
    assert [(f["rule"], f["explanation"]) for f in lamp["findings"]] == [
        ("lamp_failure", "dark while switched on")
    ]
    healed = get(api, world, "/api/v1/live/devices/LMP-002")
    assert (healed["status"], healed["findings"]) == ("ok", [])  # its finding cleared
    silent = get(api, world, "/api/v1/live/devices/LMP-004")
    assert (silent["status"], silent["last_seen"], silent["readings"]) == ("unknown", None, {})
    assert api.get("/api/v1/live/devices/NOPE-1", headers=world.auth("vera")).status_code == 404


def test_a_circuit_and_a_station_are_summed_up(api: TestClient, world: World) -> None:
    circuit = get(api, world, "/api/v1/live/circuits/C-1")
    assert circuit["cabinet"]["device"] == "CAB-1" and circuit["cabinet"]["readings"]["voltage_l1"] == 229
    assert circuit["lamp_count"] == 4 and not circuit["truncated"]
    assert circuit["counts"] == {"ok": 2, "fault": 1, "offline": 0, "unknown": 1}
    lamps = {lamp["device"]: lamp for lamp in circuit["lamps"]}
    assert (lamps["LMP-002"]["active_power"], lamps["LMP-002"]["dim_level"]) == (95.5, 80)
    assert api.get("/api/v1/live/circuits/C-404", headers=world.auth("vera")).status_code == 404
    station = get(api, world, "/api/v1/live/stations/PS-1")
    assert station["station"]["readings"] == {"power_ok": True, "seq": 9, "wet_well_level": 2.5}
    assert station["pumps"] == [
        {"number": 1, "readings": {"current": 41.5, "running": True}},
        {"number": 2, "readings": {"fault": True, "running": False}},
    ]
    assert [(g["device"], g["water_depth"]) for g in station["gauges"]] == [("FG-1", 12.0)]
    assert api.get("/api/v1/live/stations/LMP-001", headers=world.auth("vera")).status_code == 404


# --- reports, health, metrics ---------------------------------------------------------------------------


def test_reports_are_served_as_html_and_csv(api: TestClient, world: World) -> None:
    html = api.get("/api/v1/reports/weekly", headers=world.auth("vera"), params={"period": "2026-W38"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "2026-09-14" in html.text
    table = api.get(
        "/api/v1/reports/monthly", headers=world.auth("vera"), params={"period": "2026-09", "format": "csv"}
    )
    assert table.status_code == 200 and table.text.startswith("\ufeffrank,district,")
    assert (
        api.get(
            "/api/v1/reports/weekly", headers=world.auth("vera"), params={"period": "2026-11"}
        ).status_code
        == 422
    )
    future = api.get("/api/v1/reports/monthly", headers=world.auth("vera"), params={"period": "2030-01"})
    assert future.status_code == 422 and "has not begun" in future.json()["detail"]
    missing = api.get(
        "/api/v1/reports/weekly", headers=world.auth("vera"), params={"format": "csv", "table": "nope"}
    )
    assert missing.status_code == 404 and "tables: targets" in missing.json()["detail"]


def test_health_and_metrics_need_no_credentials(api: TestClient, world: World) -> None:
    health = api.get("/healthz")
    assert health.json() == {
        "status": "ok",
        "checks": {"api_database": "ok", "alert_store": "ok", "registry": "ok", "influxdb": "ok"},
    }
    get(api, world, "/api/v1/alerts/" + world.alerts["LMP-001"].id, user="east")
    text = api.get("/metrics").text
    assert 'citywatch_api_requests_total{method="GET",route="/api/v1/alerts/{alert_id}",status="200"}' in text
    assert "citywatch_api_request_seconds_bucket" in text
    assert world.alerts["LMP-001"].id not in text  # templates, never ids


def test_the_openapi_document_is_published_with_typed_responses(api: TestClient) -> None:
    schema = api.get("/api/openapi.json").json()
    alerts = schema["paths"]["/api/v1/alerts"]["get"]["responses"]
    assert alerts["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AlertPage"
    }
    assert "application/problem+json" in alerts["403"]["content"]
    assert {"token", "api_key"} <= set(schema["components"]["securitySchemes"])
    assert api.get("/api/docs").status_code == 200
