"""When a lamp counts as lit, in one place: the lighting rate and the lamp-failure rule must agree.

DOMAIN.md section 2 (CHOICE, as assessors count): a lamp is lit when it is commanded on (dim level > 0)
and its active power is at least the low-power threshold for that dim level, with no lamp-failure flag.
The threshold scales with the dim level: an LED driver at 50 % draws about half its rated power. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.state import KindState
from analytics.topology import Table

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class LampPower:
    # CHOICE: a head drawing under 30 % of what its dim level asks for is dark (a failed LED module
    # draws a few watts of driver standby; a dimmed healthy one draws close to rated × dim).
    low_power_fraction: float = 0.3
    default_rated_w: float = 100.0  # for a lamp the registry gives no rated power

    def __post_init__(self) -> None:
        if not 0.0 < self.low_power_fraction < 1.0:
            raise RuleConfigError(f"low_power_fraction must be in (0, 1), not {self.low_power_fraction}")
        if self.default_rated_w <= 0:
            raise RuleConfigError(f"default_rated_w must be > 0, not {self.default_rated_w}")

    def rated_w(self, lamps: Table) -> npt.NDArray[np.floating[Any]]:
        """Each lamp's rated power (the registry's own array when it gives every lamp one: no copy)."""
        rated = lamps.rated_power_w
        missing = np.isnan(rated)
        return np.where(missing, np.float32(self.default_rated_w), rated) if missing.any() else rated

    def low_power_w(self, rated_w: FloatArray, dim_level: npt.ArrayLike) -> FloatArray:
        """The power below which a lamp at ``dim_level`` (0-100) is dark."""
        dim = np.clip(np.asarray(dim_level, dtype=np.float64), 0.0, 100.0)
        return np.asarray(rated_w * self.low_power_fraction * dim / 100.0, dtype=np.float64)


def commanded_on(state: KindState) -> BoolArray:
    """The controller reports its relay commanded on at a dim level above 0 (NaN: unknown, so False)."""
    on = state.values["lamp_on"] > 0.5
    dim = state.values["dim_level"]
    return np.asarray(on & ~(dim <= 0.0), dtype=np.bool_)  # a missing dim level does not veto


def lit(state: KindState, lamps: Table, power: LampPower) -> BoolArray:
    """Lit by DOMAIN's definition, from each lamp's latest reading. A lamp never heard from is not lit."""
    return LitJudge(lamps, power)(state)


class LitJudge:
    """``lit`` with each lamp's full-power threshold computed once (the rates call it every tick)."""

    def __init__(self, lamps: Table, power: LampPower) -> None:
        self.full_w = (power.rated_w(lamps) * power.low_power_fraction).astype(np.float32)

    def __call__(self, state: KindState) -> BoolArray:
        v = state.values
        # Flags are stored as float16 (0, 1 or NaN); numpy's float16 arithmetic is slow, so they are read
        # by their bit pattern, and the dim level is converted once.
        dim = v["dim_level"].astype(np.float32)
        dim[np.isnan(dim)] = 100.0  # a controller without dimming reports none: full power
        bright = v["active_power"] * np.float32(100.0) >= self.full_w * dim  # NaN power compares False
        on = is_set(v["lamp_on"]) & (dim > 0.0)
        return np.asarray(bright & on & ~is_set(v["lamp_failure"]), dtype=np.bool_)


_ONE_F16 = np.float16(1.0).view(np.uint16)


def is_set(flag: npt.NDArray[np.floating[Any]]) -> BoolArray:
    """A stored flag is set (1.0); unset (0.0) and unknown (NaN) are not. Fast for float16 storage."""
    if flag.dtype == np.float16:
        return np.asarray(flag.view(np.uint16) == _ONE_F16, dtype=np.bool_)
    return np.asarray(flag > 0.5, dtype=np.bool_)
