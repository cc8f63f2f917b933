"""The city's rates per scope (road, road class, grid cell, district, city) and the shortfalls below target.

Definitions (DOMAIN.md section 2, as assessors count):

- **Lighting rate** = lit / due over lamp heads (a pole with two heads counts twice). ``due`` is the
  schedule's (``ctx.lamps.due``: night, not off under a part-night plan or a planned outage) and in
  service; ``lit`` is ``analytics.lamps.lit``. A due lamp whose controller is offline (the comm
  detector's ``offline_mask``) or has never reported is *unknown*: the observed rate
  ``lighting_rate`` leaves unknown lamps out of both lit and due; the lower bound
  ``lighting_rate_lower`` counts them dark. NaN where nothing is due.
- **Facility intact rate** = intact items / items, per item: in-service lamp heads (this registry has
  no separate pole assets, so a lamp head stands for its pole too), in-service cabinets and circuits.
  An item is not intact while a fault finding is open on it (``LAMP_FAULT_RULES``, lamps under an open
  ``CIRCUIT_LAMP_RULES`` finding, ``CABINET_FAULT_RULES``, ``CIRCUIT_FAULT_RULES``). A cabinet or
  circuit belongs to the road, grid cell and district of its cabinet (a circuit without a cabinet: of
  its first lamp).
- **Installation rate** (an asset-register metric): lamp heads in service / lamp heads registered in
  the scope (a registered head not in service is planned, being built or withdrawn); and roads with a
  lamp in service / roads with a registered lamp (``road_installation_rate``).

Counting is ``analytics.rate_scopes``: one bincount per evaluate, summed into every scope.

Tables: ``kpi`` for every scope at every evaluate (the adapter decides how often to write);
``kpi_check`` with the same fields at each night check time; ``kpi_night`` when the night ends
(switch-off at the city centre): checks, nightly minimum and mean of the observed and lower-bound
lighting rate per scope, stamped with the switch-off instant.

Shortfalls are judged at the night check times only (DOMAIN.md section 2: assessors check at fixed
times after switch-on): a finding opens at a check below target and clears at the first check at or
above it, so a lamp being debounced between checks raises nothing. Lighting shortfalls use the
observed rate: a dead modem is the comm detector's finding, not a dark road. A scope with nothing to
judge at a check (nothing due and heard from) keeps what the last check found. Until the first check
after start the rate rules report nothing, so findings restored after a restart stay open. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError
from analytics.engine import KpiTable, TickContext
from analytics.findings import Conditions, FindingBook, RuleInfo
from analytics.lamp_plans import hhmm_minutes
from analytics.lamps import LampPower, LitJudge
from analytics.rate_scopes import SCOPES, ScopeCounts, lamp_codes, rate
from analytics.schedule import CityNights, Night, ScheduleConfig
from analytics.state import NEVER
from analytics.topology import CITY, DISTRICT, NONE, ROAD, ROAD_CLASS, IntArray, Topology
from devices.assets import ROAD_CLASSES
from devices.kinds import DeviceKind

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]

#: Fault rules (a colleague's detectors) that make an item not intact; DOMAIN.md section 2.
LAMP_FAULT_RULES = (
    "lamp_failure",
    "day_burning",
    "lamp_cycling",
    "relay_stuck",
    "over_voltage",
    "under_voltage",
)
CIRCUIT_LAMP_RULES = ("circuit_outage", "circuit_over_voltage", "circuit_under_voltage")
OUTAGE_RULES = ("circuit_outage",)  # its lamps are dark, whether they still report or not
CABINET_FAULT_RULES = ("leakage", "cabinet_door")
CIRCUIT_FAULT_RULES = ("circuit_outage",)

ROAD_RULE = "rate_lighting_road"
CLASS_RULE = "rate_lighting_class"
DISTRICT_RULE = "rate_lighting_district"
INTACT_DISTRICT_RULE = "rate_intact_district"
INTACT_CITY_RULE = "rate_intact_city"

#: DOMAIN.md section 2, national plans: trunk 98 %, secondary and branch roads 96 % (public places are
#: not named there: kept at the seed plan's 100 %). An alternative to RateConfig's default.
NATIONAL_PLAN_TARGETS: Mapping[str, float] = MappingProxyType(
    {"trunk": 0.98, "secondary": 0.96, "branch": 0.96, "public_place": 1.0}
)
_EPS = 1e-9


class OfflineSource(Protocol):
    """Which devices are offline now (the comm detector)."""

    def offline_mask(self, kind: DeviceKind, now_ms: int) -> BoolArray: ...


class NightClock(Protocol):
    """Night windows at the city centre and the local clock (``analytics.schedule.LampScheduler``)."""

    def night(self, now_ms: int) -> Night: ...

    def next_local_time(self, after_ms: int, minute: int) -> int: ...


def _seed_targets() -> Mapping[str, float]:
    # DOMAIN.md section 2, seed plan: 100 % for city roads and public places.
    return MappingProxyType(dict.fromkeys(ROAD_CLASSES, 1.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class RateConfig:
    """Targets, the per-road rule and the night check times."""

    class_targets: Mapping[str, float] = field(default_factory=_seed_targets)  # seed plan; see NATIONAL_...
    district_target: float = 1.0  # DOMAIN.md section 2, seed plan: 100 % lighting rate
    intact_target: float = 0.95  # DOMAIN.md section 2, seed plan: facility intact rate >= 95 %
    # DOMAIN.md section 2, LOCAL (Changsha): a road of big_road_lamps lamps or more must be at least
    # road_min_rate lit; a shorter one is judged by its dark lamps: (fewest lamps, most dark) bands.
    road_min_rate: float = 0.97
    big_road_lamps: int = 200
    short_road_caps: tuple[tuple[int, int], ...] = ((150, 4), (100, 3), (0, 2))
    # DOMAIN.md section 2, CHOICE: assessors check during the on-period, e.g. 30 min after switch-on,
    # 22:00 and 02:00 local time.
    check_after_on_min: tuple[float, ...] = (30.0,)
    check_local_times: tuple[str, ...] = ("22:00", "02:00")

    def __post_init__(self) -> None:
        targets = dict(_seed_targets())
        for road_class, target in self.class_targets.items():
            if road_class not in ROAD_CLASSES:
                raise RuleConfigError(
                    f"class_targets: {road_class!r} is not one of {', '.join(ROAD_CLASSES)}"
                )
            targets[road_class] = target
        object.__setattr__(self, "class_targets", MappingProxyType(targets))
        for name, value in (
            *((f"class_targets[{c}]", t) for c, t in targets.items()),
            ("district_target", self.district_target),
            ("intact_target", self.intact_target),
            ("road_min_rate", self.road_min_rate),
        ):
            if not 0.0 < value <= 1.0:
                raise RuleConfigError(f"{name} must be a rate in (0, 1], not {value}")
        if self.big_road_lamps < 1:
            raise RuleConfigError(f"big_road_lamps must be >= 1, not {self.big_road_lamps}")
        bands = [m for m, _ in self.short_road_caps]
        if not bands or bands != sorted(bands, reverse=True) or len(set(bands)) != len(bands) or bands[-1]:
            raise RuleConfigError("short_road_caps: bands by fewest lamps, descending, unique, ending at 0")
        if bands[0] >= self.big_road_lamps or any(cap < 0 for _, cap in self.short_road_caps):
            raise RuleConfigError("short_road_caps: bands below big_road_lamps, caps >= 0")
        if any(not 0.0 <= m < 24 * 60 for m in self.check_after_on_min):
            raise RuleConfigError(f"check_after_on_min must be 0 to 1440 min: {self.check_after_on_min}")
        for text in self.check_local_times:
            hhmm_minutes(text, "check time")

    def dark_cap(self, lamps: IntArray) -> IntArray:
        """Most dark lamps a short road of ``lamps`` lamps may have (the short-road bands)."""
        caps = np.zeros(len(lamps), dtype=np.int32)
        for least, cap in reversed(self.short_road_caps):
            caps = np.where(lamps >= least, cap, caps)
        return caps


def _rules(config: RateConfig) -> tuple[RuleInfo, ...]:
    road_rule = (
        f"at least {100 * config.road_min_rate:g} % lit on roads of {config.big_road_lamps} lamps or "
        f"more, a dark-lamp cap on shorter ones"
    )
    lighting = (
        "lighting rate of {what} {value:.2f} {unit} below the target {threshold:.2f} {unit} at the night "
        "check (lamps with an offline controller not counted), since {since}"
    )
    intact = (
        "facility intact rate of {what} {value:.2f} {unit} below the target {threshold:.2f} {unit}, "
        "since {since}"
    )
    return (
        RuleInfo(
            ROAD_RULE,
            ROAD,
            "rate",
            "road lighting shortfall",
            "{value:.0f} lamps dark on {subject} at the night check, more than the {threshold:.0f} "
            f"the per-road rule allows ({road_rule}), since {{since}}",
            "lamps",
        ),
        RuleInfo(
            CLASS_RULE,
            ROAD_CLASS,
            "rate",
            "road class lighting shortfall",
            lighting.replace("{what}", "{subject} roads"),
            "%",
        ),
        RuleInfo(
            DISTRICT_RULE,
            DISTRICT,
            "rate",
            "district lighting shortfall",
            lighting.replace("{what}", "district {subject}"),
            "%",
        ),
        RuleInfo(
            INTACT_DISTRICT_RULE,
            DISTRICT,
            "rate",
            "district facility shortfall",
            intact.replace("{what}", "district {subject}"),
            "%",
        ),
        RuleInfo(
            INTACT_CITY_RULE,
            CITY,
            "rate",
            "city facility shortfall",
            intact.replace("{what}", "the city"),
            "%",
        ),
    )


class _Stats:
    """Nightly minimum, sum and count of one rate per scope, NaN checks skipped."""

    def __init__(self, n: int) -> None:
        self.low = np.full(n, np.inf)
        self.total = np.zeros(n)
        self.count = np.zeros(n)

    def add(self, values: FloatArray) -> None:
        known = ~np.isnan(values)
        self.low = np.fmin(self.low, values)
        self.total += np.where(known, values, 0.0)
        self.count += known

    def min(self) -> FloatArray:
        return np.where(self.count > 0, self.low, np.nan)

    def mean(self) -> FloatArray:
        return rate(self.total, self.count)


@dataclass(slots=True)
class _Tally:
    """The check times of one night and the rates seen at those taken so far."""

    night: Night
    pending: list[int]
    observed: dict[str, _Stats]
    lower: dict[str, _Stats]
    taken: int = 0


@dataclass(frozen=True, slots=True)
class _Held:
    """A rate rule's subjects as the last check judged them: since when short (-1: not), and the value."""

    since: Int64Array
    value: FloatArray


class CityRates:
    """Lighting, intact and installation rates of every scope (``analytics.engine.RateKeeper``).

    ``nights`` gives the night windows and the local clock for the check times; pass the engine's
    ``LampScheduler`` so both use the same offsets and timezone (default: a ``CityNights`` at the lamps'
    mean position with the default ``ScheduleConfig``).
    """

    def __init__(
        self,
        topology: Topology,
        config: RateConfig,
        power: LampPower,
        comm: OfflineSource,
        nights: NightClock | None = None,
    ) -> None:
        self.topology, self.config, self.power, self.comm = topology, config, power, comm
        self.nights: NightClock = nights or CityNights.for_topology(topology, ScheduleConfig())
        self.rules: tuple[RuleInfo, ...] = _rules(config)
        self._lamps = topology.table(DeviceKind.LAMP)
        self._in_service = self._lamps.in_service
        self._lit = LitJudge(self._lamps, power)
        cabinets = np.flatnonzero(topology.table(DeviceKind.CABINET).in_service).astype(np.int32)
        self._counts = ScopeCounts(topology, cabinets)
        self._scopes = self._counts.scopes
        road_lamps = self._scopes[ROAD].register["installed"].astype(np.int32)
        self._big_road = road_lamps >= config.big_road_lamps
        self._road_cap = config.dark_cap(road_lamps)
        self._class_target = np.array([config.class_targets[c] for c in ROAD_CLASSES])
        self._check_minutes = [hhmm_minutes(t, "check time") for t in config.check_local_times]
        self._flags = np.zeros((4, len(self._lamps)), dtype=np.bool_)  # due, unknown, dark, not intact
        self._code = np.zeros(len(self._lamps), dtype=np.int8)
        self._circuit_cache: dict[tuple[str, ...], tuple[tuple[bytes, ...], IntArray]] = {}
        self._tally: _Tally | None = None
        self._done_day: int | None = None
        self._held: list[Conditions] | None = None
        self._last: dict[str, _Held] = {}

    # -- counting ------------------------------------------------------------------------------------

    def _lamps_under_circuit_findings(self, book: FindingBook, rules: tuple[str, ...]) -> IntArray:
        """Lamps attached to an open finding of ``rules``: its children, or (none named) the whole
        circuit. Rebuilt only when those open findings change."""
        key = tuple(book.open_subjects(rule).tobytes() for rule in rules)
        cached = self._circuit_cache.get(rules)
        if cached is not None and cached[0] == key:
            return cached[1]
        mask = np.zeros(len(self._lamps), dtype=np.bool_)
        whole: list[int] = []
        for finding in book.open_findings():
            if finding.rule not in rules:
                continue
            if finding.children and finding.child_kind == DeviceKind.LAMP.value:
                found = self._lamps.find(finding.children)
                mask[found[found >= 0]] = True
            else:
                whole.append(finding.number)
        if whole:
            mask |= np.isin(self._lamps.circuit, whole)
        lamps = np.flatnonzero(mask).astype(np.int32)
        self._circuit_cache[rules] = (key, lamps)
        return lamps

    def _broken(self, book: FindingBook, rules: tuple[str, ...], n: int) -> BoolArray:
        mask = np.zeros(n, dtype=np.bool_)
        for rule in rules:
            mask[book.open_subjects(rule)] = True
        return mask

    def _scope_fields(self, ctx: TickContext) -> dict[str, dict[str, FloatArray]]:
        # The per-lamp flags are written into buffers kept from one evaluate to the next: fresh megabyte
        # temporaries cost page faults, which on a busy host doubled the time of this function.
        lamp_state = ctx.state[DeviceKind.LAMP]
        due, unknown, dark, broken = self._flags
        np.logical_and(ctx.lamps.due, self._in_service, out=due)
        np.equal(lamp_state.last_ts, NEVER, out=unknown)  # never heard from
        np.logical_or(unknown, self.comm.offline_mask(DeviceKind.LAMP, ctx.now_ms), out=unknown)
        np.logical_and(unknown, due, out=unknown)
        lit = self._lit(lamp_state)
        # A lamp of a circuit that lost its supply is dark, not unknown, even when it fell silent: the
        # circuit outage explains it (its last reading, from before the cut, would say lit).
        cut = self._lamps_under_circuit_findings(ctx.book, OUTAGE_RULES)
        unknown[cut] = False
        lit[cut] = False
        np.logical_or(lit, unknown, out=dark)
        np.logical_not(dark, out=dark)
        np.logical_and(dark, due, out=dark)
        broken.fill(False)
        for rule in LAMP_FAULT_RULES:
            broken[ctx.book.open_subjects(rule)] = True
        broken[self._lamps_under_circuit_findings(ctx.book, CIRCUIT_LAMP_RULES)] = True
        return self._counts.fields(
            lamp_codes(self._in_service, due, dark, unknown, broken, out=self._code),
            self._broken(ctx.book, CABINET_FAULT_RULES, self.topology.count(DeviceKind.CABINET.value)),
            self._broken(ctx.book, CIRCUIT_FAULT_RULES, len(self.topology.circuits)),
        )

    # -- evaluation ----------------------------------------------------------------------------------

    def evaluate(self, ctx: TickContext) -> tuple[list[KpiTable], list[Conditions]]:
        now = ctx.now_ms
        night = self.nights.night(now)
        kpis: list[KpiTable] = []
        tally = self._tally
        if tally is not None and (now >= tally.night.off_ms or night.day != tally.night.day):
            kpis.extend(self._night_tables(tally))
            self._done_day, self._tally = tally.night.day, None
        if self._tally is None and night.day != self._done_day and night.on_ms <= now < night.off_ms:
            self._tally = self._new_tally(night)
        fields = self._scope_fields(ctx)
        tables = [KpiTable("kpi", name, self._scopes[name].ids, fields[name], now) for name in SCOPES]
        kpis.extend(tables)
        tally = self._tally
        if tally is not None and tally.pending and tally.pending[0] <= now:
            tally.pending = [t for t in tally.pending if t > now]  # checks passed unseen count once
            tally.taken += 1
            for name in SCOPES:
                tally.observed[name].add(fields[name]["lighting_rate"])
                tally.lower[name].add(fields[name]["lighting_rate_lower"])
            kpis.extend(replace(t, measurement="kpi_check") for t in tables)
            self._held = self._judge(now, fields)
        return kpis, list(self._held or ())

    def _new_tally(self, night: Night) -> _Tally:
        after_on = [night.on_ms + round(m * 60_000) for m in self.config.check_after_on_min]
        local = [self.nights.next_local_time(night.start_ms, m) for m in self._check_minutes]
        pending = sorted({t for t in (*after_on, *local) if night.on_ms <= t < night.off_ms})
        sizes = {name: len(self._scopes[name].ids) for name in SCOPES}
        observed = {name: _Stats(n) for name, n in sizes.items()}
        return _Tally(night, pending, observed, {name: _Stats(n) for name, n in sizes.items()})

    def _night_tables(self, tally: _Tally) -> list[KpiTable]:
        if not tally.taken:
            return []
        tables = []
        for name in SCOPES:
            observed, lower = tally.observed[name], tally.lower[name]
            fields = {
                "checks": lower.count.copy(),
                "lighting_rate_min": observed.min(),
                "lighting_rate_mean": observed.mean(),
                "lighting_rate_lower_min": lower.min(),
                "lighting_rate_lower_mean": lower.mean(),
            }
            tables.append(KpiTable("kpi_night", name, self._scopes[name].ids, fields, tally.night.off_ms))
        return tables

    def _judge(self, now: int, fields: Mapping[str, Mapping[str, FloatArray]]) -> list[Conditions]:
        """The shortfalls at a check time, observed rates against targets. A scope with nothing to judge
        (no lamp due and heard from, no item) keeps what the last check found."""
        road = fields[ROAD]
        known = road["due"] - road["unknown"]
        dark = known - road["lit"]
        allowed = np.where(
            self._big_road, np.floor((1.0 - self.config.road_min_rate) * known + _EPS), self._road_cap
        )
        districts = len(self.topology.districts)
        intact = 100.0 * self.config.intact_target
        judged = {  # rule: (value, threshold); lamps dark above the allowed, or a rate below its target
            ROAD_RULE: (dark, allowed),
            CLASS_RULE: (100.0 * fields[ROAD_CLASS]["lighting_rate"], 100.0 * self._class_target),
            DISTRICT_RULE: (
                100.0 * fields[DISTRICT]["lighting_rate"],
                np.full(districts, 100.0 * self.config.district_target),
            ),
            INTACT_DISTRICT_RULE: (100.0 * fields[DISTRICT]["intact_rate"], np.full(districts, intact)),
            INTACT_CITY_RULE: (100.0 * fields[CITY]["intact_rate"], np.full(1, intact)),
        }
        held = []
        for rule, (observed, threshold) in judged.items():
            value = observed
            if rule == ROAD_RULE:
                undecided, short = known <= 0, dark > allowed
            else:
                undecided = np.isnan(value)
                short = np.less(value, threshold - _EPS, out=np.zeros(len(value), np.bool_), where=~undecided)
            before = self._last.get(rule)
            was = before.since >= 0 if before is not None else np.zeros(len(value), np.bool_)
            keep = undecided & was
            active = (short & ~undecided) | keep
            since = np.where(active, now, NONE).astype(np.int64)
            if before is not None:
                since = np.where(active & was, before.since, since)
                value = np.where(keep, before.value, value)
            self._last[rule] = _Held(since, value)
            held.append(Conditions.where(rule, active, value, threshold, since_ms=since))
        return held

    @property
    def nbytes(self) -> int:
        cached = sum(lamps.nbytes for _, lamps in self._circuit_cache.values())
        return self._counts.nbytes + cached + self._flags.nbytes + self._code.nbytes
