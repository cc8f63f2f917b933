"""The alert policy and the deadlines: what a crew, a road chief and a supervisor would see, in order.

The policy is pure; ``Book`` below applies its ``Changes`` the way the SQL store does (alerts upserted
by id, a notification id already held is ignored), so each test runs a small stretch of city life.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.alerts import AlertConfigError, IllegalTransition
from analytics.alerts.model import SYSTEM, Alert, AlertEvent, AlertState, Notification, Severity, Transition
from analytics.alerts.policy import (
    NOT_NOTIFIED,
    AlertPolicy,
    Changes,
    Incident,
    MaintenanceWindow,
    PolicyConfig,
)
from analytics.alerts.routing import Contacts, Place
from analytics.alerts.severity import (
    DEFAULT_RULE_SEVERITY,
    Deadline,
    SeverityConfig,
    SeverityPolicy,
    WorkCalendar,
)
from analytics.findings import Change, Finding, FindingEvent

SHANGHAI = ZoneInfo("Asia/Shanghai")
MIN = 60_000
H = 60 * MIN
DAY = 24 * H


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=zone).timestamp() * 1000)


T0 = ms(2026, 6, 22, 21)  # a Monday night in Wuhan

CONTACTS = Contacts.from_mapping(
    {
        "people": {
            p: {"name": p.title(), "urls": [f"mailto://{p}@example.org"]}
            for p in ("wang", "li", "zhang", "zhao", "chen", "boss")
        },
        "crews": {
            "east": {
                "members": ["wang", "li"],
                "rota": [
                    {"days": "daily", "start": "08:00", "end": "20:00", "on_call": "li"},
                    {"days": "daily", "start": "20:00", "end": "08:00", "on_call": "wang"},
                ],
            }
        },
        "road_chiefs": {"Luoyu Road": "zhang"},
        "grid_managers": {"G1": "zhao"},
        "supervisors": {"hongshan": "chen", "*": "boss"},
    }
)


def lamp(i: int) -> str:
    return f"LMP-{i:03d}"


class Places:
    """A Locator: 600 lamps on circuit CIR-A behind GW-1, on Luoyu Road, grid G1, crew east."""

    def place(self, subject_kind: str, subject: str) -> Place:
        if subject.startswith(("LMP-", "CAB-")) or subject in ("CIR-A", "PS-1"):
            return Place("hongshan", "Luoyu Road", "G1", "east", circuit="CIR-A", gateway="GW-1")
        if subject == "GW-1":
            return Place("hongshan", "Luoyu Road", "G1", "east", gateway="GW-1")
        return Place(district="hongshan")


def finding(
    rule: str, subject: str, kind: str = "lamp", *, level: int = 0, children: Sequence[str] = ()
) -> Finding:
    return Finding(
        rule=rule,
        subject_kind=kind,
        subject=subject,
        number=0,
        district="hongshan",
        level=level,
        value=0.4,
        threshold=18.0,
        since_ms=T0,
        explanation=f"{rule} on {subject}",
        children=tuple(children),
        child_kind="lamp" if children else "",
    )


def opened(f: Finding, at: int) -> FindingEvent:
    return FindingEvent(Change.OPENED, f, at)


def cleared(f: Finding, at: int) -> FindingEvent:
    return FindingEvent(Change.CLEARED, f, at)


def policy(**config: object) -> AlertPolicy:
    return AlertPolicy(PolicyConfig(**config), SeverityPolicy(), CONTACTS, Places())  # type: ignore[arg-type]


@dataclass
class Book:
    """What the SQL store does with Changes, in memory."""

    policy: AlertPolicy
    alerts: dict[str, Alert] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    notifications: dict[str, Notification] = field(default_factory=dict)

    def apply(self, changes: Changes) -> Changes:
        self.alerts.update({a.id: a for a in changes.alerts})
        self.transitions.extend(changes.transitions)
        for n in changes.notifications:
            self.notifications.setdefault(n.id, n)
        return changes

    def live(self) -> dict[str, Alert]:
        return {a.key: a for a in self.alerts.values() if a.live}

    def resolved(self) -> dict[str, Alert]:
        return {a.key: a for a in self.alerts.values() if a.state is AlertState.RESOLVED}

    def feed(self, events: Iterable[FindingEvent], now: int) -> Changes:
        return self.apply(self.policy.on_findings(self.live(), self.resolved(), list(events), now))

    def tick(self, now: int) -> Changes:
        open_ = {a.id: a for a in self.alerts.values() if a.state is not AlertState.CLOSED}
        return self.apply(self.policy.tick(open_, now))

    def run(self, start: int, end: int, every: int = MIN) -> None:
        for now in range(start, end + 1, every):
            self.tick(now)

    def act(self, key: str, event: AlertEvent, actor: str, at: int, note: str = "") -> Changes:
        alert = next(a for a in self.alerts.values() if a.key == key and a.state is not AlertState.CLOSED)
        return self.apply(self.policy.act(alert, event, actor, at, note))

    def one(self, key: str) -> Alert:
        (alert,) = [a for a in self.alerts.values() if a.key == key]
        return alert

    def sent(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(n.id, n.recipients) for n in self.notifications.values()]

    def history(self, alert_id: str) -> list[tuple[str, str]]:
        return [(t.event, t.actor) for t in self.transitions if t.alert_id == alert_id]


# --- the whole lifecycle ---------------------------------------------------------------------------------


def test_a_lamp_failure_from_opening_to_closing() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    alert = book.one(lf.key)
    assert alert.id == f"lamp_failure:{lamp(1)}:{T0}"
    assert (alert.severity, alert.deadline_ms) == (Severity.ORDINARY, T0 + 24 * H)  # DOMAIN: ordinary 24 h
    assert (alert.road, alert.grid_cell, alert.crew, alert.family) == (
        "Luoyu Road",
        "G1",
        "east",
        "streetlight",
    )
    assert book.sent() == []  # waits for a possible circuit outage first
    book.run(T0, T0 + 5 * MIN)
    assert book.sent() == [(f"{alert.id}:opened:0", ("wang",))]  # 21:05: the night shift's on-call person
    message = book.notifications[f"{alert.id}:opened:0"]
    assert message.title == f"[ORDINARY] Lamp failure: {lamp(1)}, Luoyu Road"
    for text in ("Luoyu Road, grid G1, district hongshan", "Deadline: 2026-06-23 21:00", "lamp_failure on"):
        assert text in message.body

    book.act(lf.key, AlertEvent.ACKNOWLEDGE, "wang", T0 + 12 * MIN, "on my way")
    book.act(lf.key, AlertEvent.START, "wang", T0 + 40 * MIN)
    book.feed([cleared(lf, T0 + 55 * MIN)], T0 + 55 * MIN)  # the new driver works
    book.run(T0 + 56 * MIN, T0 + 64 * MIN)
    assert book.one(lf.key).state is AlertState.IN_PROGRESS  # clear for 9 min: not yet
    book.tick(T0 + 65 * MIN)
    alert = book.one(lf.key)
    assert (alert.state, alert.resolved_ms, alert.on_time()) == (AlertState.RESOLVED, T0 + 55 * MIN, True)
    book.tick(T0 + 55 * MIN + 24 * H)
    alert = book.one(lf.key)
    assert (alert.state, alert.closed_ms) == (AlertState.CLOSED, T0 + 55 * MIN + 24 * H)
    assert book.history(alert.id) == [
        ("create", SYSTEM),
        ("acknowledge", "wang"),
        ("start", "wang"),
        ("auto_resolve", SYSTEM),
        ("close", SYSTEM),
    ]
    assert len(book.notifications) == 1  # acknowledged in time: nobody else was bothered


def test_the_same_finding_twice_is_one_alert_and_one_notification() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    book.feed([opened(lf, T0 + MIN)], T0 + MIN)  # e.g. a restarted analytics worker raising it again
    book.run(T0, T0 + 10 * MIN)
    assert len(book.alerts) == 1
    assert len(book.notifications) == 1


def test_a_fault_back_within_the_grace_reopens_its_alert_and_after_it_opens_a_new_one() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    book.feed([cleared(lf, T0 + 30 * MIN)], T0 + 30 * MIN)
    book.run(T0, T0 + 45 * MIN)
    first = book.one(lf.key)
    assert first.state is AlertState.RESOLVED

    book.feed([opened(lf, T0 + 3 * H)], T0 + 3 * H)  # within 24 h of the resolution
    again = book.one(lf.key)
    assert (again.id, again.state, again.reopen_count, again.resolved_ms) == (
        first.id,
        AlertState.OPEN,
        1,
        None,
    )
    assert f"{first.id}:reopened:1" in book.notifications
    assert book.notifications[f"{first.id}:reopened:1"].recipients == ("wang",)

    book.feed([cleared(lf, T0 + 4 * H)], T0 + 4 * H)
    book.run(T0 + 4 * H, T0 + 4 * H + 15 * MIN)
    book.tick(T0 + 4 * H + 24 * H)  # the grace passes with the lamp lit: closed
    assert book.one(lf.key).state is AlertState.CLOSED
    book.feed([opened(lf, T0 + 3 * DAY)], T0 + 3 * DAY)
    live = book.live()[lf.key]
    assert live.id == f"{lf.key}:{T0 + 3 * DAY}"
    assert len(book.alerts) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=40))
def test_a_lamp_flickering_faster_than_the_hysteresis_keeps_one_alert(gaps: list[int]) -> None:
    """On, off, on, off every few minutes (each gap shorter than the 10 min hysteresis): one alert, one
    notification, never resolved, never reopened."""
    book = Book(policy())
    lf = finding("lamp_failure", lamp(7))
    now = T0
    for i, gap in enumerate(gaps):
        book.feed([(opened if i % 2 == 0 else cleared)(lf, now)], now)
        for minute in range(gap):
            book.tick(now + minute * MIN)
        now += gap * MIN
    alert = book.one(lf.key)
    assert alert.live
    assert alert.reopen_count == 0
    assert len(book.notifications) <= 1
    assert {n.id for n in book.notifications.values()} <= {f"{alert.id}:opened:0"}


def test_a_person_resolving_what_still_holds_is_reopened_after_the_verification_time() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    book.tick(T0 + 5 * MIN)
    book.act(lf.key, AlertEvent.RESOLVE, "li", T0 + H, "fixed")
    book.tick(T0 + H + 23 * H)
    assert book.one(lf.key).state is AlertState.RESOLVED
    book.tick(T0 + H + 24 * H)
    alert = book.one(lf.key)
    assert (alert.state, alert.reopen_count) == (AlertState.OPEN, 1)
    reopen = [t for t in book.transitions if t.event == "reopen"]
    assert reopen[0].note == "the condition still holds 24 h after it was resolved"


def test_people_cannot_auto_resolve_and_illegal_moves_are_refused() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    with pytest.raises(IllegalTransition):
        book.act(lf.key, AlertEvent.AUTO_RESOLVE, "li", T0 + MIN)
    with pytest.raises(IllegalTransition, match="is open: it cannot be close"):
        book.act(lf.key, AlertEvent.CLOSE, "li", T0 + MIN)


# --- flapping --------------------------------------------------------------------------------------------


def test_a_flapping_lamp_is_held_back_and_released_when_quiet() -> None:
    """Dark for 5 min, lit for 15 min, again and again: each cycle resolves and reopens the alert; from the
    4th reopen within 6 h it is flapping and sends nothing until its reopen rate drops."""
    book = Book(policy())
    lf = finding("lamp_failure", lamp(3))
    now = T0
    for _ in range(6):
        book.feed([opened(lf, now)], now)
        book.run(now, now + 5 * MIN)
        book.feed([cleared(lf, now + 5 * MIN)], now + 5 * MIN)
        book.run(now + 6 * MIN, now + 20 * MIN)
        now += 20 * MIN
    alert = book.one(lf.key)
    assert (alert.reopen_count, alert.flapping) == (5, True)
    reopened = sorted(n for n in book.notifications if ":reopened:" in n)
    assert reopened == [f"{alert.id}:reopened:{i}" for i in (1, 2, 3)]  # the 4th and 5th held
    assert any(t.event == "suppress" and "flapping" in t.note for t in book.transitions)

    book.feed([opened(lf, now)], now)  # stays dark now: a real failure
    assert book.one(lf.key).reopen_count == 6
    book.run(now, now + 10 * H, every=10 * MIN)
    alert = book.one(lf.key)
    assert not alert.flapping  # 6 reopens are no longer more than 3 per 6 h since it opened
    assert any(t.event == "release" and "quiet" in t.note for t in book.transitions)
    assert f"{alert.id}:reopened:6" not in book.notifications  # held back for good
    assert f"{alert.id}:escalated:1" in book.notifications  # but a real fault still reaches someone


# --- escalation ------------------------------------------------------------------------------------------


def test_nobody_acknowledging_escalates_to_the_road_chief_then_the_supervisor() -> None:
    book = Book(policy())
    outage = finding("circuit_outage", "CIR-A", "circuit", children=[lamp(i) for i in range(3)])
    book.feed([opened(outage, T0)], T0)
    alert = book.one(outage.key)
    assert alert.severity is Severity.SERIOUS
    assert book.sent() == [(f"{alert.id}:opened:0", ("wang",))]  # an incident does not wait
    book.run(T0, T0 + 2 * H - MIN)
    assert len(book.notifications) == 1
    book.run(T0 + 2 * H, T0 + 4 * H, every=5 * MIN)  # serious: 2 h to acknowledge
    assert book.sent()[1:] == [
        (f"{alert.id}:escalated:1", ("zhang", "zhao")),  # road chief and grid manager
        (f"{alert.id}:escalated:2", ("chen",)),  # the district's supervisor
    ]
    assert book.one(outage.key).escalation == 2
    assert "not acknowledged within 2 h" in book.notifications[f"{alert.id}:escalated:1"].body
    book.act(outage.key, AlertEvent.RESOLVE, "wang", T0 + 5 * H)
    assert book.notifications[f"{alert.id}:resolved:0"].recipients == ("zhang", "zhao", "chen")


def test_an_acknowledged_alert_does_not_escalate_before_its_deadline_approaches() -> None:
    book = Book(policy())
    outage = finding("circuit_outage", "CIR-A", "circuit", children=[lamp(0)])
    book.feed([opened(outage, T0)], T0)
    book.act(outage.key, AlertEvent.ACKNOWLEDGE, "wang", T0 + 20 * MIN)
    book.run(T0, T0 + 2 * DAY, every=30 * MIN)
    assert [n for n in book.notifications if ":escalated:" in n] == []


def test_the_deadline_approaching_escalates_even_an_acknowledged_alert() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    book.tick(T0 + 5 * MIN)
    book.act(lf.key, AlertEvent.ACKNOWLEDGE, "wang", T0 + 10 * MIN)
    alert = book.one(lf.key)
    book.run(T0, T0 + 19 * H, every=30 * MIN)
    assert f"{alert.id}:escalated:1" not in book.notifications
    book.tick(T0 + 19 * H + 12 * MIN)  # 80 % of 24 h
    escalated = book.notifications[f"{alert.id}:escalated:1"]
    assert escalated.recipients == ("zhang", "zhao")
    assert "deadline 2026-06-23 21:00 approaching" in escalated.body
    book.tick(T0 + 24 * H)
    assert "overdue since 2026-06-23 21:00" in book.notifications[f"{alert.id}:escalated:2"].body


def test_a_crew_without_contacts_sends_the_first_notification_one_level_up() -> None:
    book = Book(policy())
    bin_full = finding("bin_full", "BIN-9", "bin")  # Places: no road, grid or crew: the city supervisor
    book.feed([opened(bin_full, T0)], T0)
    book.run(T0, T0 + 5 * MIN)
    alert = book.one(bin_full.key)
    assert book.sent() == [(f"{alert.id}:opened:2", ("chen",))]
    assert alert.escalation == 2


# --- incidents -------------------------------------------------------------------------------------------


def test_a_500_lamp_circuit_outage_is_one_notification() -> None:
    """200 lamps fail a minute before the circuit outage is recognised (in an earlier batch), 100 in the
    same batch just before it, 200 after it: the crew gets one message, about the circuit."""
    book = Book(policy())
    lamps = [lamp(i) for i in range(500)]
    failures = [finding("lamp_failure", i) for i in lamps]
    book.feed([opened(f, T0) for f in failures[:200]], T0)
    book.tick(T0)
    outage = finding("circuit_outage", "CIR-A", "circuit", children=lamps)
    at = T0 + MIN
    book.feed([*(opened(f, at) for f in failures[200:300]), opened(outage, at)], at)
    book.feed([opened(f, at + MIN) for f in failures[300:]], at + MIN)
    book.run(T0, T0 + H, every=MIN)
    incident = book.one(outage.key)
    assert book.sent() == [(f"{incident.id}:opened:0", ("wang",))]
    assert "Includes: 500 items" in book.notifications[f"{incident.id}:opened:0"].body
    children = [a for a in book.alerts.values() if a.rule == "lamp_failure"]
    assert len(children) == 500
    assert {a.parent for a in children} == {incident.id}
    assert sum(t.event == "suppress" for t in book.transitions) == 500


def test_children_resolve_with_their_incident_and_one_still_dark_becomes_its_own_alert() -> None:
    book = Book(policy())
    lamps = [lamp(i) for i in range(5)]
    failures = {i: finding("lamp_failure", i) for i in lamps}
    outage = finding("circuit_outage", "CIR-A", "circuit", children=lamps)
    book.feed([*(opened(f, T0) for f in failures.values()), opened(outage, T0)], T0)
    # the engine suppresses the lamp findings under the outage: they clear, the lamps are still dark
    book.feed([cleared(f, T0 + MIN) for f in failures.values()], T0 + MIN)
    book.run(T0, T0 + H, every=5 * MIN)
    assert all(book.one(f.key).live for f in failures.values())  # not auto-resolved under the incident
    restored = T0 + 2 * H
    book.feed([cleared(outage, restored), opened(failures[lamp(4)], restored + MIN)], restored + MIN)
    book.run(restored, restored + 30 * MIN)
    incident = book.one(outage.key)
    assert (incident.state, incident.resolved_ms) == (AlertState.RESOLVED, restored)
    for i in lamps[:4]:
        alert = book.one(failures[i].key)
        assert (alert.state, alert.resolved_ms) == (AlertState.RESOLVED, restored)
    dark = book.one(failures[lamp(4)].key)
    assert (dark.live, dark.parent) == (True, "")
    assert [n for n in book.notifications if n.startswith("lamp_failure")] == [f"{dark.id}:opened:0"]


def test_a_dead_gateway_carries_its_devices_offline_alerts_but_not_other_faults() -> None:
    book = Book(policy())
    offline = finding("offline_lamp", lamp(1))
    day_burning = finding("day_burning", lamp(2))
    book.feed([opened(offline, T0), opened(day_burning, T0)], T0)
    book.feed([opened(finding("gateway_offline", "GW-1", "gateway"), T0 + MIN)], T0 + MIN)
    gateway = book.one("gateway_offline:GW-1")
    assert book.one(offline.key).parent == gateway.id
    assert book.one(day_burning.key).parent == ""


def test_an_incident_rule_can_be_configured_per_city() -> None:
    incidents = {"station_power_loss": Incident(scopes=frozenset({"subject"}))}
    book = Book(policy(incidents=incidents))
    book.feed([opened(finding("station_power_loss", "PS-1", "pump_station"), T0)], T0)
    book.feed([opened(finding("pump_bearing_temp", "PS-1", "pump_station"), T0 + MIN)], T0 + MIN)
    book.feed([opened(finding("circuit_outage", "CIR-A", "circuit", children=[lamp(1)]), T0 + MIN)], T0 + MIN)
    assert book.one("pump_bearing_temp:PS-1").parent.startswith("station_power_loss:PS-1:")
    with pytest.raises(AlertConfigError, match="scopes"):
        Incident(scopes=frozenset({"neighbours"}))


# --- planned works ---------------------------------------------------------------------------------------


def test_planned_works_record_the_alert_but_hold_its_notifications_for_good() -> None:
    works = MaintenanceWindow(
        scope_kind="road", scope_id="Luoyu Road", start_ms=T0 - H, end_ms=T0 + 3 * H, reason="cable relaying"
    )
    book = Book(policy(maintenance=(works,)))
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    alert = book.one(lf.key)
    assert alert.maintenance == "planned works: cable relaying until 2026-06-23 00:00"
    assert alert.explanation.endswith("(planned works: cable relaying until 2026-06-23 00:00)")
    create = next(t for t in book.transitions if t.event == "create")
    assert "notifications held" in create.note
    book.run(T0, T0 + 3 * H, every=5 * MIN)
    assert book.notifications == {}
    book.run(T0 + 3 * H, T0 + 3 * H + 7 * H + 55 * MIN, every=5 * MIN)
    alert = book.one(lf.key)
    assert (alert.maintenance, alert.explanation) == ("", f"lamp_failure on {lamp(1)}")
    assert book.notifications == {}  # the held "opened" is never sent later
    book.tick(T0 + 3 * H + 8 * H)  # the acknowledgement clock started when the works ended
    assert list(book.notifications) == [f"{alert.id}:escalated:1"]


def test_a_window_elsewhere_or_outside_its_time_holds_nothing() -> None:
    elsewhere = MaintenanceWindow(
        scope_kind="road", scope_id="Bayi Road", start_ms=T0, end_ms=T0 + H, reason="x"
    )
    later = MaintenanceWindow(
        scope_kind="circuit", scope_id="CIR-A", start_ms=T0 + H, end_ms=T0 + 2 * H, reason="y"
    )
    book = Book(policy(maintenance=(elsewhere, later)))
    book.feed([opened(finding("leakage", "CAB-A", "cabinet"), T0)], T0)
    assert len(book.notifications) == 1  # an emergency: at once
    with pytest.raises(AlertConfigError, match="ends at or before it starts"):
        MaintenanceWindow(scope_kind="road", scope_id="x", start_ms=5, end_ms=5, reason="z")
    with pytest.raises(AlertConfigError, match="scope kind"):
        MaintenanceWindow(scope_kind="planet", scope_id="x", start_ms=5, end_ms=6, reason="z")


# --- severity --------------------------------------------------------------------------------------------


def test_an_emergency_notifies_at_once_with_its_one_hour_deadline() -> None:
    book = Book(policy())
    book.feed([opened(finding("leakage", "CAB-A", "cabinet"), T0)], T0)
    alert = book.one("leakage:CAB-A")
    assert (alert.severity, alert.deadline_ms) == (Severity.EMERGENCY, T0 + H)
    (message,) = book.notifications.values()
    assert message.title.startswith("[EMERGENCY] Leakage")
    assert "Deadline: 2026-06-22 22:00 (1 h)" in message.body
    book.run(T0, T0 + 15 * MIN)  # 15 min without an answer
    assert f"{alert.id}:escalated:1" in book.notifications


def test_a_bridge_reaching_a_higher_level_raises_the_severity_and_shortens_the_deadline() -> None:
    book = Book(policy())
    yellow = finding("bridge_tilt", "BR-1", "bridge_node", level=3)
    book.feed([opened(yellow, T0)], T0)
    book.run(T0, T0 + 5 * MIN)
    alert = book.one(yellow.key)
    assert alert.severity is Severity.ORDINARY
    red = replace(yellow, level=1)
    book.feed([FindingEvent(Change.LEVEL, red, T0 + H)], T0 + H)
    alert = book.one(yellow.key)
    assert (alert.severity, alert.deadline_ms) == (Severity.EMERGENCY, T0 + 2 * H)
    assert f"{alert.id}:severity:emergency" in book.notifications
    book.feed([FindingEvent(Change.LEVEL, replace(yellow, level=2), T0 + 2 * H)], T0 + 2 * H)
    assert book.one(yellow.key).severity is Severity.EMERGENCY  # a level going down changes nothing


def test_every_rule_in_the_catalogue_has_a_documented_severity() -> None:
    from analytics.alerts.policy import default_catalogue

    assert set(default_catalogue()) == set(DEFAULT_RULE_SEVERITY)
    sev = SeverityPolicy()
    assert sev.severity("leakage") is Severity.EMERGENCY
    assert {sev.severity(r) for r in DEFAULT_RULE_SEVERITY if r.startswith("flood_")} == {Severity.EMERGENCY}
    assert [sev.severity("bridge_strain", lv) for lv in (1, 2, 3)] == [
        Severity.EMERGENCY,
        Severity.SERIOUS,
        Severity.ORDINARY,
    ]
    assert sev.severity("no_such_rule") is Severity.ORDINARY


# --- working-day deadlines -------------------------------------------------------------------------------

# 2025 in China: National Day and Mid-Autumn Oct 1-8 off, Sunday Sep 28 and Saturday Oct 11 worked.
CHINA_2025 = WorkCalendar(
    holidays=frozenset(dt.date(2025, 10, d) for d in (1, 2, 3, 6, 7, 8)),
    makeup_days=frozenset({dt.date(2025, 9, 28), dt.date(2025, 10, 11)}),
)


def serious_due(opened_at: int, calendar: WorkCalendar = CHINA_2025) -> int:
    return SeverityPolicy(SeverityConfig(), calendar).deadline_ms(opened_at, Severity.SERIOUS)


@pytest.mark.parametrize(
    ("opened_at", "due"),
    [
        (ms(2025, 9, 17, 10), ms(2025, 9, 22, 10)),  # Wednesday: Thursday, Friday, (weekend) Monday
        (ms(2025, 9, 19, 16, 30), ms(2025, 9, 24, 16, 30)),  # Friday: Mon, Tue, Wed
        (ms(2025, 9, 20, 9), ms(2025, 9, 24, 9)),  # Saturday: the same Wednesday
        (ms(2025, 9, 26, 10), ms(2025, 9, 30, 10)),  # Friday: make-up Sunday 28th, Mon 29th, Tue 30th
        (ms(2025, 9, 30, 10), ms(2025, 10, 11, 10)),  # the holiday: Thu 9th, Fri 10th, make-up Sat 11th
        (ms(2025, 10, 3, 23, 59), ms(2025, 10, 11, 23, 59)),  # opened during the holiday
    ],
)
def test_three_working_days_skip_weekends_and_holidays_and_count_make_up_days(
    opened_at: int, due: int
) -> None:
    assert serious_due(opened_at) == due


def test_working_days_keep_the_local_clock_time_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    calendar = WorkCalendar(timezone="Europe/Berlin")
    opened_at = ms(2026, 3, 27, 10, zone=berlin)  # Friday, CET; summer time starts Sunday the 29th
    assert serious_due(opened_at, calendar) == ms(2026, 4, 1, 10, zone=berlin)  # Wednesday 10:00 CEST
    assert serious_due(opened_at, calendar) - opened_at == 5 * DAY - H  # one hour less than 5 days
    every_day = WorkCalendar(timezone="Europe/Berlin", working_weekdays=frozenset(range(7)))
    gap = SeverityPolicy(
        SeverityConfig(deadlines={**_deadlines(), Severity.SERIOUS: Deadline(working_days=1)}), every_day
    )
    due = gap.deadline_ms(ms(2026, 3, 28, 2, 30, zone=berlin), Severity.SERIOUS)
    assert every_day.local(due).strftime("%d %H:%M %Z") == "29 03:30 CEST"  # 02:30 does not exist that day


def test_hours_deadlines_are_elapsed_time_and_configurable() -> None:
    config = SeverityConfig.from_mapping(
        {
            "rules": {"bin_full": "serious"},
            "deadlines": {"ordinary": {"minutes": 720}, "serious": {"working_days": 2}},
        }
    )
    sev = SeverityPolicy(config, CHINA_2025)
    saturday = ms(2025, 9, 20, 9)
    assert sev.deadline_ms(saturday, Severity.ORDINARY) == saturday + 12 * H  # weekends do not stop the clock
    assert sev.deadline_ms(saturday, Severity.SERIOUS) == ms(2025, 9, 23, 9)
    assert sev.severity("bin_full") is Severity.SERIOUS
    assert sev.severity("leakage") is Severity.EMERGENCY  # the defaults stay under a city's overrides


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Deadline(minutes=60, working_days=1), "exactly one"),
        (Deadline, "exactly one"),
        (
            lambda: SeverityConfig(deadlines={Severity.ORDINARY: Deadline(minutes=1)}),
            "no deadline for emergency",
        ),
        (lambda: SeverityConfig.from_mapping({"rules": {"leakage": "urgent"}}), "urgent"),
        (lambda: SeverityConfig.from_mapping({"colour": "red"}), "unknown keys"),
        (lambda: WorkCalendar(timezone="Mars/Olympus"), "not an IANA time zone"),
        (lambda: WorkCalendar(working_weekdays=frozenset()), "needs working days"),
        (
            lambda: WorkCalendar(
                holidays=frozenset({dt.date(2025, 1, 1)}), makeup_days=frozenset({dt.date(2025, 1, 1)})
            ),
            "both a holiday and a make-up",
        ),
        (lambda: WorkCalendar.from_mapping({"holidays": ["2025-13-01"]}), "not a date"),
        (lambda: WorkCalendar.from_mapping({"working_days": "mon-frei"}), "days are mon..sun"),
        (lambda: PolicyConfig(auto_resolve_after_ms=0), "auto_resolve_after_ms"),
        (lambda: PolicyConfig(ack_timeout_ms={Severity.EMERGENCY: MIN}), "no value for serious"),
        (lambda: PolicyConfig(deadline_escalation=(0.9, 0.5)), "deadline_escalation"),
    ],
)
def test_inconsistent_settings_are_refused_with_a_reason(build: Callable[[], object], message: str) -> None:
    with pytest.raises(AlertConfigError, match=message):
        build()


def _deadlines() -> dict[Severity, Deadline]:
    return dict(SeverityConfig().deadlines)


def test_the_calendar_reads_its_settings_file_form() -> None:
    calendar = WorkCalendar.from_mapping(
        {"timezone": "Asia/Shanghai", "holidays": ["2025-10-01"], "makeup_days": ["2025-10-11"]}
    )
    assert calendar.is_working_day(dt.date(2025, 10, 11))
    assert not calendar.is_working_day(dt.date(2025, 10, 1))
    assert calendar.is_working_day(dt.date(2025, 10, 9))


# --- determinism -----------------------------------------------------------------------------------------


def _day_of_faults(book: Book) -> list[Changes]:
    out = []
    lamps = [lamp(i) for i in range(20)]
    out.append(book.feed([opened(finding("lamp_failure", i), T0) for i in lamps[:10]], T0))
    out.append(
        book.feed([opened(finding("circuit_outage", "CIR-A", "circuit", children=lamps), T0 + MIN)], T0 + MIN)
    )
    out.append(book.feed([opened(finding("leakage", "CAB-A", "cabinet"), T0 + 2 * MIN)], T0 + 2 * MIN))
    for now in range(T0, T0 + 6 * H, 10 * MIN):
        out.append(book.tick(now))
    return out


def test_the_same_inputs_give_the_same_changes_and_ids() -> None:
    first, second = _day_of_faults(Book(policy())), _day_of_faults(Book(policy()))
    assert first == second
    ids = [n.id for c in first for n in c.notifications]
    assert len(ids) == len(set(ids)) > 3


def test_a_restart_re_running_the_last_tick_sends_nothing_twice() -> None:
    book = Book(policy())
    _day_of_faults(book)
    before = dict(book.notifications)
    snapshot = {a.id: a for a in book.alerts.values()}
    last = T0 + 6 * H - 10 * MIN
    # the service crashed after computing, before storing: the next start sees the old alerts again
    again = policy().tick({i: a for i, a in snapshot.items() if a.state is not AlertState.CLOSED}, last)
    assert {n.id for n in again.notifications} <= set(before)


def test_changes_merge_keeps_the_latest_alert_version() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    a = book.feed([opened(lf, T0)], T0)
    b = book.feed([cleared(lf, T0 + MIN)], T0 + MIN)
    merged = a.merge(b)
    assert len(merged.alerts) == 1
    assert merged.alerts[0].condition_clear_ms == T0 + MIN
    assert merged.transitions == a.transitions + b.transitions
    assert not Changes()
    assert merged.alerts[0].escalation == NOT_NOTIFIED


def test_a_person_can_reopen_a_resolved_alert_and_the_crew_hears_of_it() -> None:
    book = Book(policy())
    lf = finding("lamp_failure", lamp(1))
    book.feed([opened(lf, T0)], T0)
    book.feed([cleared(lf, T0 + 20 * MIN)], T0 + 20 * MIN)
    book.run(T0, T0 + 30 * MIN)
    book.act(lf.key, AlertEvent.REOPEN, "chen", T0 + 2 * H, "still dark at the night inspection")
    alert = book.one(lf.key)
    assert (alert.state, alert.reopen_count) == (AlertState.OPEN, 1)
    assert book.history(alert.id)[-1] == ("reopen", "chen")
    reopened = book.notifications[f"{alert.id}:reopened:1"]
    assert "still dark at the night inspection" in reopened.body
