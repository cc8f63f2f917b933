"""Batch accumulation (pure): what is waiting to be written, and when it is due."""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.contract import Rejection


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_lines: int = 5000  # InfluxDB's guidance: 5k-10k points per write
    max_bytes: int = 4 * 1024 * 1024
    max_age_s: float = 0.25  # bounds the lag a quiet stream adds

    def is_full(self, lines: int, nbytes: int) -> bool:
        return lines >= self.max_lines or nbytes >= self.max_bytes

    def is_due(self, lines: int, nbytes: int, age_s: float) -> bool:
        """Whether what waits (``lines`` / ``nbytes``, the oldest ``age_s`` old) should be written now."""
        return self.is_full(lines, nbytes) or age_s >= self.max_age_s


@dataclass(slots=True)
class Batch:
    """Lines to write, rejections to record and the broker acknowledgements they release."""

    opened_at: float
    lines: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)
    nbytes: int = 0
    oldest_ts_ms: int | None = None
    messages: int = 0

    def add(
        self,
        lines: list[str],
        rejections: tuple[Rejection, ...],
        ack: int,
        oldest_ts_ms: int | None,
        nbytes: int | None = None,  # the caller's count, when it has one already
    ) -> None:
        self.lines.extend(lines)
        self.nbytes += nbytes if nbytes is not None else sum(map(len, lines)) + len(lines)
        self.rejections.extend(rejections)
        self.acks.append(ack)
        self.messages += 1
        if oldest_ts_ms is not None and (self.oldest_ts_ms is None or oldest_ts_ms < self.oldest_ts_ms):
            self.oldest_ts_ms = oldest_ts_ms

    def is_full(self, policy: BatchPolicy) -> bool:
        return policy.is_full(len(self.lines), self.nbytes)

    def is_due(self, now: float, policy: BatchPolicy) -> bool:
        return self.messages > 0 and policy.is_due(len(self.lines), self.nbytes, now - self.opened_at)
