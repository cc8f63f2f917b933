"""The alert lifecycle table: every move the table allows and nothing else, with who, when and why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.alerts import IllegalTransition
from analytics.alerts.lifecycle import TRANSITIONS, can, step
from analytics.alerts.lifecycle_doc import lifecycle_tables
from analytics.alerts.model import SYSTEM, Alert, AlertEvent, AlertState, Severity

S, E = AlertState, AlertEvent
MIN = 60_000


def alert(state: AlertState = S.OPEN) -> Alert:
    return Alert(
        id="lamp_failure:LMP-001:1000",
        key="lamp_failure:LMP-001",
        rule="lamp_failure",
        family="streetlight",
        subject_kind="lamp",
        subject="LMP-001",
        district="hongshan",
        road="Luoyu Road",
        grid_cell="G1",
        crew="east",
        severity=Severity.ORDINARY,
        state=state,
        opened_ms=1000,
        deadline_ms=1000 + 24 * 60 * MIN,
        explanation="dark while switched on",
    )


def test_the_happy_path_sets_every_timestamp_and_records_who_and_why() -> None:
    a = alert()
    a, t1 = step(a, E.ACKNOWLEDGE, "wang", 2 * MIN, "on my way")
    a, t2 = step(a, E.START, "wang", 30 * MIN)
    a, t3 = step(a, E.RESOLVE, "wang", 50 * MIN, "replaced the driver")
    a, t4 = step(a, E.CLOSE, "chen", 90 * MIN, "checked at night")
    assert a.state is S.CLOSED
    assert (a.acknowledged_ms, a.resolved_ms, a.closed_ms) == (2 * MIN, 50 * MIN, 90 * MIN)
    assert [(t.from_state, t.to_state, t.event, t.actor) for t in (t1, t2, t3, t4)] == [
        (S.OPEN, S.ACKNOWLEDGED, "acknowledge", "wang"),
        (S.ACKNOWLEDGED, S.IN_PROGRESS, "start", "wang"),
        (S.IN_PROGRESS, S.RESOLVED, "resolve", "wang"),
        (S.RESOLVED, S.CLOSED, "close", "chen"),
    ]
    assert (t1.note, t3.note, t4.at_ms) == ("on my way", "replaced the driver", 90 * MIN)
    assert a.on_time() is True


def test_starting_work_without_acknowledging_counts_as_acknowledged() -> None:
    a, _ = step(alert(), E.START, "li", 5 * MIN)
    assert (a.state, a.acknowledged_ms) == (S.IN_PROGRESS, 5 * MIN)


def test_a_reopen_clears_the_resolution_and_counts() -> None:
    a, _ = step(alert(), E.ACKNOWLEDGE, "wang", 2 * MIN)
    a, _ = step(replace(a, condition_clear_ms=9 * MIN), E.AUTO_RESOLVE, SYSTEM, 20 * MIN)
    a, t = step(a, E.REOPEN, SYSTEM, 25 * MIN, "back")
    assert (a.state, a.resolved_ms, a.condition_clear_ms, a.reopen_count) == (S.OPEN, None, None, 1)
    assert a.acknowledged_ms == 2 * MIN  # the first acknowledgement stays on record
    assert (t.from_state, t.to_state, t.event) == (S.RESOLVED, S.OPEN, "reopen")
    assert a.on_time() is None


@pytest.mark.parametrize(
    ("state", "event"),
    [(S.OPEN, E.CLOSE), (S.OPEN, E.REOPEN), (S.IN_PROGRESS, E.ACKNOWLEDGE), (S.RESOLVED, E.RESOLVE)]
    + [(S.CLOSED, e) for e in AlertEvent],
)
def test_a_move_the_table_lacks_is_refused_with_the_alert_and_state(
    state: AlertState, event: AlertEvent
) -> None:
    with pytest.raises(IllegalTransition, match=f"alert lamp_failure:LMP-001:1000 is {state.value}"):
        step(alert(state), event, "wang", 5 * MIN)


def test_only_closed_is_final_and_every_state_is_reachable_from_open() -> None:
    seen, frontier = {S.OPEN}, [S.OPEN]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()].values():
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(AlertState)
    assert [s for s in AlertState if not TRANSITIONS[s]] == [S.CLOSED]


@given(st.lists(st.sampled_from(list(AlertEvent)), max_size=30))
def test_any_event_sequence_moves_by_the_table_or_is_refused(events: list[AlertEvent]) -> None:
    a, now = alert(), 1000
    for event in events:
        now += MIN
        if not can(a, event):
            with pytest.raises(IllegalTransition):
                step(a, event, "x", now)
            continue
        before = a
        a, t = step(a, event, "x", now)
        assert a.state is TRANSITIONS[before.state][event] is t.to_state
        assert (a.resolved_ms is not None) == (a.state in (S.RESOLVED, S.CLOSED))
        assert (a.closed_ms is not None) == (a.state is S.CLOSED)
        if a.state in (S.ACKNOWLEDGED, S.IN_PROGRESS):
            assert a.acknowledged_ms is not None
        assert a.reopen_count == before.reopen_count + (event is E.REOPEN)


def test_the_docs_show_the_current_table() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "alerts.md").read_text(encoding="utf-8")
    assert lifecycle_tables() in doc, (
        "docs/alerts.md is stale: paste `python -m analytics.alerts.lifecycle_doc`"
    )
