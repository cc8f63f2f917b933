"""The asset registry: search, read, create, update, import and export (writes: admin)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Final, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from api import Conflict, NotFound, TooLarge, Unavailable, Unprocessable
from api.asset_filters import AssetFilter, parse_bbox
from api.audit import note_of
from api.roles import V1
from api.routes import GUARDED, problems
from api.schemas import ID_REGEX, AssetIn, AssetOut, AssetPage, AssetPatch, ImportOut, ImportRejectionOut
from api.security import Caller, Svc
from devices import RegistryError
from devices.assets import COLUMNS, Asset, AssetError
from devices.registry import Registry
from devices.registry_files import csv_row, geojson_feature, import_file

router = APIRouter(prefix=V1, tags=["assets"], responses=GUARDED)

AssetKind = Literal["lamp", "cabinet", "bridge_node", "pump_station", "flood_gauge", "bin", "gateway"]
AssetId = Annotated[str, Path(pattern=f"^{ID_REGEX}$")]
Text = Annotated[str | None, Query(max_length=200)]
_SUFFIXES: Final = {".csv": ".csv", ".geojson": ".geojson", ".json": ".geojson"}
_TYPES: Final = {"text/csv": ".csv", "application/geo+json": ".geojson", "application/json": ".geojson"}
_CHUNK: Final = 1 << 20
_LISTED: Final = 200


def asset_out(a: Asset) -> AssetOut:
    values = {f.name: getattr(a, f.name) for f in dataclasses.fields(a)}
    values["params"] = {k: list(v) if isinstance(v, tuple) else v for k, v in a.params.items()}
    return AssetOut(**values)


@router.get("/assets")
def search_assets(
    _caller: Caller,
    svc: Svc,
    kind: AssetKind | None = None,
    district: Text = None,
    road: Text = None,
    road_class: Text = None,
    grid_cell: Text = None,
    circuit: Text = None,
    cabinet: Text = None,
    gateway: Text = None,
    crew: Text = None,
    in_service: bool | None = None,
    bbox: Annotated[
        str | None, Query(max_length=200, description="min_lon,min_lat,max_lon,max_lat (WGS 84)")
    ] = None,
    after: Annotated[
        str | None, Query(pattern=f"^{ID_REGEX}$", description="the last id of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> AssetPage:
    """Assets matching every filter given, by id, a page at a time."""
    f = AssetFilter(
        kind=kind,
        district=district,
        road=road,
        road_class=road_class,
        grid_cell=grid_cell,
        circuit=circuit,
        cabinet=cabinet,
        gateway=gateway,
        crew=crew,
        in_service=in_service,
        bbox=None if bbox is None else parse_bbox(bbox),
    )
    limit = min(limit, svc.settings.page_max)
    found = svc.assets.page(f, after, limit)
    return AssetPage(
        items=[asset_out(a) for a in found], next_after=found[-1].id if len(found) == limit else None
    )


def _csv_chunks(registry: Registry, kind: str | None) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    with contextlib.closing(registry.iter_assets(kind)) as assets:
        for n, asset in enumerate(assets, start=1):
            writer.writerow(csv_row(asset))
            if n % 2000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def _geojson_chunks(registry: Registry, kind: str | None) -> Iterator[bytes]:
    yield b'{"type":"FeatureCollection","features":['
    with contextlib.closing(registry.iter_assets(kind)) as assets:
        for n, asset in enumerate(assets):
            yield (b"\n" if n == 0 else b",\n") + orjson.dumps(geojson_feature(asset))
    yield b"\n]}\n"


@router.get(
    "/assets/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the registry as a file (devices/assets.py documents the columns)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/geo+json": {"schema": {"type": "object"}},
            },
        }
    },
)
def export_assets(
    _caller: Caller, svc: Svc, format: Literal["csv", "geojson"] = "csv", kind: AssetKind | None = None
) -> StreamingResponse:
    """The whole registry (or one kind) as CSV or GeoJSON, streamed: the files ``devices import`` reads."""
    name = f"assets.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return StreamingResponse(
            _csv_chunks(svc.registry, kind), media_type="text/csv; charset=utf-8", headers=headers
        )
    return StreamingResponse(
        _geojson_chunks(svc.registry, kind), media_type="application/geo+json", headers=headers
    )


@router.get("/assets/{asset_id}", responses=problems(404))
def get_asset(asset_id: AssetId, _caller: Caller, svc: Svc) -> AssetOut:
    asset = svc.registry.get(asset_id)
    if asset is None:
        raise NotFound(f"no asset {asset_id} in the registry")
    return asset_out(asset)


def _checked(svc_registry: Registry, make: dict[str, object]) -> Asset:
    try:
        asset = Asset(**make)  # type: ignore[arg-type]
    except AssetError as exc:
        raise Unprocessable(f"{exc.cause.value}: {exc.detail}", extra={"cause": exc.cause.value}) from exc
    if asset.gateway and asset.gateway not in svc_registry.gateway_ids():
        raise Unprocessable(
            f"gateway {asset.gateway} is not a gateway in the registry", extra={"cause": "unknown_gateway"}
        )
    return asset


@router.post("/assets", status_code=201, responses=problems(409))
def create_asset(request: Request, body: AssetIn, _caller: Caller, svc: Svc) -> AssetOut:
    """Register a new asset (an id already registered is a conflict: PATCH it instead)."""
    note = note_of(request.scope)
    note.summary = f"create {body.kind} {body.id}"
    note.targets["asset_id"] = body.id
    if svc.registry.get(body.id) is not None:
        raise Conflict(f"asset {body.id} is registered already: PATCH /api/v1/assets/{body.id} changes it")
    asset = _checked(svc.registry, body.model_dump())
    svc.registry.upsert([asset])
    return asset_out(asset)


@router.patch("/assets/{asset_id}", responses=problems(404))
def update_asset(
    request: Request, asset_id: AssetId, body: AssetPatch, _caller: Caller, svc: Svc
) -> AssetOut:
    """Change some fields of an asset; the result is checked as a whole, as an import would."""
    changes = body.model_dump(exclude_unset=True)
    note_of(request.scope).summary = f"update {asset_id}: {', '.join(sorted(changes)) or 'nothing'}"
    current = svc.registry.get(asset_id)
    if current is None:
        raise NotFound(f"no asset {asset_id} in the registry")
    values = {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
    values.update(
        {
            k: v
            for k, v in changes.items()
            if v is not None or k in ("rated_power_w", "capacity", "install_date")
        }
    )
    asset = _checked(svc.registry, values)
    svc.registry.upsert([asset])
    return asset_out(asset)


def _suffix(upload: UploadFile) -> str:
    suffix = FilePath(upload.filename or "").suffix.lower()
    found = _SUFFIXES.get(suffix) or _TYPES.get((upload.content_type or "").split(";")[0].strip())
    if found is None:
        raise Unprocessable("upload a .csv or .geojson file (devices/assets.py documents the formats)")
    return found


@router.post("/assets/import", responses=problems(413))
def import_assets(request: Request, file: UploadFile, _caller: Caller, svc: Svc) -> ImportOut:
    """Import a CSV or GeoJSON file: valid rows are upserted in one transaction, the others listed."""
    note = note_of(request.scope)
    note.summary = f"import {file.filename or 'a file'}"
    limit = svc.settings.import_max_bytes
    with tempfile.TemporaryDirectory(prefix="citywatch-import-") as folder:
        path = FilePath(folder) / f"upload{_suffix(file)}"
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the file is larger than the {limit // (1 << 20)} MiB limit")
                out.write(chunk)
        try:
            summary = import_file(svc.registry, path)
        except RegistryError as exc:
            if isinstance(exc.__cause__, sa.exc.DBAPIError):
                raise Unavailable(str(exc)) from exc
            raise Unprocessable(str(exc).replace(str(path), file.filename or "the file")) from exc
    note.summary += f": {summary.accepted} accepted, {summary.rejected} rejected"
    note.targets["accepted"] = summary.accepted
    return ImportOut(
        accepted=summary.accepted,
        rejected=summary.rejected,
        rejections=[
            ImportRejectionOut(line=r.line, asset_id=r.asset_id, reason=r.reason, cause=r.cause.value)
            for r in summary.reasons[:_LISTED]
        ],
        counts={cause.value: n for cause, n in summary.reason_counts.items()},
    )
