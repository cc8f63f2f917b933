"""Command desk settings (prefix ``CITYWATCH_COMMANDS_``), loaded once by the composition root.

The effect thresholds are a nested section (``CITYWATCH_COMMANDS_EFFECTS__LIT_FRACTION=0.3``): the frozen
``effects.EffectConfig`` with DOMAIN.md's numbers as defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.commanding.effects import EffectConfig
from api.commanding.tracker import TrackerConfig


class CommandSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITYWATCH_COMMANDS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    db_url: str | None = None  # SQLAlchemy URL (SQLite or PostgreSQL); unset: commands.db in var_dir
    client_id: str = "citywatch-commands"  # its own clean session: stable, unique per desk
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    tick_s: float = Field(0.5, gt=0, le=10)  # how often acks and readings are judged and time decides
    ack_timeout_s: float = Field(30.0, gt=0, le=3600)  # see TrackerConfig
    ack_grace_s: float = Field(5.0, ge=0, le=600)
    verify_window_s: float = Field(180.0, gt=0, le=86_400)
    default_hold_s: float = Field(3600.0, gt=0, le=7 * 86_400)
    max_devices: int = Field(5000, ge=1)
    finding_partition: str = "commands"  # the partition tag of the findings it writes
    verdict_lookback_days: float = Field(30.0, gt=0)  # how far back a restart looks for open findings
    effects: EffectConfig = Field(default_factory=EffectConfig)

    def sqlalchemy_url(self, var_dir: Path) -> str:
        return self.db_url or f"sqlite:///{var_dir / 'commands.db'}"

    def tracker_config(self) -> TrackerConfig:
        return TrackerConfig(
            ack_timeout_ms=round(self.ack_timeout_s * 1000),
            ack_grace_ms=round(self.ack_grace_s * 1000),
            verify_window_ms=round(self.verify_window_s * 1000),
            default_hold_ms=round(self.default_hold_s * 1000),
            max_devices=self.max_devices,
            effects=self.effects,
        )
