"""The alert values every part of the alerts package shares (pure, frozen)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class AlertEvent(enum.StrEnum):
    """What moves an alert: a person (acknowledge, start, resolve, close, reopen) or the system."""

    ACKNOWLEDGE = "acknowledge"
    START = "start"  # work in progress
    RESOLVE = "resolve"  # a person says it is fixed
    AUTO_RESOLVE = "auto_resolve"  # the condition stayed clear for the hysteresis time
    REOPEN = "reopen"  # the condition came back within the grace period after resolving
    CLOSE = "close"  # confirmed fixed (a person, or the grace period ran out with the condition clear)
    NOTE = "note"  # a person adds a note; the state stays
    ASSIGN = "assign"  # a person hands the alert to a crew; the state stays


class Severity(enum.StrEnum):
    EMERGENCY = "emergency"  # danger (leakage, flooding): action within 1 h
    SERIOUS = "serious"  # 3 working days
    ORDINARY = "ordinary"  # 24 h


SYSTEM = "system"  # the actor of automatic transitions


@dataclass(frozen=True, slots=True)
class Alert:
    """One problem a crew owns: a finding's rule on one subject, from open to closed."""

    id: str  # stable: "<rule>:<subject>:<opened_ms>"
    key: str  # "<rule>:<subject>": the dedupe key (one live alert per key)
    rule: str
    family: str
    subject_kind: str
    subject: str
    district: str
    road: str
    grid_cell: str
    crew: str
    severity: Severity
    state: AlertState
    opened_ms: int
    deadline_ms: int
    explanation: str
    children: tuple[str, ...] = ()  # subjects the incident carries (a circuit outage's lamps)
    parent: str = ""  # id of the incident alert that suppresses this one ("" none)
    maintenance: str = ""  # the maintenance window suppressing its notifications ("" none)
    flapping: bool = False  # reopened too often: notifications held back
    escalation: int = 0  # 0 crew, 1 road chief / grid manager, 2 supervisor
    acknowledged_ms: int | None = None
    resolved_ms: int | None = None
    closed_ms: int | None = None
    reopen_count: int = 0
    condition_clear_ms: int | None = None  # when the finding cleared (None: still holds)

    @property
    def live(self) -> bool:
        return self.state not in (AlertState.RESOLVED, AlertState.CLOSED)

    def on_time(self) -> bool | None:
        """Closed (resolved) before its deadline; None while not resolved."""
        done = self.resolved_ms
        return None if done is None else done <= self.deadline_ms


@dataclass(frozen=True, slots=True)
class Transition:
    """One move of an alert's lifecycle: who, when, why. ``from_state`` is None for creation."""

    alert_id: str
    from_state: AlertState | None
    to_state: AlertState
    event: str  # an AlertEvent value, or "create", "escalate", "suppress"
    actor: str
    at_ms: int
    note: str = ""


class NotificationKind(enum.StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    DIGEST = "digest"


@dataclass(frozen=True, slots=True)
class Notification:
    """A message to send, once: ``id`` is deterministic, so a restart finds it already sent or pending."""

    id: str  # e.g. "<alert id>:opened:0" or "digest:<recipient>:<window start ms>"
    kind: NotificationKind
    recipients: tuple[str, ...]  # person ids (routing resolves them to apprise URLs)
    title: str
    body: str
    alert_ids: tuple[str, ...]
    created_ms: int
    severity: Severity = Severity.ORDINARY
    attributes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
