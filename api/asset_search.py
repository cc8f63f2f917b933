"""Searching the asset registry's table (adapter): pages of assets by filters, read-only.

The registry (``devices.registry.Registry``) owns the table and every write; this reads the same table
through an engine of its own (SQLite in WAL mode lets both read while an import writes).
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from api.asset_filters import AssetFilter, page_query
from api.db import connect, open_engine
from devices import RegistryError
from devices.assets import Asset, AssetError


def asset_from_row(m: sa.RowMapping) -> Asset:
    values = dict(m)
    try:
        values["params"] = orjson.loads(values["params"])
        return Asset(**values)
    except (AssetError, orjson.JSONDecodeError) as exc:
        raise RegistryError(f"registry row {values['id']!r} is not a valid asset: {exc}") from exc


class AssetSearch:
    def __init__(self, registry_url: str) -> None:
        self._engine, self._where = open_engine(registry_url)

    def close(self) -> None:
        self._engine.dispose()

    def page(self, f: AssetFilter, after: str | None, limit: int) -> list[Asset]:
        return self._assets("search assets", page_query(f, after, limit))

    def _assets(self, action: str, stmt: sa.Select[Any]) -> list[Asset]:
        with connect(self._engine, self._where, action) as conn:
            return [asset_from_row(row) for row in conn.execute(stmt).mappings()]
