"""The report as named tables, one per CSV file, shared by the CSV and HTML renderers (pure).

Cells are typed by their column (``Kind``): text, int, rate (a fraction, rounded to 6 decimals),
number, local time (aware datetime), local date; ``None`` is an empty cell. ``to_csv`` and ``from_csv``
are inverses: a table written and read back is the same table.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
from collections.abc import Sequence
from dataclasses import dataclass

from analytics.alerts.closure import ClosureRow
from analytics.reports import ReportError
from analytics.reports.model import CLOSURE, INTACT, LIGHTING, ON_TIME, Report, ScopeRates, Standing
from analytics.reports.period import city_zone

Cell = str | int | float | dt.datetime | dt.date | None
RATE_DECIMALS = 6


class Kind(enum.StrEnum):
    TEXT = "text"
    INT = "int"
    RATE = "rate"  # a fraction: 0.7582 is 75.82 %
    NUMBER = "number"
    TIME = "time"  # local time with its UTC offset
    DATE = "date"


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # the CSV header
    label: str  # the HTML header
    kind: Kind


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # the CSV file's stem
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, RATE_DECIMALS)


_T, _I, _R = Kind.TEXT, Kind.INT, Kind.RATE
_CASES = (
    Column("due", "due", _I),
    Column("on_time", "on time", _I),
    Column("late", "late", _I),
    Column("overdue_open", "overdue, open", _I),
    Column("opened", "opened", _I),
    Column("closed", "closed", _I),
    Column("on_time_rate", "on-time closure", _R),
    Column("closure_rate", "closure rate", _R),
)
_RATES = (
    Column("nights", "nights", _I),
    Column("lighting_min", "lighting min", _R),
    Column("lighting_mean", "lighting mean", _R),
    Column("intact_mean", "intact mean", _R),
    Column("intact_min", "intact min", _R),
)


_RANKING_WORDS = {
    ON_TIME: "on-time closure rate",
    CLOSURE: "closure rate",
    LIGHTING: "lighting rate",
    INTACT: "intact rate",
}


def _cases(row: ClosureRow) -> tuple[Cell, ...]:
    return (
        row.due,
        row.on_time,
        row.late,
        row.overdue_open,
        row.opened,
        row.closed,
        _rate(row.on_time_rate),
        _rate(row.closure_rate),
    )


def _rates(rates: ScopeRates) -> tuple[Cell, ...]:
    return (
        rates.nights,
        _rate(rates.lighting_min),
        _rate(rates.lighting_mean),
        _rate(rates.intact_mean),
        _rate(rates.intact_min),
    )


def targets_table(report: Report) -> Table:
    columns = (
        Column("metric", "metric", _T),
        Column("title", "", _T),
        Column("value", "city", _R),
        Column("target", "target", _R),
        Column("met", "met", _T),
    )
    rows = tuple(
        (t.metric, t.title, _rate(t.value), _rate(t.target), {True: "yes", False: "no", None: ""}[t.met])
        for t in report.targets
    )
    return Table("targets", "Rates against targets", columns, rows)


def districts_table(report: Report) -> Table:
    """The ranked districts, then the city (no rank) as the total line."""
    columns = (Column("rank", "rank", _I), Column("district", "district", _T), *_RATES, *_CASES)

    def line(s: Standing) -> tuple[Cell, ...]:
        return (s.rank or None, s.name, *_rates(s.rates), *_cases(s.closure))

    rows = (*(line(s) for s in report.districts), line(report.city))
    order = ", then ".join(_RANKING_WORDS[key] for key in report.config.ranking)
    title = f"Ranking of districts: by {order}"
    return Table("districts", title, columns, tuple(rows))


def trend_table(report: Report) -> Table:
    columns = (
        Column("date", "date", Kind.DATE),
        Column("lighting_min", "lighting min", _R),
        Column("lighting_mean", "lighting mean", _R),
        Column("intact", "intact", _R),
        Column("due", "due", _I),
        Column("on_time", "on time", _I),
        Column("late", "late", _I),
        Column("opened", "opened", _I),
        Column("on_time_rate", "on-time closure", _R),
        Column("on_time_rate_to_date", "on-time closure so far", _R),
    )
    rows = tuple(
        (
            d.date,
            _rate(d.rates.lighting_min),
            _rate(d.rates.lighting_mean),
            _rate(d.rates.intact),
            d.closure.due,
            d.closure.on_time,
            d.closure.late,
            d.closure.opened,
            _rate(d.closure.on_time_rate),
            _rate(d.on_time_rate_to_date),
        )
        for d in report.trend
    )
    title = "The city day by day: each night's rates, the cases due and opened that day"
    return Table("trend", title, columns, rows)


def overdue_table(report: Report) -> Table:
    zone = city_zone(report.period.timezone)

    def local(ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, zone)

    columns = (
        Column("alert_id", "alert", _T),
        Column("rule", "rule", _T),
        Column("family", "asset class", _T),
        Column("severity", "severity", _T),
        Column("subject", "subject", _T),
        Column("district", "district", _T),
        Column("road", "road", _T),
        Column("grid_cell", "grid cell", _T),
        Column("crew", "crew", _T),
        Column("state", "state", _T),
        Column("opened", "opened", Kind.TIME),
        Column("deadline", "deadline", Kind.TIME),
        Column("overdue_hours", "overdue (h)", Kind.NUMBER),
        Column("escalation", "escalation", _I),
        Column("explanation", "what", _T),
    )
    rows = tuple(
        (
            a.id,
            a.rule,
            a.family,
            a.severity.value,
            a.subject,
            a.district,
            a.road,
            a.grid_cell,
            a.crew,
            a.state.value,
            local(a.opened_ms),
            local(a.deadline_ms),
            round((report.as_of_ms - a.deadline_ms) / 3_600_000, 1),
            a.escalation,
            a.explanation,
        )
        for a in report.overdue
    )
    return Table("overdue", "Overdue faults", columns, rows)


_GROUP_LABELS = {"grid_cell": "grid cell", "family": "asset class"}


def closure_tables(report: Report) -> list[Table]:
    tables = []
    for by, rows in report.closure.items():
        label = _GROUP_LABELS.get(by, by)
        columns = (Column(by, label, _T), *_CASES)
        cells = tuple((r.group, *_cases(r)) for r in rows)
        tables.append(Table(f"closure_{by}", f"Cases by {label}", columns, cells))
    return tables


def report_tables(report: Report) -> list[Table]:
    return [
        targets_table(report),
        districts_table(report),
        trend_table(report),
        overdue_table(report),
        *closure_tables(report),
    ]


# -- CSV ---------------------------------------------------------------------------------------------


def _text(cell: Cell, kind: Kind) -> str:
    if cell is None:
        return ""
    if kind is Kind.TIME and isinstance(cell, dt.datetime):
        ms = cell.microsecond // 1000
        return cell.isoformat(timespec="milliseconds" if ms else "seconds")
    if isinstance(cell, dt.date):
        return cell.isoformat()
    if isinstance(cell, float):
        return repr(cell)
    return str(cell)


def _cell(text: str, kind: Kind) -> Cell:
    if kind is Kind.TEXT:
        return text
    if not text:
        return None
    if kind is Kind.INT:
        return int(text)
    if kind in (Kind.RATE, Kind.NUMBER):
        return float(text)
    if kind is Kind.TIME:
        return dt.datetime.fromisoformat(text)
    return dt.date.fromisoformat(text)


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        writer.writerow([_text(cell, c.kind) for cell, c in zip(row, table.columns, strict=True)])
    return out.getvalue()


def from_csv(text: str, columns: Sequence[Column]) -> tuple[tuple[Cell, ...], ...]:
    """The rows of a CSV written by ``to_csv`` with these columns; ReportError when the header differs."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != [c.name for c in columns]:
        raise ReportError(f"CSV header {header!r:.200} is not {[c.name for c in columns]!r:.200}")
    try:
        return tuple(
            tuple(_cell(value, c.kind) for value, c in zip(row, columns, strict=True)) for row in reader
        )
    except ValueError as exc:
        raise ReportError(f"CSV cell does not parse: {exc}") from exc
