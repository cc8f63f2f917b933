"""The city as dense tables: every device of a kind gets a number 0..n-1, and every relation an int array.

Built once from the registry's assets (``devices.assets.Asset``), optionally restricted to a partition
(a set of districts). Device numbers are positions in the kind's table, which is sorted by id, so an id
is found by binary search (``Table.find``) and a million ids cost 16-64 bytes each, not a dict entry.

Ids are stored as ASCII bytes (``devices.topics.ID_PATTERN`` allows nothing else): a 10-character id
costs 10 bytes, not numpy's 40 for a unicode string. Positions and ratings are float32 (a metre of
latitude, a tenth of a watt), which keeps the per-device memory of a million-lamp city small.

Relations are codes into the topology's name tuples, -1 where the asset has none: ``district``,
``road``, ``grid``, ``circuit``, ``gateway``, ``crew``. Each road has one road class
(``road_class[road]``, an index into ``ROAD_CLASSES``); each circuit at most one cabinet
(``circuit_cabinet[circuit]``). Kind-specific ``params`` become float arrays (numbers, NaN where a row
lacks the key) or text tuples. Pure: no file, no database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics import TopologyError
from devices.assets import GATEWAY, ROAD_CLASSES, Asset
from devices.kinds import DeviceKind

IntArray = npt.NDArray[np.int32]
Int16Array = npt.NDArray[np.int16]
CodeArray = npt.NDArray[np.signedinteger[Any]]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]
IdArray = npt.NDArray[np.bytes_]
Float32Array = npt.NDArray[np.float32]

NONE = -1
_KIND_VALUES = frozenset(k.value for k in DeviceKind)
_EPOCH = dt.date(1970, 1, 1)
_MAX_DAY = 32767  # int16: 2059-09-18

#: Subjects a finding can be about besides a device kind.
CIRCUIT = "circuit"
ROAD = "road"
ROAD_CLASS = "road_class"
GRID = "grid_cell"
DISTRICT = "district"
CITY = "city"
BRIDGE = "bridge"
GATEWAY_SUBJECT = GATEWAY


@dataclass(frozen=True, slots=True)
class Table:
    """The devices of one kind; entry i of every array is device number i."""

    kind: DeviceKind
    ids: IdArray  # ASCII bytes, sorted ascending
    district: CodeArray  # codes: int16 when the names fit (a city has a few dozen districts), else int32
    road: CodeArray
    grid: CodeArray
    circuit: CodeArray
    gateway: CodeArray
    crew: CodeArray
    lat: Float32Array
    lon: Float32Array
    rated_power_w: Float32Array  # NaN when the registry has none
    capacity: Float32Array  # NaN when the registry has none
    install_day: Int16Array  # days since 1970-01-01 (to 2059), -1 unknown
    in_service: BoolArray
    params: Mapping[str, FloatArray]  # numeric params, NaN where a row lacks the key
    text_params: Mapping[str, tuple[str, ...]]  # text params, "" where a row lacks the key

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, ids: Sequence[str] | StrArray | IdArray) -> IntArray:
        """Device numbers of ``ids``, -1 for an id not in this table."""
        wanted = _as_ids(ids)
        if not len(self.ids) or not len(wanted):
            return np.full(len(wanted), NONE, dtype=np.int32)
        pos = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        return np.where(self.ids[pos] == wanted, pos, NONE).astype(np.int32)

    def param(self, name: str, default: float) -> FloatArray:
        """Numeric param ``name`` per device, ``default`` where the registry row leaves it out."""
        values = self.params.get(name)
        if values is None:
            return np.full(len(self), default, dtype=np.float64)
        return np.where(np.isnan(values), default, values)

    def id_text(self, numbers: npt.ArrayLike) -> list[str]:
        chosen = self.ids[np.asarray(numbers, dtype=np.int64)]
        return list(chosen.astype(np.str_).tolist())  # ASCII: numpy decodes the whole array at once

    @property
    def nbytes(self) -> int:
        arrays = [getattr(self, n) for n in _ARRAY_FIELDS]
        return sum(_held(a) for a in arrays) + sum(_held(a) for a in self.params.values())


def _held(a: npt.NDArray[Any]) -> int:
    """Bytes an array really holds: a broadcast constant (stride 0) holds one item."""
    return a.itemsize if a.ndim == 1 and a.strides[0] == 0 else int(a.nbytes)


def _floats(values: list[float], n: int) -> Float32Array:
    """float32 column; one shared NaN when no row has a value (a lamp has no capacity)."""
    column = np.array(values, dtype=np.float32)
    if n and np.isnan(column).all():
        return np.broadcast_to(np.float32(np.nan), (n,))
    return column


def _narrow(codes: CodeArray, names: int) -> CodeArray:
    """int16 codes when every name's code fits (a city's districts, often its roads and gateways)."""
    return codes.astype(np.int16) if names < np.iinfo(np.int16).max else codes


def _as_ids(ids: Sequence[str] | StrArray | IdArray) -> IdArray:
    arr = np.asarray(ids)
    if arr.dtype.kind == "S":
        return arr
    try:
        return np.asarray(arr, dtype=np.bytes_) if len(arr) else np.zeros(0, dtype="S1")
    except UnicodeEncodeError:  # a non-ASCII id is in no table: look the others up one by one
        return np.array([i.encode("ascii", "replace") if isinstance(i, str) else i for i in arr.tolist()])


_ARRAY_FIELDS = (
    "ids",
    "district",
    "road",
    "grid",
    "circuit",
    "gateway",
    "crew",
    "lat",
    "lon",
    "rated_power_w",
    "capacity",
    "install_day",
    "in_service",
)


@dataclass(frozen=True, slots=True)
class Topology:
    """Every device table of a city (or of one partition), and the names the codes point at."""

    districts: tuple[str, ...]
    roads: tuple[str, ...]
    road_class: npt.NDArray[np.int8]  # per road: index into ROAD_CLASSES, -1 unknown
    grid_cells: tuple[str, ...]
    circuits: tuple[str, ...]
    circuit_cabinet: IntArray  # per circuit: the cabinet's number in the cabinet table, -1 none
    gateways: tuple[str, ...]
    crews: tuple[str, ...]
    tables: Mapping[DeviceKind, Table] = field(default_factory=dict)
    _lookup: dict[str, dict[str, int]] = field(default_factory=dict, compare=False, repr=False)

    def table(self, kind: DeviceKind) -> Table:
        return self.tables[kind]

    def names(self, subject: str, numbers: npt.ArrayLike) -> list[str]:
        """Names of subjects (a DeviceKind value, circuit, gateway, road, road_class, grid_cell, district,
        city) by number; "" for -1."""
        index = np.asarray(numbers, dtype=np.int64)
        if subject == CITY:
            return ["city"] * len(index)
        table: tuple[str, ...] | None = {
            CIRCUIT: self.circuits,
            GATEWAY_SUBJECT: self.gateways,
            ROAD: self.roads,
            ROAD_CLASS: ROAD_CLASSES,
            GRID: self.grid_cells,
            DISTRICT: self.districts,
        }.get(subject)
        if table is None:
            names = self.tables[DeviceKind(subject)].id_text(np.maximum(index, 0))
            return [n if i >= 0 else "" for n, i in zip(names, index.tolist(), strict=True)]
        return [str(table[i]) if i >= 0 else "" for i in index.tolist()]

    def number(self, subject: str, name: str) -> int:
        """The number of the subject called ``name`` (the reverse of ``names``), -1 when unknown."""
        if subject == CITY:
            return 0
        if subject in _KIND_VALUES:
            kind = DeviceKind(subject)
            return int(self.tables[kind].find([name])[0]) if kind in self.tables else NONE
        index = self._lookup.get(subject)
        if index is None:
            names: Sequence[str] = {
                CIRCUIT: self.circuits,
                GATEWAY_SUBJECT: self.gateways,
                ROAD: self.roads,
                ROAD_CLASS: ROAD_CLASSES,
                GRID: self.grid_cells,
                DISTRICT: self.districts,
            }.get(subject, ())
            index = self._lookup[subject] = {n: i for i, n in enumerate(names)}
        return index.get(name, NONE)

    def subject_district(self, subject: str, numbers: npt.ArrayLike) -> list[str]:
        """The district of each subject where it has one (devices, and circuits by their cabinet)."""
        index = np.asarray(numbers, dtype=np.int64)
        codes: npt.NDArray[np.int64]
        if subject == DISTRICT:
            codes = index
        elif subject == CIRCUIT and DeviceKind.CABINET in self.tables:
            cabinet = self.circuit_cabinet[index]
            codes = np.where(cabinet >= 0, self.tables[DeviceKind.CABINET].district[cabinet], NONE)
        elif subject in _KIND_VALUES and DeviceKind(subject) in self.tables:
            codes = self.tables[DeviceKind(subject)].district[index].astype(np.int64)
        else:
            codes = np.full(len(index), NONE, dtype=np.int64)
        return [self.districts[c] if c >= 0 else "" for c in codes.tolist()]

    def count(self, subject: str) -> int:
        """How many subjects of a kind there are."""
        sizes = {
            CIRCUIT: len(self.circuits),
            GATEWAY_SUBJECT: len(self.gateways),
            ROAD: len(self.roads),
            ROAD_CLASS: len(ROAD_CLASSES),
            GRID: len(self.grid_cells),
            DISTRICT: len(self.districts),
            CITY: 1,
        }
        if subject in sizes:
            return sizes[subject]
        kind = DeviceKind(subject)
        return len(self.tables[kind]) if kind in self.tables else 0

    @property
    def device_count(self) -> int:
        return sum(len(t) for t in self.tables.values())

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables.values()) + self.circuit_cabinet.nbytes


class _Names:
    """Interns names into codes in order of first appearance."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        if not name:
            return NONE
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.codes)
        return code

    def names(self) -> tuple[str, ...]:
        return tuple(self.codes)


def _param_columns(assets: Sequence[Asset]) -> tuple[dict[str, FloatArray], dict[str, tuple[str, ...]]]:
    numeric: dict[str, FloatArray] = {}
    text: dict[str, list[str]] = {}
    n = len(assets)
    for i, asset in enumerate(assets):
        for key, value in asset.params.items():
            if isinstance(value, int | float):  # bool is an int
                column = numeric.get(key)
                if column is None:
                    column = numeric[key] = np.full(n, np.nan)
                column[i] = float(value)
            elif isinstance(value, str):
                text.setdefault(key, [""] * n)[i] = value
    return numeric, {k: tuple(v) for k, v in text.items()}


def _day(day: dt.date | None) -> int:
    return NONE if day is None else min((day - _EPOCH).days, _MAX_DAY)


def build_topology(assets: Iterable[Asset], *, districts: Collection[str] | None = None) -> Topology:
    """Dense tables of every in-registry device (of ``districts`` only, when given).

    Gateways are kept whatever their district: a partition's devices may hang on a gateway registered
    elsewhere. Raises ``TopologyError`` for a device that names a gateway the assets do not contain.
    """
    wanted = None if districts is None else frozenset(districts)
    by_kind: dict[DeviceKind, list[Asset]] = {k: [] for k in DeviceKind}
    gateway_ids: list[str] = []
    for asset in assets:
        if asset.kind == GATEWAY:
            gateway_ids.append(asset.id)
        elif wanted is None or asset.district in wanted:
            by_kind[DeviceKind(asset.kind)].append(asset)
    gateway_code = {g: i for i, g in enumerate(sorted(gateway_ids))}
    district_n, road_n, grid_n, circuit_n, crew_n = _Names(), _Names(), _Names(), _Names(), _Names()
    road_classes: dict[int, int] = {}
    tables: dict[DeviceKind, Table] = {}
    for kind, rows in by_kind.items():
        rows.sort(key=lambda a: a.id)
        n = len(rows)
        unknown = [a.id for a in rows if a.gateway and a.gateway not in gateway_code]
        if unknown:
            raise TopologyError(f"{len(unknown)} {kind} devices name an unknown gateway, e.g. {unknown[0]}")
        road = np.fromiter((road_n(a.road) for a in rows), dtype=np.int32, count=n)
        for a, r in zip(rows, road.tolist(), strict=True):
            if r >= 0 and a.road_class:
                road_classes.setdefault(r, ROAD_CLASSES.index(a.road_class))
        numeric, text = _param_columns(rows)
        tables[kind] = Table(
            kind=kind,
            ids=np.array([a.id.encode("ascii") for a in rows], dtype=np.bytes_),
            district=np.fromiter((district_n(a.district) for a in rows), dtype=np.int16, count=n),
            road=road,
            grid=np.fromiter((grid_n(a.grid_cell) for a in rows), dtype=np.int32, count=n),
            circuit=np.fromiter((circuit_n(a.circuit) for a in rows), dtype=np.int32, count=n),
            gateway=np.fromiter((gateway_code.get(a.gateway, NONE) for a in rows), dtype=np.int32, count=n),
            crew=np.fromiter((crew_n(a.crew) for a in rows), dtype=np.int16, count=n),
            lat=np.fromiter((a.lat for a in rows), dtype=np.float32, count=n),
            lon=np.fromiter((a.lon for a in rows), dtype=np.float32, count=n),
            rated_power_w=np.array(
                [np.nan if a.rated_power_w is None else a.rated_power_w for a in rows], dtype=np.float32
            ),
            capacity=_floats([np.nan if a.capacity is None else a.capacity for a in rows], n),
            install_day=np.array([_day(a.install_date) for a in rows], dtype=np.int16),
            in_service=np.array([a.in_service for a in rows], dtype=np.bool_),
            params=MappingProxyType(numeric),
            text_params=MappingProxyType(text),
        )
    sizes = {
        "road": len(road_n.codes),
        "grid": len(grid_n.codes),
        "circuit": len(circuit_n.codes),
        "gateway": len(gateway_code),
    }
    for kind, t in tables.items():
        narrowed = {name: _narrow(getattr(t, name), size) for name, size in sizes.items()}
        tables[kind] = replace(t, **narrowed)  # type: ignore[arg-type]  # all four are code arrays
    circuits = circuit_n.names()
    circuit_cabinet = np.full(len(circuits), NONE, dtype=np.int32)
    cab = tables[DeviceKind.CABINET]
    has = cab.circuit >= 0
    circuit_cabinet[cab.circuit[has]] = np.flatnonzero(has).astype(np.int32)
    roads = road_n.names()
    road_class = np.full(len(roads), NONE, dtype=np.int8)
    for r, c in road_classes.items():
        road_class[r] = c
    return Topology(
        districts=district_n.names(),
        roads=roads,
        road_class=road_class,
        grid_cells=grid_n.names(),
        circuits=circuits,
        circuit_cabinet=circuit_cabinet,
        gateways=tuple(sorted(gateway_ids)),
        crews=crew_n.names(),
        tables=MappingProxyType(tables),
    )
