"""The city's alert rules as one TOML file: severity classes and deadlines, the working-day calendar, and the
planned works (maintenance windows) operators add while the service runs.

    [severity]                       # analytics.alerts.severity.SeverityConfig.from_mapping
    rules = { cabinet_door = "ordinary" }
    deadlines = { serious = { working_days = 3 } }

    [calendar]                       # analytics.alerts.severity.WorkCalendar.from_mapping
    timezone = "Asia/Shanghai"
    holidays = ["2026-10-01", "2026-10-02"]
    makeup_days = ["2026-09-27"]

    [policy]                         # analytics.alerts.policy.PolicyConfig, times in minutes
    auto_resolve_after_min = 10
    reopen_grace_min = 1440
    ack_timeout_min = { emergency = 15, serious = 120, ordinary = 480 }
    deadline_escalation = [0.8, 1.0]

    [[maintenance]]                  # analytics.alerts.policy.MaintenanceWindow
    scope_kind = "road"              # road, circuit, grid_cell, district, gateway or a device kind
    scope_id = "Luoyu Road"
    start = 2026-11-24T22:00:00+08:00
    end = 2026-11-25T05:00:00+08:00
    reason = "cable replacement"

Pure: text in, values out (the service reads the file, and reads it again when it changes).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics.alerts import AlertConfigError
from analytics.alerts.model import Severity
from analytics.alerts.policy import MaintenanceWindow, PolicyConfig
from analytics.alerts.severity import SeverityConfig, WorkCalendar


@dataclass(frozen=True, slots=True)
class CityAlertRules:
    severity: SeverityConfig = field(default_factory=SeverityConfig)
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    maintenance: tuple[MaintenanceWindow, ...] = ()


_MINUTES = ("auto_resolve_after", "reopen_grace", "verify_resolve", "flap_window")
_PER_SEVERITY = ("ack_timeout", "group_wait")


def _policy(data: Mapping[str, Any]) -> PolicyConfig:
    """PolicyConfig from ``[policy]``: durations in minutes (``*_min``), the rest as named."""
    allowed = {f"{n}_min" for n in (*_MINUTES, *_PER_SEVERITY)} | {"flap_max_reopens", "deadline_escalation"}
    unknown = set(data) - allowed
    if unknown:
        raise AlertConfigError(f"policy: unknown keys {sorted(unknown)} (known: {sorted(allowed)})")
    values: dict[str, Any] = {}
    try:
        for name in _MINUTES:
            if f"{name}_min" in data:
                values[f"{name}_ms"] = round(float(data[f"{name}_min"]) * 60_000)
        for name in _PER_SEVERITY:
            if f"{name}_min" in data:
                table = {Severity(k): round(float(v) * 60_000) for k, v in data[f"{name}_min"].items()}
                values[f"{name}_ms"] = {**getattr(PolicyConfig(), f"{name}_ms"), **table}
        if "flap_max_reopens" in data:
            values["flap_max_reopens"] = int(data["flap_max_reopens"])
        if "deadline_escalation" in data:
            first, second = (float(x) for x in data["deadline_escalation"])
            values["deadline_escalation"] = (first, second)
    except (TypeError, ValueError, AttributeError) as exc:
        raise AlertConfigError(f"policy: {exc}") from None
    return PolicyConfig(**values)


def _ms(where: str, value: object) -> int:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise AlertConfigError(f"{where}: {value!r} is not an RFC 3339 time") from None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise AlertConfigError(f"{where}: a time with its UTC offset, e.g. 2026-11-24T22:00:00+08:00")
    return round(value.timestamp() * 1000)


def _window(i: int, raw: object) -> MaintenanceWindow:
    where = f"maintenance[{i}]"
    if not isinstance(raw, Mapping):
        raise AlertConfigError(f"{where}: a table")
    unknown = set(raw) - {"scope_kind", "scope_id", "start", "end", "reason"}
    if unknown:
        raise AlertConfigError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        return MaintenanceWindow(
            scope_kind=str(raw["scope_kind"]),
            scope_id=str(raw["scope_id"]),
            start_ms=_ms(f"{where}.start", raw["start"]),
            end_ms=_ms(f"{where}.end", raw["end"]),
            reason=str(raw.get("reason", "")),
        )
    except KeyError as exc:
        raise AlertConfigError(f"{where}: {exc.args[0]} is missing") from None


def rules_from_mapping(data: Mapping[str, Any]) -> CityAlertRules:
    unknown = set(data) - {"severity", "calendar", "policy", "maintenance"}
    if unknown:
        raise AlertConfigError(f"alert rules: unknown sections {sorted(unknown)}")
    windows = data.get("maintenance", [])
    if not isinstance(windows, list):
        raise AlertConfigError("maintenance: a list of [[maintenance]] tables")
    return CityAlertRules(
        severity=SeverityConfig.from_mapping(data.get("severity", {})),
        calendar=WorkCalendar.from_mapping(data.get("calendar", {})),
        policy=_policy(data.get("policy", {})),
        maintenance=tuple(_window(i, w) for i, w in enumerate(windows)),
    )


def rules_from_text(text: str) -> CityAlertRules:
    try:
        return rules_from_mapping(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise AlertConfigError(f"alert rules file: {exc}") from exc
