"""The desk's findings into InfluxDB's ``finding`` series, as the analytics worker writes its own (adapter).

``FindingWriter.on_events`` writes each event as ``analytics.lineproto.finding_line`` with the rule's
``RuleInfo`` and its own partition tag (``commands`` by default), so Grafana and the reports see the
finding beside the others, and an analytics worker's restart (which reads back only its own partition's
open findings) never adopts it. Lines InfluxDB did not take are kept (up to ``max_pending``) and written
with the next events or ``flush``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from analytics.findings import FindingEvent
from analytics.lineproto import finding_line
from api.commanding.findings import COMMAND_NOT_EFFECTIVE
from ingest import InfluxError
from ingest.influx import InfluxV1

log = logging.getLogger(__name__)


class FindingWriter:
    """``FindingSink`` to InfluxDB."""

    def __init__(self, influx: InfluxV1, partition: str = "commands", *, max_pending: int = 10_000) -> None:
        self.influx = influx
        self.partition = partition
        self.max_pending = max_pending
        self._pending: list[str] = []

    def close(self) -> None:
        """Write what waits (if InfluxDB takes it) and close the client."""
        self.flush()
        self.influx.close()

    def on_events(self, events: Sequence[FindingEvent], now_ms: int) -> None:
        self._pending.extend(finding_line(e, COMMAND_NOT_EFFECTIVE, self.partition) for e in events)
        self.flush()

    def flush(self) -> bool:
        """Write what waits; False when InfluxDB did not take it (it waits for the next try)."""
        if not self._pending:
            return True
        try:
            self.influx.write("\n".join(self._pending).encode())
        except InfluxError as exc:
            if len(self._pending) > self.max_pending:
                lost = len(self._pending) - self.max_pending
                del self._pending[:lost]
                log.error("InfluxDB away: %d command findings dropped, %d kept", lost, self.max_pending)
            log.warning("%d command findings wait for InfluxDB: %s", len(self._pending), exc)
            return False
        self._pending.clear()
        return True
