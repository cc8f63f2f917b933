"""Where the dashboards go (prefix ``CITYWATCH_GRAFANA_``), loaded once by ``citywatch dashboards push``."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GrafanaSettings(BaseSettings):
    """A Grafana to push to; the command line's options override these."""

    model_config = SettingsConfigDict(env_prefix="CITYWATCH_GRAFANA_", extra="forbid")

    url: str | None = None  # http://grafana:3000 (a sub-path is kept: http://host/grafana)
    token: SecretStr | None = None  # a service account token with the Editor role on the folder
    folder: str = "CityWatch"
    folder_uid: str = "citywatch"
    timeout_s: float = 30.0
