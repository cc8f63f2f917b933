"""Findings and KPI tables as InfluxDB line protocol, and findings read back from query rows (pure).

Measurements::

    finding   tags rule, family, subject_kind, subject, district, partition
              fields state ("open" | "cleared"), change ("opened" | "level" | "cleared"), level, value,
              threshold, since_ms, explanation, children (comma-separated ids), child_kind, children_count,
              lat, lon (where the subject is, when it has a place: ``subject_position``)
    kpi, kpi_night, bin_collection, bin_forecast, completeness, ...
              tags scope, scope_id, partition; fields as the KpiTable has them (NaN fields left out)
    asset     tags kind, district, road, circuit, partition (empty ones left out)
              fields device, lat, lon, in_service, road_class (lamps), and the registry params the
              dashboards draw (``ASSET_NUMBER_PARAMS``, ``ASSET_TEXT_PARAMS``) where a device has them
              the registry as the worker knows it, one point per device, for the dashboards' drill-down
              (district, road, circuit, lamp) and maps: InfluxQL cannot join the registry in
    citywatch_analytics
              tags partition, worker; fields the worker's counters (``analytics_metrics_line``)

A finding's series is one (rule, subject): its last point says whether it is open, which is what a
restart reads back. Every transition is a point, so Grafana draws them as annotations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.engine import KpiTable
from analytics.findings import Change, Finding, FindingEvent, RuleInfo
from analytics.topology import CIRCUIT, DISTRICT, GATEWAY_SUBJECT, GRID, NONE, ROAD, Table, Topology
from devices.assets import ROAD_CLASSES
from devices.kinds import DeviceKind

FINDING = "finding"
ASSET = "asset"
ANALYTICS_METRICS = "citywatch_analytics"
#: Registry params written with a device's ``asset`` point: a pump station's level lines, the bridge a
#: node is on, the station a flood gauge drains to. A fixed list: a field keeps one type in InfluxDB.
ASSET_NUMBER_PARAMS = ("start_level_m", "stop_level_m", "overflow_level_m")
ASSET_TEXT_PARAMS = ("bridge", "station")
MAX_CHILDREN_TEXT = 5000  # ids written with a finding (a circuit has a few hundred lamps at most)

_DEVICE_KINDS = frozenset(k.value for k in DeviceKind)
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").translate(_TAG_ESCAPES).replace("\n", " ")


def string_field(value: str) -> str:
    """A string field value, quoted and escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def tag_set(pairs: Iterable[tuple[str, str]]) -> str:
    """``,k=v`` for each non-empty pair, sorted by key as InfluxDB prefers."""
    return "".join(f",{k}={_tag(v)}" for k, v in sorted(pairs) if v)


def finding_line(
    event: FindingEvent, info: RuleInfo, partition: str, position: tuple[float, float] | None = None
) -> str:
    """One transition; ``position`` (lat, lon) places the subject on the dashboards' fault map."""
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
    lat, lon = position if position is not None else (math.nan, math.nan)
    for name, number in (("value", f.value), ("threshold", f.threshold), ("lat", lat), ("lon", lon)):
        if math.isfinite(number):
            fields.append(f"{name}={number!r}")
    return f"{FINDING}{tags} {','.join(fields)} {event.at_ms}"


def subject_position(topology: Topology, subject_kind: str, number: int) -> tuple[float, float] | None:
    """Where a finding's subject is (lat, lon): a device's own position; a circuit's cabinet, else its
    first lamp; a gateway, road or grid cell at the mean of its devices. None for a district, road
    class or the city, and for a subject this topology does not have."""
    if number < 0:
        return None
    if subject_kind in _DEVICE_KINDS:
        table = topology.tables.get(DeviceKind(subject_kind))
        if table is None or number >= len(table):
            return None
        return _mean_position(table, np.array([number]))
    lamps = topology.tables.get(DeviceKind.LAMP)
    if subject_kind == CIRCUIT and number < len(topology.circuits):
        cabinet = int(topology.circuit_cabinet[number])
        cabinets = topology.tables.get(DeviceKind.CABINET)
        if cabinet != NONE and cabinets is not None:
            return _mean_position(cabinets, np.array([cabinet]))
        return None if lamps is None else _mean_position(lamps, np.flatnonzero(lamps.circuit == number)[:1])
    relation = {GATEWAY_SUBJECT: "gateway", ROAD: "road", GRID: "grid"}.get(subject_kind)
    if relation is None:
        return None
    lats, lons = [], []
    for table in topology.tables.values():
        rows = np.flatnonzero(getattr(table, relation) == number)
        lats.append(table.lat[rows].astype(np.float64))
        lons.append(table.lon[rows].astype(np.float64))
    lat, lon = np.concatenate(lats), np.concatenate(lons)
    if not len(lat) or np.isnan(lat).all():
        return None
    return float(np.nanmean(lat)), float(np.nanmean(lon))


def _mean_position(table: Table, rows: npt.NDArray[np.int64]) -> tuple[float, float] | None:
    if not len(rows):
        return None
    lat, lon = float(np.mean(table.lat[rows])), float(np.mean(table.lon[rows]))
    return (lat, lon) if math.isfinite(lat) and math.isfinite(lon) else None


def asset_lines(topology: Topology, partition: str, at_ms: int) -> Iterator[str]:
    """The registry as this partition knows it: one ``asset`` point per device, stamped in nanoseconds
    ``at_ms`` plus the device's row, so no two points of one series share a time (precision ``ns``)."""
    lamps = topology.tables.get(DeviceKind.LAMP)
    classes = topology.road_class
    for kind, table in topology.tables.items():
        names = {
            "district": topology.names(DISTRICT, table.district),
            "road": topology.names(ROAD, table.road),
            "circuit": topology.names(CIRCUIT, table.circuit),
        }
        ids = table.id_text(np.arange(len(table)))
        lat, lon = table.lat.tolist(), table.lon.tolist()
        road_codes = table.road.tolist()
        numbers = {k: table.params[k].tolist() for k in ASSET_NUMBER_PARAMS if k in table.params}
        texts = {k: table.text_params[k] for k in ASSET_TEXT_PARAMS if k in table.text_params}
        for row, device in enumerate(ids):
            tags = tag_set(
                [
                    ("kind", kind.value),
                    ("district", names["district"][row]),
                    ("road", names["road"][row]),
                    ("circuit", names["circuit"][row]),
                    ("partition", partition),
                ]
            )
            fields = [f"device={string_field(device)}", f"in_service={bool(table.in_service[row])}".lower()]
            if math.isfinite(lat[row]) and math.isfinite(lon[row]):
                fields += [f"lat={lat[row]!r}", f"lon={lon[row]!r}"]
            if table is lamps and road_codes[row] >= 0 and classes[road_codes[row]] >= 0:
                fields.append(f"road_class={string_field(ROAD_CLASSES[classes[road_codes[row]]])}")
            fields += [f"{k}={float(v[row])!r}" for k, v in numbers.items() if math.isfinite(v[row])]
            fields += [f"{k}={string_field(v[row])}" for k, v in texts.items() if v[row]]
            yield f"{ASSET}{tags} {','.join(fields)} {at_ms * 1_000_000 + row}"


def analytics_metrics_line(partition: str, worker: str, counters: Mapping[str, float], at_ms: int) -> str:
    """The worker's self-metrics as one point (integers as integers, NaN left out)."""
    fields = []
    for name, value in sorted(counters.items()):
        if isinstance(value, int):
            fields.append(f"{name}={value}i")
        elif math.isfinite(value):
            fields.append(f"{name}={float(value)!r}")
    tags = tag_set([("partition", partition), ("worker", worker)])
    return f"{ANALYTICS_METRICS}{tags} {','.join(fields)} {at_ms}"


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
