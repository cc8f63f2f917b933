"""Rates per scope and period: lighting, intact and installation from the KPI counts, on-time closure
from the alert store; always sums of numerators over sums of denominators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from api.rate_math import (
    KPI_FORMULAS,
    KPI_SCOPES,
    Metric,
    RatePoint,
    Scope,
    check_scope,
    closure_series,
    kpi_series,
)
from api.roles import V1
from api.routes import GUARDED
from api.schemas import RatePointOut, RateSeriesOut, RatesOut
from api.security import Caller, Svc
from api.windows import DAY_MS, SECOND_MS, from_ms, rate_windows, time_range, window_bounds

router = APIRouter(prefix=V1, tags=["rates"], responses=GUARDED)


def _point(p: RatePoint) -> RatePointOut:
    return RatePointOut(
        start=from_ms(p.start_ms),
        end=from_ms(p.end_ms),
        rate=p.rate,
        numerator=p.numerator,
        denominator=p.denominator,
        lower_bound=p.lower_bound,
    )


@router.get("/rates")
def rates(
    _caller: Caller,
    svc: Svc,
    metric: Metric,
    scope: Scope = Scope.CITY,
    scope_id: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="one road, district, ...; omit for every one"),
    ] = None,
    start: Annotated[
        AwareDatetime | None, Query(description="default: end minus rates_default_range_days")
    ] = None,
    end: Annotated[AwareDatetime | None, Query(description="default: now")] = None,
    interval: Annotated[
        str | None,
        Query(max_length=10, description="window, e.g. 1h, 1d, 1w; omit for one rate over the range"),
    ] = None,
) -> RatesOut:
    """The rate of a scope (or of every scope id of a kind) over a range, or per interval.

    lighting = lit / (due - unknown) (``lower_bound`` counts unknown lamps dark), intact = intact / items,
    installation = installed / registered, summed over the KPI points of each window and over partitions;
    on_time_closure = cases fixed by their deadline / cases due in the window (``analytics.alerts.closure``).
    """
    check_scope(metric, scope)
    s = svc.settings
    rng = time_range(
        start,
        end,
        now_ms=svc.clock_ms(),
        default_ms=round(s.rates_default_range_days * DAY_MS),
        max_ms=round(s.rates_max_range_days * DAY_MS),
    )
    windows = rate_windows(rng, interval, s.rates_max_points)
    bounds = window_bounds(windows)
    if scope is Scope.CITY and scope_id is None:
        scope_id = "city"
    if metric is Metric.ON_TIME_CLOSURE:
        alerts = svc.alerts.alerts_between(rng.start_ms, rng.end_ms)
        series = closure_series(alerts, bounds, scope, scope_id, svc.report_config.closure)
        series = dict(list(series.items())[: s.rates_max_series])
    else:
        formula = KPI_FORMULAS[metric]
        fields = [f for f in (formula.numerator, formula.denominator, formula.minus) if f]
        rows = svc.reader.kpi_sums(fields, KPI_SCOPES[scope], scope_id, windows, s.rates_max_series)
        series = kpi_series(formula, rows, bounds, lower=metric is Metric.LIGHTING)
        if scope_id is not None:
            series.setdefault(scope_id, [])
    return RatesOut(
        metric=metric,
        scope=scope,
        start=from_ms(rng.start_ms),
        end=from_ms(rng.end_ms),
        interval_s=windows.width_ms / SECOND_MS,
        series=[RateSeriesOut(scope_id=k, points=[_point(p) for p in v]) for k, v in series.items()],
    )
