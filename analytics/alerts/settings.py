"""Settings of the alerts service (prefix ``CITYWATCH_ALERTS_``), loaded once at the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertSettings(BaseSettings):
    """Where the alerts live and who the people are.

    ``db_url`` is a SQLAlchemy URL (SQLite or PostgreSQL); unset, a SQLite file ``alerts.db`` in the
    common ``var_dir``. ``contacts_file`` lists the people routing resolves recipients to.
    """

    model_config = SettingsConfigDict(env_prefix="CITYWATCH_ALERTS_", extra="forbid")

    db_url: str | None = None
    contacts_file: Path | None = None
    # severity classes, deadlines, the working-day calendar and planned works (analytics/alerts/cityfile.py);
    # read again whenever it changes, so planned works can be added while the service runs
    rules_file: Path | None = None

    def sqlalchemy_url(self, var_dir: Path) -> str:
        return self.db_url or f"sqlite:///{var_dir / 'alerts.db'}"
