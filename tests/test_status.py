"""The live status line of `citywatch run` (pure formatting)."""

from __future__ import annotations

import math

from analytics.worker import AnalyticsSnapshot
from citywatch.status import Sample, format_status
from ingest.metrics import Snapshot


def snap(written: int, rejected: dict[str, int] | None = None) -> Snapshot:
    reasons = rejected or {}
    return Snapshot(
        written + sum(reasons.values()), written, sum(reasons.values()), 0, 0, 2_500_000, 0.42, reasons
    )


def test_status_line_shows_rates_totals_rejects_by_reason_lag_spool_and_sim_time() -> None:
    before = Sample(100.0, 1_000, snap(1_000))
    now = Sample(160.0, 7_000, snap(6_940, {"unregistered": 50, "out_of_range": 10}))
    line = format_status(now, before, sim_time=1_795_000_000.0)
    assert line == (
        "published 100/s | stored 99/s (6,940 total) | rejected 60 (unregistered 50, out_of_range 10)"
        " | lag 0.42 s | spool 2.5 MB | sim 2026-11-18 11:06Z"
    )


def analytics(
    rate: float, lower: float, open_findings: dict[str, int], state: str = "running"
) -> AnalyticsSnapshot:
    return AnalyticsSnapshot(state, rate, lower, open_findings, 0, 0, 0, 0, 3.2, 0)


def test_status_line_shows_the_city_lighting_rate_and_what_is_open() -> None:
    before = Sample(100.0, 0, snap(0))
    now = Sample(160.0, 600, snap(600))
    a = analytics(0.9875, 0.9750, {"lamp_failure": 3, "circuit_outage": 1, "bin_full": 7, "offline_lamp": 2})
    line = format_status(now, before, sim_time=None, analytics=a)
    assert line.endswith(
        "| lighting 98.75% (>= 97.50%) | findings 13 open (bin_full 7, lamp_failure 3, offline_lamp 2)"
    )


def test_status_line_says_when_analytics_is_not_judging_yet() -> None:
    before = Sample(100.0, 0, snap(0))
    now = Sample(160.0, 0, snap(0))
    assert format_status(now, before, None, analytics(math.nan, math.nan, {}, "restoring")).endswith(
        "| analytics restoring"
    )
    assert format_status(now, before, None, analytics(math.nan, math.nan, {})).endswith(
        "| lighting rate - (nothing due) | findings 0 open"
    )
