"""Drainage pump stations and the flood points they serve.

A station's wet well fills with dry-weather flow plus runoff from its catchment (rain, lagged ~20 min),
sized so a 50 mm/h storm matches the station's pump capacity. Pumps run in a rotating lead order: the
lead (duty) pump starts at the start level, each further pump 0.4 m higher, all stop at the stop level,
and the lead moves on after each cycle. A flood point's water depth grows with rain above what its road
drains and falls as it drains away, slowly while its station's well is surcharged.

Faults: a station that fails to start keeps its lead pump off at the start level (the next pump starts
0.4 m higher); a pump with an overcurrent fault draws 1.2-1.5 × its rated current whenever it runs (a
healthy one ~0.9 ×).

Operators' commands put single pumps in hand mode (``Drainage.hand``, see ``firmware_sim.manual``): a pump
started by hand runs whatever the level (down to a dry well), one stopped by hand stays off, until the
hand mode ends.
"""

from __future__ import annotations

import math

import numpy as np

from firmware_sim.city import BoolArray, City, FloatArray
from firmware_sim.faults import FaultMasks
from firmware_sim.manual import PumpControl
from firmware_sim.weather import DAY_S, Climate, Rain

SUBSTEP_S = 120.0  # the wet well moves ~1/6 of start-to-stop per substep at most
STANDBY_STEP_M = 0.4  # each further pump in the lead order starts this much above the start level
DRAIN_MINUTES = 12.0  # one pump empties the well from start to stop level in this long, with no inflow
DESIGN_STORM_MM_H = 50.0
RUNOFF_LAG_S = 1200.0
BEARING_LAG_S = 1800.0
SURCHARGE_M = 0.3  # a well this close to overflow backs water up into the streets

Columns = dict[str, np.ndarray]


class Drainage:
    """Pump station and flood gauge readings at one tick."""

    def __init__(self, city: City, rng: np.random.Generator, climate: Climate, rain: Rain) -> None:
        st, gauges = city.stations, city.gauges
        n = len(st)
        self.city, self.climate, self.rain = city, climate, rain
        self.pumps = st.pumps.astype(np.int64)
        self.slots = int(self.pumps.max()) if n else 1
        capacity = np.where(np.isnan(st.capacity), 1000.0 * self.pumps, st.capacity)
        self.pump_flow = capacity / self.pumps
        span = np.maximum(st.start_level_m - st.stop_level_m, 0.3)
        self.area = self.pump_flow * (DRAIN_MINUTES / 60.0) / span
        self.runoff = capacity / DESIGN_STORM_MM_H  # m³/h per mm/h of rain
        self.rain_scale = rng.uniform(0.8, 1.2, n)
        self.vibration = rng.uniform(1.2, 2.2, (n, self.slots))
        self.bearing_rise = rng.uniform(20.0, 30.0, (n, self.slots))
        self.valid = np.arange(self.slots)[None, :] < self.pumps[:, None]
        self.level = rng.uniform(st.stop_level_m, st.start_level_m)
        self.running = np.zeros((n, self.slots), dtype=np.bool_)
        self.lead = np.zeros(n, dtype=np.int64)
        self.starts = rng.integers(100, 3000, (n, self.slots)).astype(np.int64)
        self.bearing = np.full((n, self.slots), climate.air_c(0.0))
        self.rain_flow = np.zeros(n)
        self.inflow = np.zeros(n)
        self.g_station = gauges.station.astype(np.int64)
        self.g_scale = rng.uniform(0.7, 1.3, len(gauges))
        self.g_threshold = rng.uniform(8.0, 20.0, len(gauges))  # mm/h the road drains without ponding
        self.g_gain = rng.uniform(0.8, 2.0, len(gauges))  # cm/h of depth per mm/h of excess rain
        self.g_battery = (rng.uniform(180, 720, len(gauges)), rng.random(len(gauges)))
        self.depth = np.zeros(len(gauges))
        self._bearing_ready = False
        self.hand = PumpControl(n, self.slots)  # operators' commands; draws nothing from the seed

    def _control(self, no_start: BoolArray, t: float) -> None:
        st = self.city.stations
        hand_run, hand_stop = self.hand.masks(t)
        rank = (np.arange(self.slots)[None, :] - self.lead[:, None]) % self.pumps[:, None]
        threshold = np.minimum(
            st.start_level_m[:, None] + STANDBY_STEP_M * rank, st.overflow_level_m[:, None] - 0.1
        )
        blocked = (no_start[:, None] & (rank == 0)) | hand_stop
        starting = self.valid & ~self.running & ((self.level[:, None] >= threshold) | hand_run) & ~blocked
        self.running |= starting
        self.starts += starting
        was_running = self.running.any(axis=1)
        self.running &= ~(self.level <= st.stop_level_m)[:, None] | hand_run
        self.running &= ~hand_stop
        cycle_over = was_running & ~self.running.any(axis=1)
        self.lead = np.where(cycle_over, (self.lead + 1) % self.pumps, self.lead)

    def _substep(self, t: float, h: float, faults: FaultMasks, ambient: float) -> float:
        st = self.city.stations
        rain = self.rain.intensity(t)
        self.rain_flow += (rain * self.rain_scale * self.runoff - self.rain_flow) * (
            1 - math.exp(-h / RUNOFF_LAG_S)
        )
        dry = 0.15 * self.pump_flow * (1.0 + 0.3 * self.climate.daily_wave(t))
        self.inflow = dry + self.rain_flow
        outflow = self.running.sum(axis=1) * self.pump_flow * 0.95
        self.level += (self.inflow - outflow) * (h / 3600.0) / self.area
        self.level = np.clip(self.level, 0.05, st.overflow_level_m + SURCHARGE_M)
        self._control(faults.station_no_start, t)  # the PLC acts on the level it now sees
        target = ambient + self.bearing_rise * self.running
        self.bearing += (target - self.bearing) * (1 - math.exp(-h / BEARING_LAG_S))
        surcharged = self.level >= st.overflow_level_m - SURCHARGE_M
        drain = np.where(
            self.g_station >= 0, np.where(surcharged[np.maximum(self.g_station, 0)], 0.25, 1.0), 1.0
        )
        excess = np.maximum(rain * self.g_scale - self.g_threshold, 0.0)
        self.depth += (self.g_gain * excess - 2.0 * self.depth * drain) * (h / 3600.0)
        self.depth = np.clip(self.depth, 0.0, 200.0)
        return rain

    def step(
        self, t: float, dt_s: float, faults: FaultMasks, rng: np.random.Generator
    ) -> tuple[Columns, Columns]:
        ambient = self.climate.air_c(t)
        if not self._bearing_ready:
            self.bearing[:] = ambient
            self._bearing_ready = True
        steps = max(1, math.ceil(dt_s / SUBSTEP_S))
        rain = self.rain.intensity(t)
        for i in range(steps):
            rain = self._substep(t - dt_s + (i + 1) * dt_s / steps, dt_s / steps, faults, ambient)
        return self._station_columns(rain, faults, rng), self._gauge_columns(t, rain, rng)

    def _station_columns(self, rain: float, faults: FaultMasks, rng: np.random.Generator) -> Columns:
        n = len(self.level)
        noise = rng.standard_normal((3, n))
        pump_noise = rng.standard_normal((3, n, self.slots))
        outflow = self.running.sum(axis=1) * self.pump_flow * 0.95 * (1 + 0.02 * noise[2])
        columns: Columns = {
            "wet_well_level": np.round(np.maximum(self.level + 0.005 * noise[0], 0.0), 3),
            "inflow": np.round(np.maximum(self.inflow * (1 + 0.03 * noise[1]), 0.0), 1),
            "outflow": np.round(outflow, 1),
            "rainfall": np.round(rain * self.rain_scale, 1),
            "power_ok": np.ones(n, dtype=np.bool_),
        }
        rated = self.city.stations.rated_current_a[:, None]
        load = np.where(faults.pump_current_factor > 0, faults.pump_current_factor, 0.9)
        current = self.running * rated * (load + 0.02 * pump_noise[0])
        vibration = np.where(
            self.running, self.vibration + 0.1 * pump_noise[1], 0.05 + 0.02 * np.abs(pump_noise[1])
        )
        bearing = self.bearing + 0.2 * pump_noise[2]
        for k in range(self.slots):
            p = f"pump{k + 1}_"
            columns[p + "running"] = self.running[:, k].copy()
            columns[p + "fault"] = np.zeros(n, dtype=np.bool_)
            columns[p + "current"] = np.round(current[:, k], 1)
            columns[p + "vibration"] = np.round(np.maximum(vibration[:, k], 0.0), 2)
            columns[p + "bearing_temp"] = np.round(bearing[:, k], 1)
            columns[p + "starts"] = self.starts[:, k].copy()
        return columns

    def _gauge_columns(self, t: float, rain: float, rng: np.random.Generator) -> Columns:
        noise = rng.standard_normal(len(self.depth))
        depth = np.where(self.depth < 0.5, 0.0, np.maximum(self.depth + 0.3 * noise, 0.0))
        return {
            "water_depth": np.round(depth, 1),
            "rainfall": np.round(rain * self.g_scale, 1),
            "battery": battery(t, *self.g_battery),
        }


def battery(t: float, cycle_days: FloatArray, phase: FloatArray) -> FloatArray:
    """Charge of a primary cell replaced every ``cycle_days``: 100 % falling linearly to 5 %."""
    used = np.mod(t / DAY_S / cycle_days + phase, 1.0)
    return np.round(100.0 - 95.0 * used, 1)
