"""The asset registry: every lamp, cabinet, sensor node, pump station, gauge, bin and gateway the city owns.

File formats, for import and export. CSV, UTF-8 (a leading BOM is accepted), a header line, then one asset
per row, in this column order::

    id,kind,district,road,road_class,grid_cell,circuit,cabinet,gateway,lat,lon,
    rated_power_w,capacity,install_date,crew,params,in_service

- required: ``id``, ``kind``, ``district``, ``lat``, ``lon``; any other column may be left out or left empty.
  An unknown, repeated or missing required header column rejects the whole file (``RegistryError``).
- ``id``: 1-64 of ``A-Z a-z 0-9 _ . -`` (``devices.topics.ID_PATTERN``), unique within the file.
- ``kind``: a ``DeviceKind`` value (lamp, cabinet, bridge_node, pump_station, flood_gauge, bin) or ``gateway``
  (gateways own devices and send no telemetry of their own).
- ``district``: a slug ``[a-z0-9_-]{1,40}``; it becomes an InfluxDB tag.
- ``road_class``: trunk, secondary, branch or public_place; required for lamps.
- ``gateway``: the id of a gateway in the same file or already in the registry, or empty.
- ``lat`` / ``lon``: WGS 84 degrees; ``rated_power_w`` (lamps, cabinets) and ``capacity`` (pump station m³/h,
  bin litres): numbers >= 0 or empty; ``install_date``: ``YYYY-MM-DD`` or empty.
- ``params``: a JSON object of kind-specific values, e.g. ``{"empty_distance_cm": 120, "blind_zone_cm": 25}``;
  values are numbers, text, true/false, null or flat lists of those.
- ``in_service``: true/false (also 1/0, yes/no); empty means true.

GeoJSON: a FeatureCollection of Point features, coordinates ``[lon, lat]``; the properties are the other
columns, ``params`` as an object. A row that cannot be accepted is rejected with its line (for GeoJSON, the
feature's 1-based position) and a reason; the other rows are imported. Entirely empty rows are skipped.

Errors::

    RegistryError            (devices) a file cannot be read, a database cannot be opened
     └── AssetError           one asset value or file row cannot be accepted: cause, detail, line, asset id
"""

from __future__ import annotations

import csv
import enum
import logging
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Final, Self

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from devices import RegistryError
from devices.contract import DeviceRef
from devices.kinds import DeviceKind
from devices.topics import ID_PATTERN

log = logging.getLogger(__name__)

GATEWAY: Final = "gateway"
KINDS: Final = frozenset({*(k.value for k in DeviceKind), GATEWAY})
ROAD_CLASSES: Final = ("trunk", "secondary", "branch", "public_place")
#: The CSV header line: the column order of import and export.
CSV_HEADER: Final = (
    "id,kind,district,road,road_class,grid_cell,circuit,cabinet,gateway,lat,lon,"
    "rated_power_w,capacity,install_date,crew,params,in_service"
)
COLUMNS: Final = tuple(CSV_HEADER.split(","))
REQUIRED_COLUMNS: Final = ("id", "kind", "district", "lat", "lon")
DISTRICT_PATTERN: Final = re.compile(r"[a-z0-9_\-]{1,40}")
#: How many rejections an ImportSummary lists one by one; all of them are counted.
MAX_LISTED_REJECTIONS: Final = 1000

_COLUMN_SET: Final = frozenset(COLUMNS)
_DEVICE_KINDS: Final = {k.value: k for k in DeviceKind}
# Control characters break CSV tools and dashboards; NUL and lone surrogates cannot be stored in PostgreSQL.
_BAD_TEXT: Final = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_TEXT_LIMITS: Final = {
    "road": 200,
    "grid_cell": 100,
    "circuit": 100,
    "cabinet": 100,
    "crew": 100,
}  # in this order
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TRUE: Final = frozenset({"", "true", "1", "yes", "y", "t"})  # empty: in service unless told otherwise
_FALSE: Final = frozenset({"false", "0", "no", "n", "f"})
_PROGRESS_EVERY: Final = 2000

ParamScalar = str | int | float | bool | None
ParamValue = ParamScalar | tuple[ParamScalar, ...]


class RejectCause(enum.StrEnum):
    """Why a row was rejected; import summaries count rejections by cause."""

    MALFORMED_ROW = "malformed_row"  # wrong number of CSV fields, a feature that is not a Point feature
    MISSING_COLUMN = "missing_column"
    UNKNOWN_COLUMN = "unknown_column"
    BAD_ID = "bad_id"
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_KIND = "unknown_kind"
    BAD_DISTRICT = "bad_district"
    BAD_ROAD_CLASS = "bad_road_class"
    BAD_TEXT = "bad_text"
    BAD_POSITION = "bad_position"
    BAD_NUMBER = "bad_number"
    BAD_DATE = "bad_date"
    BAD_PARAMS = "bad_params"
    BAD_FLAG = "bad_flag"
    BAD_GATEWAY = "bad_gateway"
    UNKNOWN_GATEWAY = "unknown_gateway"


class AssetError(RegistryError):
    """An asset value or a file row cannot be accepted."""

    def __init__(
        self, cause: RejectCause, detail: str, *, asset_id: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.asset_id = asset_id
        self.line = line

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        if self.asset_id:
            where.append(self.asset_id)
        return f"{', '.join(where)}: {self.detail}" if where else self.detail

    def rejection(self) -> RowRejection:
        return RowRejection(self.line or 0, self.asset_id, self.detail, self.cause)


@dataclass(frozen=True, slots=True)
class RowRejection:
    """A file row that was not imported: where, which asset (when its id was readable), and why."""

    line: int
    asset_id: str | None
    reason: str
    cause: RejectCause


def _no_params() -> Mapping[str, ParamValue]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """One registered asset. Constructing one validates it: an Asset is always fit to store."""

    id: str
    kind: str  # a DeviceKind value or GATEWAY
    district: str
    road: str = ""
    road_class: str = ""
    grid_cell: str = ""
    circuit: str = ""
    cabinet: str = ""
    gateway: str = ""
    lat: float
    lon: float
    rated_power_w: float | None = None
    capacity: float | None = None
    install_date: date | None = None
    crew: str = ""
    params: Mapping[str, ParamValue] = field(default_factory=_no_params, hash=False)
    in_service: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.kind, DeviceKind):
            object.__setattr__(self, "kind", self.kind.value)
        _check_asset(self)
        object.__setattr__(self, "params", _frozen_params(self.params))


def _check_asset(a: Asset) -> None:
    if not isinstance(a.id, str) or not ID_PATTERN.fullmatch(a.id):
        raise AssetError(
            RejectCause.BAD_ID, f"id {a.id!r:.70} is not 1-64 characters of A-Z a-z 0-9 _ . - (no spaces)"
        )
    if a.kind not in KINDS:
        raise AssetError(
            RejectCause.UNKNOWN_KIND, f"kind {a.kind!r:.40} is not one of {', '.join(sorted(KINDS))}"
        )
    if not DISTRICT_PATTERN.fullmatch(a.district):
        raise AssetError(
            RejectCause.BAD_DISTRICT,
            f"district {a.district!r:.50} is not a slug: 1-40 characters of lower-case a-z, 0-9, _ and -",
        )
    if a.road_class and a.road_class not in ROAD_CLASSES:
        raise AssetError(
            RejectCause.BAD_ROAD_CLASS,
            f"road_class {a.road_class!r:.40} is not one of {', '.join(ROAD_CLASSES)}",
        )
    if a.kind == DeviceKind.LAMP and not a.road_class:
        raise AssetError(RejectCause.BAD_ROAD_CLASS, f"a lamp needs a road_class: {', '.join(ROAD_CLASSES)}")
    texts = (a.road, a.grid_cell, a.circuit, a.cabinet, a.crew)
    joined = "".join(texts)
    if len(joined) > 100 or _BAD_TEXT.search(joined):  # one quick test for the common case, then the detail
        for name, text in zip(_TEXT_LIMITS, texts, strict=True):
            if len(text) > _TEXT_LIMITS[name]:
                raise AssetError(
                    RejectCause.BAD_TEXT, f"{name} has {len(text)} characters, limit {_TEXT_LIMITS[name]}"
                )
            if _BAD_TEXT.search(text):
                raise AssetError(RejectCause.BAD_TEXT, f"{name} contains a control character: {text!r:.60}")
    if a.gateway:
        if not ID_PATTERN.fullmatch(a.gateway):
            raise AssetError(RejectCause.BAD_GATEWAY, f"gateway {a.gateway!r:.70} is not a valid id")
        if a.kind == GATEWAY:
            raise AssetError(RejectCause.BAD_GATEWAY, "a gateway cannot belong to another gateway")
    # NaN fails every comparison, so these also reject it.
    if not -90.0 <= a.lat <= 90.0:
        raise AssetError(RejectCause.BAD_POSITION, f"lat {a.lat} is outside -90 to 90")
    if not -180.0 <= a.lon <= 180.0:
        raise AssetError(RejectCause.BAD_POSITION, f"lon {a.lon} is outside -180 to 180")
    if a.rated_power_w is not None and not (a.rated_power_w >= 0 and math.isfinite(a.rated_power_w)):
        raise AssetError(
            RejectCause.BAD_NUMBER, f"rated_power_w {a.rated_power_w} is not a finite number >= 0"
        )
    if a.capacity is not None and not (a.capacity >= 0 and math.isfinite(a.capacity)):
        raise AssetError(RejectCause.BAD_NUMBER, f"capacity {a.capacity} is not a finite number >= 0")
    if a.install_date is not None and type(a.install_date) is not date:
        raise AssetError(RejectCause.BAD_DATE, f"install_date {a.install_date!r:.40} is not a date")
    if type(a.in_service) is not bool:
        raise AssetError(RejectCause.BAD_FLAG, f"in_service {a.in_service!r:.20} is not true or false")


def _param_scalar(name: str, value: object) -> ParamScalar:
    if value is None or isinstance(value, str | bool):
        return value
    # The JSON column and the export must hold every value exactly: finite, 64-bit integers.
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise AssetError(
        RejectCause.BAD_PARAMS,
        f"params[{name!r:.40}] is {value!r:.40}: use numbers, text, true/false, null or a flat list of those",
    )


def _frozen_params(params: Mapping[str, object]) -> Mapping[str, ParamValue]:
    frozen: dict[str, ParamValue] = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise AssetError(RejectCause.BAD_PARAMS, f"params key {name!r:.40} is not text")
        if isinstance(value, list | tuple):
            frozen[name] = tuple(_param_scalar(name, item) for item in value)
        else:
            frozen[name] = _param_scalar(name, value)
    return MappingProxyType(frozen)


# ---------------------------------------------------------------------------------------------------------
# Parsing: text in, Assets or rejections out. No I/O.


# The helpers below read a row whose values parse_row has already stripped.


def _required(cells: Mapping[str, str], column: str) -> str:
    value = cells.get(column)
    if value is None:
        raise AssetError(RejectCause.MISSING_COLUMN, f"missing required column {column!r}")
    if not value:
        raise AssetError(RejectCause.MISSING_COLUMN, f"required column {column!r} is empty")
    return value


def _coordinate(cells: Mapping[str, str], column: str) -> float:
    text = _required(cells, column)
    try:
        return float(text)
    except ValueError:
        raise AssetError(RejectCause.BAD_POSITION, f"{column} {text!r:.40} is not a number") from None


def _optional_number(cells: Mapping[str, str], column: str) -> float | None:
    text = cells.get(column)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise AssetError(RejectCause.BAD_NUMBER, f"{column} {text!r:.40} is not a number") from None


def _install_date(text: str) -> date | None:
    if not text:
        return None
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise AssetError(RejectCause.BAD_DATE, f"install_date {text!r:.40} is not a date YYYY-MM-DD")


def _params(text: str) -> Mapping[str, object]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise AssetError(RejectCause.BAD_PARAMS, f"params is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise AssetError(
            RejectCause.BAD_PARAMS, f'params must be a JSON object like {{"pumps": 3}}, got {text!r:.40}'
        )
    return value


def _in_service(text: str) -> bool:
    flag = text.lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    raise AssetError(RejectCause.BAD_FLAG, f"in_service {text!r:.20} is not true or false")


def parse_row(row: Mapping[str, str], line: int) -> Asset:
    """One row (column name to text) to an Asset; ``AssetError`` (a ``RegistryError``) names what is wrong."""
    raw_id = row.get("id")
    try:
        if not row.keys() <= _COLUMN_SET:
            unknown = next(k for k in row if k not in _COLUMN_SET)
            raise AssetError(
                RejectCause.UNKNOWN_COLUMN,
                f"unknown column {unknown!r:.40}; the columns are {','.join(COLUMNS)}",
            )
        try:
            cells = {column: str.strip(value) for column, value in row.items()}
        except TypeError:
            raise AssetError(RejectCause.MALFORMED_ROW, "every value must be text") from None
        get = cells.get
        return Asset(
            id=_required(cells, "id"),
            kind=_required(cells, "kind"),
            district=_required(cells, "district"),
            road=get("road", ""),
            road_class=get("road_class", ""),
            grid_cell=get("grid_cell", ""),
            circuit=get("circuit", ""),
            cabinet=get("cabinet", ""),
            gateway=get("gateway", ""),
            lat=_coordinate(cells, "lat"),
            lon=_coordinate(cells, "lon"),
            rated_power_w=_optional_number(cells, "rated_power_w"),
            capacity=_optional_number(cells, "capacity"),
            install_date=_install_date(get("install_date", "")),
            crew=get("crew", ""),
            params=_params(get("params", "")),  # type: ignore[arg-type]  # Asset checks and freezes the values
            in_service=_in_service(get("in_service", "")),
        )
    except AssetError as exc:
        exc.line = line
        asset_id = raw_id.strip() if isinstance(raw_id, str) else ""
        exc.asset_id = asset_id if ID_PATTERN.fullmatch(asset_id) else None
        raise


_RawRow = Mapping[str, str] | RowRejection


def _csv_header(header: list[str]) -> list[str]:
    columns = [name.strip().lstrip("\ufeff").lower() for name in header]
    for column in columns:
        if column not in _COLUMN_SET:
            raise RegistryError(f"line 1: unknown column {column!r:.40}; the columns are {','.join(COLUMNS)}")
        if columns.count(column) > 1:
            raise RegistryError(f"line 1: column {column!r} appears twice")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise RegistryError(f"line 1: the header lacks required column(s) {', '.join(missing)}")
    return columns


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, _RawRow]]:
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = _csv_header(header)
        start = reader.line_num + 1
        for values in reader:
            line, start = start, reader.line_num + 1
            if not "".join(values).strip():
                continue  # blank lines and spreadsheets' empty trailing rows
            if len(values) != len(columns):
                reason = f"{len(values)} fields, the header has {len(columns)}"
                asset_id = _row_id(dict(zip(columns, values, strict=False)))
                yield line, RowRejection(line, asset_id, reason, RejectCause.MALFORMED_ROW)
            else:
                yield line, dict(zip(columns, values, strict=True))
    except csv.Error as exc:
        raise RegistryError(f"line {reader.line_num}: not readable as CSV ({exc})") from exc


def _property_text(column: str, value: object) -> str:
    if value is None:
        return ""
    if column == "params" and not isinstance(value, str):
        if not isinstance(value, dict):
            raise AssetError(RejectCause.BAD_PARAMS, f"params must be an object, got {value!r:.40}")
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError as exc:
            raise AssetError(RejectCause.BAD_PARAMS, f"params cannot be stored as JSON ({exc})") from None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise AssetError(
        RejectCause.MALFORMED_ROW, f"property {column!r:.40} must be text, a number or true/false"
    )


def _feature_row(feature: object) -> dict[str, str]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise AssetError(RejectCause.MALFORMED_ROW, "not a GeoJSON Feature object")
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        raise AssetError(RejectCause.MALFORMED_ROW, "properties must be an object")
    raw_id = properties.get("id")
    try:
        geometry = feature.get("geometry")
        coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if (
            not isinstance(geometry, dict)
            or geometry.get("type") != "Point"
            or not isinstance(coordinates, list)
            or len(coordinates) not in (2, 3)  # a third value is altitude, which the registry does not keep
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates)
        ):
            raise AssetError(RejectCause.BAD_POSITION, "geometry must be a Point with coordinates [lon, lat]")
        row: dict[str, str] = {}
        for column, value in properties.items():
            if column in ("lat", "lon"):
                raise AssetError(
                    RejectCause.UNKNOWN_COLUMN,
                    f"property {column!r} is not allowed: the geometry gives the position",
                )
            row[column] = _property_text(column, value)
        row["lon"], row["lat"] = repr(coordinates[0]), repr(coordinates[1])
    except AssetError as exc:
        exc.asset_id = raw_id if isinstance(raw_id, str) and ID_PATTERN.fullmatch(raw_id) else None
        raise
    return row


def _geojson_rows(obj: object) -> Iterator[tuple[int, _RawRow]]:
    features = obj.get("features") if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection" or not isinstance(features, list):
        raise RegistryError(
            "not a GeoJSON FeatureCollection: an object with type FeatureCollection and features"
        )
    for number, feature in enumerate(features, start=1):
        try:
            yield number, _feature_row(feature)
        except AssetError as exc:
            exc.line = number
            yield number, exc.rejection()


def _row_id(row: Mapping[str, str]) -> str | None:
    raw = row.get("id")
    asset_id = raw.strip() if isinstance(raw, str) else ""
    return asset_id if ID_PATTERN.fullmatch(asset_id) else None


def _accept(
    rows: Iterable[tuple[int, _RawRow]], gateways: Collection[str] | None
) -> Iterator[Asset | RowRejection]:
    first_line: dict[str, int] = {}  # a repeated id rejects the later rows, whatever became of the first
    for line, row in rows:
        if isinstance(row, RowRejection):
            yield row
            continue
        asset_id = _row_id(row)
        if asset_id is not None:
            if asset_id in first_line:
                reason = f"id {asset_id} already appears on line {first_line[asset_id]}"
                yield RowRejection(line, asset_id, reason, RejectCause.DUPLICATE_ID)
                continue
            first_line[asset_id] = line
        try:
            asset = parse_row(row, line)
        except AssetError as exc:
            yield exc.rejection()
            continue
        if gateways is not None and asset.gateway and asset.gateway not in gateways:
            reason = f"gateway {asset.gateway} is not a gateway in this file or in the registry"
            yield RowRejection(line, asset.id, reason, RejectCause.UNKNOWN_GATEWAY)
            continue
        yield asset


def parse_csv(
    lines: Iterable[str], *, gateways: Collection[str] | None = None
) -> Iterator[Asset | RowRejection]:
    """Assets and rejections, in file order. ``gateways``: the valid gateway ids; None skips that check.

    A header that is not the registry's raises ``RegistryError`` before the first row.
    """
    return _accept(_csv_rows(lines), gateways)


def parse_geojson(obj: object, *, gateways: Collection[str] | None = None) -> Iterator[Asset | RowRejection]:
    """Assets and rejections from a parsed GeoJSON FeatureCollection; ``line`` is the feature's number."""
    return _accept(_geojson_rows(obj), gateways)


def gateways_after_import(rows: Iterable[tuple[int, _RawRow]], known: Collection[str]) -> set[str]:
    """The gateway ids the registry will hold once these rows are imported over the ``known`` ones.

    A device may name a gateway that comes later in the file, so imports read the file once for this first.
    """
    gateways = set(known)
    seen: set[str] = set()
    for line, row in rows:
        if isinstance(row, RowRejection):
            continue
        asset_id = _row_id(row)
        if asset_id is None or asset_id in seen:
            continue
        seen.add(asset_id)
        if row.get("kind", "").strip() != GATEWAY and asset_id not in known:
            continue  # the common case: a device row, which changes no gateway
        try:
            asset = parse_row(row, line)
        except AssetError:
            continue
        if asset.kind == GATEWAY:
            gateways.add(asset.id)
        else:
            gateways.discard(asset.id)
    return gateways


# ---------------------------------------------------------------------------------------------------------
# The database adapter.

_metadata = sa.MetaData()
assets_table = sa.Table(
    "assets",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False, index=True),
    sa.Column("district", sa.String(40), nullable=False),
    sa.Column("road", sa.String(_TEXT_LIMITS["road"]), nullable=False),
    sa.Column("road_class", sa.String(16), nullable=False),
    sa.Column("grid_cell", sa.String(_TEXT_LIMITS["grid_cell"]), nullable=False),
    sa.Column("circuit", sa.String(_TEXT_LIMITS["circuit"]), nullable=False),
    sa.Column("cabinet", sa.String(_TEXT_LIMITS["cabinet"]), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("lat", sa.Double, nullable=False),
    sa.Column("lon", sa.Double, nullable=False),
    sa.Column("rated_power_w", sa.Double),
    sa.Column("capacity", sa.Double),
    sa.Column("install_date", sa.Date),
    sa.Column("crew", sa.String(_TEXT_LIMITS["crew"]), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON object
    sa.Column("in_service", sa.Boolean, nullable=False),
)


_DIRECTORY_QUERY: Final = sa.select(
    assets_table.c.id, assets_table.c.kind, assets_table.c.district, assets_table.c.gateway
).where(assets_table.c.kind != GATEWAY, assets_table.c.in_service)


def _params_json(params: Mapping[str, ParamValue]) -> str:
    return orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS).decode() if params else "{}"


def _db_row(a: Asset) -> dict[str, Any]:
    row = {column: getattr(a, column) for column in COLUMNS}
    row["params"] = _params_json(a.params)
    return row


def _sqlite_row(a: Asset) -> tuple[object, ...]:
    return (
        a.id,
        a.kind,
        a.district,
        a.road,
        a.road_class,
        a.grid_cell,
        a.circuit,
        a.cabinet,
        a.gateway,
        a.lat,
        a.lon,
        a.rated_power_w,
        a.capacity,
        None if a.install_date is None else a.install_date.isoformat(),
        a.crew,
        _params_json(a.params),
        a.in_service,
    )


def _asset_from_db(row: sa.Row[Any]) -> Asset:
    values = dict(row._mapping)
    try:
        values["params"] = orjson.loads(values["params"])
        return Asset(**values)
    except (AssetError, orjson.JSONDecodeError) as exc:
        raise RegistryError(f"registry row {values['id']!r} is not a valid asset: {exc}") from exc


def upsert_statement(dialect: sa.Dialect) -> sa.Insert:
    """INSERT ... ON CONFLICT (id) DO UPDATE for the dialects the registry runs on."""
    insert: sqlite.Insert | postgresql.Insert
    if dialect.name == "sqlite":
        insert = sqlite.insert(assets_table)
    elif dialect.name == "postgresql":
        insert = postgresql.insert(assets_table)
    else:
        raise RegistryError(f"the registry runs on SQLite or PostgreSQL, not {dialect.name}")
    updates = {c.name: insert.excluded[c.name] for c in assets_table.columns if c.name != "id"}
    return insert.on_conflict_do_update(index_elements=[assets_table.c.id], set_=updates)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (the ingest's directory refresh) never wait for an import, nor an import for them.
    cursor.execute("PRAGMA journal_mode=WAL")
    # Safe with WAL: a power cut can lose the last commit, never corrupt the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Registry:
    """The asset registry in a SQLAlchemy database: a SQLite file by default, PostgreSQL accepted."""

    def __init__(self, url: str) -> None:
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise RegistryError(f"{url!r} is not a database URL: {exc}") from exc
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise RegistryError(f"the registry runs on SQLite or PostgreSQL, not {backend}")
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # the driver citywatch[postgres] installs
        self._where = where = parsed.render_as_string(hide_password=True)
        try:
            if backend == "sqlite":
                self._engine = sa.create_engine(parsed, connect_args={"check_same_thread": False})
                sa.event.listen(self._engine, "connect", _sqlite_pragmas)
            else:
                self._engine = sa.create_engine(parsed, pool_pre_ping=True)
        except ImportError as exc:
            raise RegistryError(f"no driver for {where}: {exc} (pip install 'citywatch[postgres]')") from exc
        self._upsert = upsert_statement(self._engine.dialect)
        self._directory: Mapping[str, DeviceRef] = {}
        self._write = self._write_core
        if backend == "sqlite":
            compiled = self._upsert.compile(dialect=self._engine.dialect, column_keys=list(COLUMNS))
            assert compiled.positiontup == list(COLUMNS), "_sqlite_row gives the values in COLUMNS order"
            self._sqlite_upsert = str(compiled)
            self._write = self._write_sqlite
        try:
            # Schema migrations arrive with a later issue; until then create_all makes the missing tables.
            _metadata.create_all(self._engine)
        except sa.exc.DBAPIError as exc:
            self._engine.dispose()
            raise RegistryError(f"cannot open the registry at {where}: {exc.orig}") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _connect(self, action: str, *, begin: bool = False) -> Iterator[sa.Connection]:
        """A connection (in a transaction when ``begin``); database errors become RegistryError."""
        try:
            with self._engine.begin() if begin else self._engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise RegistryError(f"cannot {action} in the registry at {self._where}: {exc.orig}") from exc

    def upsert(self, assets: Iterable[Asset], *, batch_size: int = 5000) -> int:
        """Insert or update assets by id in one transaction; returns how many rows were written."""
        written = 0
        with self._connect("write assets", begin=True) as conn:
            # By id: a driver that sends a batch as one multi-row INSERT fails on an id given twice
            # (PostgreSQL: "ON CONFLICT DO UPDATE command cannot affect row a second time").
            batch: dict[str, Asset] = {}
            for asset in assets:
                batch[asset.id] = asset
                if len(batch) >= batch_size:
                    self._write(conn, batch.values())
                    written += len(batch)
                    batch = {}
            if batch:
                self._write(conn, batch.values())
                written += len(batch)
        return written

    def _write_core(self, conn: sa.Connection, batch: Iterable[Asset]) -> None:
        conn.execute(self._upsert, [_db_row(a) for a in batch])

    def _write_sqlite(self, conn: sa.Connection, batch: Iterable[Asset]) -> None:
        # The same statement, compiled once and given plain tuples: SQLAlchemy's per-row parameter handling
        # would take more than half of a million-row import. Dates go in as SQLAlchemy's SQLite DATE text.
        conn.exec_driver_sql(self._sqlite_upsert, [_sqlite_row(a) for a in batch])

    def get(self, asset_id: str) -> Asset | None:
        with self._connect("read an asset") as conn:
            row = conn.execute(sa.select(assets_table).where(assets_table.c.id == asset_id)).first()
        return None if row is None else _asset_from_db(row)

    def iter_assets(self, kind: str | None = None) -> Generator[Asset, None, None]:
        """Every asset (of one kind), ordered by id, streamed from the database.

        The generator holds a connection until it ends: close it (``contextlib.closing``) when stopping early.
        """
        stmt = sa.select(assets_table).order_by(assets_table.c.id)
        if kind is not None:
            stmt = stmt.where(assets_table.c.kind == kind)
        with self._connect("read assets") as conn:
            for row in conn.execution_options(yield_per=2000).execute(stmt):
                yield _asset_from_db(row)

    def count_by_kind(self) -> dict[str, int]:
        stmt = (
            sa.select(assets_table.c.kind, sa.func.count())
            .group_by(assets_table.c.kind)
            .order_by(assets_table.c.kind)
        )
        with self._connect("count assets") as conn:
            return dict(conn.execute(stmt).all())

    def gateway_ids(self) -> set[str]:
        stmt = sa.select(assets_table.c.id).where(assets_table.c.kind == GATEWAY)
        with self._connect("read gateways") as conn:
            return set(conn.execute(stmt).scalars())

    def directory(self) -> dict[str, DeviceRef]:
        """Every in-service device (gateways excluded) as the ingest's decoder needs it.

        The ingest calls this at start and every 30 s. A device unchanged since the last call keeps its
        DeviceRef object, so a refresh of a million devices allocates only for the changed ones.
        """
        refs: dict[str, DeviceRef] = {}
        previous = self._directory.get
        kinds = _DEVICE_KINDS
        intern = sys.intern  # a million refs share a few hundred districts and gateways
        unknown = 0
        with self._connect("read the device directory") as conn:
            for device_id, kind, district, gateway in conn.execute(_DIRECTORY_QUERY):
                gateway_id = gateway or None
                ref = previous(device_id)
                if (
                    ref is None
                    or ref.device_id != device_id
                    or ref.kind != kind
                    or ref.district != district
                    or ref.gateway != gateway_id
                ):
                    device_kind = kinds.get(kind)
                    if device_kind is None:
                        unknown += 1
                        continue
                    ref = DeviceRef(
                        device_id,
                        device_kind,
                        intern(district),
                        None if gateway_id is None else intern(gateway_id),
                    )
                refs[device_id] = ref
        if unknown:
            log.warning("directory: skipped %d assets of a kind this version does not know", unknown)
        self._directory = refs
        return refs


# ---------------------------------------------------------------------------------------------------------
# Files.


@dataclass(frozen=True, slots=True)
class ImportSummary:
    accepted: int
    rejected: int
    reasons: tuple[RowRejection, ...]  # the first MAX_LISTED_REJECTIONS, in file order
    reason_counts: Mapping[RejectCause, int]  # every rejection, by cause


class _Tally:
    """Passes accepted Assets on, keeps count of the rejections and reports progress."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.rows = 0
        self.listed: list[RowRejection] = []
        self.counts: Counter[RejectCause] = Counter()

    def accepted(self, results: Iterable[Asset | RowRejection]) -> Iterator[Asset]:
        for item in results:
            self.rows += 1
            if isinstance(item, RowRejection):
                self.counts[item.cause] += 1
                if len(self.listed) < MAX_LISTED_REJECTIONS:
                    self.listed.append(item)
            else:
                yield item
            if self.progress is not None and self.rows % _PROGRESS_EVERY == 0:
                self.progress(self.rows)
        if self.progress is not None:
            self.progress(self.rows)


def _open_csv(path: Path, mode: str = "r") -> IO[str]:
    return path.open(mode, encoding="utf-8-sig" if mode == "r" else "utf-8", newline="")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".geojson", ".json"):
        raise RegistryError(f"{path}: unknown file type {suffix!r}; use .csv, .geojson or .json")
    return suffix


def import_file(
    registry: Registry, path: str | os.PathLike[str], progress: Callable[[int], None] | None = None
) -> ImportSummary:
    """Import a CSV or GeoJSON file: valid rows are upserted in one transaction, the others reported."""
    path = Path(path)
    tally = _Tally(progress)
    try:
        if _suffix(path) == ".csv":
            with _open_csv(path) as f:
                gateways = gateways_after_import(_csv_rows(f), registry.gateway_ids())
            with _open_csv(path) as f:
                accepted = registry.upsert(tally.accepted(parse_csv(f, gateways=gateways)))
        else:
            # GeoJSON is one JSON document, so it is parsed whole; the Assets are still streamed.
            obj = orjson.loads(path.read_bytes())
            gateways = gateways_after_import(_geojson_rows(obj), registry.gateway_ids())
            accepted = registry.upsert(tally.accepted(parse_geojson(obj, gateways=gateways)))
    except UnicodeDecodeError as exc:
        raise RegistryError(f"cannot read {path}: not UTF-8 ({exc}); save it as CSV UTF-8") from exc
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc
    rejected = sum(tally.counts.values())
    log.info("imported %s: %d accepted, %d rejected", path, accepted, rejected)
    return ImportSummary(accepted, rejected, tuple(tally.listed), MappingProxyType(dict(tally.counts)))


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


_CSV_TEXT: Final[Mapping[str, Callable[[Any], str]]] = {
    "lat": repr,
    "lon": repr,
    "rated_power_w": _csv_number,
    "capacity": _csv_number,
    "install_date": lambda d: _iso_date(d) or "",
    "params": _params_json,
    "in_service": lambda flag: "true" if flag else "false",
}


def csv_row(a: Asset) -> list[str]:
    """An asset as a CSV row in COLUMNS order; ``parse_row`` reads it back to an equal Asset."""
    return [_CSV_TEXT.get(column, str)(getattr(a, column)) for column in COLUMNS]


def geojson_feature(a: Asset) -> dict[str, object]:
    properties = {column: getattr(a, column) for column in COLUMNS if column not in ("lat", "lon")}
    properties["install_date"] = _iso_date(a.install_date)
    properties["params"] = dict(a.params)
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [a.lon, a.lat]},
        "properties": properties,
    }


def export_file(registry: Registry, path: str | os.PathLike[str]) -> int:
    """Write every asset to a CSV or GeoJSON file (by suffix); returns how many.

    The file is written beside the target and moved over it at the end.
    """
    path = Path(path)
    suffix = _suffix(path)
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        if suffix == ".csv":
            with _open_csv(partial, "w") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(COLUMNS)
                for asset in registry.iter_assets():
                    writer.writerow(csv_row(asset))
                    count += 1
        else:
            with partial.open("wb") as out:
                out.write(b'{"type":"FeatureCollection","features":[')
                for asset in registry.iter_assets():
                    out.write(b"\n" if count == 0 else b",\n")
                    out.write(orjson.dumps(geojson_feature(asset)))
                    count += 1
                out.write(b"\n]}\n")
        partial.replace(path)
    except OSError as exc:
        raise RegistryError(f"cannot write {path}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return count
