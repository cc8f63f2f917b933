"""`citywatch ingest` sub-commands: run a worker, list its dead letters."""

from __future__ import annotations

import contextlib
import signal
import threading
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from citywatch.settings import CommonSettings
from devices.contract import RejectReason
from ingest.deadletter import DeadLetterStore
from ingest.settings import IngestSettings

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("run")
def run_worker() -> None:
    """Run one ingest worker against the configured broker and database until SIGINT / SIGTERM."""
    from citywatch.services import build_ingest_worker

    common = CommonSettings()
    if not common.mqtt_url or not common.influx_url:
        console.print("[red]set CITYWATCH_MQTT_URL and CITYWATCH_INFLUX_URL (or use `citywatch run`)[/red]")
        raise typer.Exit(2)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with (
        build_ingest_worker(common, IngestSettings(), common.mqtt_url, common.influx_url),
        contextlib.suppress(KeyboardInterrupt),
    ):
        done.wait()


@app.command("rejects")
def list_rejects(
    reason: RejectReason | None = typer.Option(None, help="Only this reason."),
    device: str | None = typer.Option(None, help="Only this device."),
    limit: int = typer.Option(30, min=1, max=10_000),
    payload: bool = typer.Option(False, help="Show the payload excerpt too."),
) -> None:
    """List rejected readings and messages, newest first, with counts by reason."""
    common = CommonSettings()
    path = IngestSettings().deadletter_file(common.var_dir)
    if not path.exists():
        console.print(f"no dead-letter store at {path}: nothing was rejected yet")
        return
    with DeadLetterStore(path, "cli") as store:
        counts = store.counts()
        rows = store.list(reason=reason, device=device, limit=limit)
    summary = Table(title="rejected, by reason (kept rows)")
    summary.add_column("reason")
    summary.add_column("count", justify="right")
    for name, count in counts.items():
        summary.add_row(name, str(count))
    console.print(summary)
    table = Table(title=f"newest {len(rows)} rejections")
    for column in ("when (UTC)", "reason", "device", "topic", "detail"):
        table.add_column(column, overflow="fold")
    if payload:
        table.add_column("payload", overflow="fold")
    for row in rows:
        when = datetime.fromtimestamp(row.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        cells = [when, row.reason, row.device or "", row.topic, row.detail]
        if payload:
            cells.append((row.payload or "")[:300])
        table.add_row(*cells)
    console.print(table)
