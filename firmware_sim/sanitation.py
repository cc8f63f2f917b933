"""Waste bins with ultrasonic fill-level meters (OMA 3435).

Each bin fills at its own rate, faster by day. It is emptied on its collection round (every 1 to 3 days at
a fixed morning hour, if at least 20 % full) or, once 85-100 % full, by an on-demand pick-up within about
two hours. The meter measures the distance to the contents: ``empty_distance_cm`` when empty, the blind
zone when full; it reports the fill level it derives, ``(H_empty - d) / (H_empty - d_blind)``.

Faults: a fire heats the bin; a tipped bin reads the street; a stuck meter repeats the distance it measured
when it froze (and the fill level derived from it) while the bin itself goes on filling and being emptied.
"""

from __future__ import annotations

import math

import numpy as np

from firmware_sim.city import City
from firmware_sim.drainage import battery
from firmware_sim.faults import FaultMasks
from firmware_sim.weather import DAY_S, Climate

PICKUP_S = 2 * 3600.0
ROUND_MIN_FILL = 0.2
FIRE_MAX_C = 80.0

Columns = dict[str, np.ndarray]


class Sanitation:
    """Bin readings at one tick."""

    def __init__(self, city: City, rng: np.random.Generator, climate: Climate) -> None:
        bins = city.bins
        n = len(bins)
        self.climate = climate
        self.height = bins.empty_distance_cm
        self.blind = np.minimum(bins.blind_zone_cm, 0.8 * self.height)
        self.rate = rng.uniform(0.008, 0.035, n)  # fill per hour: full in 1 to 5 days
        self.threshold = rng.uniform(0.85, 1.0, n)
        self.every_days = rng.choice([1, 2, 3], size=n, p=[0.5, 0.3, 0.2])
        self.round_day = rng.integers(0, 3, n)
        self.round_hour = rng.uniform(5.0, 10.0, n)
        self.tilt0 = rng.uniform(0.0, 4.0, n)
        self.tipped_tilt = rng.uniform(65.0, 115.0, n)
        self.battery = (rng.uniform(365, 1095, n), rng.random(n))
        self.fill = rng.uniform(0.0, 0.6, n)
        self.heat = np.zeros(n)
        self.emptied_at = np.full(n, np.nan)
        self.stuck_cm = np.full(n, np.nan)  # the frozen distance of a stuck meter, NaN when it works

    def _round_due(self, t: float, dt_s: float) -> np.ndarray:
        """Bins whose collection round falls in (t - dt, t]."""
        offset = self.climate.offset_h * 3600.0
        day = math.floor((t + offset) / DAY_S)
        due = np.zeros(len(self.fill), dtype=np.bool_)
        for d in (day - 1, day):  # a tick may span local midnight
            at = d * DAY_S + self.round_hour * 3600.0 - offset
            due |= (t - dt_s < at) & (at <= t) & ((d + self.round_day) % self.every_days == 0)
        return due

    def step(self, t: float, dt_s: float, faults: FaultMasks, rng: np.random.Generator) -> Columns:
        n = len(self.fill)
        noise = rng.standard_normal((4, n))
        hour = self.climate.local_hour(t)
        daytime = 1.5 if 7.0 <= hour <= 21.0 else 0.3
        growth = self.rate * daytime * (dt_s / 3600.0) * np.maximum(1.0 + 0.3 * noise[0], 0.0)
        self.fill = np.minimum(self.fill + growth, 1.0)
        pickup = (self.fill >= self.threshold) & (rng.random(n) < dt_s / PICKUP_S)
        collected = (pickup | (self._round_due(t, dt_s) & (self.fill >= ROUND_MIN_FILL))) & ~faults.bin_tipped
        self.fill = np.where(collected, rng.uniform(0.0, 0.04, n), self.fill)
        self.emptied_at = np.where(collected, t, self.emptied_at)
        ambient = self.climate.air_c(t)
        # A fire heats the bin by 8-15 °C per interval up to ~80 °C; afterwards it cools 10 °C per interval.
        cap = max(FIRE_MAX_C - ambient - 2.0, 0.0)
        self.heat = np.where(
            faults.bin_fire,
            np.minimum(self.heat + rng.uniform(8.0, 15.0, n), cap),
            np.maximum(self.heat - 10.0, 0.0),
        )
        h, b = self.height, self.blind
        distance = h - self.fill * (h - b) + 0.5 * noise[1]
        distance = np.where(self.fill >= 1.0, b * (0.8 + 0.2 * rng.random(n)), distance)
        distance = np.where(faults.bin_tipped, np.minimum(2.0 * h, 400.0), distance)  # aims at the street
        distance = np.clip(distance, 0.0, 500.0)
        self.stuck_cm = np.where(
            faults.bin_stuck, np.where(np.isnan(self.stuck_cm), distance, self.stuck_cm), np.nan
        )
        distance = np.where(faults.bin_stuck, self.stuck_cm, distance)
        tilt = np.where(faults.bin_tipped, self.tipped_tilt, self.tilt0 + 0.2 * np.abs(noise[2]))
        return {
            "distance": np.round(distance, 1),
            "fill_level": np.round(100.0 * np.clip((h - distance) / (h - b), 0.0, 1.0), 1),
            "temperature": np.round(ambient + 2.0 + self.heat + 0.3 * noise[3], 1),
            "tilt": np.round(np.clip(tilt, 0.0, 180.0), 1),
            "battery": battery(t, *self.battery),
        }
