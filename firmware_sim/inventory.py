"""The simulated city's inventory: generate it, write it as the asset registry's CSV, read it back.

The CSV is the registry's import format (``devices.assets``), UTF-8, one asset per row, gateways first::

    id,kind,district,road,road_class,grid_cell,circuit,cabinet,gateway,lat,lon,
    rated_power_w,capacity,install_date,crew,params,in_service

``write_inventory`` then ``load_inventory`` gives back the same city, and writing that again gives the
same bytes.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from devices.kinds import MAX_PUMPS
from firmware_sim import InventoryError
from firmware_sim.city import (
    GATEWAY,
    NO_INDEX,
    ROAD_CLASSES,
    Assets,
    Bins,
    BridgeNodes,
    Cabinets,
    City,
    FloodGauges,
    Gateways,
    IntArray,
    Lamps,
    PumpStations,
)
from firmware_sim.citygen import WUHAN, generate_city

__all__ = ["COLUMNS", "generate_city", "load_inventory", "write_inventory"]

log = logging.getLogger(__name__)

COLUMNS = (  # noqa: SIM905 - spelled as the header line it is
    "id,kind,district,road,road_class,grid_cell,circuit,cabinet,gateway,lat,lon,"
    "rated_power_w,capacity,install_date,crew,params,in_service"
).split(",")

_DEFAULT_WATTS = 100.0


def _lookup(names: Sequence[str], index: IntArray) -> list[str]:
    """Names for indices; -1 gives the empty string."""
    table = np.array([*names, ""], dtype=object)
    return list(table[index])


def _numbers(values: np.ndarray) -> list[str]:
    return ["" if math.isnan(v) else f"{v:g}" for v in values.tolist()]


def _dates(days: IntArray) -> list[str]:
    text = days.astype("datetime64[D]").astype(str)
    return list(np.where(days < 0, "", text))


def _rows(city: City, kind: str, t: Assets) -> Iterator[list[str]]:
    n = len(t)
    empty = [""] * n
    circuit, cabinet, road_class = empty, empty, empty
    if isinstance(t, Lamps | Cabinets):
        circuit = _lookup(city.circuits, t.circuit)
        road_class = _lookup(ROAD_CLASSES, city.road_class[t.road].astype(np.int32))
        cabinet_of = np.full(len(city.circuits), NO_INDEX, dtype=np.int32)
        cabinet_of[city.cabinets.circuit] = np.arange(len(city.cabinets), dtype=np.int32)
        cabinet = _lookup(city.cabinets.ids.tolist(), cabinet_of[t.circuit])
    columns: list[list[str]] = [
        t.ids.tolist(),
        [kind] * n,
        _lookup(city.districts, t.district),
        _lookup(city.roads, t.road),
        road_class,
        _lookup(city.grid_cells, t.grid),
        circuit,
        cabinet,
        _lookup(city.gateways.ids.tolist(), t.gateway),
        [f"{v:.6f}" for v in t.lat.tolist()],
        [f"{v:.6f}" for v in t.lon.tolist()],
        _numbers(t.rated_power_w),
        _numbers(t.capacity),
        _dates(t.install_day),
        _lookup(city.crews, t.crew),
        t.params,
        ["true" if flag else "false" for flag in t.in_service.tolist()],
    ]
    return (list(row) for row in zip(*columns, strict=True))


def write_inventory(city: City, path: str | os.PathLike[str]) -> int:
    """Write the city as the registry's CSV (written beside ``path``, then moved over it); returns rows."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            for kind, table in city.tables().items():
                writer.writerows(_rows(city, kind, table))
                count += len(table)
        partial.replace(path)
    except OSError as exc:
        raise InventoryError(f"cannot write {path}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    log.info("wrote %d assets to %s", count, path)
    return count


class _Interner:
    """Text to a dense index, in first-seen order; the empty string is -1."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if not text:
            return NO_INDEX
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.index)
        return found

    def names(self) -> tuple[str, ...]:
        return tuple(self.index)


class _Columns:
    """One kind's rows as column lists while the file is read."""

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.ids: list[str] = []
        self.ints: dict[str, list[int]] = {
            k: [] for k in ("district", "road", "grid", "crew", "gw", "circuit")
        }
        self.install_day: list[int] = []
        self.floats: dict[str, list[float]] = {k: [] for k in ("lat", "lon", "rated", "capacity")}
        self.params: list[str] = []
        self.in_service: list[bool] = []


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = {k: _Interner() for k in ("district", "road", "grid", "crew", "gw", "circuit")}
        self.road_class: dict[int, int] = {}
        self.kinds: dict[str, _Columns] = {}
        self.days: dict[str, int] = {"": NO_INDEX}

    def fail(self, line: int, asset: str, detail: str) -> InventoryError:
        return InventoryError(f"{self.path}:{line}: {asset or 'row'}: {detail}")

    def _day(self, line: int, asset: str, text: str) -> int:
        day = self.days.get(text)
        if day is None:
            try:
                day = int((np.datetime64(text, "D") - np.datetime64("1970-01-01", "D")).astype(int))
            except ValueError:
                raise self.fail(line, asset, f"install_date {text!r} is not YYYY-MM-DD") from None
            self.days[text] = day
        return day

    def row(self, line: int, row: list[str]) -> None:
        if len(row) != len(COLUMNS):
            raise self.fail(line, row[0] if row else "", f"{len(row)} fields, expected {len(COLUMNS)}")
        (asset, kind, district, road, road_class, grid, circuit, _cab, gateway, lat, lon, rated, capacity,
         install, crew, params, in_service) = row  # fmt: skip
        cols = self.kinds.get(kind)
        if cols is None:
            if kind not in _TABLES:
                raise self.fail(line, asset, f"unknown kind {kind!r}")
            cols = self.kinds[kind] = _Columns()
        try:
            cols.floats["lat"].append(float(lat))
            cols.floats["lon"].append(float(lon))
            cols.floats["rated"].append(float(rated) if rated else np.nan)
            cols.floats["capacity"].append(float(capacity) if capacity else np.nan)
        except ValueError as exc:
            raise self.fail(line, asset, f"not a number: {exc}") from None
        cols.lines.append(line)
        cols.ids.append(asset)
        for name, text in (("district", district), ("road", road), ("grid", grid), ("crew", crew)):
            cols.ints[name].append(self.text[name](text))
        cols.ints["gw"].append(self.text["gw"](gateway))
        cols.ints["circuit"].append(self.text["circuit"](circuit))
        if road_class and road:
            if road_class not in ROAD_CLASSES:
                raise self.fail(line, asset, f"road_class {road_class!r} is not one of {ROAD_CLASSES}")
            self.road_class.setdefault(cols.ints["road"][-1], ROAD_CLASSES.index(road_class))
        cols.install_day.append(self._day(line, asset, install))
        cols.params.append(params or "{}")
        cols.in_service.append(in_service.strip().lower() not in ("false", "0", "no", "n", "f"))

    def base(self, kind: str, gateway_of: IntArray) -> dict[str, Any]:
        """The common Assets columns of one kind (empty when the file has none of it)."""
        cols = self.kinds.get(kind, _Columns())
        gw_text = np.asarray(cols.ints["gw"], dtype=np.int32)
        gateway = np.where(gw_text < 0, NO_INDEX, gateway_of[gw_text] if len(gateway_of) else NO_INDEX)
        if kind != GATEWAY and np.any(bad := (gateway == -2)):
            first = int(np.flatnonzero(bad)[0])
            raise self.fail(
                cols.lines[first], cols.ids[first], "its gateway is not a gateway row of this file"
            )
        return {
            "ids": np.array(cols.ids, dtype=np.str_),
            **{
                name: np.asarray(cols.ints[name], dtype=np.int32)
                for name in ("district", "road", "grid", "crew")
            },
            "lat": np.asarray(cols.floats["lat"], dtype=np.float64),
            "lon": np.asarray(cols.floats["lon"], dtype=np.float64),
            "gateway": gateway.astype(np.int32),
            "install_day": np.asarray(cols.install_day, dtype=np.int32),
            "rated_power_w": np.asarray(cols.floats["rated"], dtype=np.float64),
            "capacity": np.asarray(cols.floats["capacity"], dtype=np.float64),
            "in_service": np.asarray(cols.in_service, dtype=np.bool_),
            "params": cols.params,
        }

    def params(self, kind: str, defaults: dict[str, Any]) -> dict[str, list[Any]]:
        """Kind-specific params, one list per key (the default where a row leaves it out)."""
        cols = self.kinds.get(kind, _Columns())
        out: dict[str, list[Any]] = {k: [] for k in defaults}
        for line, asset, text in zip(cols.lines, cols.ids, cols.params, strict=True):
            try:
                values = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise self.fail(line, asset, f"params is not JSON: {exc}") from None
            if not isinstance(values, dict):
                raise self.fail(line, asset, "params is not a JSON object")
            for key, default in defaults.items():
                value = values.get(key, default)
                if type(value) is not type(default) and not (
                    isinstance(default, float) and type(value) is int
                ):
                    raise self.fail(line, asset, f"params {key}={value!r} is not a {type(default).__name__}")
                out[key].append(value)
        return out

    def circuits(self, kind: str) -> IntArray:
        return np.asarray(self.kinds.get(kind, _Columns()).ints["circuit"], dtype=np.int32)


_TABLES: dict[str, Callable[..., Assets]] = {
    GATEWAY: Gateways,
    "lamp": Lamps,
    "cabinet": Cabinets,
    "bridge_node": BridgeNodes,
    "pump_station": PumpStations,
    "flood_gauge": FloodGauges,
    "bin": Bins,
}


def _read(path: Path) -> _Reader:
    reader = _Reader(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f)
            header = next(rows, [])
            if [h.strip().lower() for h in header] != COLUMNS:
                raise InventoryError(f"{path}:1: header is not the registry's: {','.join(COLUMNS)}")
            for line, row in enumerate(rows, start=2):
                if row:
                    reader.row(line, row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InventoryError(f"cannot read {path}: {exc}") from exc
    return reader


def load_inventory(path: str | os.PathLike[str]) -> City:
    """Read a registry CSV (this module's or the registry's export) into a City."""
    r = _read(Path(path))
    gw_cols = r.kinds.get(GATEWAY, _Columns())
    gateway_of = np.full(len(r.text["gw"].index), -2, dtype=np.int32)
    for i, gw in enumerate(gw_cols.ids):
        if gw in r.text["gw"].index:
            gateway_of[r.text["gw"].index[gw]] = i
    gateways = Gateways(**r.base(GATEWAY, gateway_of))
    lamps = Lamps(**r.base("lamp", gateway_of), circuit=r.circuits("lamp"))
    lamps.rated_power_w = np.where(np.isnan(lamps.rated_power_w), _DEFAULT_WATTS, lamps.rated_power_w)
    cabinets = Cabinets(**r.base("cabinet", gateway_of), circuit=r.circuits("cabinet"))
    bridges = _Interner()
    p = r.params("bridge_node", {"bridge": "", "crack_limit_mm": 0.2})
    nodes = BridgeNodes(
        **r.base("bridge_node", gateway_of),
        bridge=np.asarray([bridges(b) for b in p["bridge"]], dtype=np.int32),
        crack_limit_mm=np.asarray(p["crack_limit_mm"], dtype=np.float64),
    )
    p = r.params(
        "pump_station",
        {
            "pumps": 2,
            "start_level_m": 2.5,
            "stop_level_m": 0.8,
            "overflow_level_m": 5.0,
            "rated_current_a": 100.0,
        },
    )
    stations = PumpStations(
        **r.base("pump_station", gateway_of),
        pumps=np.clip(np.asarray(p.pop("pumps"), dtype=np.int32), 1, MAX_PUMPS),
        start_level_m=np.asarray(p["start_level_m"], dtype=np.float64),
        stop_level_m=np.asarray(p["stop_level_m"], dtype=np.float64),
        overflow_level_m=np.asarray(p["overflow_level_m"], dtype=np.float64),
        rated_current_a=np.asarray(p["rated_current_a"], dtype=np.float64),
    )
    station_ids = stations.ids.tolist()
    p = r.params("flood_gauge", {"station": ""})
    gauges = FloodGauges(
        **r.base("flood_gauge", gateway_of),
        station=np.asarray([station_ids.index(s) if s in station_ids else NO_INDEX for s in p["station"]]),
    )
    gauges.station = gauges.station.astype(np.int32)
    p = r.params("bin", {"empty_distance_cm": 120.0, "blind_zone_cm": 25.0})
    bins = Bins(
        **r.base("bin", gateway_of),
        empty_distance_cm=np.asarray(p["empty_distance_cm"], dtype=np.float64),
        blind_zone_cm=np.asarray(p["blind_zone_cm"], dtype=np.float64),
    )
    every = [gateways, lamps, cabinets, nodes, stations, gauges, bins]
    ids = np.concatenate([t.ids for t in every])
    unique, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise InventoryError(f"{path}: id {unique[np.argmax(counts)]} appears more than once")
    roads = r.text["road"].names()
    road_class = np.full(len(roads), NO_INDEX, dtype=np.int8)
    for road, cls in r.road_class.items():
        road_class[road] = cls
    lat = lamps.lat if len(lamps) else np.concatenate([t.lat for t in every])
    lon = lamps.lon if len(lamps) else np.concatenate([t.lon for t in every])
    center = (float(np.median(lat)), float(np.median(lon))) if len(lat) else WUHAN
    return City(
        center=center,
        districts=r.text["district"].names(),
        roads=roads,
        road_class=road_class,
        grid_cells=r.text["grid"].names(),
        crews=r.text["crew"].names(),
        circuits=r.text["circuit"].names(),
        bridges=bridges.names(),
        gateways=gateways,
        lamps=lamps,
        cabinets=cabinets,
        bridge_nodes=nodes,
        stations=stations,
        gauges=gauges,
        bins=bins,
    )
