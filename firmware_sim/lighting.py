"""Streetlights and their cabinets: an astronomical clock, single-lamp controllers and circuit meters.

Lamps are on from sunset to sunrise at their own position (``devices.solar``), at dim level 100. An LED
driver draws its rated power whatever the voltage; an idle controller ~0.4 W. Supply is 220 V nominal; each
circuit sits a little above or below it and lamps further down a circuit see up to 2 % less (line drop).
Lamps are spread over the three phases of their cabinet in turn, so the cabinet's phase currents are the
sums of its lamps' currents.

Faults: a failed head draws standby power while switched on; a dead circuit (cable theft) has no supply; a
sagging circuit sits near 190 V and an over-voltage one near 255 V (outside DOMAIN's 198 to 242 V); a cycling
lamp's relay opens for 30 % of each of its 10-30 cycles an hour while it is due on (the controller reports
lamp_on false then, counts each re-closing and raises its cycling flag); a stuck relay stays closed, so the
lamp burns while commanded off (lamp_on false, dim 0, power ~rated, relay_failure flag). A leaking cabinet
reports its residual current, an opened one its door contact. ``Lighting.view`` keeps what really happened
at the last tick (night, switched on, burning per lamp): the ground truth of the lighting rate.

Operators' commands (``Lighting.manual``, see ``firmware_sim.manual``) switch or dim a lamp over its
schedule; a dimmed LED driver draws its rated power times the level. The day-burning flag stays the
controller's own (its schedule or photocell lit it by day), not an operator's choice.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices import solar
from devices.kinds import DeviceKind
from firmware_sim.city import BoolArray, City, FloatArray
from firmware_sim.faults import FaultMasks
from firmware_sim.manual import LampControl
from firmware_sim.weather import DAY_S

NOMINAL_V = 220.0
SAG_FACTOR = 0.86  # a sagging circuit: about 190 V, below the 198 V line-end floor (DOMAIN, Henan rule)
OVER_FACTOR = 1.16  # an over-voltage circuit: 248-260 V at the lamps, above the 242 V ceiling (DOMAIN)
CYCLES_PER_H = (10.0, 30.0)  # a cycling lamp's relay re-closes this often
CYCLE_OFF = 0.3  # and is open for this share of each cycle
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


@dataclass(frozen=True, slots=True)
class LampView:
    """What the lamps really did at one tick (arrays over lamp numbers): the lighting rate's truth."""

    night: BoolArray  # sun down at the lamp by the astronomical clock: the lamp is due on
    switched_on: BoolArray  # the controller has the relay closed (what it reports as lamp_on)
    burning: BoolArray  # light comes out of the head


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
        # A healthy circuit's standing leakage stays under 30 % of its 30 mA RCD's rating (installation
        # practice, so that the RCD does not trip on it): 2-8 mA, and a reading a few percent either way.
        self.residual_ma = rng.uniform(2.0, 8.0, len(cabinets))
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
        # Drawn last, so that the draws above stay what they were before cycling lamps existed.
        self.cycle_s = (3600.0 / rng.uniform(*CYCLES_PER_H, n)).astype(np.float32)
        self.cycle_phase = rng.uniform(0.0, 1.0, n).astype(np.float32)
        self.view = LampView(np.zeros(n, np.bool_), np.zeros(n, np.bool_), np.zeros(n, np.bool_))
        self.manual = LampControl(n)  # operators' commands; draws nothing from the seed

    def step(
        self, t: float, dt_s: float, faults: FaultMasks, rng: np.random.Generator, ambient_c: float
    ) -> dict[DeviceKind, Columns]:
        night = self.lamp_sky.night(t)
        lamps = self._lamps(t, night, dt_s, faults, rng, ambient_c)
        return {DeviceKind.LAMP: lamps, DeviceKind.CABINET: self._cabinets(t, night, lamps, faults, rng)}

    def _cycles(
        self, t: float, dt_s: float, lamps: npt.NDArray[np.intp]
    ) -> tuple[BoolArray, npt.NDArray[np.int64]]:
        """For cycling ``lamps``: whether the relay is open at ``t``, and how often it re-closed in
        (t - dt, t]."""
        cycle = self.cycle_s[lamps].astype(np.float64)
        shifted = t / cycle + self.cycle_phase[lamps]
        open_now = np.mod(shifted, 1.0) >= 1.0 - CYCLE_OFF
        closings = np.floor(shifted) - np.floor(shifted - dt_s / cycle)
        return open_now, closings.astype(np.int64)

    def _lamps(
        self,
        t: float,
        night: BoolArray,
        dt_s: float,
        f: FaultMasks,
        rng: np.random.Generator,
        ambient_c: float,
    ) -> Columns:
        n = len(self.circuit)
        scheduled = night | f.lamp_dayburn
        commanded, level = self.manual.apply(t, night, scheduled)  # level None: every lamp at full
        cycling = f.lamp_cycling & commanded
        cyclers = np.flatnonzero(cycling)
        switched_on = commanded
        if len(cyclers):
            cycle_open, closings = self._cycles(t, dt_s, cyclers)
            switched_on = commanded.copy()
            switched_on[cyclers[cycle_open]] = False
        relay = switched_on | f.lamp_relay_stuck  # a stuck relay stays closed whatever the command
        dead = f.circuit_theft[self.circuit]  # no supply: the cable is gone
        burning = relay & ~f.lamp_failed & ~dead
        noise = rng.standard_normal((3, n), dtype=np.float32)
        volts = NOMINAL_V * (1.0 + self.v_lamp + 0.003 * noise[0])
        volts = np.where(f.circuit_sag[self.circuit], volts * SAG_FACTOR, volts)
        volts = np.where(f.circuit_over[self.circuit], volts * OVER_FACTOR, volts)
        volts = np.where(dead, 0.0, volts)
        rated = self.city.lamps.rated_power_w
        full = rated * self.efficiency * (1.0 + 0.005 * noise[1])
        watts = np.where(burning, full if level is None else full * (level / 100.0), STANDBY_W)
        watts = np.where(dead, 0.0, np.minimum(watts, rated))
        pf = np.where(burning, np.clip(0.965 + 0.01 * noise[2], 0.9, 0.995), 0.5)
        pf = np.where(dead, 0.0, pf)
        amps = np.divide(watts, volts * pf, out=np.zeros(n), where=volts * pf > 0)
        state = self.state
        state.energy_wh += watts * dt_s / 3600.0
        state.burning_h += burning * (dt_s / 3600.0)
        if state.commanded is not None:
            edges = relay & ~state.commanded
            state.switches += edges
            if len(cyclers):  # a cycling relay may re-close more than once between two readings
                state.switches[cyclers] += closings - edges[cyclers]
        state.commanded = relay
        self.view = LampView(night, switched_on, burning)
        return {
            "supply_voltage": np.round(volts, 1),
            "supply_current": np.round(amps, 3),
            "active_power": np.round(watts, 1),
            "power_factor": np.round(pf, 3),
            "active_energy": np.round(state.energy_wh, 1),
            "lamp_on": switched_on,
            "dim_level": np.where(switched_on, 100 if level is None else level, 0),
            "burning_hours": np.round(state.burning_h, 2),
            "switch_count": state.switches.copy(),
            "controller_temp": np.round(ambient_c + 3.0 + 9.0 * burning + 0.5 * noise[0], 1),
            "lamp_failure": switched_on & f.lamp_failed & ~dead,
            "relay_failure": f.lamp_relay_stuck & ~switched_on & burning,  # current flows, commanded off
            "day_burning": scheduled & ~night,
            "cycling": cycling,
        }

    def _cabinets(
        self, t: float, night: BoolArray, lamps: Columns, f: FaultMasks, rng: np.random.Generator
    ) -> Columns:
        cab = self.city.cabinets
        circuits, m = len(self.city.circuits), len(cab)
        # A failed head is still switched, but draws nothing; a stuck relay draws though switched off.
        lamp_on = (lamps["lamp_on"] | f.lamp_relay_stuck) & ~f.lamp_failed
        day_lit = np.bincount(self.circuit, weights=lamp_on & ~night, minlength=circuits)
        closed = self.cabinet_sky.night(t) | (day_lit[cab.circuit] > 0)
        phase_amps = np.bincount(self.phase_slot, weights=lamps["supply_current"], minlength=3 * circuits)
        amps = phase_amps.reshape(circuits, 3)[cab.circuit] * closed[:, None]
        watts = np.bincount(self.circuit, weights=lamps["active_power"], minlength=circuits)[cab.circuit]
        noise = rng.standard_normal((4, m), dtype=np.float32)
        base = NOMINAL_V * (1.0 + self.v_circuit[cab.circuit])
        base = np.where(f.circuit_sag[cab.circuit], base * 0.88, base)
        base = np.where(f.circuit_over[cab.circuit], base * OVER_FACTOR, base)
        columns: Columns = {}
        for k in range(3):
            columns[f"voltage_l{k + 1}"] = np.round(base * (1.0 + 0.002 * noise[k]), 1)
        for k in range(3):
            columns[f"current_l{k + 1}"] = np.round(amps[:, k] + 0.01 * np.abs(noise[k]), 2)
        columns["active_power"] = np.round(watts * closed * LINE_LOSS + CABINET_W, 1)
        residual = self.residual_ma * (1.0 + 0.1 * np.abs(noise[3]))
        leaking = f.cabinet_leak_ma > 0
        columns["residual_current"] = np.round(
            np.where(leaking, f.cabinet_leak_ma * (1.0 + 0.05 * noise[3]), residual), 1
        )
        columns["contactor_closed"] = closed
        columns["door_open"] = f.cabinet_door.copy()
        return columns
