"""Ingest worker settings (prefix ``CITYWATCH_INGEST_``), loaded once by the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices.contract import Limits
from ingest.batching import BatchPolicy


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYWATCH_INGEST_", extra="forbid")

    client_id: str = "citywatch-ingest-1"  # stable: it names the persistent session on the broker
    share_group: str = "citywatch-ingest"  # workers in one group split the stream ($share/...)
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    receive_maximum: int = Field(1000, ge=1, le=65535)  # unacknowledged messages in flight
    session_expiry_s: int = 7 * 24 * 3600  # how long the broker queues for a disconnected worker
    batch_max_lines: int = 5000
    batch_max_bytes: int = 4 * 1024 * 1024
    batch_max_age_s: float = 0.25
    # Writes in flight at once. InfluxDB takes more from two clients than one (bench/ingest.py: 13.7k vs
    # 10.2k lamp points/s on a 2-core box); each write acknowledges its own messages.
    writers: int = Field(2, ge=1, le=16)
    retry_budget_s: float = 5.0  # retry InfluxDB this long before spooling a batch
    spool_dir: Path | None = None  # default: <var>/ingest/<client_id>/spool
    spool_max_bytes: int = 10 * 1024**3
    deadletter_path: Path | None = None  # default: <var>/ingest/deadletter.db
    deadletter_max_rows: int = 100_000
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # Prometheus /metrics; None: off
    self_metrics_interval_s: float = 10.0
    # Reloading a 1M-device registry costs ~3 s of CPU; a newly commissioned device waits at most this long.
    directory_refresh_s: float = 60.0
    # A device not in the directory is looked up in the registry on its own (a device commissioned since
    # the last reload is accepted at once); one not found there is looked up again after this long.
    directory_miss_refresh_s: float = 10.0
    max_payload_bytes: int = 256 * 1024
    max_batch_readings: int = 5000
    max_future_s: int = 300
    max_age_days: float = 30.0

    def limits(self) -> Limits:
        return Limits(
            max_payload_bytes=self.max_payload_bytes,
            max_batch_readings=self.max_batch_readings,
            max_future_ms=self.max_future_s * 1000,
            max_age_ms=int(self.max_age_days * 86_400_000),
        )

    def batch_policy(self) -> BatchPolicy:
        return BatchPolicy(self.batch_max_lines, self.batch_max_bytes, self.batch_max_age_s)

    def spool_path(self, var_dir: Path) -> Path:
        return self.spool_dir or var_dir / "ingest" / self.client_id / "spool"

    def deadletter_file(self, var_dir: Path) -> Path:
        return self.deadletter_path or var_dir / "ingest" / "deadletter.db"
