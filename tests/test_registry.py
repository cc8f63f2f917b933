"""The asset registry: bad rows are rejected with line and reason, good rows land, files round-trip."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql
from typer.testing import CliRunner

from citywatch import cli_devices
from devices import RegistryError
from devices.assets import (
    COLUMNS,
    CSV_HEADER,
    Asset,
    AssetError,
    RejectCause,
    RowRejection,
    parse_csv,
    parse_geojson,
    parse_row,
)
from devices.contract import DeviceRef
from devices.kinds import DeviceKind
from devices.registry import Registry, upsert_statement
from devices.registry_files import csv_row, export_file, import_file

GOOD_ROW = {
    "id": "LMP-000001",
    "kind": "lamp",
    "district": "jiangan",
    "road": "解放大道",
    "road_class": "trunk",
    "grid_cell": "JA-0412",
    "circuit": "C-17",
    "cabinet": "CAB-0017",
    "gateway": "GW-1",
    "lat": "30.6",
    "lon": "114.3",
    "rated_power_w": "120",
    "capacity": "",
    "install_date": "2021-05-04",
    "crew": "jiangan-lighting-2",
    "params": "{}",
    "in_service": "true",
}


def lamp(asset_id: str = "LMP-1", **changes: object) -> Asset:
    values: dict[str, object] = {
        "id": asset_id,
        "kind": "lamp",
        "district": "jiangan",
        "road": "解放大道",
        "road_class": "trunk",
        "lat": 30.58,
        "lon": 114.27,
    }
    values.update(changes)
    return Asset(**values)  # type: ignore[arg-type]


def gateway(asset_id: str = "GW-1", **changes: object) -> Asset:
    return dataclasses.replace(lamp(asset_id, kind="gateway", road_class=""), **changes)  # type: ignore[arg-type]


def csv_text(*rows: dict[str, str], header: str = CSV_HEADER) -> list[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = header.split(",")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue().splitlines(keepends=True)


def good(**changes: str) -> dict[str, str]:
    return {**GOOD_ROW, **changes}


def open_registry(path: Path) -> Registry:
    return Registry(f"sqlite:///{path}")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with open_registry(tmp_path / "registry.db") as reg:
        yield reg


def write_csv(path: Path, *rows: dict[str, str]) -> Path:
    path.write_text("".join(csv_text(*rows)), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- parse_row


def test_a_good_row_parses_to_typed_values() -> None:
    asset = parse_row(good(params='{"dimming_profile": "midnight", "heads": [1, 2]}'), 2)
    assert asset.kind == "lamp"
    assert asset.road == "解放大道"
    assert (asset.lat, asset.lon, asset.rated_power_w, asset.capacity) == (30.6, 114.3, 120.0, None)
    assert asset.install_date == date(2021, 5, 4)
    assert asset.params == {"dimming_profile": "midnight", "heads": (1, 2)}
    assert asset.in_service is True


def test_params_are_read_only() -> None:
    asset = parse_row(good(params='{"pumps": 3}'), 2)
    with pytest.raises(TypeError):
        asset.params["pumps"] = 4  # type: ignore[index]


def test_optional_columns_may_be_absent() -> None:
    row = {"id": "PS-1", "kind": "pump_station", "district": "hanyang", "lat": "30.5", "lon": "114.2"}
    asset = parse_row(row, 7)
    assert (asset.road_class, asset.gateway, asset.params, asset.in_service) == ("", "", {}, True)


@pytest.mark.parametrize(
    ("changes", "cause", "fragment"),
    [
        ({"id": "LMP 1"}, RejectCause.BAD_ID, "id 'LMP 1'"),
        ({"id": ""}, RejectCause.MISSING_COLUMN, "'id' is empty"),
        ({"kind": "streetlight"}, RejectCause.UNKNOWN_KIND, "kind 'streetlight' is not one of"),
        ({"district": "Jiang An"}, RejectCause.BAD_DISTRICT, "district 'Jiang An' is not a slug"),
        ({"road_class": "motorway"}, RejectCause.BAD_ROAD_CLASS, "road_class 'motorway'"),
        ({"road_class": ""}, RejectCause.BAD_ROAD_CLASS, "a lamp needs a road_class"),
        ({"lat": "91"}, RejectCause.BAD_POSITION, "lat 91.0 is outside -90 to 90"),
        ({"lon": "-180.5"}, RejectCause.BAD_POSITION, "lon -180.5 is outside"),
        ({"lat": "30,6"}, RejectCause.BAD_POSITION, "lat '30,6' is not a number"),
        ({"lon": "nan"}, RejectCause.BAD_POSITION, "lon nan is outside"),
        ({"lat": ""}, RejectCause.MISSING_COLUMN, "'lat' is empty"),
        ({"rated_power_w": "-5"}, RejectCause.BAD_NUMBER, "rated_power_w -5.0"),
        ({"capacity": "lots"}, RejectCause.BAD_NUMBER, "capacity 'lots' is not a number"),
        ({"install_date": "2021-02-30"}, RejectCause.BAD_DATE, "install_date '2021-02-30'"),
        ({"install_date": "04/05/2021"}, RejectCause.BAD_DATE, "YYYY-MM-DD"),
        ({"params": "[1, 2]"}, RejectCause.BAD_PARAMS, "params must be a JSON object"),
        ({"params": "{pumps: 3}"}, RejectCause.BAD_PARAMS, "params is not JSON"),
        ({"params": '{"pumps": {"a": 1}}'}, RejectCause.BAD_PARAMS, "params['pumps']"),
        ({"in_service": "maybe"}, RejectCause.BAD_FLAG, "in_service 'maybe'"),
        ({"road": "a\x00b"}, RejectCause.BAD_TEXT, "road contains a control character"),
        ({"crew": "x" * 101}, RejectCause.BAD_TEXT, "crew has 101 characters"),
        ({"gateway": "GW 1"}, RejectCause.BAD_GATEWAY, "gateway 'GW 1' is not a valid id"),
        ({"colour": "red"}, RejectCause.UNKNOWN_COLUMN, "unknown column 'colour'"),
    ],
)
def test_each_bad_value_is_rejected_with_line_column_and_cause(
    changes: dict[str, str], cause: RejectCause, fragment: str
) -> None:
    with pytest.raises(AssetError) as caught:
        parse_row(good(**changes), 42)
    assert caught.value.cause is cause
    assert caught.value.line == 42
    assert str(caught.value).startswith("line 42")
    assert fragment in str(caught.value)


def test_a_missing_required_column_is_named() -> None:
    row = dict(GOOD_ROW)
    del row["district"]
    with pytest.raises(RegistryError, match=r"^line 9, LMP-000001: missing required column 'district'$"):
        parse_row(row, 9)


def test_a_gateway_cannot_belong_to_a_gateway() -> None:
    with pytest.raises(AssetError, match="a gateway cannot belong to another gateway"):
        parse_row(good(kind="gateway", gateway="GW-2"), 3)


TRICKY = ["", " ", "nan", "-inf", "1e999", "-0", "1_0", "١٢", "[]", "{}", '{"a": 1e400}', "true", "\ufeff"]


@st.composite
def near_valid_rows(draw: st.DrawFn) -> dict[str, str]:
    """A good row with up to three columns replaced by arbitrary or tricky text."""
    row = dict(GOOD_ROW)
    for column in draw(st.lists(st.sampled_from(COLUMNS), max_size=3, unique=True)):
        row[column] = draw(st.one_of(st.text(max_size=30), st.sampled_from(TRICKY)))
    return row


def parsed_or_error(row: dict[str, str]) -> Asset | RegistryError:
    try:
        return parse_row(row, 5)
    except RegistryError as exc:  # anything else escapes and fails the test
        return exc


@given(st.dictionaries(st.one_of(st.sampled_from(COLUMNS), st.text(max_size=8)), st.text(), max_size=20))
def test_any_row_of_strings_is_an_asset_or_a_registry_error(row: dict[str, str]) -> None:
    result = parsed_or_error(row)
    assert isinstance(result, Asset) or str(result).startswith("line 5")


@given(near_valid_rows())
def test_any_near_valid_row_is_an_asset_or_a_registry_error(row: dict[str, str]) -> None:
    result = parsed_or_error(row)
    if isinstance(result, Asset):  # and an accepted one survives the export format unchanged
        assert parse_row(dict(zip(COLUMNS, csv_row(result), strict=True)), 5) == result
    else:
        assert str(result).startswith("line 5")


def test_asset_construction_validates() -> None:
    with pytest.raises(AssetError, match="lat 95"):
        lamp(lat=95.0)
    assert lamp(kind=DeviceKind.LAMP).kind == "lamp"


# ----------------------------------------------------------------------------------------------- parse_csv


def test_parse_csv_yields_assets_and_rejections_with_their_lines() -> None:
    lines = csv_text(
        good(id="GW-1", kind="gateway", road_class="", gateway=""),
        good(id="LMP-1"),
        good(id="LMP-2", district="JiangAn"),
        good(id="LMP-1", road="another"),  # duplicate of line 3
        good(id="LMP-3", road="两行\n的路名"),  # a quoted line break: the next row starts two lines later
        good(id="LMP-4", gateway="GW-9"),
        good(id="LMP-5"),
    )
    results = list(parse_csv(lines, gateways={"GW-1"}))
    accepted = [r.id for r in results if isinstance(r, Asset)]
    rejected = [(r.line, r.asset_id, r.cause) for r in results if isinstance(r, RowRejection)]
    assert accepted == ["GW-1", "LMP-1", "LMP-5"]
    assert rejected == [
        (4, "LMP-2", RejectCause.BAD_DISTRICT),
        (5, "LMP-1", RejectCause.DUPLICATE_ID),
        (6, "LMP-3", RejectCause.BAD_TEXT),
        (8, "LMP-4", RejectCause.UNKNOWN_GATEWAY),
    ]
    duplicate = next(
        r for r in results if isinstance(r, RowRejection) and r.cause is RejectCause.DUPLICATE_ID
    )
    assert duplicate.reason == "id LMP-1 already appears on line 3"


def test_parse_csv_rejects_a_row_with_the_wrong_number_of_fields_and_skips_blank_lines() -> None:
    lines = ["id,kind,district,road_class,lat,lon\n", "\n", "LMP-1,lamp,jiangan,trunk,30.5\n", ",,,,,\n"]
    assert list(parse_csv(lines)) == [
        RowRejection(3, "LMP-1", "5 fields, the header has 6", RejectCause.MALFORMED_ROW)
    ]


def test_parse_csv_without_gateways_does_not_check_them() -> None:
    (asset,) = parse_csv(csv_text(good(gateway="GW-404")))
    assert isinstance(asset, Asset)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,kind,district,lat", "lacks required column(s) lon"),
        ("id,kind,district,lat,lon,lattitude", "unknown column 'lattitude'"),
        ("id,kind,district,lat,lon,lat", "column 'lat' appears twice"),
    ],
)
def test_a_bad_header_rejects_the_whole_file(header: str, message: str) -> None:
    with pytest.raises(RegistryError, match=f"^line 1: .*{re.escape(message)}"):
        list(parse_csv([header + "\n", "x\n"]))


def test_the_header_may_carry_a_bom_and_any_column_order() -> None:
    (asset,) = parse_csv(["\ufefflon,lat,district,kind,id\n", "114.2,30.5,hanyang,flood_gauge,FG-1\n"])
    assert asset == Asset(id="FG-1", kind="flood_gauge", district="hanyang", lat=30.5, lon=114.2)


# ----------------------------------------------------------------------------------------------- GeoJSON


def feature(lon: object = 114.3, lat: object = 30.6, **properties: object) -> dict[str, object]:
    props = {k: v for k, v in GOOD_ROW.items() if k not in ("lat", "lon")} | {"params": {}} | properties
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}


def test_parse_geojson_yields_assets_and_rejections_by_feature_number() -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            feature(id="LMP-1", params={"heads": 2}, rated_power_w=90.5, in_service=False),
            feature(id="LMP-2", lat=95),
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": []},
                "properties": {"id": "L-3"},
            },
            feature(id="LMP-4", params=[1]),
            feature(id="LMP-5", crew=["a"]),
            "not a feature",
            feature(id="LMP-1"),
            feature(id="LMP-8", gateway="GW-404"),
        ],
    }
    results = list(parse_geojson(collection, gateways={"GW-1"}))
    first = results[0]
    assert isinstance(first, Asset)
    assert (first.lat, first.lon, first.params, first.rated_power_w, first.in_service) == (
        30.6,
        114.3,
        {"heads": 2},
        90.5,
        False,
    )
    rejected = [(r.line, r.asset_id, r.cause) for r in results if isinstance(r, RowRejection)]
    assert rejected == [
        (2, "LMP-2", RejectCause.BAD_POSITION),
        (3, "L-3", RejectCause.BAD_POSITION),
        (4, "LMP-4", RejectCause.BAD_PARAMS),
        (5, "LMP-5", RejectCause.MALFORMED_ROW),
        (6, None, RejectCause.MALFORMED_ROW),
        (7, "LMP-1", RejectCause.DUPLICATE_ID),
        (8, "LMP-8", RejectCause.UNKNOWN_GATEWAY),
    ]


def test_geojson_that_is_not_a_feature_collection_is_refused() -> None:
    with pytest.raises(RegistryError, match="not a GeoJSON FeatureCollection"):
        list(parse_geojson({"type": "Feature"}))


# ----------------------------------------------------------------------------------------------- the database


def test_import_keeps_good_rows_and_lists_bad_ones(registry: Registry, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "assets.csv",
        good(id="LMP-1"),  # its gateway comes later in the file
        good(id="LMP-2", lat="north"),
        good(id="LMP-3", kind="lantern"),
        good(id="LMP-4", gateway="GW-404"),
        good(id="LMP-5", road_class="alley"),
        good(id="GW-1", kind="gateway", road_class="", gateway=""),
        good(id="BIN-1", kind="bin", road_class="", params='{"empty_distance_cm": 120, "blind_zone_cm": 25}'),
    )
    progress: list[int] = []
    summary = import_file(registry, path, progress.append)

    assert (summary.accepted, summary.rejected) == (3, 4)
    assert [(r.line, r.asset_id, r.cause) for r in summary.reasons] == [
        (3, "LMP-2", RejectCause.BAD_POSITION),
        (4, "LMP-3", RejectCause.UNKNOWN_KIND),
        (5, "LMP-4", RejectCause.UNKNOWN_GATEWAY),
        (6, "LMP-5", RejectCause.BAD_ROAD_CLASS),
    ]
    assert summary.reason_counts == {
        RejectCause.BAD_POSITION: 1,
        RejectCause.UNKNOWN_KIND: 1,
        RejectCause.UNKNOWN_GATEWAY: 1,
        RejectCause.BAD_ROAD_CLASS: 1,
    }
    assert progress[-1] == 7
    assert registry.count_by_kind() == {"bin": 1, "gateway": 1, "lamp": 1}
    assert registry.get("LMP-2") is None
    stored_bin = registry.get("BIN-1")
    assert stored_bin is not None
    assert stored_bin.params == {"empty_distance_cm": 120, "blind_zone_cm": 25}


def test_a_device_may_name_a_gateway_already_in_the_registry(registry: Registry, tmp_path: Path) -> None:
    registry.upsert([gateway("GW-1")])
    summary = import_file(registry, write_csv(tmp_path / "more.csv", good(id="LMP-9", gateway="GW-1")))
    assert (summary.accepted, summary.rejected) == (1, 0)


def test_a_file_that_turns_a_gateway_into_a_lamp_takes_its_devices_with_it(
    registry: Registry, tmp_path: Path
) -> None:
    registry.upsert([gateway("GW-1")])
    path = write_csv(tmp_path / "a.csv", good(id="LMP-9", gateway="GW-1"), good(id="GW-1", gateway=""))
    summary = import_file(registry, path)
    assert [(r.asset_id, r.cause) for r in summary.reasons] == [("LMP-9", RejectCause.UNKNOWN_GATEWAY)]


def test_upsert_updates_an_existing_asset(registry: Registry) -> None:
    assert registry.upsert([lamp("LMP-1", road="old road"), lamp("LMP-2")]) == 2
    assert registry.upsert([lamp("LMP-1", road="new road", in_service=False)]) == 1
    assert registry.get("LMP-1") == lamp("LMP-1", road="new road", in_service=False)
    assert registry.count_by_kind() == {"lamp": 2}


def test_upsert_of_one_id_twice_in_a_batch_keeps_the_last(registry: Registry) -> None:
    registry.upsert([lamp("LMP-1", road="first"), lamp("LMP-1", road="second")], batch_size=10)
    stored = registry.get("LMP-1")
    assert stored is not None
    assert stored.road == "second"


def test_directory_lists_in_service_devices_without_gateways(registry: Registry) -> None:
    registry.upsert(
        [
            gateway("GW-1"),
            lamp("LMP-1", gateway="GW-1"),
            lamp("LMP-2"),
            lamp("LMP-3", in_service=False),
            Asset(id="BIN-1", kind="bin", district="wuchang", lat=30.5, lon=114.3, gateway="GW-1"),
        ]
    )
    assert registry.directory() == {
        "LMP-1": DeviceRef("LMP-1", DeviceKind.LAMP, "jiangan", "GW-1"),
        "LMP-2": DeviceRef("LMP-2", DeviceKind.LAMP, "jiangan", None),
        "BIN-1": DeviceRef("BIN-1", DeviceKind.BIN, "wuchang", "GW-1"),
    }
    assert registry.gateway_ids() == {"GW-1"}


def test_a_directory_refresh_sees_changes_and_reuses_unchanged_refs(registry: Registry) -> None:
    registry.upsert([gateway("GW-1"), lamp("LMP-1"), lamp("LMP-2"), lamp("LMP-3")])
    before = registry.directory()
    registry.upsert([lamp("LMP-1", district="wuchang", gateway="GW-1"), lamp("LMP-3", in_service=False)])
    after = registry.directory()
    assert after["LMP-1"] == DeviceRef("LMP-1", DeviceKind.LAMP, "wuchang", "GW-1")
    assert "LMP-3" not in after
    assert after["LMP-2"] is before["LMP-2"]


def test_iter_assets_filters_by_kind_in_id_order(registry: Registry) -> None:
    registry.upsert([lamp("LMP-2"), gateway("GW-1"), lamp("LMP-1")])
    assert [a.id for a in registry.iter_assets()] == ["GW-1", "LMP-1", "LMP-2"]
    assert [a.id for a in registry.iter_assets("lamp")] == ["LMP-1", "LMP-2"]


VARIED = [
    gateway("GW-1", crew="gw-team", install_date=date(2019, 1, 1)),
    lamp(
        "LMP-1",
        road='中山大道 "东段", 2',
        gateway="GW-1",
        circuit="C-1",
        cabinet="CAB-1",
        grid_cell="G-1",
        rated_power_w=0.1 + 0.2,
        install_date=date(2021, 5, 4),
        params={"dimming_profile": "midnight", "steps": [100, 50.5, None, True]},
    ),
    lamp("LMP-2", lat=-89.999999999, lon=179.123456789012, in_service=False, road_class="public_place"),
    Asset(
        id="PS-1",
        kind="pump_station",
        district="hanyang",
        lat=30.55,
        lon=114.25,
        capacity=3600.0,
        params={"pumps": 3, "start_level_m": 2.5, "stop_level_m": 0.8, "overflow_level_m": 4.2},
    ),
    Asset(
        id="BR-1.N3",
        kind="bridge_node",
        district="wuchang",
        lat=30.54,
        lon=114.29,
        params={"bridge": "长江大桥"},
    ),
]


@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_export_then_import_round_trips_exactly(tmp_path: Path, suffix: str) -> None:
    with open_registry(tmp_path / "a.db") as first, open_registry(tmp_path / "b.db") as second:
        first.upsert(VARIED)
        assert export_file(first, tmp_path / f"out{suffix}") == len(VARIED)
        summary = import_file(second, tmp_path / f"out{suffix}")
        assert (summary.accepted, summary.rejected) == (len(VARIED), 0)
        assert list(second.iter_assets()) == list(first.iter_assets()) == sorted(VARIED, key=lambda a: a.id)
        export_file(second, tmp_path / f"again{suffix}")
    assert (tmp_path / f"again{suffix}").read_bytes() == (tmp_path / f"out{suffix}").read_bytes()


def test_the_sqlite_fast_path_stores_exactly_what_the_core_statement_stores(tmp_path: Path) -> None:
    with open_registry(tmp_path / "fast.db") as fast, open_registry(tmp_path / "core.db") as core:
        core._write = core._write_core  # the generic path, the one PostgreSQL takes
        fast.upsert(VARIED)
        core.upsert(VARIED)
        assert list(fast.iter_assets()) == list(core.iter_assets())
    query = "SELECT *, typeof(install_date), typeof(in_service), typeof(lat) FROM assets ORDER BY id"
    with (
        closing(sqlite3.connect(tmp_path / "fast.db")) as a,
        closing(sqlite3.connect(tmp_path / "core.db")) as b,
    ):
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_geojson_export_is_a_feature_collection_of_points(registry: Registry, tmp_path: Path) -> None:
    registry.upsert([lamp("LMP-1", lat=30.5, lon=114.2, params={"heads": 2})])
    export_file(registry, tmp_path / "out.geojson")
    exported = json.loads((tmp_path / "out.geojson").read_text(encoding="utf-8"))
    (only,) = exported["features"]
    assert exported["type"] == "FeatureCollection"
    assert only["geometry"] == {"type": "Point", "coordinates": [114.2, 30.5]}
    assert only["properties"]["params"] == {"heads": 2}
    assert set(only["properties"]) == set(COLUMNS) - {"lat", "lon"}


def test_import_of_an_unreadable_file_raises(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        import_file(registry, tmp_path / "missing.csv")
    (tmp_path / "gbk.csv").write_bytes(CSV_HEADER.encode() + "\nLMP-1,lamp,x,解放\n".encode("gbk"))
    with pytest.raises(RegistryError, match=r"not UTF-8 .*save it as CSV UTF-8"):
        import_file(registry, tmp_path / "gbk.csv")
    with pytest.raises(RegistryError, match=r"unknown file type '\.xlsx'"):
        import_file(registry, tmp_path / "assets.xlsx")
    assert registry.count_by_kind() == {}


def test_only_sqlite_and_postgresql_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="SQLite or PostgreSQL"):
        Registry("mysql://localhost/registry")
    with pytest.raises(RegistryError, match="cannot open the registry"):
        Registry(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")


def test_a_file_that_is_not_a_database_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(RegistryError, match="cannot open the registry"):
        Registry(f"sqlite:///{tmp_path / 'junk.db'}")


def test_an_upsert_that_fails_midway_writes_nothing(registry: Registry) -> None:
    def assets() -> Iterator[Asset]:
        for n in range(25):
            yield lamp(f"LMP-{n}")
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        registry.upsert(assets(), batch_size=10)
    assert registry.count_by_kind() == {}


def test_the_upsert_compiles_for_postgresql() -> None:
    sql = str(upsert_statement(postgresql.dialect()).compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (id) DO UPDATE SET kind = excluded.kind" in sql


# ----------------------------------------------------------------------------------------------- the CLI


def test_cli_imports_lists_counts_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CITYWATCH_REGISTRY_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("COLUMNS", "200")  # rich: wide enough that table cells are not wrapped
    path = write_csv(
        tmp_path / "assets.csv",
        good(id="GW-1", kind="gateway", road_class="", gateway=""),
        good(id="LMP-1", road="[b]not markup[/b]"),
        good(id="LMP-2", lat="999"),
    )
    runner = CliRunner()

    imported = runner.invoke(cli_devices.app, ["import", str(path)])
    assert imported.exit_code == 0, imported.output
    assert "accepted" in imported.stdout
    assert "bad_position" in imported.stdout
    assert "lat 999.0 is outside -90 to 90" in imported.stdout

    listed = runner.invoke(cli_devices.app, ["list", "--kind", "lamp"])
    assert listed.exit_code == 0, listed.output
    assert "LMP-1" in listed.stdout
    assert "[b]not markup[/b]" in listed.stdout
    assert not any(line.startswith("│ GW-1") for line in listed.stdout.splitlines())  # not a lamp

    stats = runner.invoke(cli_devices.app, ["stats"])
    assert stats.exit_code == 0, stats.output
    assert "gateway" in stats.stdout
    assert "lamp" in stats.stdout

    exported = runner.invoke(cli_devices.app, ["export", str(tmp_path / "out.geojson")])
    assert exported.exit_code == 0, exported.output
    assert len(orjson.loads((tmp_path / "out.geojson").read_bytes())["features"]) == 2

    missing = runner.invoke(cli_devices.app, ["import", str(tmp_path / "missing.csv")])
    assert missing.exit_code == 1
    assert "cannot read" in missing.stderr

    bad_kind = runner.invoke(cli_devices.app, ["list", "--kind", "lantern"])
    assert bad_kind.exit_code == 2
    assert not (tmp_path / "var").exists()  # a configured URL needs no var directory


def test_cli_default_registry_lives_under_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CITYWATCH_REGISTRY_URL", raising=False)
    monkeypatch.setenv("CITYWATCH_VAR_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(cli_devices.app, ["stats"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "state" / "registry.db").exists()
