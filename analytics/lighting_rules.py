"""Streetlight rules (DOMAIN.md section 2): what single-lamp controllers and lighting cabinets report, judged.

===================== ========= ================================================ =========================
rule                  subject   value                                            threshold
===================== ========= ================================================ =========================
lamp_failure          lamp      active power (W)                                 low-power threshold (W)
day_burning           lamp      active power (W)                                 low-power threshold, dim 100
lamp_cycling          lamp      switches in the last hour (exponential window)   max switches per hour
relay_stuck           lamp      active power (W) while commanded off             low-power threshold, dim 100
over_voltage          lamp      supply voltage (V)                               242 V
under_voltage         lamp      supply voltage (V)                               198 V
circuit_over_voltage  circuit   highest voltage (V), lamps attached              242 V
circuit_under_voltage circuit   lowest live voltage (V), lamps attached          198 V
circuit_outage        circuit   % of its lamps (or load) gone, lamps attached    outage fraction (%)
leakage               cabinet   residual current (mA)                            leakage_ma
cabinet_door          cabinet   1 (door contact open)                            0
===================== ========= ================================================ =========================

Each reading is judged in ``observe`` (with the device's last known value where the reading lacks a field)
and moves a per-device ``Debounce``; ``evaluate`` reports the debounced states. A lamp is lit and dark by
``analytics.lamps``' definition, so the lighting rate and ``lamp_failure`` agree. Lamps explained by a wider
finding (a dead gateway marked by the comm detector, a circuit outage marked here) raise no new lamp
findings; a finding already open on such a lamp stays open (it still holds as far as anyone knows). The
circuit rules live in ``analytics.circuit_rules``. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.circuit_rules import (
    OUTAGE_RULE,
    CabinetFlags,
    CircuitOutage,
    CircuitSilence,
    CircuitVoltage,
    Debounce,
    LampFlags,
    Members,
)
from analytics.engine import TickContext
from analytics.findings import Conditions, RuleInfo
from analytics.lamps import LampPower
from analytics.state import NEVER, Batch, KindState, LiveState
from analytics.topology import Topology
from devices.kinds import DeviceKind

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

LAMP = DeviceKind.LAMP
CABINET = DeviceKind.CABINET
FAMILY = "streetlight"


@dataclass(frozen=True, slots=True, kw_only=True)
class StreetlightRules:
    """Thresholds of the streetlight rules; DOMAIN.md section 2 unless said otherwise."""

    debounce_readings: int = 2  # DOMAIN (lamp failure: at least 2 consecutive readings); CHOICE for the rest
    max_switches_per_hour: float = 6.0  # CHOICE: DOMAIN's cycling rule "more than N switches per hour"
    cycling_window_s: float = 3600.0  # DOMAIN: "per hour"; the time constant of the exponential window
    cycling_clear_fraction: float = 0.5  # CHOICE: hysteresis, clears below half the limit
    voltage_low_v: float = 198.0  # provincial rule (Henan): line-end voltage not below 220 V - 10 %
    voltage_high_v: float = 242.0  # CHOICE: DOMAIN's 198 to 242 V band, 220 V + 10 %
    dead_voltage_v: float = 50.0  # CHOICE: below this the supply is gone (a dead circuit), not sagging
    zero_power_w: float = 1.0  # CHOICE: no supply, for a controller that reports no voltage
    circuit_voltage_fraction: float = 0.5  # CHOICE: half a circuit's reporting lamps out: a circuit finding
    circuit_min_lamps: int = 2  # CHOICE: one lamp alone is a lamp finding, never a circuit finding
    leakage_ma: float = 30.0  # CHOICE: the trip rating of a personal-protection RCD
    # CHOICE: a residual-current meter reads a healthy circuit's standing leakage (a few mA, up to some
    # 25 mA) with a few mA of noise; three readings in a row above the limit (two minutes) are a leak.
    leakage_debounce_readings: int = 3
    door_debounce_readings: int = 1  # CHOICE: a door contact does not bounce for a minute
    outage_fraction: float = 0.9  # CHOICE: share of a circuit's due lamps dark without supply or silent
    outage_clear_fraction: float = 0.5  # CHOICE: hysteresis, an outage holds while half its lamps are out
    collapse_fraction: float = 0.1  # CHOICE: cabinet current under 10 % of what its lamps should draw
    # CHOICE: one cabinet reading suffices: with the contactor closed and no lamp reporting lit since, a
    # current under 10 % of the load is no noise; waiting a second reading left a stolen circuit's silent
    # lamps counted lit (their last reading) for another minute (bench/detection.py, lighting rate).
    collapse_readings: int = 1
    nominal_voltage_v: float = 220.0  # DOMAIN: 220 V mains

    def __post_init__(self) -> None:
        for name in (
            "debounce_readings",
            "leakage_debounce_readings",
            "door_debounce_readings",
            "collapse_readings",
        ):
            value = getattr(self, name)
            if not 1 <= value <= 100:
                raise RuleConfigError(f"{name} must be 1 to 100 readings, not {value}")
        for name in (
            "max_switches_per_hour",
            "cycling_window_s",
            "leakage_ma",
            "nominal_voltage_v",
            "zero_power_w",
            "dead_voltage_v",
        ):
            if not getattr(self, name) > 0:
                raise RuleConfigError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in (
            "cycling_clear_fraction",
            "circuit_voltage_fraction",
            "outage_fraction",
            "collapse_fraction",
        ):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise RuleConfigError(f"{name} must be in (0, 1], not {getattr(self, name)}")
        if not 0.0 < self.outage_clear_fraction <= self.outage_fraction:
            raise RuleConfigError("outage_clear_fraction must be in (0, outage_fraction]")
        if not self.dead_voltage_v < self.voltage_low_v < self.voltage_high_v:
            raise RuleConfigError("voltages must rise: dead_voltage_v < voltage_low_v < voltage_high_v")
        if self.circuit_min_lamps < 1:
            raise RuleConfigError(f"circuit_min_lamps must be >= 1, not {self.circuit_min_lamps}")


# rule, subject, title, unit, explanation (a str.format template: see analytics.findings.RuleInfo)
_CATALOGUE = (
    ("lamp_failure", "lamp", "Lamp failure", "W",
     "dark while switched on: {value:.1f} W drawn where lit takes {threshold:.1f} W or more"
     " (or the controller flags a failed lamp), since {since}"),
    ("day_burning", "lamp", "Day burning", "W",
     "burning in daylight: {value:.1f} W drawn (off is below {threshold:.1f} W) while the schedule has it"
     " off, since {since}"),
    ("lamp_cycling", "lamp", "Lamp cycling", "",
     "switching {value:.1f} times an hour, more than {threshold:.0f} (or flagged cycling by its controller):"
     " flicker or a failing driver, since {since}"),
    ("relay_stuck", "lamp", "Relay stuck", "W",
     "drawing {value:.1f} W while commanded off (off is below {threshold:.1f} W), or its relay-failure flag:"
     " the relay is stuck closed, since {since}"),
    ("over_voltage", "lamp", "Over-voltage", "V",
     "supply at {value:.0f} V, above the {threshold:.0f} V ceiling, since {since}"),
    ("under_voltage", "lamp", "Under-voltage", "V",
     "supply at {value:.0f} V, below the {threshold:.0f} V line-end floor, since {since}"),
    ("circuit_over_voltage", "circuit", "Circuit over-voltage", "V",
     "circuit {subject} up to {value:.0f} V, above the {threshold:.0f} V ceiling ({children} lamps out of"
     " range), since {since}"),
    ("circuit_under_voltage", "circuit", "Circuit under-voltage", "V",
     "circuit {subject} down to {value:.0f} V, below the {threshold:.0f} V line-end floor ({children} lamps"
     " out of range), since {since}"),
    (OUTAGE_RULE, "circuit", "Circuit outage", "%",
     "circuit {subject} lost supply, cable theft or break: {value:.0f} % of its lamps or load gone"
     " ({threshold:.0f} % opens it), {children} lamps out, since {since}"),
    ("leakage", "cabinet", "Leakage", "mA",
     "residual current {value:.0f} mA, above {threshold:.0f} mA: risk of electric shock, since {since}"),
    ("cabinet_door", "cabinet", "Cabinet door open", "", "cabinet door open since {since}"),
)  # fmt: skip

RULES = tuple(
    RuleInfo(rule, subject, FAMILY, title, explain, unit)
    for rule, subject, title, unit, explain in _CATALOGUE
)


class StreetlightDetector:
    """The streetlight rules over lamps and cabinets. Give it the comm detector as ``comm`` (evaluated
    before it) so that a circuit whose lamps fell silent together becomes one ``circuit_outage``: the comm
    detector leaves those lamps to this rule."""

    def __init__(
        self,
        topology: Topology,
        config: StreetlightRules,
        power: LampPower,
        *,
        comm: CircuitSilence | None = None,
    ) -> None:
        self.topology, self.config, self.power, self.comm = topology, config, power, comm
        lamps, cabinets = topology.table(LAMP), topology.table(CABINET)
        n, m = len(lamps), len(cabinets)
        self._in_service = lamps.in_service
        rated = power.rated_w(lamps)
        self._rated = rated.astype(np.float32, copy=False)  # the registry's array when complete
        c = config
        self.failure, self.relay, self.day = (Debounce(n, c.debounce_readings) for _ in range(3))
        self.over, self.under = Debounce(n, c.debounce_readings), Debounce(n, c.debounce_readings)
        self.cab_over, self.cab_under = Debounce(m, c.debounce_readings), Debounce(m, c.debounce_readings)
        self.leak = Debounce(m, c.leakage_debounce_readings)
        self.door = Debounce(m, c.door_debounce_readings)
        self.flags = LampFlags(np.zeros(n, np.bool_), np.zeros(n, np.bool_), np.zeros(n, np.bool_))
        self.cabinet = CabinetFlags(Debounce(m, c.collapse_readings), np.zeros(m, np.float32))
        self.cycling_level = np.zeros(n, dtype=np.float32)  # switches in the window, as of the last reading
        self._cycling_on = np.zeros(0, dtype=np.int32)
        self._was_day = np.zeros(n, dtype=np.bool_)
        self._explained = np.zeros(0, dtype=np.int32)  # lamps under an outage at the last evaluate
        # What a cabinet's circuit draws with every lamp at full power: its current collapses below a share.
        kept = lamps.in_service & (lamps.circuit >= 0)
        circuit_w = np.bincount(lamps.circuit[kept], weights=rated[kept], minlength=len(topology.circuits))
        self._cab_rated_a = np.zeros(m, dtype=np.float32)
        has = cabinets.circuit >= 0
        self._cab_rated_a[has] = circuit_w[cabinets.circuit[has]] / c.nominal_voltage_v
        by_circuit = Members.of(lamps.circuit, len(topology.circuits), keep=lamps.in_service)
        self.outage = CircuitOutage(
            topology,
            by_circuit,
            self._rated,
            fraction=c.outage_fraction,
            clear_fraction=c.outage_clear_fraction,
            min_lamps=c.circuit_min_lamps,
            collapse_fraction=c.collapse_fraction,
            nominal_v=c.nominal_voltage_v,
        )
        self.voltage = CircuitVoltage(
            topology,
            by_circuit,
            fraction=c.circuit_voltage_fraction,
            min_lamps=c.circuit_min_lamps,
            dead_v=c.dead_voltage_v,
        )

    @property
    def kinds(self) -> frozenset[DeviceKind]:
        return frozenset({LAMP, CABINET})

    @property
    def rules(self) -> Sequence[RuleInfo]:
        return RULES

    @property
    def nbytes(self) -> int:
        debounces = (self.failure, self.relay, self.day, self.over, self.under, self.cab_over, self.cab_under)
        total = sum(d.nbytes for d in (*debounces, self.leak, self.door, self.cabinet.collapse))
        flags = self.flags.dead.nbytes + self.flags.lit.nbytes + self.flags.on.nbytes
        arrays = (
            self._rated,
            self.cycling_level,
            self._was_day,
            self._cab_rated_a,
            self.cabinet.amps,
        )
        return total + flags + sum(a.nbytes for a in arrays) + self.outage.members.nbytes

    def _full_w(self, lamps: npt.NDArray[np.integer]) -> FloatArray:
        """The low-power threshold at dim 100: a lamp drawing this much is burning."""
        return self.power.low_power_w(self._rated[lamps].astype(np.float64), 100.0)

    # -- observe: each reading moves the debounced states -------------------------------------------------

    def observe(self, batch: Batch, state: LiveState) -> None:
        if batch.kind is LAMP:
            self._observe_lamps(batch, state[LAMP])
        elif batch.kind is CABINET:
            self._observe_cabinets(batch, state[CABINET])

    def _observe_lamps(self, b: Batch, ks: KindState) -> None:
        c, d, ts = self.config, b.device, b.ts_ms

        def now(name: str) -> FloatArray:  # this reading, or the last known value where it lacks the field
            return _latest(b, ks, name)

        power, volts, switched, dim_level = (
            now("active_power"),
            now("supply_voltage"),
            now("lamp_on"),
            now("dim_level"),
        )
        failed, relay_flag = now("lamp_failure") > 0.5, now("relay_failure") > 0.5
        # analytics.lamps: commanded on is lamp_on at a dim level above 0 (a missing dim level does not veto),
        # lit is commanded on, at least the low-power threshold for the dim level, no lamp-failure flag.
        on = (switched > 0.5) & ~(dim_level <= 0.0)
        off = (switched < 0.5) | (dim_level <= 0.0)
        low = self.power.low_power_w(
            self._rated[d].astype(np.float64), np.where(np.isnan(dim_level), 100.0, dim_level)
        )
        lit = on & (power >= low) & ~failed
        full = self._full_w(d)
        self.failure.update(d, ts, on & ((power < low) | failed), lit)
        # Power ~0 with the relay closed (commanded on) is lamp_failure's territory, not a stuck relay.
        self.relay.update(d, ts, (off & (power >= full)) | relay_flag, off & (power < full) & ~relay_flag)
        burning = (power >= full) | (switched > 0.5) | (now("day_burning") > 0.5)
        self.day.update(d, ts, burning, ~burning & (power < full))
        known = ~np.isnan(volts)
        live = volts >= c.dead_voltage_v
        in_band = (volts >= c.voltage_low_v) & (volts <= c.voltage_high_v)
        dead_reading = known & ~live  # no supply is a circuit outage, neither over- nor under-voltage
        self.over.update(d, ts, volts > c.voltage_high_v, in_band | dead_reading)
        self.under.update(d, ts, live & (volts < c.voltage_low_v), in_band | dead_reading)
        self.flags.dead[d] = np.where(known, dead_reading, on & (power <= c.zero_power_w))
        self.flags.lit[d] = lit
        self.flags.on[d] = on
        self._count_switches(b, ks)

    def _count_switches(self, b: Batch, ks: KindState) -> None:
        """Switches in an exponential window of ``cycling_window_s``: a sliding hour without per-lamp history
        (a steady r switches an hour settles at r). A counter that went down (a new controller) adds none;
        a long gap spreads its switches over the gap. Only lamps that switched or still carry a count are
        touched; a count under 0.05 is forgotten."""
        count = b.fields.get("switch_count")
        before = ks.values["switch_count"][b.device]
        added = np.zeros(len(b.device)) if count is None else np.maximum(count - before, 0.0)
        added[np.isnan(added)] = 0.0
        level = self.cycling_level[b.device]
        rows = np.flatnonzero((added > 0) | (level > 0))
        if not len(rows):
            return
        d, window = b.device[rows], self.config.cycling_window_s
        before_ts = ks.last_ts[d]
        gap_s = np.where(before_ts != NEVER, (b.ts_ms[rows] - before_ts) / 1000.0, 0.0)
        spread = added[rows] * np.minimum(1.0, window / np.maximum(gap_s, 1e-3))
        new = level[rows] * np.exp(-gap_s / window) + spread
        self.cycling_level[d] = np.where(new < 0.05, 0.0, new)

    def _observe_cabinets(self, b: Batch, ks: KindState) -> None:
        c, d, ts = self.config, b.device, b.ts_ms

        def now(name: str) -> FloatArray:
            return _latest(b, ks, name)

        phases = np.stack([now(f"voltage_l{k}") for k in (1, 2, 3)])
        highest = np.fmax.reduce(phases, axis=0)
        lowest_live = np.fmin.reduce(np.where(phases >= c.dead_voltage_v, phases, np.nan), axis=0)
        known = ~np.isnan(highest)
        self.cab_over.update(d, ts, highest > c.voltage_high_v, known & ~(highest > c.voltage_high_v))
        self.cab_under.update(d, ts, lowest_live < c.voltage_low_v, known & ~(lowest_live < c.voltage_low_v))
        residual = now("residual_current")
        self.leak.update(d, ts, residual > c.leakage_ma, residual <= c.leakage_ma)
        door = now("door_open")
        self.door.update(d, ts, door > 0.5, door < 0.5)
        currents = np.stack([now(f"current_l{k}") for k in (1, 2, 3)])
        amps = np.nansum(currents, axis=0)
        measured = ~np.all(np.isnan(currents), axis=0)
        contactor = now("contactor_closed")
        floor = c.collapse_fraction * self._cab_rated_a[d]
        collapsed = (contactor > 0.5) & measured & (self._cab_rated_a[d] > 0) & (amps < floor)
        self.cabinet.collapse.update(d, ts, collapsed, (contactor < 0.5) | (measured & (amps >= floor)))
        self.cabinet.amps[d] = np.where(measured, amps, np.nan)

    # -- evaluate ----------------------------------------------------------------------------------------

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        lamp_sup = ctx.suppressed_mask(LAMP)
        cab_sup = ctx.suppressed_mask(CABINET)
        cab_gateway_down = cab_sup.copy()
        self._daybreak(ctx)
        outage = self.outage.evaluate(ctx, self.flags, self.cabinet, self.comm)
        lamp_sup[outage.lamps] = True
        cab_sup[outage.cabinets] = True
        # The outage explains its lamps' darkness, a failure found before it too (no one can tell them apart
        # without supply), and relay counts without supply say nothing of the lamp: they prove a failure or
        # cycling anew once power is back.
        explained = np.union1d(outage.lamps, self._explained)
        self.failure.reset(explained)
        self.cycling_level[explained] = 0.0
        self._explained = outage.lamps
        out = [outage.conditions]
        out.extend(self._voltage(ctx, cab_gateway_down))
        out.extend(self._lamp_rules(ctx))
        out.extend(self._cabinet_rules(ctx, cab_gateway_down))
        return out

    def _daybreak(self, ctx: TickContext) -> None:
        """Day burning counts readings from the tick that first sees a lamp in daytime: a lamp still burning
        from the night when the sun came up is judged on what it does after."""
        daytime = ctx.lamps.daytime
        self.day.reset(np.flatnonzero(daytime & ~self._was_day))
        np.copyto(self._was_day, daytime)

    def _fresh(
        self, ctx: TickContext, rule: str, kind: DeviceKind, active: npt.NDArray[np.integer]
    ) -> IntArray:
        """``active`` devices in service, not explained by a wider finding unless already open."""
        table = self.topology.table(kind)
        keep = table.in_service[active] & ~ctx.suppressed_mask(kind)[active]
        opened = ctx.book.open_subjects(rule)
        if len(opened):
            keep |= np.isin(active, opened)
        return np.asarray(active[keep], dtype=np.int32)

    def _lamp_rules(self, ctx: TickContext) -> list[Conditions]:
        c, ks = self.config, ctx.state[LAMP]
        power = ks.values["active_power"]
        dim = ks.values["dim_level"]
        failed = self._fresh(ctx, "lamp_failure", LAMP, np.flatnonzero(self.failure.active))
        dim_f = np.where(np.isnan(dim[failed]), 100.0, dim[failed])
        low = self.power.low_power_w(self._rated[failed].astype(np.float64), dim_f)
        relay = self._fresh(ctx, "relay_stuck", LAMP, np.flatnonzero(self.relay.active))
        # A lamp burning by day on a stuck relay is one fault: relay_stuck names the cause.
        day = self._fresh(
            ctx, "day_burning", LAMP, np.flatnonzero(self.day.active & ctx.lamps.daytime & ~self.relay.active)
        )
        cycling = self._fresh(ctx, "lamp_cycling", LAMP, self._cycling(ctx))
        age_s = np.maximum(ctx.now_ms - ks.last_ts[cycling], 0) / 1000.0
        level = self.cycling_level[cycling] * np.exp(-age_s / c.cycling_window_s)
        return [
            Conditions(
                "lamp_failure", failed, _f64(power[failed]), low, since_ms=self.failure.since_ms(failed)
            ),
            Conditions(
                "relay_stuck",
                relay,
                _f64(power[relay]),
                self._full_w(relay),
                since_ms=self.relay.since_ms(relay),
            ),
            Conditions(
                "day_burning", day, _f64(power[day]), self._full_w(day), since_ms=self.day.since_ms(day)
            ),
            Conditions("lamp_cycling", cycling, _f64(level), np.full(len(cycling), c.max_switches_per_hour)),
        ]

    def _cycling(self, ctx: TickContext) -> IntArray:
        """Lamps over the switch limit (held down to ``cycling_clear_fraction`` of it) or flagged cycling."""
        c, ks = self.config, ctx.state[LAMP]
        limit = c.max_switches_per_hour
        cand = np.flatnonzero(self.cycling_level > c.cycling_clear_fraction * limit)
        age_s = np.maximum(ctx.now_ms - ks.last_ts[cand], 0) / 1000.0
        level = self.cycling_level[cand] * np.exp(-age_s / c.cycling_window_s)
        held = np.isin(cand, self._cycling_on)
        over = np.where(held, level > c.cycling_clear_fraction * limit, level > limit)
        flagged = np.flatnonzero(ks.values["cycling"] > 0.5)
        self._cycling_on = np.union1d(cand[over], flagged).astype(np.int32)
        return self._cycling_on

    def _voltage(self, ctx: TickContext, cab_gateway_down: BoolArray) -> list[Conditions]:
        c, volts = self.config, ctx.state[LAMP].values["supply_voltage"]
        out: list[Conditions] = []
        for lamp_rule, lamps, cabs, worst, limit in (
            ("over_voltage", self.over, self.cab_over, "max", c.voltage_high_v),
            ("under_voltage", self.under, self.cab_under, "min", c.voltage_low_v),
        ):
            out_of_range = self._fresh(ctx, lamp_rule, LAMP, np.flatnonzero(lamps.active))
            if self.comm is not None:  # a silent lamp's last voltage is history, not a new finding
                stale = self.comm.offline_mask(LAMP, ctx.now_ms)[out_of_range]
                out_of_range = out_of_range[~stale | np.isin(out_of_range, ctx.book.open_subjects(lamp_rule))]
            cabinets = np.flatnonzero(cabs.active & ~cab_gateway_down).astype(np.int32)
            groups = self.voltage.group(
                ctx,
                f"circuit_{lamp_rule}",
                limit,
                out_of_range,
                lamps.since_ms(out_of_range),
                cabinets,
                cabs.since_ms(cabinets),
                worst=worst,
            )
            single = groups.lamps
            out.append(groups.circuit)
            out.append(
                Conditions(
                    lamp_rule,
                    single,
                    _f64(volts[single]),
                    np.full(len(single), limit),
                    since_ms=lamps.since_ms(single),
                )
            )
        return out

    def _cabinet_rules(self, ctx: TickContext, gateway_down: BoolArray) -> list[Conditions]:
        """Leakage and the door are safety facts of the cabinet itself: a circuit outage does not explain
        them (a cut cable may well be live and leaking); a dead gateway's stale readings open nothing new."""
        table = self.topology.table(CABINET)
        out = []
        for rule, state, value, threshold in (
            ("leakage", self.leak, ctx.state[CABINET].values["residual_current"], self.config.leakage_ma),
            ("cabinet_door", self.door, None, 0.0),
        ):
            candidates = np.flatnonzero(state.active & table.in_service)
            keep = ~gateway_down[candidates] | np.isin(candidates, ctx.book.open_subjects(rule))
            active = candidates[keep].astype(np.int32)
            shown = _f64(value[active]) if value is not None else np.ones(len(active))
            out.append(
                Conditions(
                    rule, active, shown, np.full(len(active), threshold), since_ms=state.since_ms(active)
                )
            )
        return out


def _f64(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _latest(b: Batch, ks: KindState, name: str) -> FloatArray:
    """The round's values of ``name``, the device's last known one where a reading lacks it."""
    new = b.fields.get(name)
    if new is None:
        return ks.values[name][b.device].astype(np.float64)
    missing = np.isnan(new)
    if not missing.any():
        return new
    return np.where(missing, ks.values[name][b.device], new)
