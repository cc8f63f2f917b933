"""``citywatch dashboards push`` against a local HTTP server that answers as Grafana's API does and records
every request: the folder is created once, each dashboard written with overwrite into it, the token sent
as a Bearer token, and a second push writes nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from citywatch.cli import app
from dashboards.build import build_all
from dashboards.influxql import DATASOURCE_UID
from dashboards.push import connect, influx_datasource, push

TOKEN = "glsa_test_token_0123456789"
FOLDER = "citywatch"


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str
    body: Any


@dataclass
class GrafanaState:
    """What the fake Grafana holds, and every request it was sent."""

    token: str = TOKEN
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]


class _Handler(BaseHTTPRequestHandler):
    state: GrafanaState

    def log_message(self, *_: object) -> None:  # keep pytest's output quiet
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization", "")
        self.state.requests.append(Recorded(self.command, self.path, auth, body))
        if auth != f"Bearer {self.state.token}":
            self._answer(401, {"message": "invalid API key"})
            return
        status, answer = self._route(body)
        self._answer(status, answer)

    def _route(self, body: Any) -> tuple[int, Any]:
        s, parts = self.state, self.path.strip("/").split("/")
        missing = (404, {"message": "not found"})
        match (self.command, parts):
            case ("GET", ["api", "folders", uid]):
                return (200, s.folders[uid]) if uid in s.folders else missing
            case ("POST", ["api", "folders"]):
                s.folders[body["uid"]] = {
                    "uid": body["uid"],
                    "title": body["title"],
                    "id": len(s.folders) + 1,
                }
                return 200, s.folders[body["uid"]]
            case ("GET", ["api", "dashboards", "uid", uid]):
                return (200, s.dashboards[uid]) if uid in s.dashboards else missing
            case ("POST", ["api", "dashboards", "db"]):
                model, uid = body["dashboard"], body["dashboard"]["uid"]
                version = s.dashboards.get(uid, {}).get("dashboard", {}).get("version", 0) + 1
                stored = {**model, "id": 100 + len(s.dashboards), "version": version}
                s.dashboards[uid] = {"dashboard": stored, "meta": {"folderUid": body.get("folderUid")}}
                return 200, {"status": "success", "uid": uid, "version": version}
            case ("GET", ["api", "datasources", "uid", uid]):
                return (200, s.datasources[uid]) if uid in s.datasources else missing
            case ("POST", ["api", "datasources"]):
                s.datasources[body["uid"]] = {k: v for k, v in body.items() if k != "secureJsonData"}
                return 200, {"message": "Datasource added"}
            case ("PUT", ["api", "datasources", "uid", uid]):
                s.datasources[uid] = {k: v for k, v in body.items() if k != "secureJsonData"}
                return 200, {"message": "Datasource updated"}
        return missing

    do_GET = do_POST = do_PUT = _handle  # noqa: N815 - http.server's names


@pytest.fixture
def grafana() -> Iterator[tuple[str, GrafanaState]]:
    state = GrafanaState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_first_push_creates_the_folder_once_and_writes_every_dashboard_with_overwrite(
    grafana: tuple[str, GrafanaState],
) -> None:
    url, state = grafana
    models = build_all()
    report = push(connect(url, TOKEN, 10.0), models.values(), FOLDER, "CityWatch")

    assert report.folder_created and set(report.written) == set(models) and not report.unchanged
    folder_posts = [r for r in state.writes() if r.path == "/api/folders"]
    assert [r.body for r in folder_posts] == [{"title": "CityWatch", "uid": FOLDER}]
    posts = [r.body for r in state.writes() if r.path == "/api/dashboards/db"]
    assert sorted(b["dashboard"]["uid"] for b in posts) == sorted(models)
    for body in posts:
        assert body["overwrite"] is True and body["folderUid"] == FOLDER
        assert body["dashboard"]["panels"] == models[body["dashboard"]["uid"]]["panels"]
    assert all(r.authorization == f"Bearer {TOKEN}" for r in state.requests)


def test_a_second_push_writes_nothing(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    models = build_all()
    push(connect(url, TOKEN, 10.0), models.values(), FOLDER, "CityWatch")
    before = len(state.writes())

    report = push(connect(url, TOKEN, 10.0), models.values(), FOLDER, "CityWatch")

    assert not report.folder_created and not report.written and set(report.unchanged) == set(models)
    assert len(state.writes()) == before


def test_a_dashboard_edited_in_grafana_is_put_back_and_only_that_one(
    grafana: tuple[str, GrafanaState],
) -> None:
    url, state = grafana
    models = build_all()
    push(connect(url, TOKEN, 10.0), models.values(), FOLDER, "CityWatch")
    state.dashboards["citywatch-drainage"]["dashboard"]["title"] = "edited by hand"
    before = len(state.writes())

    report = push(connect(url, TOKEN, 10.0), models.values(), FOLDER, "CityWatch")

    assert report.written == ("citywatch-drainage",)
    assert (
        state.dashboards["citywatch-drainage"]["dashboard"]["title"] == models["citywatch-drainage"]["title"]
    )
    assert len(state.writes()) == before + 1


def test_the_data_source_is_created_once_with_the_uid_the_panels_name(
    grafana: tuple[str, GrafanaState],
) -> None:
    url, state = grafana
    spec = influx_datasource("http://influxdb:8086", "citywatch", token="influx-token")
    first = push(connect(url, TOKEN, 10.0), [], FOLDER, "CityWatch", spec)
    second = push(connect(url, TOKEN, 10.0), [], FOLDER, "CityWatch", spec)

    assert (first.datasource, second.datasource) == ("created", "unchanged")
    (created,) = [r.body for r in state.writes() if r.path == "/api/datasources"]
    assert created["uid"] == DATASOURCE_UID and created["type"] == "influxdb"
    assert created["jsonData"]["version"] == "InfluxQL" and created["jsonData"]["dbName"] == "citywatch"
    assert created["secureJsonData"]["httpHeaderValue1"] == "Token influx-token"


def test_the_command_pushes_and_reports(
    grafana: tuple[str, GrafanaState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = grafana
    monkeypatch.delenv("CITYWATCH_GRAFANA_TOKEN", raising=False)
    runner = CliRunner()
    args = [
        "dashboards",
        "push",
        "--grafana-url",
        url,
        "--token",
        TOKEN,
        "--influx-url",
        "http://influx:8086",
    ]

    first = runner.invoke(app, args)
    second = runner.invoke(app, args)

    assert first.exit_code == 0, first.output
    assert "folder CityWatch (citywatch): created" in first.output
    assert "data source created" in first.output
    assert second.exit_code == 0, second.output
    assert "dashboards written: none" in second.output and "data source unchanged" in second.output
    assert set(state.dashboards) == set(build_all())


def test_a_refused_token_fails_the_command_with_grafanas_reason(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    result = CliRunner().invoke(app, ["dashboards", "push", "--grafana-url", url, "--token", "wrong"])

    assert result.exit_code == 2
    assert "invalid API key" in result.output or "Unauthorized" in result.output
    assert not state.dashboards
