"""The simulated city's assets as numpy arrays, one table per kind, indexed by a dense device number.

A million lamps are a few arrays of a million entries, never a million objects. Text that repeats
(district, road, grid cell, crew, circuit) is stored once in a City tuple and referenced by index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from devices.kinds import DeviceKind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

GATEWAY = "gateway"
ROAD_CLASSES = ("trunk", "secondary", "branch", "public_place")
NO_INDEX = -1


@dataclass(slots=True, kw_only=True)
class Assets:
    """Assets of one kind: parallel arrays, entry i is device number i of that kind.

    Index columns (district, road, grid, crew, gateway) point into the City's tuples, -1 when empty.
    ``install_day`` is days since 1970-01-01, -1 when unknown. ``params`` keeps each row's JSON text.
    """

    ids: StrArray
    district: IntArray
    road: IntArray
    grid: IntArray
    lat: FloatArray
    lon: FloatArray
    gateway: IntArray
    crew: IntArray
    install_day: IntArray
    rated_power_w: FloatArray  # NaN when empty
    capacity: FloatArray  # NaN when empty
    in_service: BoolArray
    params: list[str]
    _order: IntArray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, ids: Sequence[str]) -> IntArray:
        """Device numbers of ``ids`` (-1 for an id not in this table), by binary search."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable").astype(np.int32)
        wanted = np.asarray(list(ids), dtype=np.str_)
        if not len(self.ids) or not len(wanted):
            return np.full(len(wanted), NO_INDEX, dtype=np.int32)
        pos = np.searchsorted(self.ids, wanted, sorter=self._order)
        pos = np.minimum(pos, len(self.ids) - 1)
        found = self._order[pos]
        return np.where(self.ids[found] == wanted, found, NO_INDEX).astype(np.int32)


@dataclass(slots=True, kw_only=True)
class Lamps(Assets):
    circuit: IntArray  # index into City.circuits


@dataclass(slots=True, kw_only=True)
class Cabinets(Assets):
    circuit: IntArray  # the circuit this cabinet feeds (index into City.circuits)


@dataclass(slots=True, kw_only=True)
class Gateways(Assets):
    pass


@dataclass(slots=True, kw_only=True)
class BridgeNodes(Assets):
    bridge: IntArray  # index into City.bridges
    crack_limit_mm: FloatArray


@dataclass(slots=True, kw_only=True)
class PumpStations(Assets):
    pumps: IntArray
    start_level_m: FloatArray
    stop_level_m: FloatArray
    overflow_level_m: FloatArray
    rated_current_a: FloatArray


@dataclass(slots=True, kw_only=True)
class FloodGauges(Assets):
    station: IntArray  # the pump station serving this flood point (index into stations), -1 none


@dataclass(slots=True, kw_only=True)
class Bins(Assets):
    empty_distance_cm: FloatArray
    blind_zone_cm: FloatArray


@dataclass(slots=True, kw_only=True)
class City:
    """Every asset of the city. ``road_class`` holds an index into ROAD_CLASSES per road, -1 unknown."""

    center: tuple[float, float]
    districts: tuple[str, ...]
    roads: tuple[str, ...]
    road_class: npt.NDArray[np.int8]
    grid_cells: tuple[str, ...]
    crews: tuple[str, ...]
    circuits: tuple[str, ...]
    bridges: tuple[str, ...]
    gateways: Gateways
    lamps: Lamps
    cabinets: Cabinets
    bridge_nodes: BridgeNodes
    stations: PumpStations
    gauges: FloodGauges
    bins: Bins

    def devices(self) -> Mapping[DeviceKind, Assets]:
        """The telemetry-sending tables by kind, in a fixed order."""
        return {
            DeviceKind.LAMP: self.lamps,
            DeviceKind.CABINET: self.cabinets,
            DeviceKind.BRIDGE_NODE: self.bridge_nodes,
            DeviceKind.PUMP_STATION: self.stations,
            DeviceKind.FLOOD_GAUGE: self.gauges,
            DeviceKind.BIN: self.bins,
        }

    def tables(self) -> Mapping[str, Assets]:
        """Every table by registry kind, gateways first (devices refer to them)."""
        return {GATEWAY: self.gateways, **{kind.value: table for kind, table in self.devices().items()}}

    def device_count(self) -> int:
        return sum(len(t) for t in self.devices().values())
