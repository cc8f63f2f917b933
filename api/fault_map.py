"""The fault map's clustering and positions (pure: arrays in, arrays out; no database, no clock).

Clustering puts every fault inside the asked bounding box on a grid of square cells ``cell_px`` screen
pixels wide at the asked zoom, in Web Mercator pixels (the slippy-map zoom: the world is
``256 * 2**zoom`` pixels around). A cell is one cluster: its count, its centroid, its faults per
severity rank and its worst rank. A cell holding fewer than ``min_cluster`` faults sends them as single
points instead, so a lone fault is drawn where it is and can be opened. The grid belongs to the world,
not to the box, so a cluster stays put while the map pans.

Cost: one pass of array arithmetic over the faults plus ``np.bincount`` over the cells, O(n + cells).
The cells are bounded by ``max_cells``: a box too large for its zoom gets coarser cells (twice as wide,
until they fit), so a request can never ask for a grid of a billion cells or a reply of a million
points.

Positions: the registry's assets are loaded once into ``Positions`` (``positions_from_assets``); the
subject of an alert is placed where the analytics place a finding (``analytics.lineproto``): a device at
its own position, a circuit at its cabinet (else its first lamp), a gateway at its own, a road or grid
cell at the mean of its assets; anything else (a district, the city) has no place. The live alerts
become a ``FaultTable`` (arrays by row) once per change of the store, and every request clusters or
counts the rows its caller may see (``FaultTable.mine``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from analytics.alerts.model import Alert, Severity
from devices.assets import GATEWAY
from devices.kinds import DeviceKind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
RankArray = npt.NDArray[np.int8]

MAX_ZOOM: Final = 22  # the deepest zoom slippy maps use
TILE_PX: Final = 256
MAX_LAT: Final = 85.05112878  # Web Mercator's edge: the square world


@dataclass(frozen=True, slots=True)
class Box:
    """A bounding box in WGS 84 degrees (the GeoJSON ``bbox`` order)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


@dataclass(frozen=True, slots=True)
class Grid:
    """How the map is cut: cells about ``cell_px`` pixels wide, at most ``max_cells`` in a box."""

    cell_px: int = 64
    min_cluster: int = 2  # a cell with fewer faults sends them one by one
    max_cells: int = 4096


@dataclass(frozen=True, slots=True)
class Clusters:
    """The faults of a box on a grid. Cluster ``i`` has ``count[i]`` faults around (``lat[i]``, ``lon[i]``),
    ``by_rank[i, r]`` of rank ``r`` and worst rank ``worst[i]``; ``points`` are the indexes (into the
    arrays given) of the faults sent one by one."""

    zoom: int  # the zoom the cells were sized for (lower than asked when the box was too large)
    cell_lon: float  # a cell's width and height in degrees
    cell_lat: float
    lat: FloatArray
    lon: FloatArray
    count: IntArray
    by_rank: IntArray  # (clusters, ranks)
    worst: RankArray
    points: IntArray
    inside: int  # faults inside the box (clustered or not)


def zoom_for(box: Box, view_px: int = 1024) -> int:
    """The zoom at which ``box`` is about ``view_px`` pixels wide (0 to MAX_ZOOM)."""
    span = max(box.max_lon - box.min_lon, 1e-9)
    return int(min(MAX_ZOOM, max(0, math.floor(math.log2(360.0 * view_px / (TILE_PX * span))))))


def cell_size(zoom: int, mid_lat: float, cell_px: int) -> tuple[float, float]:
    """A cell's (width, height) in degrees at ``zoom`` near latitude ``mid_lat`` (what the reply reports)."""
    width = 360.0 * cell_px / (TILE_PX * 2.0**zoom)
    return width, width * math.cos(math.radians(min(abs(mid_lat), MAX_LAT)))


def mercator(lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Web Mercator coordinates in world units, 0 to 1 (x east from -180, y south from the top); times
    ``256 * 2**zoom`` they are the pixels at that zoom."""
    phi = np.radians(np.clip(lat, -MAX_LAT, MAX_LAT))
    return (lon + 180.0) / 360.0, (1.0 - np.log(np.tan(phi) + 1.0 / np.cos(phi)) / math.pi) / 2.0


def mercator_px(lat: FloatArray, lon: FloatArray, zoom: int) -> tuple[FloatArray, FloatArray]:
    """Web Mercator pixel coordinates at ``zoom``."""
    world = TILE_PX * 2.0**zoom
    x, y = mercator(lat, lon)
    return x * world, y * world


def _cells(box: Box, zoom: int, cell_px: int) -> tuple[int, int, int, int]:
    """The first column and row of the box's cells, and how many of each."""
    x, y = mercator_px(np.array([box.max_lat, box.min_lat]), np.array([box.min_lon, box.max_lon]), zoom)
    first = np.floor(np.array([x[0], y[0]]) / cell_px).astype(np.int64)
    last = np.floor(np.array([x[1], y[1]]) / cell_px).astype(np.int64)
    x0, y0 = int(first[0]), int(first[1])
    return x0, y0, int(last[0]) - x0 + 1, int(last[1]) - y0 + 1


def cluster(
    lat: FloatArray,
    lon: FloatArray,
    rank: RankArray,
    box: Box,
    zoom: int,
    grid: Grid,
    ranks: int,
    *,
    world: tuple[FloatArray, FloatArray] | None = None,
) -> Clusters:
    """Cluster the faults at (``lat``, ``lon``) with severity ``rank`` (0 the worst, below ``ranks``) that
    lie inside ``box`` (edges included); NaN positions lie nowhere. ``world``: the faults' ``mercator``
    coordinates when the caller keeps them (they are half the cost of a request)."""
    zoom = min(max(zoom, 0), MAX_ZOOM)
    while True:
        x0, y0, nx, ny = _cells(box, zoom, grid.cell_px)
        if nx * ny <= grid.max_cells or zoom == 0:
            break
        zoom -= 1
    # NaN compares False: an unplaced fault is never inside.
    inside = np.flatnonzero(
        (lon >= box.min_lon) & (lon <= box.max_lon) & (lat >= box.min_lat) & (lat <= box.max_lat)
    )
    la, lo, rk = lat[inside], lon[inside], rank[inside].astype(np.int64)
    wx, wy = mercator(la, lo) if world is None else (world[0][inside], world[1][inside])
    per_cell = TILE_PX * 2.0**zoom / grid.cell_px  # cells around the world
    # A point on the box's edge can round into the next cell: clip it back onto the grid.
    ix = np.clip(np.floor(wx * per_cell).astype(np.int64) - x0, 0, nx - 1)
    iy = np.clip(np.floor(wy * per_cell).astype(np.int64) - y0, 0, ny - 1)
    cell = iy * nx + ix
    cells = nx * ny
    count = np.bincount(cell, minlength=cells)
    by_rank = np.bincount(cell * ranks + rk, minlength=cells * ranks).reshape(cells, ranks)
    sum_lat = np.bincount(cell, weights=la, minlength=cells)
    sum_lon = np.bincount(cell, weights=lo, minlength=cells)
    big = np.flatnonzero(count >= grid.min_cluster)
    small = count[cell] < grid.min_cluster
    width, height = cell_size(zoom, (box.min_lat + box.max_lat) / 2, grid.cell_px)
    return Clusters(
        zoom=zoom,
        cell_lon=width,
        cell_lat=height,
        lat=sum_lat[big] / count[big],
        lon=sum_lon[big] / count[big],
        count=count[big],
        by_rank=by_rank[big],
        worst=np.argmax(by_rank[big] > 0, axis=1).astype(np.int8),
        points=inside[small],
        inside=len(inside),
    )


# --- positions ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetRow:
    """What placing a subject needs of one registry asset."""

    id: str
    kind: str
    lat: float
    lon: float
    circuit: str = ""
    road: str = ""
    grid_cell: str = ""


@dataclass(frozen=True, slots=True)
class Positions:
    """Where subjects are: ``assets`` maps an asset id (a device or a gateway) to (lat, lon); ``groups``
    maps ("circuit" | "road" | "grid_cell", name) to (lat, lon); ``box`` covers every asset (None: none)."""

    assets: Mapping[str, tuple[float, float]]
    groups: Mapping[tuple[str, str], tuple[float, float]]
    box: Box | None

    def place(self, subject_kind: str, subject: str) -> tuple[float, float] | None:
        if subject_kind in ASSET_SUBJECTS:
            return self.assets.get(subject)
        return self.groups.get((subject_kind, subject))


#: Subject kinds that are assets themselves (the device kinds and gateways).
ASSET_SUBJECTS: Final = frozenset({*(k.value for k in DeviceKind), GATEWAY})
NO_POSITIONS: Final = Positions({}, {}, None)


def _means(names: Sequence[str], lat: FloatArray, lon: FloatArray) -> dict[str, tuple[float, float]]:
    keep = [i for i, n in enumerate(names) if n]
    if not keep:
        return {}
    uniq, code = np.unique(np.asarray([names[i] for i in keep]), return_inverse=True)
    n = np.bincount(code)
    mlat = np.bincount(code, weights=lat[keep]) / n
    mlon = np.bincount(code, weights=lon[keep]) / n
    return {str(name): (float(a), float(b)) for name, a, b in zip(uniq, mlat, mlon, strict=True)}


def positions_from_assets(rows: Iterable[AssetRow]) -> Positions:
    """The positions of every asset and of their circuits, roads and grid cells."""
    rows = list(rows)
    if not rows:
        return NO_POSITIONS
    lat = np.fromiter((r.lat for r in rows), dtype=np.float64, count=len(rows))
    lon = np.fromiter((r.lon for r in rows), dtype=np.float64, count=len(rows))
    assets = {r.id: (r.lat, r.lon) for r in rows}
    groups: dict[tuple[str, str], tuple[float, float]] = {}
    for relation in ("road", "grid_cell"):
        for name, place in _means([getattr(r, relation) for r in rows], lat, lon).items():
            groups[relation, name] = place
    # A circuit is where its cabinet is; a circuit without one, at its first lamp (by id).
    for r in sorted((r for r in rows if r.circuit), key=lambda r: (r.kind != "cabinet", r.id)):
        groups.setdefault(("circuit", r.circuit), (r.lat, r.lon))
    box = Box(float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    return Positions(assets, groups, box)


def place_all(positions: Positions, subjects: Sequence[tuple[str, str]]) -> tuple[FloatArray, FloatArray]:
    """The (lat, lon) arrays of (subject_kind, subject) pairs, NaN where a subject has no place."""
    lat = np.full(len(subjects), np.nan)
    lon = np.full(len(subjects), np.nan)
    for i, (kind, subject) in enumerate(subjects):
        found = positions.place(kind, subject)
        if found is not None:
            lat[i], lon[i] = found
    return lat, lon


# --- the live alerts on the map ---------------------------------------------------------------------------

#: Severity ranks, the worst first (the order of ``Severity``).
SEVERITIES: Final = tuple(Severity)
_RANK: Final = {s: np.int8(i) for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class FaultTable:
    """The live alerts as arrays: row ``i`` is ``alerts[i]`` at (``lat[i]``, ``lon[i]``), NaN unplaced."""

    alerts: tuple[Alert, ...]
    lat: FloatArray
    lon: FloatArray
    world: tuple[FloatArray, FloatArray]  # ``mercator`` of (lat, lon), computed once per table
    rank: RankArray
    deadline_ms: IntArray
    crew: npt.NDArray[np.int32]  # codes into ``crews``
    crews: tuple[str, ...]
    carried: npt.NDArray[np.bool_]  # suppressed by an incident alert (drawn with the incident, not alone)
    row_of: Mapping[str, int]

    def mine(self, crew: str | None) -> npt.NDArray[np.bool_]:
        """Rows a caller sees: every row (``crew`` None), else that crew's."""
        if crew is None:
            return np.ones(len(self.alerts), dtype=np.bool_)
        code = self.crews.index(crew) if crew in self.crews else -1  # -1: no row
        return np.equal(self.crew, code)


def fault_table(alerts: Iterable[Alert], positions: Positions) -> FaultTable:
    """The live alerts among ``alerts`` placed on ``positions``, by deadline."""
    live = tuple(sorted((a for a in alerts if a.live), key=lambda a: (a.deadline_ms, a.id)))
    lat, lon = place_all(positions, [(a.subject_kind, a.subject) for a in live])
    crews, crew = np.unique(np.asarray([a.crew for a in live], dtype=np.str_), return_inverse=True)
    return FaultTable(
        alerts=live,
        lat=lat,
        lon=lon,
        world=mercator(lat, lon),
        rank=np.fromiter((_RANK[a.severity] for a in live), dtype=np.int8, count=len(live)),
        deadline_ms=np.fromiter((a.deadline_ms for a in live), dtype=np.int64, count=len(live)),
        crew=crew.astype(np.int32).reshape(-1),
        crews=tuple(str(c) for c in crews),
        carried=np.fromiter((bool(a.parent) for a in live), dtype=np.bool_, count=len(live)),
        row_of={a.id: i for i, a in enumerate(live)},
    )


@dataclass(frozen=True, slots=True)
class FaultSummary:
    """Open faults (not carried by an incident) of what a caller sees, by severity, overdue and unplaced."""

    open: int
    by_severity: Mapping[Severity, int]
    overdue: int
    unplaced: int


def summarize(table: FaultTable, rows: npt.NDArray[np.bool_], now_ms: int) -> FaultSummary:
    rows = rows & ~table.carried
    counts = np.bincount(table.rank[rows], minlength=len(SEVERITIES))
    return FaultSummary(
        open=int(rows.sum()),
        by_severity={s: int(counts[i]) for i, s in enumerate(SEVERITIES)},
        overdue=int((rows & (table.deadline_ms < now_ms)).sum()),
        unplaced=int((rows & np.isnan(table.lat)).sum()),
    )
