"""Findings and KPI tables as InfluxDB line protocol, and findings read back from query rows (pure).

Measurements::

    finding   tags rule, family, subject_kind, subject, district, partition
              fields state ("open" | "cleared"), change ("opened" | "level" | "cleared"), level, value,
              threshold, since_ms, explanation, children (comma-separated ids), child_kind, children_count
    kpi, kpi_night, bin_collection, bin_forecast, ...
              tags scope, scope_id, partition; fields as the KpiTable has them (NaN fields left out)

A finding's series is one (rule, subject): its last point says whether it is open, which is what a
restart reads back. Every transition is a point, so Grafana draws them as annotations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from analytics.engine import KpiTable
from analytics.findings import Change, Finding, FindingEvent, RuleInfo

FINDING = "finding"
MAX_CHILDREN_TEXT = 5000  # ids written with a finding (a circuit has a few hundred lamps at most)

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").translate(_TAG_ESCAPES).replace("\n", " ")


def string_field(value: str) -> str:
    """A string field value, quoted and escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def tag_set(pairs: Iterable[tuple[str, str]]) -> str:
    """``,k=v`` for each non-empty pair, sorted by key as InfluxDB prefers."""
    return "".join(f",{k}={_tag(v)}" for k, v in sorted(pairs) if v)


def finding_line(event: FindingEvent, info: RuleInfo, partition: str) -> str:
    f = event.finding
    state = "cleared" if event.change is Change.CLEARED else "open"
    tags = tag_set(
        [
            ("rule", f.rule),
            ("family", info.family),
            ("subject_kind", f.subject_kind),
            ("subject", f.subject),
            ("district", f.district),
            ("partition", partition),
        ]
    )
    fields = [
        f"state={string_field(state)}",
        f"change={string_field(event.change.value)}",
        f"level={f.level}i",
        f"since_ms={f.since_ms}i",
        f"explanation={string_field(f.explanation)}",
        f"children={string_field(','.join(f.children[:MAX_CHILDREN_TEXT]))}",
        f"child_kind={string_field(f.child_kind)}",
        f"children_count={len(f.children)}i",
    ]
    for name, number in (("value", f.value), ("threshold", f.threshold)):
        if math.isfinite(number):
            fields.append(f"{name}={number!r}")
    return f"{FINDING}{tags} {','.join(fields)} {event.at_ms}"


def kpi_lines(table: KpiTable, partition: str) -> Iterator[str]:
    names = sorted(table.fields)
    columns = [table.fields[n].tolist() for n in names]
    prefix = f"{table.measurement},partition={_tag(partition)},scope={_tag(table.scope)},scope_id="
    for i, scope_id in enumerate(table.scope_ids):
        parts = [f"{n}={float(c[i])!r}" for n, c in zip(names, columns, strict=True) if math.isfinite(c[i])]
        if parts and scope_id:
            yield f"{prefix}{_tag(scope_id)} {','.join(parts)} {table.ts_ms}"


def findings_from_rows(series: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, str], Finding]]:
    """Open findings from ``SELECT last(state) AS state, ... GROUP BY rule, subject, ...`` series.

    The subject number is not stored (it is this worker's numbering): it is -1 here, and the caller
    resolves it against its topology.
    """
    found: list[tuple[Mapping[str, str], Finding]] = []
    for s in series:
        tags: Mapping[str, str] = s.get("tags") or {}
        columns: list[str] = s["columns"]
        for row in s["values"]:
            r = dict(zip(columns, row, strict=True))
            if r.get("state") != "open":
                continue
            children = str(r.get("children") or "")
            found.append(
                (
                    tags,
                    Finding(
                        rule=tags.get("rule", ""),
                        subject_kind=tags.get("subject_kind", ""),
                        subject=tags.get("subject", ""),
                        number=-1,
                        district=tags.get("district", ""),
                        level=int(r.get("level") or 0),
                        value=float(r["value"]) if r.get("value") is not None else math.nan,
                        threshold=float(r["threshold"]) if r.get("threshold") is not None else math.nan,
                        since_ms=int(r.get("since_ms") or r.get("time") or 0),
                        explanation=str(r.get("explanation") or ""),
                        children=tuple(c for c in children.split(",") if c),
                        child_kind=str(r.get("child_kind") or ""),
                    ),
                )
            )
    return found
