"""The API's pure core: time ranges and downsampling windows within their limits, bounding boxes, search
filters as bound SQL, sign-in and request budgets, the role table, rates from summed counts, and a
device's status."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.alerts import IllegalTransition
from analytics.alerts.closure import ClosureConfig
from analytics.alerts.model import AlertEvent, AlertState
from analytics.alerts.policy import NOT_NOTIFIED, AlertPolicy, PolicyConfig
from analytics.alerts.routing import Place
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from api import Forbidden, Unprocessable
from api.asset_filters import AssetFilter, page_query, parse_bbox
from api.live_status import DeviceStatus, device_status, pumps, station_fields
from api.rate_math import (
    KPI_FORMULAS,
    Metric,
    RateSnapshot,
    Scope,
    changed,
    check_scope,
    closure_series,
    kpi_series,
    latest_snapshots,
)
from api.roles import (
    ROLE_TABLE,
    ROUTE_AREAS,
    Area,
    Principal,
    Role,
    area_of,
    crew_for_listing,
    may_touch_crew,
)
from api.throttle import LoginThrottle, RequestBudget
from api.windows import (
    DAY_MS,
    HOUR_MS,
    SECOND_MS,
    TimeRange,
    history_windows,
    rate_windows,
    report_end_day,
    time_range,
    window_bounds,
)
from tests.api_world import EAST, WEST, contacts, make_alert

T0 = 1_790_000_000_000


# --- windows ------------------------------------------------------------------------------------------


@given(
    start=st.integers(0, 4_000_000_000_000),
    span=st.integers(1, 40 * DAY_MS),
    points=st.integers(1, 5000),
)
def test_history_windows_never_exceed_the_points_and_cover_the_range(
    start: int, span: int, points: int
) -> None:
    w = history_windows(TimeRange(start, start + span), points, 5000)
    assert 1 <= w.count <= points
    assert w.count * w.width_ms >= span  # the windows cover the range
    assert w.width_ms >= SECOND_MS
    assert (start - w.offset_ms) % w.width_ms == 0  # a window edge on the start
    bounds = window_bounds(w)
    assert bounds[0][0] == start and bounds[-1][1] == start + span


def test_a_day_in_a_hundred_points_is_cut_in_fifteen_minute_windows() -> None:
    w = history_windows(TimeRange(0, DAY_MS), 100, 2000)
    assert (w.width_ms, w.count) == (15 * 60 * SECOND_MS, 96)


def test_points_beyond_the_limit_are_refused_with_the_limit() -> None:
    with pytest.raises(Unprocessable, match="points must be 1 to 2000, not 2001"):
        history_windows(TimeRange(0, DAY_MS), 2001, 2000)


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_a_range_defaults_to_the_last_span_and_refuses_empty_backwards_or_too_long() -> None:
    now = T0
    rng = time_range(None, None, now_ms=now, default_ms=HOUR_MS, max_ms=DAY_MS)
    assert (rng.start_ms, rng.end_ms) == (now - HOUR_MS, now)
    with pytest.raises(Unprocessable, match="the range is empty"):
        time_range(_utc(2026, 1, 2), _utc(2026, 1, 1), now_ms=now, default_ms=HOUR_MS, max_ms=DAY_MS)
    with pytest.raises(Unprocessable, match="the range of 3 days is longer than the limit of 1 days"):
        time_range(_utc(2026, 1, 1), _utc(2026, 1, 4), now_ms=now, default_ms=HOUR_MS, max_ms=DAY_MS)
    with pytest.raises(Unprocessable, match="outside 1970 to 2200"):
        time_range(_utc(2300, 1, 1), None, now_ms=now, default_ms=HOUR_MS, max_ms=DAY_MS)


def test_rate_intervals_are_durations_and_bounded_in_number() -> None:
    week = TimeRange(0, 7 * DAY_MS)
    assert rate_windows(week, None, 100).count == 1
    assert rate_windows(week, "1d", 100).count == 7
    assert rate_windows(week, "6h", 100).width_ms == 6 * HOUR_MS
    with pytest.raises(Unprocessable, match="into 168 windows, more than the limit of 100"):
        rate_windows(week, "1h", 100)
    with pytest.raises(Unprocessable, match="not a duration like 15m"):
        rate_windows(week, "1 hour", 100)


@pytest.mark.parametrize(
    ("kind", "label", "end"),
    [
        ("weekly", "2026-W47", dt.date(2026, 11, 23)),
        ("weekly", "2026-W53", dt.date(2027, 1, 4)),
        ("monthly", "2026-11", dt.date(2026, 12, 1)),
        ("monthly", "2026-12", dt.date(2027, 1, 1)),
        ("monthly", None, dt.date(2026, 5, 5)),
    ],
)
def test_a_report_period_label_names_the_day_it_ends_before(
    kind: str, label: str | None, end: dt.date
) -> None:
    assert report_end_day(kind, label, dt.date(2026, 5, 5)) == end


@pytest.mark.parametrize(
    ("kind", "label"), [("weekly", "2026-11"), ("monthly", "2026-13"), ("monthly", "1900-01")]
)
def test_a_bad_period_label_is_refused(kind: str, label: str) -> None:
    with pytest.raises(Unprocessable, match="period"):
        report_end_day(kind, label, dt.date(2026, 5, 5))


# --- asset filters ------------------------------------------------------------------------------------


def test_a_bounding_box_is_lon_lat_corners_checked() -> None:
    assert parse_bbox("114.1,30.4,114.6,30.7") == parse_bbox(" 114.1, 30.4 ,114.6,30.7")
    for bad, reason in [
        ("114,30,115", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("115,30,114,31", "min_lon <= max_lon"),
        ("114,31,115,30", "min_lat <= max_lat"),
        ("114,30,190,31", "longitudes"),
        ("nan,30,115,31", "finite"),
    ]:
        with pytest.raises(Unprocessable, match=reason):
            parse_bbox(bad)


def test_search_filters_become_bound_parameters_never_sql_text() -> None:
    hostile = "Luoyu Road' OR '1'='1"
    stmt = page_query(AssetFilter(road=hostile, kind="lamp", bbox=parse_bbox("114,30,115,31")), "LMP-9", 50)
    compiled = stmt.compile()
    assert hostile not in str(compiled)
    assert hostile in compiled.params.values()
    assert {"LMP-9", "lamp", 114.0, 31.0} <= set(compiled.params.values())


# --- budgets ------------------------------------------------------------------------------------------


def test_failed_sign_ins_lock_the_name_until_the_oldest_failure_leaves_the_window() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60)
    keys = ("name:otto", "addr:10.0.0.1")
    for t in (0.0, 1.0, 2.0):
        assert throttle.wait_s(keys, t) == 0
        throttle.failed(keys, t)
    assert throttle.wait_s(keys, 3.0) == pytest.approx(57.0)
    assert throttle.wait_s(("name:someone-else", "addr:10.0.0.1"), 3.0) > 0  # the address too
    assert throttle.wait_s(keys, 60.5) == 0
    throttle.failed(keys, 61.0)
    throttle.succeeded("name:otto")
    assert throttle.wait_s(("name:otto",), 61.5) == 0


def test_a_request_budget_allows_a_burst_then_the_rate() -> None:
    budget = RequestBudget(rate=2.0, burst=3)
    assert [budget.take("a", 0.0) for _ in range(3)] == [0, 0, 0]
    assert budget.take("a", 0.0) == pytest.approx(0.5)
    assert budget.take("b", 0.0) == 0  # callers have budgets of their own
    assert budget.take("a", 0.5) == 0


# --- roles --------------------------------------------------------------------------------------------


def test_the_role_table_names_every_area_and_admins_may_do_everything() -> None:
    assert set(ROLE_TABLE) == set(Area)
    assert all(Role.ADMIN in roles for roles in ROLE_TABLE.values())
    assert Role.VIEWER not in ROLE_TABLE[Area.COMMANDS]
    assert Role.CREW not in ROLE_TABLE[Area.REPORTS]
    assert set(ROUTE_AREAS.values()) <= set(Area)


def test_handed_over_routers_fall_under_their_prefix_and_unknown_routes_under_none() -> None:
    assert area_of("POST", "/api/v1/commands/{device_id}") is Area.COMMANDS
    assert area_of("POST", "/api/v1/commands") is Area.COMMANDS
    assert area_of("GET", "/api/v1/commands") is Area.READ  # what was sent: anyone reads it
    assert area_of("GET", "/api/v1/commandsx") is None
    assert area_of("DELETE", "/api/v1/alerts/{alert_id}") is None
    assert area_of("post", "/api/v1/alerts/{alert_id}/ack") is Area.ALERTS_ACT


def test_a_crew_user_is_held_to_its_own_crew() -> None:
    east = Principal("east", Role.CREW, EAST)
    assert may_touch_crew(east, EAST) and not may_touch_crew(east, WEST)
    assert not may_touch_crew(Principal("lost", Role.CREW, ""), "")
    assert may_touch_crew(Principal("otto", Role.OPERATOR), WEST)
    assert crew_for_listing(east, None) == EAST
    assert crew_for_listing(east, EAST) == EAST
    with pytest.raises(Forbidden, match="sees that crew's alerts only"):
        crew_for_listing(east, WEST)
    assert crew_for_listing(Principal("vera", Role.VIEWER), WEST) == WEST
    assert Principal("grafana", Role.VIEWER, via="key").actor == "key:grafana"


# --- rates --------------------------------------------------------------------------------------------


def _series(scope_id: str, rows: list[list[object]], columns: list[str]) -> dict[str, object]:
    return {"name": "kpi", "tags": {"scope_id": scope_id}, "columns": ["time", *columns], "values": rows}


def test_a_rate_is_summed_counts_not_an_average_of_rates() -> None:
    # two windows; the second has a small, dark district: averaging rates would say 0.5, counts say ~0.91
    bounds = [(0, 10), (10, 20)]
    series = [_series("city", [[0, 90.0, 100.0, 0.0], [10, 100.0, 110.0, 0.0]], ["lit", "due", "unknown"])]
    points = kpi_series(KPI_FORMULAS[Metric.LIGHTING], series, bounds, lower=True)["city"]
    assert [(p.start_ms, p.end_ms) for p in points] == bounds
    assert points[1].rate == pytest.approx(100 / 110)
    unknown = kpi_series(
        KPI_FORMULAS[Metric.LIGHTING],
        [_series("d", [[0, 8.0, 10.0, 2.0]], ["lit", "due", "unknown"])],
        bounds,
        lower=True,
    )["d"][0]
    assert (unknown.rate, unknown.lower_bound) == (
        1.0,
        0.8,
    )  # unknown lamps: out of the rate, dark in the bound
    nothing = kpi_series(
        KPI_FORMULAS[Metric.INTACT], [_series("d", [[0, 0.0, 0.0]], ["intact", "items"])], bounds, lower=False
    )
    assert nothing["d"][0].rate is None


def test_the_closure_rate_counts_cases_per_group_and_window() -> None:
    done = AlertState.RESOLVED
    alerts = [
        make_alert("LMP-001", EAST, opened=0, deadline=100),  # due, still open: late
        make_alert("LMP-002", EAST, opened=0, deadline=100, state=done, resolved=50),  # on time
        make_alert("LMP-101", WEST, opened=0, deadline=150, state=done, resolved=120),  # on time
    ]
    bounds = [(0, 200)]
    by_crew = closure_series(alerts, bounds, Scope.CREW, None, ClosureConfig())
    assert [(k, v[0].numerator, v[0].denominator) for k, v in by_crew.items()] == [
        (EAST, 1.0, 2.0),
        (WEST, 1.0, 1.0),
    ]
    nobody = closure_series(alerts, bounds, Scope.CREW, "nobody", ClosureConfig())
    assert list(nobody) == ["nobody"] and nobody["nobody"][0].rate is None
    with pytest.raises(Unprocessable, match="not per road_class"):
        check_scope(Metric.ON_TIME_CLOSURE, Scope.ROAD_CLASS)
    with pytest.raises(Unprocessable, match="not per crew"):
        check_scope(Metric.LIGHTING, Scope.CREW)


def test_the_feed_sums_partitions_and_reports_only_moves() -> None:
    columns = ["time", "lit", "due", "unknown", "items", "intact"]
    series = [
        {"tags": {"scope": "city", "scope_id": "city", "partition": p}, "columns": columns, "values": [row]}
        for p, row in (("p1", [5, 90.0, 100.0, 0.0, 10.0, 9.0]), ("p2", [7, 40.0, 50.0, 0.0, 10.0, 10.0]))
    ]
    snap = latest_snapshots(series)[("city", "city")]
    assert snap.lighting_rate == pytest.approx(130 / 150) and snap.intact_rate == pytest.approx(19 / 20)
    assert snap.at_ms == 7
    assert changed(None, snap)
    assert not changed(snap, RateSnapshot("city", "city", 9, snap.lighting_rate, snap.intact_rate))
    assert changed(snap, RateSnapshot("city", "city", 9, 0.5, snap.intact_rate))
    assert changed(snap, RateSnapshot("city", "city", 9, None, snap.intact_rate))


# --- live status --------------------------------------------------------------------------------------


def test_a_device_status_is_the_worst_that_applies() -> None:
    assert device_status(None, []) is DeviceStatus.UNKNOWN
    assert device_status(5, []) is DeviceStatus.OK
    assert device_status(5, ["lamp_failure"]) is DeviceStatus.FAULT
    assert device_status(5, ["lamp_failure", "offline_lamp"]) is DeviceStatus.OFFLINE
    assert device_status(None, ["gateway_offline"]) is DeviceStatus.OFFLINE


def test_a_stations_readings_split_by_pump() -> None:
    values = {
        "wet_well_level": 2.5,
        "pump1_running": True,
        "pump1_current": 40.0,
        "pump3_fault": True,
        "pump2_x": None,
    }
    assert [(p.number, dict(p.values)) for p in pumps(values)] == [
        (1, {"running": True, "current": 40.0}),
        (3, {"fault": True}),
    ]
    assert station_fields(values) == {"wet_well_level": 2.5}


def test_the_docs_show_the_current_role_table() -> None:
    from pathlib import Path

    from api.roles_doc import roles_tables

    doc = (Path(__file__).parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    assert roles_tables() in doc, "docs/api.md is stale: paste `python -m api.roles_doc`"


# --- the alert actions the API added to the lifecycle ------------------------------------------------


class _Nowhere:
    def place(self, subject_kind: str, subject: str) -> Place:
        return Place()


def _policy() -> AlertPolicy:
    return AlertPolicy(
        PolicyConfig(), SeverityPolicy(SeverityConfig(), WorkCalendar()), contacts(), _Nowhere()
    )


def test_a_note_keeps_the_state_and_is_refused_once_closed() -> None:
    alert = make_alert("LMP-001", EAST)
    changes = _policy().act(alert, AlertEvent.NOTE, "wang", T0, "cable cut at pole 7")
    (moved,) = changes.alerts
    (t,) = changes.transitions
    assert moved == alert and (t.from_state, t.to_state, t.event, t.note) == (
        AlertState.OPEN,
        AlertState.OPEN,
        "note",
        "cable cut at pole 7",
    )
    assert not changes.notifications
    closed = make_alert("LMP-001", EAST, state=AlertState.CLOSED)
    with pytest.raises(IllegalTransition):
        _policy().act(closed, AlertEvent.NOTE, "wang", T0, "late")


def test_an_assignment_moves_the_crew_and_tells_its_on_call_person() -> None:
    alert = make_alert("LMP-001", EAST)
    changes = _policy().act(alert, AlertEvent.ASSIGN, "otto", T0, "their road", crew=WEST)
    (moved,) = changes.alerts
    assert (moved.crew, moved.state) == (WEST, alert.state)
    assert changes.transitions[0].note == f"assigned to {WEST} (was {EAST}): their road"
    (told,) = changes.notifications
    assert told.recipients == (f"{WEST}-on-call",) and told.id == f"{alert.id}:assigned:{WEST}:{T0}"
    quiet = _policy().act(replace(alert, escalation=NOT_NOTIFIED), AlertEvent.ASSIGN, "otto", T0, crew=WEST)
    assert not quiet.notifications  # the group wait will announce it, to the new crew
    same = _policy().act(alert, AlertEvent.ASSIGN, "east", T0, crew=EAST)
    assert not same.notifications
    with pytest.raises(IllegalTransition, match="assigned to no crew"):
        _policy().act(alert, AlertEvent.ASSIGN, "otto", T0)
    resolved = make_alert("LMP-001", EAST, state=AlertState.RESOLVED, resolved=T0)
    with pytest.raises(IllegalTransition):
        _policy().act(resolved, AlertEvent.ASSIGN, "otto", T0, crew=WEST)
