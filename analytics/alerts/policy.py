"""The alert policy: live alerts, finding events and the time in; ``Changes`` out (pure, deterministic).

The SQL store is the source of truth; it reads the alerts, calls the policy, and applies the ``Changes``
in one transaction (alert versions upserted, transitions and notifications inserted, a notification id
that already exists ignored). Notification ids are built from the alert id, the kind and a level or count,
never from the clock, so re-running the same inputs after a restart yields the same ids and nothing is
sent twice.

What the policy decides (docs/alerts.md has the full story):

- **One alert per problem.** A finding opens an alert with id ``<rule>:<subject>:<opened_ms>`` unless its
  key already has a live one (dedupe), or a resolved one within the reopen grace (that one reopens).
  A cleared finding only marks the alert's ``condition_clear_ms``; ``tick`` auto-resolves it once the
  condition has stayed clear for the hysteresis time, so a lamp flickering on and off keeps one alert.
- **Incidents.** A circuit outage, a dead gateway or a station without power carries the alerts it
  explains (``PolicyConfig.incidents``): they get ``parent`` set and send nothing. They resolve with
  their incident; one that still holds after its incident resolved is released and notified on its own.
  A new non-emergency alert waits ``group_wait`` before its first notification (``escalation`` is
  ``NOT_NOTIFIED`` until then), so lamps failing a tick before their circuit's outage is recognised
  still produce one notification.
- **Held notifications.** Planned works (``MaintenanceWindow``) and flapping (too many reopens) hold an
  alert's notifications back; a held notification is never sent later for the same event.
- **Escalation.** Not acknowledged within ``ack_timeout`` → level 1 (road chief, grid manager), another
  timeout → level 2 (supervisor); the deadline approaching (``deadline_escalation``) escalates too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from analytics.alerts import AlertConfigError, IllegalTransition
from analytics.alerts.lifecycle import step
from analytics.alerts.model import (
    SYSTEM,
    Alert,
    AlertEvent,
    AlertState,
    Notification,
    NotificationKind,
    Severity,
    Transition,
)
from analytics.alerts.routing import Contacts, Locator, Place
from analytics.alerts.severity import SeverityPolicy, rank
from analytics.findings import Change, Finding, FindingEvent, RuleInfo
from analytics.topology import CIRCUIT, DISTRICT, GATEWAY_SUBJECT, GRID, ROAD
from devices.kinds import DeviceKind


@dataclass(frozen=True, slots=True)
class Changes:
    """What the store applies in one transaction: alert versions upserted, transitions and notifications
    inserted (a notification id that already exists is ignored: a restart never sends twice)."""

    alerts: tuple[Alert, ...] = ()
    transitions: tuple[Transition, ...] = ()
    notifications: tuple[Notification, ...] = ()

    def merge(self, other: Changes) -> Changes:
        """Both sets of changes; a later version of an alert (same id) replaces the earlier one."""
        latest = {a.id: a for a in (*self.alerts, *other.alerts)}
        return Changes(
            tuple(latest.values()),
            self.transitions + other.transitions,
            self.notifications + other.notifications,
        )

    def __bool__(self) -> bool:
        return bool(self.alerts or self.transitions or self.notifications)


# Transition events besides the lifecycle's AlertEvent values.
CREATE = "create"
ESCALATE = "escalate"
SEVERITY = "severity"  # the finding's level rose to a higher class
SUPPRESS = "suppress"  # notifications held: part of an incident, planned works, flapping
RELEASE = "release"  # no longer held

NOT_NOTIFIED = -1  # Alert.escalation before its first notification (group wait, or part of an incident)

_MIN = 60_000
_H = 60 * _MIN
_E, _S, _O = Severity.EMERGENCY, Severity.SERIOUS, Severity.ORDINARY

CHILDREN = "children"  # the incident finding's listed children (a circuit outage's lamps)
SAME_CIRCUIT = "circuit"  # any subject on the incident's circuit
SAME_GATEWAY = "gateway"  # any device behind the incident's gateway
SAME_SUBJECT = "subject"  # other rules on the incident's own subject (a pump station)
_SCOPES = frozenset({CHILDREN, SAME_CIRCUIT, SAME_GATEWAY, SAME_SUBJECT})
_WINDOW_KINDS = frozenset({ROAD, CIRCUIT, GRID, DISTRICT, GATEWAY_SUBJECT, *(k.value for k in DeviceKind)})


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """Which alerts an incident rule's alert carries: those related by one of ``scopes`` and, when
    ``child_rules`` is not empty, of one of those rules. An incident alert is never a child itself, nor
    is an alert more severe than the incident."""

    scopes: frozenset[str]
    child_rules: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.scopes or not self.scopes <= _SCOPES:
            raise AlertConfigError(f"incident scopes {sorted(self.scopes)} must be some of {sorted(_SCOPES)}")


def _default_incidents() -> Mapping[str, Incident]:
    # The issue: "a circuit, cabinet, gateway or pump-station incident carries its child findings".
    # DOMAIN.md s. 2: cable theft is "one circuit event, not N lamp events" (a circuit is located by its
    # cabinet, so this is the cabinet incident too); s. 7 / analytics.comm: a dead gateway explains its
    # devices' silence; a station without mains cannot start or run its pumps.
    offline = frozenset(f"offline_{k.value}" for k in DeviceKind)
    return MappingProxyType(
        {
            "circuit_outage": Incident(scopes=frozenset({CHILDREN, SAME_CIRCUIT})),
            "circuit_over_voltage": Incident(
                scopes=frozenset({CHILDREN}), child_rules=frozenset({"over_voltage"})
            ),
            "circuit_under_voltage": Incident(
                scopes=frozenset({CHILDREN}), child_rules=frozenset({"under_voltage"})
            ),
            "gateway_offline": Incident(scopes=frozenset({SAME_GATEWAY}), child_rules=offline),
            "station_power_loss": Incident(
                scopes=frozenset({SAME_SUBJECT}),
                child_rules=frozenset(
                    {"pump_fail_to_start", "pump_fault", "pump_dry_run", "offline_pump_station"}
                ),
            ),
        }
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceWindow:
    """Planned works: alerts in scope are created and recorded, but send nothing while it lasts.

    ``scope_kind``: road, circuit, grid_cell, district, gateway, or a device kind (pump_station, cabinet,
    ...: that one device)."""

    scope_kind: str
    scope_id: str
    start_ms: int
    end_ms: int
    reason: str

    def __post_init__(self) -> None:
        where = f"maintenance window {self.scope_kind}:{self.scope_id}"
        if self.scope_kind not in _WINDOW_KINDS:
            raise AlertConfigError(f"{where}: scope kind must be one of {sorted(_WINDOW_KINDS)}")
        if not self.scope_id:
            raise AlertConfigError(f"{where}: no scope id")
        if self.end_ms <= self.start_ms:
            raise AlertConfigError(f"{where}: ends at or before it starts")
        if not self.reason.strip():
            raise AlertConfigError(f"{where}: say why (the reason is shown in the alert)")

    def active(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms < self.end_ms


def _per_severity(emergency: int, serious: int, ordinary: int) -> Mapping[Severity, int]:
    return MappingProxyType({_E: emergency, _S: serious, _O: ordinary})


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """Every knob of the alert policy (all CHOICE unless noted; docs/alerts.md explains each)."""

    # Condition clear this long before auto-resolve (CHOICE): longer than a lamp's flicker, shorter than
    # anyone would call the fault fixed (the issue: a flapping lamp must not reopen a new alert every minute).
    auto_resolve_after_ms: int = 10 * _MIN
    # A resolved alert whose condition returns within this reopens (the same case, not a new one), and
    # closes when it passes with the condition clear (CHOICE; PRACTICE: Chicago counts a second report on
    # a circuit within 30 days as a duplicate, DOMAIN.md s. 2 - a day keeps the closure statistics honest).
    reopen_grace_ms: int = 24 * _H
    # A person's "resolved" whose condition still holds this long after is reopened (CHOICE: a day, longer
    # than the slowest reporting device, bins report every 1 to 24 h, DOMAIN.md s. 5).
    verify_resolve_ms: int = 24 * _H
    # More than this many reopens within flap_window (on average over the alert's life) is flapping:
    # notifications held until the rate drops back (CHOICE).
    flap_max_reopens: int = 3
    flap_window_ms: int = 6 * _H
    # Not acknowledged within this -> level 1, twice this -> level 2 (CHOICE, per severity: an emergency
    # must be acted on within 1 h, DOMAIN.md s. 2, so its crew has a quarter of that to answer).
    ack_timeout_ms: Mapping[Severity, int] = field(
        default_factory=lambda: _per_severity(15 * _MIN, 2 * _H, 8 * _H)
    )
    # Fractions of the time from opening to the deadline after which an unresolved alert reaches level 1
    # and level 2 (CHOICE: 80 % used -> road chief, overdue -> supervisor).
    deadline_escalation: tuple[float, float] = (0.8, 1.0)
    # A new alert's first notification waits this long so an incident recognised a tick later can take
    # it over (CHOICE; PRACTICE: Prometheus Alertmanager's group_wait). Emergencies do not wait.
    group_wait_ms: Mapping[Severity, int] = field(
        default_factory=lambda: _per_severity(0, 5 * _MIN, 5 * _MIN)
    )
    incidents: Mapping[str, Incident] = field(default_factory=_default_incidents)
    maintenance: tuple[MaintenanceWindow, ...] = ()

    def __post_init__(self) -> None:
        for name in ("auto_resolve_after_ms", "reopen_grace_ms", "verify_resolve_ms", "flap_window_ms"):
            if getattr(self, name) <= 0:
                raise AlertConfigError(f"{name} must be > 0")
        if self.flap_max_reopens < 1:
            raise AlertConfigError("flap_max_reopens must be >= 1")
        for name in ("ack_timeout_ms", "group_wait_ms"):
            table: Mapping[Severity, int] = getattr(self, name)
            missing = [s.value for s in Severity if s not in table]
            if missing:
                raise AlertConfigError(f"{name}: no value for {', '.join(missing)}")
            if any(v < 0 for v in table.values()) or (name == "ack_timeout_ms" and min(table.values()) <= 0):
                raise AlertConfigError(f"{name}: {dict(table)} must be > 0 (group wait >= 0)")
            object.__setattr__(self, name, MappingProxyType(dict(table)))
        first, second = self.deadline_escalation
        if not 0 < first <= second:
            raise AlertConfigError(
                f"deadline_escalation {self.deadline_escalation}: need 0 < level 1 <= level 2"
            )
        for rule, incident in self.incidents.items():
            if not isinstance(incident, Incident):
                raise AlertConfigError(f"incidents.{rule}: {incident!r} is not an Incident")
        object.__setattr__(self, "incidents", MappingProxyType(dict(self.incidents)))
        object.__setattr__(self, "maintenance", tuple(self.maintenance))


@functools.cache
def default_catalogue() -> Mapping[str, RuleInfo]:
    """The engine's rule catalogue (titles and families) with its default settings."""
    from analytics.assembly import build_engine
    from analytics.topology import build_topology

    return MappingProxyType(dict(build_engine(build_topology([])).rule_catalogue))


class _Batch:
    """Changes being built: the latest version of each alert, transitions and notifications in order."""

    def __init__(self, alerts: Iterable[Alert], incident_rules: Collection[str]) -> None:
        self.by_id: dict[str, Alert] = {a.id: a for a in alerts}
        self.changed: dict[str, Alert] = {}
        self.transitions: list[Transition] = []
        self.notifications: dict[str, Notification] = {}
        self.incident_rules = incident_rules
        self.incidents = {a.id for a in self.by_id.values() if a.rule in incident_rules}

    def put(self, alert: Alert, transition: Transition | None = None) -> Alert:
        self.by_id[alert.id] = self.changed[alert.id] = alert
        if alert.rule in self.incident_rules:
            self.incidents.add(alert.id)
        if transition is not None:
            self.transitions.append(transition)
        return alert

    def note(self, alert: Alert, event: str, at_ms: int, note: str, actor: str = SYSTEM) -> Transition:
        return Transition(alert.id, alert.state, alert.state, event, actor, at_ms, note)

    def changes(self) -> Changes:
        return Changes(
            tuple(self.changed.values()), tuple(self.transitions), tuple(self.notifications.values())
        )


class AlertPolicy:
    """Turns findings, the passing of time and people's actions into alert ``Changes``."""

    def __init__(
        self,
        config: PolicyConfig,
        severity: SeverityPolicy,
        contacts: Contacts,
        locator: Locator,
        *,
        catalogue: Mapping[str, RuleInfo] | None = None,
    ) -> None:
        self.config = config
        self.severity = severity
        self.calendar = severity.calendar
        self.contacts = contacts
        self.locator = locator
        self.catalogue = catalogue if catalogue is not None else default_catalogue()

    def with_maintenance(self, windows: Sequence[MaintenanceWindow]) -> AlertPolicy:
        """The same policy with these planned works (they are added and removed at run time)."""
        return AlertPolicy(
            replace(self.config, maintenance=tuple(windows)),
            self.severity,
            self.contacts,
            self.locator,
            catalogue=self.catalogue,
        )

    # --- findings ------------------------------------------------------------------------------------

    def on_findings(
        self,
        live: Mapping[str, Alert],
        resolved: Mapping[str, Alert],
        events: Sequence[FindingEvent],
        now_ms: int,
    ) -> Changes:
        """Alerts opened, reopened, updated or marked clear by ``events`` (applied in order).

        ``live``: the alerts not resolved or closed, by key; ``resolved``: recently resolved ones by key
        (within the reopen grace). Transitions carry each event's own time; ``now_ms`` only decides
        whether a new alert's group wait is already over (events replayed late after a restart).
        """
        batch = _Batch([*resolved.values(), *live.values()], self.config.incidents)
        by_key = {a.key: a for a in resolved.values() if a.state is AlertState.RESOLVED}
        by_key.update({a.key: a for a in live.values() if a.live})
        announce: list[tuple[str, int]] = []  # (alert id, at): first notification, decided at the end
        for event in events:
            finding, at = event.finding, event.at_ms
            alert = by_key.get(finding.key)
            if event.change is Change.CLEARED:
                if (
                    alert is not None
                    and alert.condition_clear_ms is None
                    and alert.state is not AlertState.CLOSED
                ):
                    by_key[alert.key] = batch.put(replace(alert, condition_clear_ms=at))
                continue
            if alert is not None and alert.live:
                by_key[alert.key] = self._still_open(batch, alert, finding, at)
            elif (
                alert is not None
                and alert.state is AlertState.RESOLVED
                and alert.resolved_ms is not None
                and at - alert.resolved_ms <= self.config.reopen_grace_ms
            ):
                note = (
                    f"the condition came back within the grace period (resolved {self._t(alert.resolved_ms)})"
                )
                by_key[alert.key] = self._reopen(batch, alert, at, note)
            else:
                new = self._create(batch, finding, at)
                by_key[new.key] = new
                if new.escalation == NOT_NOTIFIED:
                    announce.append((new.id, at))
        for alert_id, at in announce:  # after every event: an incident later in the batch takes them over
            alert = batch.by_id[alert_id]
            if not alert.parent and now_ms >= alert.opened_ms + self.config.group_wait_ms[alert.severity]:
                self._announce(batch, alert, max(at, now_ms))
        return batch.changes()

    def _still_open(self, batch: _Batch, alert: Alert, finding: Finding, at: int) -> Alert:
        """A finding (re)opened or changed level while its alert is live: hysteresis and severity."""
        updated = alert
        if alert.condition_clear_ms is not None:
            updated = replace(updated, condition_clear_ms=None)  # back before the hysteresis ran out
        if finding.children and finding.children != alert.children:
            updated = batch.put(replace(updated, children=finding.children))
            if updated.rule in self.config.incidents:
                self._adopt_children(batch, updated, at)
        new = self.severity.severity(finding.rule, finding.level)
        if rank(new) <= rank(alert.severity):
            return batch.put(updated) if updated != alert else alert
        deadline = min(alert.deadline_ms, self.severity.deadline_ms(at, new))
        updated = replace(
            updated,
            severity=new,
            deadline_ms=deadline,
            explanation=f"{alert.explanation}; level {finding.level} from {self._t(at)}",
        )
        note = f"level {finding.level}: {alert.severity} -> {new}, deadline {self._t(deadline)}"
        batch.put(updated, batch.note(alert, SEVERITY, at, note))
        if updated.escalation >= 0 and not self._held(updated, at):
            people = self._up_to(updated, updated.escalation, at)
            headline = f"Now {new.upper()}: level {finding.level}, deadline {self._t(deadline)}"
            self._notify(
                batch,
                updated,
                f"{updated.id}:severity:{new}",
                NotificationKind.ESCALATED,
                people,
                at,
                headline,
            )
        return updated

    def _create(self, batch: _Batch, finding: Finding, at: int) -> Alert:
        place = self.locator.place(finding.subject_kind, finding.subject)
        severity = self.severity.severity(finding.rule, finding.level)
        info = self.catalogue.get(finding.rule)
        alert = Alert(
            id=f"{finding.key}:{at}",
            key=finding.key,
            rule=finding.rule,
            family=info.family if info is not None else "",
            subject_kind=finding.subject_kind,
            subject=finding.subject,
            district=place.district or finding.district,
            road=place.road,
            grid_cell=place.grid_cell,
            crew=place.crew,
            severity=severity,
            state=AlertState.OPEN,
            opened_ms=at,
            deadline_ms=self.severity.deadline_ms(at, severity),
            explanation=finding.explanation,
            children=finding.children,
            escalation=NOT_NOTIFIED,
        )
        notes = []
        window = self._window(alert, at)
        if window is not None:
            alert = self._enter_maintenance(alert, window)
            notes.append(f"notifications held: {alert.maintenance}")
        batch.put(alert, Transition(alert.id, None, AlertState.OPEN, CREATE, SYSTEM, at, "; ".join(notes)))
        if finding.rule in self.config.incidents:
            self._adopt_children(batch, alert, at)
        else:
            alert = self._find_parent(batch, alert, at)
        if window is not None:  # held for good: "not sent later for the same event"
            alert = batch.put(replace(batch.by_id[alert.id], escalation=0))
        elif alert.rule in self.config.incidents:
            self._announce(batch, alert, at)
        return batch.by_id[alert.id]

    def _reopen(self, batch: _Batch, alert: Alert, at: int, note: str, actor: str = SYSTEM) -> Alert:
        reopened, transition = step(alert, AlertEvent.REOPEN, actor, at, note)
        batch.put(reopened, transition)
        if self._flapping(reopened, at) and not reopened.flapping:
            reopened = batch.put(
                replace(reopened, flapping=True),
                batch.note(
                    reopened,
                    SUPPRESS,
                    at,
                    f"flapping: reopened {reopened.reopen_count} times since "
                    f"{self._t(reopened.opened_ms)}; notifications held until it is quiet",
                ),
            )
        if reopened.rule in self.config.incidents:
            self._adopt_children(batch, reopened, at)
        else:
            reopened = self._find_parent(batch, reopened, at)
        reopened = self._sync_maintenance(batch, reopened, at)
        if not self._held(reopened, at):
            people, level = self._first_recipients(reopened, at)
            if reopened.escalation == NOT_NOTIFIED:
                reopened = batch.put(replace(reopened, escalation=level))
            headline = f"REOPENED ({reopened.reopen_count}): {note}"
            notification_id = f"{reopened.id}:reopened:{reopened.reopen_count}"
            self._notify(batch, reopened, notification_id, NotificationKind.REOPENED, people, at, headline)
        return reopened

    # --- incidents -----------------------------------------------------------------------------------

    def _is_child(self, alert: Alert, incident: Alert) -> bool:
        spec = self.config.incidents.get(incident.rule)
        if spec is None or alert.id == incident.id or alert.rule in self.config.incidents:
            return False
        if spec.child_rules and alert.rule not in spec.child_rules:
            return False
        if rank(alert.severity) > rank(incident.severity):
            return False  # a more urgent alert (leakage on an outage's cabinet) is never hidden under it
        return any(self._related(scope, alert, incident) for scope in sorted(spec.scopes))

    def _related(self, scope: str, alert: Alert, incident: Alert) -> bool:
        if scope == CHILDREN:
            return alert.subject in incident.children
        if scope == SAME_SUBJECT:
            return (alert.subject_kind, alert.subject) == (incident.subject_kind, incident.subject)
        place = self._place(alert)
        if scope == SAME_CIRCUIT:
            return incident.subject_kind == CIRCUIT and place.circuit == incident.subject
        return incident.subject_kind == GATEWAY_SUBJECT and place.gateway == incident.subject

    def _place(self, alert: Alert) -> Place:
        return self.locator.place(alert.subject_kind, alert.subject)

    def _find_parent(self, batch: _Batch, alert: Alert, at: int) -> Alert:
        for incident_id in sorted(batch.incidents):
            incident = batch.by_id[incident_id]
            if incident.live and self._is_child(alert, incident):
                return self._attach(batch, alert, incident, at)
        return alert

    def _adopt_children(self, batch: _Batch, incident: Alert, at: int) -> None:
        for alert in sorted(batch.by_id.values(), key=lambda a: a.id):
            if alert.live and alert.parent != incident.id and self._is_child(alert, incident):
                parent = batch.by_id.get(alert.parent)
                if parent is None or not parent.live:
                    self._attach(batch, alert, incident, at)

    def _attach(self, batch: _Batch, alert: Alert, incident: Alert, at: int) -> Alert:
        note = f"part of {incident.rule} on {incident.subject} ({incident.id}): notifications go with it"
        return batch.put(replace(alert, parent=incident.id), batch.note(alert, SUPPRESS, at, note))

    # --- held notifications --------------------------------------------------------------------------

    def _flapping(self, alert: Alert, at: int) -> bool:
        """More than ``flap_max_reopens`` reopens per ``flap_window`` on average since the alert opened
        (the alert keeps a count, not the times: for a young alert this is exactly "N within the window")."""
        n, window = self.config.flap_max_reopens, self.config.flap_window_ms
        if alert.reopen_count <= n:
            return False
        return alert.reopen_count * window > n * max(at - alert.opened_ms, window)

    def _window(self, alert: Alert, at: int) -> MaintenanceWindow | None:
        active = [w for w in self.config.maintenance if w.active(at) and self._in_scope(alert, w)]
        return max(active, key=lambda w: (w.end_ms, w.scope_kind, w.scope_id), default=None)

    def _in_scope(self, alert: Alert, window: MaintenanceWindow) -> bool:
        kind, ident = window.scope_kind, window.scope_id
        if (kind, ident) == (alert.subject_kind, alert.subject):
            return True
        fields: dict[str, Callable[[], str]] = {
            ROAD: lambda: alert.road,
            GRID: lambda: alert.grid_cell,
            DISTRICT: lambda: alert.district,
            CIRCUIT: lambda: self._place(alert).circuit,
            GATEWAY_SUBJECT: lambda: self._place(alert).gateway,
        }
        get = fields.get(kind)
        return get is not None and get() == ident

    def _works(self, window: MaintenanceWindow) -> str:
        return f"planned works: {window.reason} until {self._t(window.end_ms)}"

    def _enter_maintenance(self, alert: Alert, window: MaintenanceWindow) -> Alert:
        text = self._works(window)
        base = _without(alert.explanation, alert.maintenance)
        return replace(alert, maintenance=text, explanation=f"{base} ({text})")

    def _sync_maintenance(self, batch: _Batch, alert: Alert, at: int) -> Alert:
        window = self._window(alert, at)
        text = self._works(window) if window is not None else ""
        if text == alert.maintenance:
            return alert
        if window is not None:
            return batch.put(
                self._enter_maintenance(alert, window),
                batch.note(alert, SUPPRESS, at, f"notifications held: {text}"),
            )
        released = replace(alert, maintenance="", explanation=_without(alert.explanation, alert.maintenance))
        return batch.put(released, batch.note(alert, RELEASE, at, f"{alert.maintenance} ended"))

    def _held(self, alert: Alert, at: int) -> bool:
        return bool(alert.parent or alert.flapping or alert.maintenance or self._window(alert, at))

    # --- time passing --------------------------------------------------------------------------------

    def tick(self, alerts: Mapping[str, Alert], now_ms: int) -> Changes:
        """What time alone does: auto-resolve, reopen an unconfirmed resolve, auto-close, first
        notifications after the group wait, planned works starting and ending, flapping released,
        children released from a resolved incident, escalation.

        ``alerts``: every alert not closed (live and resolved), by id.
        """
        batch = _Batch(alerts.values(), self.config.incidents)
        # incidents before the alerts they carry, so a child sees its parent's new state
        for alert in sorted(alerts.values(), key=lambda a: (bool(a.parent), a.id)):
            self._lifecycle(batch, batch.by_id[alert.id], now_ms)
        for alert_id in sorted(batch.by_id):
            alert = batch.by_id[alert_id]
            if alert.state is AlertState.CLOSED:
                continue
            alert = self._sync_maintenance(batch, alert, now_ms) if alert.live else alert
            if alert.flapping and not self._flapping(alert, now_ms):
                since = self._t(alert.opened_ms)
                note = f"quiet: {alert.reopen_count} reopens since {since}; notifications resume"
                alert = batch.put(replace(alert, flapping=False), batch.note(alert, RELEASE, now_ms, note))
            if not alert.live:
                continue
            alert = self._release_child(batch, alert, now_ms)
            if alert.escalation == NOT_NOTIFIED:
                if not alert.parent and now_ms >= alert.opened_ms + self.config.group_wait_ms[alert.severity]:
                    self._announce(batch, alert, now_ms)
                continue
            self._escalate(batch, alert, now_ms)
        return batch.changes()

    def _lifecycle(self, batch: _Batch, alert: Alert, now: int) -> None:
        cfg = self.config
        parent = batch.by_id.get(alert.parent) if alert.parent else None
        if alert.live and alert.condition_clear_ms is not None:
            if parent is not None and parent.live:
                return  # a child resolves with its incident (its finding may only be suppressed)
            if now - alert.condition_clear_ms < cfg.auto_resolve_after_ms:
                return
            note = f"condition clear since {self._t(alert.condition_clear_ms)}"
            done, transition = step(alert, AlertEvent.AUTO_RESOLVE, SYSTEM, now, note)
            # the fault went away when the condition cleared (or its incident was fixed), not at this tick
            fixed = (
                max(alert.condition_clear_ms, parent.resolved_ms or 0)
                if parent is not None
                else alert.condition_clear_ms
            )
            done = batch.put(replace(done, resolved_ms=fixed), transition)
            self._tell_resolved(batch, done, now)
        elif alert.state is AlertState.RESOLVED and alert.resolved_ms is not None:
            since = now - alert.resolved_ms
            if alert.condition_clear_ms is None and since >= cfg.verify_resolve_ms:
                self._reopen(
                    batch, alert, now, f"the condition still holds {_span(since)} after it was resolved"
                )
            elif alert.condition_clear_ms is not None and since >= cfg.reopen_grace_ms:
                note = f"clear for the grace period of {_span(cfg.reopen_grace_ms)} after it was resolved"
                batch.put(*step(alert, AlertEvent.CLOSE, SYSTEM, now, note))

    def _release_child(self, batch: _Batch, alert: Alert, now: int) -> Alert:
        if not alert.parent:
            return alert
        parent = batch.by_id.get(alert.parent)
        pending = (
            parent is not None and parent.state is AlertState.RESOLVED and parent.condition_clear_ms is None
        )
        if parent is not None and (parent.live or pending):
            return alert  # the incident holds (a resolved one whose condition holds will reopen)
        if alert.condition_clear_ms is not None:
            return alert  # on its way to auto-resolve
        note = f"its incident {alert.parent} is resolved but this still holds: it is a problem of its own"
        return batch.put(replace(alert, parent=""), batch.note(alert, RELEASE, now, note))

    def _escalate(self, batch: _Batch, alert: Alert, now: int) -> None:
        if alert.parent or alert.flapping or alert.maintenance or alert.escalation >= 2:
            return
        target, reasons = 0, []
        if alert.acknowledged_ms is None:
            start = self._escalation_start(alert, now)
            timeout = self.config.ack_timeout_ms[alert.severity]
            reached = min(2, (now - start) // timeout)
            if reached > 0:
                target = int(reached)
                reasons.append(f"not acknowledged within {_span(timeout * target)}")
        first, second = self.config.deadline_escalation
        span = alert.deadline_ms - alert.opened_ms
        if now >= alert.opened_ms + second * span:
            target = 2
            reasons.append(f"overdue since {self._t(alert.deadline_ms)}")
        elif now >= alert.opened_ms + first * span and target < 1:
            target = 1
            reasons.append(f"deadline {self._t(alert.deadline_ms)} approaching")
        if target <= alert.escalation:
            return
        reason = "; ".join(reasons)
        updated = batch.put(
            replace(alert, escalation=target), batch.note(alert, ESCALATE, now, f"level {target}: {reason}")
        )
        for level in range(alert.escalation + 1, target + 1):
            people = self.contacts.recipients(updated, level, now, self.calendar)
            headline = f"ESCALATED to {_LEVEL_NAMES[level]}: {reason}"
            self._notify(
                batch,
                updated,
                f"{alert.id}:escalated:{level}",
                NotificationKind.ESCALATED,
                people,
                now,
                headline,
            )

    def _escalation_start(self, alert: Alert, now: int) -> int:
        """When the acknowledgement clock started: the opening, or the end of planned works over it."""
        ends = [
            w.end_ms
            for w in self.config.maintenance
            if alert.opened_ms < w.end_ms <= now and self._in_scope(alert, w)
        ]
        return max([alert.opened_ms, *ends])

    # --- people --------------------------------------------------------------------------------------

    def act(
        self, alert: Alert, event: AlertEvent, actor: str, at_ms: int, note: str = "", *, crew: str = ""
    ) -> Changes:
        """A person acknowledges, starts, resolves, closes, reopens, notes or assigns ``alert`` (to
        ``crew``); raises IllegalTransition.

        Acknowledging stops escalation by the acknowledgement timeout (the deadline still escalates).
        An assignment to another crew tells that crew's on-call person, unless the alert's notifications
        are held or it has not notified anyone yet (the group wait will, and to the new crew).
        """
        event = AlertEvent(event)
        if event is AlertEvent.AUTO_RESOLVE:
            raise IllegalTransition(alert.id, alert.state.value, "auto-resolved by a person")
        batch = _Batch([alert], self.config.incidents)
        if event is AlertEvent.REOPEN:
            self._reopen(batch, alert, at_ms, note or f"reopened by {actor}", actor)
            return batch.changes()
        if event is AlertEvent.ASSIGN:
            if not crew:
                raise IllegalTransition(alert.id, alert.state.value, "assigned to no crew")
            what = f"assigned to {crew} (was {alert.crew or 'no crew'})"
            text = f"{what}: {note}" if note else what
            updated, transition = step(replace(alert, crew=crew), event, actor, at_ms, text)
            batch.put(updated, transition)
            if crew != alert.crew and updated.escalation != NOT_NOTIFIED and not self._held(updated, at_ms):
                people = self.contacts.recipients(updated, 0, at_ms, self.calendar)
                headline = f"ASSIGNED to your crew by {self.contacts.name(actor)}"
                assigned_id = f"{alert.id}:assigned:{crew}:{at_ms}"
                self._notify(batch, updated, assigned_id, NotificationKind.OPENED, people, at_ms, headline)
            return batch.changes()
        updated, transition = step(alert, event, actor, at_ms, note)
        batch.put(updated, transition)
        if event is AlertEvent.RESOLVE:
            self._tell_resolved(batch, updated, at_ms, f" by {self.contacts.name(actor)}")
        return batch.changes()

    # --- notifications -------------------------------------------------------------------------------

    def _first_recipients(self, alert: Alert, at: int) -> tuple[tuple[str, ...], int]:
        """The crew, or the next level up when the crew has nobody to tell."""
        for level in range(3):
            people = self.contacts.recipients(alert, level, at, self.calendar)
            if people:
                return people, level
        return (), 0

    def _up_to(self, alert: Alert, level: int, at: int) -> tuple[str, ...]:
        people = (
            p for lv in range(level + 1) for p in self.contacts.recipients(alert, lv, at, self.calendar)
        )
        return tuple(dict.fromkeys(people))

    def _announce(self, batch: _Batch, alert: Alert, at: int) -> None:
        """The alert's first notification (or none, when held: then never for this opening)."""
        if alert.parent:
            return
        if self._held(alert, at) or alert.acknowledged_ms is not None:
            batch.put(replace(alert, escalation=0))  # held, or someone took it before the group wait ended
            return
        people, level = self._first_recipients(alert, at)
        updated = batch.put(replace(alert, escalation=level))
        if not people:
            batch.transitions.append(
                batch.note(updated, ESCALATE, at, "nobody to tell: no crew, road chief or supervisor")
            )
        elif level:
            note = f"nobody to tell at level 0: sent to level {level}"
            batch.transitions.append(batch.note(updated, ESCALATE, at, note))
        headline = "NEW FAULT" + (f" (no crew contact: sent to the {_LEVEL_NAMES[level]})" if level else "")
        self._notify(
            batch, updated, f"{alert.id}:opened:{level}", NotificationKind.OPENED, people, at, headline
        )

    def _tell_resolved(self, batch: _Batch, alert: Alert, at: int, by: str = "") -> None:
        """Whoever the alert was escalated to learns it is resolved (the crew knows already)."""
        if alert.escalation < 1 or alert.parent or alert.flapping or alert.maintenance:
            return
        people = tuple(
            dict.fromkeys(
                p
                for lv in range(1, alert.escalation + 1)
                for p in self.contacts.recipients(alert, lv, at, self.calendar)
            )
        )
        notification_id = f"{alert.id}:resolved:{alert.reopen_count}"
        self._notify(batch, alert, notification_id, NotificationKind.RESOLVED, people, at, f"RESOLVED{by}")

    def _notify(
        self,
        batch: _Batch,
        alert: Alert,
        notification_id: str,
        kind: NotificationKind,
        people: tuple[str, ...],
        at: int,
        headline: str,
    ) -> None:
        if not people or notification_id in batch.notifications:
            return
        title, body = self.message(alert, headline)
        batch.notifications[notification_id] = Notification(
            id=notification_id,
            kind=kind,
            recipients=people,
            title=title,
            body=body,
            alert_ids=(alert.id,),
            created_ms=at,
            severity=alert.severity,
            attributes={
                "rule": alert.rule,
                "family": alert.family,
                "subject_kind": alert.subject_kind,
                "subject": alert.subject,
                "district": alert.district,
                "road": alert.road,
                "grid_cell": alert.grid_cell,
                "crew": alert.crew,
                "state": alert.state.value,
                "escalation": str(alert.escalation),
                "children": str(len(alert.children)),
            },
        )

    def title(self, rule: str) -> str:
        info = self.catalogue.get(rule)
        return info.title if info is not None else rule.replace("_", " ").capitalize()

    def message(self, alert: Alert, headline: str) -> tuple[str, str]:
        """Title and plain-text body a crew reads on a phone: what, where, how urgent, by when."""
        where = ", ".join(
            part
            for part in (
                alert.road,
                f"grid {alert.grid_cell}" if alert.grid_cell else "",
                f"district {alert.district}" if alert.district else "",
            )
            if part
        )
        title = f"[{alert.severity.upper()}] {self.title(alert.rule)}: {alert.subject}" + (
            f", {alert.road}" if alert.road else ""
        )
        deadline = self.severity.config.deadlines[alert.severity]
        lines = [
            headline,
            f"What: {self.title(alert.rule)} ({alert.severity} fault)",
            f"Where: {where or 'location unknown'} - {alert.subject_kind.replace('_', ' ')} {alert.subject}",
            f"Opened: {self._t(alert.opened_ms)}",
            f"Deadline: {self._t(alert.deadline_ms)} ({deadline})",
            f"Details: {alert.explanation}",
        ]
        if alert.children:
            shown = ", ".join(alert.children[:3]) + (", ..." if len(alert.children) > 3 else "")
            lines.append(f"Includes: {len(alert.children)} items ({shown}), one job")
        lines.append(f"Times: {self.calendar.timezone}. Alert {alert.id}")
        return title, "\n".join(lines)

    def _t(self, ms: int) -> str:
        return self.calendar.local_text(ms)


_LEVEL_NAMES = ("crew", "road chief and grid manager", "supervisor")


def _without(explanation: str, maintenance: str) -> str:
    return explanation.removesuffix(f" ({maintenance})") if maintenance else explanation


def _span(ms: int) -> str:
    if ms % _H == 0:
        hours = ms // _H
        return f"{hours // 24} d" if hours % 24 == 0 and hours >= 48 else f"{hours} h"
    return f"{ms // _MIN} min"
