"""A device's status from what is known of it, and a pump station's readings by pump (pure).

Status, the worst that applies:

- ``offline``: a communication finding is open on it (its own ``offline_<kind>``, or its gateway's
  ``gateway_offline``, which the comm detector raises instead of one finding per device);
- ``fault``: any other finding is open on it;
- ``unknown``: nothing heard within the lookback (never reported, or long silent without a finding:
  the detector may not cover it);
- ``ok``: heard from, nothing open.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from devices.kinds import MAX_PUMPS


class DeviceStatus(enum.StrEnum):
    OK = "ok"
    FAULT = "fault"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


_COMM_RULES: Final = re.compile(r"offline_[a-z_]+|gateway_offline")
_PUMP_FIELD: Final = re.compile(r"pump([1-9])_([a-z_]+)")


def is_comm_rule(rule: str) -> bool:
    return _COMM_RULES.fullmatch(rule) is not None


def device_status(last_seen_ms: int | None, open_rules: Collection[str]) -> DeviceStatus:
    if any(is_comm_rule(rule) for rule in open_rules):
        return DeviceStatus.OFFLINE
    if open_rules:
        return DeviceStatus.FAULT
    if last_seen_ms is None:
        return DeviceStatus.UNKNOWN
    return DeviceStatus.OK


@dataclass(frozen=True, slots=True)
class PumpReadings:
    number: int
    values: Mapping[str, object]  # running, fault, current, vibration, bearing_temp, starts


def pumps(values: Mapping[str, object]) -> list[PumpReadings]:
    """The ``pump{n}_*`` fields of a station's latest readings, one entry per pump that reported any."""
    by_pump: dict[int, dict[str, object]] = {}
    for name, value in values.items():
        match = _PUMP_FIELD.fullmatch(name)
        if match is not None and value is not None and int(match[1]) <= MAX_PUMPS:
            by_pump.setdefault(int(match[1]), {})[match[2]] = value
    return [PumpReadings(n, by_pump[n]) for n in sorted(by_pump)]


def station_fields(values: Mapping[str, object]) -> dict[str, object]:
    """The station's own fields (everything that is not a pump's)."""
    return {k: v for k, v in values.items() if _PUMP_FIELD.fullmatch(k) is None}


def count_status(statuses: Iterable[DeviceStatus]) -> dict[str, int]:
    counts = {s.value: 0 for s in DeviceStatus}
    for status in statuses:
        counts[status.value] += 1
    return counts
