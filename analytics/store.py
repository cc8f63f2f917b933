"""InfluxDB adapter of the analytics worker: write findings and KPI tables, read back what a restart needs.

Writes go through ``ingest.influx.InfluxV1`` (the v1-compatible API, so 1.x, 2.x and 3.x all serve it).
Finding lines are never dropped: when the database refuses or is away, they wait in a bounded queue and
go with the next write. KPI lines are recomputed every tick, so a failed KPI write is only counted.

On start the worker reads back (1) the findings whose last point says open, and (2) the recent telemetry
of its partition, kind by kind, in time slices, which it replays through the engine to rebuild the
live state (``replay_slices``).

For the dashboards it also writes, best effort like the KPIs, where its devices are (``write_assets``:
the drill-down and the maps) and its own counters (``write_metrics``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from analytics.engine import KpiTable
from analytics.findings import Finding, FindingEvent, RuleInfo
from analytics.lineproto import (
    FINDING,
    asset_lines,
    finding_line,
    findings_from_rows,
    kpi_lines,
    subject_position,
)
from analytics.state import Batch
from analytics.topology import Topology
from devices.assets import DISTRICT_PATTERN
from devices.kinds import FIELDS, DeviceKind
from ingest import InfluxError
from ingest.influx import InfluxV1

log = logging.getLogger(__name__)

_MAX_PENDING_FINDING_LINES = 200_000
_KPI_CHUNK = 5000


@dataclass(slots=True)
class WriteCounts:
    finding_lines: int = 0
    kpi_lines: int = 0
    kpi_lines_dropped: int = 0
    write_errors: int = 0


class AnalyticsStore:
    """Findings and KPIs out, restart state in, for one partition."""

    def __init__(
        self,
        influx: InfluxV1,
        partition: str,
        rules: Mapping[str, RuleInfo],
        topology: Topology | None = None,
    ) -> None:
        self.influx = influx
        self.partition = partition
        self.rules = rules
        self.topology = topology  # places findings on the map when given
        self._pending: deque[str] = deque()
        self.counts = WriteCounts()

    @property
    def pending_findings(self) -> int:
        return len(self._pending)

    def write_events(self, events: Iterable[FindingEvent]) -> None:
        for event in events:
            info = self.rules[event.finding.rule]
            if len(self._pending) >= _MAX_PENDING_FINDING_LINES:
                log.error("finding queue full: the oldest unwritten finding transition is lost")
                self._pending.popleft()
            f = event.finding
            where = (
                None if self.topology is None else subject_position(self.topology, f.subject_kind, f.number)
            )
            self._pending.append(finding_line(event, info, self.partition, where))
        self.flush_findings()

    def flush_findings(self) -> bool:
        """Write the waiting finding lines; False (and they keep waiting) when the database refuses."""
        if not self._pending:
            return True
        lines = list(self._pending)
        try:
            self.influx.write("\n".join(lines).encode())
        except InfluxError as exc:
            self.counts.write_errors += 1
            log.warning("%d finding lines wait for InfluxDB: %s", len(lines), exc)
            return False
        for _ in lines:
            self._pending.popleft()
        self.counts.finding_lines += len(lines)
        return True

    def write_kpis(self, tables: Iterable[KpiTable]) -> None:
        lines = [line for table in tables for line in kpi_lines(table, self.partition)]
        for start in range(0, len(lines), _KPI_CHUNK):
            chunk = lines[start : start + _KPI_CHUNK]
            try:
                self.influx.write("\n".join(chunk).encode())
                self.counts.kpi_lines += len(chunk)
            except InfluxError as exc:
                self.counts.write_errors += 1
                self.counts.kpi_lines_dropped += len(lines) - start
                log.warning("KPI write failed, %d lines skipped (recomputed next tick): %s", len(lines), exc)
                return

    def write_assets(self, topology: Topology, at_ms: int) -> bool:
        """Write where every device of the partition is (``asset``); False when the database refused."""
        lines = list(asset_lines(topology, self.partition, at_ms))
        try:
            for start in range(0, len(lines), _KPI_CHUNK):
                self.influx.write("\n".join(lines[start : start + _KPI_CHUNK]).encode(), precision="ns")
        except InfluxError as exc:
            self.counts.write_errors += 1
            log.warning("asset write failed (tried again at the next KPI write): %s", exc)
            return False
        return True

    def write_metrics(self, line: str) -> None:
        """Write one self-metrics point; a failure is only counted (the next one follows soon)."""
        try:
            self.influx.write(line.encode())
        except InfluxError as exc:
            self.counts.write_errors += 1
            log.warning("self-metrics write failed: %s", exc)

    def open_findings(self, topology: Topology, lookback_days: float) -> list[Finding]:
        """Findings of this partition whose last point says open, numbered in ``topology``."""
        hours = max(1, round(lookback_days * 24))
        series = self.influx.query(  # constants and an int only; the partition is a bound parameter
            f'SELECT last("state") AS "state", "level", "value", "threshold", "since_ms", "explanation", '  # noqa: S608
            f'"children", "child_kind" FROM "{FINDING}" WHERE time > now() - {hours}h '
            'AND "partition" = $partition GROUP BY "rule", "subject_kind", "subject", "district"',
            {"partition": self.partition},
        )
        restored: list[Finding] = []
        for _tags, finding in findings_from_rows(series):
            if finding.rule not in self.rules or not finding.subject_kind:
                continue
            number = topology.number(finding.subject_kind, finding.subject)
            if number < 0:
                log.warning("finding %s names a subject this partition does not have", finding.key)
                continue
            restored.append(_renumbered(finding, number))
        return restored

    def replay_slices(
        self,
        topology: Topology,
        lookback_ms: Mapping[DeviceKind, int],
        end_ms: int,
        step_ms: int,
        districts: Sequence[str] | None,
    ) -> Iterator[tuple[int, list[Batch]]]:
        """Recent telemetry as (slice end, batches) in time order, ``step_ms`` at a time."""
        longest = max(lookback_ms.values(), default=0)
        start = end_ms - longest
        where_district = _district_clause(districts)
        for lo in range(start, end_ms, step_ms):
            hi = min(lo + step_ms, end_ms)
            batches: list[Batch] = []
            for kind, lookback in lookback_ms.items():
                table = topology.tables.get(kind)
                if table is None or not len(table) or hi <= end_ms - lookback:
                    continue
                series = self.influx.query(  # a kind name and validated district slugs; times bound
                    f'SELECT * FROM "{kind.value}" WHERE time > $lo AND time <= $hi{where_district}',  # noqa: S608
                    {"lo": lo * 1_000_000, "hi": hi * 1_000_000},
                )
                batch = _batch_from_series(kind, series, topology)
                if batch is not None:
                    batches.append(batch)
            yield hi, batches


def _renumbered(finding: Finding, number: int) -> Finding:
    return replace(finding, number=number)


def _district_clause(districts: Sequence[str] | None) -> str:
    if not districts:
        return ""
    for d in districts:  # they become part of a regex: only registry slugs are allowed
        if not DISTRICT_PATTERN.fullmatch(d):
            raise ValueError(f"district {d!r} is not a registry district slug")
    return ' AND "district" =~ /^(' + "|".join(districts) + ")$/"


def _batch_from_series(
    kind: DeviceKind, series: Sequence[Mapping[str, Any]], topology: Topology
) -> Batch | None:
    table = topology.tables[kind]
    device_parts, ts_parts, seq_parts = [], [], []
    field_parts: dict[str, list[np.ndarray]] = {}
    rows_total = 0
    for s in series:
        columns: list[str] = s["columns"]
        values: list[list[Any]] = s["values"]
        if not values:
            continue
        cols = list(zip(*values, strict=True))
        by_name = dict(zip(columns, cols, strict=True))
        if "device" not in by_name or "time" not in by_name:
            continue
        device_parts.append(table.find(list(by_name["device"])))
        ts_parts.append(np.asarray(by_name["time"], dtype=np.int64))
        seqs = by_name.get("seq", (None,) * len(values))
        seq_parts.append(np.asarray([-1 if v is None else v for v in seqs], np.int64))
        for name in FIELDS[kind]:
            raw = by_name.get(name)
            column = (
                np.full(len(values), np.nan)
                if raw is None
                else np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
            )
            field_parts.setdefault(name, []).append(column)
        rows_total += len(values)
    if not rows_total:
        return None
    device = np.concatenate(device_parts)
    mine = device >= 0
    return Batch(
        kind,
        device[mine].astype(np.int32),
        np.concatenate(ts_parts)[mine],
        np.concatenate(seq_parts)[mine],
        MappingProxyType({n: np.concatenate(p)[mine] for n, p in field_parts.items()}),
    )
