"""The asset value, and the registry's file formats parsed into it: text in, Assets or rejections out.

Pure: no file, no database. ``devices.registry`` stores Assets, ``devices.registry_files`` reads and writes
the files.

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

    RegistryError            (devices) a CSV header or a GeoJSON document is not the registry's
     └── AssetError           one asset value or file row cannot be accepted: cause, detail, line, asset id
"""

from __future__ import annotations

import csv
import enum
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Final

import orjson

from devices import RegistryError
from devices.kinds import DeviceKind
from devices.topics import ID_PATTERN

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
#: Length limits of the free-text columns; the database's column sizes follow them.
TEXT_LIMITS: Final = {
    "road": 200,
    "grid_cell": 100,
    "circuit": 100,
    "cabinet": 100,
    "crew": 100,
}  # in this order

_COLUMN_SET: Final = frozenset(COLUMNS)
# Control characters break CSV tools and dashboards; NUL and lone surrogates cannot be stored in PostgreSQL.
_BAD_TEXT: Final = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TRUE: Final = frozenset({"", "true", "1", "yes", "y", "t"})  # empty: in service unless told otherwise
_FALSE: Final = frozenset({"false", "0", "no", "n", "f"})

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
        for name, text in zip(TEXT_LIMITS, texts, strict=True):
            if len(text) > TEXT_LIMITS[name]:
                raise AssetError(
                    RejectCause.BAD_TEXT, f"{name} has {len(text)} characters, limit {TEXT_LIMITS[name]}"
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


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, _RawRow]]:
    """(line, row) for each non-blank CSV row, not yet parsed; for ``gateways_after_import``."""
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


def geojson_rows(obj: object) -> Iterator[tuple[int, _RawRow]]:
    """(feature number, row) for each feature, not yet parsed; for ``gateways_after_import``."""
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
    return _accept(csv_rows(lines), gateways)


def parse_geojson(obj: object, *, gateways: Collection[str] | None = None) -> Iterator[Asset | RowRejection]:
    """Assets and rejections from a parsed GeoJSON FeatureCollection; ``line`` is the feature's number."""
    return _accept(geojson_rows(obj), gateways)


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


def params_json(params: Mapping[str, ParamValue]) -> str:
    """The text of ``params`` as the CSV column and the database hold it: a JSON object, keys sorted."""
    return orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS).decode() if params else "{}"
