"""InfluxDB through its v1-compatible HTTP API (adapter): line protocol to /write, InfluxQL to /query.

InfluxDB 1.x serves this API natively, 2.x as v1 compatibility (token auth, database mapped to a bucket)
and 3.x as well, so one client serves all three. Responses are classified into the errors the durable
writer acts on: transient (retry), points rejected (bisect to find the bad lines), too large (split).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from ingest import InfluxError, InfluxPointsRejected, InfluxTooLarge, InfluxTransientError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    url: str
    db: str
    user: str | None = None
    password: str | None = None
    token: str | None = None
    timeout_s: float = 10.0


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:500]
    return str(body)[:500]


class InfluxV1:
    """A thread-safe client for one database; a context manager that owns its connection pool."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        headers = {"Authorization": f"Token {target.token}"} if target.token else {}
        auth = (target.user, target.password or "") if target.user else None
        self._http = httpx.Client(
            base_url=target.url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=target.timeout_s,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def write(self, body: bytes, precision: str = "ms") -> None:
        """Write line protocol. Raises a classified InfluxError; returns only when every line was stored."""
        try:
            response = self._http.post(
                "/write",
                params={"db": self.target.db, "precision": precision},
                content=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise InfluxTransientError(f"write to {self.target.url} failed: {exc!r}") from exc
        status = response.status_code
        if status == 204:
            return
        text = _error_text(response)
        if status in (400, 422):
            raise InfluxPointsRejected(text)
        if status == 413:
            raise InfluxTooLarge(text)
        # 401/403/404 are configuration trouble (token, database); data is kept and retried
        # until an operator fixes it, never dropped.
        raise InfluxTransientError(f"HTTP {status}: {text}", _retry_after(response))

    def query(
        self, influxql: str, params: Mapping[str, object] | None = None, *, method: str = "GET"
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; ``params`` bind ``$name`` placeholders (never build queries from user input).

        Returns the series of the first statement: ``[{"name", "tags", "columns", "values"}]``.
        """
        query: dict[str, str] = {"db": self.target.db, "q": influxql, "epoch": "ms"}
        if params:
            query["params"] = json.dumps(dict(params))
        try:
            if method == "POST":
                response = self._http.post("/query", data=query)
            else:
                response = self._http.get("/query", params=query)
        except httpx.HTTPError as exc:
            raise InfluxTransientError(f"query to {self.target.url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise InfluxError(f"query failed: HTTP {response.status_code}: {_error_text(response)}")
        results = response.json().get("results", [])
        if not results:
            return []
        first = results[0]
        if "error" in first:
            raise InfluxError(f"query failed: {first['error']}")
        series: list[dict[str, Any]] = first.get("series", [])
        return series

    def create_database(self) -> None:
        """Create the database if missing (1.x; on 2.x / 3.x the bucket mapping is made by the operator)."""
        try:
            self.query(f'CREATE DATABASE "{self.target.db}"', method="POST")
        except InfluxError as exc:
            log.warning("could not create database %s (fine on InfluxDB 2.x / 3.x): %s", self.target.db, exc)
