"""Communication loss (DOMAIN.md section 2: "no reading for k reporting periods, or the gateway's last will").

**Cadence**, learned per device (float32) from the gaps between its consecutive readings' own timestamps,
starting from the registry param ``report_interval_s`` or the kind's default (lamps, cabinets, bridge
nodes, stations, gauges every 60 s; bins hourly, as ``firmware_sim.simulation`` reports). The median of
the first three gaps seeds it (one outage among them does not count, and no gap counts as shorter than
the prior: an alarm's burst is not a cadence). After that an EWMA learns only gaps in [cadence /
burst_factor, late_after × cadence]: a shorter gap is a burst (a bin in alarm reports every minute, a
gateway flushes its buffer), a longer one a missed report or an outage. ``relearn_gaps`` long gaps in a
row mean the device now reports less often: their mean becomes the cadence. (A device set to report much
*more* often keeps its longer timeout: slower to notice, never a false alarm.)

A device is **late** past ``late_after`` periods (not a finding: ``late_mask`` is for the status line)
and **offline** past ``offline_after`` (k) periods: ``offline_<kind>``. In flood season stations and gauges
are offline sooner (DOMAIN section 4). Deadlines are whole seconds per device (uint32), moved on each
reading, so ``evaluate`` is a comparison per device. A device never heard from is offline once
``never_seen_grace_s`` (and its own offline time) has passed since the first evaluate. Devices out of
service never are.

**Gateways**: ``gateway_offline`` when at least ``gateway_fraction`` of a gateway's in-service devices
(at least ``gateway_min_devices``; one, when all its devices report rarely, like hourly bin meters) are
offline and none of them reports on time (a gateway that forwards
anyone's reading is up: the lamps of a circuit whose cable was stolen fall silent, their cabinet on the
same concentrator does not), or when the gateway's last will said so (``gateway_status``). Its devices go
into ``ctx.suppressed_mask`` and raise no finding of their own.

**Circuits**: lamps silent together, at least ``circuit_fraction`` of a circuit's lamps heard from, while
their gateway is up, are a circuit matter (cable theft, a tripped breaker): no ``offline_lamp`` for them;
``silent_circuits`` tells the streetlight detector, whose ``circuit_outage`` raises one finding. Lamps
under an open circuit finding (``circuit_rules``) raise none either. Pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.circuit_rules import Members
from analytics.engine import TickContext
from analytics.findings import Conditions, RuleInfo
from analytics.state import NEVER, Batch, LiveState
from analytics.topology import GATEWAY_SUBJECT, Table, Topology
from devices.kinds import DeviceKind

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
UIntArray = npt.NDArray[np.uint32]
BoolArray = npt.NDArray[np.bool_]

FAMILY = "comm"
GATEWAY_RULE = "gateway_offline"
_NO_DEADLINE = np.uint32(np.iinfo(np.uint32).max)
_SEED_GAPS = 3  # the cadence starts as the median of a device's first three gaps


def offline_rule(kind: DeviceKind) -> str:
    return f"offline_{kind.value}"


def _cadences() -> Mapping[DeviceKind, float]:
    # PRACTICE: the simulator's (and common field) intervals: a minute, bins hourly (DOMAIN 5: 1 to 24 h).
    return MappingProxyType({**dict.fromkeys(DeviceKind, 60.0), DeviceKind.BIN: 3600.0})


def _flood_kinds() -> Mapping[DeviceKind, float]:
    # CHOICE: DOMAIN 4 "in flood season the offline timeout for stations is shorter": 2 periods, not 3.
    return MappingProxyType({DeviceKind.PUMP_STATION: 2.0, DeviceKind.FLOOD_GAUGE: 2.0})


@dataclass(frozen=True, slots=True, kw_only=True)
class CommRules:
    """When a device is late or offline; DOMAIN.md section 2 (communication loss) unless said otherwise."""

    late_after: float = 1.5  # CHOICE: periods without a reading before a device shows as late
    offline_after: float = 3.0  # CHOICE: DOMAIN's k, "no reading for k reporting periods"
    default_cadence_s: Mapping[DeviceKind, float] = field(default_factory=_cadences)
    cadence_param: str = "report_interval_s"  # registry param: a device's configured interval (s)
    learn_weight: float = 0.1  # CHOICE: EWMA weight of a new in-band gap (about the last 10 gaps)
    burst_factor: float = 4.0  # CHOICE: a gap under cadence / 4 is a burst, not the cadence
    relearn_gaps: int = 3  # CHOICE: this many long gaps in a row: the device now reports less often
    min_cadence_s: float = 1.0  # CHOICE: deadlines are whole seconds
    never_seen_grace_s: float = 600.0  # CHOICE: after start, before a device never heard from is offline
    gateway_fraction: float = 0.9  # CHOICE: share of a gateway's devices offline at once
    # CHOICE: a gateway whose devices all report this rarely or less (bin meters: hourly) is down as soon as
    # all are late and one is offline; waiting for 90 % of hourly reporters to be overdue takes hours.
    slow_reporter_s: float = 600.0
    gateway_min_devices: int = 2  # a gateway with one device: that device's finding
    circuit_fraction: float = 0.9  # CHOICE: as StreetlightRules.outage_fraction
    circuit_min_lamps: int = 2  # CHOICE: as StreetlightRules.circuit_min_lamps
    circuit_rules: tuple[str, ...] = ("circuit_outage",)  # open findings that explain their lamps' silence
    flood_season_months: tuple[int, ...] = (6, 7, 8, 9)  # LOCAL: a typical 汛期, June to September
    flood_season_offline_after: Mapping[DeviceKind, float] = field(default_factory=_flood_kinds)

    def __post_init__(self) -> None:
        if not 1.0 <= self.late_after < self.offline_after:
            raise RuleConfigError("need 1 <= late_after < offline_after (periods)")
        for kind, season_k in self.flood_season_offline_after.items():
            if not self.late_after < season_k <= self.offline_after:
                raise RuleConfigError(
                    f"flood-season offline_after for {kind} must be in (late_after, offline_after]"
                )
        for kind, cadence in self.default_cadence_s.items():
            if not cadence >= self.min_cadence_s:
                raise RuleConfigError(
                    f"default cadence of {kind} must be >= {self.min_cadence_s} s, not {cadence}"
                )
        if not 0.0 < self.learn_weight <= 1.0:
            raise RuleConfigError(f"learn_weight must be in (0, 1], not {self.learn_weight}")
        if not self.burst_factor > 1.0:
            raise RuleConfigError(f"burst_factor must be > 1, not {self.burst_factor}")
        if not 1 <= self.relearn_gaps <= 100:
            raise RuleConfigError(f"relearn_gaps must be 1 to 100, not {self.relearn_gaps}")
        if not self.min_cadence_s > 0 or not self.never_seen_grace_s >= 0:
            raise RuleConfigError("min_cadence_s must be > 0 and never_seen_grace_s >= 0")
        for name in ("gateway_fraction", "circuit_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise RuleConfigError(f"{name} must be in (0, 1], not {getattr(self, name)}")
        if self.gateway_min_devices < 1 or self.circuit_min_lamps < 1:
            raise RuleConfigError("gateway_min_devices and circuit_min_lamps must be >= 1")
        if any(not 1 <= m <= 12 for m in self.flood_season_months):
            raise RuleConfigError(
                f"flood_season_months must be months 1 to 12, not {self.flood_season_months}"
            )

    def offline_periods(self, kind: DeviceKind, now_ms: int) -> float:
        """k for ``kind`` at ``now_ms`` (shorter for stations and gauges in flood season)."""
        season_k = self.flood_season_offline_after.get(kind)
        if season_k is None or not self.flood_season_months:
            return self.offline_after
        month = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC).month
        return season_k if month in self.flood_season_months else self.offline_after


def comm_rules(kinds: Sequence[DeviceKind]) -> tuple[RuleInfo, ...]:
    per_kind = tuple(
        RuleInfo(
            offline_rule(kind),
            kind.value,
            FAMILY,
            f"{kind.value.replace('_', ' ').capitalize()} offline",
            "no reading for {value:.0f} min, offline after {threshold:.0f} min without one,"
            " last heard {since}",
            "min",
        )
        for kind in kinds
    )
    gateway = RuleInfo(
        GATEWAY_RULE,
        GATEWAY_SUBJECT,
        FAMILY,
        "Gateway offline",
        "gateway {subject} is offline: none of its {threshold:.0f} devices can report ({value:.0f} already"
        " past their offline time), since {since}",
    )
    return (*per_kind, gateway)


class _Clock:
    """The reporting clock of one kind's devices."""

    def __init__(self, table: Table, prior_s: FloatArray) -> None:
        n = len(table)
        self.kind = table.kind
        self.in_service = table.in_service
        self.gateway = table.gateway
        self.circuit = table.circuit
        self.cadence = prior_s.astype(np.float32)  # the prior until the first gap
        # The prior per device only where the registry sets some; else one number for the kind.
        varying = bool(len(prior_s)) and bool(np.any(prior_s != prior_s[0]))
        self.prior = (
            prior_s.astype(np.float32) if varying else np.float32(prior_s[0] if len(prior_s) else 60.0)
        )
        self.learned = np.zeros(n, dtype=np.uint8)  # gaps seen, up to _SEED_GAPS
        self.long_run = np.zeros(n, dtype=np.uint8)  # long gaps in a row
        self.long_sum = np.zeros(n, dtype=np.float32)  # their sum; while seeding, the smaller seed gap
        self.late_at = np.full(n, _NO_DEADLINE, dtype=np.uint32)
        self.offline_at = np.full(n, _NO_DEADLINE, dtype=np.uint32)
        self.heard = np.zeros(n, dtype=np.bool_)

    @property
    def nbytes(self) -> int:
        arrays = (self.cadence, self.learned, self.long_run, self.long_sum, self.late_at, self.offline_at)
        return sum(a.nbytes for a in arrays) + self.heard.nbytes + np.asarray(self.prior).nbytes

    def prior_of(self, device: IntArray) -> FloatArray:
        return np.broadcast_to(np.asarray(self.prior, dtype=np.float64), (len(self.cadence),))[device]


@dataclass(frozen=True, slots=True)
class _Assessment:
    """Who is offline at one instant, before the book and the context are consulted."""

    now_ms: int
    offline: dict[DeviceKind, IntArray]  # offline devices (in service), per kind
    gateway_down: BoolArray
    gateway_offline_n: Int64Array
    silent_circuits: BoolArray


class CommDetector:
    """Learns cadences, raises ``offline_<kind>`` and ``gateway_offline``. Runs before the other detectors."""

    def __init__(self, topology: Topology, config: CommRules) -> None:
        self.topology, self.config = topology, config
        self._clocks: dict[DeviceKind, _Clock] = {}
        n_gateways = len(topology.gateways)
        self._gateway_n = np.zeros(n_gateways, dtype=np.int64)
        fast = np.zeros(n_gateways, dtype=np.bool_)  # has a device reporting more often than slow_reporter_s
        self._gateway_members: dict[DeviceKind, Members] = {}
        for kind, table in topology.tables.items():
            default = config.default_cadence_s.get(kind, 60.0)
            prior = np.maximum(table.param(config.cadence_param, default), config.min_cadence_s)
            self._clocks[kind] = _Clock(table, prior)
            members = Members.of(table.gateway, n_gateways, keep=table.in_service)
            self._gateway_members[kind] = members
            self._gateway_n += members.sizes()
            quick = table.in_service & (prior < config.slow_reporter_s) & (table.gateway >= 0)
            fast[table.gateway[quick]] = True
        self._slow_gateway = ~fast
        self._heard_per_circuit = np.zeros(len(topology.circuits), dtype=np.int64)
        self._will_s = np.zeros(n_gateways, dtype=np.uint32)  # last will's time; 0: none
        self._was_down = np.zeros(n_gateways, dtype=np.bool_)  # gateways down at the last assessment
        self._start_ms: int | None = None
        self._cache: _Assessment | None = None
        self._rules = comm_rules(tuple(topology.tables))

    @property
    def kinds(self) -> frozenset[DeviceKind]:
        return frozenset(self._clocks)

    @property
    def rules(self) -> Sequence[RuleInfo]:
        return self._rules

    @property
    def nbytes(self) -> int:
        clocks = sum(c.nbytes for c in self._clocks.values())
        members = sum(m.nbytes for m in self._gateway_members.values())
        return (
            clocks
            + members
            + self._gateway_n.nbytes
            + self._heard_per_circuit.nbytes
            + self._will_s.nbytes
            + self._slow_gateway.nbytes
            + self._was_down.nbytes
        )

    # -- inputs ---------------------------------------------------------------------------------------

    def gateway_status(self, gateway: int, online: bool, ts_ms: int) -> None:
        """The gateway's own status message: its last will (offline) takes it offline at once; online
        lifts that (and so does any of its devices' readings stamped after the will). A gateway number
        outside this topology (-1: not in this partition) is ignored."""
        if not 0 <= gateway < len(self._will_s):
            return
        self._will_s[gateway] = 0 if online else max(1, ts_ms // 1000)
        self._cache = None

    def observe(self, batch: Batch, state: LiveState) -> None:
        clock = self._clocks[batch.kind]
        serving = clock.in_service[batch.device]
        device, ts = batch.device[serving], batch.ts_ms[serving]
        if not len(device):
            return
        self._cache = None
        before = state[batch.kind].last_ts[device]
        heard = before != NEVER
        if heard.any():
            self._learn(clock, device[heard], (ts[heard] - before[heard]) / 1000.0)
        if batch.kind is DeviceKind.LAMP:
            first = device[~clock.heard[device]]
            circuit = clock.circuit[first]
            np.add.at(self._heard_per_circuit, circuit[circuit >= 0], 1)
        clock.heard[device] = True
        cadence = clock.cadence[device].astype(np.float64)
        ts_s = ts // 1000
        clock.late_at[device] = ts_s + np.ceil(self.config.late_after * cadence)  # uint32 s: until 2106
        clock.offline_at[device] = ts_s + np.ceil(self.config.offline_after * cadence)
        gw = clock.gateway[device]
        willed = _behind(gw, self._will_s > 0)
        if willed.any():  # a reading stamped after the will: the gateway is back
            back = gw[willed][ts_s[willed] > self._will_s[gw[willed]]]
            self._will_s[back] = 0

    def _learn(self, clock: _Clock, device: IntArray, gap_s: FloatArray) -> None:
        learned = clock.learned[device]
        seeding = learned < _SEED_GAPS
        if seeding.any():
            self._seed(clock, device[seeding], gap_s[seeding], learned[seeding])
            device, gap_s = device[~seeding], gap_s[~seeding]
        if not len(device):
            return
        c = self.config
        cadence = clock.cadence[device].astype(np.float64)
        in_band = (gap_s >= cadence / c.burst_factor) & (gap_s <= c.late_after * cadence)
        band = device[in_band]
        clock.cadence[band] = cadence[in_band] + c.learn_weight * (gap_s[in_band] - cadence[in_band])
        clock.long_run[band] = 0
        clock.long_sum[band] = 0.0
        long = np.flatnonzero(gap_s > c.late_after * cadence)
        if not len(long):
            return
        # Long gaps in a row: a device now reporting less often. Their mean becomes its cadence.
        slow = device[long]
        run = clock.long_run[slow].astype(np.int64) + 1
        total = clock.long_sum[slow].astype(np.float64) + gap_s[long]
        relearn = run >= c.relearn_gaps
        clock.cadence[slow[relearn]] = np.maximum(total[relearn] / run[relearn], c.min_cadence_s)
        clock.long_run[slow] = np.where(relearn, 0, run)
        clock.long_sum[slow] = np.where(relearn, 0.0, total)

    def _seed(
        self, clock: _Clock, device: IntArray, gap_s: FloatArray, learned: npt.NDArray[np.uint8]
    ) -> None:
        """The median of the first three gaps, max(min(g1, g2), min(max(g1, g2), g3)); until the third, the
        larger gap so far (a longer timeout: never a false alarm), ``long_sum`` keeping the smaller. No seed
        gap counts as shorter than the prior: a bin whose first gaps are an alarm's minute reports must not
        learn a minute cadence. A device that really reports faster gets there through the EWMA."""
        c = self.config
        gap_s = np.maximum(gap_s, clock.prior_of(device))
        cadence = clock.cadence[device].astype(np.float64)
        low = clock.long_sum[device].astype(np.float64)
        first, second = learned == 0, learned == 1
        seed = np.where(
            first,
            gap_s,
            np.where(second, np.maximum(cadence, gap_s), np.maximum(low, np.minimum(cadence, gap_s))),
        )
        clock.cadence[device] = np.maximum(seed, c.min_cadence_s)
        clock.long_sum[device] = np.where(first, gap_s, np.where(second, np.minimum(cadence, gap_s), 0.0))
        clock.long_run[device] = 0
        clock.learned[device] = learned + 1

    # -- masks ----------------------------------------------------------------------------------------

    def _offline_at(self, clock: _Clock, now_ms: int) -> UIntArray:
        """Offline deadlines, brought forward in flood season for the kinds it shortens."""
        k = self.config.offline_periods(clock.kind, now_ms)
        if k == self.config.offline_after:
            return clock.offline_at
        earlier = np.ceil((self.config.offline_after - k) * clock.cadence.astype(np.float64))
        moved = np.maximum(clock.offline_at.astype(np.float64) - earlier, clock.late_at.astype(np.float64))
        return np.where(clock.heard, moved, clock.offline_at).astype(np.uint32)

    def offline_mask(self, kind: DeviceKind, now_ms: int) -> BoolArray:
        """Devices in service with no reading for k periods, or never heard from past the grace."""
        clock = self._clocks[kind]
        return np.asarray(self._offline_at(clock, now_ms) <= now_ms // 1000, dtype=np.bool_)

    def late_mask(self, kind: DeviceKind, now_ms: int) -> BoolArray:
        """Devices past ``late_after`` periods but not yet offline (not a finding)."""
        clock = self._clocks[kind]
        now_s = now_ms // 1000
        return np.asarray(
            (clock.late_at <= now_s) & (self._offline_at(clock, now_ms) > now_s), dtype=np.bool_
        )

    def cadence_s(self, kind: DeviceKind) -> Float32Array:
        """Each device's learned reporting interval (s)."""
        return self._clocks[kind].cadence

    def silent_circuits(self, now_ms: int) -> BoolArray:
        """Circuits whose lamps fell silent together while their gateway is up (as of ``now_ms``)."""
        return self._assess(now_ms).silent_circuits

    # -- evaluate -------------------------------------------------------------------------------------

    def _start(self, now_ms: int) -> None:
        self._start_ms = now_ms
        for clock in self._clocks.values():
            never = clock.in_service & ~clock.heard
            wait = np.maximum(
                self.config.never_seen_grace_s, self.config.offline_after * clock.cadence[never]
            )
            clock.offline_at[never] = np.minimum(now_ms // 1000 + np.ceil(wait), _NO_DEADLINE - 1)
            clock.late_at[never] = clock.offline_at[never]
        self._cache = None

    def _assess(self, now_ms: int) -> _Assessment:
        if self._cache is not None and self._cache.now_ms == now_ms:
            return self._cache
        now_s = now_ms // 1000
        n_gateways = len(self._gateway_n)
        offline: dict[DeviceKind, IntArray] = {}
        gateway_off = np.zeros(n_gateways, dtype=np.int64)
        gateway_slow = np.zeros(n_gateways, dtype=np.int64)
        for kind, clock in self._clocks.items():
            slow = np.flatnonzero(clock.late_at <= now_s)  # late or offline: not reporting on time
            off = slow[self._offline_at(clock, now_ms)[slow] <= now_s].astype(np.int32)
            offline[kind] = off
            gw = clock.gateway[slow]
            gateway_slow += np.bincount(gw[gw >= 0], minlength=n_gateways)
            gw = clock.gateway[off]
            gateway_off += np.bincount(gw[gw >= 0], minlength=n_gateways)
        n = self._gateway_n
        # A gateway is down when none of its devices reports on time and enough of them are already past
        # their offline time; for slow reporters (hourly bins) "enough" is one: they would otherwise go
        # offline one by one, each with its own finding, long before 90 % of them are overdue at once.
        slow_kinds_only = self._slow_gateway
        needed = np.where(slow_kinds_only, 1, self.config.gateway_fraction * n)
        down = (self._will_s > 0) | (
            (n >= self.config.gateway_min_devices) & (gateway_off >= needed) & (gateway_slow >= n)
        )
        recovered = self._was_down & ~down
        self._was_down = down
        if recovered.any():
            # The link is back: every device behind it gets its full periods to report again, counted
            # from now. Otherwise the hourly meters behind a gateway that was down go offline one by one,
            # each with its own finding, in the hour after the gateway itself came back.
            self._restart_deadlines(recovered, now_s)
            return self._assess(now_ms)
        silent = self._silent_circuits(offline.get(DeviceKind.LAMP, np.zeros(0, np.int32)), down)
        self._cache = _Assessment(now_ms, offline, down, gateway_off, silent)
        return self._cache

    def _restart_deadlines(self, gateways: BoolArray, now_s: int) -> None:
        c = self.config
        for clock in self._clocks.values():
            behind = np.flatnonzero(
                (clock.gateway >= 0) & gateways[np.maximum(clock.gateway, 0)] & clock.heard
            )
            if not len(behind):
                continue
            cadence = clock.cadence[behind].astype(np.float64)
            late = np.minimum(now_s + np.ceil(c.late_after * cadence), _NO_DEADLINE - 1).astype(np.uint32)
            off = np.minimum(now_s + np.ceil(c.offline_after * cadence), _NO_DEADLINE - 1).astype(np.uint32)
            clock.late_at[behind] = np.maximum(clock.late_at[behind], late)
            clock.offline_at[behind] = np.maximum(clock.offline_at[behind], off)

    def _silent_circuits(self, offline_lamps: IntArray, gateway_down: BoolArray) -> BoolArray:
        clock = self._clocks[DeviceKind.LAMP]
        behind_down = _behind(clock.gateway[offline_lamps], gateway_down)
        lost = offline_lamps[clock.heard[offline_lamps] & ~behind_down]
        circuit = clock.circuit[lost]
        silent_n = np.bincount(circuit[circuit >= 0], minlength=len(self._heard_per_circuit))
        heard = self._heard_per_circuit
        return np.asarray(
            (heard >= self.config.circuit_min_lamps) & (silent_n >= self.config.circuit_fraction * heard),
            dtype=np.bool_,
        )

    def evaluate(self, ctx: TickContext) -> list[Conditions]:
        if self._start_ms is None:
            self._start(ctx.now_ms)
        seen = self._assess(ctx.now_ms)
        down = np.flatnonzero(seen.gateway_down).astype(np.int32)
        out: list[Conditions] = []
        for kind, clock in self._clocks.items():
            members = self._gateway_members[kind]
            if len(down):
                ctx.suppressed_mask(kind)[members.gather(down)[0]] = True
            off = seen.offline[kind]
            off = off[~_behind(clock.gateway[off], seen.gateway_down)]
            if kind is DeviceKind.LAMP:
                off = self._unexplained_lamps(ctx, off, seen.silent_circuits)
            out.append(self._offline_conditions(ctx, kind, off))
        out.append(self._gateway_conditions(ctx, down, seen))
        return out

    def _unexplained_lamps(self, ctx: TickContext, off: IntArray, silent: BoolArray) -> IntArray:
        """Offline lamps not explained by their circuit: silent together (left to the circuit rule, when
        the engine has one) or under an open circuit finding."""
        handled = [rule for rule in self.config.circuit_rules if rule in ctx.book.rules]
        if not handled or not len(off):
            return off
        explained = silent.copy()
        for rule in handled:
            explained[ctx.book.open_subjects(rule)] = True
        circuit = self._clocks[DeviceKind.LAMP].circuit[off]
        return off[~((circuit >= 0) & explained[np.maximum(circuit, 0)])]

    def _offline_conditions(self, ctx: TickContext, kind: DeviceKind, off: IntArray) -> Conditions:
        assert self._start_ms is not None
        last = ctx.state[kind].last_ts[off]
        since = np.where(last == NEVER, self._start_ms, last)
        limit_min = self.config.offline_periods(kind, ctx.now_ms) * self._clocks[kind].cadence[off] / 60.0
        return Conditions(
            offline_rule(kind),
            off,
            (ctx.now_ms - since) / 60_000.0,
            limit_min.astype(np.float64),
            since_ms=since.astype(np.int64),
        )

    def _gateway_conditions(self, ctx: TickContext, down: IntArray, seen: _Assessment) -> Conditions:
        """One finding per dead gateway; since its last will, else its devices' newest reading."""
        last = np.full(len(down), NEVER, dtype=np.int64)
        for kind, members in self._gateway_members.items():
            devices, bounds = members.gather(down)
            if not len(devices):
                continue
            ts = ctx.state[kind].last_ts[devices]
            for i in range(len(down)):
                if bounds[i + 1] > bounds[i]:
                    last[i] = max(last[i], int(ts[bounds[i] : bounds[i + 1]].max()))
        will = self._will_s[down].astype(np.int64) * 1000
        since = np.where(will > 0, will, np.where(last == NEVER, ctx.now_ms, last))
        return Conditions(
            GATEWAY_RULE,
            down,
            seen.gateway_offline_n[down].astype(np.float64),
            self._gateway_n[down].astype(np.float64),
            since_ms=since,
        )


def _behind(gateway: IntArray, flagged: BoolArray) -> BoolArray:
    """Per device: its gateway (-1: none) is ``flagged``."""
    if not flagged.any():
        return np.zeros(len(gateway), dtype=np.bool_)
    return np.asarray((gateway >= 0) & flagged[np.maximum(gateway, 0)], dtype=np.bool_)
