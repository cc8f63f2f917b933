"""Bridge sensor nodes: interval summaries of strain, deflection, vibration and modal frequencies.

The deck's temperature follows the season and a daily cycle of ±8 °C. Modal frequencies fall as the deck
warms (about -0.11 %/°C, ~4 % over the year, as measured on the KW51 bridge) and rise steeply below a
knee near 0 °C, where bearings and asphalt stiffen (Z24). Strain and deflection carry the thermal movement
plus traffic, which peaks in the morning and evening rush hours.
"""

from __future__ import annotations

import numpy as np

from firmware_sim.city import City
from firmware_sim.faults import FaultMasks
from firmware_sim.weather import Climate, traffic, wind_m_s

DECK_DIURNAL_C = 8.0
REFERENCE_C = 20.0
FREQ_SLOPE = -0.0011  # per °C above the knee
FREQ_COLD_SLOPE = -0.006  # per °C below the knee
FREQ_KNEE_C = 0.0

Columns = dict[str, np.ndarray]


def frequency_factor(temp_c: np.ndarray) -> np.ndarray:
    """Modal frequency relative to its value at REFERENCE_C: bilinear in temperature, knee at 0 °C."""
    warm = 1.0 + FREQ_SLOPE * (np.maximum(temp_c, FREQ_KNEE_C) - REFERENCE_C)
    return np.asarray(warm + FREQ_COLD_SLOPE * np.minimum(temp_c - FREQ_KNEE_C, 0.0))


class Structures:
    """Bridge node readings at one tick."""

    def __init__(self, city: City, rng: np.random.Generator, climate: Climate) -> None:
        nodes = city.bridge_nodes
        n, bridges = len(nodes), max(len(city.bridges), 1)
        self.climate = climate
        f1 = rng.uniform(1.2, 4.0, bridges)
        modes = np.stack(
            [f1, f1 * rng.uniform(2.6, 3.2, bridges), f1 * rng.uniform(4.8, 6.0, bridges)], axis=1
        )
        bridge = np.maximum(nodes.bridge, 0)
        self.freq0 = modes[bridge] * rng.uniform(
            0.995, 1.005, (n, 3)
        )  # each node's estimate differs a little
        self.temp_offset = rng.normal(0.0, 0.7, n)
        self.strain0 = rng.uniform(-200.0, 200.0, n)
        self.deflection0 = rng.uniform(-20.0, 20.0, n)
        self.tilt0 = rng.uniform(-0.05, 0.05, n)
        # A healthy crack sits well inside its node's limit (0.20 / 0.15 mm dead-load, by environment), so
        # that even its winter opening (+0.8 %/°C below 20 °C) stays below the level-3 warning at 75 %.
        limit = np.where(np.isnan(nodes.crack_limit_mm), 0.2, nodes.crack_limit_mm)
        self.crack0 = limit * rng.uniform(0.25, 0.5, n)
        self.load = rng.uniform(0.5, 1.5, n)  # mid-span nodes feel traffic more than those at the piers
        self.wind_exposure = rng.uniform(0.9, 1.3, n)

    def step(self, t: float, faults: FaultMasks, rng: np.random.Generator) -> Columns:
        n = len(self.strain0)
        noise = rng.standard_normal((9, n))
        c = self.climate
        temp = c.seasonal_c(t) + DECK_DIURNAL_C * c.daily_wave(t - 2 * 3600.0) + self.temp_offset
        temp = temp + 0.15 * noise[0]
        load = traffic(c.local_hour(t)) * self.load
        wind = wind_m_s(t)
        strain = self.strain0 - 10.0 * (temp - REFERENCE_C) + 40.0 * load + 2.0 * noise[1]
        deflection = self.deflection0 - 0.2 * (temp - REFERENCE_C) + 4.0 * load + 0.2 * noise[2]
        columns: Columns = {
            "strain_mean": np.round(strain, 1),
            "strain_max": np.round(strain + 60.0 * load * (0.6 + 0.4 * np.abs(noise[3])), 1),
            "deflection": np.round(deflection, 2),
            "deflection_max": np.round(deflection + 10.0 * load * (0.6 + 0.4 * np.abs(noise[4])), 2),
            "accel_rms": np.round(
                np.maximum(0.003 + 0.04 * load * (1 + 0.2 * noise[5]) + 0.002 * wind, 0.001), 4
            ),
            "tilt": np.round(self.tilt0 + 0.001 * (temp - REFERENCE_C) + 0.002 * noise[6], 4),
            "crack_width": np.round(
                np.maximum(self.crack0 * (1.0 + 0.008 * (REFERENCE_C - temp)) + 0.002 * noise[7], 0.0), 3
            ),
            "temperature": np.round(temp, 2),
            "wind_speed": np.round(np.maximum(wind * self.wind_exposure + 0.5 * noise[8], 0.0), 1),
        }
        factor = frequency_factor(temp)
        jitter = 1.0 + 0.002 * rng.standard_normal((n, 3))
        freq = self.freq0 * (factor * faults.node_freq_factor)[:, None] * jitter
        for k in range(3):
            columns[f"freq_{k + 1}"] = np.round(freq[:, k], 4)
        return columns
