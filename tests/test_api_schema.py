"""Schemathesis against the API's own OpenAPI document, on a real server (uvicorn on 127.0.0.1) over real
stores: generated requests, valid and invalid, to every operation, signed in as an admin with an API key.
No response may be a server error, and every response must be one the document declares (status, media
type, headers, body schema). Bounded: a few examples per operation, so the whole module stays well
under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analytics.alerts.policy import AlertPolicy, PolicyConfig
from analytics.alerts.routing import Contacts
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from analytics.reports.model import ReportConfig
from api.app import create_app
from api.deps import ApiDeps
from api.roles import Role
from api.server import ApiServer
from api.settings import ApiSettings
from citywatch.localstack import LocalInfluxDB, free_port
from ingest.influx import InfluxTarget
from tests.api_world import NOW, World, build_world, drop_influx

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, influxdb_server: LocalInfluxDB) -> Iterator[World]:
    # every live feed ends after 0.05 s (a generated request reads one to its end); no request budget,
    # schemathesis sends hundreds of requests a second as one caller
    w = build_world(
        tmp_path_factory.mktemp("api-schema"),
        influxdb_server.url,
        feed_max_s=0.05,
        feed_poll_s=0.01,
        requests_per_s=0,
    )
    yield w
    drop_influx(w.influx_url, w.db)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[str, str]]:
    with world.accounts() as accounts:
        key, _ = accounts.create_key("schemathesis", Role.ADMIN, "", "test", NOW)
    with ApiServer(world.app(), "127.0.0.1", free_port()) as server:
        yield server.url, key


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _document() -> dict[str, Any]:
    """The OpenAPI document, from an app that is never started (nothing here opens a store)."""
    deps = ApiDeps(
        settings=ApiSettings(),
        registry_url="sqlite://",
        alerts_url="sqlite://",
        accounts_url="sqlite://",
        influx=InfluxTarget(url="http://127.0.0.1:9", db="unused"),
        alert_policy=lambda locator: AlertPolicy(
            PolicyConfig(), SeverityPolicy(SeverityConfig(), WorkCalendar()), Contacts.empty(), locator
        ),
        report_config=ReportConfig(),
    )
    return create_app(deps).openapi()


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_server_error_or_an_undeclared_response(
    case: Any, live: tuple[str, str], http: requests.Session
) -> None:
    url, key = live
    headers = {"X-API-Key": key}
    # Sent with requests itself: schemathesis' own sender trips over the installed urllib3 (2.7) when it
    # counts pooled connections; what is sent and how the answer is judged are schemathesis' all the same.
    request = case.as_transport_kwargs(base_url=url, headers=headers)
    response = http.request(**request, timeout=30, allow_redirects=False)
    case.validate_response(response, checks=CHECKS, headers=headers, transport_kwargs={"base_url": url})
