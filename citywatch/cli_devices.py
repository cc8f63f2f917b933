"""`citywatch devices` sub-commands: the asset registry (import, export, list, stats, decommission)."""

from __future__ import annotations

import itertools
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from citywatch.broker_accounts import BrokerAccountsError
from citywatch.decommission import decommission
from citywatch.localstack import LocalServiceError
from citywatch.settings import CommonSettings
from devices import RegistryError
from devices.assets import KINDS
from devices.registry import Registry
from devices.registry_files import ImportSummary, export_file, import_file

app = typer.Typer(no_args_is_help=True)

#: How many rejections the import prints one by one.
SHOWN_REJECTIONS = 20


def _open_registry(settings: CommonSettings) -> Registry:
    if settings.registry_url is None:
        settings.var_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    return Registry(settings.registry_sqlalchemy_url())


def _fail(console: Console, message: str) -> typer.Exit:
    console.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(1)


def _cells(*values: str) -> list[Text]:
    """Table cells shown as written: a road name or a reason may contain rich markup like ``[b]``."""
    return [Text(value) for value in values]


def _summary_tables(summary: ImportSummary, file_kind: str) -> tuple[Table, Table | None]:
    totals = Table(title="Import", show_header=False)
    totals.add_column("what")
    totals.add_column("rows", justify="right")
    totals.add_row("accepted", f"{summary.accepted:,}")
    totals.add_row("rejected", f"{summary.rejected:,}")
    for cause, count in sorted(summary.reason_counts.items(), key=lambda item: -item[1]):
        totals.add_row(f"  {cause}", f"{count:,}")
    if not summary.reasons:
        return totals, None
    shown = summary.reasons[:SHOWN_REJECTIONS]
    rejections = Table(title=f"First {len(shown)} of {summary.rejected:,} rejected rows")
    rejections.add_column(file_kind, justify="right")
    rejections.add_column("id")
    rejections.add_column("reason")
    for rejection in shown:
        rejections.add_row(*_cells(str(rejection.line), rejection.asset_id or "", rejection.reason))
    return totals, rejections


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A .csv, .geojson or .json file of assets.")],
) -> None:
    """Import assets: valid rows are added or updated, the others listed with their line and reason."""
    settings = CommonSettings()
    console, errors = Console(), Console(stderr=True)
    try:
        with (
            _open_registry(settings) as registry,
            Progress(
                SpinnerColumn(),
                TextColumn("importing {task.fields[name]}"),
                MofNCompleteColumn(),
                TextColumn("rows"),
                TimeElapsedColumn(),
                console=errors,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task("import", name=file.name, total=None)
            summary = import_file(registry, file, lambda rows: progress.update(task, completed=rows))
    except RegistryError as exc:
        raise _fail(errors, str(exc)) from exc
    file_kind = "line" if file.suffix.lower() == ".csv" else "feature"
    for table in _summary_tables(summary, file_kind):
        if table is not None:
            console.print(table)


@app.command("export")
def export_command(
    file: Annotated[Path, typer.Argument(help="The .csv, .geojson or .json file to write.")],
) -> None:
    """Write every asset to a CSV or GeoJSON file."""
    settings = CommonSettings()
    try:
        with _open_registry(settings) as registry:
            count = export_file(registry, file)
    except RegistryError as exc:
        raise _fail(Console(stderr=True), str(exc)) from exc
    Console().print(f"exported {count:,} assets to {file}", highlight=False)


@app.command("list")
def list_command(
    kind: Annotated[
        str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(sorted(KINDS))}.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 50,
) -> None:
    """List assets, ordered by id."""
    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {', '.join(sorted(KINDS))}", param_hint="--kind")
    settings = CommonSettings()
    table = Table()
    for column in ("id", "kind", "district", "road", "road_class", "gateway", "lat", "lon", "in service"):
        table.add_column(column, justify="right" if column in ("lat", "lon") else "left")
    try:
        with _open_registry(settings) as registry, closing(registry.iter_assets(kind)) as assets:
            for a in itertools.islice(assets, limit):
                table.add_row(
                    *_cells(
                        a.id,
                        a.kind,
                        a.district,
                        a.road,
                        a.road_class,
                        a.gateway,
                        f"{a.lat:.6f}",
                        f"{a.lon:.6f}",
                        "yes" if a.in_service else "no",
                    )
                )
    except RegistryError as exc:
        raise _fail(Console(stderr=True), str(exc)) from exc
    Console().print(table)


@app.command("stats")
def stats_command() -> None:
    """Count assets by kind."""
    settings = CommonSettings()
    try:
        with _open_registry(settings) as registry:
            counts = registry.count_by_kind()
    except RegistryError as exc:
        raise _fail(Console(stderr=True), str(exc)) from exc
    table = Table()
    table.add_column("kind")
    table.add_column("assets", justify="right")
    for kind, count in counts.items():
        table.add_row(kind, f"{count:,}")
    table.add_section()
    table.add_row("total", f"{sum(counts.values()):,}")
    Console().print(table)


@app.command("decommission")
def decommission_command(
    device_id: Annotated[str, typer.Argument(help="The device's or gateway's id.")],
) -> None:
    """Revoke a device's broker account (disconnecting it) and mark it out of service in the registry."""
    settings = CommonSettings()
    errors = Console(stderr=True)
    try:
        with _open_registry(settings) as registry:
            done = decommission(settings, registry, device_id)
    except (RegistryError, BrokerAccountsError, LocalServiceError) as exc:
        raise _fail(errors, str(exc)) from exc
    if not done.had_account and not done.in_registry:
        raise _fail(errors, f"{device_id} is neither in the registry nor on the broker")
    account = "broker account revoked" if done.had_account else "no broker account"
    asset = "out of service" if done.in_registry else "not in the registry"
    Console().print(Text(f"{device_id}: {account}, {asset}"))
