"""The alert service (adapter): findings in, alerts in the store, notifications out, events to InfluxDB.

It runs beside the analytics worker of its partition, which hands it each tick's finding events
(``on_events``) and calls ``tick`` once per evaluation. Every step reads the alerts it needs from the
store, asks the pure ``AlertPolicy`` what changes, and applies the ``Changes`` in one transaction with
``based_on`` (a crew acknowledging from the command line at the same moment makes the store refuse the
stale write; the service reads again and recomputes). Then the outbox sender delivers what is due and
the transitions not yet exported are written to InfluxDB as ``alert_event`` points for Grafana.

A failure here (database away, a courier down) is logged and retried next tick; it never stops the
analytics worker's evaluation.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from analytics.alerts import AlertConfigError
from analytics.alerts.cityfile import rules_from_text
from analytics.alerts.events import transition_line
from analytics.alerts.model import Alert, AlertEvent, AlertState
from analytics.alerts.notify import OutboxSender
from analytics.alerts.policy import AlertPolicy, Changes
from analytics.alerts.routing import Contacts
from analytics.alerts.severity import SeverityPolicy
from analytics.alerts.store import AlertStore, StaleAlert
from analytics.findings import FindingEvent
from ingest import InfluxError
from ingest.influx import InfluxV1

log = logging.getLogger(__name__)

_NOT_CLOSED = (AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.IN_PROGRESS, AlertState.RESOLVED)
_RETRIES = 3
_MAX_ALERTS = 1_000_000


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
        grace = self.policy.config.reopen_grace_ms

        def compute() -> tuple[Changes, list[Alert]]:
            live = self.store.live_by_key()
            resolved = self.store.resolved_since(now_ms - grace)
            changes = self.policy.on_findings(live, resolved, events, now_ms)
            return changes, [*live.values(), *resolved.values()]

        self._apply(compute, "findings")

    def tick(self, now_ms: int) -> None:
        """What time does (escalation, auto-resolve, auto-close), then deliveries and event export."""
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

    def act(self, alert_id: str, event: str, actor: str, at_ms: int, note: str = "") -> Alert:
        """A person's move, through the policy (so a resolve tells whoever was escalated to)."""
        for _ in range(_RETRIES):
            alert = self.store.get(alert_id)
            changes = self.policy.act(alert, AlertEvent(event), actor, at_ms, note)
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
