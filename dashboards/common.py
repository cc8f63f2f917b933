"""What several dashboards share: their uids, the rule families, the open-findings query and the alert
annotations.

Thresholds drawn on the panels are the analytics' defaults (DOMAIN.md's values), read from the rule
modules' config classes, so a panel's lines sit where the detectors judge. A city that configures other
thresholds rebuilds the dashboards with them (``python -m dashboards.build``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

from analytics.assembly import build_engine
from analytics.topology import build_topology
from dashboards.influxql import TIME_FILTER, Annotation

OVERVIEW = "citywatch-overview"
STREETLIGHTS = "citywatch-streetlights"
BRIDGES = "citywatch-bridges"
DRAINAGE = "citywatch-drainage"
SANITATION = "citywatch-sanitation"
PLATFORM = "citywatch-platform"

#: How far back the open-findings lists look: the analytics worker's findings_lookback_days default. A
#: finding open for longer without a transition falls off the lists (and off a restart's read-back).
FINDINGS_LOOKBACK = "30d"

_SEVERITY_COLORS = {"emergency": "red", "serious": "orange", "ordinary": "yellow"}


@cache
def rules_by_family() -> dict[str, tuple[str, ...]]:
    """The rule catalogue of the analytics engine, by family (comm, streetlight, bridge, ...)."""
    families: dict[str, list[str]] = {}
    for info in build_engine(build_topology([])).rule_catalogue.values():
        families.setdefault(info.family, []).append(info.rule)
    return {family: tuple(sorted(rules)) for family, rules in families.items()}


def rules(*families: str, also: Iterable[str] = ()) -> tuple[str, ...]:
    """Every rule of ``families``, and the rules ``also`` names (sorted, once each)."""
    known = rules_by_family()
    return tuple(sorted({*(r for f in families for r in known[f]), *also}))


def one_of(names: Sequence[str]) -> str:
    """An anchored InfluxQL regex matching exactly ``names``."""
    return "/^(" + "|".join(names) + ")$/"


def open_findings(where: str, columns: Sequence[str]) -> str:
    """The findings open now (their last point says open) that match ``where``, as rows of ``columns``:
    the tags rule, family, subject_kind, subject, district; the fields state, value, threshold, level,
    since_ms, explanation, lat, lon."""
    # built from constants and code, never from input: the query text is the product
    inner = (
        'SELECT last("state") AS "state", last("value") AS "value", last("threshold") AS "threshold", '  # noqa: S608
        'last("level") AS "level", last("since_ms") AS "since_ms", last("explanation") AS "explanation", '
        'last("lat") AS "lat", last("lon") AS "lon" '
        f'FROM "finding" WHERE time > now() - {FINDINGS_LOOKBACK} AND {where} '
        'GROUP BY "rule", "family", "subject_kind", "subject", "district"'
    )
    selected = ", ".join(f'"{c}"' for c in columns)
    return f"SELECT {selected} FROM ({inner}) WHERE \"state\" = 'open'"  # noqa: S608


def alert_annotations(names: Sequence[str]) -> list[Annotation]:
    """Alert transitions of ``names``' rules as annotations, one toggle per severity (its colour)."""
    return [
        Annotation(
            f"{severity.capitalize()} alerts",
            'SELECT "title", "rule", "subject", "severity", "state" FROM "alert_event" '  # noqa: S608
            f'WHERE "severity" = \'{severity}\' AND "rule" =~ {one_of(names)} AND {TIME_FILTER}',
            text="title",
            tags="severity,state,rule",
            color=color,
        )
        for severity, color in _SEVERITY_COLORS.items()
    ]
