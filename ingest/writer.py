"""Durable writes: InfluxDB if it takes them, the spool if it does not; bad lines to the dead-letter store.

- Transient failures (timeouts, 5xx, 429) are retried with backoff for ``retry_budget_s``; then the
  batch is spooled (fsynced) so its messages can be acknowledged, and replayed in order later.
- While the spool holds anything, new batches join its tail, so replay keeps arrival order.
- A 400 / 422 means some lines are bad (a field type conflict, say). InfluxDB 1.x has already stored
  the good lines of a partial write but does not say which were dropped, so the batch is bisected:
  re-writing a good line is harmless (same series and timestamp overwrite) and the halves that still
  fail narrow down to the bad lines, which go to the dead-letter store with InfluxDB's reason.
- When the spool is full, nothing is acknowledged: the broker keeps queueing (backpressure).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from devices.contract import Rejection, RejectReason
from ingest import InfluxPointsRejected, InfluxTooLarge, InfluxTransientError, IngestError
from ingest.deadletter import DeadLetterStore
from ingest.lineproto import PRECISION
from ingest.retry import Backoff
from ingest.spool import Spool

log = logging.getLogger(__name__)


class LineSink(Protocol):
    def write(self, body: bytes, precision: str = ...) -> None: ...


@dataclass(frozen=True, slots=True)
class WriteReport:
    written: int = 0
    spooled: int = 0
    dead: int = 0


class ShuttingDown(IngestError):
    """The batch was neither written nor spooled because the worker is stopping; do not acknowledge."""


class DurableWriter:
    def __init__(
        self,
        sink: LineSink,
        spool: Spool,
        dead_letters: DeadLetterStore,
        *,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen value
        retry_budget_s: float = 5.0,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.dead_letters = dead_letters
        self.backoff = backoff
        self.retry_budget_s = retry_budget_s
        self.stopping = stopping or threading.Event()
        self._clock = clock
        self._wall_ms = wall_ms
        self._rand = random.Random()
        self.replayed = 0  # lines written from the spool

    # -- the write path ---------------------------------------------------------------------------
    def write(self, lines: list[str]) -> WriteReport:
        """Make ``lines`` durable. Returns when they are in InfluxDB or the spool (or dead-lettered)."""
        if not lines:
            return WriteReport()
        if self.spool.is_empty():
            try:
                dead = self._store(lines, self._clock() + self.retry_budget_s)
            except InfluxTransientError as exc:
                log.warning("InfluxDB unavailable, spooling %d lines: %s", len(lines), exc)
            else:
                return WriteReport(written=len(lines) - dead, dead=dead)
        self._spool_with_room(("\n".join(lines)).encode())
        return WriteReport(spooled=len(lines))

    def _spool_with_room(self, body: bytes) -> None:
        attempt = 0
        while not self.spool.has_room(len(body)):
            if self.stopping.is_set():
                raise ShuttingDown("spool full while stopping; batch left unacknowledged")
            attempt += 1
            if attempt == 1:
                log.error(
                    "spool full (%d bytes): not acknowledging until InfluxDB drains it", self.spool.nbytes
                )
            self.stopping.wait(self.backoff.next_delay(attempt, self._rand.random()))
        self.spool.append(body)

    def _store(self, lines: list[str], deadline: float) -> int:
        """Write ``lines``, bisecting around bad ones; returns how many were dead-lettered."""
        attempt = 0
        body = "\n".join(lines).encode()
        while True:
            try:
                self.sink.write(body, PRECISION)
            except (InfluxPointsRejected, InfluxTooLarge) as exc:
                if len(lines) == 1:
                    self._dead_letter(lines[0], str(exc))
                    return 1
                half = len(lines) // 2
                return self._store(lines[:half], deadline) + self._store(lines[half:], deadline)
            except InfluxTransientError as exc:
                attempt += 1
                delay = self.backoff.next_delay(attempt, self._rand.random(), exc.retry_after)
                if self._clock() + delay > deadline or self.stopping.is_set():
                    raise
                log.debug("write attempt %d failed (%s); retry in %.2f s", attempt, exc, delay)
                self.stopping.wait(delay)
            else:
                return 0

    def _dead_letter(self, line: str, detail: str) -> None:
        device = _device_of(line)
        rejection = Rejection(RejectReason.DB_REJECTED, f"InfluxDB refused the point: {detail}", "", device)
        self.dead_letters.record([rejection], self._wall_ms(), [line])

    # -- the replay path --------------------------------------------------------------------------
    def replay_once(self) -> bool:
        """Try to write the oldest spooled batch; True if one was stored (or dead-lettered) and removed."""
        head = self.spool.oldest()
        if head is None:
            return False
        number, body = head
        lines = body.decode().split("\n")
        try:
            self._store(lines, self._clock() + self.retry_budget_s)
        except InfluxTransientError as exc:
            log.debug("replay of spooled batch %d deferred: %s", number, exc)
            return False
        self.spool.remove(number)
        self.replayed += len(lines)
        log.info(
            "replayed spooled batch %d (%d lines), %d batches left", number, len(lines), self.spool.segments
        )
        return True


def _device_of(line: str) -> str | None:
    start = line.find(",device=")
    if start < 0:
        return None
    start += len(",device=")
    end = min((i for i in (line.find(",", start), line.find(" ", start)) if i >= 0), default=-1)
    return line[start:end] if end > start else None
