"""Errors as problem details (RFC 9457, ``application/problem+json``): a status, a title, a detail a person
can act on, and extra members where they help (``errors`` for invalid parameters, ``retry_after_s``).

The API's own errors (``api.ApiError``) carry their status; errors of the packages underneath are mapped
here, once: an unknown alert is 404, a move the lifecycle lacks or a change made meanwhile is 409, an
asset the registry cannot accept 422, a database or InfluxDB that is away 503.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from analytics.alerts import AlertConfigError, AlertError, IllegalTransition, UnknownAlert
from analytics.alerts.store import AlertStoreError, StaleAlert
from analytics.reports import ReportError
from api import ApiError, TooManyRequests
from devices import RegistryError
from devices.assets import AssetError
from ingest import InfluxError

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem(status: int, title: str, detail: str, request: Request, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body["instance"] = request.url.path
    body.update(extra)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="citywatch"'
    retry = extra.get("retry_after_s")
    if isinstance(retry, int | float):
        headers["Retry-After"] = str(max(1, round(retry)))
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _foreign(exc: Exception) -> tuple[int, str]:
    """Status and title of an error from a package underneath."""
    if isinstance(exc, UnknownAlert):
        return 404, "Not found"
    if isinstance(exc, IllegalTransition | StaleAlert):
        return 409, "Conflict"
    if isinstance(exc, AssetError | ReportError | AlertConfigError):
        return 422, "Unprocessable request"
    if isinstance(exc, AlertStoreError | RegistryError | InfluxError | AlertError):
        return 503, "Service unavailable"
    return 500, "Internal error"


def _validation_errors(errors: Any) -> list[dict[str, str]]:
    out = []
    for e in errors:
        where = ".".join(
            str(part) for part in e.get("loc", ()) if part != "body" or len(e.get("loc", ())) == 1
        )
        out.append({"where": where, "message": str(e.get("msg", "invalid"))})
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem response."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        extra = dict(exc.extra)
        if isinstance(exc, TooManyRequests):
            extra["retry_after_s"] = exc.retry_after_s
        return problem(exc.status, exc.title, exc.detail, request, **extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc.errors())
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors[:5]) or "invalid request"
        return problem(422, "Invalid request", detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail), request)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    for error in (AlertError, RegistryError, InfluxError, ReportError):

        @app.exception_handler(error)
        async def _underneath(request: Request, exc: Exception) -> JSONResponse:
            status, title = _foreign(exc)
            if status >= 500:
                log.warning("%s %s: %s", request.method, request.url.path, exc)
            return problem(status, title, str(exc), request)


_TITLES: Final[Mapping[int, str]] = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    422: "Unprocessable request",
}


def problem_content_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare error responses as ``application/problem+json`` in the OpenAPI document (FastAPI puts
    every response model under the route's media type: ``application/json``, ``text/html`` ...)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content") or {}
                # under the route's own media type (text/html for a report), whatever that is
                problem_schemas = [
                    c["schema"]
                    for c in content.values()
                    if c.get("schema", {}).get("$ref", "").endswith("/Problem")
                ]
                if status[:1] in ("4", "5") and problem_schemas:
                    response["content"] = {PROBLEM_JSON: {"schema": problem_schemas[0]}}
    return schema
