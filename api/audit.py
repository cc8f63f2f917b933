"""The audit log: who did what, when, and how it ended, for every write and command (adapter).

Recorded centrally by ``AuditMiddleware`` for every POST, PUT, PATCH and DELETE that reaches a route,
including routers other teams hand over (device commands): nobody has to remember to call it, and a
refused attempt (401, 403, 409, 422) is recorded as well as a success. Handlers may add a summary and
target ids to the request's ``AuditNote``; without one the entry says the method, the route template and
its path parameters. Request bodies are never recorded (they hold passwords).

The table is append-only: the API has no route that updates or deletes an entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import orjson
import sqlalchemy as sa
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db import connect
from api.roles import Principal

log = logging.getLogger(__name__)

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOTE_KEY: Final = "citywatch.audit"  # the request scope key of the AuditNote
_MAX_SUMMARY: Final = 2000

metadata = sa.MetaData()
audit_table = sa.Table(
    "api_audit",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("at_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("who", sa.String(80), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("targets", sa.Text, nullable=False),  # JSON object: path parameters and what the handler adds
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(8), nullable=False),  # ok, denied, refused, error
    sa.Column("client", sa.String(64), nullable=False),
)


@dataclass(slots=True)
class AuditNote:
    """What a request adds to its audit entry while it runs."""

    principal: Principal | None = None
    actor: str = ""  # who it claims to be before being authenticated (a sign-in's name)
    summary: str = ""
    targets: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at_ms: int
    who: str
    role: str
    method: str
    route: str
    targets: dict[str, object]
    summary: str
    status: int
    outcome: str
    client: str
    id: int = 0


def outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    return "refused" if status < 500 else "error"


def note_of(scope: MutableMapping[str, Any]) -> AuditNote:
    """The request's note (a throwaway one for a request the log does not record)."""
    note = scope.get(NOTE_KEY)
    return note if isinstance(note, AuditNote) else AuditNote()


class AuditLog:
    def __init__(self, engine: sa.Engine, where: str) -> None:
        self._engine, self._where = engine, where
        with connect(engine, where, "create the audit table", write=True) as conn:
            metadata.create_all(conn)

    def record(self, entry: AuditEntry) -> None:
        row = {
            "at_ms": entry.at_ms,
            "who": entry.who[:80],
            "role": entry.role,
            "method": entry.method,
            "route": entry.route[:200],
            "targets": orjson.dumps(entry.targets, default=str).decode(),
            "summary": entry.summary[:_MAX_SUMMARY],
            "status": entry.status,
            "outcome": entry.outcome,
            "client": entry.client[:64],
        }
        with connect(self._engine, self._where, "write the audit log", write=True) as conn:
            conn.execute(audit_table.insert().values(**row))

    def entries(
        self,
        *,
        who: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries matching every filter, newest first; ``before_id`` pages back through them."""
        t = audit_table
        stmt = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if who is not None:
            stmt = stmt.where(t.c.who == who)
        if since_ms is not None:
            stmt = stmt.where(t.c.at_ms >= since_ms)
        if until_ms is not None:
            stmt = stmt.where(t.c.at_ms < until_ms)
        if before_id is not None:
            stmt = stmt.where(t.c.id < before_id)
        with connect(self._engine, self._where, "read the audit log") as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            AuditEntry(
                at_ms=m["at_ms"],
                who=m["who"],
                role=m["role"],
                method=m["method"],
                route=m["route"],
                targets=orjson.loads(m["targets"]),
                summary=m["summary"],
                status=m["status"],
                outcome=m["outcome"],
                client=m["client"],
                id=m["id"],
            )
            for m in rows
        ]


class AuditMiddleware:
    """ASGI middleware recording every write that reached a route (pure ASGI: streaming untouched)."""

    def __init__(
        self, app: ASGIApp, audit_log: Callable[[], AuditLog | None], clock: Callable[[], int]
    ) -> None:
        self.app = app
        self.audit_log = audit_log
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        note = AuditNote()
        scope[NOTE_KEY] = note
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        except Exception:
            status = 500
            raise
        finally:
            await self._record(scope, note, status)

    async def _record(self, scope: Scope, note: AuditNote, status: int) -> None:
        route = getattr(scope.get("route"), "path", None)
        audit_log = self.audit_log()
        if route is None or audit_log is None:
            return  # no route matched (404 / 405 before any handler): nothing was attempted
        principal = note.principal
        client = scope.get("client")
        entry = AuditEntry(
            at_ms=self.clock(),
            who=principal.actor if principal is not None else note.actor or "anonymous",
            role=principal.role.value if principal is not None else "",
            method=scope["method"],
            route=route,
            targets={**scope.get("path_params", {}), **note.targets},
            summary=note.summary or f"{scope['method']} {route}",
            status=status,
            outcome=outcome(status),
            client=client[0] if client else "",
        )
        try:
            with anyio.CancelScope(shield=True):  # a client hanging up does not erase the record
                await anyio.to_thread.run_sync(audit_log.record, entry)
        except Exception:  # the write itself happened: say loudly that its record is lost
            log.exception("audit entry lost: %s %s by %s -> %d", entry.method, entry.route, entry.who, status)
