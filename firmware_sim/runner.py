"""The simulator's loop: wait for the next tick, compute it, log faults, publish, until a bound is hit.

``run`` drives a ``Simulation`` against a ``MessageSink`` (the broker, or a list in tests) and a
``WallClock`` (the system clock, or a fake one in tests). ``publish_readings`` is the entry point for
tests and benchmarks: it publishes exactly ``count`` readings, timestamped in the recent past, as fast as
the sink takes them, and says which (device, ts) it published.

Given a ``CommandSource`` (the publisher listening on the command topics), the devices take the commands
addressed to them between ticks (``firmware_sim.commands``) and their acknowledgements go out at once;
the effect shows in the next tick's readings.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

import numpy as np
import orjson

from devices.kinds import DeviceKind
from firmware_sim.city import City
from firmware_sim.clock import RateLimit, SimClock
from firmware_sim.commands import CommandTaker
from firmware_sim.faults import FaultEvent, FaultInjector
from firmware_sim.payloads import Message, MessageSink, PayloadBuilder, TickReadings
from firmware_sim.simulation import SimConfig, Simulation, Tick

log = logging.getLogger(__name__)

MAX_AGE_S = 29 * 86_400  # the ingest rejects readings older than 30 days (devices.contract.Limits)
COMMAND_POLL_S = 0.05  # with commands, wait between ticks in steps this short: devices answer at once


class WallClock(Protocol):
    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock; ``sleep`` returns early once ``stop`` is set."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self.stop.wait(max(seconds, 0.0))


class CommandSource(Protocol):
    """The command messages received since the last call (``publisher.MqttPublisher(listen=True)``)."""

    def commands(self) -> list[tuple[str, bytes]]: ...


class TruthSink(Protocol):
    def write(self, event: FaultEvent) -> None: ...


class JsonlTruth:
    """Ground truth as JSON lines, one per fault as it starts; flushed line by line for live readers."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        self.path = Path(path)
        self.append = append
        self._file: IO[bytes] | None = None
        self.written = 0

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab" if self.append else "wb")
        return self

    def write(self, event: FaultEvent) -> None:
        assert self._file is not None, "use JsonlTruth as a context manager"
        self._file.write(orjson.dumps(event.record()) + b"\n")
        self._file.flush()
        self.written += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()


@dataclass(frozen=True, slots=True)
class RunOptions:
    speed: float = 1.0  # simulated seconds per wall second (math.inf: as fast as possible)
    single: bool = False  # each device publishes its own telemetry message instead of gateway batches
    max_readings: int | None = None  # stop after exactly this many readings
    duration_s: float | None = None  # stop after this much simulated time
    rate_limit: float | None = None  # readings per second
    max_batch: int = 1000
    status: bool = True  # retained online / offline for gateways (batch) or devices (single)
    track: bool = False  # keep the (device, ts) of every published reading in the result


@dataclass(frozen=True, slots=True)
class RunResult:
    readings: int
    messages: int
    ticks: int
    faults: int
    first_t: float | None
    last_t: float | None
    published: frozenset[tuple[str, int]] = field(default_factory=frozenset)


def aligned_now(interval_s: float, now: float | None = None) -> float:
    """The latest tick boundary at or before ``now``: the default start of a live run."""
    now = time.time() if now is None else now
    return math.floor(now / interval_s) * interval_s


class _Run:
    def __init__(
        self,
        sim: Simulation,
        sink: MessageSink,
        options: RunOptions,
        wall: WallClock,
        commands: CommandSource | None = None,
    ) -> None:
        self.sim, self.sink, self.options, self.wall = sim, sink, options, wall
        self.commands = commands
        self.taker = CommandTaker(sim) if commands is not None else None
        self.builder = PayloadBuilder(sim.city, max_batch=options.max_batch)
        rate = options.rate_limit
        self.limiter = RateLimit(rate, burst=max(rate, float(options.max_batch))) if rate else None
        self.readings = self.messages = self.ticks = self.faults = 0
        self.published: set[tuple[str, int]] = set()
        self.gateway_down = np.zeros(len(sim.city.gateways), dtype=np.bool_)
        self.offline = {k: np.zeros(len(t), dtype=np.bool_) for k, t in sim.city.devices().items()}

    def send(self, message: Message) -> None:
        if self.limiter is not None and message.readings:
            self.wall.sleep(self.limiter.delay(self.wall.time(), message.readings))
        self.sink.publish(message)
        self.messages += 1
        self.readings += message.readings

    def take_commands(self, now_s: float) -> None:
        """Let the devices answer the commands that arrived (``now_s``: simulated time)."""
        if self.commands is None or self.taker is None:
            return
        for topic, payload in self.commands.commands():
            for answer in self.taker.take(topic, payload, now_s):
                self.send(answer)

    def statuses(
        self, online: bool, gateway_numbers: np.ndarray, devices: dict[DeviceKind, np.ndarray]
    ) -> None:
        if not self.options.status:
            return
        ts_ms = int(min(self.sim.next_time, self.wall.time()) * 1000)
        if not self.options.single:
            for gw in self.builder.gateway_ids(gateway_numbers):
                self.send(self.builder.status(gw, online=online, gateway=True, ts_ms=ts_ms))
        else:
            for kind, numbers in devices.items():
                for device in self.builder.device_ids(kind, numbers):
                    self.send(self.builder.status(device, online=online, gateway=False, ts_ms=ts_ms))

    def everyone(self) -> tuple[np.ndarray, dict[DeviceKind, np.ndarray]]:
        city = self.sim.city
        devices = {k: np.flatnonzero(t.in_service) for k, t in city.devices().items()}
        return np.flatnonzero(city.gateways.in_service), devices

    def status_changes(self, tick: Tick) -> None:
        """Offline for what went silent since the last tick, online for what came back."""
        for online in (False, True):
            flipped_gw = (tick.gateway_down != online) & (self.gateway_down == online)
            flipped = {k: (tick.offline[k] != online) & (self.offline[k] == online) for k in self.offline}
            self.statuses(
                online, np.flatnonzero(flipped_gw), {k: np.flatnonzero(v) for k, v in flipped.items()}
            )
        self.gateway_down = tick.gateway_down
        self.offline = dict(tick.offline)

    def publish_tick(self, tick: Tick) -> None:
        readings: TickReadings = self.builder.readings(tick)
        if self.options.max_readings is not None:
            readings = readings.head(self.options.max_readings - self.readings)
        messages = self.builder.singles(readings) if self.options.single else self.builder.batches(readings)
        for message in messages:
            self.send(message)
        if self.options.track:
            self.published.update(zip(self.builder.devices(readings), readings.ts_ms(), strict=True))


def run(
    sim: Simulation,
    sink: MessageSink,
    options: RunOptions | None = None,
    *,
    wall: WallClock | None = None,
    truth: TruthSink | None = None,
    commands: CommandSource | None = None,
) -> RunResult:
    """Run ``sim`` until ``max_readings`` or ``duration_s`` is reached (or ``wall`` is a stopped
    SystemClock); publishes retained statuses, each tick's readings, and logs faults to ``truth``; the
    devices answer the ``commands`` that arrive."""
    options = options or RunOptions()
    wall = wall or SystemClock()
    clock = SimClock(sim.start, options.speed, wall.time())
    end = math.inf if options.duration_s is None else sim.start + options.duration_s
    state = _Run(sim, sink, options, wall, commands)
    pause = 1.0 if commands is None else COMMAND_POLL_S
    stop = wall.stop if isinstance(wall, SystemClock) else threading.Event()
    state.statuses(True, *state.everyone())
    first_t = last_t = None
    while sim.next_time <= end and not stop.is_set():
        if options.max_readings is not None and state.readings >= options.max_readings:
            break
        due = clock.wall_at(sim.next_time)
        while (now := wall.time()) < due and not stop.is_set():
            state.take_commands(clock.now(now))
            wall.sleep(min(due - now, pause))
        if stop.is_set():
            break
        state.take_commands(clock.now(wall.time()))
        tick = sim.step()
        first_t = tick.t if first_t is None else first_t
        last_t = tick.t
        state.ticks += 1
        for event in tick.started:
            state.faults += 1
            if truth is not None:
                truth.write(event)
        state.status_changes(tick)
        state.publish_tick(tick)
        if tick.index % 60 == 0:
            log.info("tick %d at %s: %d readings so far", tick.index, time.ctime(tick.t), state.readings)
    state.statuses(False, *state.everyone())
    sink.flush()
    return RunResult(
        state.readings, state.messages, state.ticks, state.faults, first_t, last_t, frozenset(state.published)
    )


def readings_per_tick(city: City, config: SimConfig) -> float:
    """Expected readings per tick with no faults."""
    total = 0.0
    for kind, table in city.devices().items():
        period = config.report_every_s.get(kind, config.interval_s)
        total += np.count_nonzero(table.in_service) / max(1, round(period / config.interval_s))
    return total


def publish_readings(
    city: City,
    sink: MessageSink,
    count: int,
    *,
    seed: int = 0,
    single: bool = False,
    config: SimConfig | None = None,
    faults: FaultInjector | None = None,
    now: float | None = None,
    track: bool = True,
) -> RunResult:
    """Publish exactly ``count`` readings as fast as ``sink`` takes them, then stop.

    The simulation starts far enough in the past that ``count`` readings fit before ``now``, so every
    timestamp is in the past (at most 29 days: the ingest's age limit). No statuses are published.
    """
    config = config or SimConfig()
    per_tick = readings_per_tick(city, config)
    if per_tick <= 0:
        raise ValueError("the city has no device in service")
    ticks = math.ceil(count / per_tick * 1.05) + 2
    now = time.time() if now is None else now
    start = aligned_now(config.interval_s, now) - ticks * config.interval_s
    if now - start > MAX_AGE_S:
        raise ValueError(
            f"{count} readings of this city span {ticks} ticks: more than 29 days; use a bigger city"
        )
    sim = Simulation(city, seed=seed, start=start, config=config, faults=faults)
    options = RunOptions(speed=math.inf, single=single, max_readings=count, status=False, track=track)
    return run(sim, sink, options)
