"""What the API reads from InfluxDB, as bounded InfluxQL over the v1 ``/query`` endpoint (adapter).

Three rules make every query safe to serve to anyone with a role:

- **Values are bound parameters** (``$device``, ``$lo``; InfluxDB 1.x binds them from the ``params``
  JSON), never text pasted into the query.
- **Identifiers come from the contract, not the request**: a measurement is a ``DeviceKind`` or one of
  the KPI measurements, a field one of the kind's fields (``devices.kinds.FIELDS``); anything else is
  refused before a query is built. Numbers pasted in (window widths, limits) are ints the API computed.
- **Every query is bounded**: a time range (``time >= $lo AND time < $hi``) and a LIMIT or SLIMIT, so no
  request reads more than its range and point limits allow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from analytics.findings import Finding
from analytics.lineproto import FINDING, findings_from_rows
from api import Unprocessable
from api.rate_math import KPI_MEASUREMENT
from api.windows import Windows
from devices.kinds import FIELDS, SEQ_FIELD, DeviceKind, FieldType
from ingest.influx import InfluxV1

_IDENT: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_NS: Final = 1_000_000
_OR_CHUNK: Final = 200  # devices per query: bound parameters in one OR list
_KPI_FIELDS: Final = frozenset({"lit", "due", "unknown", "items", "intact", "installed", "registered"})


def _quoted(identifier: str) -> str:
    if not _IDENT.fullmatch(identifier):  # a programming error: identifiers come from fixed sets
        raise ValueError(f"not a plain identifier: {identifier!r:.70}")
    return f'"{identifier}"'


def field_of(kind: DeviceKind, field: str) -> tuple[str, FieldType]:
    """A field of ``kind`` (or ``seq``), with its type; ``Unprocessable`` lists the kind's fields."""
    if field == SEQ_FIELD:
        return field, FieldType.INT
    spec = FIELDS[kind].get(field)
    if spec is None:
        known = (
            ", ".join(sorted(FIELDS[kind]))
            if kind is not DeviceKind.PUMP_STATION
            else "see docs/telemetry.md"
        )
        raise Unprocessable(f"a {kind.value} has no field {field!r:.70}; its fields: {known}")
    return spec.name, spec.type


def _or(column: str, names: Sequence[str], prefix: str) -> tuple[str, dict[str, object]]:
    params = {f"{prefix}{i}": name for i, name in enumerate(names)}
    return "(" + " OR ".join(f'"{column}" = ${p}' for p in params) + ")", dict(params)


def _rows(series: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, str], dict[str, Any]]]:
    out = []
    for s in series:
        tags = s.get("tags") or {}
        columns: list[str] = s["columns"]
        out += [(tags, dict(zip(columns, row, strict=True))) for row in s.get("values") or ()]
    return out


@dataclass(frozen=True, slots=True)
class Latest:
    """A device's last value of each field it reported within the lookback, and when it last reported."""

    values: Mapping[str, object]
    last_seen_ms: int | None


@dataclass(frozen=True, slots=True)
class WindowStats:
    start_ms: int
    count: int
    mean: float | None
    min: float | None
    max: float | None


class InfluxReader:
    """The API's reads; thread-safe (``InfluxV1`` is)."""

    def __init__(self, influx: InfluxV1) -> None:
        self.influx = influx

    def _query(self, influxql: str, params: Mapping[str, object]) -> list[dict[str, Any]]:
        # POST: a circuit's device list makes a query longer than a URL should be.
        return self.influx.query(influxql, params, method="POST")

    def ping(self) -> None:
        self._query("SHOW MEASUREMENTS LIMIT 1", {})

    def latest(self, kind: DeviceKind, device: str, lo_ms: int, hi_ms: int) -> Latest:
        found = self.latest_of(kind, [device], None, lo_ms, hi_ms)
        return found.get(device, Latest({}, None))

    def latest_of(
        self, kind: DeviceKind, devices: Sequence[str], fields: Sequence[str] | None, lo_ms: int, hi_ms: int
    ) -> dict[str, Latest]:
        """The last value of ``fields`` (None: every field) of each device, and when each last reported."""
        measurement = _quoted(kind.value)
        if fields is None:
            selected = "last(*)"
        else:
            selected = ", ".join(f"last({_quoted(field_of(kind, f)[0])}) AS {_quoted(f)}" for f in fields)
        values: dict[str, dict[str, object]] = {}
        seen: dict[str, int] = {}
        for start in range(0, len(devices), _OR_CHUNK):
            where, params = _or("device", devices[start : start + _OR_CHUNK], "d")
            params |= {"lo": lo_ms * _NS, "hi": hi_ms * _NS}
            bounds = f'{where} AND time >= $lo AND time < $hi GROUP BY "device"'
            query = f"SELECT {selected} FROM {measurement} WHERE {bounds}"  # noqa: S608
            for tags, row in _rows(self._query(query, params)):
                row.pop("time", None)
                got = {k.removeprefix("last_") if fields is None else k: v for k, v in row.items()}
                values[tags.get("device", "")] = {k: v for k, v in got.items() if v is not None}
            last_seq = f"SELECT last({_quoted(SEQ_FIELD)}) FROM {measurement} WHERE {bounds}"  # noqa: S608
            for tags, row in _rows(self._query(last_seq, params)):
                seen[tags.get("device", "")] = int(row["time"])
        return {d: Latest(values.get(d, {}), seen.get(d)) for d in devices if d in values or d in seen}

    def open_findings(
        self, subjects: Sequence[str], lo_ms: int, hi_ms: int
    ) -> list[tuple[Mapping[str, str], Finding]]:
        """Findings on any of ``subjects`` whose last point within the range says open."""
        found: list[tuple[Mapping[str, str], Finding]] = []
        for start in range(0, len(subjects), _OR_CHUNK):
            where, params = _or("subject", subjects[start : start + _OR_CHUNK], "s")
            params |= {"lo": lo_ms * _NS, "hi": hi_ms * _NS}
            series = self._query(
                'SELECT last("state") AS "state", "level", "value", "threshold", "since_ms", "explanation", '  # noqa: S608
                f'"children", "child_kind" FROM "{FINDING}" WHERE {where} AND time >= $lo AND time < $hi '
                'GROUP BY "rule", "family", "subject_kind", "subject", "district"',
                params,
            )
            found += findings_from_rows(series)
        return found

    def history(self, kind: DeviceKind, device: str, field: str, windows: Windows) -> list[WindowStats]:
        """``field`` of ``device`` per window: count, mean (no booleans), min, max; empty ones left out."""
        name, ftype = field_of(kind, field)
        f = _quoted(name)
        mean = "null" if ftype is FieldType.BOOL else f"mean({f})"  # InfluxQL has no mean of booleans
        select = f'count({f}) AS "count", min({f}) AS "min", max({f}) AS "max"'
        if ftype is not FieldType.BOOL:
            select += f', {mean} AS "mean"'
        rng = windows.range
        query = (
            f'SELECT {select} FROM {_quoted(kind.value)} WHERE "device" = $device '  # noqa: S608
            f"AND time >= $lo AND time < $hi GROUP BY time({windows.width_ms}ms, {windows.offset_ms}ms) "
            f"fill(none) LIMIT {windows.count}"
        )
        params = {"device": device, "lo": rng.start_ms * _NS, "hi": rng.end_ms * _NS}
        out = []
        for _tags, row in _rows(self._query(query, params)):
            count = int(row.get("count") or 0)
            if not count:
                continue
            out.append(
                WindowStats(
                    int(row["time"]),
                    count,
                    _number(row.get("mean")),
                    _number(row["min"]),
                    _number(row["max"]),
                )
            )
        return out

    def kpi_sums(
        self, fields: Sequence[str], scope: str, scope_id: str | None, windows: Windows, max_series: int
    ) -> list[dict[str, Any]]:
        """Sums of KPI count fields per window and scope id (all partitions together)."""
        if not set(fields) <= _KPI_FIELDS:
            raise ValueError(f"not KPI count fields: {sorted(set(fields) - _KPI_FIELDS)}")
        select = ", ".join(f"sum({_quoted(f)}) AS {_quoted(f)}" for f in fields)
        where = '"scope" = $scope' + (' AND "scope_id" = $scope_id' if scope_id is not None else "")
        rng = windows.range
        query = (
            f"SELECT {select} FROM {_quoted(KPI_MEASUREMENT)} WHERE {where} AND time >= $lo AND time < $hi "  # noqa: S608
            f'GROUP BY time({windows.width_ms}ms, {windows.offset_ms}ms), "scope_id" fill(none) '
            f"LIMIT {windows.count} SLIMIT {max_series}"
        )
        params: dict[str, object] = {"scope": scope, "lo": rng.start_ms * _NS, "hi": rng.end_ms * _NS}
        if scope_id is not None:
            params["scope_id"] = scope_id
        return self._query(query, params)

    def latest_kpis(self, scopes: Sequence[str], lo_ms: int, hi_ms: int) -> list[dict[str, Any]]:
        """The last counts of every scope id of ``scopes``, per partition (for the live feed)."""
        where, params = _or("scope", scopes, "scope")
        params |= {"lo": lo_ms * _NS, "hi": hi_ms * _NS}
        query = (
            'SELECT last("lit") AS "lit", "due", "unknown", "items", "intact" '  # noqa: S608
            f"FROM {_quoted(KPI_MEASUREMENT)} WHERE {where} AND time >= $lo AND time < $hi "
            'GROUP BY "scope", "scope_id", "partition"'
        )
        return self._query(query, params)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    return float(value)
