"""Part-night and dimming plans, planned outages and the city's local clock: what switches lamps off
besides the sun.

A ``DimPlan`` is a named set of windows in local clock time (``PlanWindow``: "23:00" to "05:00" at a dim
level, 0 meaning off; a window may cross midnight). Lamps follow a plan by the registry's lamp param
``dim_plan`` (``"none"``: no plan) or by their road class (``ScheduleConfig.class_plans``). A
``PlannedOutage`` is an announced outage (maintenance, road works) of lamps, circuits or roads over
``[start_ms, end_ms)``. DOMAIN.md section 2: lamps off under an approved plan or an announced outage
are not due. Pure.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from analytics import RuleConfigError

_DAY_MIN = 1440
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_OFFSET = re.compile(r"(?:UTC)?([+-])([0-9]{1,2})(?::?([0-5][0-9]))?")
#: The registry's lamp param naming a lamp's part-night plan; this value means "no plan".
DIM_PLAN_PARAM = "dim_plan"
NO_PLAN = "none"


def hhmm_minutes(text: str, what: str) -> int:
    """Minutes after local midnight of a ``HH:MM`` time; RuleConfigError otherwise."""
    match = _HHMM.fullmatch(text)
    if match is None:
        raise RuleConfigError(f"{what} {text!r:.20} is not a local time HH:MM (00:00 to 23:59)")
    return int(match[1]) * 60 + int(match[2])


def parse_zone(spec: str) -> dt.tzinfo:
    """A zoneinfo name ("Asia/Shanghai") or a fixed UTC offset ("+08:00", "UTC+8")."""
    match = _OFFSET.fullmatch(spec)
    if match is not None:
        minutes = int(match[2]) * 60 + int(match[3] or 0)
        if minutes > 14 * 60:
            raise RuleConfigError(f"UTC offset {spec!r} is beyond ±14:00")
        sign = -1 if match[1] == "-" else 1
        return dt.timezone(dt.timedelta(minutes=sign * minutes))
    try:
        return ZoneInfo(spec)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleConfigError(f"timezone {spec!r:.60} is neither a zoneinfo name nor a UTC offset") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanWindow:
    """Local clock ``[start, end)`` at ``level`` % (0: off); an end before the start crosses midnight."""

    start: str
    end: str
    level: float

    def __post_init__(self) -> None:
        if hhmm_minutes(self.start, "window start") == hhmm_minutes(self.end, "window end"):
            raise RuleConfigError(f"plan window {self.start}-{self.end} is empty")
        if not 0.0 <= self.level < 100.0:
            raise RuleConfigError(f"plan window level must be 0 (off) to below 100 %, not {self.level}")

    @property
    def minutes(self) -> tuple[int, int]:
        return hhmm_minutes(self.start, "start"), hhmm_minutes(self.end, "end")

    def covers(self, minute: float) -> bool:
        start, end = self.minutes
        return (start <= minute < end) if start < end else (minute >= start or minute < end)


@dataclass(frozen=True, slots=True, kw_only=True)
class DimPlan:
    """A named part-night or dimming plan (DOMAIN.md section 2: lamps off or dimmed by an approved plan
    are not due, or due at the plan's level)."""

    name: str
    windows: tuple[PlanWindow, ...]

    def __post_init__(self) -> None:
        if not self.name or self.name == NO_PLAN:
            raise RuleConfigError(f"a dim plan needs a name other than {NO_PLAN!r}")
        if not self.windows:
            raise RuleConfigError(f"dim plan {self.name!r} has no window")
        cover = np.zeros(_DAY_MIN, dtype=np.int32)
        for window in self.windows:
            start, end = window.minutes
            if start < end:
                cover[start:end] += 1
            else:
                cover[start:] += 1
                cover[:end] += 1
        if cover.max() > 1:
            raise RuleConfigError(f"dim plan {self.name!r} has overlapping windows")

    def level_at(self, minute: float) -> float:
        """The plan's level at local ``minute`` of the day (100 outside every window)."""
        for window in self.windows:
            if window.covers(minute):
                return window.level
        return 100.0

    def switching_near(self, minute: float, grace_min: float) -> bool:
        """Within ``grace_min`` of the start or end of an off window: lamps are switching."""
        for window in self.windows:
            if window.level > 0:
                continue
            for edge in window.minutes:
                if abs((minute - edge + _DAY_MIN / 2) % _DAY_MIN - _DAY_MIN / 2) < grace_min:
                    return True
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedOutage:
    """An announced outage (maintenance, road works): these lamps are off by plan over ``[start, end)``."""

    start_ms: int
    end_ms: int
    lamps: tuple[str, ...] = ()
    circuits: tuple[str, ...] = ()
    roads: tuple[str, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise RuleConfigError(f"planned outage ends ({self.end_ms}) before it starts ({self.start_ms})")
        if not (self.lamps or self.circuits or self.roads):
            raise RuleConfigError("a planned outage names no lamp, circuit or road")


class LocalClock:
    """The city's local clock time, for plan windows and check times given as HH:MM."""

    def __init__(self, timezone: str) -> None:
        self.zone = parse_zone(timezone)

    def minute_of_day(self, ms: int) -> float:
        local = dt.datetime.fromtimestamp(ms / 1000, self.zone)
        return local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60

    def next_time(self, after_ms: int, minute: int) -> int:
        """The first instant at or after ``after_ms`` at which the local clock reads ``minute``."""
        day = dt.datetime.fromtimestamp(after_ms / 1000, self.zone).date()
        at = dt.time(minute // 60, minute % 60)
        for _ in range(2):
            instant = round(dt.datetime.combine(day, at, self.zone).timestamp() * 1000)
            if instant >= after_ms:
                return instant
            day += dt.timedelta(days=1)
        return instant
