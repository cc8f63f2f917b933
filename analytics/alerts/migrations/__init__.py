"""Alembic migrations of the alerts database; ``analytics.alerts.store`` applies them when a store opens.

A new revision (from the repository root)::

    .venv/bin/alembic -c analytics/alerts/migrations/alembic.ini -x url=sqlite:///var/alerts.db \
        revision -m "what changes"

Write the operations by hand (``op.add_column`` ...) and keep ``store.py``'s tables in step: the test
``test_the_migrations_build_the_schema_the_store_expects`` compares the two.
"""

#: alembic's version table, named for the alerts so that the alerts may share a database with others.
VERSION_TABLE = "alerts_schema_version"
