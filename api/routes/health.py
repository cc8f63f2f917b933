"""Health and metrics, for load balancers and Prometheus: no credentials.

``/healthz`` asks each backing store a trivial question (the MQTT broker is not the API's: it answers
from the stores alone). ``/metrics`` is open too: it holds counts and latencies per route template, never
an id, a name or a token, and a scraper then needs no key; put it behind the network's rules if even
that is too much.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import Services
from api.schemas import HealthOut
from api.security import Svc

router = APIRouter(tags=["operations"])


def _checks(svc: Services) -> dict[str, Callable[[], object]]:
    return {
        "api_database": svc.accounts.ping,
        "alert_store": svc.alerts.last_transition_id,
        "registry": lambda: svc.registry.get("-"),
        "influxdb": svc.reader.ping,
    }


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "a backing store does not answer"}},
)
def healthz(svc: Svc) -> JSONResponse:
    """ok when the API database, the alert store, the registry and InfluxDB all answer."""
    results: dict[str, str] = {}
    for name, check in _checks(svc).items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # report every failure, whatever it is: that is this route's job
            results[name] = f"failed: {exc}"[:300]
    healthy = all(v == "ok" for v in results.values())
    body = HealthOut(status="ok" if healthy else "degraded", checks=results)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}
    },
)
def metrics(svc: Svc) -> Response:
    """Requests and latency per route template, sign-ins, live feed clients (Prometheus text format)."""
    return Response(svc.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
