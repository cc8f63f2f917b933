"""The operations API under 20 concurrent clients: p50 / p99 latency of the rates, alerts list and history
routes with a million-lamp registry and a week of KPI series (target: p99 under 200 ms).

    .venv/bin/python bench/api.py --quick                      # 100k lamps, a day of data: ~1-2 min
    .venv/bin/python bench/api.py --cache /tmp/cw-api-bench    # the full run; the city is kept for the next
    .venv/bin/python bench/api.py --quick --profile /tmp/api-profile.txt   # and where the time goes
    .venv/bin/python bench/api.py --cache /tmp/cw-api-bench --clients 1,5,10,20 --seconds 60   # a sweep

Everything runs here on 127.0.0.1, as in production:

1. the city (``bench/api_city.py``): the simulator's inventory imported into a SQLite registry, a real
   InfluxDB (``citywatch.localstack``) holding the analytics worker's ``kpi`` series and a sample of
   lamps' telemetry, and (``bench/api_alerts.py``) an alert store with a week of alerts lived through the
   real alert service. With ``--cache DIR`` the registry and the InfluxDB data are kept and reused by the
   next run with the same sizes (the alerts are made again: they are relative to now);
2. the API as its own process (``citywatch api run``: uvicorn, one process, synchronous routes in its
   thread pool) on the SQLite stores, with one user per client signed in with a token
   (``POST /api/v1/auth/token``) or one API key per client, made with ``api.accounts`` (the request
   budget, 50/s, is per caller: 20 clients stay far below it; one or two closed-loop clients do not,
   and their 429s are counted as errors);
3. one request of each scenario (the table's "answer" column: what came back), a warm-up of every client,
   each scenario alone, one request at a time (the "alone" column: service time without queueing), then the
   load: ``--clients`` closed-loop clients (``bench/api_load.py``) for ``--seconds`` or ``--requests``
   each, whichever ends first (``--clients 5,10,20``: one load after the other, and a summary of how
   the percentiles grow with the clients). The API's, InfluxDB's and this script's CPU are read from
   ``/proc``, the rest of the machine's too (colleagues' work on a shared host) and how long tasks
   waited for a CPU; the API's own latency histogram from ``/metrics``.

Prints one row per scenario and per route: requests, errors (any status but 200), p50, p90, p99 and max
in ms, and PASS when the p99 is under 200 ms. Times are the client's, request sent to last byte. The
clients run on the same cores as the API and InfluxDB: their CPU is shown, and the API's CPU per
request tells what one process can serve whatever the clients cost.
Every process started here is stopped at the end, on an error and on Ctrl-C; temporary folders go too.
"""

# ruff: noqa: E402 - the path fix below must run before the imports
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file (api.py) would shadow the
# ``api`` package: the repository root goes there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace

import httpx

from analytics.topology import Topology
from api.accounts import AccountStore
from api.roles import Role
from bench.api_alerts import live_week
from bench.api_city import (
    MINUTE_MS,
    Samples,
    build_registry,
    kpi_bodies,
    load_topology,
    pick_samples,
    telemetry_bodies,
    write_bodies,
)
from bench.api_load import Caller, Scenario, Targets, check_each, run_alone, run_clients, scenarios
from bench.api_procs import (
    ApiProcess,
    BenchError,
    CpuWatch,
    cpu_seconds,
    load_average,
    server_seconds,
    settle,
    since,
)
from bench.api_report import LoadRun, Result, print_report
from citywatch.localstack import LocalInfluxDB, free_port
from ingest.influx import InfluxTarget, InfluxV1

PASSWORD = "bench-password-long-enough"
DB = "citywatch"


@dataclass(frozen=True, slots=True)
class Plan:
    lamps: int
    kpi_days: float
    history_lamps: int  # lamps with telemetry
    history_days: float
    alerts: int
    roads: int  # roads kept at 60 s (the clients ask for these)
    clients: int
    requests: int  # per client, at most
    seconds: float  # of load, at most
    warmup_s: float
    alone: int  # requests of each scenario from one client alone
    seed: int = 1


FULL = Plan(1_000_000, 7, 1000, 7, 10_000, 50, 20, 2000, 120, 15, 20)
QUICK = Plan(100_000, 1, 100, 1, 2000, 20, 20, 300, 20, 5, 5)


# -- the city ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Setup:
    """How long each part of the city took, and what it holds."""

    lines: list[str]

    def note(self, text: str) -> None:
        self.lines.append(text)
        print(f"  {text}", flush=True)


def city_folder(plan: Plan, cache: Path | None, tmp: Path) -> Path:
    return (cache / f"city-{plan.lamps}-seed{plan.seed}") if cache is not None else tmp / "city"


def influx_folder(plan: Plan, city: Path) -> Path:
    return (
        city
        / f"influx-kpi{plan.kpi_days:g}d-roads{plan.roads}-lamps{plan.history_lamps}x{plan.history_days:g}d"
    )


def ensure_registry(plan: Plan, folder: Path, setup: Setup) -> str:
    done = folder / "registry.done"
    url = f"sqlite:///{folder / 'registry.db'}"
    if done.exists():
        setup.note(f"registry: {plan.lamps:,} lamps, reused from {folder}")
        return url
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    url = build_registry(folder, plan.lamps, plan.seed)
    done.write_text("ok\n")
    setup.note(
        f"registry: {plan.lamps:,} lamps generated and imported in {time.perf_counter() - started:.0f} s"
    )
    return url


def ensure_influx(
    plan: Plan, folder: Path, stack: ExitStack, topology: Topology, samples: Samples, setup: Setup
) -> tuple[LocalInfluxDB, int]:
    """InfluxDB on ``folder`` with the KPI series and the telemetry, loaded unless its manifest says they
    are there already; and the data's end (ms)."""
    manifest = folder / "manifest.json"
    if manifest.exists():
        meta = json.loads(manifest.read_text())
        influxd = stack.enter_context(LocalInfluxDB(folder / "db", start_timeout=300))
        ended = time.strftime("%Y-%m-%d %H:%M", time.localtime(meta["end_ms"] / 1000))
        setup.note(
            f"InfluxDB reused from {folder}: {meta['kpi_points']:,} KPI points, "
            f"{meta['telemetry_points']:,} lamp readings, ending {ended}"
        )
        return influxd, int(meta["end_ms"])
    shutil.rmtree(folder, ignore_errors=True)  # a load that did not finish
    influxd = stack.enter_context(LocalInfluxDB(folder / "db", start_timeout=300))
    end_ms = time.time_ns() // 1_000_000 // MINUTE_MS * MINUTE_MS
    with InfluxV1(InfluxTarget(influxd.url, DB, timeout_s=300)) as influx:
        influx.create_database()
        kpi = write_bodies(influx, kpi_bodies(topology, samples, end_ms, plan.kpi_days, plan.seed))
        setup.note(f"KPI series: {kpi.points:,} points in {kpi.seconds:.0f} s ({kpi.rate:,.0f}/s)")
        readings = write_bodies(influx, telemetry_bodies(topology, samples.lamps, end_ms, plan.history_days))
        setup.note(
            f"telemetry: {readings.points:,} readings of {len(samples.lamps):,} lamps in "
            f"{readings.seconds:.0f} s ({readings.rate:,.0f}/s)"
        )
    assert influxd.pid is not None
    setup.note(f"InfluxDB idle again (compactions) after {settle(influxd.pid):.0f} s")
    meta = {"end_ms": end_ms, "kpi_points": kpi.points, "telemetry_points": readings.points}
    manifest.write_text(json.dumps(meta) + "\n")
    return influxd, end_ms


# -- callers ------------------------------------------------------------------------------------------------


def make_accounts(url: str, clients: int) -> list[tuple[str, str]]:
    """A user (even clients: operators and viewers, with a token) or an API key (odd clients: viewers)
    per client, made as ``citywatch api users add`` and ``keys create`` make them: (kind, secret)."""
    now = time.time_ns() // 1_000_000
    out = []
    with AccountStore(url) as accounts:
        for i in range(clients):
            if i % 2 == 0:
                role = Role.OPERATOR if i % 4 == 0 else Role.VIEWER
                accounts.add_user(f"bench-{i:02d}", role, "", PASSWORD, now)
                out.append(("user", f"bench-{i:02d}"))
            else:
                key, _ = accounts.create_key(f"bench-key-{i:02d}", Role.VIEWER, "", "bench", now)
                out.append(("key", key))
    return out


def sign_in(url: str, accounts: Sequence[tuple[str, str]]) -> list[Caller]:
    callers = []
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as http:
        for kind, value in accounts:
            if kind == "key":
                callers.append(Caller(f"key:{value[:12]}", {"X-API-Key": value}))
                continue
            response = http.post("/api/v1/auth/token", data={"username": value, "password": PASSWORD})
            if response.status_code != 200:
                raise BenchError(f"sign-in of {value} refused: {response.status_code} {response.text[:200]}")
            token = response.json()["access_token"]
            callers.append(Caller(value, {"Authorization": f"Bearer {token}"}))
    return callers


# -- the run ------------------------------------------------------------------------------------------------


def api_env(tmp: Path, registry_url: str, influx_url: str, map_refresh_s: float | None) -> dict[str, str]:
    """The API's settings, as an operator would set them; nothing from this shell's CITYWATCH_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}
    env |= {
        "CITYWATCH_VAR_DIR": str(tmp / "var"),
        "CITYWATCH_REGISTRY_URL": registry_url,
        "CITYWATCH_INFLUX_URL": influx_url,
        "CITYWATCH_INFLUX_DB": DB,
        "CITYWATCH_ALERTS_DB_URL": f"sqlite:///{tmp / 'alerts.db'}",
        "CITYWATCH_API_DB_URL": f"sqlite:///{tmp / 'api.db'}",
    }
    if map_refresh_s is not None:
        env["CITYWATCH_API_MAP_POSITIONS_REFRESH_S"] = f"{map_refresh_s:g}"
    return env


def measure(
    plan: Plan, api: ApiProcess, influxd: LocalInfluxDB, callers: Sequence[Caller], todo: Sequence[Scenario]
) -> LoadRun:
    """One load phase of ``len(callers)`` clients."""
    print(f"  load: {len(callers)} clients, {plan.requests} requests or {plan.seconds:g} s each", flush=True)
    before, load_before = server_seconds(api.url), load_average()
    watch = CpuWatch({"API": api.pid, "InfluxDB": influxd.pid or 0, "bench (clients)": os.getpid()})
    phase = run_clients(api.url, callers, todo, requests=plan.requests, seconds=plan.seconds)
    cpu = watch.use()
    return LoadRun(
        len(callers), phase, cpu, (load_before, load_average()), since(before, server_seconds(api.url))
    )


def run(
    plan: Plan, sweep: Sequence[int], cache: Path | None, profile: Path | None, map_refresh_s: float | None
) -> Result:
    setup = Setup([])
    with tempfile.TemporaryDirectory(prefix="cw-api-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        city = city_folder(plan, cache, tmp)
        registry_url = ensure_registry(plan, city, setup)
        started = time.perf_counter()
        topology = load_topology(registry_url)
        setup.note(
            f"topology of {topology.device_count:,} devices read in {time.perf_counter() - started:.0f} s"
        )
        samples = pick_samples(topology, plan.roads, 20, plan.history_lamps, plan.seed)
        influxd, end_ms = ensure_influx(plan, influx_folder(plan, city), stack, topology, samples, setup)
        env = api_env(tmp, registry_url, influxd.url, map_refresh_s)
        now_ms = time.time_ns() // 1_000_000 // MINUTE_MS * MINUTE_MS
        week = live_week(
            env["CITYWATCH_ALERTS_DB_URL"],
            topology,
            samples.crews,
            plan.alerts,
            now_ms,
            days=7,
            seed=plan.seed,
        )
        states = ", ".join(f"{n:,} {s}" for s, n in week.by_state.items())
        setup.note(
            f"alerts: {week.alerts:,} ({states}) from {week.acts:,} people's actions and the service's "
            f"ticks in {week.seconds:.0f} s; live ones in {len(week.live_by_crew)} crews"
        )
        del topology  # a million lamps of arrays: the API process needs the memory more
        accounts = make_accounts(env["CITYWATCH_API_DB_URL"], max(2, *sweep))  # a user and a key at least
        api = stack.enter_context(ApiProcess(env, free_port(), tmp / "api.log"))
        ready = api.wait_ready({"X-API-Key": next(v for k, v in accounts if k == "key")}, timeout_s=600)
        log = api.log_path.read_text(errors="replace").splitlines()
        positions = [line.split("fault map: ")[-1] for line in log if "positions in" in line]
        setup.note(
            f"API ready (health and fault map) {ready:.0f} s after start, {cpu_seconds(api.pid):.0f} CPU s"
            + (f"; {positions[-1]}" if positions else "")
        )
        callers = sign_in(api.url, accounts)
        todo = scenarios(Targets(end_ms, samples.roads, samples.districts, samples.lamps, samples.crews))
        answers = check_each(api.url, callers[1], todo)
        print(f"  warm-up: {len(callers)} clients for {plan.warmup_s:g} s", flush=True)
        run_clients(api.url, callers, todo, requests=10**6, seconds=plan.warmup_s)
        spent = cpu_seconds(api.pid)
        alone = run_alone(api.url, callers, todo, plan.alone)
        alone_cpu_s = cpu_seconds(api.pid) - spent
        loads = [measure(plan, api, influxd, callers[:n], todo) for n in sweep]
        summary = ""
        if profile is not None:
            from bench.api_profile import profile_routes

            print(f"  profiling each route in this process into {profile}", flush=True)
            summary = profile_routes(env, callers[1].headers, todo, max(plan.alone, 5), profile)
        return Result(
            lamps=plan.lamps,
            setup=setup.lines,
            names=[(s.route, s.name) for s in todo],
            answers=answers,
            alone=alone,
            alone_cpu_s=alone_cpu_s,
            loads=loads,
            profile=summary,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k lamps, a day of data, 20 s of load")
    parser.add_argument("--lamps", type=int, help="lamps in the city (default 1,000,000; --quick 100,000)")
    parser.add_argument(
        "--clients", help="concurrent clients (20), or several counts measured in turn: 5,10,20"
    )
    parser.add_argument("--seconds", type=float, help="seconds of load at most (120; --quick 20)")
    parser.add_argument("--requests", type=int, help="requests per client at most (2000; --quick 300)")
    parser.add_argument(
        "--cache", type=Path, help="keep the registry and InfluxDB data here for the next run"
    )
    parser.add_argument("--profile", type=Path, help="profile each route in-process; listings into this file")
    parser.add_argument(
        "--map-refresh-s", type=float, help="CITYWATCH_API_MAP_POSITIONS_REFRESH_S for the API (default 300)"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    overrides = {n: v for n in ("lamps", "seconds", "requests") if (v := getattr(args, n)) is not None}
    plan = replace(plan, **overrides)
    sweep = [int(n) for n in args.clients.split(",")] if args.clients else [plan.clients]

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    print(f"API benchmark: {plan.lamps:,} lamps; setting up", flush=True)
    try:
        cache = args.cache.resolve() if args.cache else None
        result = run(plan, sweep, cache, args.profile, args.map_refresh_s)
    except KeyboardInterrupt:
        print("interrupted: every process started here was stopped")
        raise SystemExit(130) from None
    except BenchError as exc:
        print(f"benchmark failed: {exc}")
        raise SystemExit(1) from None
    print_report(result)
    print(f"{time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
