"""Streetlights and their cabinets: an astronomical clock, single-lamp controllers and circuit meters.

Lamps are on from sunset to sunrise at their own position (``devices.solar``), at dim level 100. An LED
driver draws its rated power whatever the voltage; an idle controller ~0.4 W. Supply is 220 V nominal; each
circuit sits a little above or below it and lamps further down a circuit see up to 2 % less (line drop).
Lamps are spread over the three phases of their cabinet in turn, so the cabinet's phase currents are the
sums of its lamps' currents.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from devices import solar
from devices.kinds import DeviceKind
from firmware_sim.city import BoolArray, City, FloatArray
from firmware_sim.faults import FaultMasks
from firmware_sim.weather import DAY_S

NOMINAL_V = 220.0
SAG_FACTOR = 0.86  # a sagging circuit: about 190 V, below the 198 V line-end floor (DOMAIN, Henan rule)
STANDBY_W = 0.4
CABINET_W = 12.0  # cabinet controller, meter and modem
LINE_LOSS = 1.03
NIGHT_H = 11.5

Columns = dict[str, np.ndarray]


class SolarSchedule:
    """Night masks from sunrise and sunset at each position, computed once per local day and cached."""

    def __init__(self, lat: FloatArray, lon: FloatArray, center_lon: float) -> None:
        self.lat, self.lon = lat, lon
        self.offset_s = center_lon * 240.0  # mean solar time at the centre: 4 minutes per degree
        self._days: dict[int, tuple[FloatArray, FloatArray, BoolArray]] = {}

    def night(self, t: float) -> BoolArray:
        day = math.floor((t + self.offset_s) / DAY_S)
        events = self._days.get(day)
        if events is None:
            date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
            rise, fall = solar.sun_times(self.lat, self.lon, date)
            events = (rise, fall, solar.polar_night(self.lat, self.lon, date))
            self._days = {d: e for d, e in self._days.items() if abs(d - day) <= 1}
            self._days[day] = events
        return solar.is_night(t, *events)


@dataclass(slots=True)
class _LampState:
    energy_wh: FloatArray
    burning_h: FloatArray
    switches: np.ndarray
    commanded: BoolArray | None


class Lighting:
    """Lamp and cabinet readings for all lamps and cabinets at one tick."""

    def __init__(self, city: City, rng: np.random.Generator, start: float) -> None:
        lamps, cabinets = city.lamps, city.cabinets
        n, circuits = len(lamps), len(city.circuits)
        self.city = city
        self.circuit = lamps.circuit.astype(np.int64)
        order = np.argsort(self.circuit, kind="stable")
        first = np.searchsorted(self.circuit[order], self.circuit[order])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - first
        size = np.bincount(self.circuit, minlength=circuits)
        self.phase_slot = self.circuit * 3 + rank % 3
        self.v_circuit = rng.uniform(-0.01, 0.02, circuits)
        self.v_lamp = self.v_circuit[self.circuit] - 0.02 * rank / np.maximum(size[self.circuit], 1)
        self.efficiency = rng.uniform(0.95, 1.0, n)  # drivers age; none draws more than rated
        self.residual_ma = rng.uniform(3.0, 25.0, len(cabinets))
        # Counters start where years of service left them: ~11.5 h a night, one switch-on a night.
        age_days = np.where(lamps.install_day >= 0, start / DAY_S - lamps.install_day, 5 * 365.0)
        age_h = np.round(np.maximum(age_days, 0.0) * NIGHT_H, 2)
        self.state = _LampState(
            energy_wh=np.round(age_h * lamps.rated_power_w * 0.97, 1),
            burning_h=age_h,
            switches=(age_h / NIGHT_H).astype(np.int64),
            commanded=None,
        )
        self.lamp_sky = SolarSchedule(lamps.lat, lamps.lon, city.center[1])
        self.cabinet_sky = SolarSchedule(cabinets.lat, cabinets.lon, city.center[1])

    def step(
        self, t: float, dt_s: float, faults: FaultMasks, rng: np.random.Generator, ambient_c: float
    ) -> dict[DeviceKind, Columns]:
        night = self.lamp_sky.night(t)
        lamps = self._lamps(night, dt_s, faults, rng, ambient_c)
        return {DeviceKind.LAMP: lamps, DeviceKind.CABINET: self._cabinets(t, night, lamps, faults, rng)}

    def _lamps(
        self, night: BoolArray, dt_s: float, f: FaultMasks, rng: np.random.Generator, ambient_c: float
    ) -> Columns:
        n = len(self.circuit)
        commanded = night | f.lamp_dayburn
        dead = f.circuit_theft[self.circuit]  # no supply: the cable is gone
        burning = commanded & ~f.lamp_failed & ~dead
        noise = rng.standard_normal((3, n), dtype=np.float32)
        volts = NOMINAL_V * (1.0 + self.v_lamp + 0.003 * noise[0])
        volts = np.where(f.circuit_sag[self.circuit], volts * SAG_FACTOR, volts)
        volts = np.where(dead, 0.0, volts)
        rated = self.city.lamps.rated_power_w
        watts = np.where(burning, rated * self.efficiency * (1.0 + 0.005 * noise[1]), STANDBY_W)
        watts = np.where(dead, 0.0, np.minimum(watts, rated))
        pf = np.where(burning, np.clip(0.965 + 0.01 * noise[2], 0.9, 0.995), 0.5)
        pf = np.where(dead, 0.0, pf)
        amps = np.divide(watts, volts * pf, out=np.zeros(n), where=volts * pf > 0)
        state = self.state
        state.energy_wh += watts * dt_s / 3600.0
        state.burning_h += burning * (dt_s / 3600.0)
        if state.commanded is not None:
            state.switches += commanded & ~state.commanded
        state.commanded = commanded
        return {
            "supply_voltage": np.round(volts, 1),
            "supply_current": np.round(amps, 3),
            "active_power": np.round(watts, 1),
            "power_factor": np.round(pf, 3),
            "active_energy": np.round(state.energy_wh, 1),
            "lamp_on": commanded,
            "dim_level": np.where(commanded, 100, 0),
            "burning_hours": np.round(state.burning_h, 2),
            "switch_count": state.switches.copy(),
            "controller_temp": np.round(ambient_c + 3.0 + 9.0 * burning + 0.5 * noise[0], 1),
            "lamp_failure": commanded & f.lamp_failed & ~dead,
            "relay_failure": np.zeros(n, dtype=np.bool_),
            "day_burning": commanded & ~night,
            "cycling": np.zeros(n, dtype=np.bool_),
        }

    def _cabinets(
        self, t: float, night: BoolArray, lamps: Columns, f: FaultMasks, rng: np.random.Generator
    ) -> Columns:
        cab = self.city.cabinets
        circuits, m = len(self.city.circuits), len(cab)
        lamp_on = lamps["lamp_on"] & ~f.lamp_failed  # a failed head is still switched, but draws nothing
        day_lit = np.bincount(self.circuit, weights=lamp_on & ~night, minlength=circuits)
        closed = self.cabinet_sky.night(t) | (day_lit[cab.circuit] > 0)
        phase_amps = np.bincount(self.phase_slot, weights=lamps["supply_current"], minlength=3 * circuits)
        amps = phase_amps.reshape(circuits, 3)[cab.circuit] * closed[:, None]
        watts = np.bincount(self.circuit, weights=lamps["active_power"], minlength=circuits)[cab.circuit]
        noise = rng.standard_normal((4, m), dtype=np.float32)
        base = NOMINAL_V * (1.0 + self.v_circuit[cab.circuit])
        base = np.where(f.circuit_sag[cab.circuit], base * 0.88, base)
        columns: Columns = {}
        for k in range(3):
            columns[f"voltage_l{k + 1}"] = np.round(base * (1.0 + 0.002 * noise[k]), 1)
        for k in range(3):
            columns[f"current_l{k + 1}"] = np.round(amps[:, k] + 0.01 * np.abs(noise[k]), 2)
        columns["active_power"] = np.round(watts * closed * LINE_LOSS + CABINET_W, 1)
        columns["residual_current"] = np.round(self.residual_ma * (1.0 + 0.1 * np.abs(noise[3])), 1)
        columns["contactor_closed"] = closed
        columns["door_open"] = np.zeros(m, dtype=np.bool_)
        return columns
