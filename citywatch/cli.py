"""The ``citywatch`` command: one sub-command group per service, each in its own module."""

from __future__ import annotations

import logging

import typer

from citywatch import (
    cli_alerts,
    cli_analytics,
    cli_api,
    cli_commission,
    cli_dashboards,
    cli_devices,
    cli_ingest,
    cli_report,
    cli_run,
    cli_sim,
)

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="CityWatch: city infrastructure monitoring."
)
app.add_typer(cli_devices.app, name="devices", help="Asset registry: import, export, list.")
app.add_typer(cli_sim.app, name="sim", help="Simulated city: generate an inventory, run it live.")
app.add_typer(cli_ingest.app, name="ingest", help="MQTT to InfluxDB ingest worker and its dead-letter store.")
app.add_typer(cli_analytics.app, name="analytics", help="Detectors, findings and rates for one partition.")
app.add_typer(cli_alerts.app, name="alerts", help="Fault alerts: list, show, acknowledge, resolve, close.")
app.add_typer(cli_dashboards.app, name="dashboards", help="Grafana dashboards: build, check, push.")
app.add_typer(cli_api.app, name="api", help="The operations HTTP API: serve it; its users and API keys.")
app.command("run")(cli_run.run)
app.command("report")(cli_report.report)
app.command("commission")(cli_commission.commission)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)  # a line per request
    # aiosmtpd (the demo mail sink) logs every connection at INFO
    logging.getLogger("mail.log").setLevel(logging.DEBUG if verbose else logging.WARNING)


if __name__ == "__main__":
    app()
