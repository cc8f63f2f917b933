"""The composition of the analytics engine: which detectors, in which order, with which settings.

(Being assembled: the rule families land one by one; ``build_engine`` wires those that exist.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.engine import Engine, LampSchedule
from analytics.settings import AnalyticsSettings
from analytics.topology import Topology
from analytics.worker import GatewayStatusSink
from devices.kinds import DeviceKind


class _AlwaysNight:
    def __init__(self, n: int) -> None:
        self._view = LampSchedule(
            due=np.ones(n, np.bool_),
            daytime=np.zeros(n, np.bool_),
            dim=np.full(n, 100, np.float32),
            planned_off=np.zeros(n, np.bool_),
        )

    def at(self, now_ms: int) -> LampSchedule:
        return self._view


def build_engine(topology: Topology) -> Engine:
    return Engine(topology, [], _AlwaysNight(len(topology.table(DeviceKind.LAMP))))


@dataclass(frozen=True, slots=True)
class Assembly:
    engine: Engine
    gateway_sink: GatewayStatusSink | None


def build_assembly(topology: Topology, settings: AnalyticsSettings | None = None) -> Assembly:
    return Assembly(build_engine(topology), None)
