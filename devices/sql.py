"""The SQL databases CityWatch keeps its own data in (the asset registry, the alert store, the API's
accounts, the command records): SQLite or PostgreSQL, named by a SQLAlchemy URL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def database_url(url: str, what: str) -> sa.URL:
    """``url`` parsed and checked: SQLite or PostgreSQL (psycopg 3, the driver ``citywatch[postgres]``
    installs). Raises ValueError naming ``what`` (e.g. "the registry") when it is neither."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"{url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"{what} runs on SQLite or PostgreSQL, not {backend}")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (the ingest's directory refresh, the API) never wait for a writer, nor a writer for them.
    cursor.execute("PRAGMA journal_mode=WAL")
    # Safe with WAL: a power cut can lose the last commit, never corrupt the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_for(parsed: sa.URL, *, sqlite_timeout_s: float | None = None) -> sa.Engine:
    """An engine for a URL from ``database_url``: SQLite in WAL mode, usable from any thread (CityWatch's
    stores are shared by a service's threads); PostgreSQL with a liveness check of pooled connections.
    ImportError when the driver is missing (``pip install 'citywatch[postgres]'``)."""
    if parsed.get_backend_name() == "sqlite":
        args: dict[str, Any] = {"check_same_thread": False}
        if sqlite_timeout_s is not None:
            args["timeout"] = sqlite_timeout_s
        engine = sa.create_engine(parsed, connect_args=args)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True)
