"""Streetlights: from a district down to a road, a circuit and one lamp.

For the lighting maintenance crews, the road chiefs (路长) and the supervisors: how a district's lighting
rate and energy run, which roads fell short at the night check, what each circuit's cabinet says, how
one lamp behaves, which lamps burn by day and which faults are open.

The drill-down runs through the variables district → road → circuit → lamp, filled from the ``asset``
points the analytics worker writes (telemetry carries only device and district: road and circuit live in
the registry). Each level set to All stands for every value under its parent. The road and lamp tables
and the fault list link down one level (click a road, a circuit, a lamp).
"""

from __future__ import annotations

from typing import Any

from analytics.lighting_rules import StreetlightRules
from dashboards.common import STREETLIGHTS, alert_annotations, one_of, open_findings, rules
from dashboards.influxql import Query, variable
from dashboards.overview import LIGHTING_FLOOR, LIGHTING_TARGET
from dashboards.panels import (
    GREEN,
    LINES,
    RED,
    Section,
    dashboard,
    dashboard_url,
    link,
    steps,
    table_panel,
    target,
    timeline_panel,
    timeseries_panel,
    transform,
)

_RULES = StreetlightRules()
#: The lamp-side rules this screen lists and annotates: streetlight faults, rate shortfalls, lamps and
#: cabinets gone silent, unusual circuit power.
LIGHTING_RULES = rules(
    "streetlight",
    "rate",
    also=("offline_lamp", "offline_cabinet", "gateway_offline", "energy_anomaly"),
)
_HERE = dashboard_url(STREETLIGHTS)


def _variables() -> list[Any]:
    return [
        variable(
            "district",
            "District",
            """SHOW TAG VALUES FROM "asset" WITH KEY = "district" WHERE "kind" = 'lamp'""",
            include_all=True,
        ),
        variable(
            "road",
            "Road",
            """SHOW TAG VALUES FROM "asset" WITH KEY = "road"
               WHERE "kind" = 'lamp' AND "district" =~ /^$district$/""",
            include_all=True,
        ),
        variable(
            "circuit",
            "Circuit",
            """SHOW TAG VALUES FROM "asset" WITH KEY = "circuit"
               WHERE "kind" = 'lamp' AND "district" =~ /^$district$/ AND "road" =~ /^$road$/""",
            include_all=True,
        ),
        variable(
            "lamp",
            "Lamp",
            """SELECT "device" FROM "asset" WHERE "kind" = 'lamp' AND "district" =~ /^$district$/
               AND "road" =~ /^$road$/ AND "circuit" =~ /^$circuit$/""",
        ),
        variable(
            "circuit_lamps",
            "Lamps of the circuit",
            """SELECT "device" FROM "asset" WHERE "kind" = 'lamp' AND "district" =~ /^$district$/
               AND "road" =~ /^$road$/ AND "circuit" =~ /^$circuit$/""",
            include_all=True,
            hidden=True,
            description="Every lamp of the chosen circuits (always All): the circuit's lamp table.",
        ),
    ]


def _district() -> Section:
    return Section(
        "",
        [
            timeseries_panel(
                "Lighting rate, $district",
                "Lit / due among lamps heard from (observed) and with silent lamps counted dark (lower "
                "bound); only at night. Target 100 % (dashed).",
                [
                    Query("""
                        SELECT last("lighting_rate") AS "observed",
                          last("lighting_rate_lower") AS "lower bound"
                        FROM "kpi" WHERE "scope" = 'district' AND "scope_id" =~ /^$district$/ AND $timeFilter
                        GROUP BY time($__interval), "scope_id" fill(none)
                    """).alias("$tag_scope_id $col")
                ],
                unit="percentunit",
                thresholds=target(LIGHTING_TARGET, LIGHTING_FLOOR),
                style=LINES,
                max_value=1.0,
            ),
            timeseries_panel(
                "Energy drawn, $district",
                "kWh per interval: the rise of every lamp's energy counter, added up.",
                [
                    Query("""
                        SELECT sum("wh") / 1000 AS "energy" FROM (
                          SELECT non_negative_difference(last("active_energy")) AS "wh" FROM "lamp"
                          WHERE "district" =~ /^$district$/ AND $timeFilter
                          GROUP BY time($__interval), "device")
                        WHERE $timeFilter GROUP BY time($__interval) fill(none)
                    """)
                ],
                unit="kwatth",
                bars=True,
            ),
        ],
    )


def _roads_and_circuits() -> Section:
    to_road = link("Show this road", f"{_HERE}?var-district=${{district}}&var-road=${{__data.fields.road}}")
    to_circuit = link(
        "Show this circuit",
        f"{_HERE}?var-district=${{district}}&var-road=${{road}}&var-circuit=${{__data.fields.circuit}}",
    )
    return Section(
        "Roads and circuits",
        [
            table_panel(
                "Roads at the last night check",
                "Each road of $district at the last night check: lighting rate among lamps heard from, lamps "
                "lit, dark and silent (offline controller), and the facility intact rate. Click a road.",
                [
                    Query("""
                        SELECT last("lighting_rate") AS "lighting rate", last("lit") AS "lit",
                          last("due") - last("lit") - last("unknown") AS "dark", last("unknown") AS "silent",
                          last("intact_rate") AS "intact rate"
                        FROM "kpi_check" WHERE "scope" = 'road' AND "scope_id" =~ /^$road$/ AND $timeFilter
                        GROUP BY "scope_id"
                    """).table()
                ],
                rename=[("scope_id", "road")],
                units=[("lighting rate", "percentunit"), ("intact rate", "percentunit")],
                data_links=[to_road],
                link_field="road",
                sort_by="lighting rate",
            ),
            table_panel(
                "Circuits of $road",
                "Each circuit's cabinet, as it last reported: circuit power, contactor, door and residual "
                "(leakage) current. Click a circuit for its lamps.",
                [
                    Query("""
                        SELECT last("device") AS "cabinet" FROM "asset" WHERE "kind" = 'cabinet'
                          AND "district" =~ /^$district$/ AND "circuit" =~ /^$circuit$/ GROUP BY "circuit"
                    """).table(),
                    Query("""
                        SELECT last("active_power") AS "power",
                          last("contactor_closed") AS "contactor closed", last("door_open") AS "door open",
                          last("residual_current") AS "residual current"
                        FROM "cabinet" WHERE "district" =~ /^$district$/ AND $timeFilter GROUP BY "device"
                    """)
                    .ref("B")
                    .table(),
                ],
                transformations=[
                    transform("renameByRegex", regex="^device$", renamePattern="cabinet"),
                    transform("joinByField", byField="cabinet", mode="inner"),
                ],
                units=[("power", "watt"), ("residual current", "mamp")],
                data_links=[to_circuit],
                link_field="circuit",
            ),
        ],
    )


def _lamps() -> Section:
    to_lamp = link(
        "Show this lamp",
        f"{_HERE}?var-district=${{district}}&var-road=${{road}}&var-circuit=${{circuit}}"
        "&var-lamp=${__data.fields.lamp}",
    )
    low, high = _RULES.voltage_low_v, _RULES.voltage_high_v
    return Section(
        "Circuit and lamp",
        [
            table_panel(
                "Lamps of $circuit",
                "Every lamp of the chosen circuits as it last reported. Click a lamp.",
                [
                    Query("""
                        SELECT last("active_power") AS "power", last("supply_voltage") AS "voltage",
                          last("dim_level") AS "dim level", last("lamp_on") AS "on",
                          last("lamp_failure") AS "failure flag"
                        FROM "lamp" WHERE "device" =~ /^$circuit_lamps$/ AND $timeFilter GROUP BY "device"
                    """).table()
                ],
                rename=[("device", "lamp")],
                units=[("power", "watt"), ("voltage", "volt")],
                data_links=[to_lamp],
                link_field="lamp",
                sort_by="power",
            ),
            timeseries_panel(
                "Supply voltage, lamp $lamp",
                f"Mains at the controller; dashed lines at {low:g} V (the line-end floor) and {high:g} V.",
                [
                    Query("""
                        SELECT mean("supply_voltage") AS "voltage" FROM "lamp"
                        WHERE "device" =~ /^$lamp$/ AND $timeFilter GROUP BY time($__interval) fill(none)
                    """)
                ],
                unit="volt",
                thresholds=steps(RED, (low, GREEN), (high, RED)),
                style=LINES,
            ),
            timeseries_panel(
                "Power, lamp $lamp",
                "Active power drawn by lamp and driver.",
                [
                    Query("""
                        SELECT mean("active_power") AS "power" FROM "lamp"
                        WHERE "device" =~ /^$lamp$/ AND $timeFilter GROUP BY time($__interval) fill(none)
                    """)
                ],
                unit="watt",
            ),
            timeline_panel(
                "Switching and flags, lamp $lamp",
                "Dim level the controller runs at (0 is off), and its lamp-failure and day-burning flags.",
                [
                    Query("""
                        SELECT last("dim_level") AS "dim level", last("lamp_failure") AS "failure flag",
                          last("day_burning") AS "day burning flag" FROM "lamp"
                        WHERE "device" =~ /^$lamp$/ AND $timeFilter GROUP BY time($__interval) fill(previous)
                    """)
                ],
            ),
            table_panel(
                "Findings on $lamp and its circuit",
                "Every transition (opened, level, cleared) of a finding on the lamp or its circuit.",
                [
                    Query("""
                        SELECT "rule", "subject", "change", "explanation" FROM "finding"
                        WHERE ("subject" =~ /^$lamp$/ OR "subject" =~ /^$circuit$/) AND $timeFilter
                    """).table()
                ],
                hide=(),
            ),
        ],
    )


def _faults() -> Section:
    to_subject = link(
        "Show this lamp",
        f"{_HERE}?var-district=${{__data.fields.district}}&var-lamp=${{__data.fields.subject}}",
    )
    district = '"district" =~ /^$district$/'
    return Section(
        "Day burning and open faults",
        [
            timeseries_panel(
                "Lamps found burning by day, $district",
                "Day-burning findings opened per hour: power drawn while the schedule has the lamp off "
                "(assessment sheets count it as a serious deduction).",
                [
                    Query("""
                        SELECT count("state") AS "day burning" FROM "finding"
                        WHERE "rule" = 'day_burning' AND "change" = 'opened' AND "district" =~ /^$district$/
                          AND $timeFilter GROUP BY time(1h) fill(0)
                    """)
                ],
                bars=True,
                span=8,
            ),
            table_panel(
                "Open streetlight faults, $district",
                "Open findings of the lighting rules, rate shortfalls and silent lamps or cabinets, oldest "
                "first. A lamp's row links to it.",
                [
                    Query(
                        open_findings(
                            f'"rule" =~ {one_of(LIGHTING_RULES)} AND {district}',
                            ["since_ms", "rule", "subject", "district", "level", "explanation"],
                        )
                    ).table()
                ],
                units=[("since", "dateTimeAsIso")],
                rename=[("since_ms", "since")],
                data_links=[to_subject],
                link_field="subject",
                sort_by="since",
                span=16,
            ),
        ],
    )


def build() -> dict[str, Any]:
    return dashboard(
        STREETLIGHTS,
        "CityWatch: streetlights",
        "District, road, circuit and lamp: lighting rate, energy, cabinets, lamps, day burning and faults.",
        [_district(), _roads_and_circuits(), _lamps(), _faults()],
        variables=_variables(),
        annotations=alert_annotations(LIGHTING_RULES),
    )
