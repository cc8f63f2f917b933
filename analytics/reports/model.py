"""The report of one period: rates against targets, on-time closure, the ranking of districts, overdue
faults and the daily trend, built from two small ports (pure).

Ports: ``RateSource.nightly(scope, start_ms, end_ms)`` gives the nightly KPI points of the scope
"district" or "city" (``kpi_night``: the nightly minimum and mean lighting rate, stamped at switch-off;
``kpi_check``: the facility intact rate at each night check); ``AlertSource.alerts_between(start_ms,
end_ms)`` gives the alerts whose deadline or opening falls in the window (the SQL ``AlertStore``).

- **Nights.** A night belongs to the local day on which it began: points are read over the period
  shifted by ``NIGHT_SHIFT_MS`` (12 h) and each is dated by its time minus 12 h. Switch-off (05:00 to
  08:00) and the checks (after switch-on, 22:00, 02:00) all land on the evening's date that way.
- **A night's figures** per scope: the lowest ``lighting_rate_min`` and the mean of ``lighting_rate_mean``
  over the points of that night (one per partition: a city split into partitions has one city point per
  partition, so its city minimum is the lowest partition's and its mean their plain mean), and the mean
  ``intact_rate`` over the night's checks. Districts never span partitions, so their figures are exact.
- **The period's figures**: the lowest nightly minimum, the mean of the nightly means (this is the
  lighting rate judged against the target), the mean and the lowest of the nightly intact rates. On-time
  closure and closure rates are ``analytics.alerts.closure`` over the period.
- **Ranking of districts** (``ReportConfig.ranking``, default: on-time closure rate, then lighting
  rate, then intact rate), each compared highest first at 0.0001 % resolution, then by name; districts
  equal on every key share a rank ("1, 2, 2, 4"). A district with no case due has had no case late: it
  ranks as 100 % on time (and as 100 % closed with no case opened). A district with no lighting or intact
  figure ranks after every district that has one: not measured is not better than measured.
- **Trend** per local day: the city's figures of that night, the cases due and opened that day, and the
  on-time closure rate so far (cases due from the start of the period to the end of that day), which the
  chart draws because one day's few cases make a jumpy line.
- **A period not over yet** (the running week or month) is reported up to ``generated_ms``: cases due so
  far, nights so far, overdue faults as of now.
- **Overdue faults**: cases past their deadline and not fixed at the end (``closure.overdue_at``),
  looking back ``overdue_lookback_days`` before the period for old ones still open.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from analytics.alerts import AlertConfigError
from analytics.alerts.closure import (
    CITY,
    GROUPS,
    ClosureConfig,
    ClosureRow,
    closure_by_window,
    closure_table,
    overdue_at,
)
from analytics.alerts.model import Alert
from analytics.reports import ReportError
from analytics.reports.period import Period, city_zone

DISTRICT = "district"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Nightly points are dated by their time minus this: a night's switch-off and its checks then all fall
#: on the day the night began (the checks run from switch-on to 02:00, switch-off is 05:00 to 08:00).
NIGHT_SHIFT_MS = 12 * HOUR_MS

ON_TIME, CLOSURE, LIGHTING, INTACT = "on_time", "closure", "lighting", "intact"
RANKING_KEYS = (ON_TIME, CLOSURE, LIGHTING, INTACT)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportConfig:
    """Targets, the city's clock, how districts rank and which closure tables the report carries."""

    # CHOICE: the seed city's clock, as analytics.schedule.ScheduleConfig.timezone.
    timezone: str = "Asia/Shanghai"
    # DOMAIN.md section 2, seed plan: lighting rate 100 % (analytics.rates.RateConfig.district_target).
    lighting_target: float = 1.0
    # DOMAIN.md section 2, seed plan: facility intact rate at least 95 % (RateConfig.intact_target).
    intact_target: float = 0.95
    # DOMAIN.md section 6: on-time closure at least 95 %, and which alerts are cases.
    closure: ClosureConfig = field(default_factory=ClosureConfig)
    # CHOICE: rank by on-time closure (the supervisors' measure of crews), then lighting, then intact.
    ranking: tuple[str, ...] = (ON_TIME, LIGHTING, INTACT)
    # CHOICE: DOMAIN.md section 6 rolls up per district, road, grid cell and crew; plus asset class.
    closure_groups: tuple[str, ...] = ("crew", "road", "grid_cell", "family")
    # CHOICE: how far before the period to look for faults still overdue at its end.
    overdue_lookback_days: int = 365

    def __post_init__(self) -> None:
        city_zone(self.timezone)
        for name in ("lighting_target", "intact_target"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise AlertConfigError(f"{name} {value!r} is not a rate in (0, 1]")
        object.__setattr__(self, "ranking", tuple(self.ranking))
        object.__setattr__(self, "closure_groups", tuple(self.closure_groups))
        if not self.ranking or len(set(self.ranking)) != len(self.ranking):
            raise AlertConfigError(f"ranking {self.ranking!r} must name each key once")
        for key in self.ranking:
            if key not in RANKING_KEYS:
                raise AlertConfigError(f"ranking key {key!r:.40} is not one of {', '.join(RANKING_KEYS)}")
        for by in self.closure_groups:
            if by not in GROUPS or by == CITY:
                raise AlertConfigError(f"closure group {by!r:.40} is not one of {', '.join(GROUPS)}")
        if self.overdue_lookback_days <= 0:
            raise AlertConfigError(f"overdue_lookback_days {self.overdue_lookback_days!r} is not positive")


@dataclass(frozen=True, slots=True)
class RateRow:
    """One nightly KPI point: a ``kpi_night`` point has the lighting figures, a ``kpi_check`` point the
    intact rate; what a point does not have is None."""

    scope_id: str
    at_ms: int
    lighting_rate_min: float | None = None
    lighting_rate_mean: float | None = None
    intact_rate: float | None = None
    partition: str = ""


class RateSource(Protocol):
    def nightly(self, scope: str, start_ms: int, end_ms: int) -> Sequence[RateRow]:
        """``kpi_night`` and ``kpi_check`` points of ``scope`` ("district" or "city") in ``[start, end)``."""
        ...


class AlertSource(Protocol):
    def alerts_between(self, start_ms: int, end_ms: int) -> list[Alert]:
        """Alerts whose deadline or opening falls in ``[start_ms, end_ms)`` (more is harmless)."""
        ...


@dataclass(frozen=True, slots=True)
class NightRates:
    """One scope's figures for one night; None where the night has none."""

    lighting_min: float | None = None
    lighting_mean: float | None = None
    intact: float | None = None


@dataclass(frozen=True, slots=True)
class ScopeRates:
    """One scope's figures over the period."""

    scope_id: str
    nights: int = 0  # nights with a lighting figure
    lighting_min: float | None = None  # the lowest nightly minimum
    lighting_mean: float | None = None  # the mean of the nightly means: judged against the target
    intact_mean: float | None = None  # the mean of the nightly intact rates: judged against the target
    intact_min: float | None = None  # the lowest nightly intact rate


@dataclass(frozen=True, slots=True)
class Standing:
    """A district's (or the city's) line of the report; ``rank`` 0 for the city."""

    name: str
    rates: ScopeRates
    closure: ClosureRow
    rank: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    metric: str
    title: str
    value: float | None
    target: float

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value >= self.target - 1e-9


@dataclass(frozen=True, slots=True)
class DayTrend:
    """The city on one local day: that night's rates, the cases due and opened that day, and the cases
    from the start of the period to the end of that day (the on-time closure rate so far, which the
    trend chart draws: one day's few cases make a jumpy line)."""

    date: dt.date
    rates: NightRates
    closure: ClosureRow
    due_to_date: int
    on_time_to_date: int

    @property
    def on_time_rate_to_date(self) -> float | None:
        return self.on_time_to_date / self.due_to_date if self.due_to_date else None


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    generated_ms: int
    as_of_ms: int  # the period's end, or ``generated_ms`` while it runs
    config: ReportConfig
    targets: tuple[Target, ...]
    city: Standing
    districts: tuple[Standing, ...]  # ranked
    closure: Mapping[str, tuple[ClosureRow, ...]]  # by crew, road, ...: ReportConfig.closure_groups
    overdue: tuple[Alert, ...]  # the longest overdue first
    trend: tuple[DayTrend, ...]

    @property
    def partial(self) -> bool:
        return self.as_of_ms < self.period.end_ms


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def nightly_rates(
    rows: Iterable[RateRow], zone: dt.tzinfo, scope_id: str | None = None
) -> dict[str, dict[dt.date, NightRates]]:
    """Per scope id and night: the figures of its points (all under ``scope_id`` when given)."""
    points: dict[tuple[str, dt.date], tuple[list[float], list[float], list[float]]] = {}
    for row in rows:
        night = dt.datetime.fromtimestamp((row.at_ms - NIGHT_SHIFT_MS) / 1000, zone).date()
        mins, means, intact = points.setdefault((scope_id or row.scope_id, night), ([], [], []))
        for values, value in (
            (mins, row.lighting_rate_min),
            (means, row.lighting_rate_mean),
            (intact, row.intact_rate),
        ):
            finite = _finite(value)
            if finite is not None:
                values.append(finite)
    out: dict[str, dict[dt.date, NightRates]] = {}
    for (scope, night), (mins, means, intact) in sorted(points.items()):
        out.setdefault(scope, {})[night] = NightRates(
            min(mins) if mins else None,
            statistics.fmean(means) if means else None,
            statistics.fmean(intact) if intact else None,
        )
    return out


def period_rates(scope_id: str, nights: Mapping[dt.date, NightRates]) -> ScopeRates:
    mins = [n.lighting_min for n in nights.values() if n.lighting_min is not None]
    means = [n.lighting_mean for n in nights.values() if n.lighting_mean is not None]
    intact = [n.intact for n in nights.values() if n.intact is not None]
    return ScopeRates(
        scope_id,
        nights=sum(1 for n in nights.values() if n.lighting_min is not None or n.lighting_mean is not None),
        lighting_min=min(mins) if mins else None,
        lighting_mean=statistics.fmean(means) if means else None,
        intact_mean=statistics.fmean(intact) if intact else None,
        intact_min=min(intact) if intact else None,
    )


def ranking_value(standing: Standing, key: str) -> float | None:
    """The figure a district is ranked by; see the module docstring for the empty cases."""
    closure, rates = standing.closure, standing.rates
    if key == ON_TIME:
        return 1.0 if closure.due == 0 else closure.on_time_rate
    if key == CLOSURE:
        return 1.0 if closure.opened == 0 else closure.closure_rate
    if key == LIGHTING:
        return rates.lighting_mean
    return rates.intact_mean


def rank_districts(standings: Iterable[Standing], keys: Sequence[str]) -> tuple[Standing, ...]:
    """Standings sorted best first with competition ranks (equal on every key: the same rank)."""

    def order(s: Standing) -> tuple[tuple[int, float], ...]:
        values = (ranking_value(s, k) for k in keys)
        return tuple((1, 0.0) if v is None else (0, -round(v, 6)) for v in values)

    ranked: list[Standing] = []
    previous: tuple[tuple[int, float], ...] | None = None
    for i, standing in enumerate(sorted(standings, key=lambda s: (order(s), s.name))):
        key = order(standing)
        rank = ranked[-1].rank if key == previous else i + 1
        ranked.append(Standing(standing.name, standing.rates, standing.closure, rank))
        previous = key
    return tuple(ranked)


def build_report(
    period: Period, rates: RateSource, alerts: AlertSource, generated_ms: int, config: ReportConfig
) -> Report:
    """Read the period's nightly rates and alerts through the ports and assemble the report."""
    if generated_ms <= period.start_ms:
        raise ReportError(f"{period.label} has not begun: nothing to report yet")
    as_of = min(period.end_ms, generated_ms)
    start = period.start_ms
    zone = city_zone(period.timezone)
    closing = config.closure
    known = alerts.alerts_between(start - config.overdue_lookback_days * DAY_MS, as_of)
    # the cases the period's counts can see (the look-back is for overdue faults only)
    cases = [
        a
        for a in known
        if closing.counts(a) and (start <= a.deadline_ms < as_of or start <= a.opened_ms < as_of)
    ]
    shifted = (start + NIGHT_SHIFT_MS, as_of + NIGHT_SHIFT_MS)
    district_nights = nightly_rates(rates.nightly(DISTRICT, *shifted), zone)
    city_nights = nightly_rates(rates.nightly(CITY, *shifted), zone, scope_id=CITY).get(CITY, {})

    by_district = {row.group: row for row in closure_table(cases, start, as_of, DISTRICT, closing)}
    names = sorted((set(district_nights) | set(by_district)) - {""})
    districts = rank_districts(
        (
            Standing(d, period_rates(d, district_nights.get(d, {})), by_district.get(d, ClosureRow(d)))
            for d in names
        ),
        config.ranking,
    )
    city = Standing(
        CITY, period_rates(CITY, city_nights), closure_table(cases, start, as_of, CITY, closing)[0]
    )
    return Report(
        period=period,
        generated_ms=generated_ms,
        as_of_ms=as_of,
        config=config,
        targets=_targets(city, config),
        city=city,
        districts=districts,
        closure=MappingProxyType(
            {by: tuple(closure_table(cases, start, as_of, by, closing)) for by in config.closure_groups}
        ),
        overdue=tuple(overdue_at(known, as_of, closing)),
        trend=_trend(period, as_of, cases, city_nights, closing),
    )


def _trend(
    period: Period,
    as_of: int,
    cases: Sequence[Alert],
    nights: Mapping[dt.date, NightRates],
    closing: ClosureConfig,
) -> tuple[DayTrend, ...]:
    days = [day for day in period.days() if day.start_ms < as_of]
    daily = closure_by_window(cases, [(d.start_ms, min(d.end_ms, as_of)) for d in days], closing)
    # due and on time add up over days (on time is settled at the deadline): the rate so far is a sum
    due_so_far = itertools.accumulate(row.due for row in daily)
    on_time_so_far = itertools.accumulate(row.on_time for row in daily)
    return tuple(
        DayTrend(day.date, nights.get(day.date, NightRates()), row, due, on_time)
        for day, row, due, on_time in zip(days, daily, due_so_far, on_time_so_far, strict=True)
    )


def _targets(city: Standing, config: ReportConfig) -> tuple[Target, ...]:
    rates, closure = city.rates, city.closure
    return (
        Target(
            "lighting_rate",
            "Lighting rate (mean of nightly means)",
            rates.lighting_mean,
            config.lighting_target,
        ),
        Target("intact_rate", "Facility intact rate", rates.intact_mean, config.intact_target),
        Target(
            "on_time_closure_rate",
            "On-time closure rate",
            closure.on_time_rate,
            config.closure.on_time_target,
        ),
    )
