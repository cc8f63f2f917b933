"""Sunrise and sunset for arrays of positions: the astronomical clock that switches streetlights.

NOAA's solar position algorithm (the formulas of NOAA's solar calculator spreadsheet, after Meeus,
*Astronomical Algorithms*), vectorized with numpy. Sunrise and sunset are the moments the sun's centre
is 0.833° below the horizon (34' of refraction plus the sun's 16' radius), at sea level. Each event is
refined twice by recomputing the sun's declination and the equation of time at the event itself, which
keeps the error well below a minute away from the polar circles.

``day`` is the local calendar date at each position, in mean solar time: the events returned bracket
that position's solar noon of ``day``. For Wuhan (114.3° E, UTC+8) the sunrise of 2026-06-21 is at
21:20 UTC on June 20. Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Zenith angle of the sun's centre at sunrise and sunset (90° + 50').
SUNRISE_ZENITH_DEG = 90.833

_J2000 = 2451545.0
_UNIX_EPOCH_JD = 2440587.5
_REFINEMENTS = 2


def _julian_day(day: dt.date) -> float:
    """Julian day at 00:00 UTC of ``day``."""
    return _UNIX_EPOCH_JD + (day - dt.date(1970, 1, 1)).days


def _sun(jd: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The sun's declination (radians) and the equation of time (minutes) at Julian days ``jd``."""
    jc = (jd - _J2000) / 36525.0
    mean_long = np.radians(np.mod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0))
    mean_anom = np.radians(357.52911 + jc * (35999.05029 - 0.0001537 * jc))
    eccent = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    centre = (
        np.sin(mean_anom) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * mean_anom) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * mean_anom) * 0.000289
    )
    omega = np.radians(125.04 - 1934.136 * jc)
    apparent_long = np.radians(np.degrees(mean_long) + centre - 0.00569 - 0.00478 * np.sin(omega))
    mean_obliq = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    obliq = np.radians(mean_obliq + 0.00256 * np.cos(omega))
    declination = np.arcsin(np.sin(obliq) * np.sin(apparent_long))
    y = np.tan(obliq / 2) ** 2
    eq_time = 4.0 * np.degrees(
        y * np.sin(2 * mean_long)
        - 2 * eccent * np.sin(mean_anom)
        + 4 * eccent * y * np.sin(mean_anom) * np.cos(2 * mean_long)
        - 0.5 * y * y * np.sin(4 * mean_long)
        - 1.25 * eccent * eccent * np.sin(2 * mean_anom)
    )
    return declination, eq_time


def _cos_hour_angle(lat_rad: FloatArray, declination: FloatArray) -> FloatArray:
    """Cosine of the hour angle at which the sun crosses the sunrise zenith; |x| > 1 means it never does."""
    zenith = np.radians(SUNRISE_ZENITH_DEG)
    return np.asarray(
        np.cos(zenith) / (np.cos(lat_rad) * np.cos(declination)) - np.tan(lat_rad) * np.tan(declination),
        dtype=np.float64,
    )


def _event_minutes(lat_rad: FloatArray, lon: FloatArray, jd0: float, sign: float) -> FloatArray:
    """Minutes after 00:00 UTC of the day of ``jd0``: sunrise for sign -1, sunset for +1; NaN if none."""
    minutes = 720.0 - 4.0 * lon  # mean solar noon
    for _ in range(_REFINEMENTS + 1):
        declination, eq_time = _sun(jd0 + minutes / 1440.0)
        cos_ha = _cos_hour_angle(lat_rad, declination)
        hour_angle = np.degrees(np.arccos(np.where(np.abs(cos_ha) <= 1.0, cos_ha, np.nan)))
        minutes = np.where(
            np.isnan(hour_angle), 720.0 - 4.0 * lon, 720.0 - 4.0 * lon - eq_time + sign * 4.0 * hour_angle
        )
    return np.where(np.isnan(hour_angle), np.nan, minutes)


def sun_times(lat: npt.ArrayLike, lon: npt.ArrayLike, day: dt.date) -> tuple[FloatArray, FloatArray]:
    """Sunrise and sunset on local date ``day``, as UTC epoch seconds (float64); NaN in polar day or night.

    ``lat`` and ``lon`` are degrees (north and east positive) and broadcast together.
    """
    lat_rad = np.radians(np.asarray(lat, dtype=np.float64))
    lon_deg = np.asarray(lon, dtype=np.float64)
    lat_rad, lon_deg = np.broadcast_arrays(lat_rad, lon_deg)
    jd0 = _julian_day(day)
    midnight = (jd0 - _UNIX_EPOCH_JD) * 86400.0
    sunrise = midnight + 60.0 * _event_minutes(lat_rad, lon_deg, jd0, -1.0)
    sunset = midnight + 60.0 * _event_minutes(lat_rad, lon_deg, jd0, 1.0)
    return sunrise, sunset


def polar_night(lat: npt.ArrayLike, lon: npt.ArrayLike, day: dt.date) -> BoolArray:
    """True where the sun stays below the sunrise zenith all of ``day`` (where ``sun_times`` gives NaN
    and it is night, not day)."""
    lat_rad = np.radians(np.asarray(lat, dtype=np.float64))
    lon_deg = np.asarray(lon, dtype=np.float64)
    lat_rad, lon_deg = np.broadcast_arrays(lat_rad, lon_deg)
    declination, _ = _sun(_julian_day(day) + (720.0 - 4.0 * lon_deg) / 1440.0)
    return np.asarray(_cos_hour_angle(lat_rad, declination) > 1.0, dtype=np.bool_)


def is_night(
    t: float | FloatArray, sunrise: FloatArray, sunset: FloatArray, polar_dark: BoolArray
) -> BoolArray:
    """Whether epoch second ``t`` lies outside [sunrise, sunset) of the day those events belong to."""
    with np.errstate(invalid="ignore"):
        dark = (t < sunrise) | (t >= sunset)
    return np.asarray(np.where(np.isnan(sunrise), polar_dark, dark), dtype=np.bool_)
