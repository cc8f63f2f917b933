"""The SQL databases CityWatch keeps its own data in (the asset registry, the alert store, the API's
accounts, the command records): SQLite or PostgreSQL, named by a SQLAlchemy URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Self

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


class SqlStore:
    """What CityWatch's SQL stores share: open the URL (an ``error`` naming ``what`` when it cannot be
    used), create the missing tables, close, and connections whose database errors become ``error``.
    A context manager."""

    def __init__(self, url: str, what: str, error: type[Exception]) -> None:
        self._what, self._error = what, error
        try:
            parsed = database_url(url, what)
        except ValueError as exc:
            raise error(str(exc)) from exc
        self._where = parsed.render_as_string(hide_password=True)
        try:
            self._engine = engine_for(parsed)
        except ImportError as exc:
            raise error(f"no driver for {self._where}: {exc} (pip install 'citywatch[postgres]')") from exc

    def _create_tables(self, metadata: sa.MetaData, indexes: Iterable[sa.Index] = ()) -> None:
        """The missing tables, and ``indexes`` also on tables that exist (create_all skips those)."""
        try:
            metadata.create_all(self._engine)
            for index in indexes:
                index.create(self._engine, checkfirst=True)
        except sa.exc.DBAPIError as exc:
            self._engine.dispose()
            raise self._error(f"cannot open {self._what} at {self._where}: {exc.orig}") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _connect(self, action: str, *, begin: bool = False) -> Iterator[sa.Connection]:
        """A connection (in a transaction when ``begin``); database errors become the store's error."""
        try:
            with self._engine.begin() if begin else self._engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise self._error(f"cannot {action} in {self._what} at {self._where}: {exc.orig}") from exc
