"""The operations HTTP API: assets, live state, history, rates, alerts, the live feed and reports, behind
users, roles, tokens and API keys, with every write in an audit log.

Pure: ``roles`` (who may do what, one table), ``windows`` (time ranges, downsampling windows, rate
buckets, report periods), ``asset_filters`` (search filters to SQL expressions), ``throttle`` (login and
request budgets), ``rate_math`` (rates from summed counts, closure windows), ``live_status``. Adapters:
``accounts`` and ``audit`` (SQL), ``influx_read`` (InfluxQL over HTTP), ``asset_search`` (the registry's
table), the FastAPI ``app`` with its ``routes``, and ``server`` (uvicorn in a thread).

Exceptions::

    ApiError                    a request cannot be served; ``status`` is its HTTP status
     ├── NotAuthenticated       401: no credentials, or a token or key that is unknown, expired or revoked
     ├── Forbidden              403: the role (or crew) may not do this
     ├── NotFound               404: no such asset, alert, user or key
     ├── Conflict               409: it exists already, or changed meanwhile
     ├── TooLarge               413: an upload over the limit
     ├── Unprocessable          422: a parameter out of bounds (a range too long, too many points)
     ├── TooManyRequests        429: too many failed sign-ins or requests; ``retry_after_s``
     └── Unavailable            503: a backing service (database, InfluxDB) is away, or the feed is full
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """Root of every error raised by the api package; carries its HTTP status and a reason for people."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, extra: Mapping[str, object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})


class NotAuthenticated(ApiError):
    status = 401
    title = "Not authenticated"


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class NotFound(ApiError):
    status = 404
    title = "Not found"


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class TooLarge(ApiError):
    status = 413
    title = "Content too large"


class Unprocessable(ApiError):
    status = 422
    title = "Unprocessable request"


class TooManyRequests(ApiError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail, extra={"retry_after_s": round(retry_after_s, 1)})
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    status = 503
    title = "Service unavailable"
