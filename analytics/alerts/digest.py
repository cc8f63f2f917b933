"""Storm collapsing (pure): many pending notifications for one person in one window become one digest.

A crew member whose phone buzzes fifty times in a minute stops reading it. ``collapse`` looks at the
pending outbox and, per recipient and per window (fixed windows of ``window_ms`` on the notifications'
``created_ms``), replaces more than ``max_individual`` notifications by ONE ``DIGEST`` notification that
lists them by severity, then deadline.

Rules (each one simple enough to say to a crew):

- **Emergencies are never collapsed**: an emergency must stand out, so it always goes on its own (it
  still counts towards the person's limit). Digests already made are never collapsed again.
- **Deliveries are per recipient, the outbox status is per notification.** A notification addressed to
  several people is collapsed only when it would be collapsed for *every* one of them; otherwise it goes
  on its own to all of them. Nobody ever loses a message or gets the same one twice; the price is that a
  person who shares notifications with someone below the limit may get more than ``max_individual``.
- A digest lists at least two notifications (a digest of one is just a worse copy of it).
- The digest id is deterministic: ``digest:<recipient>:<window start ms>:<member hash>``. The member hash
  (8 hex digits over the collapsed ids) keeps two digests of one window apart (a storm that spans two
  passes of the sender) while a re-run over the same pending set after a restart makes the same id, which
  the store ignores.

``alerts`` (optional, by alert id) lets the digest name the crew or district and order by deadline; a
notification's ``attributes`` (``crew``, ``district``, ``deadline_ms``) are used when the alert is not
given. Without either, the digest still lists everything, ordered by severity and creation time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics.alerts import AlertConfigError
from analytics.alerts.model import Alert, Notification, NotificationKind, Severity

_RANK = {Severity.EMERGENCY: 0, Severity.SERIOUS: 1, Severity.ORDINARY: 2}
_OPENING = frozenset({NotificationKind.OPENED, NotificationKind.REOPENED})


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestConfig:
    # CHOICE: 5 min is about how long a crew takes to read, triage and act on one message; a storm
    # (a feeder trip, a storm front over a district) opens its alerts within that time.
    window_ms: int = 5 * 60_000
    # CHOICE: up to 3 separate messages per person per window stay readable on a phone; a 4th means a storm.
    max_individual: int = 3
    # CHOICE: a digest body lists at most this many lines (a phone screen or two); the rest are counted.
    max_lines: int = 40
    # CHOICE: the seed city's clock (same default as analytics.schedule); deadlines are shown in local time.
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if self.window_ms < 1_000:
            raise AlertConfigError(f"digest window_ms must be at least 1000 ms, not {self.window_ms}")
        if self.max_individual < 1:
            raise AlertConfigError(f"digest max_individual must be at least 1, not {self.max_individual}")
        if self.max_lines < 1:
            raise AlertConfigError(f"digest max_lines must be at least 1, not {self.max_lines}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise AlertConfigError(f"digest timezone {self.timezone!r:.60} is not a zoneinfo name") from exc

    def window_start(self, created_ms: int) -> int:
        return created_ms - created_ms % self.window_ms


def collapse(
    pending: Sequence[Notification],
    now_ms: int,
    config: DigestConfig,
    alerts: Mapping[str, Alert] | None = None,
) -> tuple[list[Notification], dict[str, str]]:
    """The notifications to send now, and {collapsed notification id: digest id}.

    The result keeps every pending notification that is not collapsed, plus one digest per recipient
    and window that was collapsed, emergencies first, then in creation order.
    """
    known = alerts or {}
    # (recipient, window start) -> the notifications addressed to that person in that window
    groups: dict[tuple[str, int], list[Notification]] = defaultdict(list)
    for note in pending:
        if note.kind is not NotificationKind.DIGEST:
            for person in dict.fromkeys(note.recipients):
                groups[(person, config.window_start(note.created_ms))].append(note)
    crowded = {key for key, notes in groups.items() if len(notes) > config.max_individual}
    collapsed = {
        note.id: note
        for note in pending
        if _collapsible(note)
        and all((person, config.window_start(note.created_ms)) in crowded for person in note.recipients)
    }
    members = _members(groups, crowded, collapsed)

    digests: list[Notification] = []
    digest_of: dict[str, str] = {}
    waiting = {note.id for note in pending}
    for (person, start), notes in sorted(members.items()):
        digest = _digest(person, start, notes, now_ms, config, known)
        if digest.id not in waiting:  # already made by an earlier pass that stopped half way
            digests.append(digest)
        for note in notes:  # several recipients: the first one's digest names it
            digest_of.setdefault(note.id, digest.id)
    out = [note for note in pending if note.id not in collapsed] + digests
    out.sort(key=lambda n: (n.severity is not Severity.EMERGENCY, n.created_ms, n.id))
    return out, digest_of


def _collapsible(note: Notification) -> bool:
    emergency = note.severity is Severity.EMERGENCY  # must stand out: never folded into a digest
    return bool(note.recipients) and note.kind is not NotificationKind.DIGEST and not emergency


def _members(
    groups: Mapping[tuple[str, int], list[Notification]],
    crowded: set[tuple[str, int]],
    collapsed: dict[str, Notification],
) -> dict[tuple[str, int], list[Notification]]:
    """Per crowded (recipient, window): its collapsed notifications; a group of one is sent on its own.

    Sending a lone member on its own takes it out of its other recipients' digests too (it goes to all
    of them), which may leave another group with one member: repeat until every digest has two or more.
    """
    while True:
        members = {key: [n for n in groups[key] if n.id in collapsed] for key in crowded}
        lonely = [notes[0].id for notes in members.values() if len(notes) == 1]
        if not lonely:
            return {key: notes for key, notes in members.items() if notes}
        for note_id in lonely:
            collapsed.pop(note_id, None)


def _digest(
    person: str,
    window_start: int,
    notes: Sequence[Notification],
    now_ms: int,
    config: DigestConfig,
    alerts: Mapping[str, Alert],
) -> Notification:
    tz = ZoneInfo(config.timezone)
    ordered = sorted(notes, key=lambda n: (_RANK[n.severity], _due_key(n, alerts), n.created_ms, n.id))
    alert_ids = tuple(dict.fromkeys(a for n in ordered for a in n.alert_ids))
    count = len(alert_ids) or len(ordered)
    noun = "alert" if count == 1 else "alerts"
    verb = "opened" if all(n.kind in _OPENING for n in ordered) else "need attention"
    place = _place(ordered, alerts)
    title = f"{count} {noun} {verb}" + (f" in {place}" if place else "")
    lines = [_line(n, alerts, tz) for n in ordered[: config.max_lines]]
    if len(ordered) > config.max_lines:
        lines.append(f"... and {len(ordered) - config.max_lines} more: citywatch alerts list")
    since = dt.datetime.fromtimestamp(window_start / 1000, tz).strftime("%Y-%m-%d %H:%M")
    body = "\n".join([f"{len(ordered)} notifications since {since}, most severe first:", "", *lines])
    member_hash = hashlib.sha256("\n".join(sorted(n.id for n in notes)).encode()).hexdigest()[:8]
    return Notification(
        id=f"digest:{person}:{window_start}:{member_hash}",
        kind=NotificationKind.DIGEST,
        recipients=(person,),
        title=title,
        body=body,
        alert_ids=alert_ids,
        created_ms=now_ms,
        severity=min((n.severity for n in ordered), key=_RANK.__getitem__),
        attributes={"window_start_ms": str(window_start), "collapsed": str(len(ordered))},
    )


def _due_key(note: Notification, alerts: Mapping[str, Alert]) -> int:
    deadline = _deadline(note, alerts)
    return 2**63 if deadline is None else deadline  # unknown deadlines last


def _deadline(note: Notification, alerts: Mapping[str, Alert]) -> int | None:
    for alert_id in note.alert_ids:
        if alert_id in alerts:
            return alerts[alert_id].deadline_ms
    raw = note.attributes.get("deadline_ms", "")
    return int(raw) if raw.lstrip("-").isdigit() else None


def _where(note: Notification, alerts: Mapping[str, Alert], field: str) -> str:
    for alert_id in note.alert_ids:
        if alert_id in alerts:
            return str(getattr(alerts[alert_id], field))
    return note.attributes.get(field, "")


def _place(notes: Sequence[Notification], alerts: Mapping[str, Alert]) -> str:
    """The crew's name when they all share one, else the district's, else nothing."""
    for field in ("crew", "district"):
        values = {_where(n, alerts, field) for n in notes}
        if len(values) == 1 and (value := values.pop()):
            return f"{field} {value}"
    return ""


def _line(note: Notification, alerts: Mapping[str, Alert], tz: ZoneInfo) -> str:
    deadline = _deadline(note, alerts)
    due = (
        ""
        if deadline is None
        else dt.datetime.fromtimestamp(deadline / 1000, tz).strftime(" due %m-%d %H:%M")
    )
    what = "" if note.kind is NotificationKind.OPENED else f" ({note.kind.value})"
    return f"- {note.severity.value.upper()}{due}: {note.title}{what}"
