"""Feed the simulator's ticks to the analytics engine in-process (shared by the analytics benches).

The simulator numbers devices in its own tables; the analytics topology numbers them by sorted id. The
map between the two is computed once per kind with ``Table.find``.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from types import MappingProxyType

import numpy as np

from analytics.state import Batch
from analytics.topology import Topology, build_topology
from devices.assets import Asset, parse_csv
from devices.kinds import DeviceKind
from firmware_sim.city import City
from firmware_sim.inventory import write_inventory
from firmware_sim.simulation import Tick


def topology_of(city: City) -> Topology:
    """The analytics topology of a simulated city, through the registry's CSV format."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "city.csv"
        write_inventory(city, path)
        with path.open(encoding="utf-8") as lines, contextlib.closing(parse_csv(lines)) as rows:
            assets = [row for row in rows if isinstance(row, Asset)]
    return build_topology(assets)


class SimFeed:
    """Turns a Tick's frames into analytics Batches."""

    def __init__(self, city: City, topology: Topology) -> None:
        self.number: dict[DeviceKind, np.ndarray] = {}
        for kind, table in city.devices().items():
            mapped = topology.table(kind).find(table.ids)
            if np.any(mapped < 0):
                raise ValueError(
                    f"{kind}: {int(np.sum(mapped < 0))} simulated devices missing from the topology"
                )
            self.number[kind] = mapped

    def batches(self, tick: Tick) -> list[Batch]:
        out = []
        for frame in tick.frames:
            if not len(frame):
                continue
            fields = MappingProxyType(
                {name: np.asarray(col, dtype=np.float64) for name, col in frame.fields.items()}
            )
            out.append(
                Batch(frame.kind, self.number[frame.kind][frame.device], frame.ts_ms, frame.seq, fields)
            )
        return out
