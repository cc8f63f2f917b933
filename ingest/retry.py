"""Retry policy (pure): how long to wait before attempt n, with jitter and a cap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.1
    factor: float = 2.0
    cap_s: float = 10.0
    jitter: float = 0.5  # fraction of the delay drawn at random, so workers do not retry in lockstep

    def next_delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """Delay before retry ``attempt`` (1-based). ``rand`` in [0, 1) comes from the caller.

        A server's Retry-After is honoured (capped): InfluxDB 2.x answers 429 / 503 with one.
        """
        delay = min(self.cap_s, self.base_s * self.factor ** max(0, attempt - 1))
        delay *= 1.0 - self.jitter + self.jitter * rand
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap_s))
        return delay
