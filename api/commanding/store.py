"""Command requests and device commands in a SQL database, so ``get`` and ``list`` survive a restart.

SQLite by default, PostgreSQL accepted (``devices.sql.database_url``, as the registry and the alert store).
Two tables: ``command_requests`` (what was asked, by whom, the aggregate state) and ``device_commands``
(one row per device command, updated as it moves). ``add`` writes a new request with its commands in one
transaction; ``save`` writes a tracker ``Progress`` in one transaction. The tables are made on open
(``create_all``) until the schema needs a migration.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, Final

import orjson
import sqlalchemy as sa

from api.commanding import CommandStoreError, UnknownCommand
from api.commanding.model import (
    CommandRequest,
    CommandState,
    CommandView,
    DeviceCommand,
    RequestState,
    TargetKind,
)
from api.commanding.tracker import Progress
from devices.commands import Order, Route, order_from, order_params
from devices.kinds import DeviceKind
from devices.sql import SqlStore

_MS = sa.BigInteger  # epoch milliseconds
metadata = sa.MetaData()
requests_table = sa.Table(
    "command_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("target_kind", sa.String(16), nullable=False),
    sa.Column("target_id", sa.String(200), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON object (devices.commands.order_params)
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_ms", _MS, nullable=False, index=True),
    sa.Column("updated_ms", _MS, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
)
commands_table = sa.Table(
    "device_commands",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("request_id", sa.String(36), sa.ForeignKey("command_requests.id"), nullable=False, index=True),
    sa.Column("device", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("district", sa.String(40), nullable=False),
    sa.Column("route_sender", sa.String(64), nullable=False),
    sa.Column("route_gateway", sa.Boolean, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("rated", sa.Double),
    sa.Column("issued_ms", _MS, nullable=False),
    sa.Column("expires_ms", _MS, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("updated_ms", _MS, nullable=False),
    sa.Column("delivered_ms", _MS),
    sa.Column("effective_ts_ms", _MS),
    sa.Column("ended_ms", _MS),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("observed", sa.Double),
    sa.Column("expected", sa.Double),
)
_OPEN_REQUESTS: Final = (RequestState.PENDING.value, RequestState.DELIVERED.value)
_VERDICTS: Final = (CommandState.CONFIRMED.value, CommandState.NOT_EFFECTIVE.value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _params(order: Order) -> str:
    return orjson.dumps(order_params(order), option=orjson.OPT_SORT_KEYS).decode()


def _command_row(c: DeviceCommand) -> dict[str, Any]:
    return {
        "id": c.id,
        "request_id": c.request_id,
        "device": c.device,
        "kind": c.kind.value,
        "district": c.district,
        "route_sender": c.route.sender,
        "route_gateway": c.route.gateway,
        "action": c.order.action.value,
        "params": _params(c.order),
        "rated": _finite(c.rated),
        "issued_ms": c.issued_ms,
        "expires_ms": c.expires_ms,
        **_progress_row(c),
    }


def _progress_row(c: DeviceCommand) -> dict[str, Any]:
    return {
        "state": c.state.value,
        "updated_ms": c.updated_ms,
        "delivered_ms": c.delivered_ms,
        "effective_ts_ms": c.effective_ts_ms,
        "ended_ms": c.ended_ms,
        "detail": c.detail,
        "observed": _finite(c.observed),
        "expected": _finite(c.expected),
    }


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _command(row: sa.Row[Any]) -> DeviceCommand:
    r = row._mapping
    return DeviceCommand(
        id=r["id"],
        request_id=r["request_id"],
        device=r["device"],
        kind=DeviceKind(r["kind"]),
        district=r["district"],
        route=Route(r["route_sender"], bool(r["route_gateway"])),
        order=order_from(r["action"], orjson.loads(r["params"])),
        rated=_nan(r["rated"]),
        issued_ms=r["issued_ms"],
        expires_ms=r["expires_ms"],
        state=CommandState(r["state"]),
        updated_ms=r["updated_ms"],
        delivered_ms=r["delivered_ms"],
        effective_ts_ms=r["effective_ts_ms"],
        ended_ms=r["ended_ms"],
        detail=r["detail"],
        observed=_nan(r["observed"]),
        expected=_nan(r["expected"]),
    )


class CommandStore(SqlStore):
    """The commands database. A context manager; every method is one transaction."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "the command store", CommandStoreError)
        self._create_tables(metadata)

    def add(self, view: CommandView) -> None:
        """A new request and its device commands."""
        request = view.request
        with self._connect("add a command", begin=True) as conn:
            conn.execute(
                requests_table.insert(),
                {
                    "id": view.id,
                    "target_kind": request.target_kind.value,
                    "target_id": request.target_id,
                    "action": request.order.action.value,
                    "params": _params(request.order),
                    "actor": view.actor,
                    "created_ms": view.created_ms,
                    "updated_ms": view.updated_ms,
                    "state": view.state.value,
                },
            )
            if view.devices:
                conn.execute(commands_table.insert(), [_command_row(c) for c in view.devices])

    def save(self, progress: Progress) -> None:
        """The commands that changed and their requests' new states."""
        if not progress:
            return
        c, r = commands_table.c, requests_table.c
        updated: dict[str, int] = {}
        for command in progress.commands:
            updated[command.request_id] = max(updated.get(command.request_id, 0), command.updated_ms)
        with self._connect("save command progress", begin=True) as conn:
            conn.execute(
                sa.update(commands_table).where(c.id == sa.bindparam("b_id")),
                [{"b_id": command.id, **_progress_row(command)} for command in progress.commands],
            )
            rows = [
                {"b_id": rid, "state": state.value, "updated_ms": updated.get(rid, 0)}
                for rid, state in progress.requests.items()
            ]
            if rows:
                conn.execute(sa.update(requests_table).where(r.id == sa.bindparam("b_id")), rows)

    def get(self, request_id: str) -> CommandView:
        """One request with every device command; ``UnknownCommand`` when there is none."""
        with self._connect("read a command") as conn:
            row = conn.execute(sa.select(requests_table).where(requests_table.c.id == request_id)).first()
            if row is None:
                raise UnknownCommand(f"no command {request_id!r:.50}")
            commands = conn.execute(
                sa.select(commands_table)
                .where(commands_table.c.request_id == request_id)
                .order_by(commands_table.c.device)
            ).all()
        devices = tuple(_command(c) for c in commands)
        counts: dict[CommandState, int] = {}
        for d in devices:
            counts[d.state] = counts.get(d.state, 0) + 1
        return self._view(row, counts, devices)

    def list(self, limit: int, state: RequestState | None = None) -> builtins.list[CommandView]:
        """The newest requests first, without their device rows (``counts`` says where they stand)."""
        stmt = sa.select(requests_table).order_by(requests_table.c.created_ms.desc(), requests_table.c.id)
        if state is not None:
            stmt = stmt.where(requests_table.c.state == state.value)
        with self._connect("list commands") as conn:
            rows = conn.execute(stmt.limit(limit)).all()
            ids = [row.id for row in rows]
            c = commands_table.c
            tallies = conn.execute(
                sa.select(c.request_id, c.state, sa.func.count())
                .where(c.request_id.in_(ids))
                .group_by(c.request_id, c.state)
            ).all()
        counts: dict[str, dict[CommandState, int]] = {}
        for request_id, command_state, n in tallies:
            counts.setdefault(request_id, {})[CommandState(command_state)] = n
        return [self._view(row, counts.get(row.id, {}), ()) for row in rows]

    def open_commands(self) -> builtins.list[DeviceCommand]:
        """Every command of the requests still open (ended ones included): what a restart tracks again."""
        open_ids = sa.select(requests_table.c.id).where(requests_table.c.state.in_(_OPEN_REQUESTS))
        with self._connect("read open commands") as conn:
            rows = conn.execute(
                sa.select(commands_table).where(commands_table.c.request_id.in_(open_ids))
            ).all()
        return [_command(row) for row in rows]

    def ineffective(self, since_ms: int) -> builtins.list[DeviceCommand]:
        """Per device, its latest confirmed or not-effective command since ``since_ms``, where that one is
        not effective: the devices whose ``command_not_effective`` finding is still open."""
        c = commands_table.c
        stmt = (
            sa.select(commands_table)
            .where(c.state.in_(_VERDICTS), c.ended_ms >= since_ms)
            .order_by(c.device, c.ended_ms)
        )
        latest: dict[str, DeviceCommand] = {}
        with self._connect("read command verdicts") as conn:
            for row in conn.execute(stmt):
                command = _command(row)
                latest[command.device] = command
        return [c for c in latest.values() if c.state is CommandState.NOT_EFFECTIVE]

    @staticmethod
    def _view(
        row: sa.Row[Any], counts: dict[CommandState, int], devices: Sequence[DeviceCommand]
    ) -> CommandView:
        r = row._mapping
        request = CommandRequest(
            TargetKind(r["target_kind"]), r["target_id"], _order(r["action"], r["params"])
        )
        return CommandView(
            id=r["id"],
            request=request,
            actor=r["actor"],
            created_ms=r["created_ms"],
            updated_ms=r["updated_ms"],
            state=RequestState(r["state"]),
            counts=MappingProxyType(counts),
            devices=tuple(devices),
        )


def _order(action: str, params: str) -> Order:
    return order_from(action, orjson.loads(params))
