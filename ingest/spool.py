"""On-disk spool (adapter): batches that could not reach InfluxDB wait here, fsynced, in order.

One file per batch, named by a monotonically increasing number. A segment is written to a temporary
name, fsynced, renamed and the directory fsynced, so after a crash a segment is either whole or absent
(a leftover ``.tmp`` is removed at start). Segments are replayed oldest first and deleted once stored.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ingest import SpoolError

log = logging.getLogger(__name__)

_SUFFIX = ".lp"


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for leftover in directory.glob("*.tmp"):
                leftover.unlink()
            self._segments = sorted(int(p.stem) for p in directory.glob(f"*{_SUFFIX}"))
            self._bytes = sum(self._path(n).stat().st_size for n in self._segments)
        except OSError as exc:
            raise SpoolError(f"spool {directory} unusable: {exc}") from exc
        self._next = (self._segments[-1] + 1) if self._segments else 1
        if self._segments:
            log.info(
                "spool %s holds %d batches (%d bytes) to replay", directory, len(self._segments), self._bytes
            )

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:016d}{_SUFFIX}"

    @property
    def segments(self) -> int:
        return len(self._segments)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def is_empty(self) -> bool:
        return not self._segments

    def has_room(self, size: int) -> bool:
        return self._bytes + size <= self.max_bytes

    def append(self, body: bytes) -> None:
        """Store one batch durably; returns only after the data and its name are on disk."""
        with self._lock:
            number = self._next
            final = self._path(number)
            tmp = final.with_suffix(".tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    view = memoryview(body)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                tmp.rename(final)
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError as exc:
                raise SpoolError(f"cannot spool batch to {final}: {exc}") from exc
            self._next += 1
            self._segments.append(number)
            self._bytes += len(body)

    def oldest(self) -> tuple[int, bytes] | None:
        with self._lock:
            if not self._segments:
                return None
            number = self._segments[0]
        try:
            return number, self._path(number).read_bytes()
        except OSError as exc:
            raise SpoolError(f"cannot read spooled batch {number}: {exc}") from exc

    def remove(self, number: int) -> None:
        with self._lock:
            path = self._path(number)
            size = path.stat().st_size
            path.unlink()
            self._segments.remove(number)
            self._bytes -= size
