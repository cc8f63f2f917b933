"""City overview: the operations center's one screen for the whole city.

It answers: are the lights on (lighting rate against the 100 % target) and the facilities intact (against
95 %), by district and road class; are faults fixed in time (on-time closure against 95 %); how many alerts
are open and how bad; where the faults are; whether the data is complete enough to trust the rest.

City and road-class figures add up the partitions' counts (``sum(lit) / sum(due - unknown)``), never
average their rates (docs/analytics.md, "Scaling out"); a district lives in one partition.
"""

from __future__ import annotations

from typing import Any

from analytics.alerts.closure import ClosureConfig
from analytics.rates import RateConfig
from dashboards.common import (
    OVERVIEW,
    STREETLIGHTS,
    alert_annotations,
    open_findings,
    rules_by_family,
)
from dashboards.influxql import Query
from dashboards.panels import (
    BLUE,
    LINES,
    ORANGE,
    RED,
    YELLOW,
    Section,
    bargauge_panel,
    dashboard,
    dashboard_url,
    geomap_panel,
    link,
    stat_panel,
    steps,
    target,
    timeseries_panel,
)
from devices.kinds import DeviceKind

_RATES = RateConfig()
LIGHTING_TARGET = _RATES.district_target  # DOMAIN.md section 2, seed plan: 100 %
LIGHTING_FLOOR = 0.95  # DOMAIN.md section 2: the older national floor; orange between it and the target
INTACT_TARGET = _RATES.intact_target  # DOMAIN.md section 2: at least 95 %
ON_TIME_TARGET = ClosureConfig().on_time_target  # DOMAIN.md section 6: at least 95 %
COMPLETENESS_TARGET = 0.95  # CHOICE: below it the rates and maps leave too much unseen


def _road_class_rate(measurement: str, numerator: str, denominator: str, name: str) -> Query:
    """numerator / denominator per road class over every partition's last counts."""
    return Query(
        f'SELECT sum("n") / sum("d") AS "{name}" FROM (SELECT last("{numerator}") AS "n", '  # noqa: S608
        f'last("{denominator}") AS "d" FROM "{measurement}" WHERE "scope" = \'road_class\' '
        f'AND "{denominator}" > 0 AND $timeFilter GROUP BY "scope_id", "partition") GROUP BY "scope_id"'
    ).alias("$tag_scope_id")


def _headline() -> Section:
    lighting = stat_panel(
        "City lighting rate",
        "Lamps lit / lamps due now (observed: lamps whose controller is offline left out) and the lower "
        "bound (those counted dark). Target 100 %; orange below it, red below the 95 % national floor.",
        [
            Query("""
                SELECT sum("lit") / (sum("due") - sum("unknown")) AS "observed" FROM "kpi"
                WHERE "scope" = 'city' AND "due" > 0 AND $timeFilter GROUP BY time($__interval) fill(none)
            """),
            Query("""
                SELECT sum("lit") / sum("due") AS "lower bound" FROM "kpi"
                WHERE "scope" = 'city' AND "due" > 0 AND $timeFilter GROUP BY time($__interval) fill(none)
            """).ref("B"),
        ],
        unit="percentunit",
        decimals=2,
        thresholds=target(LIGHTING_TARGET, LIGHTING_FLOOR),
        links=[link("Streetlights", dashboard_url(STREETLIGHTS))],
    )
    intact = stat_panel(
        "Facility intact rate",
        "Lamp heads, cabinets and circuits without an open fault / all of them, city-wide. Target 95 %.",
        [
            Query("""
                SELECT sum("intact") / sum("items") AS "intact rate" FROM "kpi"
                WHERE "scope" = 'city' AND "items" > 0 AND $timeFilter GROUP BY time($__interval) fill(none)
            """)
        ],
        unit="percentunit",
        decimals=2,
        thresholds=target(INTACT_TARGET),
    )
    closure = stat_panel(
        "On-time closure, month to date",
        "Cases closed by their deadline / cases whose deadline fell in this month so far (DOMAIN.md "
        "section 6; rate shortfalls, an incident's children and planned works are not cases). Target 95 %.",
        [
            Query("""
                SELECT sum("on_time") / sum("due") AS "on-time closure" FROM (
                  SELECT last("on_time") AS "on_time", last("due") AS "due" FROM "alert_closure"
                  WHERE "scope" = 'city' AND "due" > 0 AND $timeFilter GROUP BY "partition")
            """)
        ],
        unit="percentunit",
        decimals=1,
        thresholds=target(ON_TIME_TARGET),
    )
    alerts = stat_panel(
        "Open alerts",
        "Live alerts (open, acknowledged, in progress; an incident's children counted in the incident) by "
        "severity, and how many of them are past their deadline.",
        [
            Query("""
                SELECT sum("e") AS "emergency", sum("s") AS "serious", sum("o") AS "ordinary",
                  sum("late") AS "overdue" FROM (
                  SELECT last("open_emergency") AS "e", last("open_serious") AS "s",
                    last("open_ordinary") AS "o", last("overdue") AS "late" FROM "alert_closure"
                  WHERE "scope" = 'city' AND $timeFilter GROUP BY "partition")
            """)
        ],
        decimals=0,
        colors=[("emergency", RED), ("serious", ORANGE), ("ordinary", YELLOW), ("overdue", BLUE)],
    )
    return Section("", [lighting, intact, closure, alerts])


def _rates() -> Section:
    to_streetlights = [link("Streetlights", dashboard_url(STREETLIGHTS))]
    return Section(
        "Rates by district and road class",
        [
            bargauge_panel(
                "Lighting rate by district",
                "Observed lighting rate of each district, the last value in the time range (at night).",
                [
                    Query("""
                        SELECT last("lighting_rate") AS "lighting rate" FROM "kpi"
                        WHERE "scope" = 'district' AND $timeFilter GROUP BY "scope_id"
                    """).alias("$tag_scope_id")
                ],
                unit="percentunit",
                thresholds=target(LIGHTING_TARGET, LIGHTING_FLOOR),
                min_value=0.9,
                max_value=1.0,
                links=to_streetlights,
                span=6,
            ),
            bargauge_panel(
                "Lighting rate by road class, last night check",
                "Lit / due and heard from at the last night check (30 min after switch-on, 22:00, 02:00): "
                "what an assessor counts.",
                [_road_class_rate("kpi_check", "lit", "due", "lighting rate")],
                unit="percentunit",
                thresholds=target(LIGHTING_TARGET, LIGHTING_FLOOR),
                min_value=0.9,
                max_value=1.0,
                links=to_streetlights,
                span=6,
            ),
            bargauge_panel(
                "Facility intact rate by district",
                "Items without an open fault / items, per district. Target 95 %.",
                [
                    Query("""
                        SELECT last("intact_rate") AS "intact rate" FROM "kpi"
                        WHERE "scope" = 'district' AND $timeFilter GROUP BY "scope_id"
                    """).alias("$tag_scope_id")
                ],
                unit="percentunit",
                thresholds=target(INTACT_TARGET),
                min_value=0.8,
                max_value=1.0,
                links=to_streetlights,
                span=6,
            ),
            bargauge_panel(
                "Facility intact rate by road class",
                "Items without an open fault / items, per road class. Target 95 %.",
                [_road_class_rate("kpi", "intact", "items", "intact rate")],
                unit="percentunit",
                thresholds=target(INTACT_TARGET),
                min_value=0.8,
                max_value=1.0,
                span=6,
            ),
        ],
    )


def _faults() -> Section:
    families = ", ".join(sorted(rules_by_family()))
    return Section(
        "Faults and alerts",
        [
            geomap_panel(
                "Open faults",
                "Every open finding with a place (a device where it stands, a circuit at its cabinet, a "
                "gateway or road at the centre of its devices); hover for the rule and the explanation.",
                [
                    Query(
                        open_findings(
                            "\"family\" != 'rate'",
                            ["lat", "lon", "rule", "family", "subject", "district", "level", "explanation"],
                        )
                    ).table()
                ],
                layer="Open faults",
                span=12,
                height=14,
            ),
            bargauge_panel(
                "Open findings by asset class",
                f"Open findings per rule family ({families}).",
                [
                    Query("""
                        SELECT count("state") AS "open" FROM (
                          SELECT last("state") AS "state" FROM "finding" WHERE time > now() - 30d
                          GROUP BY "rule", "family", "subject")
                        WHERE "state" = 'open' GROUP BY "family"
                    """).alias("$tag_family")
                ],
                thresholds=steps(BLUE),
                span=6,
                height=7,
            ),
            bargauge_panel(
                "On-time closure by district, month to date",
                "Cases closed by their deadline / cases due this month so far, per district. Target 95 %.",
                [
                    Query("""
                        SELECT last("on_time_rate") AS "on-time closure" FROM "alert_closure"
                        WHERE "scope" = 'district' AND "due" > 0 AND $timeFilter GROUP BY "scope_id"
                    """).alias("$tag_scope_id")
                ],
                unit="percentunit",
                thresholds=target(ON_TIME_TARGET),
                min_value=0.0,
                max_value=1.0,
                span=6,
                height=7,
            ),
            timeseries_panel(
                "On-time closure as the month goes on",
                "The city's on-time closure rate, month to date. Target 95 % (dashed).",
                [
                    Query("""
                        SELECT sum("on_time") / sum("due") AS "on-time closure" FROM "alert_closure"
                        WHERE "scope" = 'city' AND "due" > 0 AND $timeFilter
                        GROUP BY time($__interval) fill(none)
                    """)
                ],
                unit="percentunit",
                thresholds=target(ON_TIME_TARGET),
                style=LINES,
                span=12,
                height=7,
            ),
        ],
    )


def _data() -> Section:
    per_kind = [
        Query(
            f'SELECT sum("r") / sum("d") AS "{kind}" FROM (SELECT last("reporting_{kind}") AS "r", '  # noqa: S608
            f'last("devices_{kind}") AS "d" FROM "completeness" WHERE "devices_{kind}" > 0 AND $timeFilter '
            'GROUP BY "scope_id", "partition")'
        ).ref(chr(ord("A") + i))
        for i, kind in enumerate(k.value for k in DeviceKind)
    ]
    return Section(
        "Data completeness",
        [
            bargauge_panel(
                "Devices reporting, by kind",
                "Devices in service heard from and not offline (the communication rules) / devices in "
                "service. Below 95 % the rates and maps above leave much unseen.",
                per_kind,
                unit="percentunit",
                thresholds=target(COMPLETENESS_TARGET, 0.9),
                min_value=0.0,
                max_value=1.0,
                span=8,
            ),
            timeseries_panel(
                "Devices reporting, by district",
                "Share of each district's devices in service that are reporting.",
                [
                    Query("""
                        SELECT last("completeness") AS "completeness" FROM "completeness"
                        WHERE $timeFilter GROUP BY time($__interval), "scope_id" fill(none)
                    """).alias("$tag_scope_id")
                ],
                unit="percentunit",
                max_value=1.0,
                thresholds=target(COMPLETENESS_TARGET),
                style=LINES,
                span=16,
            ),
        ],
    )


def build() -> dict[str, Any]:
    every_rule = sorted({rule for rules in rules_by_family().values() for rule in rules})
    return dashboard(
        OVERVIEW,
        "CityWatch: city overview",
        "The whole city on one screen: rates against their targets, open alerts, faults on the map, data "
        "completeness.",
        [_headline(), _rates(), _faults(), _data()],
        annotations=alert_annotations(every_rule),
    )
