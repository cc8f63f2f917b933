"""The reporting periods in the city's local clock: the ISO week (周考核) and the calendar month (月通报).

A period is the last whole week (Monday to Sunday) or calendar month that ends at or before the start of
a given day, in local time: ``weekly(2026-11-25)`` is 2026-11-16 to 2026-11-22, ``monthly(2026-12-01)``
is November 2026. Boundaries are local midnights, so a day is 23 or 25 hours long across a DST change.
Pure.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from analytics import RuleConfigError
from analytics.alerts import AlertConfigError
from analytics.lamp_plans import parse_zone


class PeriodKind(enum.StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"


def city_zone(timezone: str) -> dt.tzinfo:
    """A zoneinfo name or a fixed UTC offset (as ``analytics.schedule`` reads them); AlertConfigError."""
    try:
        return parse_zone(timezone)
    except RuleConfigError as exc:
        raise AlertConfigError(str(exc)) from exc


def local_midnight_ms(day: dt.date, zone: dt.tzinfo) -> int:
    return round(dt.datetime.combine(day, dt.time(0), zone).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Day:
    """One local calendar day: ``[start_ms, end_ms)``."""

    date: dt.date
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Period:
    """``[first_day, end_day)`` in local days; ``[start_ms, end_ms)`` the same span in epoch ms."""

    kind: PeriodKind
    first_day: dt.date
    end_day: dt.date  # exclusive
    timezone: str
    start_ms: int
    end_ms: int

    @staticmethod
    def of(kind: PeriodKind, end: dt.date, timezone: str) -> Period:
        """The last whole week or month ending at or before the start of ``end``."""
        if kind is PeriodKind.WEEKLY:
            end_day = end - dt.timedelta(days=end.weekday())  # the Monday on or before ``end``
            first_day = end_day - dt.timedelta(days=7)
        else:
            end_day = end.replace(day=1)
            first_day = (end_day - dt.timedelta(days=1)).replace(day=1)
        zone = city_zone(timezone)
        return Period(
            kind,
            first_day,
            end_day,
            timezone,
            local_midnight_ms(first_day, zone),
            local_midnight_ms(end_day, zone),
        )

    @property
    def last_day(self) -> dt.date:
        return self.end_day - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        """``2026-W47`` or ``2026-11``: the folder name of the report."""
        if self.kind is PeriodKind.WEEKLY:
            year, week, _ = self.first_day.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first_day:%Y-%m}"

    @property
    def title(self) -> str:
        span = f"{self.first_day.isoformat()} to {self.last_day.isoformat()}"
        if self.kind is PeriodKind.WEEKLY:
            return f"Weekly assessment {self.label} ({span})"
        return f"Monthly bulletin {self.first_day:%B %Y} ({span})"

    def days(self) -> list[Day]:
        zone = city_zone(self.timezone)
        out, day = [], self.first_day
        while day < self.end_day:
            nxt = day + dt.timedelta(days=1)
            out.append(Day(day, local_midnight_ms(day, zone), local_midnight_ms(nxt, zone)))
            day = nxt
        return out
