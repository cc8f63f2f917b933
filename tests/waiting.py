"""Wait on a condition with a deadline: tests poll, they never sleep blindly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` if ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is a pause that is not a bare sleep
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        pause.wait(min(interval, remaining))
