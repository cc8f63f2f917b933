"""The alert service (adapter): findings in, alerts in the store, notifications out, events to InfluxDB.

It runs beside the analytics worker of its partition, which hands it each tick's finding events
(``on_events``) and calls ``tick`` once per evaluation. Every step reads the alerts it needs from the
store, asks the pure ``AlertPolicy`` what changes, and applies the ``Changes`` in one transaction with
``based_on`` (a crew acknowledging from the command line at the same moment makes the store refuse the
stale write; the service reads again and recomputes). Then the outbox sender delivers what is due and
the transitions not yet exported are written to InfluxDB as ``alert_event`` points for Grafana, and
every ``closure_every_s`` (of the tick's time) the month-to-date closure counts and the live alerts by
severity as ``alert_closure`` points (tags scope ``city`` | ``district``, scope_id, partition; fields due,
on_time, late, overdue_open, opened, closed, on_time_rate, closure_rate as ``closure.closure_table``
counts them over the local month up to now, and open, open_<severity>, overdue: live alerts not carried
by an incident). Like the KPIs, a city figure over partitions is a sum of their counts.

A failure here (database away, a courier down) is logged and retried next tick; it never stops the
analytics worker's evaluation.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import tomllib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from analytics.alerts import AlertConfigError
from analytics.alerts.cityfile import rules_from_text
from analytics.alerts.closure import CITY, ClosureRow, closure_table
from analytics.alerts.events import transition_line
from analytics.alerts.model import Alert, AlertEvent, AlertState, Severity
from analytics.alerts.notify import OutboxSender
from analytics.alerts.policy import AlertPolicy, Changes
from analytics.alerts.routing import Contacts
from analytics.alerts.severity import SeverityPolicy
from analytics.alerts.store import AlertStore, StaleAlert
from analytics.engine import KpiTable
from analytics.findings import FindingEvent
from analytics.lineproto import kpi_lines
from ingest import InfluxError
from ingest.influx import InfluxV1

log = logging.getLogger(__name__)

_NOT_CLOSED = (AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.IN_PROGRESS, AlertState.RESOLVED)
_RETRIES = 3
_MAX_ALERTS = 1_000_000
ALERT_CLOSURE = "alert_closure"


def load_contacts(path: Path | None) -> Contacts:
    """The people and crews from a TOML file (see docs/alerts.md); nobody when no file is configured."""
    if path is None:
        return Contacts.from_mapping({})
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AlertConfigError(f"contacts file {path}: {exc}") from exc
    return Contacts.from_mapping(data)


class AlertService:
    """One partition's alerts: policy, store, outbox and event export, driven by the analytics worker."""

    def __init__(
        self,
        policy: AlertPolicy,
        store: AlertStore,
        sender: OutboxSender | None,
        influx: InfluxV1 | None,
        partition: str,
        *,
        wall_ms: Callable[[], int] | None = None,
        on_close: Sequence[Callable[[], None]] = (),
        rules_file: Path | None = None,
        districts: Collection[str] | None = None,
        closure_every_s: float = 60.0,  # CHOICE: as often as the KPIs are written by default
    ) -> None:
        self.policy = policy
        self.store = store
        self.sender = sender
        self.influx = influx
        self.partition = partition
        self.wall_ms = wall_ms
        self.errors = 0
        self._on_close = tuple(on_close)
        self.rules_file = rules_file
        self._rules_stamp: tuple[int, int] | None = None
        # the partition's districts: its closure series counts only their alerts (None: every alert)
        self.districts = frozenset(districts) if districts is not None else None
        # One move at a time within a process: the analytics tick, the command desk's findings and the
        # API's people may call at once (other processes are kept apart by the store's stale-write check).
        self._lock = threading.RLock()
        self._closure_due_ms = 0
        self._closure_every_ms = round(closure_every_s * 1000)
        self.reload_rules()

    def reload_rules(self) -> None:
        """Read the city's alert rules file again if it changed; a bad file is reported and ignored."""
        if self.rules_file is None:
            return
        try:
            st = self.rules_file.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._rules_stamp:
                return
            rules = rules_from_text(self.rules_file.read_text(encoding="utf-8"))
        except (OSError, AlertConfigError) as exc:
            log.error("alert rules file %s not applied: %s", self.rules_file, exc)
            return
        p = self.policy
        self.policy = AlertPolicy(
            replace(rules.policy, incidents=p.config.incidents, maintenance=rules.maintenance),
            SeverityPolicy(rules.severity, rules.calendar),
            p.contacts,
            p.locator,
            catalogue=p.catalogue,
        )
        self._rules_stamp = stamp
        log.info("alert rules loaded from %s: %d planned works", self.rules_file, len(rules.maintenance))

    def close(self) -> None:
        for close in self._on_close:
            try:
                close()
            except Exception:
                log.exception("closing the alert service")
        self.store.close()

    def on_events(self, events: Sequence[FindingEvent], now_ms: int) -> None:
        if not events:
            return
        with self._lock:
            self._on_events(events, now_ms)

    def _on_events(self, events: Sequence[FindingEvent], now_ms: int) -> None:
        grace = self.policy.config.reopen_grace_ms

        def compute() -> tuple[Changes, list[Alert]]:
            live = self.store.live_by_key()
            resolved = self.store.resolved_since(now_ms - grace)
            changes = self.policy.on_findings(live, resolved, events, now_ms)
            return changes, [*live.values(), *resolved.values()]

        self._apply(compute, "findings")

    def tick(self, now_ms: int) -> None:
        """What time does (escalation, auto-resolve, auto-close), then deliveries and event export."""
        with self._lock:
            self._tick(now_ms)

    def _tick(self, now_ms: int) -> None:
        self.reload_rules()

        def compute() -> tuple[Changes, list[Alert]]:
            alerts = {a.id: a for a in self.store.list(state=_NOT_CLOSED, limit=_MAX_ALERTS)}
            return self.policy.tick(alerts, now_ms), list(alerts.values())

        self._apply(compute, "tick")
        if self.sender is not None:
            # Delivery runs on this machine's clock: a retry's backoff is real time, whatever the data time.
            send_at = self.wall_ms() if self.wall_ms is not None else now_ms
            try:
                result = self.sender.send_due(max(send_at, now_ms))
                if result.sent or result.failed:
                    sent, retried, failed = result.sent, result.retried, result.failed
                    log.info("notifications: %d sent, %d retried, %d failed", sent, retried, failed)
            except Exception:  # a courier bug must not stop the alerts
                self.errors += 1
                log.exception("sending notifications failed; retried next tick")
        self.export_events(now_ms)
        self.export_closure(now_ms)

    def act(
        self, alert_id: str, event: str, actor: str, at_ms: int, note: str = "", *, crew: str = ""
    ) -> Alert:
        """A person's move, through the policy (so a resolve tells whoever was escalated to); ``crew``:
        where an ``assign`` hands the alert."""
        with self._lock:
            return self._act(alert_id, event, actor, at_ms, note, crew)

    def _act(self, alert_id: str, event: str, actor: str, at_ms: int, note: str, crew: str) -> Alert:
        for _ in range(_RETRIES):
            alert = self.store.get(alert_id)
            changes = self.policy.act(alert, AlertEvent(event), actor, at_ms, note, crew=crew)
            try:
                self.store.apply(changes, based_on=[alert])
            except StaleAlert:
                continue
            return self.store.get(alert_id)
        raise StaleAlert(f"alert {alert_id} kept changing; try again")

    def export_events(self, now_ms: int) -> None:
        if self.influx is None:
            return
        stored = self.store.unexported_transitions()
        if not stored:
            return
        lines = [transition_line(s.transition, s.alert, self.partition) for s in stored]
        try:
            self.influx.write("\n".join(lines).encode())
        except InfluxError as exc:
            log.warning("%d alert events wait for InfluxDB: %s", len(lines), exc)
            return
        self.store.mark_exported([s.row_id for s in stored], now_ms)

    def export_closure(self, now_ms: int) -> None:
        """The month-to-date closure counts and the live alerts as ``alert_closure`` points."""
        if self.influx is None or now_ms < self._closure_due_ms:
            return
        start_ms = month_start_ms(now_ms, self.policy.calendar.zone)
        try:
            month = self._mine(self.store.alerts_between(start_ms, now_ms + 1))
            live = self._mine(self.store.live_by_key().values())
            tables = closure_tables(month, live, start_ms, now_ms)
            lines = [line for table in tables for line in kpi_lines(table, self.partition)]
            self.influx.write("\n".join(lines).encode())
        except Exception as exc:  # a figure for the screens: the next minute writes it again
            self.errors += 1
            log.warning("alert closure series not written: %s", exc)
            return
        self._closure_due_ms = now_ms + self._closure_every_ms

    def _mine(self, alerts: Iterable[Alert]) -> list[Alert]:
        return [a for a in alerts if self.districts is None or a.district in self.districts]

    def _apply(self, compute: Callable[[], tuple[Changes, list[Alert]]], what: str) -> None:
        for attempt in range(_RETRIES):
            try:
                changes, based_on = compute()
                if changes.alerts or changes.transitions or changes.notifications:
                    self.store.apply(changes, based_on=based_on)
                    _log_changes(changes)
                return
            except StaleAlert:
                log.info("alerts changed under the %s step (a person acted); recomputing", what)
                continue
            except Exception:  # the database may be away: the next tick tries again
                self.errors += 1
                log.exception("alert %s step failed (attempt %d)", what, attempt + 1)
                return


def _log_changes(changes: Changes) -> None:
    for t in changes.transitions:
        log.info("alert %s: %s -> %s (%s by %s)", t.alert_id, t.from_state, t.to_state, t.event, t.actor)


def month_start_ms(now_ms: int, zone: ZoneInfo) -> int:
    """The start of the local calendar month holding ``now_ms``."""
    local = dt.datetime.fromtimestamp(now_ms / 1000, tz=zone)
    first = dt.datetime(local.year, local.month, 1, tzinfo=zone)
    return round(first.timestamp() * 1000)


def closure_tables(
    month: Sequence[Alert], live: Sequence[Alert], start_ms: int, now_ms: int
) -> list[KpiTable]:
    """``alert_closure`` per district and for the city (pure): cases of ``[start_ms, now_ms]`` and the
    live alerts not carried by an incident, by severity and overdue."""
    rows: dict[str, dict[str, ClosureRow]] = {"district": {}, CITY: {}}
    if now_ms > start_ms:
        for by, found in rows.items():
            found.update((r.group, r) for r in closure_table(month, start_ms, now_ms + 1, by))
    counted = [a for a in live if a.live and not a.parent]
    scopes = {"district": sorted({*rows["district"], *(a.district for a in counted)}), CITY: [CITY]}
    tables = []
    for scope, ids in scopes.items():
        fields: dict[str, list[float]] = {}
        for scope_id in ids:
            r = rows[scope].get(scope_id, ClosureRow(scope_id))
            mine = [a for a in counted if scope == CITY or a.district == scope_id]
            values = {
                "due": r.due,
                "on_time": r.on_time,
                "late": r.late,
                "overdue_open": r.overdue_open,
                "opened": r.opened,
                "closed": r.closed,
                "on_time_rate": np.nan if r.on_time_rate is None else r.on_time_rate,
                "closure_rate": np.nan if r.closure_rate is None else r.closure_rate,
                "open": len(mine),
                "overdue": sum(a.deadline_ms < now_ms for a in mine),
                **{f"open_{s.value}": sum(a.severity is s for a in mine) for s in Severity},
            }
            for name, value in values.items():
                fields.setdefault(name, []).append(float(value))
        if ids:
            arrays = {name: np.asarray(column, dtype=np.float64) for name, column in fields.items()}
            tables.append(KpiTable(ALERT_CLOSURE, scope, tuple(ids), arrays, now_ms))
    return tables
