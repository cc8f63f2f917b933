"""The latest state of every device as numpy arrays indexed by device number, and the readings updating it.

A ``Batch`` is readings of one kind as columns (device numbers, timestamps, sequence numbers, one
float64 column per field with NaN where a reading lacks it; booleans are 0.0 / 1.0). ``KindState``
keeps, per device, the latest value of every field (float32; float16 for flags and the dim level;
NaN until first reported: an unknown is never a zero), and the device timestamp of its latest
reading (-1: never heard from). ``LiveState`` holds one per kind.

Readings arrive late, out of order and duplicated (QoS 1 redelivery, gateways flushing a buffer).
``order_rounds`` sorts a batch by device and time, drops readings not newer than what the state already
holds, and cuts the rest into rounds in which every device appears at most once, oldest first; rules
that count consecutive readings then see each reading in turn. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.topology import Topology
from devices.contract import Reading
from devices.kinds import FIELDS, DeviceKind, FieldSpec, FieldType

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

FieldArray = npt.NDArray[np.float32] | npt.NDArray[np.float16]

NEVER = -1  # last_ts of a device that has not reported
_HALF_EXACT = 2048  # float16 represents every integer up to here


@dataclass(frozen=True, slots=True)
class Batch:
    """Readings of one kind as columns aligned with ``device``."""

    kind: DeviceKind
    device: IntArray
    ts_ms: Int64Array
    seq: Int64Array
    fields: Mapping[str, FloatArray]

    def __len__(self) -> int:
        return len(self.device)

    def take(self, rows: npt.NDArray[np.intp] | BoolArray) -> Batch:
        return Batch(
            self.kind,
            self.device[rows],
            self.ts_ms[rows],
            self.seq[rows],
            MappingProxyType({name: col[rows] for name, col in self.fields.items()}),
        )

    def column(self, name: str) -> FloatArray:
        """A field's column, all NaN when no reading of the batch carries it."""
        col = self.fields.get(name)
        return col if col is not None else np.full(len(self.device), np.nan)


#: Fields no rule computes with, kept for the live view: half precision (3 significant digits) is plenty.
_INFORMATIONAL = frozenset({"power_factor", "controller_temp", "supply_current"})


def _storage(spec: FieldSpec) -> type[np.floating[Any]]:
    """float16 holds flags and small integers (dim level 0-100) exactly, NaN included; float32 the rest."""
    if spec.type is FieldType.BOOL or (spec.type is FieldType.INT and spec.high <= _HALF_EXACT):
        return np.float16
    if spec.name in _INFORMATIONAL:
        return np.float16
    return np.float32


class KindState:
    """Latest value of every field of every device of one kind."""

    def __init__(self, kind: DeviceKind, n: int) -> None:
        self.kind = kind
        self.n = n
        self.values: dict[str, FieldArray] = {
            name: np.full(n, np.nan, _storage(spec)) for name, spec in FIELDS[kind].items()
        }
        self.last_ts: Int64Array = np.full(n, NEVER, np.int64)

    def value(self, name: str) -> FieldArray:
        return self.values[name]

    def apply(self, batch: Batch) -> None:
        """Store a round (each device at most once, every reading newer than the stored one)."""
        device = batch.device
        for name, column in batch.fields.items():
            target = self.values.get(name)
            if target is None:
                continue
            known = ~np.isnan(column)
            target[device[known]] = column[known]
        self.last_ts[device] = batch.ts_ms

    @property
    def nbytes(self) -> int:
        fields = sum(v.nbytes for v in self.values.values())
        return fields + self.last_ts.nbytes


class LiveState:
    """One ``KindState`` per device kind of a topology."""

    def __init__(self, topology: Topology) -> None:
        self.kinds: dict[DeviceKind, KindState] = {
            kind: KindState(kind, len(table)) for kind, table in topology.tables.items()
        }

    def __getitem__(self, kind: DeviceKind) -> KindState:
        return self.kinds[kind]

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes for k in self.kinds.values())


def order_rounds(batch: Batch, last_ts: Int64Array) -> tuple[list[Batch], int]:
    """Rounds of ``batch`` in time order (each device at most once per round), and how many readings were
    dropped as duplicates or older than the state (``last_ts`` per device)."""
    if not len(batch):
        return [], 0
    order = np.lexsort((batch.ts_ms, batch.device))
    device, ts = batch.device[order], batch.ts_ms[order]
    fresh = ts > last_ts[device]
    same_as_previous = np.zeros(len(order), dtype=np.bool_)
    same_as_previous[1:] = (device[1:] == device[:-1]) & (ts[1:] == ts[:-1])
    keep = fresh & ~same_as_previous
    dropped = int(len(order) - np.count_nonzero(keep))
    order, device = order[keep], device[keep]
    if not len(order):
        return [], dropped
    starts = np.ones(len(order), dtype=np.bool_)
    starts[1:] = device[1:] != device[:-1]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - group_start
    if not rank.any():
        return [batch.take(order)], dropped
    return [batch.take(order[rank == r]) for r in range(int(rank.max()) + 1)], dropped


def batches_from_readings(readings: Iterable[Reading], topology: Topology) -> tuple[list[Batch], int]:
    """Columnar batches per kind of the readings whose device is in ``topology``; and how many were not
    (devices of another partition, or not yet in this worker's copy of the registry)."""
    grouped: dict[DeviceKind, list[Reading]] = {}
    for reading in readings:
        grouped.setdefault(reading.kind, []).append(reading)
    batches: list[Batch] = []
    foreign = 0
    for kind, rows in grouped.items():
        table = topology.tables.get(kind)
        if table is None:
            foreign += len(rows)
            continue
        device = table.find([r.device for r in rows])
        mine = device >= 0
        foreign += int(len(rows) - np.count_nonzero(mine))
        if not mine.any():
            continue
        kept = [r for r, ok in zip(rows, mine.tolist(), strict=True) if ok]
        batches.append(_columns(kind, device[mine], kept))
    return batches, foreign


def _columns(kind: DeviceKind, device: IntArray, rows: list[Reading]) -> Batch:
    n = len(rows)
    columns: dict[str, FloatArray] = {}
    for i, reading in enumerate(rows):
        for name, value in reading.fields.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = np.full(n, np.nan)
            column[i] = float(value)
    return Batch(
        kind,
        device.astype(np.int32),
        np.fromiter((r.ts_ms for r in rows), dtype=np.int64, count=n),
        np.fromiter((r.seq for r in rows), dtype=np.int64, count=n),
        MappingProxyType(columns),
    )
