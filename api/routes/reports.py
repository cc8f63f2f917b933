"""The weekly assessment and the monthly bulletin, as the HTML document or one of its CSV tables."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from analytics.reports.html import render_html
from analytics.reports.influx import InfluxRateSource
from analytics.reports.model import build_report
from analytics.reports.period import Period, PeriodKind, city_zone
from analytics.reports.tables import report_tables, to_csv
from api import NotFound
from api.roles import V1
from api.routes import GUARDED, problems
from api.security import Caller, Svc
from api.windows import report_end_day

router = APIRouter(prefix=V1, tags=["reports"], responses={**GUARDED, **problems(404)})


@router.get(
    "/reports/{kind}",
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "report.html, or one table as CSV (UTF-8 with a byte-order mark)",
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def report(
    kind: PeriodKind,
    _caller: Caller,
    svc: Svc,
    period: Annotated[
        str | None,
        Query(
            max_length=10, description="2026-W47 (weekly) or 2026-11 (monthly); default the last whole one"
        ),
    ] = None,
    format: Annotated[str, Query(pattern="^(html|csv)$")] = "html",
    table: Annotated[
        str | None, Query(max_length=40, description="csv: which table (default districts)")
    ] = None,
) -> Response:
    """Build the report of a period now, from the KPI series and the alert store (the running period:
    figures up to now)."""
    config = svc.report_config
    today = dt.datetime.fromtimestamp(svc.clock_ms() / 1000, city_zone(config.timezone)).date()
    chosen = Period.of(kind, report_end_day(kind.value, period, today), config.timezone)
    built = build_report(chosen, InfluxRateSource(svc.influx), svc.alerts, svc.clock_ms(), config)
    if format == "html":
        return HTMLResponse(render_html(built))
    tables = {t.name: t for t in report_tables(built)}
    name = table or "districts"
    if name not in tables:
        raise NotFound(f"no table {name!r:.40} in the report; tables: {', '.join(tables)}")
    headers = {"Content-Disposition": f'attachment; filename="{chosen.label}-{name}.csv"'}
    return Response(
        ("\ufeff" + to_csv(tables[name])).encode(), media_type="text/csv; charset=utf-8", headers=headers
    )
