"""The readings of one commissioned simulated device: plausible values of its kind at a given time.

The city simulation (``physics``) models a whole city in arrays; a device brought up on a serial console
is one device on its own, so it gets a small model of its own here: a lamp follows the astronomical clock
at its position (``lighting.SolarSchedule``) and draws its rated power at night; the other kinds report
quiet, healthy values with a little noise. Counters (energy, burning hours, switches, starts) grow with
time. Pure: the caller passes the time and the random generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from devices.commissioning.config import Position
from devices.contract import FieldValue
from devices.kinds import DeviceKind
from firmware_sim.lighting import NOMINAL_V, STANDBY_W, SolarSchedule

Fields = dict[str, FieldValue]


@dataclass(slots=True)
class DeviceCounters:
    """What a device accumulates between readings."""

    energy_wh: float = 0.0
    burning_h: float = 0.0
    switches: int = 0
    was_on: bool | None = None
    last_t: float | None = None

    def elapsed_h(self, t: float) -> float:
        dt_h = 0.0 if self.last_t is None else max(0.0, t - self.last_t) / 3600
        self.last_t = t
        return dt_h


def _lamp(t: float, position: Position, c: DeviceCounters, rng: np.random.Generator) -> Fields:
    schedule = SolarSchedule(np.array([position.lat]), np.array([position.lon]), position.lon)
    on = bool(schedule.night(t)[0])
    dt_h = c.elapsed_h(t)
    volts = NOMINAL_V * (1 + rng.normal(0, 0.005))
    watts = 100.0 * (1 + rng.normal(0, 0.01)) if on else STANDBY_W
    if c.was_on is not None and on and not c.was_on:
        c.switches += 1
    c.was_on = on
    c.energy_wh += watts * dt_h
    c.burning_h += dt_h if on else 0.0
    pf = 0.96 if on else 0.5
    return {
        "supply_voltage": round(volts, 1),
        "supply_current": round(watts / (volts * pf), 3),
        "active_power": round(watts, 1),
        "power_factor": pf,
        "active_energy": round(c.energy_wh, 1),
        "lamp_on": on,
        "dim_level": 100 if on else 0,
        "burning_hours": round(c.burning_h, 3),
        "switch_count": c.switches,
        "controller_temp": round(25 + (8 if on else 0) + rng.normal(0, 0.3), 1),
        "lamp_failure": False,
        "relay_failure": False,
        "day_burning": False,
        "cycling": False,
    }


def _cabinet(t: float, position: Position, c: DeviceCounters, rng: np.random.Generator) -> Fields:
    schedule = SolarSchedule(np.array([position.lat]), np.array([position.lon]), position.lon)
    on = bool(schedule.night(t)[0])
    amps = 12.0 if on else 0.05
    volts = [round(NOMINAL_V * (1 + rng.normal(0, 0.004)), 1) for _ in range(3)]
    currents = [round(amps * (1 + rng.normal(0, 0.02)), 2) for _ in range(3)]
    return {
        **{f"voltage_l{i + 1}": v for i, v in enumerate(volts)},
        **{f"current_l{i + 1}": a for i, a in enumerate(currents)},
        "active_power": round(sum(v * a for v, a in zip(volts, currents, strict=True)) * 0.95, 1),
        "residual_current": round(abs(rng.normal(4.0, 0.5)), 2),
        "contactor_closed": on,
        "door_open": False,
    }


def _bridge(t: float, position: Position, c: DeviceCounters, rng: np.random.Generator) -> Fields:
    strain = rng.normal(120, 5)
    return {
        "strain_mean": round(strain, 1),
        "strain_max": round(strain + abs(rng.normal(30, 5)), 1),
        "deflection": round(rng.normal(4.0, 0.2), 2),
        "deflection_max": round(4.5 + abs(rng.normal(0, 0.3)), 2),
        "accel_rms": round(abs(rng.normal(0.05, 0.01)), 4),
        "tilt": round(rng.normal(0.0, 0.01), 3),
        "crack_width": round(0.08 + abs(rng.normal(0, 0.002)), 3),
        "temperature": round(rng.normal(18, 0.5), 1),
        "wind_speed": round(abs(rng.normal(3, 1)), 1),
        "freq_1": round(2.45 + rng.normal(0, 0.005), 4),
        "freq_2": round(7.8 + rng.normal(0, 0.01), 4),
        "freq_3": round(15.2 + rng.normal(0, 0.02), 4),
    }


def _pump_station(t: float, position: Position, c: DeviceCounters, rng: np.random.Generator) -> Fields:
    return {
        "wet_well_level": round(1.2 + rng.normal(0, 0.02), 3),
        "inflow": round(abs(rng.normal(180, 10)), 1),
        "outflow": 0.0,
        "rainfall": 0.0,
        "power_ok": True,
        "pump1_running": False,
        "pump1_fault": False,
        "pump1_current": 0.0,
        "pump1_vibration": round(abs(rng.normal(0.3, 0.05)), 2),
        "pump1_bearing_temp": round(rng.normal(24, 0.3), 1),
        "pump1_starts": 0,
    }


def _flood_gauge(t: float, position: Position, c: DeviceCounters, rng: np.random.Generator) -> Fields:
    return {"water_depth": 0.0, "rainfall": 0.0, "battery": round(97 - rng.uniform(0, 0.1), 1)}


def _bin(t: float, position: Position, c: DeviceCounters, rng: np.random.Generator) -> Fields:
    return {
        "distance": round(100 + rng.normal(0, 0.5), 1),
        "temperature": round(rng.normal(20, 0.3), 1),
        "tilt": round(abs(rng.normal(2, 0.2)), 1),
        "battery": round(92 - rng.uniform(0, 0.1), 1),
    }


_MODELS: dict[DeviceKind, Callable[[float, Position, DeviceCounters, np.random.Generator], Fields]] = {
    DeviceKind.LAMP: _lamp,
    DeviceKind.CABINET: _cabinet,
    DeviceKind.BRIDGE_NODE: _bridge,
    DeviceKind.PUMP_STATION: _pump_station,
    DeviceKind.FLOOD_GAUGE: _flood_gauge,
    DeviceKind.BIN: _bin,
}


def reading_fields(
    kind: DeviceKind, t: float, position: Position, counters: DeviceCounters, rng: np.random.Generator
) -> Fields:
    """The fields of one reading of a ``kind`` device at ``position`` at epoch second ``t``."""
    return _MODELS[kind](t, position, counters, rng)
