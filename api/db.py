"""The API's own SQL database (users, tokens, API keys, the audit log): SQLite by default, PostgreSQL
accepted, named by a SQLAlchemy URL (adapter).

The tables are created when missing (``metadata.create_all``), as the asset registry does until schema
migrations arrive for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from api import Unavailable
from devices.sql import database_url, engine_for


def open_engine(url: str) -> tuple[sa.Engine, str]:
    """An engine for ``url`` and the URL as shown in messages (no password); ``Unavailable`` when the URL
    is not SQLite or PostgreSQL or its driver is missing."""
    try:
        parsed = database_url(url, "the API database")
    except ValueError as exc:
        raise Unavailable(str(exc)) from exc
    where = parsed.render_as_string(hide_password=True)
    try:
        # a sign-in or audit write waits up to 15 s for another process's write lock
        engine = engine_for(parsed, sqlite_timeout_s=15.0)
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
