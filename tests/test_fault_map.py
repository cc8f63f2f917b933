"""The fault map's clustering and positions (pure): what the control room's map would draw."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.alerts.model import Alert, AlertState, Severity
from api.fault_map import (
    SEVERITIES,
    AssetRow,
    Box,
    Grid,
    cell_size,
    cluster,
    fault_table,
    mercator_px,
    place_all,
    positions_from_assets,
    summarize,
    zoom_for,
)

WUHAN = Box(114.20, 30.50, 114.40, 30.65)
RANKS = len(SEVERITIES)
EMERGENCY, SERIOUS, ORDINARY = range(RANKS)


def arrays(points: list[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat = np.array([p[0] for p in points], dtype=np.float64)
    lon = np.array([p[1] for p in points], dtype=np.float64)
    rank = np.array([p[2] for p in points], dtype=np.int8)
    return lat, lon, rank


def test_counts_add_up_to_the_faults_inside_and_nothing_outside_is_drawn() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    lat = rng.uniform(30.4, 30.75, n)  # a wider area than the box
    lon = rng.uniform(114.1, 114.5, n)
    rank = rng.integers(0, RANKS, n).astype(np.int8)
    found = cluster(lat, lon, rank, WUHAN, 13, Grid(), RANKS)

    inside = (lat >= 30.50) & (lat <= 30.65) & (lon >= 114.20) & (lon <= 114.40)
    assert found.inside == inside.sum()
    assert found.count.sum() + len(found.points) == inside.sum()
    assert inside[found.points].all()
    assert (found.lat >= 30.50).all() and (found.lat <= 30.65).all()
    assert (found.lon >= 114.20).all() and (found.lon <= 114.40).all()
    assert (found.by_rank.sum(axis=1) == found.count).all()


def test_a_cell_shows_its_worst_severity_and_its_centroid() -> None:
    # three faults within metres of each other: one cluster, worst is the emergency
    near = [(30.55, 114.30, ORDINARY), (30.5501, 114.3001, EMERGENCY), (30.5502, 114.3002, SERIOUS)]
    far = [(30.595, 114.35, ORDINARY), (30.5951, 114.3501, ORDINARY)]
    lat, lon, rank = arrays(near + far)
    x, y = mercator_px(lat, lon, 12)
    assert len({(int(a), int(b)) for a, b in zip(x // 64, y // 64, strict=True)}) == 2, "fixture: two cells"
    found = cluster(lat, lon, rank, WUHAN, 12, Grid(), RANKS)

    assert sorted(found.count.tolist()) == [2, 3]
    big = int(np.argmax(found.count))
    assert found.worst[big] == EMERGENCY
    assert found.by_rank[big].tolist() == [1, 1, 1]
    assert found.lat[big] == pytest.approx(30.5501)
    assert found.lon[big] == pytest.approx(114.3001)
    assert found.worst[1 - big] == ORDINARY
    assert len(found.points) == 0


def test_a_lone_fault_stays_a_point_with_its_index() -> None:
    faults = [(30.55, 114.30, SERIOUS), (30.5501, 114.3001, SERIOUS), (30.62, 114.22, EMERGENCY)]
    found = cluster(*arrays(faults), WUHAN, 12, Grid(min_cluster=2), RANKS)

    assert found.points.tolist() == [2]
    assert found.count.tolist() == [2]


def test_below_the_threshold_every_fault_is_a_point() -> None:
    faults = [(30.55, 114.30, SERIOUS), (30.5501, 114.3001, SERIOUS)]
    found = cluster(*arrays(faults), WUHAN, 12, Grid(min_cluster=3), RANKS)

    assert found.points.tolist() == [0, 1]
    assert len(found.count) == 0


def test_unplaced_faults_lie_nowhere() -> None:
    lat, lon, rank = arrays([(30.55, 114.30, SERIOUS)])
    lat = np.append(lat, np.nan)
    lon = np.append(lon, np.nan)
    rank = np.append(rank, np.int8(EMERGENCY))
    found = cluster(lat, lon, rank, Box(-180, -90, 180, 90), 3, Grid(), RANKS)
    assert found.inside == 1


def test_a_box_too_large_for_its_zoom_gets_coarser_cells() -> None:
    lat, lon, rank = arrays([(30.55, 114.30, SERIOUS)])
    found = cluster(lat, lon, rank, Box(-180, -85, 179.9, 85), 22, Grid(max_cells=4096), RANKS)
    # the world is (4 * 2**zoom)**2 cells of 64 px: 64 x 64 = 4096 at zoom 4
    assert found.zoom == 4
    assert found.inside == 1


def test_clusters_stay_put_while_the_map_pans() -> None:
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(30.50, 30.65, 2000), rng.uniform(114.20, 114.40, 2000)
    rank = np.zeros(2000, dtype=np.int8)
    wide = Box(114.10, 30.45, 114.50, 30.70)
    shifted = Box(114.11, 30.46, 114.51, 30.71)  # both hold every fault
    a, b = (
        cluster(lat, lon, rank, wide, 13, Grid(), RANKS),
        cluster(lat, lon, rank, shifted, 13, Grid(), RANKS),
    )
    assert sorted(a.count.tolist()) == sorted(b.count.tolist())


def test_cells_are_about_cell_px_wide_at_the_zoom() -> None:
    width, height = cell_size(12, 30.55, 64)
    assert width == pytest.approx(360 / 2**12 / 4)
    assert height == pytest.approx(width * np.cos(np.radians(30.55)))
    assert zoom_for(WUHAN, view_px=1024) == 12  # 0.2 degrees in 1024 px


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            st.floats(30.0, 31.0, allow_nan=False),
            st.floats(114.0, 115.0, allow_nan=False),
            st.integers(0, RANKS - 1),
        ),
        max_size=300,
    ),
    corner=st.tuples(st.floats(30.0, 31.0), st.floats(114.0, 115.0)),
    size=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    zoom=st.integers(0, 22),
    min_cluster=st.integers(1, 5),
)
def test_every_fault_inside_is_counted_once_whatever_the_box_and_zoom(
    points: list[tuple[float, float, int]],
    corner: tuple[float, float],
    size: tuple[float, float],
    zoom: int,
    min_cluster: int,
) -> None:
    box = Box(corner[1], corner[0], min(corner[1] + size[1], 180), min(corner[0] + size[0], 90))
    lat, lon, rank = arrays(points)
    found = cluster(lat, lon, rank, box, zoom, Grid(min_cluster=min_cluster, max_cells=1024), RANKS)

    inside = (lat >= box.min_lat) & (lat <= box.max_lat) & (lon >= box.min_lon) & (lon <= box.max_lon)
    assert found.count.sum() + len(found.points) == inside.sum() == found.inside
    assert (found.by_rank.sum(axis=1) == found.count).all()
    assert (found.count >= min_cluster).all()
    per_rank = np.bincount(rank[inside], minlength=RANKS)
    drawn = found.by_rank.sum(axis=0) + np.bincount(rank[found.points], minlength=RANKS)
    assert drawn.tolist() == per_rank.tolist()


# --- positions and the live alerts ----------------------------------------------------------------------

ASSETS = [
    AssetRow("LMP-1", "lamp", 30.55, 114.30, circuit="C1", road="Luoyu Road", grid_cell="G1"),
    AssetRow("LMP-2", "lamp", 30.56, 114.31, circuit="C1", road="Luoyu Road", grid_cell="G1"),
    AssetRow("CAB-1", "cabinet", 30.50, 114.20, circuit="C1", road="Luoyu Road", grid_cell="G2"),
    AssetRow("LMP-3", "lamp", 30.60, 114.40, circuit="C2", road="Bayi Road", grid_cell="G2"),
    AssetRow("GW-1", "gateway", 30.61, 114.41),
]


def test_subjects_are_placed_as_the_analytics_place_findings() -> None:
    positions = positions_from_assets(ASSETS)
    assert positions.place("lamp", "LMP-2") == (30.56, 114.31)
    assert positions.place("gateway", "GW-1") == (30.61, 114.41)
    assert positions.place("circuit", "C1") == (30.50, 114.20)  # at its cabinet
    assert positions.place("circuit", "C2") == (30.60, 114.40)  # no cabinet: its first lamp
    assert positions.place("road", "Luoyu Road") == pytest.approx((30.5366667, 114.27))
    assert positions.place("district", "hongshan") is None
    assert positions.place("lamp", "LMP-404") is None
    assert positions.box == Box(114.20, 30.50, 114.41, 30.61)
    lat, _ = place_all(positions, [("lamp", "LMP-1"), ("city", "city")])
    assert lat[0] == 30.55 and np.isnan(lat[1])


def alert(
    n: int,
    subject: str,
    crew: str,
    severity: Severity,
    *,
    deadline: int,
    parent: str = "",
    kind: str = "lamp",
) -> Alert:
    return Alert(
        id=f"a{n}",
        key=f"r:{subject}",
        rule="lamp_failure",
        family="streetlight",
        subject_kind=kind,
        subject=subject,
        district="hongshan",
        road="",
        grid_cell="",
        crew=crew,
        severity=severity,
        state=AlertState.OPEN,
        opened_ms=0,
        deadline_ms=deadline,
        explanation="",
        parent=parent,
    )


def test_a_crew_counts_only_its_own_open_faults_and_incidents_carry_their_lamps() -> None:
    positions = positions_from_assets(ASSETS)
    alerts = [
        alert(1, "LMP-1", "east", Severity.ORDINARY, deadline=100, parent="a3"),
        alert(2, "LMP-3", "west", Severity.SERIOUS, deadline=5_000),
        alert(3, "C1", "east", Severity.EMERGENCY, deadline=50, kind="circuit"),
        alert(4, "hongshan", "east", Severity.SERIOUS, deadline=9_000, kind="district"),
        replace(alert(5, "LMP-2", "east", Severity.ORDINARY, deadline=1), state=AlertState.RESOLVED),
    ]
    table = fault_table(alerts, positions)
    assert [a.id for a in table.alerts] == ["a3", "a1", "a2", "a4"]  # live ones, by deadline

    east = summarize(table, table.mine("east"), now_ms=1_000)
    assert east.open == 2  # a1 rides with its incident a3
    assert east.by_severity == {Severity.EMERGENCY: 1, Severity.SERIOUS: 1, Severity.ORDINARY: 0}
    assert east.overdue == 1 and east.unplaced == 1
    assert summarize(table, table.mine(None), now_ms=1_000).open == 3
    assert summarize(table, table.mine("nobody"), now_ms=1_000).open == 0
