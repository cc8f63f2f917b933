"""Rates from counts (pure): a rate over a scope, a period or many partitions is a sum of numerators over a
sum of denominators, never an average of rates (docs/analytics.md, "Scaling out").

The analytics workers write the counts of every scope at every evaluation (``kpi``: ``lit``, ``due``,
``unknown``, ``items``, ``intact``, ``registered``, ``installed``; one series per partition). Summed over
the points of a window they weigh each moment by what was due then: the lighting rate of a week is
lamp-hours lit over lamp-hours due. The on-time closure rate counts cases (``analytics.alerts.closure``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from analytics.alerts.closure import CITY, GROUPS, ClosureConfig, closure_by_window
from analytics.alerts.model import Alert
from analytics.topology import DISTRICT, GRID, ROAD, ROAD_CLASS
from api import Unprocessable


class Metric(enum.StrEnum):
    LIGHTING = "lighting"
    INTACT = "intact"
    INSTALLATION = "installation"
    ON_TIME_CLOSURE = "on_time_closure"


class Scope(enum.StrEnum):
    CITY = "city"
    DISTRICT = "district"
    ROAD = "road"
    ROAD_CLASS = "road_class"
    GRID = "grid"
    CREW = "crew"  # alerts only: the on-time closure of a crew


@dataclass(frozen=True, slots=True)
class KpiFormula:
    """Which summed ``kpi`` fields make a metric: rate = sum(numerator) / (sum(denominator) - sum(minus))."""

    numerator: str
    denominator: str
    minus: str = ""  # counted in the denominator but not judged (unknown lamps)


KPI_MEASUREMENT: Final = "kpi"
KPI_FORMULAS: Final[Mapping[Metric, KpiFormula]] = MappingProxyType(
    {
        # observed: lamps with an offline controller are neither lit nor due (DOMAIN.md section 2)
        Metric.LIGHTING: KpiFormula("lit", "due", minus="unknown"),
        Metric.INTACT: KpiFormula("intact", "items"),
        Metric.INSTALLATION: KpiFormula("installed", "registered"),
    }
)
# The tag value the analytics workers write for each scope (analytics.topology names).
KPI_SCOPES: Final[Mapping[Scope, str]] = MappingProxyType(
    {
        Scope.CITY: CITY,
        Scope.DISTRICT: DISTRICT,
        Scope.ROAD: ROAD,
        Scope.ROAD_CLASS: ROAD_CLASS,
        Scope.GRID: GRID,
    }
)
# The alert field each scope groups by for the on-time closure rate (analytics.alerts.closure.GROUPS).
CLOSURE_GROUPS: Final[Mapping[Scope, str]] = MappingProxyType(
    {
        Scope.CITY: CITY,
        Scope.DISTRICT: "district",
        Scope.ROAD: "road",
        Scope.GRID: "grid_cell",
        Scope.CREW: "crew",
    }
)


@dataclass(frozen=True, slots=True)
class RatePoint:
    start_ms: int
    end_ms: int
    numerator: float
    denominator: float
    rate: float | None  # None where nothing was counted
    lower_bound: float | None = None  # lighting: unknown lamps counted dark


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 and math.isfinite(numerator) else None


def check_scope(metric: Metric, scope: Scope) -> None:
    if metric is Metric.ON_TIME_CLOSURE:
        if scope not in CLOSURE_GROUPS:
            raise Unprocessable(
                f"the on-time closure rate is kept per {', '.join(CLOSURE_GROUPS)}, not per {scope.value}"
            )
    elif scope not in KPI_SCOPES:
        raise Unprocessable(
            f"the {metric.value} rate is kept per {', '.join(KPI_SCOPES)}, not per {scope.value}"
        )


def kpi_point(
    formula: KpiFormula, sums: Mapping[str, Any], start_ms: int, end_ms: int, *, lower: bool
) -> RatePoint:
    """One window's rate from its summed fields (a missing or null sum counts 0)."""

    def total(name: str) -> float:
        value = sums.get(name) if name else None
        return float(value) if value is not None else 0.0

    numerator = total(formula.numerator)
    counted = total(formula.denominator)
    denominator = counted - total(formula.minus)
    return RatePoint(
        start_ms,
        end_ms,
        numerator,
        denominator,
        ratio(numerator, denominator),
        ratio(numerator, counted) if lower else None,
    )


def kpi_series(
    formula: KpiFormula,
    series: Sequence[Mapping[str, Any]],
    bounds: Sequence[tuple[int, int]],
    *,
    lower: bool,
) -> dict[str, list[RatePoint]]:
    """InfluxDB series of ``SELECT sum(f) AS f ... GROUP BY time(w, offset), "scope_id"`` as rate points
    per scope id, one per window that had points (windows matched by their start time)."""
    index = {start: (start, end) for start, end in bounds}
    out: dict[str, list[RatePoint]] = {}
    for s in series:
        scope_id = (s.get("tags") or {}).get("scope_id", "")
        columns: list[str] = s["columns"]
        points = out.setdefault(scope_id, [])
        for row in s.get("values") or ():
            values = dict(zip(columns, row, strict=True))
            window = index.get(int(values["time"]))
            if window is None or all(values.get(c) is None for c in columns if c != "time"):
                continue
            points.append(kpi_point(formula, values, *window, lower=lower))
    return {k: v for k, v in sorted(out.items()) if v}


def closure_series(
    alerts: Iterable[Alert],
    bounds: Sequence[tuple[int, int]],
    scope: Scope,
    scope_id: str | None,
    config: ClosureConfig,
) -> dict[str, list[RatePoint]]:
    """On-time closure per window (cases closed by their deadline / cases due) per group of the scope."""
    key = GROUPS[CLOSURE_GROUPS[scope]]
    grouped: dict[str, list[Alert]] = {}
    for alert in alerts:
        group = key(alert)
        if scope_id is None or group == scope_id:
            grouped.setdefault(group, []).append(alert)
    if scope_id is not None:
        grouped.setdefault(scope_id, [])
    out: dict[str, list[RatePoint]] = {}
    for group in sorted(grouped):
        rows = closure_by_window(grouped[group], bounds, config)
        out[group] = [
            RatePoint(start, end, float(row.on_time), float(row.due), row.on_time_rate)
            for (start, end), row in zip(bounds, rows, strict=True)
        ]
    return out


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """The latest counts of one scope, summed over partitions: what the live feed reports."""

    scope: str
    scope_id: str
    at_ms: int
    lighting_rate: float | None
    intact_rate: float | None


def latest_snapshots(series: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], RateSnapshot]:
    """``SELECT last(lit) AS lit, due, unknown, items, intact ... GROUP BY scope, scope_id, partition``
    summed over the partitions of each scope id."""
    sums: dict[tuple[str, str], dict[str, float]] = {}
    for s in series:
        tags = s.get("tags") or {}
        key = (tags.get("scope", ""), tags.get("scope_id", ""))
        columns: list[str] = s["columns"]
        for row in s.get("values") or ():
            values = dict(zip(columns, row, strict=True))
            acc = sums.setdefault(key, {"at": 0.0})
            acc["at"] = max(acc["at"], float(values.get("time") or 0))
            for name in ("lit", "due", "unknown", "items", "intact"):
                value = values.get(name)
                acc[name] = acc.get(name, 0.0) + (float(value) if value is not None else 0.0)
    return {
        key: RateSnapshot(
            key[0],
            key[1],
            int(acc["at"]),
            ratio(acc.get("lit", 0.0), acc.get("due", 0.0) - acc.get("unknown", 0.0)),
            ratio(acc.get("intact", 0.0), acc.get("items", 0.0)),
        )
        for key, acc in sums.items()
    }


def changed(before: RateSnapshot | None, now: RateSnapshot, epsilon: float = 1e-6) -> bool:
    """Whether a rate moved (or appeared, or vanished) since the snapshot last reported."""
    if before is None:
        return True
    for a, b in ((before.lighting_rate, now.lighting_rate), (before.intact_rate, now.intact_rate)):
        if (a is None) != (b is None) or (a is not None and b is not None and abs(a - b) > epsilon):
            return True
    return False
