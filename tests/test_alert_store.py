"""The alert store: what goes in comes back, a change lands whole or not at all, a restart re-sends nothing,
and the migrations build the schema. Every store test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.alerts import UnknownAlert
from analytics.alerts.events import transition_line
from analytics.alerts.migrations import VERSION_TABLE
from analytics.alerts.model import (
    SYSTEM,
    Alert,
    AlertState,
    Notification,
    NotificationKind,
    Severity,
    Transition,
)
from analytics.alerts.policy import Changes
from analytics.alerts.store import (
    MIGRATIONS,
    AlertStore,
    AlertStoreError,
    OutboxStatus,
    StaleAlert,
    metadata,
)
from citywatch.localstack import free_port
from tests.conftest import InfluxTarget

HOUR = 3_600_000
T0 = 1_780_000_000_000  # 2026-05-28, a night in the simulated city


def alert(
    subject: str = "LMP-000001", opened_ms: int = T0, rule: str = "lamp_failure", **changes: object
) -> Alert:
    a = Alert(
        id=f"{rule}:{subject}:{opened_ms}",
        key=f"{rule}:{subject}",
        rule=rule,
        family="streetlight",
        subject_kind="lamp",
        subject=subject,
        district="jiangan",
        road="解放大道",
        grid_cell="JA-0412",
        crew="jiangan-lighting-2",
        severity=Severity.ORDINARY,
        state=AlertState.OPEN,
        opened_ms=opened_ms,
        deadline_ms=opened_ms + 24 * HOUR,  # ordinary fault: 24 h (DOMAIN.md section 2)
        explanation="dark while switched on: 0.4 W drawn where lit takes 18.0 W or more",
    )
    return replace(a, **changes)  # type: ignore[arg-type]


def created(a: Alert) -> Transition:
    return Transition(a.id, None, a.state, "create", SYSTEM, a.opened_ms)


def opened_notice(a: Alert, recipients: tuple[str, ...] = ("crew:jiangan-lighting-2",)) -> Notification:
    return Notification(
        id=f"{a.id}:opened:0",
        kind=NotificationKind.OPENED,
        recipients=recipients,
        title=f"{a.rule} on {a.subject}",
        body=a.explanation,
        alert_ids=(a.id,),
        created_ms=a.opened_ms,
        severity=a.severity,
        attributes={"road": a.road},
    )


def opening(a: Alert) -> Changes:
    return Changes(alerts=(a,), transitions=(created(a),), notifications=(opened_notice(a),))


# --- the databases ---------------------------------------------------------------------------------------


def _pg_binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or where Debian keeps them (not on PATH)."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        found = str(candidates[-1]) if candidates else None
    return found


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the CI container runs tests as root.
    args = [_pg_binary(args[0]) or args[0], *args[1:]]
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session on a free port (trust auth on 127.0.0.1); its admin URL."""
    for binary in ("initdb", "pg_ctl"):
        if _pg_binary(binary) is None:
            pytest.fail(
                f"'{binary}' not found (PATH, /usr/lib/postgresql/*/bin) -- scripts/bootstrap.sh installs it",
                pytrace=False,
            )
    home = Path(tempfile.mkdtemp(prefix="citywatch-pg-"))  # not under pytest's root-only tmp dir
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = home / "data", free_port()
    subprocess.run(
        _as_postgres(
            ["initdb", "-D", str(data), "-U", "citywatch", "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = ["pg_ctl", "-D", str(data), "-l", str(home / "log"), "-o", options]
    subprocess.run(_as_postgres([*pg_ctl, "-w", "-t", "30", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://citywatch@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([*pg_ctl, "-m", "fast", "stop"]), check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new schema on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alerts.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    schema = f"alerts_{uuid.uuid4().hex[:12]}"  # a schema of its own: much quicker than a database
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{server}/postgres?options=-csearch_path%3D{schema}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(db_url: str) -> Iterator[AlertStore]:
    with AlertStore(db_url) as opened:
        yield opened


# --- round trips -----------------------------------------------------------------------------------------

_texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)  # PostgreSQL: no NUL
_ms = st.integers(-(2**63), 2**63 - 1)
_counts = st.integers(0, 2**31 - 1)
_serial = itertools.count()


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    return Alert(
        id=f"{next(_serial)}:{draw(_texts)}",  # unique: the store is shared by the examples
        key=draw(_texts),
        rule=draw(_texts),
        family=draw(_texts),
        subject_kind=draw(_texts),
        subject=draw(_texts),
        district=draw(_texts),
        road=draw(_texts),
        grid_cell=draw(_texts),
        crew=draw(_texts),
        severity=draw(st.sampled_from(Severity)),
        state=draw(st.sampled_from(AlertState)),
        opened_ms=draw(_ms),
        deadline_ms=draw(_ms),
        explanation=draw(st.text(st.characters(codec="utf-8", exclude_characters="\x00"))),
        children=tuple(draw(st.lists(_texts, max_size=5))),
        parent=draw(_texts),
        maintenance=draw(_texts),
        flapping=draw(st.booleans()),
        escalation=draw(_counts),
        acknowledged_ms=draw(st.none() | _ms),
        resolved_ms=draw(st.none() | _ms),
        closed_ms=draw(st.none() | _ms),
        reopen_count=draw(_counts),
        condition_clear_ms=draw(st.none() | _ms),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=alerts(),
    from_state=st.none() | st.sampled_from(AlertState),
    note=_texts,
    recipients=st.lists(_texts, max_size=3),
    attributes=st.dictionaries(_texts, _texts, max_size=3),
)
def test_every_field_comes_back_as_it_went_in(
    store: AlertStore,
    a: Alert,
    from_state: AlertState | None,
    note: str,
    recipients: list[str],
    attributes: dict[str, str],
) -> None:
    t = Transition(a.id, from_state, a.state, "escalate", "road-chief:王五", a.opened_ms, note)
    n = replace(opened_notice(a, tuple(recipients)), attributes=attributes, created_ms=-(2**62))
    store.apply(Changes(alerts=(a,), transitions=(t,), notifications=(n,)))

    assert store.get(a.id) == a
    assert store.history(a.id) == [t]
    (back,) = [p for p in store.pending_notifications(-(2**62)) if p.id == n.id]
    assert back == n
    assert back.attributes == attributes  # not part of a Notification's equality
    store.mark_sent([n.id], 0)  # out of the next examples' pending list


def test_a_later_version_of_an_alert_replaces_the_earlier(store: AlertStore) -> None:
    a = alert()
    store.apply(opening(a))
    acknowledged = replace(a, state=AlertState.ACKNOWLEDGED, acknowledged_ms=T0 + 60_000)
    store.apply(Changes(alerts=(acknowledged,)))
    assert store.get(a.id) == acknowledged
    assert store.list() == [acknowledged]


def test_an_unknown_alert_is_reported_by_id(store: AlertStore) -> None:
    with pytest.raises(UnknownAlert, match="no alert lamp_failure:nope:1"):
        store.get("lamp_failure:nope:1")
    assert store.history("lamp_failure:nope:1") == []


# --- one transaction, and idempotence --------------------------------------------------------------------


def test_a_change_that_fails_halfway_leaves_nothing_behind(store: AlertStore) -> None:
    a = alert()
    ghost = Transition("lamp_failure:LMP-404:1", AlertState.OPEN, AlertState.RESOLVED, "resolve", "li", T0)
    broken = Changes(alerts=(a,), transitions=(created(a), ghost), notifications=(opened_notice(a),))
    with pytest.raises(AlertStoreError, match="cannot write alerts"):
        store.apply(broken)  # the ghost's alert exists nowhere: its insert fails after the alert's upsert
    with pytest.raises(UnknownAlert):
        store.get(a.id)
    assert store.history(a.id) == []
    assert store.pending_notifications(T0 + HOUR) == []


def test_applying_the_same_changes_again_duplicates_nothing(store: AlertStore) -> None:
    a = alert()
    changes = opening(a)
    store.apply(changes)
    store.mark_sent([opened_notice(a).id], T0 + 1000)

    store.apply(changes)  # a restart replaying the same findings

    assert store.history(a.id) == [created(a)]
    assert store.pending_notifications(T0 + HOUR) == []  # sent stays sent: nobody is told twice
    assert store.notification_status(opened_notice(a).id) is OutboxStatus.SENT


def test_two_moves_in_the_same_millisecond_are_both_history(store: AlertStore) -> None:
    a = alert()
    acknowledged = replace(a, state=AlertState.ACKNOWLEDGED, acknowledged_ms=T0)
    ack = Transition(a.id, AlertState.OPEN, AlertState.ACKNOWLEDGED, "acknowledge", "li", T0, "on it")
    store.apply(Changes(alerts=(a,), transitions=(created(a),)).merge(Changes((acknowledged,), (ack,))))
    assert store.history(a.id) == [created(a), ack]
    assert store.get(a.id) == acknowledged  # the later version of one id in one Changes wins


def test_a_change_computed_from_an_old_version_is_refused_whole(store: AlertStore) -> None:
    a = alert()
    store.apply(opening(a))
    read_by_the_service = store.get(a.id)
    acknowledged = replace(a, state=AlertState.ACKNOWLEDGED, acknowledged_ms=T0 + 5_000)
    ack = Transition(a.id, AlertState.OPEN, AlertState.ACKNOWLEDGED, "acknowledge", "li", T0 + 5_000)
    store.apply(Changes((acknowledged,), (ack,)), based_on=(read_by_the_service,))  # the crew, first

    escalated = replace(read_by_the_service, escalation=1)
    escalation = Transition(a.id, AlertState.OPEN, AlertState.OPEN, "escalate", SYSTEM, T0 + 6_000)
    notice = replace(opened_notice(a), id=f"{a.id}:escalated:1", kind=NotificationKind.ESCALATED)
    with pytest.raises(StaleAlert) as refused:
        store.apply(Changes((escalated,), (escalation,), (notice,)), based_on=(read_by_the_service,))

    assert refused.value.alert_ids == (a.id,)
    assert store.get(a.id) == acknowledged  # the crew's acknowledgement is not overwritten
    assert store.history(a.id)[-1] == ack
    assert store.notification_status(notice.id) is None


def test_writers_at_the_same_time_lose_no_update(store: AlertStore, db_url: str) -> None:
    a = alert()
    store.apply(opening(a))
    applied: list[int] = []
    refused: list[int] = []
    failures: list[BaseException] = []

    def escalate_again_and_again() -> None:
        try:
            with AlertStore(db_url) as mine:  # a process of its own, as the CLI and the service are
                for _ in range(25):
                    current = mine.get(a.id)
                    try:
                        mine.apply(
                            Changes((replace(current, escalation=current.escalation + 1),)),
                            based_on=(current,),
                        )
                        applied.append(1)
                    except StaleAlert:
                        refused.append(1)
        except BaseException as exc:  # reported by the test's thread below
            failures.append(exc)

    writers = [threading.Thread(target=escalate_again_and_again) for _ in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()

    assert failures == []
    assert len(applied) + len(refused) == 75
    assert store.get(a.id).escalation == len(applied)  # every write that succeeded counted, none overwritten


# --- queries ---------------------------------------------------------------------------------------------


def test_live_alerts_by_key_leave_out_resolved_and_closed(store: AlertStore) -> None:
    by_state = {s: alert(f"LMP-{i}", state=s) for i, s in enumerate(AlertState)}
    store.apply(Changes(alerts=tuple(by_state.values())))
    live = store.live_by_key()
    assert set(live) == {
        by_state[s].key for s in (AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.IN_PROGRESS)
    }
    assert all(live[a.key] == a for a in by_state.values() if a.live)


def test_resolved_since_gives_the_newest_resolved_alert_per_key(store: AlertStore) -> None:
    older = alert(opened_ms=T0, state=AlertState.RESOLVED, resolved_ms=T0 + HOUR)
    newer = alert(opened_ms=T0 + 2 * HOUR, state=AlertState.RESOLVED, resolved_ms=T0 + 3 * HOUR)
    closed = alert("LMP-2", state=AlertState.CLOSED, resolved_ms=T0 + HOUR, closed_ms=T0 + 2 * HOUR)
    long_ago = alert("LMP-3", state=AlertState.RESOLVED, resolved_ms=T0 - 48 * HOUR)
    store.apply(Changes(alerts=(newer, older, closed, long_ago)))
    assert store.resolved_since(T0) == {newer.key: newer}


def test_list_filters_and_puts_the_nearest_deadline_first(store: AlertStore) -> None:
    ordinary = alert("LMP-1", road="解放大道")
    serious = alert("LMP-2", severity=Severity.SERIOUS, deadline_ms=T0 + 72 * HOUR, road="中山大道")
    emergency = alert(
        "CAB-9",
        rule="leakage",
        severity=Severity.EMERGENCY,
        deadline_ms=T0 + HOUR,  # emergency: action within 1 h
        road="汉阳大道",
        crew="hanyang-lighting-1",
    )
    fixed = alert("LMP-4", state=AlertState.RESOLVED, resolved_ms=T0 + HOUR, district="hanyang")
    store.apply(Changes(alerts=(ordinary, serious, emergency, fixed)))

    assert store.list() == [emergency, ordinary, fixed, serious]
    assert store.list(limit=2) == [emergency, ordinary]
    assert store.list(state=AlertState.OPEN) == [emergency, ordinary, serious]
    assert store.list(state=(AlertState.OPEN, AlertState.RESOLVED), crew="jiangan-lighting-2") == [
        ordinary,
        fixed,
        serious,
    ]
    assert store.list(severity=Severity.SERIOUS) == [serious]
    assert store.list(road="解放大道", district="jiangan") == [ordinary]
    assert store.list(district="hanyang") == [fixed]
    # 25 h after: the emergency (1 h) and the ordinary fault (24 h) are overdue; a resolved one never is.
    assert store.list(overdue_at_ms=T0 + 25 * HOUR) == [emergency, ordinary]


def test_alerts_between_takes_those_due_or_opened_in_the_period(store: AlertStore) -> None:
    june, july = 1_780_272_000_000, 1_782_864_000_000  # 2026-06-01, 2026-07-01 UTC
    opened_in_may_due_in_june = alert("LMP-1", opened_ms=june - HOUR)
    opened_in_june = alert("LMP-2", opened_ms=june + 5 * HOUR)
    opened_in_june_due_in_july = alert("LMP-3", opened_ms=july - HOUR)
    may = alert("LMP-4", opened_ms=june - 48 * HOUR)
    due_at_the_end = alert("LMP-5", opened_ms=july - 24 * HOUR - 1)  # due 1 ms before July
    in_july = alert("LMP-6", opened_ms=july)
    store.apply(
        Changes(
            alerts=(
                opened_in_may_due_in_june,
                opened_in_june,
                opened_in_june_due_in_july,
                may,
                due_at_the_end,
                in_july,
            )
        )
    )
    assert {a.subject for a in store.alerts_between(june, july)} == {"LMP-1", "LMP-2", "LMP-3", "LMP-5"}


def test_history_is_in_the_order_it_happened(store: AlertStore) -> None:
    a = alert()
    moves = [
        created(a),
        Transition(a.id, AlertState.OPEN, AlertState.ACKNOWLEDGED, "acknowledge", "li", T0 + 600_000, "seen"),
        Transition(
            a.id, AlertState.ACKNOWLEDGED, AlertState.RESOLVED, "resolve", "li", T0 + HOUR, "new driver"
        ),
    ]
    store.apply(Changes(alerts=(a,), transitions=(moves[0],)))
    store.apply(Changes(transitions=(moves[2],)))
    store.apply(Changes(transitions=(moves[1],)))  # recorded late, happened earlier
    assert store.history(a.id) == moves


# --- the notification outbox -----------------------------------------------------------------------------


def test_a_failed_attempt_waits_for_its_retry_then_is_sent_once(store: AlertStore) -> None:
    a = alert()
    notice = opened_notice(a)
    store.apply(opening(a))
    assert store.pending_notifications(T0) == [notice]

    assert store.mark_retry(notice.id, "SMTP 451: try later", T0 + 30_000) == 1
    assert store.pending_notifications(T0 + 29_999) == []
    assert store.pending_notifications(T0 + 30_000) == [notice]

    assert store.mark_sent([notice.id], T0 + 30_500) == 1
    assert store.mark_sent([notice.id], T0 + 31_000) == 0  # a second sender finds it already sent
    delivery = store.delivery(notice.id)
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.sent_ms, delivery.last_error) == (
        OutboxStatus.SENT,
        2,
        T0 + 30_500,
        "SMTP 451: try later",
    )
    assert store.pending_notifications(T0 + HOUR) == []


def test_given_up_and_digested_notifications_leave_the_outbox_for_good(store: AlertStore) -> None:
    lamps = [alert(f"LMP-{i}") for i in range(3)]
    for a in lamps:
        store.apply(opening(a))
    first, second, third = (opened_notice(a).id for a in lamps)

    assert store.mark_failed(first, "webhook 404: no such hook") == 1
    assert store.mark_digested([second, third], "digest:crew:jiangan-lighting-2:1780000000000") == 2
    assert store.mark_sent([first, second, third], T0) == 0

    assert store.pending_notifications(T0 + HOUR) == []
    assert store.notification_status(first) is OutboxStatus.FAILED
    assert store.notification_status(second) is OutboxStatus.DIGESTED
    digested = store.delivery(third)
    assert digested is not None
    assert digested.digest_id == "digest:crew:jiangan-lighting-2:1780000000000"
    assert store.notification_status("no-such-notification") is None


def test_transitions_are_exported_once(store: AlertStore) -> None:
    a = alert()
    store.apply(opening(a))
    acknowledged = replace(a, state=AlertState.ACKNOWLEDGED, acknowledged_ms=T0 + 1)
    ack = Transition(a.id, AlertState.OPEN, AlertState.ACKNOWLEDGED, "acknowledge", "li", T0 + 1)
    store.apply(Changes((acknowledged,), (ack,)))

    waiting = store.unexported_transitions()
    assert [(w.transition, w.alert) for w in waiting] == [(created(a), acknowledged), (ack, acknowledged)]
    assert store.mark_exported([waiting[0].row_id], T0 + 2) == 1
    assert [w.transition for w in store.unexported_transitions()] == [ack]
    assert store.mark_exported([w.row_id for w in waiting], T0 + 3) == 1
    assert store.unexported_transitions() == []


# --- migrations and opening ------------------------------------------------------------------------------


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def test_the_migrations_build_an_empty_database_once(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    heads = ScriptDirectory.from_config(_config()).get_heads()
    caplog.set_level(logging.INFO, logger="analytics.alerts.store")
    with AlertStore(db_url) as first:
        assert first.schema_revisions() == heads
        first.apply(opening(alert()))
    assert any("migrating" in r.message for r in caplog.records)
    caplog.clear()

    with AlertStore(db_url) as again:
        assert again.schema_revisions() == heads
        assert again.list() == [alert()]  # the data is kept
    assert not any("migrating" in r.message for r in caplog.records)  # nothing to do


def test_the_migrations_build_the_schema_the_store_expects(store: AlertStore, db_url: str) -> None:
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_the_migrations_go_down_and_up_again(store: AlertStore, db_url: str) -> None:
    store.close()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    config = _config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}
    finally:
        engine.dispose()
    with AlertStore(db_url) as again:
        again.apply(opening(alert()))
        assert again.list() == [alert()]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://root@127.0.0.1/alerts", "SQLite or PostgreSQL, not mysql"),
        ("no url at all", "is not a database URL"),
        ("sqlite:////no/such/folder/alerts.db", "cannot migrate the schema"),
    ],
)
def test_a_database_that_cannot_serve_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(AlertStoreError, match=reason):
        AlertStore(url)


# --- the InfluxDB event line -----------------------------------------------------------------------------


def test_an_event_line_carries_what_an_annotation_needs() -> None:
    a = alert(road="Jiefang Ave", crew="crew 2, east")
    t = Transition(a.id, AlertState.OPEN, AlertState.ACKNOWLEDGED, "acknowledge", "li", T0 + 1, 'said "ok"')
    assert transition_line(t, a, "p0") == (
        "alert_event,crew=crew\\ 2\\,\\ east,district=jiangan,event=acknowledge,partition=p0,"
        "rule=lamp_failure,severity=ordinary,state=acknowledged,subject=LMP-000001 "
        f'alert_id="{a.id}",actor="li",note="said \\"ok\\"",from_state="open",deadline_ms={a.deadline_ms}i,'
        'title="acknowledged: lamp_failure on LMP-000001" '
        f"{T0 + 1}"
    )


@pytest.mark.integration
def test_event_lines_become_points_grafana_can_draw(influx_db: InfluxTarget) -> None:
    lamps = [alert(f"LMP-{i}") for i in range(3)]  # opened in the same tick, same crew and rule
    lines = [transition_line(created(a), a, "p0") for a in lamps]
    ack = Transition(
        lamps[0].id, AlertState.OPEN, AlertState.ACKNOWLEDGED, "acknowledge", "li", T0 + 1, 'a "b",\nc'
    )
    lines.append(transition_line(ack, lamps[0], "p0"))
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        written = client.post(
            f"{influx_db.url}/write", params={"db": influx_db.db, "precision": "ms"}, content="\n".join(lines)
        )
        assert written.status_code == 204, written.text
        answer = client.get(
            f"{influx_db.url}/query",
            params={
                "db": influx_db.db,
                "epoch": "ms",
                "q": 'SELECT "title", "alert_id", "note", "subject" FROM "alert_event" ORDER BY time',
            },
        ).json()
    rows = answer["results"][0]["series"][0]["values"]
    assert len(rows) == 4  # one point per alert, though three share every tag but the subject and the time
    assert sorted(r[2] for r in rows[:3]) == sorted(a.id for a in lamps)
    assert rows[3] == [T0 + 1, "acknowledged: lamp_failure on LMP-0", lamps[0].id, 'a "b", c', "LMP-0"]
