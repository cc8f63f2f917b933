"""Fixtures that start a real Mosquitto and a real InfluxDB on free ports (see citywatch.localstack).

A missing ``mosquitto`` or ``influxd`` fails the test instead of skipping it: an integration test that
silently did not run would report a pass it never earned.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from citywatch.localstack import LocalInfluxDB, LocalMosquitto, LocalServiceError, find_binary


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """One database on an InfluxDB 1.x server."""

    url: str
    db: str


def _require(binary: str) -> None:
    try:
        find_binary(binary)
    except LocalServiceError as error:
        pytest.fail(f"{error} -- integration tests need the real server", pytrace=False)


def _influx_query(url: str, statement: str) -> None:
    # trust_env=False: a local server must not be reached through a proxy from the environment.
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        response = client.post(f"{url}/query", data={"q": statement})
    response.raise_for_status()
    errors = [result["error"] for result in response.json().get("results", []) if "error" in result]
    assert not errors, f"{statement}: {errors}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A fresh broker of this test's own, started; stopped afterwards."""
    _require("mosquitto")
    with LocalMosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="session")
def influxdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalInfluxDB]:
    """One InfluxDB for the whole session (it takes a second or two to start); use ``influx_db``."""
    _require("influxd")
    with LocalInfluxDB(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


@pytest.fixture
def influx_db(influxdb_server: LocalInfluxDB) -> Iterator[InfluxTarget]:
    """A fresh, empty database on the session's InfluxDB, dropped afterwards."""
    target = InfluxTarget(url=influxdb_server.url, db=f"test_{uuid.uuid4().hex[:12]}")
    _influx_query(target.url, f'CREATE DATABASE "{target.db}"')
    yield target
    _influx_query(target.url, f'DROP DATABASE "{target.db}"')


@pytest.fixture
def influxdb_own(tmp_path: Path) -> Iterator[LocalInfluxDB]:
    """An InfluxDB of this test's own, for tests that stop, kill or restart the database."""
    _require("influxd")
    with LocalInfluxDB(tmp_path / "influxdb") as server:
        yield server
