"""`citywatch alerts`: a crew member lists their faults, acknowledges, starts and resolves one from the
command line; a move the lifecycle does not allow is refused with the reason and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from analytics.alerts.model import SYSTEM, AlertState, Severity, Transition
from analytics.alerts.policy import Changes
from analytics.alerts.store import AlertStore
from citywatch.cli import app
from tests.test_alert_store import HOUR, alert, created, opening

CREW = "jiangan-lighting-2"


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    monkeypatch.setenv("CITYWATCH_ALERTS_DB_URL", url)
    monkeypatch.setenv("COLUMNS", "250")  # rich: wide enough that table cells are not wrapped
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[AlertStore]:
    with AlertStore(db_url) as opened:
        yield opened


def citywatch(*args: str) -> Result:
    return CliRunner().invoke(app, ["alerts", *args])


def test_a_crew_member_acknowledges_starts_and_resolves_a_fault(store: AlertStore) -> None:
    now = time.time_ns() // 1_000_000
    fault = alert(opened_ms=now - HOUR)
    store.apply(opening(fault))

    listed = citywatch("list", "--crew", CREW)
    assert listed.exit_code == 0, listed.output
    assert fault.id in listed.output and "open" in listed.output

    for args in (
        ["ack", fault.id, "--who", "李四", "--note", "on my way"],
        ["start", fault.id, "--who", "李四"],
        ["resolve", fault.id, "--who", "李四", "--note", "replaced the lamp driver"],
    ):
        moved = citywatch(*args)
        assert moved.exit_code == 0, moved.output
    after = time.time_ns() // 1_000_000

    done = store.get(fault.id)
    assert done.state is AlertState.RESOLVED
    assert done.acknowledged_ms is not None and now <= done.acknowledged_ms <= after
    assert done.resolved_ms is not None and done.acknowledged_ms <= done.resolved_ms <= after
    assert done.on_time()
    assert [(t.event, t.actor, t.note) for t in store.history(fault.id)] == [
        ("create", SYSTEM, ""),
        ("acknowledge", "李四", "on my way"),
        ("start", "李四", ""),
        ("resolve", "李四", "replaced the lamp driver"),
    ]

    shown = citywatch("show", fault.id)
    assert shown.exit_code == 0, shown.output
    assert "in_progress → resolved" in shown.output and "replaced the lamp driver" in shown.output

    live = citywatch("list")
    assert fault.id not in live.output  # resolved: off the crew's list
    assert fault.id in citywatch("list", "--all").output


def test_a_move_the_lifecycle_does_not_allow_is_refused_with_the_reason(store: AlertStore) -> None:
    fault = alert()
    store.apply(opening(fault))

    refused = citywatch("close", fault.id, "--who", "李四")

    assert refused.exit_code == 2
    assert "is open: it cannot be close" in refused.stderr
    assert "from open you can: ack, start, resolve" in refused.stderr
    assert store.get(fault.id) == fault
    assert store.history(fault.id) == [created(fault)]


def test_a_closed_alert_takes_no_more_actions(store: AlertStore) -> None:
    closed = alert(
        state=AlertState.CLOSED, resolved_ms=alert().opened_ms + HOUR, closed_ms=alert().opened_ms + 2 * HOUR
    )
    store.apply(Changes(alerts=(closed,)))
    refused = citywatch("ack", closed.id, "--who", "李四")
    assert refused.exit_code == 2
    assert "a closed alert takes no more actions" in refused.stderr
    assert store.get(closed.id) == closed


def test_an_unknown_alert_is_named(store: AlertStore) -> None:
    for args in (["show", "lamp_failure:LMP-404:1"], ["ack", "lamp_failure:LMP-404:1", "--who", "李四"]):
        result = citywatch(*args)
        assert result.exit_code == 2
        assert "no alert lamp_failure:LMP-404:1" in result.stderr


def test_resolving_needs_a_person_and_a_note(store: AlertStore) -> None:
    fault = alert()
    store.apply(opening(fault))
    assert citywatch("resolve", fault.id, "--who", "李四").exit_code == 2  # no --note
    blank = citywatch("resolve", fault.id, "--who", "李四", "--note", "  ")
    assert blank.exit_code == 2 and "say what was done" in blank.stderr
    nobody = citywatch("ack", fault.id, "--who", " ")
    assert nobody.exit_code == 2 and "say who acts" in nobody.stderr
    assert store.get(fault.id) == fault


def test_the_list_filters_by_state_severity_road_and_overdue(store: AlertStore) -> None:
    now = time.time_ns() // 1_000_000
    late = alert("LMP-1", opened_ms=now - 30 * HOUR)  # ordinary: due 24 h after opening
    fresh = alert("LMP-2", opened_ms=now - HOUR, road="中山大道")
    leak = alert(
        "CAB-9",
        rule="leakage",
        opened_ms=now - 10 * 60_000,
        severity=Severity.EMERGENCY,
        deadline_ms=now + 50 * 60_000,
        state=AlertState.ACKNOWLEDGED,
        acknowledged_ms=now - 5 * 60_000,
    )
    store.apply(Changes(alerts=(late, fresh, leak), transitions=tuple(created(a) for a in (late, fresh))))

    def ids(*args: str) -> set[str]:
        result = citywatch("list", *args)
        assert result.exit_code == 0, result.output
        return {a.id for a in (late, fresh, leak) if a.id in result.output}

    assert ids() == {late.id, fresh.id, leak.id}
    assert ids("--overdue") == {late.id}
    assert "overdue" in citywatch("list", "--overdue").output
    assert ids("--state", "acknowledged") == {leak.id}
    assert ids("--severity", "emergency") == {leak.id}
    assert ids("--road", "中山大道") == {fresh.id}
    assert citywatch("list", "--state", "lost").exit_code == 2


def test_the_default_store_is_a_file_in_the_var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYWATCH_ALERTS_DB_URL", raising=False)
    monkeypatch.setenv("CITYWATCH_VAR_DIR", str(tmp_path / "var"))
    result = citywatch("list")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "alerts.db").is_file()


def test_an_action_on_an_alert_changed_meanwhile_is_decided_on_the_new_version(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = alert()
    store.apply(opening(fault))
    escalated = replace(fault, escalation=1)
    escalation = Transition(
        fault.id, AlertState.OPEN, AlertState.OPEN, "escalate", SYSTEM, fault.opened_ms + 1
    )
    real_get = AlertStore.get
    reads = 0

    def get_then_the_service_escalates(self: AlertStore, alert_id: str) -> object:
        nonlocal reads
        read = real_get(self, alert_id)
        reads += 1
        if reads == 1:  # between the crew's read and write, the service escalates the alert
            self.apply(Changes((escalated,), (escalation,)))
        return read

    monkeypatch.setattr(AlertStore, "get", get_then_the_service_escalates)
    result = citywatch("ack", fault.id, "--who", "李四")
    monkeypatch.undo()

    assert result.exit_code == 0, result.output
    assert reads == 2
    acknowledged = store.get(fault.id)
    assert (acknowledged.state, acknowledged.escalation) == (AlertState.ACKNOWLEDGED, 1)  # both kept
    assert [t.event for t in store.history(fault.id)] == ["create", "escalate", "acknowledge"]
