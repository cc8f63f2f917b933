"""The API's own SQL database (users, tokens, API keys, the audit log): SQLite by default, PostgreSQL
accepted, named by a SQLAlchemy URL (adapter).

The tables are created when missing (``metadata.create_all``), as the asset registry does until schema
migrations arrive for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from api import Unavailable
from devices.sql import database_url


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: sign-ins and audit writes never wait for a reader, nor a reader for them.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a power cut loses the last commit at most
    cursor.close()


def open_engine(url: str) -> tuple[sa.Engine, str]:
    """An engine for ``url`` and the URL as shown in messages (no password); ``Unavailable`` when the URL
    is not SQLite or PostgreSQL or its driver is missing."""
    try:
        parsed = database_url(url, "the API database")
    except ValueError as exc:
        raise Unavailable(str(exc)) from exc
    where = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 15.0})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True)
    except ImportError as exc:
        raise Unavailable(f"no driver for {where}: {exc} (pip install 'citywatch[postgres]')") from exc
    return engine, where


@contextmanager
def connect(engine: sa.Engine, where: str, action: str, *, write: bool = False) -> Iterator[sa.Connection]:
    """A connection (a committed transaction when ``write``); database errors become ``Unavailable``."""
    try:
        with engine.begin() if write else engine.connect() as conn:
            yield conn
    except sa.exc.DBAPIError as exc:
        raise Unavailable(f"cannot {action} in the API database at {where}: {exc.orig}") from exc
