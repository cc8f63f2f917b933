"""The composition of the analytics engine: which detectors, in which order, with which settings.

Order matters (see ``analytics.engine``): the communication detector runs first, so devices behind a
dead gateway are explained by one gateway finding; the streetlight detector next, so a circuit outage is
one incident with its lamps attached; then the rule families that judge single devices. The rates run
after every detector, reading the findings they left open.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.bin_rules import BinDetector
from analytics.bridge_rules import BridgeDetector
from analytics.comm import CommDetector
from analytics.drainage_rules import DrainageDetector
from analytics.engine import Detector, Engine
from analytics.lighting_rules import StreetlightDetector
from analytics.rates import CityRates
from analytics.schedule import LampScheduler
from analytics.seasonal import EnergyAnomalyDetector
from analytics.settings import AnalyticsSettings
from analytics.topology import Topology


@dataclass(frozen=True, slots=True)
class Assembly:
    engine: Engine
    comm: CommDetector  # also takes the gateways' last-will status messages
    schedule: LampScheduler
    bins: BinDetector  # the collection route is asked of it


def build_assembly(topology: Topology, settings: AnalyticsSettings | None = None) -> Assembly:
    s = settings or AnalyticsSettings()
    comm = CommDetector(topology, s.comm)
    lights = StreetlightDetector(topology, s.streetlights, s.lamp_power, comm=comm)
    bins = BinDetector(topology, s.bins)
    schedule = LampScheduler(topology, s.schedule)
    detectors: list[Detector] = [
        comm,
        lights,
        EnergyAnomalyDetector(topology, s.energy),  # after the circuit rules: an outage suppresses it
        BridgeDetector(topology, s.bridges),
        DrainageDetector(topology, s.drainage),
        bins,
    ]
    rates = CityRates(topology, s.rates, s.lamp_power, comm, nights=schedule)
    return Assembly(Engine(topology, detectors, schedule, rates), comm, schedule, bins)


def build_engine(topology: Topology, settings: AnalyticsSettings | None = None) -> Engine:
    return build_assembly(topology, settings).engine
