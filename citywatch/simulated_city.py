"""The simulated city as `citywatch run` uses it: make sure it exists and is registered; run it."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from citywatch.cli_sim import fault_injector, parse_start
from citywatch.settings import CommonSettings
from devices.broker import BrokerAddress
from devices.registry import Registry
from devices.registry_files import import_file
from firmware_sim.inventory import generate_city, load_inventory, write_inventory
from firmware_sim.payloads import Message, MessageSink
from firmware_sim.publisher import MqttPublisher
from firmware_sim.runner import JsonlTruth, RunOptions, SystemClock, run
from firmware_sim.simulation import SimConfig, Simulation

log = logging.getLogger(__name__)


def ensure_city(common: CommonSettings, lamps: int, seed: int, console: Console) -> Path:
    """``var/city.csv`` exists (generated the first time) and the registry holds it; returns its path."""
    inventory = common.var_dir / "city.csv"
    if not inventory.exists():
        city = generate_city(lamps, seed)
        rows = write_inventory(city, inventory)
        console.print(f"generated a simulated city: {rows:,} assets in {inventory}")
    stamp = common.var_dir / "city.imported"
    signature = (
        f"{inventory.stat().st_size}:{inventory.stat().st_mtime_ns}:{common.registry_sqlalchemy_url()}"
    )
    if not stamp.exists() or stamp.read_text() != signature:
        with Registry(common.registry_sqlalchemy_url()) as registry, Progress(console=console) as progress:
            task = progress.add_task("importing the city into the registry", total=None)
            summary = import_file(registry, inventory, lambda done: progress.update(task, completed=done))
        console.print(f"registry: {summary.accepted:,} assets imported, {summary.rejected:,} rejected")
        stamp.write_text(signature)
    return inventory


class _Counting:
    """Counts the readings the simulator hands to the publisher (for the live status)."""

    def __init__(self, sink: MessageSink) -> None:
        self.sink = sink
        self.readings = 0

    def publish(self, message: Message) -> None:
        self.sink.publish(message)
        self.readings += message.readings

    def flush(self, timeout: float | None = None) -> None:
        self.sink.flush(timeout)


class SimulatedCity:
    """The simulator running in a background thread until ``stop()``."""

    def __init__(
        self,
        inventory: Path,
        mqtt_url: str,
        *,
        seed: int,
        speed: float,
        start: str | None,
        faults: str,
        truth: Path,
        interval_s: float = 60.0,
    ) -> None:
        self.inventory = inventory
        self.truth_path = truth
        self._address = BrokerAddress.from_url(mqtt_url)
        city = load_inventory(inventory)
        self._sim = Simulation(
            city,
            seed=seed,
            start=parse_start(start, interval_s),
            config=SimConfig(interval_s=interval_s),
            faults=fault_injector(faults, 1.0, seed, city),
        )
        self._options = RunOptions(speed=speed if speed > 0 else math.inf)
        self._stop = threading.Event()
        self._counter: _Counting | None = None
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self.error: BaseException | None = None

    @property
    def published(self) -> int:
        return self._counter.readings if self._counter is not None else 0

    @property
    def sim_time(self) -> float | None:
        return self._sim.next_time - self._sim.config.interval_s if self._sim.tick_index else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            # listen: the simulated devices take the operators' commands (switch, dim, pump) and ack them
            with MqttPublisher(self._address, listen=True) as publisher, JsonlTruth(self.truth_path) as truth:
                self._counter = _Counting(publisher)
                wall = SystemClock(self._stop)
                run(self._sim, self._counter, self._options, wall=wall, truth=truth, commands=publisher)
        except Exception as exc:
            self.error = exc
            log.exception("the simulator stopped")
