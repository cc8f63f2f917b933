"""Bridges and tunnels: each monitored channel against its three alarm bands, and stiffness.

For the structures engineers and the operations center: which channel of which node is in which alarm
level (level 1 most severe: red, orange, yellow; DOMAIN.md section 3), how crack width, vibration,
deflection, strain and tilt run against their bands, and whether the modal frequencies move with the
temperature only or drop below what the temperature explains.

The bands are the detector's defaults (``analytics.bridge_rules.BridgeRules``: a channel's limit times
0.75 / 1 / 1.5 for levels 3 / 2 / 1; a node's registry param such as ``crack_limit_mm`` overrides it).
Crack width and vibration are judged as read; deflection, strain and tilt as the change from the node's
temperature-corrected baseline, so on those panels the bands are a guide to the raw reading (the sensors
read zero where they were installed). The compensated frequency drop is the detector's own statistic,
which it writes every 5 min to ``bridge_modal`` (the drop its levels are judged on, the drift residual and
mode 1's frequency expected at the current temperature).
"""

from __future__ import annotations

from typing import Any

from analytics.bridge_rules import BridgeRules, ChannelLimit
from dashboards.common import BRIDGES, alert_annotations, rules
from dashboards.influxql import Query, variable
from dashboards.panels import (
    BANDS,
    GREEN,
    RED,
    Section,
    dashboard,
    ladder,
    table_panel,
    timeline_panel,
    timeseries_panel,
    value_map,
    xy_panel,
)

_RULES = BridgeRules()
BRIDGE_RULES = rules("bridge", also=("offline_bridge_node",))
#: channel limit, panel title, aggregate (the worst of an interval), unit (Grafana's)
_CHANNELS: tuple[tuple[ChannelLimit, str, str, str], ...] = (
    (_RULES.crack_width, "Crack width", "max", "lengthmm"),
    (_RULES.vibration, "RMS acceleration", "max", "accMS2"),
    (_RULES.deflection, "Peak deflection", "max", "lengthmm"),
    (_RULES.strain, "Peak strain", "max", "none"),
    (_RULES.tilt, "Tilt", "max", "degree"),
)


def _variables() -> list[Any]:
    return [
        variable(
            "bridge",
            "Bridge",
            """SELECT "bridge" FROM "asset" WHERE "kind" = 'bridge_node'""",
            include_all=True,
        ),
        variable(
            "node",
            "Sensor node",
            """SELECT "device" FROM "asset" WHERE "kind" = 'bridge_node' AND "bridge" =~ /^$bridge$/""",
            include_all=True,
            multi=True,
        ),
    ]


def _alarms() -> Section:
    return Section(
        "",
        [
            timeline_panel(
                "Alarms by channel",
                "Each bridge rule on each node: open (red) or cleared (green).",
                [
                    Query("""
                        SELECT last("state") AS "state" FROM "finding"
                        WHERE "family" = 'bridge' AND "subject" =~ /^$node$/ AND $timeFilter
                        GROUP BY time($__interval), "rule", "subject" fill(previous)
                    """).alias("$tag_subject $tag_rule")
                ],
                mappings=[value_map([("open", "open", RED), ("cleared", "cleared", GREEN)])],
                span=14,
            ),
            table_panel(
                "Alarm transitions",
                "Every opening, level change and clearing of a bridge finding, with its explanation.",
                [
                    Query("""
                        SELECT "subject", "rule", "change", "level", "value", "threshold", "explanation"
                        FROM "finding" WHERE "family" = 'bridge' AND "subject" =~ /^$node$/ AND $timeFilter
                    """).table()
                ],
                hide=(),
                span=10,
            ),
        ],
    )


def _channels() -> Section:
    panels = []
    for limit, title, aggregate, unit in _CHANNELS:
        level1, level2, level3 = (limit.limit * f for f in limit.level_factors)
        judged = "the change from the temperature-corrected baseline" if limit.relative else "the reading"
        panels.append(
            timeseries_panel(
                title,
                f"{limit.label[:1].upper()}{limit.label[1:]} per node ({aggregate} of each interval). Bands: "
                f"level 3 from "
                f"{level3:g}, level 2 from {level2:g}, level 1 from {level1:g} {limit.unit}, judged on "
                f"{judged}.",
                [
                    Query(
                        f'SELECT {aggregate}("{limit.field}") AS "{limit.field}" FROM "bridge_node" '  # noqa: S608
                        'WHERE "device" =~ /^$node$/ AND $timeFilter '
                        'GROUP BY time($__interval), "device" fill(none)'
                    ).alias("$tag_device")
                ],
                unit=unit,
                thresholds=ladder(level3, level2, level1),
                style=BANDS,
                span=8,
            )
        )
    return Section("Channels against their alarm bands", panels)


def _stiffness() -> Section:
    drop3, drop2, drop1 = (100 * d for d in reversed(_RULES.drop_levels))
    return Section(
        "Stiffness: modal frequencies and temperature",
        [
            xy_panel(
                "First modal frequency against temperature, $node",
                "Each point an interval's mean. A healthy deck traces one curve (stiffer in the cold, with "
                "a knee near 0 °C); points below it at the same temperature are a loss of stiffness.",
                [
                    Query("""
                        SELECT mean("temperature") AS "temperature", mean("freq_1") AS "freq_1"
                        FROM "bridge_node" WHERE "device" =~ /^$node$/ AND $timeFilter
                        GROUP BY time($__interval) fill(none)
                    """)
                ],
                x="temperature",
                span=8,
            ).repeat("node"),
            timeseries_panel(
                "Modal frequencies",
                "The first three modal frequencies per node: temperature moves them by up to ~4 %.",
                [
                    Query("""
                        SELECT mean("freq_1") AS "freq_1", mean("freq_2") AS "freq_2",
                          mean("freq_3") AS "freq_3" FROM "bridge_node"
                        WHERE "device" =~ /^$node$/ AND $timeFilter
                        GROUP BY time($__interval), "device" fill(none)
                    """).alias("$tag_device $col")
                ],
                unit="hertz",
                span=8,
            ),
            timeseries_panel(
                "Frequency drop after temperature compensation",
                f"The detector's drop of the modal frequencies below the node's temperature-compensated "
                f"baseline (bridge_modal, every 5 min): what the alarm levels are judged on. Bands: level 3 "
                f"from {drop3:g} %, level 2 from {drop2:g} %, level 1 from {drop1:g} %.",
                [
                    Query("""
                        SELECT max("freq_drop_pct") AS "drop" FROM "bridge_modal"
                        WHERE "scope_id" =~ /^$node$/ AND $timeFilter
                        GROUP BY time($__interval), "scope_id" fill(none)
                    """).alias("$tag_scope_id")
                ],
                unit="percent",
                thresholds=ladder(drop3, drop2, drop1),
                style=BANDS,
                span=8,
            ),
        ],
    )


def build() -> dict[str, Any]:
    return dashboard(
        BRIDGES,
        "CityWatch: bridges",
        "Each channel against its three alarm bands; modal frequency against temperature and the "
        "temperature-compensated drop.",
        [_alarms(), _channels(), _stiffness()],
        variables=_variables(),
        annotations=alert_annotations(BRIDGE_RULES),
        time_from="now-7d",
    )
