"""Fault injection: scheduled or random faults, as boolean masks over the city's arrays, with ground truth.

Each fault is a ``FaultEvent`` on one target (a device, a circuit or a gateway) over ``[start, end)``.
``FaultInjector.advance`` is called once per tick; it returns the masks the physics applies and the events
that became active, whose ``record()`` is one line of the ground-truth JSONL::

    {"fault": "cable_theft", "target": "CIR-0042", "kind": "circuit",
     "start": "2026-06-21T14:02:00+00:00", "end": "2026-06-22T02:02:00+00:00", "mode": "silent"}

``mode`` appears for cable theft only (``silent``: the lamps stop reporting; ``zero_power``: they report
0 V and 0 W), ``drop_pct`` for a bridge frequency drop only, ``residual_ma`` for a leakage only, ``pump``
(1-based) and ``current_factor`` (times rated current) for a pump overcurrent only. Pure: no clock, no I/O.

Command faults (``CommandFault``: a device that acknowledges commands but does not act on them, or one that
never answers) are scheduled and logged the same way, on any device kind. They are not drawn at random
(nobody sends commands in a random run) and live in their own enum: ``FaultType`` lists the faults the
telemetry shows, which the detection benchmark scores one by one.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType

import numpy as np
import orjson

from devices.kinds import DeviceKind
from firmware_sim import FaultPlanError
from firmware_sim.city import BoolArray, City, FloatArray

CIRCUIT = "circuit"
GATEWAY = "gateway"
_FAULT_STREAM = 0xFA017


class FaultType(enum.StrEnum):
    LAMP_FAILURE = "lamp_failure"  # power ~0 while commanded on, lamp_failure flag set
    DAY_BURNING = "day_burning"  # lamp on during the day
    CABLE_THEFT = "cable_theft"  # a whole circuit loses power at once
    DEVICE_OFFLINE = "device_offline"  # one device stops reporting
    GATEWAY_OFFLINE = "gateway_offline"  # none of a gateway's devices report
    VOLTAGE_SAG = "voltage_sag"  # a circuit's lamps below 198 V
    BRIDGE_FREQ_DROP = "bridge_freq_drop"  # a node's modal frequencies drop by a few %
    PUMP_FAIL_TO_START = "pump_fail_to_start"  # the duty pump does not start at the start level
    BIN_FIRE = "bin_fire"  # temperature rises > 5 °C per interval up to ~80 °C
    BIN_TIPPED = "bin_tipped"  # tilt > 60°
    # Added later; new kinds go last so that the random draws of the kinds above stay what they were.
    LAMP_CYCLING = "lamp_cycling"  # the relay switches on and off 10-30 times an hour while due on
    RELAY_STUCK = "relay_stuck"  # the relay stays closed: the lamp burns while commanded off
    OVER_VOLTAGE = "over_voltage"  # a circuit's lamps and cabinet at ~250-260 V, above 242 V
    LEAKAGE = "leakage"  # a cabinet's residual current at 50-500 mA
    CABINET_DOOR = "cabinet_door"  # a cabinet's door contact reports open
    PUMP_OVERCURRENT = "pump_overcurrent"  # one pump draws 1.2-1.5 × its rated current while running
    BIN_STUCK_SENSOR = "bin_stuck_sensor"  # the fill meter's distance reading freezes


class CommandFault(enum.StrEnum):
    IGNORES_COMMANDS = "ignores_commands"  # acknowledges commands, then does nothing
    COMMAND_DEAF = "command_deaf"  # never acknowledges (nor acts on) a command


AnyFault = FaultType | CommandFault
_COMMAND_FAULTS = frozenset(f.value for f in CommandFault)

#: What a fault's target is: a DeviceKind value, "circuit" or "gateway" (None: any device kind).
TARGET_KIND: Mapping[AnyFault, str | None] = MappingProxyType(
    {
        FaultType.LAMP_FAILURE: DeviceKind.LAMP.value,
        FaultType.DAY_BURNING: DeviceKind.LAMP.value,
        FaultType.CABLE_THEFT: CIRCUIT,
        FaultType.DEVICE_OFFLINE: None,
        FaultType.GATEWAY_OFFLINE: GATEWAY,
        FaultType.VOLTAGE_SAG: CIRCUIT,
        FaultType.BRIDGE_FREQ_DROP: DeviceKind.BRIDGE_NODE.value,
        FaultType.PUMP_FAIL_TO_START: DeviceKind.PUMP_STATION.value,
        FaultType.BIN_FIRE: DeviceKind.BIN.value,
        FaultType.BIN_TIPPED: DeviceKind.BIN.value,
        FaultType.LAMP_CYCLING: DeviceKind.LAMP.value,
        FaultType.RELAY_STUCK: DeviceKind.LAMP.value,
        FaultType.OVER_VOLTAGE: CIRCUIT,
        FaultType.LEAKAGE: DeviceKind.CABINET.value,
        FaultType.CABINET_DOOR: DeviceKind.CABINET.value,
        FaultType.PUMP_OVERCURRENT: DeviceKind.PUMP_STATION.value,
        FaultType.BIN_STUCK_SENSOR: DeviceKind.BIN.value,
        CommandFault.IGNORES_COMMANDS: None,
        CommandFault.COMMAND_DEAF: None,
    }
)

#: Random faults: expected new faults per target per day at ``rate`` 1 (lamp failures ~1.5 % a month).
DEFAULT_RATES: Mapping[FaultType, float] = MappingProxyType(
    {
        FaultType.LAMP_FAILURE: 5e-4,
        FaultType.DAY_BURNING: 1e-4,
        FaultType.CABLE_THEFT: 5e-4,
        FaultType.DEVICE_OFFLINE: 5e-4,
        FaultType.GATEWAY_OFFLINE: 2e-3,
        FaultType.VOLTAGE_SAG: 2e-3,
        FaultType.BRIDGE_FREQ_DROP: 1e-3,
        FaultType.PUMP_FAIL_TO_START: 5e-3,
        FaultType.BIN_FIRE: 2e-4,
        FaultType.BIN_TIPPED: 1e-3,
        FaultType.LAMP_CYCLING: 1e-4,  # as rare as day burning: an ageing driver or a flapping photocell
        FaultType.RELAY_STUCK: 1e-4,
        FaultType.OVER_VOLTAGE: 1e-3,  # half as often as a sag: a light load at night on a strong feeder
        FaultType.LEAKAGE: 1e-3,
        FaultType.CABINET_DOOR: 2e-3,  # maintenance visits, vandalism
        FaultType.PUMP_OVERCURRENT: 5e-3,  # as often as a failed start: rags in an impeller
        FaultType.BIN_STUCK_SENSOR: 2e-4,
    }
)

#: How long random faults last (seconds): until a crew repairs it, or the link comes back.
DURATION_S: Mapping[FaultType, tuple[float, float]] = MappingProxyType(
    {
        FaultType.LAMP_FAILURE: (6 * 3600, 72 * 3600),
        FaultType.DAY_BURNING: (2 * 3600, 48 * 3600),
        FaultType.CABLE_THEFT: (4 * 3600, 36 * 3600),
        FaultType.DEVICE_OFFLINE: (10 * 60, 12 * 3600),
        FaultType.GATEWAY_OFFLINE: (5 * 60, 3 * 3600),
        FaultType.VOLTAGE_SAG: (5 * 60, 2 * 3600),
        FaultType.BRIDGE_FREQ_DROP: (24 * 3600, 14 * 24 * 3600),
        FaultType.PUMP_FAIL_TO_START: (2 * 3600, 24 * 3600),
        FaultType.BIN_FIRE: (20 * 60, 2 * 3600),
        FaultType.BIN_TIPPED: (1 * 3600, 12 * 3600),
        FaultType.LAMP_CYCLING: (6 * 3600, 72 * 3600),
        FaultType.RELAY_STUCK: (6 * 3600, 72 * 3600),
        FaultType.OVER_VOLTAGE: (5 * 60, 2 * 3600),
        FaultType.LEAKAGE: (1 * 3600, 48 * 3600),  # until a crew finds the damaged cable or fitting
        FaultType.CABINET_DOOR: (10 * 60, 24 * 3600),
        FaultType.PUMP_OVERCURRENT: (2 * 3600, 48 * 3600),
        FaultType.BIN_STUCK_SENSOR: (1 * 86_400, 10 * 86_400),  # nobody notices for days
    }
)

CABLE_THEFT_MODES = ("silent", "zero_power")
FREQ_DROP = (0.03, 0.08)
LEAKAGE_MA = (50.0, 500.0)  # above the 30 mA of a personal-protection RCD, below a breaker's trip
OVERCURRENT = (1.2, 1.5)  # times rated current
DEFAULT_LEAKAGE_MA = 150.0
DEFAULT_OVERCURRENT = 1.3


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class FaultEvent:
    fault: AnyFault
    target: str
    kind: str  # the target's kind: a DeviceKind value, "circuit" or "gateway"
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive
    mode: str = ""  # cable theft: "silent" or "zero_power"
    drop: float = 0.0  # bridge frequency drop: fraction
    magnitude: float = 0.0  # leakage: residual current (mA); pump overcurrent: times rated current
    pump: int = 0  # pump overcurrent: the pump (1-based)

    def record(self) -> dict[str, object]:
        """The ground-truth line of this event."""
        out: dict[str, object] = {
            "fault": self.fault.value,
            "target": self.target,
            "kind": self.kind,
            "start": iso(self.start),
            "end": iso(self.end),
        }
        if self.fault is FaultType.CABLE_THEFT:
            out["mode"] = self.mode
        if self.fault is FaultType.BRIDGE_FREQ_DROP:
            out["drop_pct"] = round(100 * self.drop, 2)
        if self.fault is FaultType.LEAKAGE:
            out["residual_ma"] = round(self.magnitude, 1)
        if self.fault is FaultType.PUMP_OVERCURRENT:
            out["pump"] = self.pump
            out["current_factor"] = round(self.magnitude, 3)
        return out


def _time(value: object, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise FaultPlanError(f"{what} {value!r:.40} is not an RFC 3339 time") from None
        if parsed.tzinfo is None:
            raise FaultPlanError(f"{what} {value!r:.40} has no UTC offset")
        return parsed.timestamp()
    raise FaultPlanError(f"{what} must be epoch seconds or an RFC 3339 time")


def _number(value: object, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise FaultPlanError(f"{what} must be a number")


def _magnitude(fault: AnyFault, target: str, item: dict[str, object]) -> tuple[float, int]:
    """A leakage's residual current, or a pump overcurrent's factor and pump number; (0, 0) otherwise."""
    if fault is FaultType.LEAKAGE:
        magnitude = _number(item.get("residual_ma", DEFAULT_LEAKAGE_MA), "residual_ma")
        if magnitude <= 0:
            raise FaultPlanError(f"leakage on {target}: residual_ma must be > 0")
        return magnitude, 0
    if fault is FaultType.PUMP_OVERCURRENT:
        magnitude = _number(item.get("current_factor", DEFAULT_OVERCURRENT), "current_factor")
        if magnitude <= 1.0:
            raise FaultPlanError(f"pump_overcurrent on {target}: current_factor must be > 1")
        pump = item.get("pump", 1)
        if not isinstance(pump, int) or isinstance(pump, bool) or pump < 1:
            raise FaultPlanError(f"pump_overcurrent on {target}: pump must be a pump number from 1")
        return magnitude, pump
    return 0.0, 0


def _entry(item: object) -> FaultEvent:
    if not isinstance(item, dict):
        raise FaultPlanError("an entry must be a JSON object")
    name = str(item.get("fault"))
    fault: AnyFault
    if name in _COMMAND_FAULTS:
        fault = CommandFault(name)
    else:
        try:
            fault = FaultType(name)
        except ValueError:
            raise FaultPlanError(f"unknown fault {item.get('fault')!r:.40}") from None
    target = item.get("target")
    if not isinstance(target, str) or not target:
        raise FaultPlanError("target must be a device, circuit or gateway id")
    start = _time(item.get("start"), "start")
    end = _time(item["end"], "end") if "end" in item else start + _time(item.get("duration_s"), "duration_s")
    if end <= start:
        raise FaultPlanError(f"{fault} on {target}: end is not after start")
    mode = item.get("mode", CABLE_THEFT_MODES[0]) if fault is FaultType.CABLE_THEFT else ""
    if fault is FaultType.CABLE_THEFT and mode not in CABLE_THEFT_MODES:
        raise FaultPlanError(f"cable_theft mode {mode!r:.20} is not one of {CABLE_THEFT_MODES}")
    drop = _time(item.get("drop_pct", 5.0), "drop_pct") / 100 if fault is FaultType.BRIDGE_FREQ_DROP else 0.0
    magnitude, pump = _magnitude(fault, target, item)
    return FaultEvent(fault, target, "", start, end, str(mode), drop, magnitude, pump)


def parse_schedule(text: str) -> list[FaultEvent]:
    """A fault schedule: a JSON array of entries, or one entry per line (JSONL; blank lines and # comments
    skipped). Entry: ``{"fault", "target", "start", "end" | "duration_s"[, "mode"][, "drop_pct"]}``,
    times as epoch seconds or RFC 3339 with an offset; ``"residual_ma"`` for a leakage (default 150),
    ``"pump"`` (default 1) and ``"current_factor"`` (default 1.3) for a pump overcurrent. The kind is filled
    in by ``FaultInjector``."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise FaultPlanError(f"schedule is not JSON: {exc}") from None
        numbered = list(enumerate(items, start=1))
    else:
        numbered = []
        for line, raw in enumerate(text.splitlines(), start=1):
            if raw.strip() and not raw.lstrip().startswith("#"):
                try:
                    numbered.append((line, orjson.loads(raw)))
                except orjson.JSONDecodeError as exc:
                    raise FaultPlanError(f"line {line}: not JSON: {exc}") from None
    events = []
    for line, item in numbered:
        try:
            events.append(_entry(item))
        except FaultPlanError as exc:
            raise FaultPlanError(f"entry {line}: {exc}") from None
    return events


@dataclass(slots=True)
class FaultMasks:
    """The active faults as arrays over the city's tables (what the physics and the reporting apply)."""

    lamp_failed: BoolArray
    lamp_dayburn: BoolArray
    circuit_theft: BoolArray
    circuit_theft_silent: BoolArray
    circuit_sag: BoolArray
    offline: dict[DeviceKind, BoolArray]
    gateway_down: BoolArray
    node_freq_factor: FloatArray
    station_no_start: BoolArray
    bin_fire: BoolArray
    bin_tipped: BoolArray
    lamp_cycling: BoolArray
    lamp_relay_stuck: BoolArray
    circuit_over: BoolArray
    cabinet_leak_ma: FloatArray  # 0 where no leakage
    cabinet_door: BoolArray
    pump_current_factor: FloatArray  # stations × pump slots: times rated current, 0 where healthy
    bin_stuck: BoolArray
    ignores_commands: dict[DeviceKind, BoolArray]
    command_deaf: dict[DeviceKind, BoolArray]

    @classmethod
    def none(cls, city: City) -> FaultMasks:
        def no(n: int) -> BoolArray:
            return np.zeros(n, dtype=np.bool_)

        return cls(
            lamp_failed=no(len(city.lamps)),
            lamp_dayburn=no(len(city.lamps)),
            circuit_theft=no(len(city.circuits)),
            circuit_theft_silent=no(len(city.circuits)),
            circuit_sag=no(len(city.circuits)),
            offline={kind: no(len(table)) for kind, table in city.devices().items()},
            gateway_down=no(len(city.gateways)),
            node_freq_factor=np.ones(len(city.bridge_nodes)),
            station_no_start=no(len(city.stations)),
            bin_fire=no(len(city.bins)),
            bin_tipped=no(len(city.bins)),
            lamp_cycling=no(len(city.lamps)),
            lamp_relay_stuck=no(len(city.lamps)),
            circuit_over=no(len(city.circuits)),
            cabinet_leak_ma=np.zeros(len(city.cabinets)),
            cabinet_door=no(len(city.cabinets)),
            pump_current_factor=np.zeros((len(city.stations), pump_slots(city))),
            bin_stuck=no(len(city.bins)),
            ignores_commands={kind: no(len(table)) for kind, table in city.devices().items()},
            command_deaf={kind: no(len(table)) for kind, table in city.devices().items()},
        )


def pump_slots(city: City) -> int:
    """Pump blocks per station row in the arrays: the most pumps any station has (1 with no station)."""
    return int(city.stations.pumps.max()) if len(city.stations) else 1


@dataclass(frozen=True, slots=True)
class _Active:
    event: FaultEvent
    index: int  # the target's number in its table (or in City.circuits)


_DEVICE_MASKS = {
    FaultType.LAMP_FAILURE: "lamp_failed",
    FaultType.DAY_BURNING: "lamp_dayburn",
    FaultType.CABLE_THEFT: "circuit_theft",
    FaultType.VOLTAGE_SAG: "circuit_sag",
    FaultType.GATEWAY_OFFLINE: "gateway_down",
    FaultType.PUMP_FAIL_TO_START: "station_no_start",
    FaultType.BIN_FIRE: "bin_fire",
    FaultType.BIN_TIPPED: "bin_tipped",
    FaultType.LAMP_CYCLING: "lamp_cycling",
    FaultType.RELAY_STUCK: "lamp_relay_stuck",
    FaultType.OVER_VOLTAGE: "circuit_over",
    FaultType.CABINET_DOOR: "cabinet_door",
    FaultType.BIN_STUCK_SENSOR: "bin_stuck",
}


class FaultInjector:
    """Activates scheduled and random faults tick by tick and keeps the masks of the active ones.

    ``rate`` multiplies ``rates`` (new faults per target per day); 0 injects only the schedule.
    """

    def __init__(
        self,
        city: City,
        *,
        seed: int = 0,
        schedule: Sequence[FaultEvent] = (),
        rate: float = 0.0,
        rates: Mapping[FaultType, float] = DEFAULT_RATES,
        durations: Mapping[FaultType, tuple[float, float]] = DURATION_S,
    ) -> None:
        self.city, self.seed, self.rate, self.rates, self.durations = city, seed, rate, rates, durations
        resolved = [self._resolve(e) for e in schedule]
        self._pending = sorted(resolved, key=lambda a: a.event.start)[::-1]  # popped from the end, in order
        self._active: dict[tuple[AnyFault, str], _Active] = {}
        self._masks: FaultMasks | None = None

    def _resolve(self, event: FaultEvent) -> _Active:
        want = TARGET_KIND[event.fault]
        if want == CIRCUIT:
            found = (
                [(CIRCUIT, self.city.circuits.index(event.target))]
                if event.target in self.city.circuits
                else []
            )
        else:
            tables = self.city.tables()
            kinds = [want] if want is not None else [k.value for k in self.city.devices()]
            found = [(k, int(tables[k].find([event.target])[0])) for k in kinds]
            found = [(k, i) for k, i in found if i >= 0]
        if not found:
            raise FaultPlanError(
                f"{event.fault} target {event.target!r} is not a {want or 'device'} of the city"
            )
        kind, index = found[0]
        if event.fault is FaultType.PUMP_OVERCURRENT and event.pump > self.city.stations.pumps[index]:
            raise FaultPlanError(
                f"{event.fault} target {event.target!r} has {self.city.stations.pumps[index]} pumps,"
                f" not pump {event.pump}"
            )
        return _Active(replace(event, kind=kind), index)

    def _population(self, fault: FaultType) -> int:
        want = TARGET_KIND[fault]
        if want == CIRCUIT:
            return len(self.city.circuits)
        if want is None:
            return self.city.device_count()
        return len(self.city.tables()[want])

    def _random(self, rng: np.random.Generator, fault: FaultType, t: float, dt: float) -> list[_Active]:
        population = self._population(fault)
        expected = population * self.rates.get(fault, 0.0) * self.rate * dt / 86_400.0
        if expected <= 0 or population == 0:
            return []
        out = []
        for _ in range(int(rng.poisson(expected))):
            number = int(rng.integers(0, population))
            lo, hi = self.durations[fault]
            end = t + float(rng.uniform(lo, hi))
            mode = str(rng.choice(CABLE_THEFT_MODES)) if fault is FaultType.CABLE_THEFT else ""
            drop = float(rng.uniform(*FREQ_DROP)) if fault is FaultType.BRIDGE_FREQ_DROP else 0.0
            kind, index, target = self._target(fault, number)
            magnitude, pump = 0.0, 0
            if fault is FaultType.LEAKAGE:
                magnitude = float(rng.uniform(*LEAKAGE_MA))
            elif fault is FaultType.PUMP_OVERCURRENT:
                magnitude = float(rng.uniform(*OVERCURRENT))
                pump = int(rng.integers(1, int(self.city.stations.pumps[index]) + 1))
            event = FaultEvent(fault, target, kind, t, end, mode, drop, magnitude, pump)
            out.append(_Active(event, index))
        return out

    def _target(self, fault: FaultType, number: int) -> tuple[str, int, str]:
        want = TARGET_KIND[fault]
        if want == CIRCUIT:
            return CIRCUIT, number, self.city.circuits[number]
        if want is None:
            for kind, table in self.city.devices().items():
                if number < len(table):
                    return kind.value, number, str(table.ids[number])
                number -= len(table)
            raise AssertionError("device number beyond the city")  # pragma: no cover
        return want, number, str(self.city.tables()[want].ids[number])

    def advance(self, tick: int, t: float, dt: float) -> tuple[FaultMasks, list[FaultEvent]]:
        """Faults active at ``t`` (tick number ``tick``, ``dt`` seconds after the previous tick)."""
        changed = self._masks is None
        for key in [k for k, a in self._active.items() if a.event.end <= t]:
            del self._active[key]
            changed = True
        fresh: list[_Active] = []
        while self._pending and self._pending[-1].event.start <= t:
            fresh.append(self._pending.pop())
        if self.rate > 0:
            rng = np.random.default_rng([self.seed, _FAULT_STREAM, tick])
            for fault in FaultType:
                fresh.extend(self._random(rng, fault, t, dt))
        started = []
        for item in fresh:
            key = (item.event.fault, item.event.target)
            if item.event.end <= t or key in self._active:
                continue  # over before this tick saw it, or already under way
            self._active[key] = item
            started.append(item.event)
            changed = True
        if changed or self._masks is None:
            self._masks = self._build()
        return self._masks, started

    def active(self) -> list[FaultEvent]:
        return [a.event for a in self._active.values()]

    def active_targets(self) -> list[tuple[FaultEvent, int]]:
        """The active faults with their target's number (in its kind's table, or in ``City.circuits``)."""
        return [(a.event, a.index) for a in self._active.values()]

    def _build(self) -> FaultMasks:
        masks = FaultMasks.none(self.city)
        for item in self._active.values():
            event, i = item.event, item.index
            if event.fault is FaultType.DEVICE_OFFLINE:
                masks.offline[DeviceKind(event.kind)][i] = True
            elif event.fault is CommandFault.IGNORES_COMMANDS:
                masks.ignores_commands[DeviceKind(event.kind)][i] = True
            elif event.fault is CommandFault.COMMAND_DEAF:
                masks.command_deaf[DeviceKind(event.kind)][i] = True
            elif event.fault is FaultType.BRIDGE_FREQ_DROP:
                masks.node_freq_factor[i] *= 1.0 - event.drop
            elif event.fault is FaultType.LEAKAGE:
                masks.cabinet_leak_ma[i] = max(masks.cabinet_leak_ma[i], event.magnitude)
            elif event.fault is FaultType.PUMP_OVERCURRENT:
                masks.pump_current_factor[i, event.pump - 1] = event.magnitude
            else:
                getattr(masks, _DEVICE_MASKS[event.fault])[i] = True
                if event.fault is FaultType.CABLE_THEFT and event.mode == "silent":
                    masks.circuit_theft_silent[i] = True
        return masks
