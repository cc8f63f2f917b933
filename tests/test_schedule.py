"""The lamp switching schedule: astronomical clock against published almanac times, grace margins, polar
day and night, part-night plans across midnight, planned outages, and the schedule driving the engine."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.engine import Engine
from analytics.lamp_plans import DimPlan, PlannedOutage, PlanWindow, parse_zone
from analytics.schedule import CityNights, LampScheduler, ScheduleConfig
from analytics.topology import Topology, build_topology
from devices import solar
from devices.assets import Asset
from devices.kinds import DeviceKind

SHANGHAI = "Asia/Shanghai"
WUHAN = (30.5928, 114.3055)
MINUTE = 60_000


def city(
    lat: float, lon: float, n: int = 3, *, road_class: str = "trunk", in_service: bool = True
) -> Topology:
    return build_topology(
        Asset(
            id=f"L{i}",
            kind="lamp",
            district="d",
            road="R",
            road_class=road_class,
            circuit="C",
            lat=lat,
            lon=lon,
            in_service=in_service,
        )
        for i in range(n)
    )


def local_ms(zone: str, year: int, month: int, day: int, hour: int, minute: int) -> int:
    return round(dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def exact(zone: str = SHANGHAI, **kw: object) -> ScheduleConfig:
    """No grace and each lamp's own position: the schedule switches exactly at sunset and sunrise."""
    return ScheduleConfig(timezone=zone, grace_min=0.0, position_grid_deg=0.0, **kw)  # type: ignore[arg-type]


# Published times (timeanddate.com tables, local clock, rounded to the minute): (city, lat, lon, zone,
# the evening's sunset, the morning's sunrise). Reykjavik's June sunset falls after midnight.
PUBLISHED = [
    ("wuhan", *WUHAN, SHANGHAI, (2026, 6, 21, 19, 28), (2026, 6, 21, 5, 20)),
    ("wuhan", *WUHAN, SHANGHAI, (2026, 12, 21, 17, 25), (2026, 12, 21, 7, 16)),
    ("beijing", 39.9042, 116.4074, SHANGHAI, (2026, 6, 21, 19, 46), (2026, 6, 21, 4, 46)),
    ("beijing", 39.9042, 116.4074, SHANGHAI, (2026, 12, 21, 16, 53), (2026, 12, 21, 7, 33)),
    ("helsinki", 60.1699, 24.9384, "Europe/Helsinki", (2026, 6, 21, 22, 50), (2026, 6, 21, 3, 54)),
    ("reykjavik", 64.1466, -21.9426, "Atlantic/Reykjavik", (2026, 6, 22, 0, 3), (2026, 6, 21, 2, 55)),
    ("reykjavik", 64.1466, -21.9426, "Atlantic/Reykjavik", (2026, 12, 21, 15, 29), (2026, 12, 21, 11, 22)),
]


@pytest.mark.parametrize(("name", "lat", "lon", "zone", "sunset", "sunrise"), PUBLISHED)
def test_switching_follows_the_published_sunset_and_sunrise(
    name: str, lat: float, lon: float, zone: str, sunset: tuple[int, ...], sunrise: tuple[int, ...]
) -> None:
    scheduler = LampScheduler(city(lat, lon), exact(zone))
    published_on, published_off = local_ms(zone, *sunset), local_ms(zone, *sunrise)
    on, _ = scheduler.switch_times(published_on - 60 * MINUTE)  # the evening's night window
    _, off = scheduler.switch_times(published_off - 60 * MINUTE)  # the night ending that morning
    assert abs(on[0] - published_on) <= 2 * MINUTE, name
    assert abs(off[0] - published_off) <= 2 * MINUTE, name
    # and the lamps follow: dark before sunset is daytime, a few minutes after it they are due
    before, after = scheduler.at(published_on - 3 * MINUTE), scheduler.at(published_on + 3 * MINUTE)
    assert before.daytime.all() and not before.due.any()
    assert after.due.all() and not after.daytime.any()
    assert scheduler.at(published_off - 3 * MINUTE).due.all()
    assert scheduler.at(published_off + 3 * MINUTE).daytime.all()


def test_offsets_and_grace_margin() -> None:
    config = ScheduleConfig(on_offset_min=10, off_offset_min=-15, grace_min=15)
    scheduler = LampScheduler(city(*WUHAN), config)
    sunset, sunrise = local_ms(SHANGHAI, 2026, 6, 21, 19, 28), local_ms(SHANGHAI, 2026, 6, 22, 5, 21)
    on, off = scheduler.switch_times(sunset)
    assert abs(on[0] - (sunset + 10 * MINUTE)) <= 2 * MINUTE
    assert abs(off[0] - (sunrise - 15 * MINUTE)) <= 2 * MINUTE
    switch_on = int(on[0])
    for minutes, due, daytime in (
        (-16, False, True),
        (-5, False, False),
        (5, False, False),
        (16, True, False),
    ):
        view = scheduler.at(switch_on + minutes * MINUTE)
        assert (bool(view.due[0]), bool(view.daytime[0])) == (due, daytime), minutes
    assert view.dim[0] == 100.0 and not view.planned_off.any()


def test_polar_day_is_never_due_and_polar_night_always() -> None:
    scheduler = LampScheduler(city(69.65, 18.96), exact("Europe/Oslo"))  # Tromsø
    for hour in (0, 6, 12, 18, 23):
        summer = scheduler.at(local_ms("Europe/Oslo", 2026, 6, 21, hour, 0))
        assert summer.daytime.all() and not summer.due.any(), hour
        winter = scheduler.at(local_ms("Europe/Oslo", 2026, 12, 21, hour, 0))
        assert winter.due.all() and not winter.daytime.any(), hour
    night = scheduler.night(local_ms("Europe/Oslo", 2026, 6, 21, 23, 0))
    assert not night.dark


def test_lamps_out_of_service_are_never_due() -> None:
    scheduler = LampScheduler(city(*WUHAN, in_service=False), ScheduleConfig())
    view = scheduler.at(local_ms(SHANGHAI, 2026, 6, 21, 23, 0))
    assert not view.due.any() and not view.planned_off.any()


def plan_city() -> Topology:
    """Four lamps: a trunk lamp, two branch lamps (one opted out of plans), one on the dimming plan."""
    rows = [("T", "trunk", None), ("B1", "branch", None), ("B2", "branch", "none"), ("D", "trunk", "dim")]
    return build_topology(
        Asset(
            id=name,
            kind="lamp",
            district="d",
            road=f"R-{road_class}",
            road_class=road_class,
            lat=WUHAN[0],
            lon=WUHAN[1],
            params={"dim_plan": plan} if plan else {},
        )
        for name, road_class, plan in rows
    )


PLANS = (
    DimPlan(name="part_night", windows=(PlanWindow(start="23:00", end="05:00", level=0),)),
    DimPlan(name="dim", windows=(PlanWindow(start="00:00", end="05:00", level=50),)),
)


def test_part_night_plans_across_midnight() -> None:
    config = ScheduleConfig(plans=PLANS, class_plans={"branch": "part_night"})
    scheduler = LampScheduler(plan_city(), config)
    order = ["T", "B1", "B2", "D"]  # ids sorted: B1, B2, D, T
    lamps = scheduler.topology.table(DeviceKind.LAMP)
    index = lamps.find(order)

    def view(hour: int, minute: int, day: int = 21, month: int = 6) -> dict[str, tuple[bool, bool, float]]:
        s = scheduler.at(local_ms(SHANGHAI, 2026, month, day, hour, minute))
        return {
            name: (bool(s.due[i]), bool(s.planned_off[i]), float(s.dim[i]))
            for name, i in zip(order, index.tolist(), strict=True)
        }

    assert view(22, 0) == dict.fromkeys(order, (True, False, 100.0))
    # 23:05 is within the grace margin of the part-night switch-off: B1 neither due nor planned off yet
    assert view(23, 5)["B1"] == (False, False, 0.0)
    late = view(23, 30)
    assert late["B1"] == (False, True, 0.0)  # part-night: off by plan, not due
    assert late["B2"] == (True, False, 100.0)  # its registry row opts out of the class plan
    assert late["T"] == late["D"] == (True, False, 100.0)
    small_hours = view(1, 0, day=22)
    assert small_hours["D"] == (True, False, 50.0)  # due, at the plan's dim level
    assert small_hours["B1"] == (False, True, 0.0)
    assert view(4, 30, day=22)["B1"] == (False, True, 0.0)
    assert view(5, 0, day=22)["B1"] == (False, False, 0.0)  # switching back on: grace
    assert view(5, 16, day=22) == dict.fromkeys(order, (False, False, 0.0))  # sunrise 05:21, in grace
    winter_dawn = view(5, 30, day=22, month=12)  # plans over, the sun rises at 07:16
    assert winter_dawn == dict.fromkeys(order, (True, False, 100.0))


def test_a_lamp_naming_an_unknown_plan_stays_due_and_is_counted() -> None:
    topo = build_topology(
        [
            Asset(
                id="X",
                kind="lamp",
                district="d",
                road_class="trunk",
                lat=30.6,
                lon=114.3,
                params={"dim_plan": "gone"},
            )
        ]
    )
    scheduler = LampScheduler(topo, ScheduleConfig(plans=PLANS))
    assert scheduler.unknown_plan_lamps == 1
    assert scheduler.at(local_ms(SHANGHAI, 2026, 6, 22, 1, 0)).due.all()


def test_planned_outages_by_lamp_circuit_and_road() -> None:
    assets = [
        Asset(
            id=f"L{i}",
            kind="lamp",
            district="d",
            road=f"R{i % 2}",
            road_class="trunk",
            circuit=f"C{i // 2}",
            lat=30.6,
            lon=114.3,
        )
        for i in range(6)
    ]  # circuits C0 (L0, L1), C1 (L2, L3), C2 (L4, L5); roads R0 (L0, L2, L4), R1 (L1, L3, L5)
    start, end = local_ms(SHANGHAI, 2026, 6, 21, 21, 0), local_ms(SHANGHAI, 2026, 6, 22, 1, 0)
    outages = (
        PlannedOutage(start_ms=start, end_ms=end, lamps=("L0", "not-here"), reason="pole replacement"),
        PlannedOutage(start_ms=start, end_ms=end, circuits=("C2",), roads=("R9",)),
    )
    scheduler = LampScheduler(build_topology(assets), ScheduleConfig(outages=outages))
    during = scheduler.at(start + 30 * MINUTE)
    assert during.planned_off.tolist() == [True, False, False, False, True, True]
    assert (during.due == ~during.planned_off).all()
    assert not scheduler.at(start - 30 * MINUTE).planned_off.any()  # before it starts
    assert not scheduler.at(end).planned_off.any()  # the end is exclusive
    scheduler.set_outages([PlannedOutage(start_ms=start, end_ms=end, roads=("R1",))])
    assert scheduler.at(start + 30 * MINUTE).planned_off.tolist() == [False, True, False, True, False, True]


def test_config_is_validated() -> None:
    window = PlanWindow(start="22:00", end="02:00", level=0)
    with pytest.raises(RuleConfigError, match="overlapping"):
        DimPlan(name="p", windows=(window, PlanWindow(start="01:00", end="03:00", level=50)))
    with pytest.raises(RuleConfigError, match="HH:MM"):
        PlanWindow(start="24:00", end="02:00", level=0)
    with pytest.raises(RuleConfigError, match="empty"):
        PlanWindow(start="02:00", end="02:00", level=0)
    with pytest.raises(RuleConfigError, match="unknown plan"):
        ScheduleConfig(class_plans={"branch": "nope"})
    with pytest.raises(RuleConfigError, match="timezone"):
        ScheduleConfig(timezone="Mars/Olympus")
    with pytest.raises(RuleConfigError, match="grace"):
        ScheduleConfig(grace_min=-1)
    with pytest.raises(RuleConfigError, match="before it starts"):
        PlannedOutage(start_ms=2, end_ms=1, lamps=("L",))
    assert parse_zone("+08:00").utcoffset(None) == dt.timedelta(hours=8)
    assert parse_zone("UTC-3").utcoffset(None) == dt.timedelta(hours=-3)


def test_a_fixed_offset_clock_matches_the_zone() -> None:
    topo = plan_city()
    named = LampScheduler(topo, ScheduleConfig(plans=PLANS, class_plans={"branch": "part_night"}))
    fixed = LampScheduler(
        topo, ScheduleConfig(plans=PLANS, class_plans={"branch": "part_night"}, timezone="+08:00")
    )
    for hour in range(24):
        t = local_ms(SHANGHAI, 2026, 3, 1, hour, 10)
        assert (named.at(t).due == fixed.at(t).due).all()


def test_city_nights_bracket_one_night_at_the_centre() -> None:
    nights = CityNights(*WUHAN, ScheduleConfig())
    evening = local_ms(SHANGHAI, 2026, 6, 21, 21, 0)
    night = nights.night(evening)
    assert night.start_ms <= evening < night.end_ms and night.end_ms - night.start_ms == 86_400_000
    assert abs(night.on_ms - local_ms(SHANGHAI, 2026, 6, 21, 19, 28)) <= 2 * MINUTE
    assert abs(night.off_ms - local_ms(SHANGHAI, 2026, 6, 22, 5, 21)) <= 2 * MINUTE
    assert nights.night(local_ms(SHANGHAI, 2026, 6, 22, 4, 0)) == night  # same night after midnight
    assert nights.night(local_ms(SHANGHAI, 2026, 6, 22, 13, 0)).day == night.day + 1
    assert nights.next_local_time(night.start_ms, 2 * 60) == local_ms(SHANGHAI, 2026, 6, 22, 2, 0)
    assert nights.next_local_time(night.start_ms, 22 * 60) == local_ms(SHANGHAI, 2026, 6, 21, 22, 0)


def test_the_engine_ticks_on_the_schedule() -> None:
    topo = city(*WUHAN)
    engine = Engine(topo, [], LampScheduler(topo, ScheduleConfig()))
    engine.tick(local_ms(SHANGHAI, 2026, 6, 21, 23, 0))
    assert engine.last_schedule is not None and engine.last_schedule.due.all()
    engine.tick(local_ms(SHANGHAI, 2026, 6, 22, 12, 0))
    assert engine.last_schedule.daytime.all()


def spread_city(n: int, seed: int) -> Topology:
    rng = np.random.default_rng(seed)
    return build_topology(
        Asset(
            id=f"L{i:04d}",
            kind="lamp",
            district="d",
            road_class="trunk",
            lat=float(WUHAN[0] + rng.uniform(-0.3, 0.3)),
            lon=float(WUHAN[1] + rng.uniform(-0.5, 0.5)),
        )
        for i in range(n)
    )


def test_the_position_grid_moves_switching_by_seconds_only() -> None:
    topo = spread_city(200, 3)
    gridded = LampScheduler(topo, ScheduleConfig(position_grid_deg=0.01))
    own = LampScheduler(topo, ScheduleConfig(position_grid_deg=0.0))
    for month in (3, 6, 12):
        now = local_ms(SHANGHAI, 2026, month, 21, 21, 0)
        for a, b in zip(gridded.switch_times(now), own.switch_times(now), strict=True):
            assert np.abs(a - b).max() < 10_000  # ms
    lamps = topo.table(DeviceKind.LAMP)
    on, _ = own.switch_times(local_ms(SHANGHAI, 2026, 6, 21, 21, 0))
    _, fall = solar.sun_times(lamps.lat, lamps.lon, dt.date(2026, 6, 21))
    assert np.abs(on - fall * 1000).max() < 1_000  # each lamp's own sunset, vectorized


SPREAD = spread_city(300, 7)
SPREAD_SCHEDULER = LampScheduler(SPREAD, ScheduleConfig())
YEAR_START = local_ms(SHANGHAI, 2026, 1, 1, 0, 0)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=365 * 86_400_000))
def test_due_and_daytime_agree_with_the_sun_at_each_lamp(offset_ms: int) -> None:
    now = YEAR_START + offset_ms
    view = SPREAD_SCHEDULER.at(now)
    assert not (view.due & view.daytime).any()
    assert not (view.due & view.planned_off).any()
    assert ((view.dim > 0) == view.due).all()
    lamps = SPREAD.table(DeviceKind.LAMP)
    local = dt.datetime.fromtimestamp(now / 1000, ZoneInfo(SHANGHAI)).date()
    up = np.zeros(len(lamps), dtype=np.bool_)  # the sun is up at a lamp: t in [sunrise, sunset) of some day
    for day in (local - dt.timedelta(days=1), local, local + dt.timedelta(days=1)):
        rise, fall = solar.sun_times(lamps.lat, lamps.lon, day)
        up |= (rise * 1000 <= now) & (now < fall * 1000)
    assert not (view.due & up).any()
    assert not (view.daytime & ~up).any()
