"""Counting lamps, cabinets and circuits into every rate scope: road, road class, grid cell, district, city.

Every lamp, in-service cabinet and circuit falls in one (road, district, grid cell) *cell*. Per evaluate,
one ``np.bincount`` over a small per-lamp code (``lamp_codes``: category and intact or not) counts the
cells; fixed sparse matrices built once sum cells into every scope, so counts are summed, never rates
averaged. Districts and grid cells are the items' own, not their road's. When roads cross so many grid
cells that the cells outnumber the lamps, (road, district) segments and grid cells are counted apart
instead: two bincounts. A cabinet or circuit sits where its cabinet is registered (a circuit without a
cabinet: where its first lamp is).

The registry's installation figures (lamp heads registered and in service, roads with either) are fixed
per scope and computed once. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from analytics.topology import CITY, DISTRICT, GRID, NONE, ROAD, ROAD_CLASS, IntArray, Topology
from devices.assets import ROAD_CLASSES
from devices.kinds import DeviceKind

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

SCOPES = (ROAD, ROAD_CLASS, GRID, DISTRICT, CITY)
# Columns of the per-bin counts.
_DUE, _LIT, _UNKNOWN, _ITEMS, _BROKEN = range(5)
# Lamp categories in the per-evaluate code: out of service, not due, due lit, due dark, due unknown.
_CATEGORIES = 5
_COLUMNS = 2 * _CATEGORIES  # lamp bins per cell: category, intact or not
# Count in cells when their bins are no more than the lamps themselves: one bincount serves every scope.
# A city whose roads cross many grid cells counts twice instead.
_CELL_BUDGET = 1.0


def rate(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(len(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def lamp_codes(
    in_service: BoolArray,
    due: BoolArray,
    dark: BoolArray,
    unknown: BoolArray,
    broken: BoolArray,
    *,
    out: Int8Array | None = None,
) -> Int8Array:
    """Each lamp's code: 2 * category + not intact (``due``, ``dark`` and ``unknown`` only where in service
    and due; ``dark`` and ``unknown`` exclusive). Written into ``out`` when given."""
    code = np.empty(len(in_service), dtype=np.int8) if out is None else out
    code[:] = in_service
    code += due
    code += dark
    code += unknown
    code += unknown
    code *= 2
    code += broken
    return code


@dataclass(frozen=True, slots=True)
class _Bins:
    """Counting bins: every lamp, in-service cabinet and circuit falls in one (codes pre-multiplied)."""

    n: int
    lamp: IntArray  # bin * 2 * _CATEGORIES
    cabinet: IntArray  # bin * 2
    circuit: IntArray  # bin * 2

    @staticmethod
    def of(bins: IntArray, sizes: tuple[int, int], n: int) -> _Bins:
        lamp, cabinet, circuit = np.split(bins.astype(np.int32), np.cumsum(sizes))
        return _Bins(n, lamp * np.int32(2 * _CATEGORIES), cabinet * np.int32(2), circuit * np.int32(2))

    def count(
        self, lamp_code: Int8Array, cabinet_broken: BoolArray, circuit_broken: BoolArray, scratch: IntArray
    ) -> FloatArray:
        """Per bin: due, lit, unknown, items and items not intact (columns ``_DUE`` .. ``_BROKEN``)."""
        np.add(self.lamp, lamp_code, out=scratch)
        lamps = np.bincount(scratch, minlength=self.n * _COLUMNS)
        by_code = lamps.reshape(self.n, _CATEGORIES, 2)  # [bin, category, not intact]
        per_category = by_code[:, :, 0] + by_code[:, :, 1]
        others = np.bincount(self.cabinet + cabinet_broken, minlength=self.n * 2)
        others += np.bincount(self.circuit + circuit_broken, minlength=self.n * 2)
        # column sums written out: a matrix product here goes through BLAS threads, slow on a busy host
        out = np.empty((self.n, 5))
        out[:, _LIT] = per_category[:, 2]
        out[:, _UNKNOWN] = per_category[:, 4]
        out[:, _DUE] = per_category[:, 2] + per_category[:, 3] + per_category[:, 4]
        out[:, _ITEMS] = out[:, _DUE] + per_category[:, 1] + others[0::2] + others[1::2]
        out[:, _BROKEN] = (
            by_code[:, 1, 1] + by_code[:, 2, 1] + by_code[:, 3, 1] + by_code[:, 4, 1] + others[1::2]
        )
        return out


@dataclass(frozen=True, slots=True)
class Scope:
    """One scope kind's names, the bin set it sums and how, and its registry figures."""

    ids: tuple[str, ...]
    bins: int  # which bin set it rolls up from
    rollup: Any  # scipy.sparse CSR matrix, scopes x bins
    register: Mapping[str, FloatArray]  # installation fields, fixed by the registry


class ScopeCounts:
    """Due, lit, unknown, items and intact items of every scope, from per-item flags."""

    def __init__(self, topology: Topology, cabinets_in_service: IntArray) -> None:
        self._cabinets = cabinets_in_service
        self.bin_sets, self.scopes = _scopes(topology, cabinets_in_service)
        # Each lamp's bin code, rewritten by every count: a fresh array each evaluate costs page faults.
        self._scratch: IntArray = np.zeros(len(topology.table(DeviceKind.LAMP)), dtype=np.int32)

    def fields(
        self, lamp_code: Int8Array, cabinet_broken: BoolArray, circuit_broken: BoolArray
    ) -> dict[str, dict[str, FloatArray]]:
        """Per scope: due, lit, unknown, lighting_rate (unknown left out), lighting_rate_lower (unknown
        dark), items, intact, intact_rate and the registry's installation figures. ``cabinet_broken``
        covers every cabinet, ``circuit_broken`` every circuit."""
        cabinets = cabinet_broken[self._cabinets]
        counts = [bins.count(lamp_code, cabinets, circuit_broken, self._scratch) for bins in self.bin_sets]
        fields: dict[str, dict[str, FloatArray]] = {}
        for name, scope in self.scopes.items():
            agg = np.asarray(scope.rollup @ counts[scope.bins], dtype=np.float64)
            due, lit, unknown, items, not_intact = (agg[:, k] for k in range(5))
            fields[name] = {
                "due": due,
                "lit": lit,
                "unknown": unknown,
                "lighting_rate": rate(lit, due - unknown),
                "lighting_rate_lower": rate(lit, due),
                "items": items,
                "intact": items - not_intact,
                "intact_rate": rate(items - not_intact, items),
                **scope.register,
            }
        return fields

    @property
    def nbytes(self) -> int:
        bins = sum(a.nbytes for b in self.bin_sets for a in (b.lamp, b.cabinet, b.circuit))
        return bins + self._scratch.nbytes


def _places(topology: Topology, cabinets: IntArray) -> dict[str, Int64Array]:
    """Road, district and grid code of every lamp, then every in-service cabinet, then every circuit (its
    cabinet's place, or its first lamp's when it has no cabinet)."""
    lamps, cabinet_table = topology.table(DeviceKind.LAMP), topology.table(DeviceKind.CABINET)
    first_lamp = np.full(len(topology.circuits), len(lamps), dtype=np.int64)
    on_circuit = lamps.circuit >= 0
    np.minimum.at(first_lamp, lamps.circuit[on_circuit], np.flatnonzero(on_circuit))
    has_lamp, has_cabinet = first_lamp < len(lamps), topology.circuit_cabinet >= 0
    places = {}
    for column in ("road", "district", "grid"):
        of_lamp, of_cabinet = getattr(lamps, column), getattr(cabinet_table, column)
        circuit = np.full(len(topology.circuits), NONE, dtype=np.int64)
        circuit[has_lamp] = of_lamp[first_lamp[has_lamp]]
        circuit[has_cabinet] = of_cabinet[topology.circuit_cabinet[has_cabinet]]
        places[column] = np.concatenate([of_lamp, of_cabinet[cabinets], circuit]).astype(np.int64)
    return places


def _scopes(topology: Topology, cabinets: IntArray) -> tuple[tuple[_Bins, ...], dict[str, Scope]]:
    """The counting bins of every item, and each scope's roll-up matrix and registry fields.

    Bins are (road, district, grid cell) cells when there are few of them (one bincount rolls up into
    every scope); otherwise (road, district) segments plus grid cells on their own (two bincounts)."""
    lamps = topology.table(DeviceKind.LAMP)
    places = _places(topology, cabinets)
    sizes = (len(lamps), len(cabinets))
    n_grid = len(topology.grid_cells)
    d1, g1 = len(topology.districts) + 1, n_grid + 1
    key = ((places["road"] + 1) * d1 + places["district"] + 1) * g1 + places["grid"] + 1
    keys, main = np.unique(key, return_inverse=True)
    one_set = len(keys) * _COLUMNS <= _CELL_BUDGET * max(len(lamps), 1)
    if not one_set:
        keys, main = np.unique(key // g1 * g1, return_inverse=True)  # grid part 0: none
    bin_road, bin_district, bin_grid = keys // (g1 * d1) - 1, (keys // g1) % d1 - 1, keys % g1 - 1
    bin_sets = [_Bins.of(main, sizes, len(keys))]
    grid_set, grid_of_bin = 0, bin_grid
    if not one_set:
        bin_sets.append(_Bins.of(np.where(places["grid"] >= 0, places["grid"], n_grid), sizes, g1))
        grid_set, grid_of_bin = 1, np.append(np.arange(n_grid), NONE)
    class_of_road = np.append(topology.road_class, NONE).astype(np.int64)  # road -1 picks the appended -1
    bin_class = class_of_road[bin_road]
    lamp_road = lamps.road.astype(np.int64)
    lamp_class = class_of_road[lamp_road]
    index: dict[str, tuple[Sequence[str], int, Int64Array, npt.ArrayLike]] = {
        # scope: (ids, bin set, scope of each bin, scope of each lamp)
        ROAD: (topology.roads, 0, bin_road, lamp_road),
        ROAD_CLASS: (ROAD_CLASSES, 0, bin_class, lamp_class),
        GRID: (topology.grid_cells, grid_set, grid_of_bin, lamps.grid),
        DISTRICT: (topology.districts, 0, bin_district, lamps.district),
        CITY: (("city",), 0, np.zeros(len(keys), dtype=np.int64), np.zeros(len(lamps), dtype=np.int64)),
    }
    scopes = {}
    for name, (ids, bins, of_bin, of_lamp) in index.items():
        n = len(ids)
        valid = of_bin >= 0
        shape = (n, bin_sets[bins].n)
        rollup = sparse.csr_matrix(
            (np.ones(np.count_nonzero(valid)), (of_bin[valid], np.flatnonzero(valid))), shape=shape
        )
        scopes[name] = Scope(tuple(ids), bins, rollup, _register(of_lamp, lamp_road, lamps.in_service, n))
    return tuple(bin_sets), scopes


def _register(
    of_lamp: npt.ArrayLike, road: Int64Array, in_service: BoolArray, n: int
) -> Mapping[str, FloatArray]:
    """Installation fields of each scope: lamp heads registered and in service, roads with either."""
    scope = np.asarray(of_lamp, dtype=np.int64)
    known = scope >= 0
    registered = np.bincount(scope[known], minlength=n).astype(np.float64)
    installed = np.bincount(scope[known], weights=in_service[known], minlength=n).astype(np.float64)
    stride = int(road.max(initial=0)) + 1

    def distinct_roads(keep: BoolArray) -> FloatArray:
        pairs = np.unique(scope[keep] * stride + road[keep])
        return np.bincount(pairs // stride, minlength=n).astype(np.float64)

    roads = distinct_roads(known & (road >= 0))
    roads_installed = distinct_roads(known & (road >= 0) & in_service)
    return MappingProxyType(
        {
            "registered": registered,
            "installed": installed,
            "installation_rate": rate(installed, registered),
            "roads": roads,
            "roads_installed": roads_installed,
            "road_installation_rate": rate(roads_installed, roads),
        }
    )
