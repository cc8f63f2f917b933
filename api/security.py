"""Authentication and the role check every route goes through (FastAPI dependencies, adapter).

``authorize`` finds who is calling (a bearer token from ``POST /api/v1/auth/token``, or an API key in
``X-API-Key`` or as the bearer value), looks the matched route up in ``api.roles`` and refuses what the
caller's role may not do: 401 without valid credentials, 403 for the wrong role or a route nobody placed
in the table. It also spends the caller's request budget and tells the audit log who it is. Routers
handed over by other teams are included with it as a router dependency, so they are checked too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from api import Forbidden, NotAuthenticated
from api.accounts import KEY_PREFIX
from api.audit import note_of
from api.deps import Services, services
from api.roles import Principal, allowed, area_of

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 (a path)

bearer = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    scheme_name="token",
    description="A token from POST /api/v1/auth/token (or an API key) as `Authorization: Bearer ...`",
)
api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="api_key", description="An API key for machine clients"
)


def authenticate(svc: Services, token: str | None, key: str | None) -> Principal:
    if key is None and token is not None and token.startswith(KEY_PREFIX):
        token, key = None, token
    if key is not None:
        principal = svc.accounts.principal_for_key(key)
        if principal is None:
            raise NotAuthenticated("the API key is not valid (unknown or revoked)")
        return principal
    if token is None:
        raise NotAuthenticated("sign in: POST /api/v1/auth/token, then send Authorization: Bearer <token>")
    principal = svc.accounts.principal_for_token(token, svc.clock_ms())
    if principal is None:
        raise NotAuthenticated("the token is not valid (unknown, expired or signed out): sign in again")
    return principal


def authorize(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    token: Annotated[str | None, Depends(bearer)],
    key: Annotated[str | None, Depends(api_key)],
) -> Principal:
    """The caller, if its role may use the matched route (a FastAPI dependency)."""
    principal = authenticate(svc, token, key)
    note_of(request.scope).principal = principal
    template = getattr(request.scope.get("route"), "path", "")
    area = area_of(request.method, template)
    if area is None:
        raise Forbidden(f"{request.method} {template} is in no area of the role table: nobody may use it yet")
    if not allowed(principal.role, area):
        raise Forbidden(f"a {principal.role.value} may not use {request.method} {template} ({area.value})")
    svc.budgets.spend(principal.actor)
    return principal


Caller = Annotated[Principal, Depends(authorize)]
Svc = Annotated[Services, Depends(services)]


def caller_name(caller: Caller) -> str:
    """The caller's name as histories record it (``key:<name>`` for an API key), for routers that want
    a name rather than a Principal: the command desk's ``actor`` and ``reader``. The role check is
    ``authorize``'s, by the route's area."""
    return caller.actor
