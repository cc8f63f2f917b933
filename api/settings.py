"""Settings of the API (prefix ``CITYWATCH_API_``), loaded once at the composition root (``citywatch``).

Limits are CHOICE: sized so one request of the heaviest kind (a month of one field, a year of one rate)
stays well under the 200 ms the control room expects, and so one caller cannot hold the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYWATCH_API_", extra="forbid")

    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=0, le=65535)  # None: 8000 for `citywatch api run`, free for `run`
    # Development mode creates demo users with random passwords (written to users_file). Outside it
    # nothing is created: users and keys come from `citywatch api users add` / `keys create`.
    dev_mode: bool = False
    db_url: str | None = None  # users, tokens, API keys, audit log; default sqlite:///<var_dir>/api.db
    users_file: Path | None = None  # dev mode's demo passwords; default <var_dir>/api-users.txt
    # A shift and a half: a crew signs in once per shift (CHOICE).
    token_ttl_s: int = Field(12 * 3600, gt=0)

    # History: one field of one device, downsampled to at most max_points windows.
    history_max_range_days: float = Field(31.0, gt=0)
    history_default_range_h: float = Field(24.0, gt=0)
    history_max_points: int = Field(2000, ge=1)
    history_default_points: int = Field(500, ge=1)
    # Rates: sums of the KPI counts; a year and a bit covers the monthly bulletins of a year.
    rates_max_range_days: float = Field(400.0, gt=0)
    rates_default_range_days: float = Field(7.0, gt=0)
    rates_max_points: int = Field(1000, ge=1)
    rates_max_series: int = Field(500, ge=1)  # scope ids at once (every road of a big city is more)
    # Lists (assets, alerts, audit): a page at most this long.
    page_max: int = Field(1000, ge=1)
    # Live state: the last reading is looked for this far back; open findings this far back.
    live_lookback_days: float = Field(7.0, gt=0)
    findings_lookback_days: float = Field(30.0, gt=0)
    live_max_devices: int = Field(1000, ge=1)  # lamps of one circuit shown at once
    import_max_bytes: int = Field(512 * 1024 * 1024, ge=1)

    # Rate limits: failed sign-ins per name or address, and requests per caller (0: unlimited).
    login_max_failures: int = Field(5, ge=1)
    login_window_s: float = Field(900.0, gt=0)
    requests_per_s: float = Field(50.0, ge=0)
    request_burst: int = Field(200, ge=1)

    # Live feed (server-sent events): polled from the stores, so it works across processes.
    feed_max_clients: int = Field(200, ge=1)
    feed_max_s: float = Field(3600.0, gt=0)  # a connection ends after this; EventSource reconnects
    feed_poll_s: float = Field(1.0, gt=0)
    feed_rate_poll_s: float = Field(15.0, gt=0)
    feed_heartbeat_s: float = Field(15.0, gt=0)

    # Fault map (api.fault_map): asset positions kept in memory, reloaded this often (a registry edit
    # shows within it); the live alerts re-read when the store moved, checked at most this often; cells
    # about map_cell_px screen pixels wide, at most map_max_cells in a box; a cell with fewer faults
    # than map_min_cluster sends them one by one.
    map_positions_refresh_s: float = Field(300.0, gt=0)
    map_faults_check_s: float = Field(2.0, ge=0)
    map_cell_px: int = Field(64, ge=8, le=1024)
    map_max_cells: int = Field(4096, ge=1, le=1_000_000)
    map_min_cluster: int = Field(2, ge=1)

    # CORS is off unless origins are listed (the pages are served by this app, same origin).
    cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> Self:
        if self.history_default_points > self.history_max_points:
            raise ValueError("history_default_points must not exceed history_max_points")
        if self.history_default_range_h > self.history_max_range_days * 24:
            raise ValueError("history_default_range_h must not exceed history_max_range_days")
        if self.rates_default_range_days > self.rates_max_range_days:
            raise ValueError("rates_default_range_days must not exceed rates_max_range_days")
        return self

    def sqlalchemy_url(self, var_dir: Path) -> str:
        return self.db_url or f"sqlite:///{var_dir / 'api.db'}"

    def users_path(self, var_dir: Path) -> Path:
        return self.users_file or var_dir / "api-users.txt"
