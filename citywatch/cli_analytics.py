"""`citywatch analytics run`: one partition's analytics worker."""

from __future__ import annotations

import contextlib
import signal
import threading

import typer
from rich.console import Console

from analytics.alerts.settings import AlertSettings
from analytics.settings import AnalyticsSettings
from citywatch.settings import CommonSettings

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("run")
def run_worker() -> None:
    """Run the analytics worker (and its alert service) of the configured partition until SIGINT / SIGTERM."""
    from citywatch.services import build_analytics_worker

    common = CommonSettings()
    if not common.mqtt_url or not common.influx_url:
        console.print("[red]set CITYWATCH_MQTT_URL and CITYWATCH_INFLUX_URL (or use `citywatch run`)[/red]")
        raise typer.Exit(2)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    settings = AnalyticsSettings()
    alerts = AlertSettings()
    with (
        build_analytics_worker(common, settings, common.mqtt_url, common.influx_url, alerts),
        contextlib.suppress(KeyboardInterrupt),
    ):
        done.wait()
