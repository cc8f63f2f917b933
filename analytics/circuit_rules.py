"""Lamp faults grouped by circuit: crews fix a circuit, not a lamp list (DOMAIN.md section 2).

``circuit_outage`` (cable theft or break): one finding per circuit, its lamps attached as children. It
opens when at least ``fraction`` of the circuit's due (or switched-on) lamps have lost supply (a reading
below the dead voltage: the simulator's ``zero_power`` theft) or gone silent; when the comm detector finds
the circuit's lamps silent together while their gateway is up (``silent`` theft: any time of day); or when
the cabinet's current collapses with its contactor closed and no due lamp contradicts it with a lit
reading since. It holds while at least ``clear_fraction`` of the circuit's lamps are still dead or
silent. Lamps explained by a dead gateway (the comm detector marks them before this runs) are neither
evidence nor children: a dead gateway is not a cable theft.

``circuit_over_voltage`` / ``circuit_under_voltage``: the cabinet's phases, or at least ``fraction`` of
the circuit's reporting lamps, out of range; their lamps' own voltage findings are then not raised.

Also the two small tools the streetlight and comm rules share: ``Members`` (the members of each group as
one sorted index: lamps of a circuit, devices of a gateway) and ``Debounce`` (per-device state flipped by
consecutive contrary readings). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analytics.engine import TickContext
from analytics.findings import Conditions
from analytics.state import NEVER
from analytics.topology import Topology
from devices.kinds import DeviceKind

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

LAMP = DeviceKind.LAMP
CABINET = DeviceKind.CABINET
OUTAGE_RULE = "circuit_outage"


@dataclass(frozen=True, slots=True)
class Members:
    """Every group's members as one index sorted by group: group g is ``order[starts[g]:starts[g+1]]``."""

    order: IntArray
    starts: Int64Array

    @staticmethod
    def of(group: IntArray, n_groups: int, keep: BoolArray | None = None) -> Members:
        """Members by ``group`` (per member, -1: none), only where ``keep``."""
        member = np.flatnonzero(keep) if keep is not None else np.arange(len(group))
        member = member[group[member] >= 0]
        by_group = group[member]
        order = member[np.argsort(by_group, kind="stable")].astype(np.int32)
        counts = np.bincount(by_group, minlength=n_groups)
        starts = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        return Members(order, starts)

    def sizes(self) -> Int64Array:
        return np.diff(self.starts)

    def gather(self, groups: npt.NDArray[np.integer]) -> tuple[IntArray, Int64Array]:
        """The members of ``groups``, concatenated in that order, and the segment bounds (len(groups) + 1)."""
        lo, hi = self.starts[groups], self.starts[groups + 1]
        size = hi - lo
        bounds = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum(size, out=bounds[1:])
        pos = np.arange(bounds[-1], dtype=np.int64) + np.repeat(lo - bounds[:-1], size)
        return self.order[pos], bounds

    @property
    def nbytes(self) -> int:
        return self.order.nbytes + self.starts.nbytes


def segment_sums(values: npt.ArrayLike, bounds: Int64Array) -> FloatArray:
    """Sum of ``values`` over each segment ``[bounds[i], bounds[i+1])`` (empty segments sum to 0)."""
    flat = np.asarray(values, dtype=np.float64)
    total = np.zeros(len(flat) + 1, dtype=np.float64)
    np.cumsum(flat, out=total[1:])
    return np.asarray(total[bounds[1:]] - total[bounds[:-1]], dtype=np.float64)


class Debounce:
    """Per-device on/off state: ``readings`` consecutive contrary readings flip it; a reading that is
    neither bad nor good (e.g. a lamp switched off, for lamp failure) leaves the run as it is.

    ``since`` is the first reading of the run that switched it on (whole seconds, uint32: until 2106)."""

    __slots__ = ("active", "readings", "run", "start_s")

    def __init__(self, n: int, readings: int) -> None:
        self.readings = readings
        self.active = np.zeros(n, dtype=np.bool_)
        self.run = np.zeros(n, dtype=np.int8)
        self.start_s = np.zeros(n, dtype=np.uint32)

    def update(self, device: IntArray, ts_ms: Int64Array, bad: BoolArray, good: BoolArray) -> None:
        """One reading per device (a round): ``bad`` argues for on, ``good`` for off."""
        was = self.active[device]
        run = self.run[device]
        contrary = np.where(was, good, bad)
        pending = contrary | (run > 0)
        if not pending.any():  # the common case: every reading agrees with its device's state
            return
        rows = np.flatnonzero(pending)
        device, was, run, contrary = device[rows], was[rows], run[rows], contrary[rows]
        agrees = np.where(was, bad[rows], good[rows])
        starts = contrary & (run == 0) & ~was
        self.start_s[device[starts]] = (ts_ms[rows][starts] // 1000).astype(np.uint32)
        run = np.where(contrary, run + 1, np.where(agrees, 0, run)).astype(np.int8)
        flip = run >= self.readings
        self.active[device[flip]] = ~was[flip]
        run[flip] = 0
        self.run[device] = run

    def reset(self, device: npt.NDArray[np.integer]) -> None:
        """Forget ``device``: off, no run under way (it must prove the fault anew)."""
        self.active[device] = False
        self.run[device] = 0

    def since_ms(self, device: npt.NDArray[np.integer]) -> Int64Array:
        return np.asarray(self.start_s[device], dtype=np.int64) * 1000

    @property
    def nbytes(self) -> int:
        return self.active.nbytes + self.run.nbytes + self.start_s.nbytes


class CircuitSilence(Protocol):
    """What the communication detector knows of lamps (``analytics.comm.CommDetector``)."""

    def offline_mask(self, kind: DeviceKind, now_ms: int) -> BoolArray: ...

    def silent_circuits(self, now_ms: int) -> BoolArray: ...


@dataclass(slots=True)
class LampFlags:
    """Per lamp, from its latest reading (kept by the streetlight detector's ``observe``)."""

    dead: BoolArray  # no supply: voltage below the dead voltage (or zero power where no voltage is reported)
    lit: BoolArray  # lit by ``analytics.lamps``' definition
    on: BoolArray  # commanded on


@dataclass(slots=True)
class CabinetFlags:
    """Per cabinet, from its latest reading."""

    collapse: Debounce  # contactor closed and the current under ``collapse_fraction`` of the circuit's rating
    amps: Float32Array  # the sum of its phase currents


@dataclass(frozen=True, slots=True)
class OutageResult:
    conditions: Conditions
    lamps: IntArray  # the lamps explained by an open outage (to suppress)
    cabinets: IntArray  # the outage circuits' cabinets


class CircuitOutage:
    """The ``circuit_outage`` rule over candidate circuits only: those with a dead or silent lamp, a
    collapsed cabinet, or an open outage. Thresholds come from ``StreetlightRules``."""

    def __init__(
        self,
        topology: Topology,
        members: Members,
        rated_w: Float32Array,
        *,
        fraction: float,
        clear_fraction: float,
        min_lamps: int,
        collapse_fraction: float,
        nominal_v: float,
    ) -> None:
        lamps = topology.table(LAMP)
        self.n_circuits = len(topology.circuits)
        self.circuit = lamps.circuit
        self.circuit_cabinet = topology.circuit_cabinet
        self.members = members  # in-service lamps by circuit
        self.rated_w = rated_w
        self.fraction, self.clear_fraction, self.min_lamps = fraction, clear_fraction, min_lamps
        self.collapse_fraction, self.nominal_v = collapse_fraction, nominal_v

    def _candidates(
        self, ctx: TickContext, flags: LampFlags, cabinet: CabinetFlags, offline: BoolArray | None
    ) -> IntArray:
        mark = np.zeros(self.n_circuits, dtype=np.bool_)
        for lamp_mask in (flags.dead, offline):
            if lamp_mask is not None:
                c = self.circuit[np.flatnonzero(lamp_mask)]
                mark[c[c >= 0]] = True
        cab_table_circuit = ctx.topology.table(CABINET).circuit
        c = cab_table_circuit[np.flatnonzero(cabinet.collapse.active)]
        mark[c[c >= 0]] = True
        mark[ctx.book.open_subjects(OUTAGE_RULE)] = True
        return np.flatnonzero(mark).astype(np.int32)

    def evaluate(
        self, ctx: TickContext, flags: LampFlags, cabinet: CabinetFlags, comm: CircuitSilence | None
    ) -> OutageResult:
        offline = comm.offline_mask(LAMP, ctx.now_ms) if comm is not None else None  # per lamp
        silent = comm.silent_circuits(ctx.now_ms) if comm is not None else None  # per circuit
        cands = self._candidates(ctx, flags, cabinet, offline)
        if silent is not None:
            cands = np.union1d(cands, np.flatnonzero(silent)).astype(np.int32)
        none = np.zeros(0, dtype=np.int32)
        if not len(cands):
            return OutageResult(Conditions.none(OUTAGE_RULE), none, none)
        lamp_sup = ctx.suppressed_mask(LAMP)  # a dead gateway's lamps (the comm detector ran first)
        state = ctx.state[LAMP]
        lamps, bounds = self.members.gather(cands)
        mine = ~lamp_sup[lamps]
        quiet = offline[lamps] if offline is not None else np.zeros(len(lamps), dtype=np.bool_)
        # Expected on: due by the schedule, or switched on by its controller as of a fresh reading (the dusk
        # grace margin, when the schedule judges nobody yet but a theft already shows as lamps switched on
        # without supply). A silent lamp's last "on" is stale: at dawn it would be the only lamp still on.
        due = (ctx.lamps.due[lamps] | (flags.on[lamps] & ~quiet)) & mine
        gone = (flags.dead[lamps] | quiet) & mine
        heard = mine & (state.last_ts[lamps] != NEVER)
        n_due = segment_sums(due, bounds)
        n_heard = segment_sums(heard, bounds)
        due_gone = np.divide(
            segment_sums(due & gone, bounds), n_due, out=np.zeros(len(cands)), where=n_due > 0
        )
        heard_gone = np.divide(
            segment_sums(gone & heard, bounds), n_heard, out=np.zeros(len(cands)), where=n_heard > 0
        )
        lamp_route = (n_due >= self.min_lamps) & (due_gone >= self.fraction)
        silence_route = silent[cands] if silent is not None else np.zeros(len(cands), dtype=np.bool_)
        cab_route, cab_loss, cab_since = self._cabinet_route(ctx, cands, lamps, bounds, due, flags, cabinet)
        cab = self.circuit_cabinet[cands]
        held = np.isin(cands, ctx.book.open_subjects(OUTAGE_RULE))
        hold = held & (n_heard > 0) & (heard_gone >= self.clear_fraction)
        active = lamp_route | silence_route | cab_route | hold
        if not active.any():
            return OutageResult(Conditions.none(OUTAGE_RULE), none, none)
        loss = np.maximum(np.maximum(due_gone, heard_gone), np.where(cab_route, cab_loss, 0.0))
        since = np.where(cab_route, cab_since, ctx.now_ms)
        children: dict[int, IntArray] = {}
        for i in np.flatnonzero(active).tolist():
            seg = slice(int(bounds[i]), int(bounds[i + 1]))
            children[int(cands[i])] = np.sort(lamps[seg][mine[seg]])
        pick = np.flatnonzero(active)
        conditions = Conditions(
            OUTAGE_RULE,
            cands[pick],
            100.0 * loss[pick],
            np.full(len(pick), 100.0 * self.fraction),
            since_ms=since[pick].astype(np.int64),
            children=children,
            child_subject=LAMP.value,
        )
        explained = np.concatenate([*children.values(), none]).astype(np.int32)
        cabinets = cab[pick]
        return OutageResult(conditions, explained, cabinets[cabinets >= 0].astype(np.int32))

    def _cabinet_route(
        self,
        ctx: TickContext,
        cands: IntArray,
        lamps: IntArray,
        bounds: Int64Array,
        due: BoolArray,
        flags: LampFlags,
        cabinet: CabinetFlags,
    ) -> tuple[BoolArray, FloatArray, Int64Array]:
        """Per candidate: the cabinet's current collapsed (debounced, contactor closed) below
        ``collapse_fraction`` of what its due, switched-on lamps should draw, and no due lamp lit since.
        A cabinet behind a dead gateway says nothing new."""
        if not len(cabinet.amps):
            return np.zeros(len(cands), np.bool_), np.zeros(len(cands)), np.zeros(len(cands), np.int64)
        cab = np.maximum(self.circuit_cabinet[cands], 0)
        collapsed = (self.circuit_cabinet[cands] >= 0) & cabinet.collapse.active[cab]
        collapsed &= ~ctx.suppressed_mask(CABINET)[cab]
        since_ms = cabinet.collapse.since_ms(cab)
        load = due & flags.on[lamps]
        dim = np.clip(ctx.lamps.dim[lamps], 0.0, 100.0)
        expected_a = segment_sums(np.where(load, self.rated_w[lamps] * dim / 100.0, 0.0), bounds)
        expected_a /= self.nominal_v
        amps = cabinet.amps[cab].astype(np.float64)
        lit_since = due & flags.lit[lamps]
        lit_since &= ctx.state[LAMP].last_ts[lamps] >= np.repeat(since_ms, np.diff(bounds))
        n_due = segment_sums(due, bounds)
        dark = 1.0 - np.divide(
            segment_sums(lit_since, bounds), n_due, out=np.ones(len(cands)), where=n_due > 0
        )
        route = collapsed & (expected_a > 0) & (amps < self.collapse_fraction * expected_a)
        route &= dark >= self.fraction
        loss = np.clip(1.0 - np.divide(amps, expected_a, out=np.ones(len(cands)), where=expected_a > 0), 0, 1)
        return route, loss, since_ms


@dataclass(frozen=True, slots=True)
class VoltageGroups:
    """One direction (over or under) of the voltage rules after grouping by circuit."""

    circuit: Conditions  # circuit_over_voltage / circuit_under_voltage
    lamps: IntArray  # the lamps still reported one by one (over_voltage / under_voltage)


class CircuitVoltage:
    """Groups out-of-range lamps by circuit: a circuit finding when its cabinet's phases, or at least
    ``fraction`` (and ``min_lamps``) of its reporting lamps, are out of range."""

    def __init__(
        self, topology: Topology, members: Members, *, fraction: float, min_lamps: int, dead_v: float
    ) -> None:
        self.circuit = topology.table(LAMP).circuit
        self.cabinet_circuit = topology.table(CABINET).circuit
        self.members = members  # in-service lamps by circuit
        self.fraction, self.min_lamps, self.dead_v = fraction, min_lamps, dead_v

    def group(
        self,
        ctx: TickContext,
        rule: str,
        threshold: float,
        lamps_out: IntArray,
        lamp_since: Int64Array,
        cabinets_out: IntArray,
        cabinet_since: Int64Array,
        *,
        worst: str,
    ) -> VoltageGroups:
        """``lamps_out``: eligible lamps out of range (debounced); ``cabinets_out``: cabinets out of range.
        ``worst`` is "max" (over) or "min" (under): the voltage the finding reports."""
        pick = np.maximum if worst == "max" else np.minimum
        lamp_c = self.circuit[lamps_out]
        cab_c = self.cabinet_circuit[cabinets_out]
        cab_c_ok = cab_c >= 0
        cands = np.union1d(lamp_c[lamp_c >= 0], cab_c[cab_c_ok]).astype(np.int32)
        if not len(cands):
            return VoltageGroups(Conditions.none(rule), lamps_out)
        members, bounds = self.members.gather(cands)
        state = ctx.state[LAMP]
        sup = ctx.suppressed_mask(LAMP)
        reporting = segment_sums(~sup[members] & (state.last_ts[members] != NEVER), bounds)
        pos_l = np.searchsorted(cands, lamp_c)
        has_l = lamp_c >= 0
        out_n = np.bincount(pos_l[has_l], minlength=len(cands))
        by_cabinet = np.zeros(len(cands), dtype=np.bool_)
        by_cabinet[np.searchsorted(cands, cab_c[cab_c_ok])] = True
        grouped = by_cabinet | ((out_n >= self.min_lamps) & (out_n >= self.fraction * reporting))
        if not grouped.any():
            return VoltageGroups(Conditions.none(rule), lamps_out)
        fill = -np.inf if worst == "max" else np.inf
        value = np.full(len(cands), fill)
        since = np.full(len(cands), ctx.now_ms, dtype=np.int64)
        volts = state.values["supply_voltage"][lamps_out].astype(np.float64)
        pick.at(value, pos_l[has_l], volts[has_l])
        np.minimum.at(since, pos_l[has_l], lamp_since[has_l])
        cab_pos = np.searchsorted(cands, cab_c[cab_c_ok])
        pick.at(value, cab_pos, _phase_extreme(ctx, cabinets_out[cab_c_ok], worst, self.dead_v))
        np.minimum.at(since, cab_pos, cabinet_since[cab_c_ok])
        in_group = has_l & grouped[np.minimum(pos_l, len(cands) - 1)]
        children: dict[int, IntArray] = {}
        for i in np.flatnonzero(grouped).tolist():
            children[int(cands[i])] = np.sort(lamps_out[in_group & (pos_l == i)]).astype(np.int32)
        g = np.flatnonzero(grouped)
        conditions = Conditions(
            rule,
            cands[g],
            value[g],
            np.full(len(g), threshold),
            since_ms=since[g],
            children=children,
            child_subject=LAMP.value,
        )
        return VoltageGroups(conditions, lamps_out[~in_group])


def _phase_extreme(ctx: TickContext, cabinets: IntArray, worst: str, dead_v: float) -> FloatArray:
    """The highest phase voltage, or the lowest of the live phases (a dead phase is not a sag)."""
    values = ctx.state[CABINET].values
    phases = np.stack([values[f"voltage_l{k}"][cabinets] for k in (1, 2, 3)]).astype(np.float64)
    if worst == "max":
        return np.asarray(np.fmax.reduce(phases, axis=0), dtype=np.float64)
    return np.asarray(np.fmin.reduce(np.where(phases >= dead_v, phases, np.nan), axis=0), dtype=np.float64)
