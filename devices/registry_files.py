"""Import and export registry files: the file formats of ``devices.assets``, read into and written from a
``Registry``.

Errors::

    RegistryError            (devices) a file cannot be read or written, or its header is not the registry's
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Final

import orjson

from devices import RegistryError
from devices.assets import (
    COLUMNS,
    Asset,
    RejectCause,
    RowRejection,
    csv_rows,
    gateways_after_import,
    geojson_rows,
    params_json,
    parse_csv,
    parse_geojson,
)
from devices.registry import Registry

log = logging.getLogger(__name__)

#: How many rejections an ImportSummary lists one by one; all of them are counted.
MAX_LISTED_REJECTIONS: Final = 1000
_PROGRESS_EVERY: Final = 2000


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
                gateways = gateways_after_import(csv_rows(f), registry.gateway_ids())
            with _open_csv(path) as f:
                accepted = registry.upsert(tally.accepted(parse_csv(f, gateways=gateways)))
        else:
            # GeoJSON is one JSON document, so it is parsed whole; the Assets are still streamed.
            obj = orjson.loads(path.read_bytes())
            gateways = gateways_after_import(geojson_rows(obj), registry.gateway_ids())
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
    "params": params_json,
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
