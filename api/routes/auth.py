"""Signing in and out: a password for a bearer token (OAuth 2 password form, so /api/docs can sign in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm

from api import NotAuthenticated, TooManyRequests
from api.audit import note_of
from api.roles import ROLE_TABLE, V1
from api.routes import GUARDED, problems
from api.schemas import MeOut, TokenOut
from api.security import Caller, Svc, bearer
from api.windows import from_ms

router = APIRouter(prefix=V1, tags=["session"])


@router.post("/auth/token", responses=problems(401, 422, 429, 503))
def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], svc: Svc) -> TokenOut:
    """Exchange a user's name and password for a bearer token (valid ``token_ttl_s``)."""
    note = note_of(request.scope)
    note.actor = form.username[:80]
    note.summary = f"sign in as {form.username[:80]}"
    client = request.client.host if request.client else ""
    keys = (f"name:{form.username}", f"addr:{client}")
    wait = svc.budgets.login_wait_s(keys)
    if wait > 0:
        svc.metrics.sign_ins.labels("throttled").inc()
        raise TooManyRequests("too many failed sign-ins: wait before trying again", wait)
    issued = svc.accounts.sign_in(form.username, form.password, svc.clock_ms(), svc.settings.token_ttl_s)
    if issued is None:
        svc.budgets.login_failed(keys)
        svc.metrics.sign_ins.labels("refused").inc()
        raise NotAuthenticated("wrong name or password, or the user is disabled")
    svc.budgets.login_succeeded(keys[0])
    svc.metrics.sign_ins.labels("ok").inc()
    user = issued.user
    return TokenOut(
        access_token=issued.token,
        expires_at=from_ms(issued.expires_ms),
        user=user.name,
        role=user.role,
        crew=user.crew,
    )


@router.post("/auth/logout", status_code=204, responses=GUARDED)
async def sign_out(
    request: Request, caller: Caller, svc: Svc, token: Annotated[str | None, Depends(bearer)]
) -> Response:
    """Revoke the token this request carries (an API key is revoked by an admin: DELETE /keys/{id})."""
    note_of(request.scope).summary = f"sign out {caller.actor}"
    if token is not None and caller.via == "token":
        await run_in_threadpool(svc.accounts.revoke_token, token, svc.clock_ms())
    return Response(status_code=204)


@router.get("/me", responses=GUARDED)
def me(caller: Caller) -> MeOut:
    """Who the credentials belong to, and what its role may do."""
    areas = sorted(area.value for area, roles in ROLE_TABLE.items() if caller.role in roles)
    return MeOut(name=caller.name, role=caller.role, crew=caller.crew, via=caller.via, areas=areas)
