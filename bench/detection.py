"""Detection report: the analytics engine against the simulator's ground truth, in process, no MQTT.

    .venv/bin/python bench/detection.py               # 5,000 lamps, 7 simulated days of 60 s ticks
    .venv/bin/python bench/detection.py --quick       # 1,000 lamps, 1 day
    .venv/bin/python bench/detection.py --lamps 20000 --days 14 --rate 10 --seed 3 --per-kind 5

A city is generated, written as the registry's CSV, parsed back (``devices.assets.parse_csv``) and turned into
the analytics topology; the engine is ``analytics.assembly.build_engine(topology)``. The simulator runs with
every fault kind: random faults at ``--rate`` times their default rates plus a plan (``parse_schedule``)
that injects each kind ``--per-kind`` times (cable theft that many times in each mode), placed where it can
be seen: lamp failures, cycling lamps and thefts start at night, day burning and stuck relays by day, bridge
frequency drops after the detector's reference period. Each tick's frames become ``analytics.state.Batch``
values (device numbers mapped once with ``Table.find``), then ``engine.ingest`` and ``engine.tick(now)``
with ``now`` = tick time + the simulator's maximum clock lag, so no device timestamp is in the future.

Which faults count as *observable*, and from when, is in ``bench/detection_truth.py``; the matching rules
(true and false positives, detection, delay, incidents) in ``bench/detection_matching.py``. The lighting
rate: at each night tick (every lamp due by the simulator's clock from 17 min before to 17 min after,
beyond the schedule's 15 min switching margins; the first hour left out as warm-up) the engine's city
``kpi`` ``lighting_rate`` against

- the truth now over the lamps the engine can know (judged, target 0.1 point): those heard from within
  k = 3 periods, and those on a circuit it has found cut (an open circuit_outage finding explains its
  silent lamps: they are dark); each lit or not as it really is now;
- the readings as last reported (not judged: the engine knows more than that, a cut circuit's lamps);
- the simulator's ``LightingTruth`` now (lit / due over every due lamp): it also shows what the unknown
  lamps hide (a silent theft, a dead gateway) and the minutes before a silent lamp turns unknown;
- and the lower bound (unknown counted dark) against the same truth.
"""

# ruff: noqa: E402 - the path fix below must run before the imports
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where ingest.py and analytics.py would shadow
# the packages of those names; the repository root goes there instead (``bench`` as a namespace package).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import datetime as dt
import math
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import orjson
from rich.console import Console
from rich.table import Table

from analytics.assembly import build_engine
from analytics.engine import Engine, TickResult
from analytics.state import Batch
from analytics.topology import Topology, build_topology
from bench.detection_matching import (
    RowScore,
    TruthFault,
    details,
    finding_spans,
    rate_gap,
    score,
    unmapped_counts,
)
from bench.detection_truth import (
    CityIndex,
    KnownLamps,
    Observability,
    TickView,
    TruthLog,
    fault_plan,
    row_label,
    row_rule,
)
from devices.assets import Asset, parse_csv
from devices.kinds import DeviceKind
from firmware_sim.city import City
from firmware_sim.citygen import generate_city
from firmware_sim.faults import FaultInjector, FaultType
from firmware_sim.inventory import write_inventory
from firmware_sim.simulation import SimConfig, Simulation, Tick

#: Streetlight fault kinds: precision and recall >= 0.99, delay <= one interval past the 2-reading debounce.
STREETLIGHT = frozenset(
    {
        FaultType.LAMP_FAILURE,
        FaultType.DAY_BURNING,
        FaultType.CABLE_THEFT,
        FaultType.VOLTAGE_SAG,
        FaultType.OVER_VOLTAGE,
        FaultType.LAMP_CYCLING,
        FaultType.RELAY_STUCK,
        FaultType.LEAKAGE,
        FaultType.CABINET_DOOR,
    }
)
TARGET_SCORE = 0.99


# --- feeding the engine in process --------------------------------------------------------------------------


class Feed:
    """A tick's frames as the engine's batches: device numbers mapped once, fields as float64 columns."""

    def __init__(self, city: City, topology: Topology) -> None:
        self.numbers: dict[DeviceKind, npt.NDArray[np.int32]] = {}
        for kind, table in city.devices().items():
            numbers = topology.table(kind).find(table.ids)
            if (numbers < 0).any():
                raise SystemExit(
                    f"{int((numbers < 0).sum())} simulated {kind} devices are not in the topology"
                )
            self.numbers[kind] = numbers
        self.pumps = city.stations.pumps

    def batches(self, tick: Tick) -> list[Batch]:
        out = []
        for frame in tick.frames:
            if not len(frame):
                continue
            fields = {name: np.asarray(col, dtype=np.float64) for name, col in frame.fields.items()}
            if frame.kind is DeviceKind.PUMP_STATION:  # a station reports the pump blocks it has
                pumps = self.pumps[frame.device]
                for name, col in fields.items():
                    if name.startswith("pump"):
                        col[int(name[4 : name.index("_")]) > pumps] = np.nan
            out.append(
                Batch(
                    frame.kind,
                    self.numbers[frame.kind][frame.device],
                    np.asarray(frame.ts_ms, dtype=np.int64),
                    np.asarray(frame.seq, dtype=np.int64),
                    MappingProxyType(fields),
                )
            )
        return out


def city_rate(result: TickResult) -> tuple[float, float]:
    """The engine's city lighting rate (observed, lower bound) in this tick's KPIs; NaN when absent."""
    for kpi in result.kpis:
        if kpi.measurement == "kpi" and kpi.scope == "city" and len(kpi.scope_ids):
            observed = kpi.fields.get("lighting_rate")
            lower = kpi.fields.get("lighting_rate_lower")
            return (
                float(observed[0]) if observed is not None else math.nan,
                float(lower[0]) if lower is not None else math.nan,
            )
    return math.nan, math.nan


# --- the run ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Timing:
    setup: float = 0.0
    simulate: float = 0.0
    truth: float = 0.0
    ingest: float = 0.0
    evaluate: float = 0.0
    ticks: int = 0
    readings: int = 0


@dataclass(frozen=True, slots=True)
class RateSample:
    """One night tick: the engine's city rates and the simulator's truth."""

    observed: float  # the engine's lighting_rate (unknown lamps left out)
    lower: float  # the engine's lighting_rate_lower (unknown lamps counted dark)
    truth: float  # lit / due over every lamp due, now (``LightingTruth``)
    as_reported: float  # lit / due over the lamps the engine knows, each as of its last reading
    unknown: float  # share of the due lamps without a reading for k periods
    known_now: float = math.nan  # lit / due now, over the lamps the engine can know (see rate_sample)


def rate_sample(
    result: TickResult, sim: Simulation, tick: Tick, known: KnownLamps, cut: npt.NDArray[np.bool_]
) -> RateSample:
    """The engine's rates against the simulator's ``LightingTruth``, the truth as last reported, and the
    truth now over the lamps the engine can know: those heard from within k periods, and those on a
    circuit it has found cut (``cut``: the lamps of its open circuit_outage findings, silent or not)."""
    observed, lower = city_rate(result)
    view = sim.physics.lighting.view
    due = view.night & sim.city.lamps.in_service
    seen = due & (tick.index - known.last < known.periods)
    n_due, n_seen = int(np.count_nonzero(due)), int(np.count_nonzero(seen))
    as_reported = np.count_nonzero(seen & known.burning) / n_seen if n_seen else math.nan
    unknown = (n_due - n_seen) / n_due if n_due else math.nan
    knowable = seen | (due & cut)
    n_knowable = int(np.count_nonzero(knowable))
    known_now = np.count_nonzero(knowable & view.burning) / n_knowable if n_knowable else math.nan
    return RateSample(observed, lower, tick.lighting.rate, as_reported, unknown, known_now)


def cut_lamps(engine: Engine, lamp_number: dict[str, int], n: int) -> npt.NDArray[np.bool_]:
    """The simulator's lamps attached to the engine's open circuit_outage findings."""
    cut = np.zeros(n, dtype=np.bool_)
    for finding in engine.book.open_findings():
        if finding.rule == "circuit_outage":
            cut[[lamp_number[c] for c in finding.children if c in lamp_number]] = True
    return cut


@dataclass(slots=True)
class Outcome:
    city: City
    engine: Engine
    truth: list[TruthFault]
    events: list[tuple[str, str, str, int]]
    parents: dict[str, tuple[str, ...]]
    rates: list[RateSample]
    injected: Counter[str]
    timing: Timing


def build(lamps: int, seed: int, workdir: Path) -> tuple[City, Topology]:
    city = generate_city(lamps, seed)
    path = workdir / "city.csv"
    write_inventory(city, path)
    with path.open(encoding="utf-8") as f:
        parsed = list(parse_csv(f, gateways=set(city.gateways.ids.tolist())))
    assets = [a for a in parsed if isinstance(a, Asset)]
    if len(assets) != len(parsed):
        raise SystemExit(f"{len(parsed) - len(assets)} inventory rows rejected")
    return city, build_topology(assets)


def simulate(args: argparse.Namespace, console: Console) -> Outcome:
    timing = Timing()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="citywatch-detection-") as workdir:
        city, topology = build(args.lamps, args.seed, Path(workdir))
    engine = build_engine(topology)
    obs = Observability()
    config = SimConfig(interval_s=60.0)
    start = dt.datetime.fromisoformat(args.start).timestamp()
    plan = fault_plan(
        city, config, start=start, days=args.days, per_kind=args.per_kind, seed=args.seed, obs=obs
    )
    injector = FaultInjector(city, seed=args.seed, schedule=plan, rate=args.rate)
    sim = Simulation(city, seed=args.seed, start=start, config=config, faults=injector)
    index = CityIndex(city, config)
    log = TruthLog(index, obs)
    feed = Feed(city, topology)
    lag_ms = config.max_clock_lag_ms
    ticks = round(args.days * 86_400 / config.interval_s)
    events: list[tuple[str, str, str, int]] = []
    rates: list[RateSample] = []
    known = KnownLamps(len(city.lamps), obs.offline_periods)
    lamp_number = {str(i): n for n, i in enumerate(city.lamps.ids.tolist())}
    injected: Counter[str] = Counter()
    timing.setup = time.perf_counter() - began
    for k in range(ticks):
        t0 = time.perf_counter()
        tick = sim.step()
        t1 = time.perf_counter()
        log.step(sim, tick)
        injected.update(row_label(e.fault, e.kind) for e in tick.started)
        known.update(tick, sim.physics.lighting.view.burning)
        t2 = time.perf_counter()
        batches = feed.batches(tick)
        engine.ingest(batches)
        t3 = time.perf_counter()
        result = engine.tick(round(tick.t * 1000) + lag_ms)
        t4 = time.perf_counter()
        events.extend((e.change.value, e.finding.rule, e.finding.subject, e.at_ms) for e in result.events)
        if tick.t - start >= obs.warmup_s and TickView(sim, tick, index, obs).deep_night:
            cut = cut_lamps(engine, lamp_number, len(city.lamps))
            rates.append(rate_sample(result, sim, tick, known, cut))
        timing.simulate += t1 - t0
        timing.truth += t2 - t1
        timing.ingest += t3 - t2
        timing.evaluate += t4 - t3
        timing.readings += tick.readings
        if (k + 1) % 1440 == 0:
            console.log(
                f"day {(k + 1) // 1440}: {len(events)} finding events, {sum(injected.values())} faults"
            )
    timing.ticks = ticks
    return Outcome(city, engine, log.truth(), events, log.parents(), rates, injected, timing)


# --- the report ---------------------------------------------------------------------------------------------


def _fmt(x: float, spec: str = ".3f") -> str:
    return "-" if math.isnan(x) else format(x, spec)


def verdict(r: RowScore, fault: FaultType, has_detector: bool, interval_s: float) -> tuple[str, str]:
    """The row's target text and PASS / FAIL / "no detector" / "-"."""
    if not has_detector:
        return ("-", "no detector")
    if fault not in STREETLIGHT:
        return ("-", "-")
    delay_target_s = 3 * interval_s  # one reporting interval past a 2-reading debounce
    target = f"P,R>={TARGET_SCORE} delay<={delay_target_s / 60:.0f}m"
    if fault is FaultType.CABLE_THEFT:
        target += " 1/theft"
    if r.observable == 0:
        return target, "n/a"
    ok = (
        r.recall >= TARGET_SCORE
        and not (r.precision < TARGET_SCORE)  # NaN: no finding at all, then recall says it
        and r.delay_max_s <= delay_target_s
        and (fault is not FaultType.CABLE_THEFT or r.max_incidents <= 1)
    )
    return target, "PASS" if ok else "FAIL"


def report(args: argparse.Namespace, out: Outcome, wall_s: float, console: Console) -> None:
    rows: dict[str, str] = {}
    fault_of: dict[str, FaultType] = {}
    for fault in FaultType:
        kinds = (
            [DeviceKind.LAMP.value]
            if fault is not FaultType.DEVICE_OFFLINE
            else [k.value for k in DeviceKind]
        )
        for kind in kinds:
            label = row_label(fault, kind)
            if fault is FaultType.DEVICE_OFFLINE and not out.injected[label]:
                continue
            rows[label] = row_rule(fault, kind)
            fault_of[label] = fault
    spans = finding_spans(out.events)
    scores = score(out.truth, spans, rows, parents=out.parents)
    if args.details is not None:
        lines = details(out.truth, spans, rows.values(), parents=out.parents)
        args.details.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        console.print(f"details of {len(lines)} faults and false positives in {args.details}")
    catalogue = out.engine.rule_catalogue
    table = Table(
        title=f"Detection: {args.lamps:,} lamps, {args.days:g} days, seed {args.seed}, rate x{args.rate:g}"
    )
    for name in (
        "fault kind",
        "rule",
        "injected",
        "observable",
        "detected",
        "recall",
        "precision",
        "TP/FP (x)",
        "delay med/max min",
        "incidents",
        "target",
        "verdict",
    ):
        table.add_column(
            name, justify="left" if name in ("fault kind", "rule", "target", "verdict") else "right"
        )
    for label, s in scores.items():
        fault = fault_of[label]
        has = s.rule in catalogue
        target, mark = verdict(s, fault, has, 60.0)
        style = {"PASS": "green", "FAIL": "red", "no detector": "yellow"}.get(mark, "")
        table.add_row(
            label,
            s.rule,
            str(s.injected),
            str(s.observable),
            str(s.detected) if has else "-",
            _fmt(s.recall) if has else "-",
            _fmt(s.precision) if has else "-",
            f"{s.true_pos}/{s.false_pos} ({s.cross})" if has else "-",
            f"{_fmt(s.delay_median_s / 60, '.1f')}/{_fmt(s.delay_max_s / 60, '.1f')}" if has else "-",
            str(s.max_incidents) if has else "-",
            target,
            f"[{style}]{mark}[/{style}]" if style else mark,
        )
    console.print(table)
    console.print(
        "observable: the simulator says the fault could be seen long enough (bench/detection_truth.py); "
        "TP/FP (x): findings of the rule, x = false positives on a subject (or its circuit or gateway) with "
        "another fault at the time; delay: from the moment the fault's signal could first be seen, so it "
        "includes the time a rule must wait (debounce, k periods, a stuck meter's 3 days); incidents: the "
        "most findings one fault raised within one observable stretch."
    )
    missing = sorted({r for r in rows.values() if r not in catalogue})
    if missing:
        console.print(f"[yellow]no detector for:[/yellow] {', '.join(missing)}")
    other = unmapped_counts(spans, rows.values())
    if other:
        noise = Table(title="Findings of rules no fault kind maps to (the noise level)")
        for name in ("rule", "opened", "subjects", "open at end"):
            noise.add_column(name, justify="left" if name == "rule" else "right")
        for rule, (opened, subjects, still) in other.items():
            noise.add_row(rule, str(opened), str(subjects), str(still))
        console.print(noise)
    else:
        console.print("findings of unmapped rules: none")
    rate_lines(out, console)
    t = out.timing
    console.print(
        f"wall time {wall_s:.1f} s: setup {t.setup:.1f}, simulator {t.simulate:.1f}, truth {t.truth:.1f}, "
        f"ingest {t.ingest:.1f}, engine.tick {t.evaluate:.1f} "
        f"({1000 * t.evaluate / max(t.ticks, 1):.2f} ms a tick); "
        f"{t.ticks:,} ticks, {t.readings:,} readings; engine state {out.engine.nbytes / 1e6:.1f} MB"
    )


def rate_lines(out: Outcome, console: Console) -> None:
    rates = out.rates
    if not rates:
        console.print("lighting rate: no night tick in the run")
        return
    if all(math.isnan(r.observed) for r in rates):
        console.print(
            f"lighting rate: the engine gave no city lighting_rate KPI ({len(rates)} night ticks); "
            "no rate keeper yet?"
        )
        return
    unknown = [r.unknown for r in rates if not math.isnan(r.unknown)]
    hidden = (
        f"{100 * max(unknown):.2f} % of the due lamps at most, {100 * sum(unknown) / len(unknown):.3f} % mean"
    )
    console.print(
        f"lighting rate at {len(rates)} night ticks (every lamp due from 17 min before to 17 min after, "
        "beyond the schedule's switching margins; the first hour left out as warm-up), absolute difference "
        "in points (target 0.1):"
    )
    lines = (
        (
            "observed vs the readings as last reported (not judged: the engine also knows which silent "
            "lamps a cut circuit explains)",
            rate_gap((r.observed, r.as_reported) for r in rates),
            False,
        ),
        (
            "observed vs truth now over the lamps the engine can know (heard from in k periods, or on a "
            "circuit it found cut)",
            rate_gap((r.observed, r.known_now) for r in rates),
            True,
        ),
        (
            f"observed vs truth now over all due lamps (unknown: {hidden})",
            rate_gap((r.observed, r.truth) for r in rates),
            True,
        ),
        ("lower bound vs truth now over all due lamps", rate_gap((r.lower, r.truth) for r in rates), False),
    )
    for name, gap, judged in lines:
        mark = ""
        if judged and gap.samples:
            mark = " [green]PASS[/green]" if gap.max_pt <= 0.1 else " [red]FAIL[/red]"
        share = f", {100 * gap.within:.2f} % of ticks within 0.1" if gap.samples else ""
        console.print(f"  {name}: max {_fmt(gap.max_pt)} / mean {_fmt(gap.mean_pt)}{share}{mark}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lamps", type=int, default=5000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=20.0, help="multiplier of the random fault rates")
    parser.add_argument("--per-kind", type=int, default=4, help="scheduled faults of each kind")
    parser.add_argument(
        "--start", default="2026-06-15T00:00:00+08:00", help="simulated start, ISO with offset"
    )
    parser.add_argument("--quick", action="store_true", help="1 day, 1,000 lamps")
    parser.add_argument(
        "--details", type=Path, help="write every fault (observable since, delay) and false positive as JSONL"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.lamps = 1.0, 1000
    console = Console(width=None if sys.stdout.isatty() else 200)
    began = time.perf_counter()
    outcome = simulate(args, console)
    report(args, outcome, time.perf_counter() - began, console)


if __name__ == "__main__":
    main()
