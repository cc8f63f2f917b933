"""Platform health: is the pipeline keeping up, and is anything lost or refused.

For the city's IT team and whoever is on call for CityWatch: readings received and stored per second,
the ingest lag (device timestamp to durable), rejected readings by reason (``citywatch ingest rejects``
has each one), the spool that holds batches while InfluxDB is away, the analytics workers' evaluation
time against their tick, their queues, and whether findings wait to be written.

Ingest counters are cumulative per worker (``citywatch_ingest``, every 10 s): rates are their
derivative per worker, then added up. The analytics counters (``citywatch_analytics``) come with each
KPI write, per partition.
"""

from __future__ import annotations

from typing import Any

from analytics.settings import AnalyticsSettings
from dashboards.common import PLATFORM
from dashboards.influxql import Query
from dashboards.panels import (
    GREEN,
    LINES,
    ORANGE,
    RED,
    Section,
    dashboard,
    stat_panel,
    steps,
    timeseries_panel,
)

_TICK_MS = AnalyticsSettings.model_fields["tick_s"].default * 1000.0


def _ingest() -> Section:
    return Section(
        "Ingest",
        [
            timeseries_panel(
                "Readings per second",
                "Readings received (decoded or rejected) and written to InfluxDB, all ingest workers.",
                [
                    Query("""
                        SELECT sum("received") AS "received", sum("written") AS "written" FROM (
                          SELECT non_negative_derivative(last("received"), 1s) AS "received",
                            non_negative_derivative(last("written"), 1s) AS "written"
                          FROM "citywatch_ingest" WHERE $timeFilter GROUP BY time($__interval), "worker")
                        WHERE $timeFilter GROUP BY time($__interval) fill(none)
                    """)
                ],
                unit="reqps",
            ),
            timeseries_panel(
                "Ingest lag",
                "Device timestamp to durable, for the oldest reading of each batch (worst per worker).",
                [
                    Query("""
                        SELECT max("lag_s") AS "lag" FROM "citywatch_ingest" WHERE $timeFilter
                        GROUP BY time($__interval), "worker" fill(none)
                    """).alias("$tag_worker")
                ],
                unit="s",
                thresholds=steps(GREEN, (5.0, ORANGE), (60.0, RED)),
                style=LINES,
            ),
            timeseries_panel(
                "Rejected readings by reason",
                "Readings refused per interval, by reason (docs/telemetry.md, Rejections); "
                "`citywatch ingest rejects` lists them.",
                [
                    Query("""
                        SELECT non_negative_difference(last(/^rejected_/)) FROM "citywatch_ingest"
                        WHERE $timeFilter GROUP BY time($__interval), "worker" fill(none)
                    """).alias("$tag_worker $col")
                ],
                bars=True,
                stacked=True,
            ),
            timeseries_panel(
                "Spool",
                "Bytes of batches waiting on disk for InfluxDB; past its limit a worker stops acknowledging "
                "and the broker queues.",
                [
                    Query("""
                        SELECT max("spool_bytes") AS "spool" FROM "citywatch_ingest" WHERE $timeFilter
                        GROUP BY time($__interval), "worker" fill(none)
                    """).alias("$tag_worker")
                ],
                unit="bytes",
            ),
        ],
    )


def _analytics() -> Section:
    return Section(
        "Analytics",
        [
            timeseries_panel(
                "Evaluation time per tick",
                f"How long one evaluation of a partition takes; the dashed line is the default tick "
                f"({_TICK_MS / 1000:g} s): above it the worker falls behind.",
                [
                    Query("""
                        SELECT max("tick_ms") AS "tick" FROM "citywatch_analytics" WHERE $timeFilter
                        GROUP BY time($__interval), "partition" fill(none)
                    """).alias("$tag_partition")
                ],
                unit="ms",
                thresholds=steps(GREEN, (_TICK_MS, RED)),
                style=LINES,
                span=8,
            ),
            timeseries_panel(
                "Readings evaluated per second",
                "Readings the analytics took in, per partition; dropped: the queue was full.",
                [
                    Query("""
                        SELECT non_negative_derivative(last("readings"), 1s) AS "readings",
                          non_negative_derivative(last("dropped"), 1s) AS "dropped"
                        FROM "citywatch_analytics" WHERE $timeFilter
                        GROUP BY time($__interval), "partition" fill(none)
                    """).alias("$tag_partition $col")
                ],
                unit="reqps",
                span=8,
            ),
            timeseries_panel(
                "Messages per tick",
                "MQTT messages each evaluation took from the queue.",
                [
                    Query("""
                        SELECT max("queued") AS "queued" FROM "citywatch_analytics" WHERE $timeFilter
                        GROUP BY time($__interval), "partition" fill(none)
                    """).alias("$tag_partition")
                ],
                span=8,
            ),
            stat_panel(
                "Findings waiting to be written",
                "Finding transitions held in memory because InfluxDB refused them (they go with the next "
                "write; none should stay).",
                [
                    Query("""
                        SELECT sum("waiting") AS "waiting" FROM (
                          SELECT last("findings_unwritten") AS "waiting" FROM "citywatch_analytics"
                          WHERE $timeFilter GROUP BY "partition")
                    """)
                ],
                thresholds=steps(GREEN, (1.0, RED)),
                decimals=0,
                span=8,
            ),
            stat_panel(
                "Open findings",
                "Findings open now, all partitions.",
                [
                    Query("""
                        SELECT sum("open") AS "open" FROM (
                          SELECT last("findings_open") AS "open" FROM "citywatch_analytics"
                          WHERE $timeFilter GROUP BY "partition")
                    """)
                ],
                decimals=0,
                span=8,
            ),
            stat_panel(
                "Analytics write errors",
                "InfluxDB writes of findings, KPIs or self-metrics that failed, all partitions.",
                [
                    Query("""
                        SELECT sum("errors") AS "write errors" FROM (
                          SELECT last("write_errors") AS "errors" FROM "citywatch_analytics"
                          WHERE $timeFilter GROUP BY "partition")
                    """)
                ],
                thresholds=steps(GREEN, (1.0, ORANGE)),
                decimals=0,
                span=8,
            ),
        ],
    )


def build() -> dict[str, Any]:
    return dashboard(
        PLATFORM,
        "CityWatch: platform health",
        "Ingest rate and lag, rejects by reason, spool, and the analytics workers' tick time and queues.",
        [_ingest(), _analytics()],
        time_from="now-6h",
    )
