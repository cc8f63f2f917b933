"""What operators' commands set on simulated devices: lamps switched or dimmed by hand, pumps in hand mode.

``LampControl`` lays a manual state over each lamp's schedule. A ``switch`` or ``dim`` holds until the
lamp's schedule next switches (sunset or sunrise at the lamp), as a lamp controller's manual mode does; an
``override`` holds until its end time. Then the schedule rules again. ``PumpControl`` puts single pumps of
a station in hand mode (run or stop) until an end time, then back to the station's level control.

Both hold plain arrays over the city's tables and are applied by the physics each tick; with no command
ever given they change nothing, so a run without commands is bit for bit what it was. Pure: times are
simulated epoch seconds passed in.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from firmware_sim.city import BoolArray

FULL = 100  # the level of a lamp switched on without a dim level (LwM2M 3418: 100 % is full output)
_UNTIL_SWITCH = math.inf  # "until the schedule next switches": no end time of its own
_NO_ANCHOR = np.int8(-1)  # the schedule state the hold started under is not yet known


class LampControl:
    """Manual on/off and dim level per lamp, laid over the schedule."""

    def __init__(self, lamps: int) -> None:
        self.active = np.zeros(lamps, dtype=np.bool_)
        self.on = np.zeros(lamps, dtype=np.bool_)
        self.level = np.full(lamps, FULL, dtype=np.int64)
        self.until = np.full(lamps, _UNTIL_SWITCH)
        # The schedule's state (night) when the hold took effect: the hold ends when it changes. Set at the
        # first tick after the command, when the physics knows the schedule (-1 until then).
        self.anchor = np.full(lamps, _NO_ANCHOR, dtype=np.int8)
        self.any = False

    def switch(self, lamp: int, on: bool) -> None:
        self._hold(lamp, on, FULL if on else 0, _UNTIL_SWITCH)

    def dim(self, lamp: int, level: int) -> None:
        self._hold(lamp, level > 0, level, _UNTIL_SWITCH)

    def override(self, lamp: int, on: bool, level: int, until_s: float) -> None:
        self._hold(lamp, on, level if on else 0, until_s)

    def _hold(self, lamp: int, on: bool, level: int, until_s: float) -> None:
        self.active[lamp] = True
        self.on[lamp] = on
        self.level[lamp] = level
        self.until[lamp] = until_s
        self.anchor[lamp] = _NO_ANCHOR
        self.any = True

    def apply(
        self, t: float, night: BoolArray, scheduled: BoolArray
    ) -> tuple[BoolArray, npt.NDArray[np.int64] | None]:
        """The relay command and dim level of every lamp at ``t``: the manual state where one holds, else
        ``scheduled`` at full level. The level is None while no lamp is under manual control."""
        if not self.any:
            return scheduled, None
        fresh = self.active & (self.anchor == _NO_ANCHOR)
        self.anchor[fresh] = night[fresh]
        ended = self.active & ((t >= self.until) | (np.isinf(self.until) & (self.anchor != night)))
        self.active &= ~ended
        self.anchor[ended] = _NO_ANCHOR
        if not self.active.any():
            self.any = False
            return scheduled, None
        commanded = np.where(self.active, self.on, scheduled)
        level = np.where(self.active, self.level, FULL)
        return commanded, level


class PumpControl:
    """Hand mode per pump (stations × pump slots): run or stop until an end time."""

    def __init__(self, stations: int, slots: int) -> None:
        self.run = np.zeros((stations, slots), dtype=np.bool_)
        self.stop = np.zeros((stations, slots), dtype=np.bool_)
        self.until = np.zeros((stations, slots))
        self.any = False

    def hand(self, station: int, pump: int, run: bool, until_s: float) -> None:
        """Pump ``pump`` (1-based) of ``station`` runs (or stays stopped) by hand until ``until_s``."""
        self.run[station, pump - 1] = run
        self.stop[station, pump - 1] = not run
        self.until[station, pump - 1] = until_s
        self.any = True

    def masks(self, t: float) -> tuple[BoolArray, BoolArray]:
        """(run by hand, stopped by hand) at ``t``; hand mode past its end time is released."""
        if self.any:
            ended = self.until <= t
            self.run &= ~ended
            self.stop &= ~ended
            self.any = bool(self.run.any() or self.stop.any())
        return self.run, self.stop
