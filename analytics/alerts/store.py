"""Alerts, their history and the notification outbox in a SQL database: the source of truth for alerts.

A SQLite file by default, PostgreSQL accepted; the SQL is the portable subset both run. The schema is
the alembic migrations in ``analytics/alerts/migrations``, applied when a store opens (an up-to-date
database costs one query). ``apply`` writes one ``Changes`` (``analytics.alerts.policy``) in one
transaction: alerts upserted by id, transitions and notifications inserted.

Re-applying the same ``Changes`` (a restart replaying the same findings) changes nothing: an alert is
upserted to the same version; a notification whose id exists is ignored and keeps its outbox status (a
sent one is never sent again); a transition is stored once per value: its fingerprint, a hash of all its
fields, is unique. Two transitions that differ in nothing (alert, states, event, actor, time to the
millisecond, note) are one fact recorded twice.

Lost updates: a person (CLI, API) and the service loop may change the same alert at once, each from the
version it read. ``apply(changes, based_on=[versions read])`` checks, inside the write transaction, that
every alert it is about to overwrite is still the version the change was computed from, and otherwise
writes nothing and raises ``StaleAlert``: read again, decide again.

Outbox of a notification::

    pending ──mark_sent──────▶ sent
      │  ▲
      │  └── mark_retry: attempts + 1, not before next_attempt_ms
      ├────mark_failed───────▶ failed
      └────mark_digested─────▶ digested (folded into a digest notification)

Transitions reach InfluxDB (``analytics.alerts.events``) through a second outbox: ``unexported_transitions``
then ``mark_exported``, so a person's action from the CLI is drawn in Grafana too.

Errors::

    AlertError                  (analytics.alerts)
     ├── UnknownAlert           get() of an id the store does not hold
     └── AlertStoreError        the database cannot be opened, read or written (cause attached)
          └── StaleAlert        an alert changed in the store since the change was computed from it
"""

from __future__ import annotations

import builtins
import enum
import hashlib
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Final, Self

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite

from analytics.alerts import AlertError, UnknownAlert
from analytics.alerts.migrations import VERSION_TABLE
from analytics.alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotificationKind,
    Severity,
    Transition,
)
from analytics.alerts.policy import Changes
from devices.sql import database_url

log = logging.getLogger(__name__)

MIGRATIONS: Final = "analytics.alerts:migrations"  # alembic's script_location, inside the package
LIVE_STATES: Final = tuple(s for s in AlertState if s not in (AlertState.RESOLVED, AlertState.CLOSED))
# Any constant will do: it only has to be the same in every process that migrates the same database.
_PG_MIGRATION_LOCK: Final = 0x43_57_41_4C  # "CWAL"


class AlertStoreError(AlertError):
    """The alerts database cannot be opened, read or written."""


class StaleAlert(AlertStoreError):
    def __init__(self, alert_ids: Sequence[str]) -> None:
        shown = ", ".join(alert_ids[:5]) + (" ..." if len(alert_ids) > 5 else "")
        super().__init__(f"changed by someone else meanwhile: {shown}")
        self.alert_ids = tuple(alert_ids)


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DIGESTED = "digested"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a notification stands in the outbox."""

    status: OutboxStatus
    attempts: int
    next_attempt_ms: int
    sent_ms: int | None
    last_error: str
    digest_id: str | None


@dataclass(frozen=True, slots=True)
class StoredTransition:
    """A transition with its row id (for ``mark_exported``) and the alert as it is now."""

    row_id: int
    transition: Transition
    alert: Alert


# --- tables: kept in step with the migrations (a test compares them) ------------------------------------

_MS = sa.BigInteger  # epoch milliseconds
metadata = sa.MetaData()  # the tables as the code expects them; the migrations make them
alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("key", sa.String(), nullable=False),
    sa.Column("rule", sa.String(), nullable=False),
    sa.Column("family", sa.String(), nullable=False),
    sa.Column("subject_kind", sa.String(), nullable=False),
    sa.Column("subject", sa.String(), nullable=False),
    sa.Column("district", sa.String(), nullable=False),
    sa.Column("road", sa.String(), nullable=False),
    sa.Column("grid_cell", sa.String(), nullable=False),
    sa.Column("crew", sa.String(), nullable=False),
    sa.Column("severity", sa.String(), nullable=False),
    sa.Column("state", sa.String(), nullable=False),
    sa.Column("opened_ms", _MS, nullable=False),
    sa.Column("deadline_ms", _MS, nullable=False),
    sa.Column("explanation", sa.Text(), nullable=False),
    sa.Column("children", sa.Text(), nullable=False),  # JSON array of subject ids
    sa.Column("parent", sa.String(), nullable=False),
    sa.Column("maintenance", sa.String(), nullable=False),
    sa.Column("flapping", sa.Boolean(), nullable=False),
    sa.Column("escalation", sa.Integer(), nullable=False),
    sa.Column("acknowledged_ms", _MS),
    sa.Column("resolved_ms", _MS),
    sa.Column("closed_ms", _MS),
    sa.Column("reopen_count", sa.Integer(), nullable=False),
    sa.Column("condition_clear_ms", _MS),
    sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    sa.Index("ix_alerts_state", "state"),
    sa.Index("ix_alerts_crew", "crew"),
    sa.Index("ix_alerts_key", "key"),
    sa.Index("ix_alerts_deadline_ms", "deadline_ms"),
)
transitions_table = sa.Table(
    "transitions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
    sa.Column("alert_id", sa.String(), nullable=False),
    sa.Column("from_state", sa.String()),  # NULL: the alert's creation
    sa.Column("to_state", sa.String(), nullable=False),
    sa.Column("event", sa.String(), nullable=False),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("at_ms", _MS, nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("exported_ms", _MS),  # NULL: not yet written to InfluxDB
    sa.PrimaryKeyConstraint("id", name="pk_transitions"),
    sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_transitions_alert_id_alerts"),
    sa.UniqueConstraint("fingerprint", name="uq_transitions_fingerprint"),
    sa.Index("ix_transitions_alert_id", "alert_id", "at_ms"),
    sa.Index("ix_transitions_exported_ms", "exported_ms"),
)
notifications_table = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.String()),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("recipients", sa.Text(), nullable=False),  # JSON array
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("alert_ids", sa.Text(), nullable=False),  # JSON array
    sa.Column("attributes", sa.Text(), nullable=False),  # JSON object
    sa.Column("created_ms", _MS, nullable=False),
    sa.Column("severity", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_ms", _MS, nullable=False),
    sa.Column("sent_ms", _MS),
    sa.Column("last_error", sa.Text(), nullable=False),
    sa.Column("digest_id", sa.String()),
    sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    sa.Index("ix_notifications_outbox", "status", "next_attempt_ms"),
)

_ALERT_FIELDS: Final = tuple(f.name for f in fields(Alert))
_JOINED: Final = "alert__"  # prefix of the alert's columns joined to a transition


# --- rows ------------------------------------------------------------------------------------------------


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def _alert_row(a: Alert) -> dict[str, Any]:
    row = {name: getattr(a, name) for name in _ALERT_FIELDS}
    row["children"] = _json(a.children)
    return row


def _alert_from_row(row: sa.RowMapping, prefix: str = "") -> Alert:
    values = {name: row[prefix + name] for name in _ALERT_FIELDS}
    try:
        values["children"] = tuple(orjson.loads(values["children"]))
        values["severity"] = Severity(values["severity"])
        values["state"] = AlertState(values["state"])
        values["flapping"] = bool(values["flapping"])
    except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise AlertStoreError(f"alert row {values['id']!r} is not a valid alert: {exc}") from exc
    return Alert(**values)


def fingerprint(t: Transition) -> str:
    """What makes a transition the same fact: all of its fields."""
    fields_ = [t.alert_id, t.from_state, t.to_state, t.event, t.actor, t.at_ms, t.note]
    return hashlib.sha256(orjson.dumps(fields_)).hexdigest()


def _transition_row(t: Transition) -> dict[str, Any]:
    return {
        "alert_id": t.alert_id,
        "from_state": None if t.from_state is None else t.from_state.value,
        "to_state": t.to_state.value,
        "event": t.event,
        "actor": t.actor,
        "at_ms": t.at_ms,
        "note": t.note,
        "fingerprint": fingerprint(t),
        "exported_ms": None,
    }


def _transition_from_row(m: sa.RowMapping) -> Transition:
    try:
        from_state = None if m["from_state"] is None else AlertState(m["from_state"])
        to_state = AlertState(m["to_state"])
    except ValueError as exc:
        raise AlertStoreError(f"transition row {m['id']} is not a valid transition: {exc}") from exc
    return Transition(m["alert_id"], from_state, to_state, m["event"], m["actor"], m["at_ms"], m["note"])


def _notification_row(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind.value,
        "recipients": _json(n.recipients),
        "title": n.title,
        "body": n.body,
        "alert_ids": _json(n.alert_ids),
        "attributes": _json(n.attributes),
        "created_ms": n.created_ms,
        "severity": n.severity.value,
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_ms": n.created_ms,  # at once
        "sent_ms": None,
        "last_error": "",
        "digest_id": None,
    }


def _notification_from_row(m: sa.RowMapping) -> Notification:
    try:
        return Notification(
            id=m["id"],
            kind=NotificationKind(m["kind"]),
            recipients=tuple(orjson.loads(m["recipients"])),
            title=m["title"],
            body=m["body"],
            alert_ids=tuple(orjson.loads(m["alert_ids"])),
            created_ms=m["created_ms"],
            severity=Severity(m["severity"]),
            attributes=dict(orjson.loads(m["attributes"])),
        )
    except (ValueError, TypeError) as exc:
        raise AlertStoreError(f"notification row {m['id']!r} is not a valid notification: {exc}") from exc


# --- dialects --------------------------------------------------------------------------------------------


def _insert(dialect: sa.Dialect, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    if dialect.name == "sqlite":
        return sqlite.insert(table)
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    raise AlertStoreError(f"the alerts run on SQLite or PostgreSQL, not {dialect.name}")


def alert_upsert(dialect: sa.Dialect) -> sa.Insert:
    insert = _insert(dialect, alerts_table)
    updates = {c.name: insert.excluded[c.name] for c in alerts_table.columns if c.name != "id"}
    return insert.on_conflict_do_update(index_elements=[alerts_table.c.id], set_=updates)


def insert_new(dialect: sa.Dialect, table: sa.Table, unique: str) -> sa.Insert:
    """INSERT that skips a row whose ``unique`` column value is already there (ON CONFLICT DO NOTHING)."""
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=[table.c[unique]])


def _sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # pysqlite opens transactions on its own, and only before a write: a read followed by a write is not
    # one transaction. Turn that off; the "begin" listener below emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: the CLI and the report read while the service writes, neither waits for the other.
    cursor.execute("PRAGMA journal_mode=WAL")
    # Safe with WAL: a power cut can lose the last commit, never corrupt the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")  # a transition of an alert the store does not hold fails
    cursor.close()


_WRITE: Final = "citywatch_write"  # execution option: this transaction writes


def _sqlite_begin(conn: sa.Connection) -> None:
    # A writer takes the write lock at BEGIN: what it reads (StaleAlert's check) cannot change under it,
    # and two writers queue (busy timeout) instead of one failing at its first write.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


# --- the store -------------------------------------------------------------------------------------------


class AlertStore:
    """Alerts, transitions and the notification outbox in a SQLite file or a PostgreSQL database."""

    def __init__(self, url: str) -> None:
        try:
            parsed = database_url(url, "the alert store")
        except ValueError as exc:
            raise AlertStoreError(str(exc)) from exc
        backend = parsed.get_backend_name()
        self._where = parsed.render_as_string(hide_password=True)
        try:
            if backend == "sqlite":
                # 15 s busy timeout: a service tick holds the write lock for milliseconds, a migration
                # for well under a second; a CLI action waits for it rather than failing.
                self._engine = sa.create_engine(
                    parsed, connect_args={"check_same_thread": False, "timeout": 15.0}
                )
                sa.event.listen(self._engine, "connect", _sqlite_connect)
                sa.event.listen(self._engine, "begin", _sqlite_begin)
            else:
                self._engine = sa.create_engine(parsed, pool_pre_ping=True)
        except ImportError as exc:
            raise AlertStoreError(
                f"no driver for {self._where}: {exc} (pip install 'citywatch[postgres]')"
            ) from exc
        dialect = self._engine.dialect
        self._upsert_alerts = alert_upsert(dialect)
        self._insert_transitions = insert_new(dialect, transitions_table, "fingerprint")
        self._insert_notifications = insert_new(dialect, notifications_table, "id")
        try:
            self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _connect(self, action: str, *, write: bool = False) -> Iterator[sa.Connection]:
        """A connection in a transaction (committed at the end when ``write``); database errors become
        AlertStoreError."""
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        except sa.exc.DBAPIError as exc:
            raise AlertStoreError(f"cannot {action} in the alerts at {self._where}: {exc.orig}") from exc

    # --- schema ---

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        heads = set(ScriptDirectory.from_config(config).get_heads())
        with self._connect("migrate the schema", write=True) as conn:
            if self._engine.dialect.name == "postgresql":
                # Two processes opening a new database at once: the second waits, then finds it at head.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            if set(self._revisions(conn)) == heads:
                return
            log.info("alerts database %s: migrating to %s", self._where, ", ".join(sorted(heads)))
            config.attributes["connection"] = conn
            command.upgrade(config, "heads")

    @staticmethod
    def _revisions(conn: sa.Connection) -> list[str]:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return []
        version_num = sa.column("version_num", sa.String())
        return list(conn.execute(sa.select(version_num).select_from(sa.table(VERSION_TABLE))).scalars())

    def schema_revisions(self) -> list[str]:
        """The migrations the database is at (alembic revision ids)."""
        with self._connect("read the schema version") as conn:
            return self._revisions(conn)

    # --- writes ---

    def apply(self, changes: Changes, *, based_on: Iterable[Alert] = ()) -> None:
        """Write ``changes`` in one transaction: all of it or (on an error) none of it.

        ``based_on``: the alert versions the changes were computed from. An alert about to be overwritten
        that is no longer that version in the store raises ``StaleAlert`` and nothing is written.
        """
        if not changes:
            return
        alerts = {a.id: a for a in changes.alerts}  # the last version of an id wins
        transitions = {fingerprint(t): t for t in changes.transitions}
        notifications: dict[str, Notification] = {}
        for n in changes.notifications:
            notifications.setdefault(n.id, n)  # the first of an id wins, as it does against the table
        expected = {a.id: a for a in based_on if a.id in alerts}
        with self._connect("write alerts", write=True) as conn:
            if expected:
                self._check_current(conn, expected)
            if alerts:
                conn.execute(self._upsert_alerts, [_alert_row(a) for a in alerts.values()])
            if transitions:
                conn.execute(self._insert_transitions, [_transition_row(t) for t in transitions.values()])
            if notifications:
                conn.execute(
                    self._insert_notifications, [_notification_row(n) for n in notifications.values()]
                )
        log.debug(
            "applied %d alerts, %d transitions, %d notifications",
            len(alerts),
            len(transitions),
            len(notifications),
        )

    @staticmethod
    def _check_current(conn: sa.Connection, expected: dict[str, Alert]) -> None:
        # FOR UPDATE holds the rows on PostgreSQL until the commit; SQLite has the write lock since BEGIN.
        stmt = sa.select(alerts_table).where(alerts_table.c.id.in_(expected)).with_for_update()
        stored = {row.id: _alert_from_row(row._mapping) for row in conn.execute(stmt)}
        stale = sorted(i for i, a in expected.items() if stored.get(i) != a)
        if stale:
            raise StaleAlert(stale)

    # --- alerts ---

    def get(self, alert_id: str) -> Alert:
        with self._connect("read an alert") as conn:
            row = conn.execute(sa.select(alerts_table).where(alerts_table.c.id == alert_id)).first()
        if row is None:
            raise UnknownAlert(alert_id)
        return _alert_from_row(row._mapping)

    def _alerts(self, action: str, stmt: sa.Select[Any]) -> builtins.list[Alert]:
        with self._connect(action) as conn:
            return [_alert_from_row(row._mapping) for row in conn.execute(stmt)]

    def live_by_key(self) -> dict[str, Alert]:
        """The live alerts (not resolved, not closed) by dedupe key (the newest, should a key have two)."""
        stmt = (
            sa.select(alerts_table)
            .where(alerts_table.c.state.in_(LIVE_STATES))
            .order_by(alerts_table.c.opened_ms, alerts_table.c.id)
        )
        live: dict[str, Alert] = {}
        for a in self._alerts("read live alerts", stmt):
            if a.key in live:
                log.warning("two live alerts for %s: %s and %s; using the newer", a.key, live[a.key].id, a.id)
            live[a.key] = a
        return live

    def resolved_since(self, since_ms: int) -> dict[str, Alert]:
        """Alerts resolved at or after ``since_ms`` and not closed (they may reopen), newest per key."""
        t = alerts_table
        stmt = (
            sa.select(t)
            .where(t.c.state == AlertState.RESOLVED.value, t.c.resolved_ms >= since_ms)
            .order_by(t.c.resolved_ms, t.c.opened_ms, t.c.id)
        )
        return {a.key: a for a in self._alerts("read resolved alerts", stmt)}

    def list(
        self,
        state: AlertState | Collection[AlertState] | None = None,
        crew: str | None = None,
        severity: Severity | None = None,
        road: str | None = None,
        district: str | None = None,
        overdue_at_ms: int | None = None,
        limit: int = 100,
        after: tuple[int, str] | None = None,
    ) -> builtins.list[Alert]:
        """Alerts matching every filter given, by deadline (the most urgent first).

        ``overdue_at_ms``: only live alerts whose deadline passed before that time. ``after``: the
        (deadline_ms, id) of the last alert of the previous page (keyset paging: every page costs the same).
        """
        t = alerts_table
        stmt = sa.select(t).order_by(t.c.deadline_ms, t.c.id).limit(limit)
        if after is not None:
            deadline, last_id = after
            stmt = stmt.where(
                sa.or_(t.c.deadline_ms > deadline, sa.and_(t.c.deadline_ms == deadline, t.c.id > last_id))
            )
        if state is not None:
            states = [state] if isinstance(state, AlertState) else builtins.list(state)
            stmt = stmt.where(t.c.state.in_([s.value for s in states]))
        if overdue_at_ms is not None:
            stmt = stmt.where(t.c.state.in_(LIVE_STATES), t.c.deadline_ms < overdue_at_ms)
        for column, value in (("crew", crew), ("severity", severity), ("road", road), ("district", district)):
            if value is not None:
                stmt = stmt.where(t.c[column] == value)
        return self._alerts("list alerts", stmt)

    def alerts_between(self, start_ms: int, end_ms: int) -> builtins.list[Alert]:
        """Alerts whose deadline or opening falls in [start_ms, end_ms), by deadline (closure rates)."""
        t = alerts_table
        stmt = (
            sa.select(t)
            .where(
                sa.or_(
                    sa.and_(t.c.deadline_ms >= start_ms, t.c.deadline_ms < end_ms),
                    sa.and_(t.c.opened_ms >= start_ms, t.c.opened_ms < end_ms),
                )
            )
            .order_by(t.c.deadline_ms, t.c.id)
        )
        return self._alerts("read alerts of a period", stmt)

    def history(self, alert_id: str) -> builtins.list[Transition]:
        """The alert's transitions, oldest first (empty for an id the store does not hold)."""
        t = transitions_table
        stmt = sa.select(t).where(t.c.alert_id == alert_id).order_by(t.c.at_ms, t.c.id)
        with self._connect("read an alert's history") as conn:
            return [_transition_from_row(row._mapping) for row in conn.execute(stmt)]

    # --- transitions to InfluxDB ---

    def unexported_transitions(self, limit: int = 1000) -> builtins.list[StoredTransition]:
        """Transitions not yet written to InfluxDB, oldest first, each with its alert as it is now."""
        t, a = transitions_table, alerts_table
        stmt = (
            sa.select(t, *[c.label(f"{_JOINED}{c.name}") for c in a.columns])
            .join(a, a.c.id == t.c.alert_id)
            .where(t.c.exported_ms.is_(None))
            .order_by(t.c.id)
            .limit(limit)
        )
        stored: builtins.list[StoredTransition] = []
        with self._connect("read unexported transitions") as conn:
            for row in conn.execute(stmt):
                m = row._mapping
                stored.append(StoredTransition(m["id"], _transition_from_row(m), _alert_from_row(m, _JOINED)))
        return stored

    def transitions_after(self, row_id: int, limit: int = 200) -> builtins.list[StoredTransition]:
        """Transitions stored after row ``row_id``, oldest first, each with its alert as it is now: a
        cursor for readers in other processes (the API's live feed)."""
        t, a = transitions_table, alerts_table
        stmt = (
            sa.select(t, *[c.label(f"{_JOINED}{c.name}") for c in a.columns])
            .join(a, a.c.id == t.c.alert_id)
            .where(t.c.id > row_id)
            .order_by(t.c.id)
            .limit(limit)
        )
        with self._connect("read transitions") as conn:
            return [
                StoredTransition(m["id"], _transition_from_row(m), _alert_from_row(m, _JOINED))
                for m in (row._mapping for row in conn.execute(stmt))
            ]

    def last_transition_id(self) -> int:
        """The row id of the newest transition (0 when there is none)."""
        with self._connect("read transitions") as conn:
            return int(conn.execute(sa.select(sa.func.max(transitions_table.c.id))).scalar() or 0)

    def mark_exported(self, row_ids: Iterable[int], at_ms: int) -> int:
        t = transitions_table
        ids = builtins.list(row_ids)
        if not ids:
            return 0
        stmt = sa.update(t).where(t.c.id.in_(ids), t.c.exported_ms.is_(None)).values(exported_ms=at_ms)
        with self._connect("mark transitions exported", write=True) as conn:
            return conn.execute(stmt).rowcount

    # --- notification outbox ---

    def pending_notifications(self, now_ms: int, limit: int = 100) -> builtins.list[Notification]:
        """Pending notifications due at ``now_ms`` (first attempts and retries), the longest waiting first."""
        n = notifications_table
        stmt = (
            sa.select(n)
            .where(n.c.status == OutboxStatus.PENDING.value, n.c.next_attempt_ms <= now_ms)
            .order_by(n.c.next_attempt_ms, n.c.created_ms, n.c.id)
            .limit(limit)
        )
        with self._connect("read the outbox") as conn:
            return [_notification_from_row(row._mapping) for row in conn.execute(stmt)]

    def _move(self, action: str, ids: Iterable[str], *, attempted: bool, **values: Any) -> int:
        """Update the pending notifications among ``ids`` (a sent, digested or failed one stays as it is);
        ``attempted``: a delivery was tried, count it."""
        n = notifications_table
        wanted = builtins.list(ids)
        if not wanted:
            return 0
        stmt = (
            sa.update(n)
            .where(n.c.id.in_(wanted), n.c.status == OutboxStatus.PENDING.value)
            .values(attempts=n.c.attempts + int(attempted), **values)
        )
        with self._connect(action, write=True) as conn:
            return conn.execute(stmt).rowcount

    def mark_sent(self, ids: Iterable[str], at_ms: int) -> int:
        """Pending -> sent; returns how many moved."""
        return self._move("mark sent", ids, attempted=True, status=OutboxStatus.SENT.value, sent_ms=at_ms)

    def mark_retry(self, notification_id: str, error: str, next_attempt_ms: int) -> int:
        """A failed attempt: stays pending, not due again before ``next_attempt_ms``."""
        return self._move(
            "schedule a retry",
            [notification_id],
            attempted=True,
            last_error=error,
            next_attempt_ms=next_attempt_ms,
        )

    def mark_failed(self, notification_id: str, error: str) -> int:
        """Pending -> failed: given up (no more retries)."""
        return self._move(
            "mark failed",
            [notification_id],
            attempted=True,
            status=OutboxStatus.FAILED.value,
            last_error=error,
        )

    def mark_digested(self, ids: Iterable[str], digest_id: str) -> int:
        """Pending -> digested: their news goes out in the digest notification ``digest_id``."""
        return self._move(
            "mark digested", ids, attempted=False, status=OutboxStatus.DIGESTED.value, digest_id=digest_id
        )

    def delivery(self, notification_id: str) -> Delivery | None:
        n = notifications_table
        with self._connect("read the outbox") as conn:
            row = conn.execute(sa.select(n).where(n.c.id == notification_id)).first()
        if row is None:
            return None
        m = row._mapping
        return Delivery(
            status=OutboxStatus(m["status"]),
            attempts=m["attempts"],
            next_attempt_ms=m["next_attempt_ms"],
            sent_ms=m["sent_ms"],
            last_error=m["last_error"],
            digest_id=m["digest_id"],
        )

    def notification_status(self, notification_id: str) -> OutboxStatus | None:
        """pending, sent, digested or failed; None: no such notification."""
        found = self.delivery(notification_id)
        return None if found is None else found.status
