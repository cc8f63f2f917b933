"""The nightly KPI points from InfluxDB (adapter): ``RateSource`` over ``ingest.influx.InfluxV1``.

The analytics worker writes (``analytics.rates``, ``analytics.lineproto.kpi_lines``; tags ``scope``,
``scope_id``, ``partition``): ``kpi_night`` when a night ends (``lighting_rate_min``,
``lighting_rate_mean``, stamped at switch-off) and ``kpi_check`` at every night check (``intact_rate``
among the scope's counts). Queries bind the scope and the times as parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from analytics.alerts.closure import CITY
from analytics.reports.model import DISTRICT, RateRow
from ingest.influx import InfluxV1

KPI_NIGHT = "kpi_night"
KPI_CHECK = "kpi_check"
SCOPES = (DISTRICT, CITY)

_WHERE = 'WHERE "scope" = $scope AND time >= $lo AND time < $hi GROUP BY "scope_id", "partition"'
# Constants only: the scope and the times are bound parameters.
_NIGHT_QUERY = f'SELECT "lighting_rate_min", "lighting_rate_mean" FROM "{KPI_NIGHT}" {_WHERE}'  # noqa: S608
_CHECK_QUERY = f'SELECT "intact_rate" FROM "{KPI_CHECK}" {_WHERE}'  # noqa: S608


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _rows(series: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> list[RateRow]:
    rows = []
    for s in series:
        tags: Mapping[str, str] = s.get("tags") or {}
        columns: list[str] = s["columns"]
        for values in s.get("values") or ():
            point = dict(zip(columns, values, strict=True))
            rows.append(
                RateRow(
                    scope_id=tags.get("scope_id", ""),
                    at_ms=int(point["time"]),
                    partition=tags.get("partition", ""),
                    **{name: _number(point.get(name)) for name in fields},
                )
            )
    return rows


class InfluxRateSource:
    """``kpi_night`` and ``kpi_check`` points of one scope kind over a time window."""

    def __init__(self, influx: InfluxV1) -> None:
        self.influx = influx

    def nightly(self, scope: str, start_ms: int, end_ms: int) -> list[RateRow]:
        if scope not in SCOPES:
            raise ValueError(f"nightly rates are kept for {' and '.join(SCOPES)}, not {scope!r:.40}")
        params = {"scope": scope, "lo": start_ms * 1_000_000, "hi": end_ms * 1_000_000}
        nights = self.influx.query(_NIGHT_QUERY, params)
        checks = self.influx.query(_CHECK_QUERY, params)
        rows = _rows(nights, ("lighting_rate_min", "lighting_rate_mean")) + _rows(checks, ("intact_rate",))
        return sorted(rows, key=lambda r: (r.scope_id, r.at_ms, r.partition))
