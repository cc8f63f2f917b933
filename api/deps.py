"""What the API runs on: ``ApiDeps`` (what the composition root hands ``create_app``) and ``Services``
(the clients the app's lifespan opens from them and closes at shutdown), and the FastAPI dependency that
gives a route the services.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from fastapi import Request

from analytics.alerts.policy import AlertPolicy
from analytics.alerts.routing import Locator, Place
from analytics.alerts.service import AlertService
from analytics.alerts.store import AlertStore
from analytics.reports.model import ReportConfig
from api import TooManyRequests, Unavailable
from api.accounts import AccountStore
from api.asset_search import AssetSearch
from api.audit import AuditLog
from api.influx_read import InfluxReader
from api.metrics import ApiMetrics
from api.settings import ApiSettings
from api.throttle import LoginThrottle, RequestBudget
from devices.kinds import DeviceKind
from devices.registry import Registry
from ingest.influx import InfluxTarget, InfluxV1


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ApiDeps:
    """Where everything is, and how to decide on alerts; built by ``citywatch.services``."""

    settings: ApiSettings
    registry_url: str
    alerts_url: str
    accounts_url: str
    influx: InfluxTarget
    alert_policy: Callable[[Locator], AlertPolicy]  # the city's contacts, severity and calendar
    report_config: ReportConfig
    rules_file: Path | None = None
    clock_ms: Callable[[], int] = wall_ms
    password_hasher: PasswordHasher | None = None


class RegistryLocator:
    """Where an alert's subject is, from the registry row of the device (``Locator`` for the API's alert
    actions). A person's reopen checks planned works by circuit and gateway; nothing else here needs a
    place, so the API does not build the analytics topology (a million lamps) for it."""

    _DEVICE_KINDS = frozenset(k.value for k in DeviceKind)

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def place(self, subject_kind: str, subject: str) -> Place:
        if subject_kind not in self._DEVICE_KINDS:
            return Place()
        asset = self.registry.get(subject)
        if asset is None:
            return Place()
        return Place(asset.district, asset.road, asset.grid_cell, asset.crew, asset.circuit, asset.gateway)


class FeedGate:
    """Counts live feed connections; refuses one past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.open >= self.limit:
                raise Unavailable(f"the live feed has its {self.limit} clients; try again later")
            self.open += 1

    def leave(self) -> None:
        with self._lock:
            self.open -= 1


@dataclass(slots=True)
class Budgets:
    """Sign-in and request budgets behind one lock (the routes run in a thread pool)."""

    logins: LoginThrottle
    requests: RequestBudget | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login_wait_s(self, keys: tuple[str, ...]) -> float:
        with self.lock:
            return self.logins.wait_s(keys, time.monotonic())

    def login_failed(self, keys: tuple[str, ...]) -> None:
        with self.lock:
            self.logins.failed(keys, time.monotonic())

    def login_succeeded(self, name_key: str) -> None:
        with self.lock:
            self.logins.succeeded(name_key)

    def spend(self, who: str) -> None:
        if self.requests is None:
            return
        with self.lock:
            wait = self.requests.take(who, time.monotonic())
        if wait > 0:
            raise TooManyRequests(f"{who} sends more than {self.requests.rate:g} requests a second", wait)


@dataclass(frozen=True, slots=True)
class Services:
    settings: ApiSettings
    registry: Registry
    assets: AssetSearch
    alerts: AlertStore
    alert_service: AlertService
    influx: InfluxV1
    reader: InfluxReader
    accounts: AccountStore
    audit: AuditLog
    report_config: ReportConfig
    clock_ms: Callable[[], int]
    metrics: ApiMetrics
    budgets: Budgets
    feed: FeedGate


def open_services(deps: ApiDeps, metrics: ApiMetrics, stack: ExitStack) -> Services:
    """Open every client (closed by ``stack``)."""
    settings = deps.settings
    registry = stack.enter_context(Registry(deps.registry_url))
    assets = AssetSearch(deps.registry_url)
    stack.callback(assets.close)
    alerts = stack.enter_context(AlertStore(deps.alerts_url))
    # The API's service only acts for people: no outbox sender (the analytics worker's service sends
    # what the actions leave in the outbox) and no event export (the worker's service exports them).
    alert_service = AlertService(
        deps.alert_policy(RegistryLocator(registry)), alerts, None, None, "api", rules_file=deps.rules_file
    )
    influx = stack.enter_context(InfluxV1(deps.influx))
    accounts = stack.enter_context(AccountStore(deps.accounts_url, deps.password_hasher))
    audit = AuditLog(accounts.engine, accounts.where)
    rate = settings.requests_per_s
    budgets = Budgets(
        LoginThrottle(settings.login_max_failures, settings.login_window_s),
        RequestBudget(rate, settings.request_burst) if rate > 0 else None,
    )
    return Services(
        settings=settings,
        registry=registry,
        assets=assets,
        alerts=alerts,
        alert_service=alert_service,
        influx=influx,
        reader=InfluxReader(influx),
        accounts=accounts,
        audit=audit,
        report_config=deps.report_config,
        clock_ms=deps.clock_ms,
        metrics=metrics,
        budgets=budgets,
        feed=FeedGate(settings.feed_max_clients),
    )


def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency)."""
    found: Services | None = getattr(request.app.state, "services", None)
    if found is None:
        raise Unavailable("the API is starting or stopping")
    return found
