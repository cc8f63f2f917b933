"""City-wide weather and daily rhythms for the simulation: air temperature, rain, wind, traffic.

All functions of simulated time (UTC epoch seconds) and the seed: no state, no clock, so any tick can be
computed on its own. Defaults describe Wuhan (humid subtropical: January mean ~4 °C, July ~29 °C; heavy
convective rain in the Meiyu season); they are simulation parameters, not constants of the domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

DAY_S = 86_400.0
_RAIN_STREAM = 0x7261696E  # separates the rain's random stream from the other uses of the seed


@dataclass(frozen=True, slots=True)
class Climate:
    mean_c: float = 16.8
    seasonal_amplitude_c: float = 12.5
    warmest_day_of_year: float = 200.0
    diurnal_amplitude_c: float = 5.0  # air; bridge decks swing more (structures.DECK_DIURNAL_C)
    warmest_hour: float = 15.0
    # Local clock for daily rhythms and collection rounds; None: the city's own, round(longitude / 15).
    utc_offset_h: float | None = None

    @property
    def offset_h(self) -> float:
        return 0.0 if self.utc_offset_h is None else self.utc_offset_h

    def local_hour(self, t: float) -> float:
        return (t / 3600.0 + self.offset_h) % 24.0

    def seasonal_c(self, t: float) -> float:
        day_of_year = (t / DAY_S) % 365.2425
        return self.mean_c + self.seasonal_amplitude_c * math.cos(
            2 * math.pi * (day_of_year - self.warmest_day_of_year) / 365.2425
        )

    def daily_wave(self, t: float) -> float:
        """-1 at the coolest hour of the day, +1 at the warmest."""
        return math.cos(2 * math.pi * (self.local_hour(t) - self.warmest_hour) / 24.0)

    def air_c(self, t: float) -> float:
        return self.seasonal_c(t) + self.diurnal_amplitude_c * self.daily_wave(t)


@dataclass(frozen=True, slots=True)
class RainEvent:
    start: float  # epoch seconds
    duration_s: float
    peak_mm_h: float

    def intensity(self, t: float) -> float:
        """A smooth storm: sin² rise and fall over the event, ``peak_mm_h`` in the middle."""
        phase = (t - self.start) / self.duration_s
        if not 0.0 <= phase <= 1.0:
            return 0.0
        return self.peak_mm_h * math.sin(math.pi * phase) ** 2


@dataclass(frozen=True, slots=True)
class RainConfig:
    events_per_day: float = 0.5  # random storms, Poisson per simulated UTC day
    peak_mm_h: tuple[float, float] = (5.0, 80.0)
    duration_h: tuple[float, float] = (0.5, 4.0)
    scheduled: tuple[RainEvent, ...] = field(default=())


class Rain:
    """Rain intensity over the city (mm/h): the scheduled storms plus random ones drawn per day."""

    def __init__(self, config: RainConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self._events = lru_cache(maxsize=8)(self._draw_day)

    def _draw_day(self, day: int) -> tuple[RainEvent, ...]:
        c = self.config
        rng = np.random.default_rng([self.seed, _RAIN_STREAM, day])
        count = int(rng.poisson(c.events_per_day)) if c.events_per_day > 0 else 0
        lo, hi = c.peak_mm_h
        return tuple(
            RainEvent(
                start=(day + float(rng.random())) * DAY_S,
                duration_s=float(rng.uniform(*c.duration_h)) * 3600.0,
                peak_mm_h=lo + (hi - lo) * float(rng.random()) ** 2,  # most storms are light
            )
            for _ in range(count)
        )

    def events(self, day: int) -> tuple[RainEvent, ...]:
        """Random storms starting on UTC day ``day`` (days since the epoch)."""
        return self._events(day)

    def intensity(self, t: float) -> float:
        day = math.floor(t / DAY_S)
        storms = (*self.events(day - 1), *self.events(day), *self.config.scheduled)
        return sum(s.intensity(t) for s in storms)


def wind_m_s(t: float) -> float:
    """City wind: a slow synoptic swing and a daily one, 0.5 to ~8 m/s."""
    synoptic = math.sin(2 * math.pi * t / (3.3 * DAY_S))
    daily = math.sin(2 * math.pi * t / DAY_S)
    return max(0.5, 3.0 + 2.2 * synoptic + 1.2 * daily)


def traffic(hour: float) -> float:
    """Relative traffic load by local hour: 0.1 at night, ~1 at the morning and evening peaks."""
    morning = math.exp(-(((hour - 8.0) / 1.5) ** 2))
    evening = math.exp(-(((hour - 18.0) / 2.0) ** 2))
    daytime = 0.45 if 7.0 <= hour <= 21.0 else 0.0
    return min(1.0, 0.1 + daytime + 0.55 * max(morning, evening))
