"""`citywatch sim serial`: a simulated device (or a bus of them) behind a pseudo-terminal, for commissioning.

Prints the pty's path for ``citywatch commission PATH`` and serves it until Ctrl-C. The devices keep
their configuration under ``<var>/sim-serial`` (their flash): ``--serial`` brings one back configured.
Each device has a GNSS fix a few metres from a registered device of its kind (from the simulated city's
inventory, when there is one), so the commissioning tool finds its road and circuit.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
from pathlib import Path

import typer

from citywatch.settings import CommonSettings
from devices.commissioning.config import Position
from devices.commissioning.framing import MAX_ADDRESS
from devices.kinds import DeviceKind
from firmware_sim import SimError
from firmware_sim.citygen import WUHAN
from firmware_sim.console_device import ConsoleDevice, parse_misbehaviour
from firmware_sim.inventory import load_inventory
from firmware_sim.serial_console import ConfigStore, SerialConsole, identity, new_serial

_M_PER_DEG = 111_320.0


def _beside(lat: float, lon: float, rng: random.Random, metres: float = 8.0) -> Position:
    """A point a few metres from (lat, lon): a new pole beside an old one, or a GNSS fix's error."""
    bearing, distance = rng.uniform(0, 2 * math.pi), rng.uniform(2.0, metres)
    dlat = distance * math.cos(bearing) / _M_PER_DEG
    dlon = distance * math.sin(bearing) / (_M_PER_DEG * math.cos(math.radians(lat)))
    return Position(round(lat + dlat, 7), round(lon + dlon, 7))


def _fixes(kind: DeviceKind, count: int, inventory: Path | None, rng: random.Random) -> list[Position]:
    if inventory is not None and inventory.exists():
        table = load_inventory(inventory).devices()[kind]
        if len(table):
            picks = [rng.randrange(len(table)) for _ in range(count)]
            return [_beside(float(table.lat[i]), float(table.lon[i]), rng) for i in picks]
    return [_beside(WUHAN[0], WUHAN[1], rng, 500.0) for _ in range(count)]


def serial(
    kind: DeviceKind = typer.Option(DeviceKind.LAMP, "--kind", help="What the device is."),
    devices: int = typer.Option(1, "--devices", min=1, max=MAX_ADDRESS, help="More than one: a bus."),
    misbehave: list[str] = typer.Option(
        [],
        "--misbehave",
        help="garble[=p], drop[=p], delay[=s], refuse-write, mute, offline, silent (repeatable).",
    ),
    serial_number: str | None = typer.Option(None, "--serial", help="Bring back a device by its serial."),
    lat: float | None = typer.Option(None, min=-90, max=90, help="GNSS fix (default: beside a city device)."),
    lon: float | None = typer.Option(None, min=-180, max=180, help="GNSS fix longitude."),
    no_gnss: bool = typer.Option(False, "--no-gnss", help="A device without a GNSS receiver."),
    inventory: Path | None = typer.Option(
        None, help="City whose devices the fix is placed beside (default: <var>/city.csv)."
    ),
    reboot_s: float = typer.Option(2.0, min=0.0, max=60.0, help="How long a restart takes (s)."),
    seed: int = typer.Option(0, help="Seed of the misbehaviour and the readings."),
) -> None:
    """Serve simulated devices on a pseudo-terminal until Ctrl-C; print its path to commission them."""
    try:
        behaviour = parse_misbehaviour(misbehave)
    except SimError as exc:
        raise typer.BadParameter(str(exc), param_hint="--misbehave") from exc
    if (lat is None) != (lon is None):
        raise typer.BadParameter("give both --lat and --lon")
    var_dir = CommonSettings().var_dir
    rng = random.Random(seed)
    base = serial_number or new_serial()
    serials = [base] if devices == 1 else [f"{base}-{n}" for n in range(1, devices + 1)]
    fixes: list[Position | None]
    if no_gnss:
        fixes = [None] * devices
    elif lat is not None and lon is not None:
        fixes = [Position(lat, lon), *(_beside(lat, lon, rng, 40.0) for _ in range(devices - 1))]
    else:
        fixes = [*_fixes(kind, devices, inventory or var_dir / "city.csv", rng)]
    store = ConfigStore(var_dir / "sim-serial")
    try:
        line = [
            ConsoleDevice(
                identity(kind, sn, fix),
                address=n,
                config=store.load(sn),
                misbehaviour=behaviour,
                reboot_s=reboot_s,
            )
            for n, (sn, fix) in enumerate(zip(serials, fixes, strict=True), start=1)
        ]
    except SimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SerialConsole(line, store, seed=seed) as console:
        typer.echo(console.path)
        for device in line:
            fix = device.identity.gnss
            where = f"GNSS {fix.lat:.6f}, {fix.lon:.6f}" if fix else "no GNSS"
            state = f"configured as {device.config.device_id}" if device.config else "not configured"
            typer.echo(
                f"  address {device.address}: {kind.value} serial {device.identity.serial}, {where}, {state}"
            )
        typer.echo(
            f"commission it with: citywatch commission {console.path}{' --bus' if devices > 1 else ''}"
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    typer.echo("stopped")
