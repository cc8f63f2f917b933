"""Severity classes and repair deadlines: which faults are emergencies, and when each must be fixed.

DOMAIN.md section 2 (provincial rule, Hebei 2012): an ordinary fault within 24 h, a serious fault within
3 working days, an emergency (danger, extreme weather) acted on within 1 h. The issue adds that leakage
and flooding are emergencies. Every rule's class and every deadline is configuration (``SeverityConfig``).

Working days (``WorkCalendar``): Monday to Friday, minus public holidays, plus the make-up working days
China schedules on weekends around its long holidays (调休), in the city's time zone. "N working days
after t" is the same local clock time on the N-th working day after t's local date, so a serious fault
opened on Friday 10:00 is due on Wednesday 10:00 (Monday, Tuesday, Wednesday), and one opened on Saturday
10:00 too. A clock time that does not exist on the due day (the spring-forward gap of a DST zone) moves
forward by the gap; an ambiguous one (fall-back) takes its first occurrence. Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics.alerts import AlertConfigError
from analytics.alerts.model import Severity

_MS_PER_MIN = 60_000
_MS_PER_H = 3_600_000
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_SEARCH_DAYS = 3 * 366  # a calendar that finds no working day in three years is misconfigured

_E, _S, _O = Severity.EMERGENCY, Severity.SERIOUS, Severity.ORDINARY

# Rule -> class (CHOICE, documented in docs/alerts.md; every rule of docs/analytics.md is listed, a test
# checks). Emergency: danger to people or extreme weather (leakage, flooding, fire; the issue says
# leakage and flooding are emergencies). Serious: many assets or a whole facility out, or what an
# assessment sheet counts as a serious deduction (day burning, DOMAIN s. 2 LOCAL). Ordinary: one lamp, one
# bin, one device that stopped reporting.
DEFAULT_RULE_SEVERITY: Mapping[str, Severity] = MappingProxyType(
    {
        # comm: one device offline is ordinary; a gateway (all its devices) or a facility we watch for
        # danger (pump station, flood gauge, cabinet, bridge node) going blind is serious.
        "offline_lamp": _O,
        "offline_bin": _O,
        "offline_cabinet": _S,
        "offline_bridge_node": _S,
        "offline_pump_station": _S,
        "offline_flood_gauge": _S,
        "gateway_offline": _S,
        # streetlights: a single lamp is ordinary; a whole circuit is serious (a dark street section)
        "lamp_failure": _O,
        "day_burning": _S,  # DOMAIN s. 2: a serious deduction in assessment sheets (LOCAL)
        "lamp_cycling": _O,
        "relay_stuck": _O,
        "over_voltage": _O,
        "under_voltage": _O,
        "circuit_over_voltage": _S,
        "circuit_under_voltage": _S,
        "circuit_outage": _S,
        "leakage": _E,  # DOMAIN s. 2: "safety: emergency class" (risk of electric shock)
        "cabinet_door": _S,  # live parts open to the street
        "energy_anomaly": _O,
        # bridges: by alarm level (see DEFAULT_LEVEL_SEVERITY); the trends are slow but structural
        "bridge_crack_width": _O,
        "bridge_deflection": _O,
        "bridge_strain": _O,
        "bridge_tilt": _O,
        "bridge_vibration": _O,
        "bridge_freq_drop": _O,
        "bridge_deflection_trend": _S,
        "bridge_crack_trend": _S,
        # drainage: a station that cannot pump, or whose well overflows, floods streets
        "pump_fail_to_start": _S,
        "pump_dry_run": _S,
        "pump_overcurrent": _S,
        "pump_short_cycling": _S,
        "pump_capacity_shortfall": _E,  # DOMAIN s. 4: inflow exceeds capacity, "escalate"
        "overflow_risk": _E,
        "pump_bearing_temp": _S,
        "pump_vibration": _S,
        "pump_fault": _S,
        "station_power_loss": _E,  # no pump can run: flooding follows in a storm
        # flood points: the issue makes flooding an emergency at every depth level
        "flood_depth": _E,
        "flood_rise_rate": _E,
        "flood_duration": _E,
        "flood_station_idle": _E,
        # bins: fire is a danger; the rest is routine sanitation work
        "bin_near_full": _O,
        "bin_full": _O,
        "bin_overflow": _O,
        "bin_fire": _E,
        "bin_tipped": _O,
        "bin_missed_collection": _O,
        "bin_stuck_sensor": _O,
        # rates: a road, road class or district below its target is what the assessment counts
        "rate_lighting_road": _S,
        "rate_lighting_class": _S,
        "rate_lighting_district": _S,
        "rate_intact_district": _S,
        "rate_intact_city": _S,
    }
)

_BRIDGE_LEVELS: Mapping[int, Severity] = MappingProxyType({1: _E, 2: _S, 3: _O})
# Leveled rules: level (1 most severe) -> class, overriding the rule's own class. Bridges (DOMAIN s. 3:
# three alarm levels, 1 most severe): level 1 (red) emergency, 2 (orange) serious, 3 (yellow) ordinary.
DEFAULT_LEVEL_SEVERITY: Mapping[str, Mapping[int, Severity]] = MappingProxyType(
    dict.fromkeys(
        (
            "bridge_crack_width",
            "bridge_deflection",
            "bridge_strain",
            "bridge_tilt",
            "bridge_vibration",
            "bridge_freq_drop",
        ),
        _BRIDGE_LEVELS,
    )
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """How long a class has: elapsed minutes, or working days on the calendar (exactly one of them)."""

    minutes: int = 0
    working_days: int = 0

    def __post_init__(self) -> None:
        if self.minutes < 0 or self.working_days < 0 or (self.minutes > 0) == (self.working_days > 0):
            raise AlertConfigError(
                f"a deadline is minutes > 0 or working_days > 0, exactly one of them: {self}"
            )

    def __str__(self) -> str:
        if self.working_days:
            return f"{self.working_days} working day{'s' if self.working_days > 1 else ''}"
        if self.minutes % 60 == 0:
            return f"{self.minutes // 60} h"
        return f"{self.minutes} min"


def _default_deadlines() -> Mapping[Severity, Deadline]:
    # DOMAIN.md s. 2, provincial rule (Hebei 2012): ordinary 24 h, serious 3 working days, emergency 1 h.
    return MappingProxyType(
        {_O: Deadline(minutes=24 * 60), _S: Deadline(working_days=3), _E: Deadline(minutes=60)}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SeverityConfig:
    """Per city: each rule's class, per-level overrides, the class of a rule not listed, the deadlines."""

    rules: Mapping[str, Severity] = field(default_factory=lambda: DEFAULT_RULE_SEVERITY)
    levels: Mapping[str, Mapping[int, Severity]] = field(default_factory=lambda: DEFAULT_LEVEL_SEVERITY)
    default: Severity = Severity.ORDINARY  # CHOICE: a rule nobody classified is ordinary
    deadlines: Mapping[Severity, Deadline] = field(default_factory=_default_deadlines)

    def __post_init__(self) -> None:
        for rule, sev in self.rules.items():
            _check_severity(f"rules.{rule}", sev)
        for rule, by_level in self.levels.items():
            for level, sev in by_level.items():
                if not isinstance(level, int) or level < 0:
                    raise AlertConfigError(f"levels.{rule}: level {level!r} is not an int >= 0")
                _check_severity(f"levels.{rule}.{level}", sev)
        _check_severity("default", self.default)
        missing = [s.value for s in Severity if s not in self.deadlines]
        if missing:
            raise AlertConfigError(f"deadlines: no deadline for {', '.join(missing)}")
        for sev, deadline in self.deadlines.items():
            if not isinstance(deadline, Deadline):
                raise AlertConfigError(f"deadlines.{sev}: {deadline!r} is not a Deadline")
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))
        object.__setattr__(
            self, "levels", MappingProxyType({r: MappingProxyType(dict(m)) for r, m in self.levels.items()})
        )
        object.__setattr__(self, "deadlines", MappingProxyType(dict(self.deadlines)))

    @staticmethod
    def from_mapping(data: Mapping[str, Any]) -> SeverityConfig:
        """From a TOML-like mapping: ``rules = {leakage = "emergency"}`` (merged over the defaults),
        ``levels = {bridge_tilt = {"1" = "emergency"}}``, ``default = "ordinary"``, ``deadlines =
        {ordinary = {minutes = 1440}, serious = {working_days = 3}}``."""
        unknown = set(data) - {"rules", "levels", "default", "deadlines"}
        if unknown:
            raise AlertConfigError(f"severity: unknown keys {sorted(unknown)}")
        try:
            rules = {**DEFAULT_RULE_SEVERITY, **{r: Severity(s) for r, s in data.get("rules", {}).items()}}
            levels = {
                **DEFAULT_LEVEL_SEVERITY,
                **{
                    r: {int(lv): Severity(s) for lv, s in m.items()}
                    for r, m in data.get("levels", {}).items()
                },
            }
            deadlines = {
                **_default_deadlines(),
                **{Severity(s): Deadline(**d) for s, d in data.get("deadlines", {}).items()},
            }
            default = Severity(data.get("default", Severity.ORDINARY))
        except (ValueError, TypeError, AttributeError) as exc:
            raise AlertConfigError(f"severity: {exc}") from exc
        return SeverityConfig(rules=rules, levels=levels, default=default, deadlines=deadlines)


def _check_severity(where: str, value: object) -> None:
    if not isinstance(value, Severity):
        raise AlertConfigError(f"{where}: {value!r} is not one of {', '.join(s.value for s in Severity)}")


def weekdays(text: str) -> frozenset[int]:
    """Weekday numbers (0 Monday) from "mon-fri", "sat,sun", "mon,wed-fri" or "fri-mon" (wraps)."""
    out: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAY_NAMES or (last and last not in _DAY_NAMES):
            raise AlertConfigError(f"{text!r}: days are mon..sun, e.g. 'mon-fri' or 'sat,sun'")
        a, b = _DAY_NAMES.index(first), _DAY_NAMES.index(last or first)
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkCalendar:
    """Which local dates are working days, in the city's time zone.

    ``holidays`` are days off even on a working weekday; ``makeup_days`` are working days even on a
    weekend (China's 调休). Both are LOCAL: each year's schedule is published by the State Council; the
    city's configuration lists them (docs/alerts.md shows the 2025 ones as an example).
    """

    timezone: str = "Asia/Shanghai"  # CHOICE: the city's zone; China has one, without DST
    working_weekdays: frozenset[int] = frozenset(range(5))  # Monday (0) to Friday (4)
    holidays: frozenset[dt.date] = frozenset()
    makeup_days: frozenset[dt.date] = frozenset()
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise AlertConfigError(f"timezone {self.timezone!r} is not an IANA time zone") from exc
        object.__setattr__(self, "zone", zone)
        if not self.working_weekdays and not self.makeup_days:
            raise AlertConfigError("working_weekdays: a calendar needs working days")
        if any(not isinstance(d, int) or not 0 <= d <= 6 for d in self.working_weekdays):
            raise AlertConfigError(f"working_weekdays: {sorted(self.working_weekdays)} are not 0..6")
        for name in ("holidays", "makeup_days"):
            days = getattr(self, name)
            if any(not isinstance(d, dt.date) or isinstance(d, dt.datetime) for d in days):
                raise AlertConfigError(f"{name}: every entry must be a date")
        both = self.holidays & self.makeup_days
        if both:
            raise AlertConfigError(f"{min(both)} is both a holiday and a make-up working day")
        object.__setattr__(self, "working_weekdays", frozenset(self.working_weekdays))
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "makeup_days", frozenset(self.makeup_days))

    @staticmethod
    def from_mapping(data: Mapping[str, Any]) -> WorkCalendar:
        """From ``{timezone = "Asia/Shanghai", working_days = "mon-fri", holidays = ["2025-10-01", ...],
        makeup_days = ["2025-09-28"]}`` (dates as ISO text or dates)."""
        unknown = set(data) - {"timezone", "working_days", "holidays", "makeup_days"}
        if unknown:
            raise AlertConfigError(f"calendar: unknown keys {sorted(unknown)}")
        return WorkCalendar(
            timezone=data.get("timezone", "Asia/Shanghai"),
            working_weekdays=weekdays(data.get("working_days", "mon-fri")),
            holidays=_dates("holidays", data.get("holidays", ())),
            makeup_days=_dates("makeup_days", data.get("makeup_days", ())),
        )

    def local(self, ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, tz=self.zone)

    def local_text(self, ms: int) -> str:
        """e.g. "2026-06-22 21:04" in the city's time, for messages a crew reads."""
        return self.local(ms).strftime("%Y-%m-%d %H:%M")

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.makeup_days:
            return True
        return day.weekday() in self.working_weekdays and day not in self.holidays

    def add_working_days(self, start_ms: int, days: int) -> int:
        """The same local clock time on the ``days``-th working day after ``start_ms``'s local date."""
        if days < 0:
            raise AlertConfigError(f"working days must be >= 0, not {days}")
        start = self.local(start_ms)
        day = start.date()
        for _ in range(days):
            day = self._next_working_day(day)
        due = dt.datetime.combine(day, start.time().replace(fold=0), tzinfo=self.zone)
        # A wall time in a DST gap: fromtimestamp(timestamp()) normalises it forward by the gap.
        return round(due.timestamp() * 1000)

    def _next_working_day(self, day: dt.date) -> dt.date:
        for _ in range(_MAX_SEARCH_DAYS):
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise AlertConfigError(f"no working day within {_MAX_SEARCH_DAYS} days after {day}")


def _dates(name: str, values: Iterable[object]) -> frozenset[dt.date]:
    out: set[dt.date] = set()
    for v in values:
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            out.add(v)
            continue
        try:
            out.add(dt.date.fromisoformat(str(v)))
        except ValueError as exc:
            raise AlertConfigError(f"{name}: {v!r} is not a date (YYYY-MM-DD)") from exc
    return frozenset(out)


_RANK = {Severity.ORDINARY: 0, Severity.SERIOUS: 1, Severity.EMERGENCY: 2}


def rank(severity: Severity) -> int:
    """Ordinary 0 < serious 1 < emergency 2."""
    return _RANK[severity]


class SeverityPolicy:
    """A finding's class and its alert's deadline, from the configuration and the calendar."""

    __slots__ = ("calendar", "config")

    def __init__(self, config: SeverityConfig | None = None, calendar: WorkCalendar | None = None) -> None:
        self.config = config if config is not None else SeverityConfig()
        self.calendar = calendar if calendar is not None else WorkCalendar()

    def severity(self, rule: str, level: int = 0) -> Severity:
        by_level = self.config.levels.get(rule)
        if by_level is not None and level in by_level:
            return by_level[level]
        return self.config.rules.get(rule, self.config.default)

    def deadline_ms(self, opened_ms: int, severity: Severity) -> int:
        deadline = self.config.deadlines[severity]
        if deadline.working_days:
            return self.calendar.add_working_days(opened_ms, deadline.working_days)
        return opened_ms + deadline.minutes * _MS_PER_MIN
