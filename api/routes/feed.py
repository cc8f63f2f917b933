"""The live feed: alert transitions and rate changes as server-sent events.

It polls the stores with a cursor instead of listening inside this process, so a transition made by the
analytics worker, the command line or another API process reaches every client. Events:

- ``ready`` once, with the cursor the stream starts after;
- ``alert`` for each transition (id: the transition's row id, so a reconnecting ``EventSource`` resumes
  after the last one it saw via ``Last-Event-ID``); a crew user gets its own crew's only;
- ``rate`` when the lighting or intact rate of the city or a district moved (the latest counts, summed
  over partitions), at most every ``feed_rate_poll_s``;
- a comment as heartbeat every ``feed_heartbeat_s`` (proxies keep the connection open).

A connection ends after ``feed_max_s`` (the client reconnects and resumes), and the number of clients is
capped (503 beyond).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Final

import anyio
import orjson
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from analytics.alerts import AlertError
from api.deps import Services
from api.rate_math import RateSnapshot, changed, latest_snapshots
from api.roles import V1, Principal, may_touch_crew
from api.routes import GUARDED
from api.schemas import AlertOut, TransitionOut
from api.security import Caller, Svc
from api.windows import DAY_MS, MINUTE_MS
from ingest import InfluxError

log = logging.getLogger(__name__)

router = APIRouter(prefix=V1, tags=["feed"], responses=GUARDED)

_BATCH: Final = 200
_RATE_LOOKBACK_MS: Final = 15 * MINUTE_MS  # the workers write KPI counts every minute
_FEED_SCOPES: Final = ("city", "district")
# One server-sent event, as the OpenAPI document declares it (``data`` is JSON text).
_EVENT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["ready", "alert", "rate"]},
        "data": {"type": "string", "description": "JSON: {after} | {transition, alert} | a rate snapshot"},
        "id": {"type": "string", "description": "alert events: the transition's row id (Last-Event-ID)"},
    },
    "required": ["event", "data"],
}


class _Feed:
    def __init__(self, svc: Services, caller: Principal, cursor: int, duration_s: float) -> None:
        self.svc, self.caller, self.cursor, self.duration_s = svc, caller, cursor, duration_s
        self.rates: dict[tuple[str, str], RateSnapshot] = {}
        self._open = True

    def close(self) -> None:
        """Give the client's place back, once (the stream's end, or the response's background task when
        the stream never started)."""
        if self._open:
            self._open = False
            self.svc.feed.leave()

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        svc = self.svc
        svc.metrics.feed_clients.inc()
        try:
            deadline = anyio.current_time() + self.duration_s
            next_rates = 0.0
            yield ServerSentEvent(event="ready", data=orjson.dumps({"after": self.cursor}).decode())
            while anyio.current_time() < deadline:
                got = 0
                async for event in self._alerts():
                    got += 1
                    yield event
                if anyio.current_time() >= next_rates:
                    next_rates = anyio.current_time() + svc.settings.feed_rate_poll_s
                    for event in await self._rates():
                        yield event
                if got < _BATCH:
                    left = deadline - anyio.current_time()
                    await anyio.sleep(max(0.0, min(svc.settings.feed_poll_s, left)))
        finally:
            svc.metrics.feed_clients.dec()
            self.close()

    async def _alerts(self) -> AsyncIterator[ServerSentEvent]:
        svc = self.svc
        try:
            rows = await anyio.to_thread.run_sync(svc.alerts.transitions_after, self.cursor, _BATCH)
        except AlertError as exc:
            log.warning("live feed: alerts unreadable, retrying: %s", exc)
            return
        now = svc.clock_ms()
        for row in rows:
            self.cursor = row.row_id
            if not may_touch_crew(self.caller, row.alert.crew):
                continue
            alert = AlertOut.of(row.alert, svc.alert_service.policy.title(row.alert.rule), now)
            data = {
                "transition": TransitionOut.of(row.transition).model_dump(mode="json"),
                "alert": alert.model_dump(mode="json"),
            }
            yield ServerSentEvent(id=str(row.row_id), event="alert", data=orjson.dumps(data).decode())

    async def _rates(self) -> list[ServerSentEvent]:
        svc = self.svc
        now = svc.clock_ms()
        try:
            series = await anyio.to_thread.run_sync(
                svc.reader.latest_kpis, _FEED_SCOPES, now - _RATE_LOOKBACK_MS, now + DAY_MS
            )
        except InfluxError as exc:
            log.warning("live feed: rates unreadable, retrying: %s", exc)
            return []
        events = []
        for key, snap in sorted(latest_snapshots(series).items()):
            if changed(self.rates.get(key), snap):
                self.rates[key] = snap
                data = {
                    "scope": snap.scope,
                    "scope_id": snap.scope_id,
                    "at_ms": snap.at_ms,
                    "lighting_rate": snap.lighting_rate,
                    "intact_rate": snap.intact_rate,
                }
                events.append(ServerSentEvent(event="rate", data=orjson.dumps(data).decode()))
        return events


def _resume_from(after: int | None, last_event_id: str | None) -> int | None:
    if after is not None:
        return after
    if last_event_id is not None and last_event_id.isdigit() and len(last_event_id) < 19:
        return int(last_event_id)
    return None


@router.get(
    "/feed",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "server-sent events: ready, alert, rate",
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
        }
    },
)
async def feed(
    caller: Caller,
    svc: Svc,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="start after this alert event id")] = None,
    max_s: Annotated[
        float | None, Query(gt=0, le=86400, description="end the stream after this long")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> EventSourceResponse:
    """Alert transitions and rate changes as they happen (``text/event-stream``)."""
    cursor = _resume_from(after, last_event_id)
    if cursor is None:
        cursor = await anyio.to_thread.run_sync(svc.alerts.last_transition_id)
    svc.feed.enter()
    duration = min(max_s or svc.settings.feed_max_s, svc.settings.feed_max_s)
    stream = _Feed(svc, caller, cursor, duration)
    return EventSourceResponse(
        stream.events(), ping=svc.settings.feed_heartbeat_s, background=BackgroundTask(stream.close)
    )
