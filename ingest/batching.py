"""Batch accumulation (pure): what is waiting to be written, and when it is due."""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.contract import Rejection


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_lines: int = 5000  # InfluxDB's guidance: 5k-10k points per write
    max_bytes: int = 4 * 1024 * 1024
    max_age_s: float = 0.25  # bounds the lag a quiet stream adds


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
        self, lines: list[str], rejections: tuple[Rejection, ...], ack: int, oldest_ts_ms: int | None
    ) -> None:
        self.lines.extend(lines)
        self.nbytes += sum(len(line) for line in lines) + len(lines)
        self.rejections.extend(rejections)
        self.acks.append(ack)
        self.messages += 1
        if oldest_ts_ms is not None and (self.oldest_ts_ms is None or oldest_ts_ms < self.oldest_ts_ms):
            self.oldest_ts_ms = oldest_ts_ms

    def is_full(self, policy: BatchPolicy) -> bool:
        return len(self.lines) >= policy.max_lines or self.nbytes >= policy.max_bytes

    def is_due(self, now: float, policy: BatchPolicy) -> bool:
        return self.messages > 0 and (self.is_full(policy) or now - self.opened_at >= policy.max_age_s)
