"""Scaling of one analytics evaluation tick (all rules + rates) for 10k, 100k and 1M lamps.

For each size: generate the simulated city (lamps plus the cabinets, bridges, stations, gauges and bins
that come with it), build the topology through the registry's CSV format, build the engine exactly as the
worker does (``analytics.assembly.build_engine``), then run the simulator at night: a few warm-up ticks
(detectors learn cadences, debounce), then measured ticks. Each tick is ``engine.ingest`` of one
simulated minute of readings (every device reports) followed by ``engine.tick``. Reported:

- tick ms: ``engine.tick(now)`` alone, median and max over the measured ticks: every detector's evaluate,
  the finding book, the schedule and the rates at every scope. Target: 1M lamps under 50 ms.
- ingest: ``engine.ingest`` of the minute's readings (ordering into rounds, detectors' observe, state
  update), as readings per second.
- bytes/device: ``engine.nbytes`` (state arrays, detectors' arrays, topology arrays) over all devices.
  Target: under 200. RSS growth per device is shown too: it includes what numpy and Python allocate
  around the arrays (the topology's id strings, temporaries).

Usage: .venv/bin/python bench/analytics.py [--sizes 10000,100000,1000000] [--ticks 10]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.assembly import build_engine
from bench.simfeed import SimFeed, topology_of
from devices.kinds import DeviceKind
from firmware_sim.citygen import generate_city
from firmware_sim.faults import FaultInjector
from firmware_sim.simulation import Simulation


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(lamps: int, ticks: int, warmup: int) -> dict[str, float]:
    t0 = time.perf_counter()
    city = generate_city(lamps, seed=11)
    topology = topology_of(city)
    setup_s = time.perf_counter() - t0
    gc.collect()
    rss0 = rss_bytes()
    engine = build_engine(topology)
    feed = SimFeed(city, topology)
    # 22:00 in Wuhan: every lamp is due on. Random faults at the usual rates keep the rules busy.
    start = datetime(2026, 11, 10, 14, 0, tzinfo=UTC).timestamp()
    sim = Simulation(city, seed=3, start=start, faults=FaultInjector(city, seed=3, rate=1.0))
    tick_ms: list[float] = []
    ingest_rate: list[float] = []
    for k in range(warmup + ticks):
        tick = sim.step()
        batches = feed.batches(tick)
        readings = sum(len(b) for b in batches)
        a = time.perf_counter()
        engine.ingest(batches)
        b = time.perf_counter()
        engine.tick(int(tick.t * 1000) + 5000)
        c = time.perf_counter()
        if k >= warmup:
            tick_ms.append((c - b) * 1000)
            ingest_rate.append(readings / max(b - a, 1e-9))
    devices = topology.device_count
    return {
        "lamps": len(topology.table(DeviceKind.LAMP)),
        "devices": devices,
        "setup_s": setup_s,
        "tick_median_ms": statistics.median(tick_ms),
        "tick_max_ms": max(tick_ms),
        "ingest_per_s": statistics.median(ingest_rate),
        "bytes_per_device": engine.nbytes / devices,
        "rss_per_device": (rss_bytes() - rss0) / devices,
        "open_findings": sum(engine.book.counts().values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {size:,} lamps ...", file=sys.stderr, flush=True)
        rows.append(measure(size, args.ticks, args.warmup))
    print()
    print(
        "| lamps | devices | tick median ms | tick max ms | target | ingest readings/s "
        "| bytes/device (arrays) | target | RSS growth/device | open findings | setup s |"
    )
    print("|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        tick_ok = "PASS" if r["lamps"] < 1_000_000 or r["tick_median_ms"] < 50 else "FAIL"
        mem_ok = "PASS" if r["bytes_per_device"] < 200 else "FAIL"
        print(
            f"| {r['lamps']:,.0f} | {r['devices']:,.0f} | {r['tick_median_ms']:.1f} | {r['tick_max_ms']:.1f} "
            f"| <50 ms at 1M: {tick_ok} | {r['ingest_per_s']:,.0f} | {r['bytes_per_device']:.0f} "
            f"| <200: {mem_ok} | {r['rss_per_device']:.0f} | {r['open_findings']:.0f} | {r['setup_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
