"""devices.solar against astral (an independent implementation) and a published almanac time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from astral import Observer
from astral.sun import sunrise, sunset

from devices import solar

CITIES = {
    "wuhan": (30.5928, 114.3055, "Asia/Shanghai"),
    "harbin": (45.75, 126.63, "Asia/Shanghai"),
    "sanya": (18.25, 109.51, "Asia/Shanghai"),
    "urumqi": (43.83, 87.62, "Asia/Urumqi"),
    "london": (51.507, -0.128, "Europe/London"),
    "new_york": (40.713, -74.006, "America/New_York"),
    "sydney": (-33.869, 151.209, "Australia/Sydney"),
    "quito": (-0.18, -78.47, "America/Guayaquil"),
}
DAYS = [dt.date(2026, month, 15) for month in range(1, 13)] + [
    dt.date(2026, 3, 20),
    dt.date(2026, 6, 21),
    dt.date(2026, 9, 23),
    dt.date(2026, 12, 21),
]
WUHAN = CITIES["wuhan"][:2]
BEIJING_TIME = ZoneInfo("Asia/Shanghai")


def _astral(lat: float, lon: float, tz: str, day: dt.date) -> tuple[float, float]:
    where, zone = Observer(lat, lon), ZoneInfo(tz)
    return sunrise(where, day, tzinfo=zone).timestamp(), sunset(where, day, tzinfo=zone).timestamp()


@pytest.mark.parametrize("city", CITIES)
def test_within_a_minute_of_astral_across_the_year(city: str) -> None:
    lat, lon, tz = CITIES[city]
    for day in DAYS:
        rise, fall = solar.sun_times(np.array([lat]), np.array([lon]), day)
        expected_rise, expected_fall = _astral(lat, lon, tz, day)
        assert abs(rise[0] - expected_rise) < 60, (city, day)
        assert abs(fall[0] - expected_fall) < 60, (city, day)


def test_vectorized_over_a_city_matches_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    lat = WUHAN[0] + rng.uniform(-0.2, 0.2, 500)
    lon = WUHAN[1] + rng.uniform(-0.3, 0.3, 500)
    day = dt.date(2026, 11, 2)
    rise, fall = solar.sun_times(lat, lon, day)
    for i in (0, 123, 499):
        one_rise, one_fall = solar.sun_times(lat[i], lon[i], day)
        assert one_rise == pytest.approx(rise[i], abs=1e-3)
        assert one_fall == pytest.approx(fall[i], abs=1e-3)
    # 0.6 degrees of longitude is 144 s of solar time: the east of the city sees the sun first.
    assert np.corrcoef(lon, rise)[0, 1] < -0.5


def test_wuhan_summer_solstice_matches_the_almanac() -> None:
    # Almanac (e.g. timeanddate.com) for Wuhan, 2026-06-21, Beijing time: sunrise 05:20, sunset 19:28,
    # 14 h 08 min of daylight. (A figure of 19:38 would mean 14 h 18 min: the day length of 33° N.)
    day = dt.date(2026, 6, 21)
    published_rise = dt.datetime(2026, 6, 21, 5, 20, tzinfo=BEIJING_TIME).timestamp()
    published_set = dt.datetime(2026, 6, 21, 19, 28, tzinfo=BEIJING_TIME).timestamp()
    astral_rise, astral_set = _astral(*CITIES["wuhan"], day)
    assert abs(astral_rise - published_rise) < 90
    assert abs(astral_set - published_set) < 90
    rise, fall = solar.sun_times(*WUHAN, day)
    assert abs(float(rise) - published_rise) < 90
    assert abs(float(fall) - published_set) < 90
    assert dt.datetime.fromtimestamp(float(rise), BEIJING_TIME).date() == day  # local date semantics


def test_polar_day_and_night_are_nan_and_told_apart() -> None:
    tromso = (np.array([69.65]), np.array([18.96]))
    for day, dark in ((dt.date(2026, 6, 21), False), (dt.date(2026, 12, 21), True)):
        rise, fall = solar.sun_times(*tromso, day)
        assert np.isnan(rise[0]) and np.isnan(fall[0])
        assert bool(solar.polar_night(*tromso, day)[0]) is dark
        noon = dt.datetime.combine(day, dt.time(11), dt.UTC).timestamp()
        assert bool(solar.is_night(noon, rise, fall, solar.polar_night(*tromso, day))[0]) is dark


def test_is_night_at_wuhan() -> None:
    day = dt.date(2026, 1, 15)
    rise, fall = solar.sun_times(*WUHAN, day)
    polar = solar.polar_night(*WUHAN, day)
    for hour, night in ((3, True), (9, False), (13, False), (17, False), (18, True), (23, True)):
        t = dt.datetime(2026, 1, 15, hour, 30, tzinfo=BEIJING_TIME).timestamp()
        assert (
            bool(solar.is_night(t, np.atleast_1d(rise), np.atleast_1d(fall), np.atleast_1d(polar))[0])
            is night
        )
