"""Dead-letter store (adapter): every rejected reading or message, with its reason, for an operator.

A SQLite file (WAL, synchronous=FULL so a committed rejection survives a crash, busy timeout so the
workers of one host can share it). It keeps the newest ``max_rows`` rows: a device spewing garbage
must not fill the disk. Rejections are recorded before their message is acknowledged.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from devices.contract import Rejection, RejectReason

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    worker TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    topic TEXT NOT NULL,
    device TEXT,
    batch_index INTEGER,
    payload TEXT
);
CREATE INDEX IF NOT EXISTS rejects_reason ON rejects (reason, at_ms);
"""

_PAYLOAD_EXCERPT = 2048


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    at_ms: int
    worker: str
    reason: str
    detail: str
    topic: str
    device: str | None
    batch_index: int | None
    payload: str | None


class DeadLetterStore:
    def __init__(self, path: Path, worker: str, max_rows: int = 100_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._inserted = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(
        self,
        rejections: Iterable[Rejection],
        at_ms: int,
        payloads: Iterable[str | None] | None = None,
    ) -> int:
        """Store rejections in one transaction; returns how many."""
        rows = [
            (
                at_ms,
                self.worker,
                r.reason.value,
                r.detail,
                r.topic,
                r.device,
                r.index,
                p[:_PAYLOAD_EXCERPT] if p else None,
            )
            for r, p in zip(rejections, payloads if payloads is not None else _nones(), strict=False)
        ]
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO rejects (at_ms, worker, reason, detail, topic, device, batch_index, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
            self._inserted += len(rows)
            if self._inserted >= 1000:
                self._inserted = 0
                self._prune()
        return len(rows)

    def _prune(self) -> None:
        self._db.execute(
            "DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - ?", (self.max_rows,)
        )

    def list(
        self, *, reason: RejectReason | None = None, device: str | None = None, limit: int = 50
    ) -> list[DeadLetter]:
        """Newest first."""
        sql = "SELECT id, at_ms, worker, reason, detail, topic, device, batch_index, payload FROM rejects"
        where: list[str] = []
        args: list[object] = []
        if reason is not None:
            where.append("reason = ?")
            args.append(reason.value)
        if device is not None:
            where.append("device = ?")
            args.append(device)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            return [DeadLetter(*row) for row in self._db.execute(sql, args)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(
                self._db.execute("SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY 2 DESC")
            )


def _nones() -> Iterable[None]:
    while True:
        yield None
