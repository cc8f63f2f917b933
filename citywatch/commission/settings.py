"""Commissioning settings (prefix ``CITYWATCH_COMMISSION_``), loaded once by the command."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices.commissioning.config import MAX_INTERVAL_S, MIN_INTERVAL_S


class CommissionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYWATCH_COMMISSION_", extra="forbid")

    # The line. Field controllers' service ports run at 115200 8N1; a pseudo-terminal ignores it.
    baudrate: int = 115_200
    # An answer takes a few ms on the wire; a device busy writing its flash may take a few hundred.
    response_timeout_s: float = Field(1.0, gt=0)
    attempts: int = Field(3, ge=1, le=20)  # tries per request before giving up
    # A self-test tries the broker (connect and CONNACK): allow for a slow network.
    self_test_timeout_s: float = Field(10.0, gt=0)
    restart_timeout_s: float = Field(30.0, gt=0)  # until the device answers again after a restart
    # Until the first reading is stored: the device connects and reports at once, the ingest looks the
    # device up in the registry when it first sees it, then a batch interval; a slow network adds to it.
    first_reading_timeout_s: float = Field(120.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)  # how often InfluxDB is asked for the first reading
    # A device's clock may run behind the laptop's: its first reading may carry an earlier time.
    clock_slack_s: float = Field(300.0, ge=0)
    interval_s: int = Field(60, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)  # reporting interval written
    # The broker URL written into devices (what they can reach, no credentials); None: the broker
    # CityWatch uses, as found from CITYWATCH_MQTT_URL or the local broker.
    device_broker_url: str | None = None
    progress_dir: Path | None = None  # default <var>/commissioning
    neighbour_m: float = Field(150.0, ge=0)  # registering: borrow road and circuit from this near
    bus_addresses: int = Field(16, ge=1, le=247)  # --bus scans addresses 1..this
    log_lines: int = Field(10, ge=1, le=50)  # device log lines shown with an error

    def progress_path(self, var_dir: Path) -> Path:
        return self.progress_dir or var_dir / "commissioning"
