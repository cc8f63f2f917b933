"""Time ranges, downsampling windows, rate buckets and report periods, checked against the limits (pure).

Every InfluxDB read the API makes is bounded twice: the range is at most a configured length, and the
number of windows (points) is at most a configured count. The window is chosen from the points asked
for and aligned to the start of the range (InfluxQL ``GROUP BY time(width, offset)``), so a range of
``r`` ms cut into windows of ``w`` ms gives ``ceil(r / w)`` windows, never one more.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Final

from api import Unprocessable

SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS

# Windows people read on a chart axis; past a week, whole days.
_NICE_MS: Final = tuple(
    n * unit
    for unit, steps in (
        (SECOND_MS, (1, 2, 5, 10, 15, 30)),
        (MINUTE_MS, (1, 2, 5, 10, 15, 30)),
        (HOUR_MS, (1, 2, 3, 6, 12)),
        (DAY_MS, (1, 2, 7)),
    )
    for n in steps
)
_DURATION: Final = re.compile(r"([1-9][0-9]{0,5})(s|m|h|d|w)")
_UNIT_MS: Final = {"s": SECOND_MS, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}
_WEEK_LABEL: Final = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH_LABEL: Final = re.compile(r"([0-9]{4})-([0-9]{2})")
# InfluxDB keeps nanoseconds in an int64 (1677 to 2262); the API takes 1970 to 2200, far inside that.
EARLIEST_MS: Final = 0
LATEST_MS: Final = 7_258_118_400_000  # 2200-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[start_ms, end_ms)``, epoch milliseconds."""

    start_ms: int
    end_ms: int

    @property
    def span_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class Windows:
    """A range cut into ``count`` windows of ``width_ms``, the first starting at the range's start."""

    range: TimeRange
    width_ms: int
    count: int

    @property
    def offset_ms(self) -> int:
        """The InfluxQL ``GROUP BY time(width, offset)`` offset that puts a window edge on the start."""
        return self.range.start_ms % self.width_ms


def to_ms(when: dt.datetime) -> int:
    return round(when.timestamp() * 1000)


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _span_text(ms: float) -> str:
    if ms >= DAY_MS:
        return f"{ms / DAY_MS:g} days"
    if ms >= HOUR_MS:
        return f"{ms / HOUR_MS:g} h"
    return f"{ms / MINUTE_MS:g} min"


def time_range(
    start: dt.datetime | None,
    end: dt.datetime | None,
    *,
    now_ms: int,
    default_ms: int,
    max_ms: int,
) -> TimeRange:
    """The range asked for: ``end`` defaults to now, ``start`` to ``default_ms`` before ``end``.

    ``Unprocessable`` when it is empty or backwards, or longer than ``max_ms``.
    """
    end_ms = now_ms if end is None else to_ms(end)
    start_ms = end_ms - min(default_ms, max_ms) if start is None else to_ms(start)
    for name, ms in (("start", start_ms), ("end", end_ms)):
        if not EARLIEST_MS <= ms <= LATEST_MS:
            raise Unprocessable(f"{name} {from_ms(ms):%Y-%m-%d} is outside 1970 to 2200")
    if end_ms <= start_ms:
        raise Unprocessable(
            f"the range is empty: end {from_ms(end_ms)} is not after start {from_ms(start_ms)}"
        )
    if end_ms - start_ms > max_ms:
        raise Unprocessable(
            f"the range of {_span_text(end_ms - start_ms)} is longer than the limit of {_span_text(max_ms)}: "
            "ask for a shorter range",
            extra={"max_range_s": max_ms // SECOND_MS},
        )
    return TimeRange(start_ms, end_ms)


def check_points(points: int, max_points: int) -> int:
    if not 1 <= points <= max_points:
        raise Unprocessable(
            f"points must be 1 to {max_points}, not {points}", extra={"max_points": max_points}
        )
    return points


def history_windows(rng: TimeRange, points: int, max_points: int) -> Windows:
    """At most ``points`` windows over ``rng``: the smallest chart-friendly width that fits, at least 1 s."""
    check_points(points, max_points)
    needed = max(SECOND_MS, math.ceil(rng.span_ms / points))
    width = next((w for w in _NICE_MS if w >= needed), None)
    if width is None:  # longer than the ladder: whole days
        width = math.ceil(needed / DAY_MS) * DAY_MS
    return Windows(rng, width, math.ceil(rng.span_ms / width))


def parse_duration(text: str, what: str) -> int:
    """``15m``, ``1h``, ``1d``, ``1w`` as milliseconds; ``Unprocessable`` names ``what``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise Unprocessable(f"{what} {text!r:.30} is not a duration like 15m, 1h, 1d or 1w")
    return int(match[1]) * _UNIT_MS[match[2]]


def rate_windows(rng: TimeRange, interval: str | None, max_points: int) -> Windows:
    """The range as one window (no interval: the rate of the whole range) or cut into intervals."""
    if interval is None:
        return Windows(rng, rng.span_ms, 1)
    width = parse_duration(interval, "interval")
    count = math.ceil(rng.span_ms / width)
    if count > max_points:
        raise Unprocessable(
            f"an interval of {interval} cuts {_span_text(rng.span_ms)} into {count} windows, more than "
            f"the limit of {max_points}: ask for a longer interval or a shorter range",
            extra={"max_points": max_points},
        )
    return Windows(rng, width, count)


def window_bounds(windows: Windows) -> list[tuple[int, int]]:
    """Each window as ``[start_ms, end_ms)``; the last one ends with the range."""
    start, width = windows.range.start_ms, windows.width_ms
    return [
        (start + i * width, min(start + (i + 1) * width, windows.range.end_ms)) for i in range(windows.count)
    ]


def report_end_day(kind: str, label: str | None, today: dt.date) -> dt.date:
    """The day a report period ends before (``analytics.reports.period.Period.of``'s ``end``).

    ``label`` names the period: ``2026-W47`` (an ISO week) for weekly, ``2026-11`` for monthly; None is
    the last whole period before ``today``. Years 1971 to 2199.
    """
    if label is None:
        return today
    pattern, example = (
        (_WEEK_LABEL, "an ISO week like 2026-W47")
        if kind == "weekly"
        else (_MONTH_LABEL, "a month like 2026-11")
    )
    match = pattern.fullmatch(label)
    if match is None:
        raise Unprocessable(f"period {label!r:.20} is not {example}")
    year, number = int(match[1]), int(match[2])
    if not 1971 <= year <= 2199:
        raise Unprocessable(f"period {label!r:.20} is outside the years 1971 to 2199")
    try:
        if kind == "weekly":
            return dt.date.fromisocalendar(year, number, 1) + dt.timedelta(days=7)
        if 1 <= number <= 12:
            return dt.date(year + number // 12, number % 12 + 1, 1)
    except ValueError:
        pass
    raise Unprocessable(f"period {label!r:.20} is not {example}")
