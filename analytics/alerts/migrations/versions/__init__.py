"""Revisions of the alerts database, oldest first (alembic reads them by file, not by import)."""
