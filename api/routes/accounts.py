"""Users, API keys and the audit log: the admin's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime

from api.accounts import ApiKey, User
from api.audit import AuditEntry, note_of
from api.roles import V1
from api.routes import GUARDED, problems
from api.schemas import (
    NAME_REGEX,
    AuditEntryOut,
    AuditPage,
    KeyCreated,
    KeyIn,
    KeyOut,
    UserIn,
    UserOut,
    UserPatch,
    when,
)
from api.security import Caller, Svc
from api.windows import from_ms, to_ms

router = APIRouter(prefix=V1, tags=["accounts"], responses=GUARDED)

UserName = Annotated[str, Path(pattern=NAME_REGEX)]


def _user(u: User) -> UserOut:
    return UserOut(
        name=u.name,
        role=u.role,
        crew=u.crew,
        disabled=u.disabled,
        created_at=from_ms(u.created_ms),
        updated_at=from_ms(u.updated_ms),
    )


def _key(k: ApiKey) -> KeyOut:
    return KeyOut(
        key_id=k.key_id,
        name=k.name,
        role=k.role,
        crew=k.crew,
        created_at=from_ms(k.created_ms),
        created_by=k.created_by,
        revoked_at=when(k.revoked_ms),
    )


@router.get("/users")
def list_users(_caller: Caller, svc: Svc) -> list[UserOut]:
    return [_user(u) for u in svc.accounts.users()]


@router.post("/users", status_code=201, responses=problems(409))
def add_user(request: Request, body: UserIn, _caller: Caller, svc: Svc) -> UserOut:
    """Add a user with a password of 12 characters or more (the admin tells it to the person)."""
    note = note_of(request.scope)
    note.summary = f"add user {body.name} as {body.role.value}" + (
        f" of crew {body.crew}" if body.crew else ""
    )
    note.targets["user"] = body.name
    return _user(svc.accounts.add_user(body.name, body.role, body.crew, body.password, svc.clock_ms()))


@router.patch("/users/{name}", responses=problems(404))
def update_user(request: Request, name: UserName, body: UserPatch, _caller: Caller, svc: Svc) -> UserOut:
    """Change a user's role, crew or password, or disable it (a new password or disabling signs it out)."""
    changed = [k for k, v in body.model_dump(exclude_none=True).items() if k != "password"]
    if body.password is not None:
        changed.append("password")
    note_of(request.scope).summary = f"update user {name}: {', '.join(changed) or 'nothing'}"
    return _user(
        svc.accounts.update_user(
            name,
            svc.clock_ms(),
            role=body.role,
            crew=body.crew,
            password=body.password,
            disabled=body.disabled,
        )
    )


@router.get("/keys")
def list_keys(_caller: Caller, svc: Svc) -> list[KeyOut]:
    return [_key(k) for k in svc.accounts.api_keys()]


@router.post("/keys", status_code=201, responses=problems(409))
def create_key(request: Request, body: KeyIn, caller: Caller, svc: Svc) -> KeyCreated:
    """Create an API key for a machine client; the key is in this response only."""
    secret, key = svc.accounts.create_key(body.name, body.role, body.crew, caller.actor, svc.clock_ms())
    note = note_of(request.scope)
    note.summary = f"create API key {key.name} ({key.key_id}) as {key.role.value}"
    note.targets["key_id"] = key.key_id
    return KeyCreated(key=secret, **_key(key).model_dump())


@router.delete("/keys/{key_id}", status_code=204, responses=problems(404))
def revoke_key(
    request: Request, key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,24}$")], _caller: Caller, svc: Svc
) -> Response:
    key = svc.accounts.revoke_key(key_id, svc.clock_ms())
    note_of(request.scope).summary = f"revoke API key {key.name} ({key_id})"
    return Response(status_code=204)


def _entry(e: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=e.id,
        at=from_ms(e.at_ms),
        who=e.who,
        role=e.role,
        method=e.method,
        route=e.route,
        targets=e.targets,
        summary=e.summary,
        status=e.status,
        outcome=e.outcome,
        client=e.client,
    )


@router.get("/audit")
def audit_log(
    _caller: Caller,
    svc: Svc,
    who: Annotated[str | None, Query(max_length=80)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> AuditPage:
    """Who did what and when, newest first: every write and command, refused ones included."""
    limit = min(limit, svc.settings.page_max)
    entries = svc.audit.entries(
        who=who,
        since_ms=None if since is None else to_ms(since),
        until_ms=None if until is None else to_ms(until),
        before_id=before_id,
        limit=limit,
    )
    more = len(entries) == limit
    return AuditPage(entries=[_entry(e) for e in entries], next_before=entries[-1].id if more else None)
