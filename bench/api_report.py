"""The API benchmark's tables (``bench/api.py``): one row per scenario and per route, the CPU of each part,
and, when several client counts were measured, how the percentiles move with the clients.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bench.api_load import Phase, Sample, Summary
from bench.api_procs import CpuUse

TARGET_P99_MS = 200.0  # the issue: p99 under 200 ms


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One load phase: its samples, the CPU it took, the API's own histogram over it."""

    clients: int
    phase: Phase
    cpu: CpuUse
    load_avg: tuple[float, float]  # before, at the end
    server: dict[str, tuple[float, float]]  # route template: (seconds, requests)


@dataclass(frozen=True, slots=True)
class Result:
    lamps: int
    setup: list[str]
    names: list[tuple[str, str]]  # (route, name) per scenario
    answers: list[tuple[int, int, str]]  # (status, bytes, gist) per scenario
    alone: Phase
    alone_cpu_s: float  # the API's CPU seconds over the phase alone
    loads: list[LoadRun]
    profile: str


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _row(route: str, name: str, s: Summary | None, alone: Summary | None) -> str:
    """One line of the table; the header when ``s`` is None."""
    numbers: tuple[str, ...]
    if s is None or alone is None:
        numbers = ("requests", "errors", "p50", "p90", "p99", "max", "alone p50")
    else:
        numbers = (f"{s.requests:,}", str(s.errors), *map(_ms, (s.p50, s.p90, s.p99, s.max, alone.p50)))
    widths = (8, 6, 6, 6, 6, 6, 9)
    return f"{route:<8} {name:<30} " + " ".join(f"{v:>{w}}" for v, w in zip(numbers, widths, strict=True))


def _verdict(s: Summary) -> str:
    if not s.requests:
        return ""
    return "PASS" if s.p99 < TARGET_P99_MS and not s.errors else "FAIL"


def _by_scenario(samples: Sequence[Sample]) -> dict[int, list[Sample]]:
    out: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        out[sample.scenario].append(sample)
    return out


def _p99_by_window(samples: Sequence[Sample], width_s: float) -> list[float]:
    """The p99 of the requests sent in each window of the load: a stall shows where it happened."""
    windows: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        windows[int(sample.at_s // width_s)].append(sample)
    return [Summary.of(windows[k]).p99 for k in sorted(windows)]


def print_load(r: Result, run: LoadRun) -> None:
    """The table of one load phase, and what the machine did meanwhile."""
    print()
    print(
        f"{r.lamps:,} lamps, {run.clients} closed-loop clients, {os.cpu_count()} cores; load average "
        f"{run.load_avg[0]:.1f} before the load, {run.load_avg[1]:.1f} at its end"
    )
    by_scenario, alone = _by_scenario(run.phase.samples), _by_scenario(r.alone.samples)
    header = _row("route", "request", None, None) + "  p99 < 200 ms  answer"
    print(header)
    print("-" * len(header))
    for route in dict.fromkeys(route for route, _ in r.names):
        indices = [i for i, (rt, _) in enumerate(r.names) if rt == route]
        for i in indices:
            s = Summary.of(by_scenario[i])
            status, size, gist = r.answers[i]
            line = _row(route, r.names[i][1], s, Summary.of(alone[i]))
            print(f"{line}  {_verdict(s):<12}  {status}, {size:,} B: {gist}")
        total = Summary.of([x for i in indices for x in by_scenario[i]])
        every = Summary.of([x for i in indices for x in alone[i]])
        print(f"{_row(route, '(all of the route)', total, every)}  {_verdict(total)}")
        print()
    everything = Summary.of(run.phase.samples)
    seconds = run.phase.seconds
    print(
        f"all: {everything.requests:,} requests in {seconds:.0f} s ({everything.requests / seconds:.0f}/s), "
        f"{everything.errors} errors, p50 {_ms(everything.p50)} ms, p99 {_ms(everything.p99)} ms"
    )
    print(
        "p99 (ms) per 10 s of the load: " + ", ".join(_ms(v) for v in _p99_by_window(run.phase.samples, 10.0))
    )
    cpu = run.cpu
    print(
        "CPU (% of one core): "
        + ", ".join(f"{n} {v:.0f}%" for n, v in cpu.processes.items())
        + f", the rest of the machine {cpu.others:.0f}%; some task waited for a CPU "
        f"{cpu.stalled:.0f}% of the time"
    )
    if everything.requests and r.alone.samples:
        per_request = cpu.processes["API"] / 100 * cpu.seconds * 1000 / everything.requests
        alone_ms = r.alone_cpu_s * 1000 / len(r.alone.samples)
        ceiling, queue = 1000 / per_request, run.clients * per_request
        print(
            f"the API's CPU per request: {alone_ms:.1f} ms alone, {per_request:.1f} ms under the load; one "
            f"process serves at most ~{ceiling:.0f} requests/s on one core (the GIL), and {run.clients} "
            f"closed-loop clients then wait ~{queue:.0f} ms a request on average"
        )
    served = [
        f"{route.removeprefix('/api/v1')} {1000 * total / count:.0f} ms"
        for route, (total, count) in sorted(run.server.items())
        if count and route.startswith("/api/v1/") and not route.startswith("/api/v1/auth")
    ]
    print("the API's own mean time per request (its /metrics): " + ", ".join(served))
    refused = sum(1 for s in r.alone.samples if s.status != 200)
    if refused:
        print(f"the requests alone had {refused} errors: the alone p50 counts them")
    errors = Counter(f"{s.status} {s.error}" for s in run.phase.samples if s.status != 200)
    for what, n in errors.most_common(5):
        print(f"error x{n}: {what}")


def print_sweep(r: Result) -> None:
    """Per client count: throughput and each route's p50 / p99."""
    routes = list(dict.fromkeys(route for route, _ in r.names))
    print()
    print(
        f"{'clients':>7} {'req/s':>6} "
        + " ".join(f"{route + ' p50/p99':>18}" for route in routes)
        + "  API CPU"
    )
    for run in r.loads:
        by_route: dict[str, list[Sample]] = defaultdict(list)
        for sample in run.phase.samples:
            by_route[r.names[sample.scenario][0]].append(sample)
        cells = []
        for route in routes:
            s = Summary.of(by_route[route])
            cells.append(f"{_ms(s.p50) + ' / ' + _ms(s.p99):>18}")
        rate = len(run.phase.samples) / run.phase.seconds
        print(f"{run.clients:>7} {rate:>6.0f} " + " ".join(cells) + f"  {run.cpu.processes['API']:.0f}%")


def print_report(r: Result) -> None:
    print()
    print(f"API benchmark: {r.lamps:,} lamps")
    for line in r.setup:
        print(f"  {line}")
    for run in r.loads:
        print_load(r, run)
    if len(r.loads) > 1:
        print_sweep(r)
    if r.profile:
        print()
        print(r.profile)
