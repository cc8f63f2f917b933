"""Sanitation: how full the bins are, which to collect next, and how many were collected.

For the sanitation dispatchers planning the next route and the collection crews: every bin on the map
coloured by its fill, the bins near full or full (75 % / 90 %, ``BinRules``), when each filling bin will
be full (the analytics' forecast from the fill speed of its current cycle), and collections per day.

Positions come from the ``asset`` points, fills from the meters' readings: the map joins the two by bin
id (InfluxQL cannot join). The fill on the map is the meter's own ``fill_level``; a meter that reports
only its distance shows in the lists (the analytics derive its fill) but not on the map's colours.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from analytics.bin_rules import BinRules
from dashboards.common import SANITATION, alert_annotations, one_of, open_findings, rules
from dashboards.influxql import Query, variable
from dashboards.panels import (
    CITY_TIMEZONE,
    GREEN,
    ORANGE,
    RED,
    Section,
    dashboard,
    geomap_panel,
    steps,
    table_panel,
    timeseries_panel,
    transform,
)

_RULES = BinRules()
BIN_RULES = rules("bin", also=("offline_bin",))
_FILL_RULES = ("bin_near_full", "bin_full", "bin_overflow", "bin_missed_collection")


def _variables() -> list[Any]:
    return [
        variable(
            "district",
            "District",
            """SHOW TAG VALUES FROM "asset" WITH KEY = "district" WHERE "kind" = 'bin'""",
            include_all=True,
        ),
        variable(
            "bins",
            "Bins of the district",
            """SELECT "device" FROM "asset" WHERE "kind" = 'bin' AND "district" =~ /^$district$/""",
            include_all=True,
            hidden=True,
            description="Every bin of the chosen district (always All): the forecast and collection series "
            "carry the bin, not its district.",
        ),
    ]


def _local_midnight_offset() -> str:
    """Day buckets from local midnight: InfluxDB 3.x's InfluxQL has no tz() clause, an offset serves all
    three generations (the city's zone; China keeps no daylight saving time)."""
    offset = datetime(2025, 1, 1, tzinfo=ZoneInfo(CITY_TIMEZONE)).utcoffset()  # fixed: the JSON is stable
    hours = round(-offset.total_seconds() / 3600) % 24 if offset is not None else 0
    return f"{hours}h"


def _fill_colours() -> Any:
    return steps(GREEN, (_RULES.near_full_pct, ORANGE), (_RULES.full_pct, RED))


def _map_and_lists() -> Section:
    near, full = _RULES.near_full_pct, _RULES.full_pct
    return Section(
        "",
        [
            geomap_panel(
                "Bin fill, $district",
                f"Every bin at its place, coloured by its last fill: orange from {near:g} % (near full), red "
                f"from {full:g} % (full).",
                [
                    Query("""
                        SELECT last("fill_level") AS "fill" FROM "bin"
                        WHERE "district" =~ /^$district$/ AND $timeFilter GROUP BY "device"
                    """).table(),
                    Query("""
                        SELECT "device", "lat", "lon" FROM "asset"
                        WHERE "kind" = 'bin' AND "district" =~ /^$district$/
                    """)
                    .ref("B")
                    .table(),
                ],
                layer="Bins",
                color_field="fill",
                thresholds=_fill_colours(),
                transformations=[transform("joinByField", byField="device", mode="inner")],
                span=12,
                height=14,
            ),
            table_panel(
                "Near full and full, $district",
                "Open fill findings, fullest first: near full and full bins, overflowing ones and missed "
                "collections.",
                [
                    Query(
                        open_findings(
                            f'"rule" =~ {one_of(_FILL_RULES)} AND "district" =~ /^$district$/',
                            ["subject", "rule", "value", "since_ms", "explanation"],
                        )
                    ).table()
                ],
                rename=[("subject", "bin"), ("value", "fill"), ("since_ms", "since")],
                units=[("fill", "percent"), ("since", "dateTimeAsIso")],
                sort_by="fill",
                descending=True,
                span=12,
                height=7,
            ),
            table_panel(
                "Time to full, $district",
                "Every filling bin's forecast from the fill speed of its current cycle: the next route's "
                "list, soonest first.",
                [
                    Query("""
                        SELECT last("hours_to_full") AS "hours to full", last("fill") AS "fill"
                        FROM "bin_forecast" WHERE "scope_id" =~ /^$bins$/ AND $timeFilter GROUP BY "scope_id"
                    """).table()
                ],
                rename=[("scope_id", "bin")],
                units=[("hours to full", "h"), ("fill", "percent")],
                sort_by="hours to full",
                span=12,
                height=7,
            ),
        ],
    )


def _collections() -> Section:
    return Section(
        "Collections",
        [
            timeseries_panel(
                "Collections per day, $district",
                "Bins emptied per local day (a fill drop to near empty).",
                [
                    Query(
                        'SELECT count("fill_before") AS "collections" FROM "bin_collection" '  # noqa: S608
                        'WHERE "scope_id" =~ /^$bins$/ AND $timeFilter '
                        f"GROUP BY time(1d, {_local_midnight_offset()}) fill(0)"
                    )
                ],
                bars=True,
                span=12,
            ),
            timeseries_panel(
                "Fill before collection, $district",
                "How full each bin was when emptied: far below full means the route comes too early.",
                [
                    Query("""
                        SELECT mean("fill_before") AS "fill before" FROM "bin_collection"
                        WHERE "scope_id" =~ /^$bins$/ AND $timeFilter GROUP BY time($__interval) fill(none)
                    """)
                ],
                unit="percent",
                thresholds=_fill_colours(),
                span=12,
            ),
        ],
    )


def build() -> dict[str, Any]:
    return dashboard(
        SANITATION,
        "CityWatch: sanitation",
        "Bin fill on the map, the near-full list, time to full and collections per day.",
        [_map_and_lists(), _collections()],
        variables=_variables(),
        annotations=alert_annotations(BIN_RULES),
        time_from="now-7d",
    )
