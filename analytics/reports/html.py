"""The report as one self-contained HTML file: inline CSS and SVG charts, no JavaScript, no external
resources, so it can be mailed, archived and opened offline (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from html import escape

from analytics.reports.model import Report
from analytics.reports.period import PeriodKind, city_zone
from analytics.reports.svg import Series, bar_chart, line_chart, percent
from analytics.reports.tables import (
    Cell,
    Kind,
    Table,
    closure_tables,
    districts_table,
    overdue_table,
    trend_table,
)

LIGHTING_COLOR, INTACT_COLOR, ON_TIME_COLOR = "#1f77b4", "#2ca02c", "#d62728"

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f2f2f2; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.below { background: #fde2e1; } td.met { background: #e3f4e1; }
tr.total td { font-weight: bold; border-top: 2px solid #888; }
.chart { overflow-x: auto; } dl dt { font-weight: bold; margin-top: 0.4em; }
"""

_DEFINITIONS = (
    (
        "Lighting rate",
        "lit lamp heads / lamp heads due at each night check, controllers offline left out; "
        "per night the minimum and the mean over the checks; over the period the lowest nightly minimum and "
        "the mean of the nightly means (judged against the target).",
    ),
    (
        "Facility intact rate",
        "intact items / items (lamp heads, cabinets, circuits) at the night checks, "
        "averaged per night, then over the nights.",
    ),
    (
        "On-time closure rate (按期结案率)",
        "cases fixed by their deadline / cases due in the period. A case "
        "counts as closed when it is resolved (the fix); closing confirms it. A deadline exactly at the end "
        "of the period belongs to the next one.",
    ),
    ("Closure rate", "of the cases opened in the period, the share fixed by its end."),
    ("Overdue faults", "cases past their deadline and not fixed at the end of the period."),
)


def _local(ms: int, zone: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M")


def _cell(cell: Cell, kind: Kind) -> str:
    if cell is None:
        return "—"
    if kind is Kind.RATE and isinstance(cell, float):
        return percent(cell)
    if kind is Kind.NUMBER and isinstance(cell, float):
        return f"{cell:,.1f}"
    if kind is Kind.TIME and isinstance(cell, dt.datetime):
        return cell.strftime("%Y-%m-%d %H:%M")
    if isinstance(cell, dt.date):
        return cell.isoformat()
    if isinstance(cell, int):
        return f"{cell:,}"
    return escape(str(cell))


def table_html(table: Table, targets: Mapping[str, float] | None = None, total_last: bool = False) -> str:
    """An HTML table; rate cells of a column in ``targets`` are marked below or at their target."""
    targets = targets or {}
    head = "".join(f"<th>{escape(c.label)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for cell, column in zip(row, table.columns, strict=True):
            classes = [] if column.kind in (Kind.TEXT, Kind.DATE, Kind.TIME) else ["n"]
            target = targets.get(column.name)
            if target is not None and isinstance(cell, float):
                classes.append("met" if cell >= target - 1e-9 else "below")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{_cell(cell, column.kind)}</td>")
        total = ' class="total"' if total_last and i == len(table.rows) - 1 else ""
        body.append(f"<tr{total}>{''.join(cells)}</tr>")
    return (
        f'<table id="table-{escape(table.name)}"><caption>{escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _rate_series(report: Report) -> tuple[list[str], list[Series]]:
    config = report.config
    names = [s.name for s in report.districts]
    return names, [
        Series(
            "lighting",
            tuple(s.rates.lighting_mean for s in report.districts),
            LIGHTING_COLOR,
            config.lighting_target,
        ),
        Series(
            "intact", tuple(s.rates.intact_mean for s in report.districts), INTACT_COLOR, config.intact_target
        ),
        Series(
            "on-time closure",
            tuple(s.closure.on_time_rate for s in report.districts),
            ON_TIME_COLOR,
            config.closure.on_time_target,
        ),
    ]


def _trend_series(report: Report) -> tuple[list[str], list[Series]]:
    config = report.config
    labels = [f"{d.date:%m-%d}" for d in report.trend]
    return labels, [
        Series(
            "lighting",
            tuple(d.rates.lighting_mean for d in report.trend),
            LIGHTING_COLOR,
            config.lighting_target,
        ),
        Series("intact", tuple(d.rates.intact for d in report.trend), INTACT_COLOR, config.intact_target),
        Series(
            "on-time closure so far",
            tuple(d.on_time_rate_to_date for d in report.trend),
            ON_TIME_COLOR,
            config.closure.on_time_target,
        ),
    ]


def render_html(report: Report) -> str:
    period, config = report.period, report.config
    zone = city_zone(period.timezone)
    kind = "周考核" if period.kind is PeriodKind.WEEKLY else "月通报"
    title = f"{period.title} · {kind}"
    meta = f"City clock {escape(period.timezone)} · generated {_local(report.generated_ms, zone)}"
    if report.partial:
        meta += f" · <strong>the period is not over: figures up to {_local(report.as_of_ms, zone)}</strong>"
    targets = {
        "lighting_mean": config.lighting_target,
        "lighting": config.lighting_target,
        "intact_mean": config.intact_target,
        "intact": config.intact_target,
        "on_time_rate": config.closure.on_time_target,
        "on_time_rate_to_date": config.closure.on_time_target,
    }
    categories, bars = _rate_series(report)
    labels, lines = _trend_series(report)
    overdue = overdue_table(report)
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f'<h1>{escape(title)}</h1><p class="meta">{meta}</p>',
        '<section id="targets"><h2>Rates against targets</h2>',
        _targets_html(report),
        "</section>",
        '<section id="districts"><h2>Rates by district</h2><div class="chart">',
        bar_chart("Rates by district against the targets", categories, bars),
        "</div>",
        table_html(districts_table(report), targets, total_last=True),
        "</section>",
        '<section id="trend"><h2>Trend over the period</h2><div class="chart">',
        line_chart("The city day by day", labels, lines),
        "</div>",
        table_html(trend_table(report), targets),
        "</section>",
        f'<section id="overdue"><h2>Overdue faults ({len(overdue.rows)})</h2>',
        table_html(overdue) if overdue.rows else "<p>None: no case is past its deadline unfixed.</p>",
        "</section>",
        '<section id="closure"><h2>Cases by crew, road, grid cell and asset class</h2>',
        *(table_html(t, targets) for t in closure_tables(report)),
        "</section>",
        '<section id="definitions"><h2>How the figures are counted</h2><dl>',
        *(f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in _DEFINITIONS),
        "</dl></section></body></html>\n",
    ]
    return "".join(parts)


def _targets_html(report: Report) -> str:
    """The headline: each city rate against its target, marked met or below."""
    rows = []
    for target in report.targets:
        met = target.met
        mark = {True: ("met", "met"), False: ("below", "below target"), None: ("", "no data")}[met]
        rows.append(
            f'<tr><td>{escape(target.title)}</td><td class="n {mark[0]}">{percent(target.value)}</td>'
            f'<td class="n">{percent(target.target)}</td><td>{mark[1]}</td></tr>'
        )
    return (
        '<table id="table-targets"><caption>The city</caption><thead><tr><th>rate</th><th>city</th>'
        f"<th>target</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
