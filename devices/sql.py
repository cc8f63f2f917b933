"""The SQL databases CityWatch keeps its own data in (the asset registry, the alert store): SQLite or
PostgreSQL, named by a SQLAlchemy URL."""

from __future__ import annotations

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
