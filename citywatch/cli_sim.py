"""`citywatch sim` sub-commands: generate a city's inventory, run its devices against a broker."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

import typer

from citywatch import cli_sim_serial
from citywatch.settings import CommonSettings
from devices.broker import BrokerAddress, BrokerUrlError
from firmware_sim import SimError
from firmware_sim.city import City
from firmware_sim.faults import FaultInjector, parse_schedule
from firmware_sim.inventory import generate_city, load_inventory, write_inventory
from firmware_sim.physics import PhysicsConfig
from firmware_sim.publisher import MqttPublisher
from firmware_sim.runner import MAX_AGE_S, JsonlTruth, RunOptions, SystemClock, aligned_now, run
from firmware_sim.simulation import SimConfig, Simulation
from firmware_sim.weather import RainConfig

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)
app.command("serial")(cli_sim_serial.serial)

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


@app.command()
def generate(
    lamps: int = typer.Option(10_000, "--lamps", min=1, help="Number of lamps; the rest scales with it."),
    seed: int = typer.Option(0, "--seed", min=0, help="Same seed, same city."),
    out: Path = typer.Option(Path("var/city.csv"), "--out", help="Registry CSV to write."),
) -> None:
    """Generate a Wuhan-like city and write it as the asset registry's CSV."""
    city = generate_city(lamps, seed)
    try:
        rows = write_inventory(city, out)
    except SimError as exc:
        raise typer.BadParameter(str(exc), param_hint="--out") from exc
    counts = ", ".join(f"{len(t)} {kind}" for kind, t in city.tables().items())
    typer.echo(f"{out}: {rows} assets ({counts})")


def parse_start(text: str | None, interval: float) -> float:
    if not text:
        return aligned_now(interval)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO time", param_hint="--start") from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter("give a UTC offset, e.g. 2026-06-21T00:00:00+08:00", param_hint="--start")
    if parsed.timestamp() < time.time() - MAX_AGE_S:
        log.warning("--start is more than 29 days ago: the ingest rejects readings older than 30 days")
    return parsed.timestamp()


def fault_injector(spec: str, rate: float, seed: int, city: City) -> FaultInjector | None:
    if spec == "none":
        return None
    if spec == "random":
        return FaultInjector(city, seed=seed, rate=rate)
    path = Path(spec)
    try:
        schedule = parse_schedule(path.read_text(encoding="utf-8"))
        return FaultInjector(city, seed=seed, schedule=schedule, rate=0.0)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--faults") from exc
    except SimError as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--faults") from exc


@app.command("run")
def run_command(
    inventory: Path = typer.Option(Path("var/city.csv"), "--inventory", help="Registry CSV of the city."),
    mqtt_url: str | None = typer.Option(
        None, "--mqtt-url", help=f"Broker; default CITYWATCH_MQTT_URL, else {DEFAULT_MQTT_URL}."
    ),
    speed: float = typer.Option(
        1.0, "--speed", help="Simulated seconds per second; 'inf' as fast as possible."
    ),
    start: str | None = typer.Option(None, "--start", help="Simulated start, ISO with offset (default now)."),
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="Reporting interval (simulated s)."),
    faults: str = typer.Option("none", "--faults", help="random, none, or a schedule file (JSON / JSONL)."),
    fault_rate: float = typer.Option(1.0, "--fault-rate", min=0.0, help="Multiplier of the random rates."),
    truth: Path = typer.Option(Path("var/truth.jsonl"), "--truth", help="Ground truth of injected faults."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of noise, faults and rain."),
    duration: float | None = typer.Option(
        None, "--duration", min=0.0, help="Stop after this simulated time (s)."
    ),
    max_readings: int | None = typer.Option(
        None, "--max-readings", min=1, help="Stop after this many readings."
    ),
    single: bool = typer.Option(False, "--single", help="One message per device instead of gateway batches."),
    rate: float | None = typer.Option(None, "--rate", min=1.0, help="Limit: readings per second."),
    rain_per_day: float = typer.Option(
        0.5, "--rain-per-day", min=0.0, help="Random storms per simulated day."
    ),
    connections: int = typer.Option(1, "--connections", min=1, max=16, help="MQTT connections."),
    max_inflight: int = typer.Option(1000, "--max-inflight", min=1, help="Messages awaiting PUBACK at most."),
) -> None:
    """Run the city's devices: each gateway publishes a batch per interval, with faults and ground truth."""
    if not (speed > 0 and not math.isnan(speed)):
        raise typer.BadParameter("must be > 0", param_hint="--speed")
    url = mqtt_url or CommonSettings().mqtt_url or DEFAULT_MQTT_URL
    try:
        address = BrokerAddress.from_url(url)
        city = load_inventory(inventory)
    except (SimError, BrokerUrlError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    config = SimConfig(
        interval_s=interval, physics=PhysicsConfig(rain=RainConfig(events_per_day=rain_per_day))
    )
    injector = fault_injector(faults, fault_rate, seed, city)
    sim = Simulation(city, seed=seed, start=parse_start(start, interval), config=config, faults=injector)
    options = RunOptions(
        speed=speed, single=single, max_readings=max_readings, duration_s=duration, rate_limit=rate
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after this tick", signum)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with (
            MqttPublisher(
                address, connections=connections, max_inflight=max_inflight, listen=True
            ) as publisher,
            JsonlTruth(truth) as ground_truth,
        ):
            result = run(
                sim, publisher, options, wall=SystemClock(stop), truth=ground_truth, commands=publisher
            )
    except SimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{result.readings} readings in {result.messages} messages over {result.ticks} ticks; "
        f"{result.faults} faults logged to {truth}"
    )
