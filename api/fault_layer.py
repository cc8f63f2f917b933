"""The fault map's data in memory (adapter): the registry's asset positions and the live alerts placed
on them, so a map request costs array arithmetic, never a 100k-row query.

Positions are read from the registry in a worker thread when the API starts and again every
``map_positions_refresh_s`` (``keep_positions_fresh``, run by the map router's lifespan); until the first
read ends the map answers 503. The live alerts are re-read when a request finds the table older than
``map_faults_check_s`` *and* the store has moved on (a new transition, or new positions): one cheap
query most of the time, one read of the live alerts after a change. Readers take the current table (an
immutable value) without a lock; one rebuild runs at a time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio

from analytics.alerts import AlertError
from analytics.alerts.store import AlertStore
from api import Unavailable
from api.fault_map import NO_POSITIONS, AssetRow, FaultTable, Positions, fault_table, positions_from_assets
from devices import RegistryError
from devices.registry import Registry

log = logging.getLogger(__name__)

# A failed read of the registry is tried again sooner than the refresh interval (CHOICE: the map
# should come back within a minute of the database).
_RETRY_S: Final = 30.0
# A table is rebuilt after this many check intervals even when no transition moved (a safety net for a
# change the store records without a transition; CHOICE).
_REBUILD_CHECKS: Final = 30


@dataclass(frozen=True, slots=True)
class _Built:
    table: FaultTable
    cursor: int  # the store's last transition id when read
    positions: Positions  # the positions it was placed on
    checked: float  # monotonic seconds of the last check
    read: float  # monotonic seconds of the read


class FaultLayer:
    """Asset positions and the live alerts on them, shared by every request of one API process."""

    def __init__(
        self,
        registry: Registry,
        alerts: AlertStore,
        *,
        refresh_s: float,
        check_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry, self.alerts = registry, alerts
        self.refresh_s, self.check_s, self.monotonic = refresh_s, check_s, monotonic
        self.positions: Positions = NO_POSITIONS
        self.ready = threading.Event()  # set once the first positions are in
        self._built: _Built | None = None
        self._rebuild = threading.Lock()

    def load_positions(self) -> int:
        """Read every asset's position from the registry (a worker thread); returns how many."""
        started = time.perf_counter()
        with contextlib.closing(self.registry.places()) as places:
            rows = [AssetRow(*place) for place in places]
        self.positions = positions_from_assets(rows)
        self.ready.set()
        log.info("fault map: %d asset positions in %.1f s", len(rows), time.perf_counter() - started)
        return len(rows)

    async def keep_positions_fresh(self) -> None:
        """Load the positions now and every ``refresh_s`` (until cancelled); a failure is retried."""
        while True:
            wait = self.refresh_s
            try:
                # abandon_on_cancel: shutting down never waits for a read of a million rows
                await anyio.to_thread.run_sync(self.load_positions, abandon_on_cancel=True)
            except RegistryError as exc:
                wait = min(wait, _RETRY_S)
                log.warning("fault map: asset positions not read, retrying in %.0f s: %s", wait, exc)
            await anyio.sleep(wait)

    def table(self) -> FaultTable:
        """The live alerts, placed: re-read when stale and changed (called from the routes' threads)."""
        if not self.ready.is_set():
            raise Unavailable("the fault map is still reading the asset positions: try again in a moment")
        built, now = self._built, self.monotonic()
        if built is not None and now - built.checked < self.check_s:
            return built.table
        with self._rebuild:
            built = self._built  # another thread may have rebuilt it while this one waited
            if built is not None and now - built.checked < self.check_s:
                return built.table
            try:
                self._built = self._refresh(built, now)
            except AlertError as exc:
                if built is None:
                    raise Unavailable(f"the fault map cannot read the alerts: {exc}") from exc
                log.warning(
                    "fault map: alerts not re-read, showing those of %.0f s ago: %s", now - built.read, exc
                )
                return built.table
            return self._built.table

    def _refresh(self, built: _Built | None, now: float) -> _Built:
        cursor, positions = self.alerts.last_transition_id(), self.positions
        if (
            built is not None
            and built.cursor == cursor
            and built.positions is positions
            and now - built.read < self.check_s * _REBUILD_CHECKS
        ):
            return _Built(built.table, cursor, positions, now, built.read)
        table = fault_table(self.alerts.live_by_key().values(), positions)
        return _Built(table, cursor, positions, now, now)
