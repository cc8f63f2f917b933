"""The FastAPI application: ``create_app(deps)``.

Its lifespan opens the clients (registry, alert store and service, InfluxDB, accounts and audit log) and
closes them at shutdown. The OpenAPI document is at ``/api/openapi.json``, its pages at ``/api/docs``.
Every request is counted (``api.metrics``) and every write audited (``api.audit``), including routers
handed over by other teams: pass them as ``extra_routers`` and each of their routes is role-checked by
``api.roles`` (for ``/api/v1/commands``: operators and admins).

The crew page and the control-room overview are served at ``/crew`` and ``/overview``
(``api.routes.pages``), their scripts and styles from ``api/static/`` under ``/static``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from api import problems
from api.audit import AuditLog, AuditMiddleware
from api.deps import ApiDeps, Services, open_services
from api.metrics import ApiMetrics, MetricsMiddleware
from api.roles import V1
from api.routes import (
    accounts,
    alerts,
    assets,
    auth,
    fault_map,
    feed,
    health,
    history,
    live,
    pages,
    rates,
    reports,
)
from api.security import authorize

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"
_OWN_ROUTERS: Final = (
    pages.router,  # /crew and /overview (shells without data: no sign-in)
    fault_map.router,  # its lifespan runs inside the app's: the services exist by then
    auth.router,
    accounts.router,
    assets.router,
    live.router,
    history.router,
    rates.router,
    alerts.router,
    feed.router,
    reports.router,
    health.router,
)


def create_app(deps: ApiDeps, *, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """The API on ``deps``; ``extra_routers`` (device commands) are included behind the role check."""
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ExitStack() as stack:
            app.state.services = open_services(deps, metrics, stack)
            log.info("API ready: registry %s, alerts %s", deps.registry_url, deps.alerts_url)
            try:
                yield
            finally:
                app.state.services = None

    app = FastAPI(
        title="CityWatch API",
        version="1",
        summary="Streetlights, bridges, pump stations, flood gauges and bins: assets, live state, history, "
        "rates, alerts, the live feed and reports.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = None
    problems.install(app)
    for router in _OWN_ROUTERS:
        app.include_router(router)
    for router in extra_routers:
        # The role check reads the matched route's own path: a handed-over router carries its full
        # prefix (APIRouter(prefix="/api/v1/commands")) rather than getting one when included.
        paths = [str(getattr(r, "path", "")) for r in router.routes]
        strays = [p for p in paths if not p.startswith(V1 + "/")]
        if strays:
            raise ValueError(f"routes outside {V1}/ (give the router its full prefix): {strays[:3]}")
        app.include_router(router, dependencies=[Depends(authorize)])
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    def audit_log() -> AuditLog | None:
        services: Services | None = app.state.services
        return None if services is None else services.audit

    app.add_middleware(AuditMiddleware, audit_log=audit_log, clock=deps.clock_ms)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if deps.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=deps.settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            app.openapi_schema = problems.problem_content_types(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
