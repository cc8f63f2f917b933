"""Analytics worker settings (prefix ``CITYWATCH_ANALYTICS_``), loaded once by the composition root.

Rule thresholds are nested sections (``CITYWATCH_ANALYTICS_STREETLIGHTS__DEBOUNCE_READINGS=3``), each a
frozen config value of its rule module with DOMAIN.md's numbers as defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics.bin_rules import BinRules
from analytics.bridge_rules import BridgeRules
from analytics.comm import CommRules
from analytics.drainage_rules import DrainageRules
from analytics.lamps import LampPower
from analytics.lighting_rules import StreetlightRules
from analytics.overrides import OverrideConfig
from analytics.rates import RateConfig
from analytics.schedule import ScheduleConfig
from analytics.seasonal import EnergyAnomalyRules
from devices.assets import DISTRICT_PATTERN
from devices.kinds import DeviceKind

#: How much recent telemetry a restart replays per kind: enough for debounce and cadence learning, and for
#: the longest window a rule of the kind looks back over (a bin's stuck sensor: 3 days of hourly reports;
#: a bridge's daily means are relearned). A partition of 100k lamps replays ~1.5M lamp readings.
DEFAULT_REPLAY_S: dict[DeviceKind, int] = {
    DeviceKind.LAMP: 15 * 60,
    DeviceKind.CABINET: 15 * 60,
    DeviceKind.BRIDGE_NODE: 6 * 3600,
    DeviceKind.PUMP_STATION: 2 * 3600,
    DeviceKind.FLOOD_GAUGE: 2 * 3600,
    DeviceKind.BIN: 84 * 3600,
}


class AnalyticsSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITYWATCH_ANALYTICS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    client_id: str = "citywatch-analytics-1"
    # The devices this worker owns: a partition name (a tag on everything it writes) and its districts
    # (empty: the whole city). One worker per partition; see docs/analytics.md for splitting a city.
    partition: str = "all"
    districts: tuple[str, ...] = ()
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    tick_s: float = Field(10.0, gt=0, le=600)  # evaluate every this many wall seconds
    kpi_every_s: float = Field(60.0, gt=0)  # write KPI series this often (data time)
    # "wall": now is this machine's clock (live). "data": now is the newest device timestamp seen, for
    # replaying a simulated past faster than real time.
    clock: Literal["wall", "data"] = "wall"
    queue_max_messages: int = Field(200_000, ge=100)  # raw messages waiting for the next tick
    replay_s: dict[DeviceKind, int] = Field(default_factory=lambda: dict(DEFAULT_REPLAY_S))
    replay_step_s: int = Field(60, ge=10, le=3600)
    # A finding restored after a restart is not cleared before this much data time has passed: its rule
    # may need more readings than the replay held to see it again.
    restore_hold_s: int = Field(900, ge=0)
    findings_lookback_days: float = Field(30.0, gt=0)
    # Operators' overrides are read back this far on a restart: the longest override an operator sets.
    override_lookback_days: float = Field(30.0, gt=0)

    # Rule sections: each is its rule module's frozen config, DOMAIN.md's numbers as defaults.
    lamp_power: LampPower = Field(default_factory=LampPower)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    comm: CommRules = Field(default_factory=CommRules)
    streetlights: StreetlightRules = Field(default_factory=StreetlightRules)
    rates: RateConfig = Field(default_factory=RateConfig)
    bridges: BridgeRules = Field(default_factory=BridgeRules)
    energy: EnergyAnomalyRules = Field(default_factory=EnergyAnomalyRules)
    drainage: DrainageRules = Field(default_factory=DrainageRules)
    bins: BinRules = Field(default_factory=BinRules)
    overrides: OverrideConfig = Field(default_factory=OverrideConfig)

    @field_validator("districts")
    @classmethod
    def _slugs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for d in value:
            if not DISTRICT_PATTERN.fullmatch(d):
                raise ValueError(f"district {d!r} is not a registry district slug")
        return value
