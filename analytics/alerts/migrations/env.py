"""Alembic environment of the alerts database.

The store runs the migrations on its own connection, already inside the transaction it opened
(``config.attributes["connection"]``). From a shell (``alembic -c analytics/alerts/migrations/alembic.ini``)
the database is ``-x url=...``, else the one the settings name.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from analytics.alerts.migrations import VERSION_TABLE


def _shell_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from analytics.alerts.settings import AlertSettings
    from citywatch.settings import CommonSettings

    return AlertSettings().sqlalchemy_url(CommonSettings().var_dir)


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_shell_url(), version_table=VERSION_TABLE, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = sa.create_engine(_shell_url())
    try:
        with engine.begin() as shell_connection:
            _run(shell_connection)
    finally:
        engine.dispose()
