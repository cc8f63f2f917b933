"""Report settings (prefix ``CITYWATCH_REPORT_``), loaded once by ``citywatch report``.

The lighting and intact targets and the city's clock default to the analytics worker's own
(``CITYWATCH_ANALYTICS_RATES__DISTRICT_TARGET``, ``..._RATES__INTACT_TARGET``,
``..._SCHEDULE__TIMEZONE``), so a report judges districts by the targets their shortfall findings use;
set them here only to report against other targets. Closure settings are a nested section
(``CITYWATCH_REPORT_CLOSURE__ON_TIME_TARGET=0.9``).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics.alerts.closure import ClosureConfig
from analytics.rates import RateConfig
from analytics.reports.model import ReportConfig
from analytics.schedule import ScheduleConfig

_DEFAULT = ReportConfig()


class ReportSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITYWATCH_REPORT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    timezone: str | None = None  # None: the analytics schedule's
    lighting_target: float | None = None  # None: the analytics rates' district target
    intact_target: float | None = None  # None: the analytics rates' intact target
    closure: ClosureConfig = Field(default_factory=ClosureConfig)
    ranking: tuple[str, ...] = _DEFAULT.ranking
    closure_groups: tuple[str, ...] = _DEFAULT.closure_groups
    overdue_lookback_days: int = _DEFAULT.overdue_lookback_days

    def config(self, rates: RateConfig, schedule: ScheduleConfig) -> ReportConfig:
        """The report's config; AlertConfigError when a value is out of range."""
        lighting, intact = self.lighting_target, self.intact_target
        return ReportConfig(
            timezone=self.timezone or schedule.timezone,
            lighting_target=rates.district_target if lighting is None else lighting,
            intact_target=rates.intact_target if intact is None else intact,
            closure=self.closure,
            ranking=self.ranking,
            closure_groups=self.closure_groups,
            overdue_lookback_days=self.overdue_lookback_days,
        )
