"""Simulated time and publishing pace: pure policy objects; the loop that sleeps is ``runner``.

``SimClock`` maps wall time to simulated time: ``start + (wall - wall_start) * speed``, but never ahead of
the wall clock. A run that starts a week in the past at speed 1000 replays that week in ten minutes, then
runs at 1x: devices never report from the future. ``RateLimit`` is a token bucket of readings per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimClock:
    start: float  # simulated epoch seconds at wall_start
    speed: float  # simulated seconds per wall second; math.inf: as fast as the wall clock allows
    wall_start: float  # wall epoch seconds when the run began

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, not {self.speed}")

    def now(self, wall: float) -> float:
        """Simulated time at wall time ``wall``."""
        elapsed = wall - self.wall_start
        if elapsed <= 0:
            return min(wall, self.start)
        if math.isinf(self.speed):
            return wall
        return min(wall, self.start + elapsed * self.speed)

    def wall_at(self, sim: float) -> float:
        """The earliest wall time at which simulated time reaches ``sim``."""
        if sim <= self.start:
            return max(self.wall_start, sim)
        paced = (
            self.wall_start if math.isinf(self.speed) else self.wall_start + (sim - self.start) / self.speed
        )
        return max(paced, sim)


@dataclass(slots=True)
class RateLimit:
    """Token bucket: at most ``per_second`` on average, bursts up to ``burst``."""

    per_second: float
    burst: float
    _tokens: float = 0.0
    _at: float | None = None

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"rate must be > 0, not {self.per_second}")
        self.burst = max(self.burst, 1.0)
        self._tokens = self.burst

    def delay(self, now: float, amount: float) -> float:
        """Seconds to wait before spending ``amount`` tokens at ``now``; spends them (the wait is owed)."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.per_second
