"""Who may do what through the API: every route against every role, crews held to their own alerts,
tokens that expire or are revoked, API keys, sign-in throttling, dev-mode demo users, and an audit
entry (who, what, when, how it ended) for every write, refused ones included.

Against the real stores: the SQLite registry, alert store and API database, and the session's InfluxDB.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute, iter_route_contexts

from analytics.alerts.model import AlertState
from api.accounts import AccountStore
from api.app import create_app
from api.roles import ROLE_TABLE, ROUTE_AREAS, Role, area_of
from api.security import caller_name
from citywatch.cli_api import ensure_demo_users
from citywatch.localstack import LocalInfluxDB
from tests.api_world import (
    EAST,
    FAST_HASHER,
    NOW,
    PASSWORD,
    USERS,
    WEST,
    TestClient,
    World,
    build_world,
    client,
    drop_influx,
    make_alert,
)

pytestmark = pytest.mark.integration

PLACEHOLDERS = {
    "alert_id": "lamp_failure:NOPE:1",
    "asset_id": "NO-SUCH-ASSET",
    "device_id": "NO-SUCH-DEVICE",
    "circuit_id": "NO-SUCH-CIRCUIT",
    "station_id": "NO-SUCH-STATION",
    "field": "active_power",
    "name": "nobody-at-all",
    "key_id": "0000000000000000",
    "kind": "weekly",
}
# Routes that change the caller's own session are exercised on their own below.
SESSION_ROUTES = {("POST", "/api/v1/auth/logout")}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, influxdb_server: LocalInfluxDB) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("api-access"), influxdb_server.url, feed_max_s=0.2)
    yield w
    drop_influx(w.influx_url, w.db)


@pytest.fixture(scope="module")
def api(world: World) -> Iterator[TestClient]:
    with client(world) as c:
        yield c


def guarded_routes(api: TestClient) -> list[tuple[str, str]]:
    """(method, path template) of every API route but the sign-in, as FastAPI serves them."""
    routes = []
    for context in iter_route_contexts(api.app.routes):  # type: ignore[attr-defined]
        route, path = context.original_route, context.path or ""
        if isinstance(route, APIRoute) and path.startswith("/api/v1") and path != "/api/v1/auth/token":
            routes.extend((method, path) for method in sorted(route.methods))
    return routes


def call(api: TestClient, method: str, template: str, headers: dict[str, str]) -> Any:
    path = re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m[1]], template)
    params = {"max_s": "0.1"} if template.endswith("/feed") else None
    return api.request(method, path, headers=headers, params=params)


def test_every_route_of_the_app_is_in_the_role_table(api: TestClient) -> None:
    routes = guarded_routes(api)
    assert routes, "no routes found"
    missing = [r for r in routes if area_of(*r) is None]
    assert missing == []
    listed_elsewhere = {r for r in set(ROUTE_AREAS) - set(routes) if r[1].startswith("/api/v1/commands")}
    assert set(routes) | listed_elsewhere == set(ROUTE_AREAS), "the role table lists a route nobody serves"


def test_every_route_refuses_a_caller_without_credentials(api: TestClient) -> None:
    for method, template in guarded_routes(api):
        response = call(api, method, template, {})
        assert response.status_code == 401, (method, template, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"
    bad = call(api, "GET", "/api/v1/me", {"Authorization": "Bearer cwt_not-a-token"})
    assert bad.status_code == 401
    assert "sign in again" in bad.json()["detail"]


@pytest.mark.parametrize("user", sorted(USERS))
def test_every_route_admits_exactly_the_roles_of_its_area(api: TestClient, world: World, user: str) -> None:
    role, _crew = USERS[user]
    for method, template in guarded_routes(api):
        if (method, template) in SESSION_ROUTES:
            continue
        response = call(api, method, template, world.auth(user))
        area = area_of(method, template)
        assert area is not None
        if role in ROLE_TABLE[area]:
            assert response.status_code not in (401, 403), (user, method, template, response.text)
        else:
            assert response.status_code == 403, (user, method, template, response.text)
            assert f"a {role.value} may not use {method} {template}" in response.json()["detail"]


def test_a_crew_sees_and_acts_on_its_own_crews_alerts_only(api: TestClient, world: World) -> None:
    east, west = world.auth("east"), world.auth("west")
    theirs = world.alerts["LMP-101"]  # crew west
    listed = api.get("/api/v1/alerts", headers=east).json()["items"]
    assert listed and {a["crew"] for a in listed} == {EAST}
    assert api.get("/api/v1/alerts", headers=east, params={"crew": WEST}).status_code == 403
    assert api.get(f"/api/v1/alerts/{theirs.id}", headers=east).status_code == 403
    for action, body in (("ack", {}), ("note", {"note": "mine now"}), ("resolve", {"note": "fixed"})):
        refused = api.post(f"/api/v1/alerts/{theirs.id}/{action}", headers=east, json=body)
        assert refused.status_code == 403, action
        assert f"belongs to crew '{WEST}'" in refused.json()["detail"]
    with world.store() as store:
        assert store.get(theirs.id).state is AlertState.OPEN
        assert [t.event for t in store.history(theirs.id)] == ["create"]
    # its own crew may, and the operator may act on any crew's alert
    assert (
        api.post(f"/api/v1/alerts/{theirs.id}/note", headers=west, json={"note": "on site"}).status_code
        == 200
    )
    assert api.get(f"/api/v1/alerts/{theirs.id}", headers=world.auth("otto")).status_code == 200


def test_a_crew_hands_alerts_within_its_crew_only_and_cannot_confirm(api: TestClient, world: World) -> None:
    alert = make_alert("LMP-004", EAST, opened=NOW - 5 * 60_000)
    world.add_alerts([alert])
    east = world.auth("east")
    assert api.post(f"/api/v1/alerts/{alert.id}/assign", headers=east, json={"crew": WEST}).status_code == 403
    assert api.post(f"/api/v1/alerts/{alert.id}/assign", headers=east, json={"crew": EAST}).status_code == 200
    assert api.post(f"/api/v1/alerts/{alert.id}/close", headers=east).status_code == 403


def test_a_viewer_reads_but_neither_acts_nor_commands(world: World) -> None:
    commands = APIRouter(prefix="/api/v1/commands")

    # stands in for the command desk's router (api.commanding.routes), wired as the lead will wire it
    @commands.post("/{device_id}/switch")
    def switch(device_id: str, who: Annotated[str, Depends(caller_name)]) -> dict[str, str]:
        return {"sent": device_id, "by": who}

    @commands.get("")
    def sent(who: Annotated[str, Depends(caller_name)]) -> list[str]:
        return [who]

    with TestClient(create_app(world.deps, extra_routers=[commands])) as c:
        viewer, operator = world.auth("vera"), world.auth("otto")
        assert c.get("/api/v1/alerts", headers=viewer).status_code == 200
        assert c.post(f"/api/v1/alerts/{world.alerts['LMP-001'].id}/ack", headers=viewer).status_code == 403
        refused = c.post("/api/v1/commands/LMP-001/switch", headers=viewer)
        assert refused.status_code == 403
        assert "(commands)" in refused.json()["detail"]
        assert c.post("/api/v1/commands/LMP-001/switch", headers=operator).json() == {
            "sent": "LMP-001",
            "by": "otto",
        }
        assert c.get("/api/v1/commands", headers=viewer).json() == ["vera"]  # anyone reads what was sent
        assert c.post("/api/v1/commands/LMP-001/switch").status_code == 401
        entries = c.get("/api/v1/audit", headers=world.auth("ada"), params={"limit": 5}).json()["entries"]
    mine = [e for e in entries if e["route"] == "/api/v1/commands/{device_id}/switch"]
    assert [(e["who"], e["outcome"], e["targets"]) for e in mine] == [
        ("anonymous", "denied", {"device_id": "LMP-001"}),
        ("otto", "ok", {"device_id": "LMP-001"}),
        ("vera", "denied", {"device_id": "LMP-001"}),
    ]


def test_writes_are_audited_with_who_what_when_and_outcome_and_reads_are_not(
    api: TestClient, world: World
) -> None:
    alert = make_alert("LMP-002", EAST, opened=NOW - 7 * 60_000)
    world.add_alerts([alert])
    world.clock.now_ms = NOW + 1000
    try:
        api.get(f"/api/v1/alerts/{alert.id}", headers=world.auth("east"))
        ok = api.post(f"/api/v1/alerts/{alert.id}/ack", headers=world.auth("east"), json={"note": "seen it"})
        assert ok.status_code == 200
        again = api.post(f"/api/v1/alerts/{alert.id}/ack", headers=world.auth("east"))
        assert again.status_code == 409
        assert "it cannot be acknowledge" in again.json()["detail"]
        entries = api.get("/api/v1/audit", headers=world.auth("ada"), params={"who": "east"}).json()[
            "entries"
        ]
    finally:
        world.clock.now_ms = NOW
    acks = [e for e in entries if e["targets"].get("alert_id") == alert.id]
    assert [(e["outcome"], e["status"]) for e in acks] == [("refused", 409), ("ok", 200)]
    first = acks[-1]
    assert first["who"] == "east" and first["role"] == "crew" and first["method"] == "POST"
    assert first["route"] == "/api/v1/alerts/{alert_id}/ack"
    assert first["summary"] == f"acknowledge alert {alert.id}: seen it"
    assert first["at"] == "2026-09-21T14:00:01Z"
    assert all(e["method"] != "GET" for e in entries)
    assert api.get("/api/v1/audit", headers=world.auth("otto")).status_code == 403


def test_a_password_signs_in_and_a_wrong_one_is_throttled(world: World) -> None:
    # an app of its own: the throttle it trips is that app's, and this client's address
    with TestClient(create_app(world.deps), client=("10.0.0.9", 40000)) as api:
        token = api.post("/api/v1/auth/token", data={"username": "vera", "password": PASSWORD})
        assert token.status_code == 200
        body = token.json()
        assert (body["token_type"], body["role"], body["user"]) == ("bearer", "viewer", "vera")
        me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
        assert (me["name"], me["via"]) == ("vera", "token")
        assert "alerts.act" not in me["areas"]
        for _ in range(world.deps.settings.login_max_failures):
            wrong = api.post("/api/v1/auth/token", data={"username": "ada", "password": "not the password"})
            assert wrong.status_code == 401
            assert wrong.json()["detail"] == "wrong name or password, or the user is disabled"
        throttled = api.post("/api/v1/auth/token", data={"username": "ada", "password": PASSWORD})
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) > 0
        entries = api.get(
            "/api/v1/audit", headers=world.auth("ada"), params={"who": "ada", "limit": 10}
        ).json()
        signs = [e for e in entries["entries"] if e["route"] == "/api/v1/auth/token"]
        assert [(e["outcome"], e["status"]) for e in signs[:2]] == [("refused", 429), ("denied", 401)]
        assert signs[0]["client"] == "10.0.0.9"
        metrics = api.get("/metrics").text
        assert 'citywatch_api_sign_ins_total{outcome="refused"} 5.0' in metrics


def test_an_expired_revoked_or_disabled_users_token_is_refused(api: TestClient, world: World) -> None:
    with world.accounts() as accounts:
        accounts.add_user("temp", Role.OPERATOR, "", PASSWORD, NOW)
        short = accounts.sign_in("temp", PASSWORD, NOW, ttl_s=60)
        other = accounts.sign_in("temp", PASSWORD, NOW, ttl_s=3600)
    assert short is not None and other is not None
    bearer = {"Authorization": f"Bearer {short.token}"}
    assert api.get("/api/v1/me", headers=bearer).status_code == 200
    world.clock.now_ms = NOW + 61_000
    try:
        assert api.get("/api/v1/me", headers=bearer).status_code == 401  # expired
        second = {"Authorization": f"Bearer {other.token}"}
        assert api.get("/api/v1/me", headers=second).status_code == 200
        assert api.post("/api/v1/auth/logout", headers=second).status_code == 204
        assert api.get("/api/v1/me", headers=second).status_code == 401  # revoked
        with world.accounts() as accounts:
            third = accounts.sign_in("temp", PASSWORD, NOW + 61_000, ttl_s=3600)
        assert third is not None
        patched = api.patch("/api/v1/users/temp", headers=world.auth("ada"), json={"disabled": True})
        assert patched.json()["disabled"] is True
        assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {third.token}"}).status_code == 401
        refused = api.post("/api/v1/auth/token", data={"username": "temp", "password": PASSWORD})
        assert refused.status_code == 401
    finally:
        world.clock.now_ms = NOW


def test_an_api_key_is_shown_once_carries_its_role_and_can_be_revoked(api: TestClient, world: World) -> None:
    created = api.post("/api/v1/keys", headers=world.auth("ada"), json={"name": "grafana", "role": "viewer"})
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["key_id"]
    listed = api.get("/api/v1/keys", headers=world.auth("ada")).json()
    assert next(k for k in listed if k["key_id"] == key_id)["created_by"] == "ada"
    assert all("key" not in k for k in listed)  # never shown again
    me = api.get("/api/v1/me", headers={"X-API-Key": key}).json()
    assert (me["name"], me["role"], me["via"]) == ("grafana", "viewer", "key")
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    ack = api.post(f"/api/v1/alerts/{world.alerts['LMP-001'].id}/ack", headers={"X-API-Key": key})
    assert ack.status_code == 403
    assert (
        api.post(
            "/api/v1/keys", headers=world.auth("ada"), json={"name": "grafana", "role": "viewer"}
        ).status_code
        == 409
    )
    crewless = api.post("/api/v1/keys", headers=world.auth("ada"), json={"name": "k2", "role": "crew"})
    assert crewless.status_code == 422
    assert api.delete(f"/api/v1/keys/{key_id}", headers=world.auth("ada")).status_code == 204
    assert api.get("/api/v1/me", headers={"X-API-Key": key}).status_code == 401
    assert api.get("/api/v1/me", headers={"X-API-Key": key[:-2] + "xx"}).status_code == 401


def test_users_are_added_by_admins_with_a_real_password_and_a_crew_for_crews(
    api: TestClient, world: World
) -> None:
    admin = world.auth("ada")
    short = api.post(
        "/api/v1/users", headers=admin, json={"name": "x1", "role": "viewer", "password": "short"}
    )
    assert short.status_code == 422
    crewless = api.post(
        "/api/v1/users", headers=admin, json={"name": "x2", "role": "crew", "password": PASSWORD}
    )
    assert crewless.status_code == 422 and "needs its crew" in crewless.json()["detail"]
    made = api.post(
        "/api/v1/users",
        headers=admin,
        json={"name": "li", "role": "crew", "crew": WEST, "password": PASSWORD},
    )
    assert made.status_code == 201 and made.json()["crew"] == WEST
    assert (
        api.post(
            "/api/v1/users", headers=admin, json={"name": "li", "role": "viewer", "password": PASSWORD}
        ).status_code
        == 409
    )
    names = [u["name"] for u in api.get("/api/v1/users", headers=admin).json()]
    assert "li" in names
    with world.accounts() as accounts:
        stored = accounts.engine.connect().exec_driver_sql(
            "SELECT password_hash FROM api_users WHERE name='li'"
        )
        assert stored.scalar().startswith("$argon2id$")  # hashed, never the password


def test_outside_dev_mode_nothing_exists_and_dev_mode_writes_private_demo_passwords(tmp_path: Path) -> None:
    with AccountStore(f"sqlite:///{tmp_path / 'api.db'}", FAST_HASHER) as accounts:
        assert accounts.users() == []  # no default credentials
        path = tmp_path / "var" / "api-users.txt"
        made = ensure_demo_users(accounts, [EAST, WEST], path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert {(u.name, u.role, u.crew) for u in made} == {
            ("admin", Role.ADMIN, ""),
            ("operator", Role.OPERATOR, ""),
            ("viewer", Role.VIEWER, ""),
            (f"{EAST}-on-call", Role.CREW, EAST),
            (f"{WEST}-on-call", Role.CREW, WEST),
        }
        lines = [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
        for name, _role, _crew, password in lines:
            assert accounts.sign_in(name, password, NOW, 60) is not None
        old = {line[0]: line[3] for line in lines}
        ensure_demo_users(accounts, [EAST], path)  # a second start: new passwords, old ones refused
        assert accounts.sign_in("admin", old["admin"], NOW, 60) is None
