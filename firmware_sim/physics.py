"""The city's physics: every device kind's readings at one tick, as numpy columns.

``CityPhysics.step`` advances all models by one tick under the active fault masks and returns, per device
kind, ``{field name: array over all devices of that kind}``. The kind models live in ``lighting``,
``structures``, ``drainage`` and ``sanitation``; weather in ``weather``. Each model draws its static
parameters from its own stream of the seed and its noise from a stream of (seed, tick, kind), so adding
devices of one kind never changes another kind's readings. Pure: simulated time comes in as numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from devices.kinds import DeviceKind
from firmware_sim.city import City
from firmware_sim.drainage import Drainage
from firmware_sim.faults import FaultMasks
from firmware_sim.lighting import Lighting
from firmware_sim.sanitation import Sanitation
from firmware_sim.structures import Structures
from firmware_sim.weather import Climate, Rain, RainConfig

Columns = dict[str, np.ndarray]

_STATIC = 0x57A71C
_KIND_STREAM = {kind: i + 1 for i, kind in enumerate(DeviceKind)}


@dataclass(frozen=True, slots=True)
class PhysicsConfig:
    climate: Climate = field(default_factory=Climate)
    rain: RainConfig = field(default_factory=RainConfig)


class CityPhysics:
    """All kind models of one city; ``step`` once per tick, in order."""

    def __init__(self, city: City, *, seed: int, start: float, config: PhysicsConfig | None = None) -> None:
        config = config or PhysicsConfig()
        self.seed = seed
        self.climate = config.climate
        if self.climate.utc_offset_h is None:
            self.climate = replace(self.climate, utc_offset_h=float(round(city.center[1] / 15.0)))
        self.rain = Rain(config.rain, seed)

        def static(kind: DeviceKind) -> np.random.Generator:
            return np.random.default_rng([seed, _STATIC, _KIND_STREAM[kind]])

        self.lighting = Lighting(city, static(DeviceKind.LAMP), start)
        self.structures = Structures(city, static(DeviceKind.BRIDGE_NODE), self.climate)
        self.drainage = Drainage(city, static(DeviceKind.PUMP_STATION), self.climate, self.rain)
        self.sanitation = Sanitation(city, static(DeviceKind.BIN), self.climate)

    def _noise(self, tick: int, kind: DeviceKind) -> np.random.Generator:
        return np.random.default_rng([self.seed, tick, _KIND_STREAM[kind]])

    def step(self, tick: int, t: float, dt_s: float, faults: FaultMasks) -> dict[DeviceKind, Columns]:
        """Advance every model by ``dt_s`` seconds to simulated time ``t`` (tick number ``tick``)."""
        ambient = self.climate.air_c(t)
        out = dict(self.lighting.step(t, dt_s, faults, self._noise(tick, DeviceKind.LAMP), ambient))
        out[DeviceKind.BRIDGE_NODE] = self.structures.step(
            t, faults, self._noise(tick, DeviceKind.BRIDGE_NODE)
        )
        stations, gauges = self.drainage.step(t, dt_s, faults, self._noise(tick, DeviceKind.PUMP_STATION))
        out[DeviceKind.PUMP_STATION] = stations
        out[DeviceKind.FLOOD_GAUGE] = gauges
        out[DeviceKind.BIN] = self.sanitation.step(t, dt_s, faults, self._noise(tick, DeviceKind.BIN))
        return out
