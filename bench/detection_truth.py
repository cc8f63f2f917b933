"""What the simulator says can be seen, tick by tick, and the plan of faults for bench/detection.py.

When a fault is *observable* (tick by tick, from the simulator's own masks and astronomical clock; the
holding times are the detectors' documented defaults, ``Observability`` below):

- every device rule: the subject is in service and its readings get through (not offline on its own, its
  gateway up); a lamp also needs its circuit not to be stolen (the circuit outage explains it);
- lamp_failure: the controller has the lamp switched on (night, or a day-burning command), for 2 readings;
- day_burning: the lamp is switched on while the sun is up by more than the 15 min switching grace margin
  at both ends (the schedule's "daytime"), for 2 readings;
- lamp_cycling: the lamp is commanded on (the relay cycles only then), 2 readings;
- relay_stuck: the lamp burns while commanded off (daytime), 2 readings;
- cable_theft -> circuit_outage: at least half of the circuit's lamps are due (night) and the circuit can
  be seen: the cabinet reports (silent mode), or half of the lamps' readings get through or the cabinet
  reports (zero-power mode); a theft behind a dead gateway looks like the gateway and is not observable;
- voltage_sag / over_voltage -> circuit_under/over_voltage: the cabinet or half of the circuit's lamps
  report, no theft, not both faults at once (they cancel), 2 readings;
- device_offline -> offline_<kind>: the device would report (in service, gateway up, circuit not stolen),
  silent long enough that k reporting periods have passed since its last reading whatever its phase
  (k = 3, DOMAIN "no reading for k periods"; k periods less one tick): 2 min for lamps, 3 h for hourly
  bins; gateway_offline likewise, for gateways with at least 2 devices, with the slowest period among them
  (90 % of a bin gateway's meters are overdue only when the last of them is);
- leakage, cabinet_door, bin_fire, bin_tipped: the device reports; bin_stuck_sensor: for 3 days (the bin
  detector's stuck window); bridge_freq_drop: after a 2-day reference period, for faults that start after
  it (one inside it is learnt as normal); pump_fail_to_start: the well at or above the start level with no
  pump running, for 5 min; pump_overcurrent: the faulty pump running, for 2 min.

``TruthLog`` turns every injected fault into a ``TruthFault`` (``detection_matching``) with its runs of
observable ticks; ``KnownLamps`` keeps what the engine can know of each lamp for the lighting-rate check;
``fault_plan`` places each fault kind where it can be seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import orjson

from bench.detection_matching import Runs, TruthFault
from devices.kinds import DeviceKind
from firmware_sim.city import City
from firmware_sim.faults import CABLE_THEFT_MODES, FaultEvent, FaultType, parse_schedule
from firmware_sim.simulation import SimConfig, Simulation, Tick

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

#: The rule expected to catch each fault kind (device_offline: ``offline_<kind>``).
RULES: Mapping[FaultType, str] = MappingProxyType(
    {
        FaultType.LAMP_FAILURE: "lamp_failure",
        FaultType.DAY_BURNING: "day_burning",
        FaultType.CABLE_THEFT: "circuit_outage",
        FaultType.GATEWAY_OFFLINE: "gateway_offline",
        FaultType.VOLTAGE_SAG: "circuit_under_voltage",
        FaultType.OVER_VOLTAGE: "circuit_over_voltage",
        FaultType.LAMP_CYCLING: "lamp_cycling",
        FaultType.RELAY_STUCK: "relay_stuck",
        FaultType.LEAKAGE: "leakage",
        FaultType.CABINET_DOOR: "cabinet_door",
        FaultType.BRIDGE_FREQ_DROP: "bridge_freq_drop",
        FaultType.PUMP_FAIL_TO_START: "pump_fail_to_start",
        FaultType.PUMP_OVERCURRENT: "pump_overcurrent",
        FaultType.BIN_FIRE: "bin_fire",
        FaultType.BIN_TIPPED: "bin_tipped",
        FaultType.BIN_STUCK_SENSOR: "bin_stuck_sensor",
    }
)


def row_label(fault: FaultType, kind: str) -> str:
    return f"{fault.value}/{kind}" if fault is FaultType.DEVICE_OFFLINE else fault.value


def row_rule(fault: FaultType, kind: str) -> str:
    return f"offline_{kind}" if fault is FaultType.DEVICE_OFFLINE else RULES[fault]


@dataclass(frozen=True, slots=True, kw_only=True)
class Observability:
    """How long a fault's signal must last before a detector can call it (the detectors' defaults)."""

    interval_s: float = 60.0  # the simulator's tick: lamps, cabinets, bridges, stations report every tick
    debounce_s: float = 60.0  # 2 consecutive readings at 60 s (DOMAIN section 2, CHOICE)
    grace_s: float = 900.0  # the schedule's switching margin: neither due nor daytime within it
    offline_periods: int = 3  # DOMAIN: no reading for k reporting periods (CHOICE k = 3)
    fail_to_start_s: float = 300.0  # the drainage detector's t_start
    overcurrent_s: float = 120.0  # the drainage detector's hold for an overcurrent
    stuck_s: float = 3 * 86_400.0  # the bin detector's stuck window
    bridge_reference_s: float = 2 * 86_400.0  # the bridge detector learns its baseline this long
    slack_periods: int = 3  # a finding may open this many reporting periods after the fault ended
    warmup_s: float = 3600.0  # left out of the lighting-rate comparison
    # Rates are compared only where every lamp is due with 2 min to spare beyond the grace margin: the
    # schedule computes sunrise on a 0.01° grid, seconds away from the simulator's per-lamp clock.
    rate_margin_s: float = 900.0 + 120.0


# --- what the simulator says can be seen, tick by tick -----------------------------------------------------


class CityIndex:
    """Static relations of the simulated city that observability needs."""

    def __init__(self, city: City, config: SimConfig) -> None:
        self.city = city
        lamps = city.lamps
        n_circuits = len(city.circuits)
        self.lamp_circuit = lamps.circuit.astype(np.intp)
        self.circuit_lamps = np.maximum(np.bincount(self.lamp_circuit, minlength=n_circuits), 1)
        self.circuit_cabinet = np.full(n_circuits, -1, dtype=np.intp)
        self.circuit_cabinet[city.cabinets.circuit] = np.arange(len(city.cabinets))
        self.period_s = {kind: config.report_every_s.get(kind, config.interval_s) for kind in city.devices()}
        n_gw = len(city.gateways)
        self.gateway_devices = np.zeros(n_gw, dtype=np.int64)
        self.gateway_period_s = np.full(n_gw, config.interval_s)
        for kind, table in city.devices().items():
            mine = table.gateway[(table.gateway >= 0) & table.in_service]
            self.gateway_devices += np.bincount(mine, minlength=n_gw)
            has = np.bincount(mine, minlength=n_gw) > 0
            self.gateway_period_s = np.where(
                has, np.maximum(self.gateway_period_s, self.period_s[kind]), self.gateway_period_s
            )

    def subject_period_s(self, fault: FaultEvent, index: int) -> float:
        if fault.kind == "gateway":
            return float(self.gateway_period_s[index])
        if fault.kind == "circuit":
            return self.period_s[DeviceKind.LAMP]
        return self.period_s[DeviceKind(fault.kind)]


class TickView:
    """The simulator's truth at one tick, computed on demand."""

    def __init__(self, sim: Simulation, tick: Tick, index: CityIndex, obs: Observability) -> None:
        self.sim, self.tick, self.index, self.obs = sim, tick, index, obs
        self.masks = sim.masks
        self.lamps = sim.physics.lighting.view
        self._reachable: dict[DeviceKind, BoolArray] = {}

    @cached_property
    def gateway_up(self) -> BoolArray:
        return ~self.tick.gateway_down

    def reachable(self, kind: DeviceKind) -> BoolArray:
        """In service and its gateway up: the device would report if it were itself alive."""
        mask = self._reachable.get(kind)
        if mask is None:
            table = self.index.city.devices()[kind]
            gw = table.gateway
            up = np.where(gw >= 0, self.gateway_up[np.maximum(gw, 0)], True)
            mask = self._reachable[kind] = np.asarray(table.in_service & up)
        return mask

    def visible(self, kind: DeviceKind) -> BoolArray:
        """Its readings get through this tick (not offline, no silent theft on its circuit, gateway up)."""
        return self.reachable(kind) & ~self.tick.offline[kind]

    @cached_property
    def lamp_ok(self) -> BoolArray:
        """A lamp whose readings get through and whose circuit is not stolen."""
        return self.visible(DeviceKind.LAMP) & ~self.masks.circuit_theft[self.index.lamp_circuit]

    def _circuit_share(self, lamp_mask: BoolArray) -> npt.NDArray[np.float64]:
        counts = np.bincount(
            self.index.lamp_circuit, weights=lamp_mask, minlength=len(self.index.circuit_lamps)
        )
        return np.asarray(counts / self.index.circuit_lamps)

    @cached_property
    def cabinet_seen(self) -> BoolArray:
        """Per circuit: its cabinet reports."""
        cab = self.index.circuit_cabinet
        return np.where(cab >= 0, self.visible(DeviceKind.CABINET)[np.maximum(cab, 0)], False)

    @cached_property
    def circuit_seen(self) -> BoolArray:
        """Per circuit: the cabinet or at least half of the lamps report."""
        return self.cabinet_seen | (self._circuit_share(self.visible(DeviceKind.LAMP)) >= 0.5)

    @cached_property
    def circuit_lamps_reach(self) -> BoolArray:
        """Per circuit: at least half of its lamps would report (a zero-power theft shows through them)."""
        alive = self.reachable(DeviceKind.LAMP) & ~self.masks.offline[DeviceKind.LAMP]
        return self._circuit_share(alive) >= 0.5

    @cached_property
    def circuit_night(self) -> BoolArray:
        return self._circuit_share(self.lamps.night) >= 0.5

    @cached_property
    def lamp_daytime(self) -> BoolArray:
        """Sun up at the lamp from grace before to grace after this tick: the schedule's "daytime"."""
        sky, t, grace = self.sim.physics.lighting.lamp_sky, self.tick.t, self.obs.grace_s
        return np.asarray(~sky.night(t - grace) & ~self.lamps.night & ~sky.night(t + grace))

    @cached_property
    def deep_night(self) -> bool:
        """Every lamp in service is dark-due from the rate margin before to the margin after this tick."""
        sky, t, margin = self.sim.physics.lighting.lamp_sky, self.tick.t, self.obs.rate_margin_s
        on = self.index.city.lamps.in_service
        return bool((sky.night(t - margin)[on] & self.lamps.night[on] & sky.night(t + margin)[on]).all())

    @cached_property
    def pumps_idle(self) -> BoolArray:
        return np.asarray(~self.sim.physics.drainage.running.any(axis=1))


Observer = Callable[[TickView, IntArray, Sequence[FaultEvent]], BoolArray]


def _lamp_on(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
    return v.lamp_ok[i] & v.lamps.switched_on[i]


def _day_burning(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
    return v.lamp_ok[i] & v.lamps.switched_on[i] & v.lamp_daytime[i]


def _cycling(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
    return v.lamp_ok[i] & (v.lamps.night[i] | v.masks.lamp_dayburn[i])


def _relay_stuck(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
    return v.lamp_ok[i] & ~v.lamps.switched_on[i] & v.lamps.burning[i]


def _theft(v: TickView, i: IntArray, events: Sequence[FaultEvent]) -> BoolArray:
    silent = np.array([e.mode == "silent" for e in events], dtype=np.bool_)
    seen = np.where(silent, v.cabinet_seen[i], v.cabinet_seen[i] | v.circuit_lamps_reach[i])
    return np.asarray(v.circuit_night[i] & seen)


def _voltage(other: str) -> Observer:
    def observe(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
        masks = v.masks
        return np.asarray(v.circuit_seen[i] & ~masks.circuit_theft[i] & ~getattr(masks, other)[i])

    return observe


def _device(kind: DeviceKind) -> Observer:
    def observe(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
        return v.visible(kind)[i]

    return observe


def _device_offline(v: TickView, i: IntArray, events: Sequence[FaultEvent]) -> BoolArray:
    out = np.zeros(len(i), dtype=np.bool_)
    for kind in {e.kind for e in events}:
        rows = np.array([e.kind == kind for e in events])
        reach = v.reachable(DeviceKind(kind))
        if kind == DeviceKind.LAMP.value:  # a stolen circuit's outage explains its lamps, silent or not
            reach = reach & ~v.masks.circuit_theft[v.index.lamp_circuit]
        out[rows] = reach[i[rows]]
    return out


def _gateway(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
    return np.asarray(v.index.gateway_devices[i] >= 2)


def _bridge(v: TickView, i: IntArray, events: Sequence[FaultEvent]) -> BoolArray:
    learnt = v.sim.start + v.obs.bridge_reference_s
    after = np.array([e.start >= learnt for e in events], dtype=np.bool_)
    return v.visible(DeviceKind.BRIDGE_NODE)[i] & after & (v.tick.t >= learnt)


def _fail_to_start(v: TickView, i: IntArray, _: Sequence[FaultEvent]) -> BoolArray:
    drainage = v.sim.physics.drainage
    at_start = drainage.level[i] >= v.index.city.stations.start_level_m[i]
    return v.visible(DeviceKind.PUMP_STATION)[i] & at_start & v.pumps_idle[i]


def _overcurrent(v: TickView, i: IntArray, events: Sequence[FaultEvent]) -> BoolArray:
    pump = np.array([e.pump - 1 for e in events], dtype=np.intp)
    return v.visible(DeviceKind.PUMP_STATION)[i] & v.sim.physics.drainage.running[i, pump]


OBSERVERS: Mapping[FaultType, Observer] = MappingProxyType(
    {
        FaultType.LAMP_FAILURE: _lamp_on,
        FaultType.DAY_BURNING: _day_burning,
        FaultType.LAMP_CYCLING: _cycling,
        FaultType.RELAY_STUCK: _relay_stuck,
        FaultType.CABLE_THEFT: _theft,
        FaultType.VOLTAGE_SAG: _voltage("circuit_over"),
        FaultType.OVER_VOLTAGE: _voltage("circuit_sag"),
        FaultType.DEVICE_OFFLINE: _device_offline,
        FaultType.GATEWAY_OFFLINE: _gateway,
        FaultType.LEAKAGE: _device(DeviceKind.CABINET),
        FaultType.CABINET_DOOR: _device(DeviceKind.CABINET),
        FaultType.BRIDGE_FREQ_DROP: _bridge,
        FaultType.PUMP_FAIL_TO_START: _fail_to_start,
        FaultType.PUMP_OVERCURRENT: _overcurrent,
        FaultType.BIN_FIRE: _device(DeviceKind.BIN),
        FaultType.BIN_TIPPED: _device(DeviceKind.BIN),
        FaultType.BIN_STUCK_SENSOR: _device(DeviceKind.BIN),
    }
)


def hold_s(fault: FaultType, period_s: float, obs: Observability) -> float:
    """How long the fault's signal must last before its rule can fire."""
    if fault in (FaultType.DEVICE_OFFLINE, FaultType.GATEWAY_OFFLINE):
        # k periods without a reading, counted from the last one, up to a period before the silence began
        return obs.offline_periods * period_s - obs.interval_s
    return {
        FaultType.PUMP_FAIL_TO_START: obs.fail_to_start_s,
        FaultType.PUMP_OVERCURRENT: obs.overcurrent_s,
        FaultType.BIN_STUCK_SENSOR: obs.stuck_s,
        FaultType.LEAKAGE: 0.0,
        FaultType.CABINET_DOOR: 0.0,
        FaultType.BIN_FIRE: 0.0,
        FaultType.BIN_TIPPED: 0.0,
        FaultType.BRIDGE_FREQ_DROP: 0.0,
    }.get(fault, obs.debounce_s)


@dataclass(slots=True)
class _Tracked:
    event: FaultEvent
    index: int
    runs: Runs = field(default_factory=Runs)


class TruthLog:
    """Every injected fault and the runs of ticks in which it was observable."""

    def __init__(self, index: CityIndex, obs: Observability) -> None:
        self.index, self.obs = index, obs
        self.tracked: dict[FaultEvent, _Tracked] = {}

    def step(self, sim: Simulation, tick: Tick) -> None:
        active = sim.faults.active_targets()
        if not active:
            return
        view = TickView(sim, tick, self.index, self.obs)
        t_ms = round(tick.t * 1000)
        by_type: dict[FaultType, list[tuple[FaultEvent, int]]] = {}
        for event, number in active:
            by_type.setdefault(event.fault, []).append((event, number))
        for fault, items in by_type.items():
            events = [e for e, _ in items]
            numbers = np.array([n for _, n in items], dtype=np.intp)
            seen = OBSERVERS[fault](view, numbers, events)
            for (event, number), flag in zip(items, seen.tolist(), strict=True):
                tracked = self.tracked.get(event)
                if tracked is None:
                    tracked = self.tracked[event] = _Tracked(event, number)
                tracked.runs.step(t_ms, bool(flag))

    def truth(self) -> list[TruthFault]:
        out = []
        for tracked in self.tracked.values():
            e = tracked.event
            period = self.index.subject_period_s(e, tracked.index)
            out.append(
                TruthFault(
                    label=row_label(e.fault, e.kind),
                    rule=row_rule(e.fault, e.kind),
                    subject=e.target,
                    start_ms=round(e.start * 1000),
                    end_ms=round(e.end * 1000),
                    runs=tracked.runs.close(),
                    hold_ms=round(hold_s(e.fault, period, self.obs) * 1000),
                    slack_ms=round(self.obs.slack_periods * period * 1000),
                )
            )
        return out

    def parents(self) -> dict[str, tuple[str, ...]]:
        """Every device's gateway, and a lamp's or a cabinet's circuit: a fault there explains a finding."""
        city = self.index.city
        gateways = city.gateways.ids.tolist()
        out: dict[str, tuple[str, ...]] = {}
        for table in city.devices().values():
            circuits = getattr(table, "circuit", None)
            for i, (device, gw) in enumerate(zip(table.ids.tolist(), table.gateway.tolist(), strict=True)):
                mine = (gateways[gw],) if gw >= 0 else ()
                out[device] = mine if circuits is None else (city.circuits[circuits[i]], *mine)
        return out


# --- the plan of scheduled faults ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanRule:
    when: str  # night (20:00-03:00 local), day (09:00-15:00 local), any, late (after the bridge reference)
    hours: tuple[float, float]  # duration range


PLAN: Mapping[FaultType, PlanRule] = MappingProxyType(
    {
        FaultType.LAMP_FAILURE: PlanRule("night", (2, 30)),
        FaultType.DAY_BURNING: PlanRule("day", (1, 6)),
        FaultType.CABLE_THEFT: PlanRule("night", (1, 10)),
        FaultType.DEVICE_OFFLINE: PlanRule("any", (0.25, 2)),
        FaultType.GATEWAY_OFFLINE: PlanRule("any", (0.25, 1)),
        FaultType.VOLTAGE_SAG: PlanRule("any", (0.2, 1)),
        FaultType.OVER_VOLTAGE: PlanRule("any", (0.2, 1)),
        FaultType.LAMP_CYCLING: PlanRule("night", (1, 12)),
        FaultType.RELAY_STUCK: PlanRule("day", (2, 30)),
        FaultType.LEAKAGE: PlanRule("any", (1, 12)),
        FaultType.CABINET_DOOR: PlanRule("any", (0.2, 2)),
        FaultType.BRIDGE_FREQ_DROP: PlanRule("late", (24, 96)),
        FaultType.PUMP_FAIL_TO_START: PlanRule("any", (3, 12)),
        FaultType.PUMP_OVERCURRENT: PlanRule("any", (6, 24)),
        FaultType.BIN_FIRE: PlanRule("any", (0.5, 2)),
        FaultType.BIN_TIPPED: PlanRule("any", (1, 6)),
        FaultType.BIN_STUCK_SENSOR: PlanRule("any", (80, 120)),
    }
)


def fault_plan(
    city: City, config: SimConfig, *, start: float, days: float, per_kind: int, seed: int, obs: Observability
) -> list[FaultEvent]:
    """Each fault kind ``per_kind`` times (cable theft in each mode; device_offline on lamps, plus one
    device of every other kind), through ``parse_schedule``'s JSONL."""
    rng = np.random.default_rng([seed, 0xDE7EC7])
    end = start + days * 86_400.0
    offset_s = round(city.center[1] / 15.0) * 3600.0  # the city's civil time, as the simulator's climate

    def when(rule: PlanRule, duration: float) -> float:
        lo, hi = start + 3600.0, max(start + 3600.0, end - min(duration, 6 * 3600.0))
        if rule.when == "late" and start + obs.bridge_reference_s + 3600 < end - 6 * 3600:
            lo = start + obs.bridge_reference_s + 3600.0
        if rule.when in ("night", "day"):
            first, last = (20.0, 27.0) if rule.when == "night" else (9.0, 15.0)
            for _ in range(100):
                day = math.floor((start + offset_s) / 86_400.0) + int(
                    rng.integers(0, max(1, math.ceil(days)))
                )
                at = day * 86_400.0 - offset_s + float(rng.uniform(first, last)) * 3600.0
                if lo <= at <= hi:
                    return at
        if rule.when == "any" and duration > 48 * 3600:  # a stuck meter: start early, so it can be seen
            hi = min(hi, start + 6 * 3600.0)
        return float(rng.uniform(lo, hi))

    def pick(ids: Sequence[str], k: int) -> list[str]:
        return [str(x) for x in rng.choice(np.asarray(ids), size=min(k, len(ids)), replace=False)]

    entries: list[dict[str, object]] = []

    def add(fault: FaultType, target: str, hours: tuple[float, float] | None = None, **extra: object) -> None:
        rule = PLAN[fault]
        duration = float(rng.uniform(*(hours or rule.hours))) * 3600.0
        at = when(rule, duration)
        entries.append({"fault": fault.value, "target": target, "start": at, "duration_s": duration, **extra})

    lamps, cabinets, bins = city.lamps.ids.tolist(), city.cabinets.ids.tolist(), city.bins.ids.tolist()
    for fault in (
        FaultType.LAMP_FAILURE,
        FaultType.DAY_BURNING,
        FaultType.LAMP_CYCLING,
        FaultType.RELAY_STUCK,
    ):
        for target in pick(lamps, per_kind):
            add(fault, target)
    for mode, circuits in zip(
        CABLE_THEFT_MODES, np.array_split(pick(city.circuits, 2 * per_kind), 2), strict=True
    ):
        for target in circuits.tolist():
            add(FaultType.CABLE_THEFT, target, mode=mode)
    for fault in (FaultType.VOLTAGE_SAG, FaultType.OVER_VOLTAGE):
        for target in pick(city.circuits, per_kind):
            add(fault, target)
    for target in pick(cabinets, per_kind):
        add(FaultType.LEAKAGE, target, residual_ma=round(float(rng.uniform(50, 500)), 1))
    for target in pick(cabinets, per_kind):
        add(FaultType.CABINET_DOOR, target)
    for target in pick(lamps, per_kind):
        add(FaultType.DEVICE_OFFLINE, target)
    for kind, table in city.devices().items():
        if kind is not DeviceKind.LAMP and len(table):
            slow = config.report_every_s.get(kind, config.interval_s) > config.interval_s
            add(FaultType.DEVICE_OFFLINE, pick(table.ids.tolist(), 1)[0], (4.0, 8.0) if slow else None)
    quick_gateways = [g for g in city.gateways.ids.tolist() if not g.startswith("GW-BIN")]
    for target in pick(quick_gateways, per_kind):
        add(FaultType.GATEWAY_OFFLINE, target)
    for target in pick(city.bridge_nodes.ids.tolist(), per_kind):
        add(FaultType.BRIDGE_FREQ_DROP, target, drop_pct=round(float(rng.uniform(3, 8)), 2))
    # Few stations: one fault of a kind at a time on each, in turns through the run.
    stations = city.stations.ids.tolist()
    slot = (days * 86_400.0 - 3600.0) / max(1, math.ceil(per_kind / len(stations)))
    for k in range(per_kind):
        s, turn = k % len(stations), k // len(stations)
        at = start + 3600.0 + turn * slot
        for fault, extra in (
            (FaultType.PUMP_FAIL_TO_START, {}),
            (
                FaultType.PUMP_OVERCURRENT,
                {
                    "pump": int(rng.integers(1, int(city.stations.pumps[s]) + 1)),
                    "current_factor": round(float(rng.uniform(1.2, 1.5)), 3),
                },
            ),
        ):
            lo, hi = PLAN[fault].hours
            duration = min(float(rng.uniform(lo, hi)) * 3600.0, 0.8 * slot)
            begin = at + float(rng.uniform(0.0, slot - duration))
            entries.append(
                {"fault": fault.value, "target": stations[s], "start": begin, "duration_s": duration, **extra}
            )
    for fault in (FaultType.BIN_FIRE, FaultType.BIN_TIPPED, FaultType.BIN_STUCK_SENSOR):
        for target in pick(bins, per_kind):
            add(fault, target)
    text = b"\n".join(orjson.dumps(e) for e in entries).decode()
    return parse_schedule(text)


class KnownLamps:
    """What the engine can know of each lamp: whether it reported within the last k periods (the comm
    detector's offline rule: an unknown lamp is left out of the observed rate), and whether it burned when
    it last did."""

    def __init__(self, n: int, periods: int) -> None:
        self.last = np.full(n, -(10**9), dtype=np.int64)
        self.burning = np.zeros(n, dtype=np.bool_)
        self.periods = periods

    def update(self, tick: Tick, burning: BoolArray) -> BoolArray:
        for frame in tick.frames:
            if frame.kind is DeviceKind.LAMP:
                self.last[frame.device] = tick.index
                self.burning[frame.device] = burning[frame.device]
        return np.asarray(tick.index - self.last < self.periods)
