"""A week of alerts for the API benchmark, lived through the real alert service (``bench/api.py``).

Findings open on random lamps, cabinets and circuits through the week (``AlertService.on_events``, the
analytics worker's path: severity, deadline, crew and incidents come from the policy and the topology);
crews acknowledge, start and resolve about a third of them (``AlertService.act``, the API's and the
command line's path), the control room closes some of those; the other findings clear by themselves
and the service's hourly ``tick`` auto-resolves and later auto-closes them, escalating what nobody
acknowledged. A few faults never clear. What is left at the end is what a control room sees on a
Monday morning: thousands of closed and resolved alerts, a few hundred live ones across the crews.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Final

import numpy as np

from analytics.alerts import IllegalTransition
from analytics.alerts.model import AlertEvent, AlertState
from analytics.alerts.policy import AlertPolicy, PolicyConfig
from analytics.alerts.routing import Contacts, TopologyLocator
from analytics.alerts.service import AlertService
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from analytics.alerts.store import AlertStore
from analytics.findings import Change, Finding, FindingEvent
from analytics.topology import CIRCUIT, Topology
from devices.kinds import DeviceKind

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
# rule, subject kind, share of the findings (lamps dominate, as in a lighting city)
RULES: Final = (
    ("lamp_failure", DeviceKind.LAMP.value, 0.40),
    ("offline_lamp", DeviceKind.LAMP.value, 0.25),
    ("day_burning", DeviceKind.LAMP.value, 0.08),
    ("over_voltage", DeviceKind.LAMP.value, 0.05),
    ("cabinet_door", DeviceKind.CABINET.value, 0.08),
    ("offline_cabinet", DeviceKind.CABINET.value, 0.07),
    ("leakage", DeviceKind.CABINET.value, 0.03),
    ("circuit_outage", CIRCUIT, 0.04),
)
PERSON_SHARE: Final = 0.30  # handled by a crew (acknowledge, start, resolve)
STUCK_SHARE: Final = 0.02  # never clear within the week


def contacts_for(crews: tuple[str, ...]) -> Contacts:
    """An on-call person per crew and a supervisor (nothing is sent: the API's service has no sender)."""
    people = {f"{c}-on-call": {"name": f"{c} on call", "urls": [f"json://localhost/{c}"]} for c in crews}
    people["supervisor"] = {"name": "Supervisor", "urls": ["json://localhost/supervisor"]}
    crew_table = {c: {"members": [f"{c}-on-call"], "on_call": f"{c}-on-call"} for c in crews}
    return Contacts.from_mapping({"people": people, "crews": crew_table, "supervisors": {"*": "supervisor"}})


@dataclass(frozen=True, slots=True)
class _Plan:
    """One finding's life: when it opens, clears (None: not within the week) and what people do."""

    finding: Finding
    opened_ms: int
    clear_ms: int | None
    acts: tuple[tuple[int, AlertEvent, str], ...]  # (at, event, note)

    @property
    def alert_id(self) -> str:
        return f"{self.finding.key}:{self.opened_ms}"


def _subjects(topology: Topology, kind: str, n: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """``n`` distinct subjects of a kind (one live alert per key: distinct subjects never merge)."""
    if kind == CIRCUIT:
        size = len(topology.circuits)
        numbers = rng.choice(size, min(n, size), replace=False)
        return [(topology.circuits[i], int(i)) for i in numbers]
    table = topology.table(DeviceKind(kind))
    numbers = rng.choice(len(table), min(n, len(table)), replace=False)
    return list(zip(table.id_text(numbers), (int(i) for i in numbers), strict=True))


def _plans(topology: Topology, count: int, start_ms: int, end_ms: int, seed: int) -> list[_Plan]:
    rng = np.random.default_rng(seed)
    lamps = topology.table(DeviceKind.LAMP)
    plans = []
    for rule, kind, share in RULES:
        for subject, number in _subjects(topology, kind, round(count * share), rng):
            children: tuple[str, ...] = ()
            if kind == CIRCUIT:  # an outage names the circuit's lamps, as the circuit rule does
                children = tuple(lamps.id_text(np.flatnonzero(lamps.circuit == number)))
            opened = int(rng.integers(start_ms, end_ms - 5 * MINUTE_MS))
            finding = Finding(
                rule=rule,
                subject_kind=kind,
                subject=subject,
                number=number,
                district="",
                level=0,
                value=3.0,
                threshold=40.0,
                since_ms=opened,
                explanation=f"{rule} on {subject} (benchmark)",
                children=children,
                child_kind=DeviceKind.LAMP.value if children else "",
            )
            fate = rng.random()
            acts: list[tuple[int, AlertEvent, str]] = []
            if fate < PERSON_SHARE:
                ack = opened + int(rng.uniform(5, 90) * MINUTE_MS)
                begin = ack + int(rng.uniform(10, 180) * MINUTE_MS)
                done = begin + int(rng.exponential(6 * 60) * MINUTE_MS)
                acts = [
                    (ack, AlertEvent.ACKNOWLEDGE, "on my way"),
                    (begin, AlertEvent.START, ""),
                    (done, AlertEvent.RESOLVE, "replaced the driver"),
                ]
                if rng.random() < 0.5:
                    acts.append((done + int(rng.uniform(1, 12) * HOUR_MS), AlertEvent.CLOSE, ""))
                clear: int | None = done  # the fix clears the condition
            elif fate < PERSON_SHARE + STUCK_SHARE:
                clear = None
            else:
                clear = opened + int(min(rng.exponential(6 * HOUR_MS), 72 * HOUR_MS)) + 5 * MINUTE_MS
            plans.append(_Plan(finding, opened, clear, tuple(acts)))
    return plans


@dataclass(frozen=True, slots=True)
class AlertWeek:
    alerts: int
    by_state: dict[str, int]
    live_by_crew: dict[str, int]
    acts: int
    refused: int  # acts the lifecycle refused (the alert had moved on): counted, not an error
    seconds: float


def live_week(
    store_url: str,
    topology: Topology,
    crews: tuple[str, ...],
    count: int,
    end_ms: int,
    *,
    days: float,
    seed: int,
) -> AlertWeek:
    """``count`` findings' alerts over ``days`` up to ``end_ms`` in the store at ``store_url``."""
    started = time.perf_counter()
    start_ms = end_ms - round(days * 24 * HOUR_MS)
    plans = _plans(topology, count, start_ms, end_ms, seed)
    policy = AlertPolicy(
        PolicyConfig(),
        SeverityPolicy(SeverityConfig(), WorkCalendar()),
        contacts_for(crews),
        TopologyLocator(topology),
    )
    store = AlertStore(store_url)
    service = AlertService(policy, store, None, None, "all", wall_ms=lambda: end_ms)
    acts = refused = 0
    try:
        step_start = start_ms
        while step_start < end_ms:
            step_end = min(step_start + HOUR_MS, end_ms)

            def due(at: int | None, lo: int = step_start, hi: int = step_end) -> bool:
                return at is not None and lo <= at < hi

            opened = sorted((p for p in plans if due(p.opened_ms)), key=lambda p: p.opened_ms)
            service.on_events([FindingEvent(Change.OPENED, p.finding, p.opened_ms) for p in opened], step_end)
            moves = sorted(
                ((at, p, event, note) for p in plans for at, event, note in p.acts if due(at)),
                key=lambda move: move[0],
            )
            for at, plan, event, note in moves:
                actor = (
                    f"{policy.locator.place(plan.finding.subject_kind, plan.finding.subject).crew}-on-call"
                )
                if event is AlertEvent.CLOSE:
                    actor = "control-room"
                try:
                    service.act(plan.alert_id, event.value, actor, at, note)
                    acts += 1
                except IllegalTransition:
                    refused += 1
            cleared = sorted((p for p in plans if due(p.clear_ms)), key=lambda p: p.clear_ms or 0)
            service.on_events(
                [FindingEvent(Change.CLEARED, p.finding, p.clear_ms or 0) for p in cleared], step_end
            )
            service.tick(step_end)
            step_start = step_end
        everything = store.list(limit=10 * count + 1000)
    finally:
        service.close()
    by_state = Counter(a.state.value for a in everything)
    live = Counter(a.crew or "(none)" for a in everything if a.live)
    return AlertWeek(
        alerts=len(everything),
        by_state={s.value: by_state.get(s.value, 0) for s in AlertState},
        live_by_crew=dict(live.most_common()),
        acts=acts,
        refused=refused,
        seconds=time.perf_counter() - started,
    )
