"""The asset registry's database: every lamp, cabinet, sensor node, pump station, gauge, bin and gateway
the city owns, as Assets (``devices.assets``) in a SQLAlchemy database.

Errors::

    RegistryError            (devices) a database cannot be opened, read or written, or holds an invalid asset
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Generator, Iterable, Mapping
from typing import Any, Final

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from devices import RegistryError
from devices.assets import COLUMNS, GATEWAY, TEXT_LIMITS, Asset, AssetError, params_json
from devices.contract import DeviceRef
from devices.kinds import DeviceKind
from devices.sql import SqlStore

log = logging.getLogger(__name__)

_DEVICE_KINDS: Final = {k.value: k for k in DeviceKind}

_metadata = sa.MetaData()
assets_table = sa.Table(
    "assets",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False, index=True),
    sa.Column("district", sa.String(40), nullable=False),
    sa.Column("road", sa.String(TEXT_LIMITS["road"]), nullable=False),
    sa.Column("road_class", sa.String(16), nullable=False),
    sa.Column("grid_cell", sa.String(TEXT_LIMITS["grid_cell"]), nullable=False),
    sa.Column("circuit", sa.String(TEXT_LIMITS["circuit"]), nullable=False),
    sa.Column("cabinet", sa.String(TEXT_LIMITS["cabinet"]), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("lat", sa.Double, nullable=False),
    sa.Column("lon", sa.Double, nullable=False),
    sa.Column("rated_power_w", sa.Double),
    sa.Column("capacity", sa.Double),
    sa.Column("install_date", sa.Date),
    sa.Column("crew", sa.String(TEXT_LIMITS["crew"]), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON object
    sa.Column("in_service", sa.Boolean, nullable=False),
)
# What the API searches and the crews' views filter by; a scan of a million rows each time otherwise.
# Created on an existing registry too (create_all skips a table that exists, with its indexes).
_SEARCH_INDEXES: Final = tuple(
    sa.Index(f"ix_assets_{column}", assets_table.c[column])
    for column in ("road", "circuit", "grid_cell", "crew")
)


_DIRECTORY_QUERY: Final = sa.select(
    assets_table.c.id, assets_table.c.kind, assets_table.c.district, assets_table.c.gateway
).where(assets_table.c.kind != GATEWAY, assets_table.c.in_service)


def _db_row(a: Asset) -> dict[str, Any]:
    row = {column: getattr(a, column) for column in COLUMNS}
    row["params"] = params_json(a.params)
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
        params_json(a.params),
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


class Registry(SqlStore):
    """The asset registry in a SQLAlchemy database: a SQLite file by default, PostgreSQL accepted."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "the registry", RegistryError)
        self._upsert = upsert_statement(self._engine.dialect)
        self._directory: Mapping[str, DeviceRef] = {}
        self._write = self._write_core
        if self._engine.dialect.name == "sqlite":
            compiled = self._upsert.compile(dialect=self._engine.dialect, column_keys=list(COLUMNS))
            assert compiled.positiontup == list(COLUMNS), "_sqlite_row gives the values in COLUMNS order"
            self._sqlite_upsert = str(compiled)
            self._write = self._write_sqlite
        # Schema migrations arrive with a later issue; until then create_all makes the missing tables.
        self._create_tables(_metadata, _SEARCH_INDEXES)

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

    def in_box(self, kind: str, lat: tuple[float, float], lon: tuple[float, float]) -> list[Asset]:
        """The assets of ``kind`` inside a latitude and a longitude range: one indexed-kind query, for
        a new device's neighbours (streaming every asset costs ~5 s per 100k)."""
        c = assets_table.c
        stmt = sa.select(assets_table).where(c.kind == kind, c.lat.between(*lat), c.lon.between(*lon))
        with self._connect("look for assets in a box") as conn:
            return [_asset_from_db(row) for row in conn.execute(stmt)]

    def places(self) -> Generator[tuple[str, str, float, float, str, str, str], None, None]:
        """(id, kind, lat, lon, circuit, road, grid cell) of every asset, streamed: the columns a map needs,
        without building (and validating) an Asset per row, which costs ~7x more at a million assets."""
        c = assets_table.c
        stmt = sa.select(c.id, c.kind, c.lat, c.lon, c.circuit, c.road, c.grid_cell).order_by(c.id)
        with self._connect("read asset places") as conn:
            for row in conn.execution_options(yield_per=5000).execute(stmt):
                yield (
                    row.id,
                    row.kind,
                    row.lat,
                    row.lon,
                    row.circuit or "",
                    row.road or "",
                    row.grid_cell or "",
                )

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

    def device_ref(self, device_id: str) -> DeviceRef | None:
        """One in-service device as the decoder needs it (None: unknown, out of service or a gateway);
        an indexed lookup, for a device the ingest meets before its next directory reload."""
        stmt = _DIRECTORY_QUERY.where(assets_table.c.id == device_id)
        with self._connect("look up a device") as conn:
            row = conn.execute(stmt).first()
        if row is None or row.kind not in _DEVICE_KINDS:
            return None
        return DeviceRef(row.id, _DEVICE_KINDS[row.kind], row.district, row.gateway or None)
