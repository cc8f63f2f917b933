"""`citywatch dashboards build|check|push`: the Grafana dashboards as code (docs/dashboards.md).

``build`` writes the JSON the code builds into ``dashboards/json/`` (what Grafana's file provisioning
reads); ``check`` says whether that JSON is up to date and sound, and with ``--influx-url`` which panels
would be empty on that InfluxDB now; ``push`` sends the dashboards, and with ``--influx-url`` their data
source, to a running Grafana through its HTTP API (settings ``CITYWATCH_GRAFANA_URL``, ``_TOKEN``,
``_FOLDER``, ``_FOLDER_UID``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from citywatch.settings import CommonSettings

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)

#: Exit code when the JSON is stale or a dashboard has a structural problem.
UNSOUND = 1
#: Exit code of a push Grafana refused, or a push without a Grafana to push to.
REFUSED = 2


@app.command("build")
def build(
    out: Path | None = typer.Option(None, help="Folder to write into (default: dashboards/json)."),
) -> None:
    """Write every dashboard's JSON model, as the code builds it (what file provisioning reads)."""
    from dashboards.build import JSON_DIR, write_all

    for path in write_all(out or JSON_DIR):
        console.print(str(path))


@app.command("check")
def check(
    influx_url: str | None = typer.Option(None, help="Also run every panel's query on this InfluxDB."),
    since: str = typer.Option("24h", help="With --influx-url: the time range back from now (30m, 24h, 7d)."),
) -> None:
    """Check the committed JSON is up to date and sound; with --influx-url, list the empty panels.

    Exit code 1 when the JSON differs from the code or a dashboard has a structural problem. With
    --influx-url every panel's query runs over the last --since, its variables set to All.
    """
    from dashboards.build import build_all, stale
    from dashboards.structure import problems

    models = build_all()
    found = [
        f"dashboards/json/{name} differs from the code: run citywatch dashboards build" for name in stale()
    ]
    for model in models.values():
        found += problems(model)
    for line in found:
        console.print(f"[red]{line}[/red]")
    if influx_url:
        _empty_panels(models, influx_url, since)
    if found:
        raise typer.Exit(UNSOUND)
    console.print(f"{len(models)} dashboards up to date and sound")


def _empty_panels(models: dict[str, dict[str, Any]], influx_url: str, since: str) -> None:
    from dashboards.structure import interpolate, queries, variable_names
    from ingest import InfluxError
    from ingest.influx import InfluxTarget, InfluxV1

    common = CommonSettings()
    target = InfluxTarget(
        influx_url, common.influx_db, common.influx_user, common.influx_password, common.influx_token
    )
    end_ms = time.time_ns() // 1_000_000
    start_ms = end_ms - _duration_ms(since)
    table = Table(title=f"panels on {influx_url} over the last {since}")
    for column in ("dashboard", "panel", "query", "rows"):
        table.add_column(column)
    with InfluxV1(target) as influx:
        for uid, model in models.items():
            values: dict[str, list[str]] = {}
            by_name = {q.where: q for q in queries(model) if q.kind == "variable"}
            for name in variable_names(model):
                text = interpolate(by_name[name].query, values, start_ms, end_ms)
                try:
                    rows = [r[1] for s in influx.query(text, method="POST") for r in s["values"]]
                except InfluxError:
                    rows = []
                values[name] = [str(v) for v in dict.fromkeys(rows) if v is not None] or ["-"]
            for q in (q for q in queries(model) if q.kind == "panel"):
                try:
                    series = influx.query(interpolate(q.query, values, start_ms, end_ms), method="POST")
                    count = str(sum(len(s["values"]) for s in series))
                except InfluxError as exc:
                    count = f"error: {exc}"
                if count == "0" or count.startswith("error"):
                    table.add_row(uid, q.where, q.ref_id, count)
    console.print(table if table.row_count else "every panel has data")


def _duration_ms(text: str) -> int:
    units = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    try:
        return int(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError) as exc:
        raise typer.BadParameter(
            f"{text!r} is not a duration like 30m, 24h, 7d", param_hint="--since"
        ) from exc


@app.command("push")
def push(
    grafana_url: str | None = typer.Option(None, help="Grafana's URL [CITYWATCH_GRAFANA_URL]."),
    token: str | None = typer.Option(None, help="Service account token [CITYWATCH_GRAFANA_TOKEN]."),
    folder: str | None = typer.Option(None, help="Folder title [CITYWATCH_GRAFANA_FOLDER, CityWatch]."),
    folder_uid: str | None = typer.Option(None, help="Folder uid [CITYWATCH_GRAFANA_FOLDER_UID, citywatch]."),
    influx_url: str | None = typer.Option(
        None, help="InfluxDB as Grafana reaches it: also create or update the data source citywatch-influx."
    ),
) -> None:
    """Push every dashboard into a folder of a running Grafana; a second push changes nothing.

    Exit code 2 when Grafana refuses (its reason is printed) or no Grafana URL and token are given.
    """
    from dashboards import PushError
    from dashboards.build import build_all
    from dashboards.push import connect, influx_datasource
    from dashboards.push import push as push_all
    from dashboards.settings import GrafanaSettings

    settings = GrafanaSettings()
    url = grafana_url or settings.url
    secret = token or (settings.token.get_secret_value() if settings.token else None)
    if not url or not secret:
        console.print("[red]give --grafana-url and --token (or CITYWATCH_GRAFANA_URL and _TOKEN)[/red]")
        raise typer.Exit(REFUSED)
    datasource = None
    if influx_url:
        common = CommonSettings()
        datasource = influx_datasource(
            influx_url,
            common.influx_db,
            token=common.influx_token,
            user=common.influx_user,
            password=common.influx_password,
        )
    api = connect(url, secret, settings.timeout_s)
    try:
        report = push_all(
            api,
            build_all().values(),
            folder_uid or settings.folder_uid,
            folder or settings.folder,
            datasource,
        )
    except PushError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(REFUSED) from exc
    where = f"{folder or settings.folder} ({folder_uid or settings.folder_uid})"
    console.print(f"folder {where}: {'created' if report.folder_created else 'already there'}")
    console.print(f"data source {report.datasource}")
    console.print(f"dashboards written: {', '.join(report.written) or 'none'}")
    console.print(f"dashboards unchanged: {', '.join(report.unchanged) or 'none'}")
