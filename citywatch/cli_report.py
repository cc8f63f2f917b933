"""`citywatch report weekly|monthly`: the weekly assessment (周考核) and the monthly bulletin (月通报).

Reads the nightly KPI series from InfluxDB and the alerts from the alert store, writes report.html and
one CSV per table into a folder and prints their paths. InfluxDB: ``CITYWATCH_INFLUX_URL``; unset, the
local one under ``var_dir`` that ``citywatch run`` keeps (the running one if it answers, else started
for the report). Alerts: ``CITYWATCH_ALERTS_DB_URL`` (default ``sqlite:///<var_dir>/alerts.db``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from analytics.alerts import AlertConfigError, AlertError
from analytics.reports import ReportError
from analytics.reports.period import Period, PeriodKind, city_zone
from analytics.reports.svg import percent
from citywatch.settings import CommonSettings
from ingest import InfluxError

console = Console(highlight=False)


def _running_local_influx(data_dir: Path) -> str | None:
    """The URL of the InfluxDB ``citywatch run`` started on ``data_dir``, if it answers now."""
    from citywatch.localstack import influx_ping

    try:
        conf = tomllib.loads((data_dir / "influxdb.conf").read_text(encoding="utf-8"))
        url = f"http://{conf['http']['bind-address']}"
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return url if influx_ping(url) else None


def _influx_url(common: CommonSettings, stack: ExitStack) -> str:
    if common.influx_url:
        return common.influx_url
    from citywatch.localstack import LocalInfluxDB

    data_dir = common.var_dir / "influxdb"
    running = _running_local_influx(data_dir)
    if running is not None:
        return running
    if not data_dir.is_dir():
        console.print(
            Text.assemble(
                ("error: ", "red"),
                "no InfluxDB: set CITYWATCH_INFLUX_URL, or run `citywatch run` first "
                f"(nothing in {data_dir})",
            )
        )
        raise typer.Exit(2)
    console.print(f"starting the local InfluxDB in {data_dir} for the report")
    return stack.enter_context(LocalInfluxDB(data_dir, common.local_influx_port)).url


def _end_day(end: str | None, zone: dt.tzinfo) -> dt.date:
    if end is None:
        return dt.datetime.now(zone).date()
    try:
        return dt.date.fromisoformat(end)
    except ValueError as exc:
        raise typer.BadParameter(f"{end!r} is not a date YYYY-MM-DD", param_hint="--end") from exc


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except (AlertConfigError, ReportError) as exc:
        console.print(Text.assemble(("error: ", "red"), str(exc)))
        raise typer.Exit(2) from exc
    except (AlertError, InfluxError) as exc:
        console.print(Text.assemble(("error: ", "red"), str(exc)))
        raise typer.Exit(1) from exc


def report(
    kind: PeriodKind = typer.Argument(
        ..., help="weekly: the ISO week (周考核); monthly: the calendar month (月通报)."
    ),
    end: str | None = typer.Option(
        None,
        help="YYYY-MM-DD: report the last whole week or month that ends by the start of this day "
        "(default today, in the city's clock). The first day of next month reports the running month.",
    ),
    out: Path | None = typer.Option(
        None, help="Folder for report.html and the CSV files (default <var_dir>/reports/<period>/)."
    ),
) -> None:
    """Write the weekly assessment or the monthly bulletin as HTML and CSV."""
    from analytics.alerts.settings import AlertSettings
    from analytics.alerts.store import AlertStore
    from analytics.reports.files import write_report
    from analytics.reports.influx import InfluxRateSource
    from analytics.reports.model import build_report
    from analytics.reports.settings import ReportSettings
    from analytics.settings import AnalyticsSettings
    from citywatch.services import influx_target
    from ingest.influx import InfluxV1

    common = CommonSettings()
    analytics = AnalyticsSettings()
    with _failures():
        config = ReportSettings().config(analytics.rates, analytics.schedule)
        period = Period.of(kind, _end_day(end, city_zone(config.timezone)), config.timezone)
        alerts_settings = AlertSettings()
        if alerts_settings.db_url is None:
            common.var_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
        with ExitStack() as stack:
            influx = stack.enter_context(InfluxV1(influx_target(common, _influx_url(common, stack))))
            store = stack.enter_context(AlertStore(alerts_settings.sqlalchemy_url(common.var_dir)))
            built = build_report(period, InfluxRateSource(influx), store, round(time.time() * 1000), config)
        paths = write_report(built, out or common.var_dir / "reports" / period.label)
    console.print(Text(built.period.title, style="bold"))
    if built.partial:
        console.print("the period is not over: figures up to now")
    for target in built.targets:
        mark = {True: "met", False: "BELOW TARGET", None: "no data"}[target.met]
        console.print(f"  {target.title}: {percent(target.value)} (target {percent(target.target)}) {mark}")
    console.print(f"  overdue faults: {len(built.overdue)}")
    for path in paths:
        typer.echo(str(path))  # one per line, never wrapped: scripts read them
