"""The evaluation loop's pure core: readings in, findings and KPI tables out.

``Engine.ingest(batches)`` orders each batch into rounds (``state.order_rounds``), lets every detector
that watches the kind ``observe`` a round before it is stored (so it still sees the previous values:
switch counter deltas, temperature rise per interval, consecutive low readings), then stores it.

``Engine.tick(now_ms)`` evaluates: the lamp schedule for ``now``, then every detector in order, then the
rates. Detectors run in the order given; a detector that explains many devices at once (a dead gateway,
a circuit outage) marks them in ``ctx.suppressed`` so later detectors do not raise one finding per
device. The ``FindingBook`` turns the conditions into events. The engine holds no clock: the adapter
passes ``now_ms`` (wall time live, the readings' own time in a replay).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analytics.findings import Conditions, FindingBook, FindingEvent, RuleInfo
from analytics.state import Batch, LiveState, order_rounds
from analytics.topology import Topology
from devices.kinds import DeviceKind

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LampSchedule:
    """What the switching schedule says of every lamp at one instant (arrays over lamp numbers)."""

    due: BoolArray  # required ON now: night by the astronomical clock, not off under a plan or outage
    daytime: BoolArray  # sun up, past the switching grace margins: a burning lamp here is day burning
    dim: npt.NDArray[np.float32]  # dim level (0-100) the plan asks for where due, 0 elsewhere
    planned_off: BoolArray  # night, but off under a part-night plan or an announced planned outage


class ScheduleSource(Protocol):
    def at(self, now_ms: int) -> LampSchedule: ...


class Detector(Protocol):
    """A family of rules. ``observe`` sees each round before it is stored; ``evaluate`` reports every rule's
    full active set."""

    @property
    def kinds(self) -> frozenset[DeviceKind]: ...

    @property
    def rules(self) -> Sequence[RuleInfo]: ...

    def observe(self, batch: Batch, state: LiveState) -> None: ...

    def evaluate(self, ctx: TickContext) -> list[Conditions]: ...

    @property
    def nbytes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class KpiTable:
    """One KPI measurement for many scopes, as columns: ``scope_ids[i]`` has ``fields[name][i]``."""

    # "kpi" (continuous), "kpi_check" (at each night check time), "kpi_night" (the night's minimum and mean),
    # or a detector's record series ("bin_collection", "bin_forecast", "bridge_modal")
    measurement: str
    scope: str  # road, road_class, grid_cell, district, city; or a subject kind for records
    scope_ids: tuple[str, ...]
    fields: Mapping[str, FloatArray]  # NaN: not defined (no lamp due in the scope)
    ts_ms: int


@dataclass(slots=True)
class TickContext:
    now_ms: int
    topology: Topology
    state: LiveState
    lamps: LampSchedule
    book: FindingBook  # findings open before this tick (read-only for detectors)
    suppressed: dict[DeviceKind, BoolArray] = field(default_factory=dict)
    records: list[KpiTable] = field(default_factory=list)  # events worth a series (a bin emptied, a forecast)

    def suppressed_mask(self, kind: DeviceKind) -> BoolArray:
        """The devices of ``kind`` already explained by a wider finding this tick (writable)."""
        mask = self.suppressed.get(kind)
        if mask is None:
            mask = self.suppressed[kind] = np.zeros(self.state[kind].n, dtype=np.bool_)
        return mask


class RateKeeper(Protocol):
    """Rates from state, schedule and open findings; shortfalls below target come back as conditions."""

    @property
    def rules(self) -> Sequence[RuleInfo]: ...

    def evaluate(self, ctx: TickContext) -> tuple[list[KpiTable], list[Conditions]]: ...


@dataclass(frozen=True, slots=True)
class TickResult:
    now_ms: int
    events: tuple[FindingEvent, ...]
    kpis: tuple[KpiTable, ...]


@dataclass(slots=True)
class IngestCounts:
    accepted: int = 0
    stale: int = 0  # duplicates and readings older than the stored state


class Engine:
    """Live state, detectors, rates and the finding book of one partition."""

    def __init__(
        self,
        topology: Topology,
        detectors: Sequence[Detector],
        schedule: ScheduleSource,
        rates: RateKeeper | None = None,
    ) -> None:
        self.topology = topology
        self.state = LiveState(topology)
        self.detectors = tuple(detectors)
        self.schedule = schedule
        self.rates = rates
        catalogue: dict[str, RuleInfo] = {}
        for source in (*self.detectors, *((rates,) if rates is not None else ())):
            for info in source.rules:
                catalogue[info.rule] = info
        self.rule_catalogue = catalogue
        self.book = FindingBook(catalogue, topology)
        self._watchers: dict[DeviceKind, tuple[Detector, ...]] = {
            kind: tuple(d for d in self.detectors if kind in d.kinds) for kind in DeviceKind
        }
        self.counts = IngestCounts()
        self.last_schedule: LampSchedule | None = None

    def ingest(self, batches: Iterable[Batch]) -> IngestCounts:
        counts = IngestCounts()
        for batch in batches:
            kind_state = self.state[batch.kind]
            rounds, stale = order_rounds(batch, kind_state.last_ts)
            counts.stale += stale
            for part in rounds:
                for detector in self._watchers[batch.kind]:
                    detector.observe(part, self.state)
                kind_state.apply(part)
                counts.accepted += len(part)
        self.counts.accepted += counts.accepted
        self.counts.stale += counts.stale
        return counts

    def tick(self, now_ms: int) -> TickResult:
        lamps = self.schedule.at(now_ms)
        self.last_schedule = lamps
        ctx = TickContext(now_ms, self.topology, self.state, lamps, self.book)
        conditions: list[Conditions] = []
        for detector in self.detectors:
            conditions.extend(detector.evaluate(ctx))
        events = self.book.update(now_ms, conditions)
        kpis: list[KpiTable] = list(ctx.records)
        if self.rates is not None:
            rates, shortfalls = self.rates.evaluate(ctx)
            kpis.extend(rates)
            events.extend(self.book.update(now_ms, shortfalls))
        return TickResult(now_ms, tuple(events), tuple(kpis))

    @property
    def nbytes(self) -> int:
        """Memory of the per-device state: readings, detectors' own arrays, topology."""
        extra = sum(getattr(part, "nbytes", 0) for part in (self.schedule, self.rates))
        return self.state.nbytes + sum(d.nbytes for d in self.detectors) + self.topology.nbytes + extra
