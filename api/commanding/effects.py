"""What one reading says about a command's effect: shown, contradicted, or not told. Pure.

=====================================  ==================================================================
order                                  the reading shows the effect when
=====================================  ==================================================================
lamp on at level L (switch on: 100,    ``lamp_on`` is not false, ``dim_level`` (if reported) is L, and
dim L > 0, override on at L)           ``active_power`` >= lit_fraction × rated × L / 100; below full level
                                       also <= dim_headroom × rated × L / 100 + off_floor_w
lamp off (switch off, dim 0,           ``lamp_on`` is not true and ``active_power`` <=
override off)                          max(off_floor_w, off_fraction × rated)
pump n start                           ``pump{n}_running`` is not false and ``pump{n}_current`` >=
                                       running_fraction × rated (no rating: >= min_running_a)
pump n stop                            ``pump{n}_running`` is not true and ``pump{n}_current`` <=
                                       max(stopped_floor_a, stopped_fraction × rated)
=====================================  ==================================================================

A reading without the power (or current) field tells nothing (``shown`` None); the tracker waits for one
that does. ``rated`` is the lamp's rated power (W) or one pump's rated current (A) from the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from devices.commands import Dim, Order, Override, PumpRun, Switch
from devices.contract import FieldValue


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectConfig:
    """When a reading shows a command's effect; DOMAIN.md's numbers where it has them."""

    # DOMAIN section 2 (CHOICE, as assessors count; analytics.lamps.LampPower): a lamp is lit when its power
    # is at least 30 % of what its dim level asks for. A command is confirmed by the same test the
    # lighting rate uses, so a lamp confirmed "on" also counts as lit.
    lit_fraction: float = 0.3
    # CHOICE: a dimmed LED driver draws about rated × level (a little more at low levels); a head still
    # drawing 1.5 × that has not dimmed.
    dim_headroom: float = 1.5
    # CHOICE: a switched-off controller draws its standby, 0.4 to 2 W: under 5 % of any head's rating,
    # and under 2 W for a small one.
    off_fraction: float = 0.05
    off_floor_w: float = 2.0
    default_rated_w: float = 100.0  # as analytics.lamps.LampPower, for a lamp the registry gives no rating
    # DOMAIN section 4: a running pump on load draws most of its rated current (a healthy one ~0.9 ×);
    # "current far below rated with no flow" is a dry run. 30 % of rated separates running from stopped.
    running_fraction: float = 0.3
    min_running_a: float = 1.0  # CHOICE: for a pump without a rated current in the registry
    # CHOICE: a stopped motor draws nothing; 5 % of rated (at least 0.5 A) covers a CT's zero offset.
    stopped_fraction: float = 0.05
    stopped_floor_a: float = 0.5

    def __post_init__(self) -> None:
        for name in ("lit_fraction", "off_fraction", "running_fraction", "stopped_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), not {getattr(self, name)}")
        if not self.off_fraction < self.lit_fraction:
            raise ValueError("off_fraction must be below lit_fraction: off and on would overlap")
        if not self.stopped_fraction < self.running_fraction:
            raise ValueError("stopped_fraction must be below running_fraction")
        for name in ("dim_headroom", "off_floor_w", "default_rated_w", "min_running_a", "stopped_floor_a"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class Verdict:
    shown: bool | None  # None: the reading does not tell
    observed: float = math.nan  # the power (W) or current (A) the reading has
    expected: float = math.nan  # the bound it was held to
    seen: str = ""  # what the reading showed, in words: "drew 0.4 W (on takes 30.0 W or more)"


_UNTOLD = Verdict(None)


def target_level(order: Switch | Dim | Override) -> int:
    """The dim level a lamp order asks for: 0 is off."""
    if isinstance(order, Switch):
        return 100 if order.on else 0
    return order.level


def judge(order: Order, rated: float, fields: Mapping[str, FieldValue], config: EffectConfig) -> Verdict:
    """Whether a reading (its ``fields``) taken after the command took effect shows the effect."""
    if isinstance(order, PumpRun):
        return _pump(order, rated, fields, config)
    return _lamp(target_level(order), rated, fields, config)


def _number(fields: Mapping[str, FieldValue], name: str) -> float | None:
    value = fields.get(name)
    return None if value is None or isinstance(value, bool) else float(value)


def _lamp(level: int, rated: float, fields: Mapping[str, FieldValue], config: EffectConfig) -> Verdict:
    power = _number(fields, "active_power")
    if power is None:
        return _UNTOLD
    rated_w = rated if rated > 0 else config.default_rated_w
    relay = fields.get("lamp_on")
    dim = _number(fields, "dim_level")
    if level == 0:
        ceiling = max(config.off_floor_w, config.off_fraction * rated_w)
        if relay is True:
            return Verdict(False, power, ceiling, f"reported its relay on, drawing {power:.1f} W")
        shown = power <= ceiling
        return Verdict(shown, power, ceiling, f"drew {power:.1f} W (off is {ceiling:.1f} W or less)")
    floor = config.lit_fraction * rated_w * level / 100
    if relay is False:
        return Verdict(False, power, floor, f"reported its relay off, drawing {power:.1f} W")
    if dim is not None and round(dim) != level:
        return Verdict(False, power, floor, f"reported dim level {dim:.0f} %, not {level} %")
    if power < floor:
        return Verdict(
            False, power, floor, f"drew {power:.1f} W (on at {level} % takes {floor:.1f} W or more)"
        )
    if level < 100:
        ceiling = config.dim_headroom * rated_w * level / 100 + config.off_floor_w
        if power > ceiling:
            return Verdict(
                False,
                power,
                ceiling,
                f"drew {power:.1f} W (dimmed to {level} % draws {ceiling:.1f} W or less)",
            )
    return Verdict(True, power, floor, f"drew {power:.1f} W at {level} %")


def _pump(order: PumpRun, rated: float, fields: Mapping[str, FieldValue], config: EffectConfig) -> Verdict:
    prefix = f"pump{order.pump}_"
    current = _number(fields, prefix + "current")
    if current is None:
        return _UNTOLD
    running = fields.get(prefix + "running")
    name = f"pump {order.pump}"
    if order.run:
        floor = config.running_fraction * rated if rated > 0 else config.min_running_a
        if running is False:
            return Verdict(False, current, floor, f"{name} reported stopped, drawing {current:.1f} A")
        return Verdict(
            current >= floor,
            current,
            floor,
            f"{name} drew {current:.1f} A (running takes {floor:.1f} A or more)",
        )
    ceiling = max(config.stopped_floor_a, config.stopped_fraction * rated if rated > 0 else 0.0)
    if running is True:
        return Verdict(False, current, ceiling, f"{name} reported running, drawing {current:.1f} A")
    return Verdict(
        current <= ceiling,
        current,
        ceiling,
        f"{name} drew {current:.1f} A (stopped is {ceiling:.1f} A or less)",
    )
