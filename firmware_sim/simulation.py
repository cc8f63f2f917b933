"""The simulated city tick by tick: faults, physics, which devices report, their timestamps and counters.

``Simulation.step()`` returns the next ``Tick``: for each device kind a ``Frame`` of the devices that
report at that tick (their numbers, timestamps in ms, sequence numbers and field columns), the faults that
started, the gateway / device outage masks, and the true lighting counts (``LightingTruth``) that a
computed lighting rate can be checked against. The same city, seed, start and schedule give the same
ticks, bit for bit. Pure: the caller decides when a tick happens (``runner``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from devices.kinds import DeviceKind
from firmware_sim.city import BoolArray, City, IntArray
from firmware_sim.faults import FaultEvent, FaultInjector, FaultMasks
from firmware_sim.physics import CityPhysics, PhysicsConfig

Int64Array = npt.NDArray[np.int64]

_TIMING = 0x71AE

#: How often each kind reports when not every tick (seconds). Bin meters report hourly (DOMAIN: every
#: 1 to 24 h); in an alarm (fire, tipped over) they report at once, every tick.
DEFAULT_REPORT_EVERY_S: Mapping[DeviceKind, float] = MappingProxyType({DeviceKind.BIN: 3600.0})


@dataclass(frozen=True, slots=True)
class SimConfig:
    interval_s: float = 60.0  # one tick: the reporting interval of lamps, cabinets, bridges, stations, gauges
    report_every_s: Mapping[DeviceKind, float] = field(default_factory=lambda: DEFAULT_REPORT_EVERY_S)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    max_clock_lag_ms: int = 5000  # a device's timestamp trails the tick by a fixed 0 to this many ms


@dataclass(frozen=True, slots=True)
class Frame:
    """The readings of one kind at one tick, as columns aligned with ``device``."""

    kind: DeviceKind
    device: IntArray  # device numbers in the kind's table
    ts_ms: Int64Array
    seq: Int64Array
    fields: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.device)


@dataclass(frozen=True, slots=True)
class LightingTruth:
    """The real lighting of one tick, counted in lamp heads.

    ``due``: lamps in service with the sun down at the lamp (the simulator's own astronomical clock, no
    switching margins, no dimming plan); ``lit``: those of them actually burning. ``due_silent`` /
    ``lit_silent``: the part of each that sent no reading this tick (device offline, gateway down, a
    silent cable theft): a computed *observed* rate, which leaves unknown lamps out, sees only the rest.
    """

    due: int = 0
    lit: int = 0
    due_silent: int = 0
    lit_silent: int = 0

    @property
    def rate(self) -> float:
        """lit / due; NaN when no lamp is due."""
        return self.lit / self.due if self.due else float("nan")

    @property
    def reporting_rate(self) -> float:
        """lit / due among the lamps that reported; NaN when none of them is due."""
        due = self.due - self.due_silent
        return (self.lit - self.lit_silent) / due if due else float("nan")


@dataclass(frozen=True, slots=True)
class Tick:
    index: int
    t: float  # simulated epoch seconds
    frames: tuple[Frame, ...]
    started: tuple[FaultEvent, ...]
    gateway_down: BoolArray
    offline: Mapping[DeviceKind, BoolArray]  # devices silent this tick (device_offline, dead circuit)
    lighting: LightingTruth = LightingTruth()

    @property
    def readings(self) -> int:
        return sum(len(f) for f in self.frames)


class Simulation:
    """A city's devices from ``start`` (epoch seconds), one tick every ``config.interval_s``."""

    def __init__(
        self,
        city: City,
        *,
        seed: int,
        start: float,
        config: SimConfig | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, not {seed}")
        self.config = config = config or SimConfig()
        if not config.interval_s >= 1.0:
            raise ValueError(f"interval must be at least 1 s, not {config.interval_s}")
        self.city = city
        self.start = start
        self.tick_index = 0
        self.physics = CityPhysics(city, seed=seed, start=start, config=config.physics)
        self.faults = faults or FaultInjector(city, seed=seed)
        self.masks: FaultMasks = FaultMasks.none(city)  # the faults active at the last tick
        rng = np.random.default_rng([seed, _TIMING])
        self._lag_ms: dict[DeviceKind, Int64Array] = {}
        self._period: dict[DeviceKind, int] = {}
        self._phase: dict[DeviceKind, Int64Array] = {}
        self._seq: dict[DeviceKind, Int64Array] = {}
        for kind, table in city.devices().items():
            n = len(table)
            period = config.report_every_s.get(kind, config.interval_s)
            self._period[kind] = max(1, round(period / config.interval_s))
            self._phase[kind] = rng.integers(0, self._period[kind], n)
            lag = min(config.max_clock_lag_ms, int(config.interval_s * 500))
            self._lag_ms[kind] = rng.integers(0, lag + 1, n)
            self._seq[kind] = np.zeros(n, dtype=np.int64)

    @property
    def next_time(self) -> float:
        return self.start + self.tick_index * self.config.interval_s

    def step(self) -> Tick:
        """Compute the next tick and advance."""
        k, t = self.tick_index, self.next_time
        dt_s = self.config.interval_s if k > 0 else 0.0
        masks, started = self.faults.advance(k, t, dt_s)
        self.masks = masks
        columns = self.physics.step(k, t, dt_s, masks)
        offline = dict(masks.offline)
        offline[DeviceKind.LAMP] = (
            masks.offline[DeviceKind.LAMP] | masks.circuit_theft_silent[self.city.lamps.circuit]
        )
        alarms = {DeviceKind.BIN: masks.bin_fire | masks.bin_tipped}
        frames = []
        silent: dict[DeviceKind, BoolArray] = {}
        for kind, table in self.city.devices().items():
            due = (k + self._phase[kind]) % self._period[kind] == 0
            if kind in alarms:
                due |= alarms[kind]
            gw = table.gateway
            gateway_up = np.where(gw >= 0, ~masks.gateway_down[np.maximum(gw, 0)], True)
            silent[kind] = offline[kind] | ~gateway_up
            reporting = np.flatnonzero(due & table.in_service & ~silent[kind]).astype(np.int32)
            seq = self._seq[kind][reporting]
            self._seq[kind][reporting] += 1
            ts_ms = round(t * 1000) - self._lag_ms[kind][reporting]
            fields = {name: col[reporting] for name, col in columns[kind].items()}
            frames.append(Frame(kind, reporting, ts_ms.astype(np.int64), seq, MappingProxyType(fields)))
        self.tick_index += 1
        return Tick(
            k,
            t,
            tuple(frames),
            tuple(started),
            masks.gateway_down.copy(),
            MappingProxyType(offline),
            self._lighting_truth(silent[DeviceKind.LAMP]),
        )

    def _lighting_truth(self, silent: BoolArray) -> LightingTruth:
        view = self.physics.lighting.view
        due = view.night & self.city.lamps.in_service
        lit = due & view.burning
        return LightingTruth(
            due=int(np.count_nonzero(due)),
            lit=int(np.count_nonzero(lit)),
            due_silent=int(np.count_nonzero(due & silent)),
            lit_silent=int(np.count_nonzero(lit & silent)),
        )
