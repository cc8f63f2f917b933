"""The one-line live status `citywatch run` shows: readings flowing, rejects, lag, spool."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.text import Text

from analytics.worker import AnalyticsSnapshot
from ingest.metrics import Snapshot
from ingest.worker import IngestWorker


class Publishing(Protocol):
    @property
    def published(self) -> int: ...

    @property
    def sim_time(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    published: int
    ingest: Snapshot


def analytics_part(a: AnalyticsSnapshot) -> str:
    """The analytics half of the line: the city's lighting rate and what is open."""
    if a.state != "running":
        return f"analytics {a.state}"
    if math.isnan(a.lighting_rate):
        rate = "lighting rate - (nothing due)"
    else:
        rate = f"lighting {100 * a.lighting_rate:.2f}%"
        if not math.isnan(a.lighting_rate_lower):
            rate += f" (>= {100 * a.lighting_rate_lower:.2f}%)"
    total = sum(a.open_findings.values())
    top = ", ".join(f"{k} {v}" for k, v in sorted(a.open_findings.items(), key=lambda kv: -kv[1])[:3])
    return f"{rate} | findings {total} open" + (f" ({top})" if top else "")


def format_status(
    now: Sample, before: Sample, sim_time: float | None, analytics: AnalyticsSnapshot | None = None
) -> str:
    """One line: pure, so it can be tested."""
    dt = max(1e-9, now.at - before.at)
    pub_rate = (now.published - before.published) / dt
    stored_rate = (now.ingest.written - before.ingest.written) / dt
    s = now.ingest
    reasons = ", ".join(
        f"{k} {v}" for k, v in sorted(s.rejected_by_reason.items(), key=lambda kv: -kv[1])[:3]
    )
    parts = [
        f"published {pub_rate:,.0f}/s",
        f"stored {stored_rate:,.0f}/s ({s.written:,} total)",
        f"rejected {s.rejected:,}" + (f" ({reasons})" if reasons else ""),
        f"lag {s.lag_s:.2f} s",
        f"spool {s.spool_bytes / 1e6:.1f} MB",
    ]
    if analytics is not None:
        parts.append(analytics_part(analytics))
    if sim_time is not None:
        parts.append("sim " + time.strftime("%Y-%m-%d %H:%M", time.gmtime(sim_time)) + "Z")
    return " | ".join(parts)


class Analysing(Protocol):
    def snapshot(self) -> AnalyticsSnapshot: ...


class StatusLine:
    def __init__(
        self, worker: IngestWorker, sim: Publishing | None, analytics: Analysing | None = None
    ) -> None:
        self.worker = worker
        self.sim = sim
        self.analytics = analytics
        self.console = Console(highlight=False)

    def _sample(self) -> Sample:
        published = self.sim.published if self.sim is not None else 0
        return Sample(time.monotonic(), published, self.worker.metrics.snapshot())

    def run(self, stop: threading.Event, deadline: float | None, *, live: bool) -> None:
        """Refresh every second on a terminal, print a line every 10 s otherwise, until stop or deadline."""
        # Rates over the last minute: devices report once a minute, so a one-second rate would flicker
        # between a burst and zero.
        window: deque[Sample] = deque([self._sample()])
        period = 1.0 if live else 10.0
        with (
            Live(Text("starting ..."), console=self.console, auto_refresh=False, transient=False)
            if live
            else _Null() as view
        ):
            while not stop.wait(period):
                now = self._sample()
                while len(window) > 1 and now.at - window[1].at >= 60.0:
                    window.popleft()
                line = format_status(
                    now,
                    window[0],
                    self.sim.sim_time if self.sim else None,
                    self.analytics.snapshot() if self.analytics is not None else None,
                )
                window.append(now)
                if live:
                    view.update(Text(line), refresh=True)
                else:
                    self.console.print(line)
                if deadline is not None and time.monotonic() >= deadline:
                    return


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, *_args: object, **_kw: object) -> None:
        return None
