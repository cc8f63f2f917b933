"""The API's routers, one module per area; each route's role comes from ``api.roles``."""

from __future__ import annotations

from typing import Any, Final

from api.problems import Problem


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of these error statuses (problem details)."""
    return {status: {"model": Problem} for status in statuses}


#: What any authenticated route may answer besides its own success (400: a body that cannot be parsed).
GUARDED: Final = problems(400, 401, 403, 422, 429, 503)
