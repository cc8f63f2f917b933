"""Drainage: pump stations' wet wells and pumps, flood points' water depth, and the rain.

For the drainage operators and the flood response on duty: is a wet well rising towards its overflow
level, do the pumps start at the start level and stop at the stop level, which pump is in fault, how
deep the water stands at each flood point against the 15 / 27 / 40 cm ladder, and how hard it rains.

A station's start, stop and overflow levels are its own (registry params): the wet-well panel reads them
from the station's ``asset`` point and draws them as lines ("config from query results"), one panel per
station. The depth ladder is the detector's default (``DrainageRules.depth_ladder_cm``).
"""

from __future__ import annotations

from typing import Any

from analytics.drainage_rules import DrainageRules
from dashboards.common import DRAINAGE, alert_annotations, one_of, open_findings, rules
from dashboards.influxql import Query, variable
from dashboards.panels import (
    BANDS,
    GREEN,
    LINES,
    RED,
    Section,
    dashboard,
    ladder,
    steps,
    table_panel,
    timeline_panel,
    timeseries_panel,
    transform,
    value_map,
)

_RULES = DrainageRules()
DRAINAGE_RULES = rules("drainage", "flood", also=("offline_pump_station", "offline_flood_gauge"))


def _variables() -> list[Any]:
    return [
        variable(
            "station",
            "Pump station",
            """SELECT "device" FROM "asset" WHERE "kind" = 'pump_station'""",
            include_all=True,
            multi=True,
        ),
        variable(
            "gauge",
            "Flood point",
            """SELECT "device" FROM "asset" WHERE "kind" = 'flood_gauge' AND "station" =~ /^$station$/""",
            include_all=True,
            multi=True,
            description="The flood gauges of the chosen stations (a gauge's registry param station).",
        ),
    ]


def _levels_as_lines() -> list[Any]:
    """Query B's stop, start and overflow levels become the wet-well panel's threshold lines."""
    return [
        transform(
            "configFromData",
            configRefId="B",
            mappings=[
                {"fieldName": "stop", "handlerKey": "threshold1"},
                {"fieldName": "start", "handlerKey": "threshold1"},
                {"fieldName": "overflow", "handlerKey": "threshold1"},
                {"fieldName": "Time", "handlerKey": "__ignore"},
            ],
            applyTo={"id": "byFrameRefID", "options": "A"},
        )
    ]


def _stations() -> Section:
    level = timeseries_panel(
        "Wet-well level, $station",
        "Water level above the well floor, with the station's stop, start and overflow levels (dashed, "
        "from the registry). A duty pump should start at the start level and the level fall back to the stop "
        "level; at the overflow level the sewers back up.",
        [
            Query("""
                SELECT mean("wet_well_level") AS "wet-well level" FROM "pump_station"
                WHERE "device" =~ /^$station$/ AND $timeFilter GROUP BY time($__interval) fill(none)
            """),
            Query("""
                SELECT last("stop_level_m") AS "stop", last("start_level_m") AS "start",
                  last("overflow_level_m") AS "overflow"
                FROM "asset" WHERE "kind" = 'pump_station' AND "device" =~ /^$station$/
            """)
            .ref("B")
            .table(),
        ],
        unit="lengthm",
        thresholds=steps(GREEN),
        style=LINES,
        span=12,
    )
    level.transformations(_levels_as_lines()).repeat("station")
    return Section(
        "Pump stations",
        [
            level,
            timeline_panel(
                "Pumps running, $station",
                "Each pump's run signal (one row per pump the station has).",
                [
                    Query("""
                        SELECT last(/^pump[0-9]+_running$/) FROM "pump_station"
                        WHERE "device" =~ /^$station$/ AND $timeFilter
                        GROUP BY time($__interval), "device" fill(previous)
                    """).alias("$tag_device $col")
                ],
                mappings=[value_map([("true", "running", GREEN), ("false", "stopped", "transparent")])],
                span=12,
            ),
            timeline_panel(
                "Pump faults and mains, $station",
                "Each pump's fault relay, and the station's mains supply.",
                [
                    Query("""
                        SELECT last(/^pump[0-9]+_fault$/), last("power_ok") AS "mains" FROM "pump_station"
                        WHERE "device" =~ /^$station$/ AND $timeFilter
                        GROUP BY time($__interval), "device" fill(previous)
                    """).alias("$tag_device $col")
                ],
                mappings=[value_map([("true", "on", RED), ("false", "off", GREEN)])],
                span=12,
            ),
            timeseries_panel(
                "Inflow and outflow, $station",
                "The station's inflow estimate against its discharge: a rising gap fills the well.",
                [
                    Query("""
                        SELECT mean("inflow") AS "inflow", mean("outflow") AS "outflow" FROM "pump_station"
                        WHERE "device" =~ /^$station$/ AND $timeFilter
                        GROUP BY time($__interval), "device" fill(none)
                    """).alias("$tag_device $col")
                ],
                unit="m3/h",
                span=12,
            ),
        ],
    )


def _flood_points() -> Section:
    shallow, engine, closed = _RULES.depth_ladder_cm
    return Section(
        "Flood points and rain",
        [
            timeseries_panel(
                "Water depth at the flood points",
                f"Road water depth per gauge. Bands: {shallow:g} cm (one lane's design limit, level 3), "
                f"{engine:g} cm (engine air intake, level 2), {closed:g} cm (close the road, level 1).",
                [
                    Query("""
                        SELECT max("water_depth") AS "water depth" FROM "flood_gauge"
                        WHERE "device" =~ /^$gauge$/ AND $timeFilter
                        GROUP BY time($__interval), "device" fill(none)
                    """).alias("$tag_device")
                ],
                unit="lengthcm",
                thresholds=ladder(shallow, engine, closed),
                style=BANDS,
                min_value=0.0,
                span=12,
            ),
            timeseries_panel(
                "Rainfall",
                "Rain intensity at the flood gauges and the stations' rain gauges.",
                [
                    Query("""
                        SELECT mean("rainfall") AS "rainfall" FROM "flood_gauge"
                        WHERE "device" =~ /^$gauge$/ AND $timeFilter
                        GROUP BY time($__interval), "device" fill(none)
                    """).alias("$tag_device"),
                    Query("""
                        SELECT mean("rainfall") AS "rainfall" FROM "pump_station"
                        WHERE "device" =~ /^$station$/ AND $timeFilter
                        GROUP BY time($__interval), "device" fill(none)
                    """)
                    .ref("B")
                    .alias("$tag_device"),
                ],
                unit="mm/h",
                bars=True,
                span=12,
            ),
            table_panel(
                "Open drainage and flood findings",
                "Open findings of the station and flood-point rules, and silent stations or gauges.",
                [
                    Query(
                        open_findings(
                            f'"rule" =~ {one_of(DRAINAGE_RULES)}',
                            ["since_ms", "rule", "subject", "district", "level", "value", "explanation"],
                        )
                    ).table()
                ],
                rename=[("since_ms", "since")],
                units=[("since", "dateTimeAsIso")],
                span=24,
            ),
        ],
    )


def build() -> dict[str, Any]:
    return dashboard(
        DRAINAGE,
        "CityWatch: drainage",
        "Wet-well levels against start, stop and overflow; pump states; flood-point depths against the "
        "ladder; rainfall.",
        [_stations(), _flood_points()],
        variables=_variables(),
        annotations=alert_annotations(DRAINAGE_RULES),
    )
