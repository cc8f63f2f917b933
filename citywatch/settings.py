"""Settings shared by every service, loaded once at the composition root (prefix ``CITYWATCH_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Where the shared services are. Unset URLs mean: start a local one under ``var_dir``."""

    model_config = SettingsConfigDict(env_prefix="CITYWATCH_", extra="forbid")

    var_dir: Path = Path("var")
    mqtt_url: str | None = None  # mqtt://user:pass@host:1883
    # The broker's admin account (issues and revokes device accounts), for a broker CityWatch does not
    # start; None: the admin of the broker `citywatch run` starts under var_dir.
    mqtt_admin_url: str | None = None  # mqtt://citywatch-admin:pass@host:1883
    influx_url: str | None = None  # http://host:8086 (v1-compatible API)
    influx_db: str = "citywatch"
    influx_user: str | None = None
    influx_password: str | None = None
    influx_token: str | None = None  # InfluxDB 2.x / 3.x token for the v1-compatible API
    registry_url: str | None = None  # SQLAlchemy URL; default sqlite file under var_dir
    local_mqtt_port: int | None = None  # port of the broker `citywatch run` starts; None: a free one
    local_influx_port: int | None = None  # port of the InfluxDB `citywatch run` starts; None: a free one

    def registry_sqlalchemy_url(self) -> str:
        return self.registry_url or f"sqlite:///{self.var_dir / 'registry.db'}"
