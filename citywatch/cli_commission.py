"""`citywatch commission PORT...`: bring field devices into service over their serial ports.

One port: a guided run with a line per step; interrupted, the same command resumes it. Several ports, a
``--ports-file`` or a ``--bus``: a batch, one device after another, with a summary table. The composition
root of commissioning: settings, the registry, the broker's admin session and InfluxDB are made here.
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import ExitStack
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from citywatch.commission import CommissionError, PlacementMissing, ServiceUnavailable
from citywatch.commission.backends import BrokerIssuer, InfluxReadings, RegistryBook
from citywatch.commission.display import print_error, summary
from citywatch.commission.endpoints import find_endpoints
from citywatch.commission.link import serial_ports
from citywatch.commission.progress import ProgressStore
from citywatch.commission.runner import Order, Outcome
from citywatch.commission.session import Session, Target
from citywatch.commission.settings import CommissionSettings
from citywatch.services import influx_target
from citywatch.settings import CommonSettings
from devices import RegistryError
from devices.assets import ROAD_CLASSES
from devices.commissioning.placement import PlacementHints
from devices.kinds import DeviceKind
from devices.registry import Registry
from ingest.influx import InfluxV1


def _targets(ports: list[str], ports_file: Path | None) -> list[Target]:
    targets = [Target(port) for port in ports]
    if ports_file is not None:
        try:
            lines = ports_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {ports_file}: {exc}", param_hint="--ports-file") from exc
        for number, line in enumerate(lines, start=1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) > 2:
                raise typer.BadParameter(
                    f"{ports_file}:{number}: give a port and optionally a device id",
                    param_hint="--ports-file",
                )
            targets.append(Target(words[0], words[1] if len(words) == 2 else None))
    return targets


def _list_ports(console: Console) -> None:
    found = serial_ports()
    if not found:
        console.print("no serial ports found (a USB-serial adapter appears as /dev/ttyUSB0 or /dev/ttyACM0)")
        return
    table = Table(title="Serial ports")
    for column in ("port", "description", "hardware"):
        table.add_column(column)
    for port in found:
        table.add_row(Text(port.device), Text(port.description), Text(port.hardware))
    console.print(table)


def _prompt_placement(console: Console, error: PlacementMissing, hints: PlacementHints) -> PlacementHints:
    """Ask for what registering needs (on a terminal), instead of failing."""
    console.print(Text(f"{error.message}; where is it?"))
    values: dict[str, object] = {}
    for name in error.needed:
        if name in ("lat", "lon"):
            values[name] = typer.prompt(f"  {name} (WGS 84 degrees)", type=float)
        elif name == "road_class":
            values[name] = typer.prompt(f"  road class ({', '.join(ROAD_CLASSES)})", default="branch")
        else:
            values[name] = typer.prompt(f"  {name.replace('_', ' ')}")
    for name in ("road", "circuit"):
        if getattr(hints, name) is None and name not in values:
            values[name] = typer.prompt(f"  {name} (empty: none)", default="", show_default=False)
    return dataclasses.replace(hints, **values)  # type: ignore[arg-type]


def commission(
    ports: list[str] = typer.Argument(None, help="Serial port(s), e.g. /dev/ttyUSB0; several: a batch."),
    list_ports: bool = typer.Option(False, "--list-ports", help="List this machine's serial ports."),
    ports_file: Path | None = typer.Option(
        None, "--ports-file", help="A batch: one port per line, optionally followed by its device id."
    ),
    bus: bool = typer.Option(False, "--bus", help="Each port is a bus: commission every device on it."),
    device_id: str | None = typer.Option(
        None, "--device-id", help="Registry id (default: the device's own)."
    ),
    kind: DeviceKind | None = typer.Option(None, "--kind", help="Kind, for a device that can be several."),
    district: str | None = typer.Option(None, help="Registering: district slug (default: its neighbour's)."),
    road: str | None = typer.Option(None, help="Registering: road (default: its neighbour's)."),
    road_class: str | None = typer.Option(None, help=f"Registering a lamp: {', '.join(ROAD_CLASSES)}."),
    circuit: str | None = typer.Option(
        None, help="Registering: lighting circuit (default: its neighbour's)."
    ),
    cabinet: str | None = typer.Option(None, help="Registering: cabinet (default: its neighbour's)."),
    grid_cell: str | None = typer.Option(None, help="Registering: grid cell (default: its neighbour's)."),
    crew: str | None = typer.Option(None, help="Registering: crew (default: its neighbour's)."),
    lat: float | None = typer.Option(
        None, min=-90, max=90, help="Registering: latitude (default: its GNSS)."
    ),
    lon: float | None = typer.Option(None, min=-180, max=180, help="Registering: longitude (default: GNSS)."),
    interval: int | None = typer.Option(None, min=1, max=86_400, help="Reporting interval to write (s)."),
    start_over: bool = typer.Option(False, "--start-over", help="Forget saved progress and start again."),
) -> None:
    """Commission devices over their serial ports: register, credentials, configure, test, first reading."""
    console = Console(highlight=False)
    if list_ports:
        _list_ports(console)
        return
    targets = _targets(ports or [], ports_file)
    if not targets:
        raise typer.BadParameter("give a serial port (or --list-ports to see them)", param_hint="PORT")
    batch = bus or len(targets) > 1
    if batch and (device_id or lat is not None or lon is not None):
        raise typer.BadParameter(
            "--device-id, --lat and --lon name one device: give them per port, not in a batch"
        )
    if (lat is None) != (lon is None):
        raise typer.BadParameter("give both --lat and --lon", param_hint="--lat / --lon")
    settings = CommissionSettings()
    if interval is not None:
        settings = settings.model_copy(update={"interval_s": interval})
    common = CommonSettings()
    hints = PlacementHints(
        district=district, road=road, road_class=road_class, grid_cell=grid_cell, circuit=circuit,
        cabinet=cabinet, crew=crew, lat=lat, lon=lon,
    )  # fmt: skip
    order = Order(device_id=device_id, kind=kind, hints=hints, start_over=start_over)
    live = console.is_terminal
    try:
        with ExitStack() as stack:
            session = _session(stack, common, settings, console, live)
            outcomes: list[Outcome] = []
            for target in targets:
                outcome = session.line(target, order, bus=bus)
                missing = outcome[0].error if len(outcome) == 1 else None
                if (
                    not batch
                    and isinstance(missing, PlacementMissing)
                    and missing.needed
                    and sys.stdin.isatty()
                ):
                    hints = _prompt_placement(console, missing, hints)
                    outcome = session.line(
                        target, Order(device_id=device_id, kind=kind, hints=hints), bus=bus
                    )
                outcomes += outcome
    except CommissionError as exc:
        print_error(console, exc)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("\ninterrupted: the progress is saved; run the same command again to resume")
        raise typer.Exit(130) from None
    if batch:
        console.print(summary(outcomes))
    if any(o.error is not None for o in outcomes):
        raise typer.Exit(1)


def _session(
    stack: ExitStack, common: CommonSettings, settings: CommissionSettings, console: Console, live: bool
) -> Session:
    endpoints = find_endpoints(common, settings)
    if common.registry_url is None:
        common.var_dir.mkdir(parents=True, exist_ok=True)
    url = common.registry_sqlalchemy_url()
    try:
        registry = RegistryBook(stack.enter_context(Registry(url)))
    except (RegistryError, ValueError) as exc:
        raise ServiceUnavailable(
            f"cannot open the asset registry: {exc}", hint="check CITYWATCH_REGISTRY_URL"
        ) from exc
    stack.callback(registry.close)
    accounts = stack.enter_context(BrokerIssuer(endpoints.admin_url))
    influx = stack.enter_context(InfluxV1(influx_target(common, endpoints.influx_url)))
    return Session(
        settings,
        assets=registry,
        accounts=accounts,
        readings=InfluxReadings(influx),
        store=ProgressStore(settings.progress_path(common.var_dir)),
        broker_url=endpoints.device_broker_url,
        console=console,
        live=live,
    )
