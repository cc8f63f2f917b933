"""Budgets that keep one caller from wearing the service down (pure: the time is passed in).

- ``LoginThrottle``: after ``max_failures`` failed sign-ins for a name (or from one address) within
  ``window_s``, further attempts are refused until the oldest failure leaves the window. Guessing a
  password then takes years, and a person who mistyped waits minutes (OWASP authentication cheat sheet:
  throttle per account, not only per address).
- ``RequestBudget``: a token bucket per caller, ``rate`` requests a second with bursts of ``burst``; a
  refused request learns how long to wait.

Both hold at most ``max_keys`` callers, dropping the stalest, so a flood of made-up names cannot grow
them without bound. Not thread-safe: the adapter holds a lock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


class LoginThrottle:
    def __init__(self, max_failures: int, window_s: float, max_keys: int = 100_000) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now_s: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now_s - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def wait_s(self, keys: tuple[str, ...], now_s: float) -> float:
        """0 when a sign-in may be tried now, else the seconds until it may."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now_s)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now_s)
        return wait

    def failed(self, keys: tuple[str, ...], now_s: float) -> None:
        for key in keys:
            times = self._failures.setdefault(key, deque(maxlen=self.max_failures))
            times.append(now_s)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, name_key: str) -> None:
        """A good password clears the name's failures (not the address's: it may be guessing others)."""
        self._failures.pop(name_key, None)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at_s: float


class RequestBudget:
    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now_s: float) -> float:
        """Spend one request of ``key``'s budget: 0 when it may go ahead, else the seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now_s)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now_s - bucket.at_s) * self.rate)
            bucket.at_s = now_s
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate
