"""Where a request's time goes (``bench/api.py --profile``): the API app built in this process on the same
stores, each scenario's requests handed to it one at a time as ASGI calls (no HTTP client or server in
the profile) under ``cProfile``.

FastAPI runs synchronous dependencies, routes and the response check in a thread pool, where a profiler
started in the event loop's thread would see nothing; for the profile they run inline instead (the
``run_in_threadpool`` FastAPI calls is swapped for a direct call), so the numbers are one request's own
cost with no queueing. Each request's wall and CPU time (``time.process_time``) are printed: CPU is what
limits one API process (the GIL), the difference is the wait for InfluxDB and SQLite. The summary adds
own time up by package (FastAPI, Starlette, pydantic, SQLAlchemy, httpx, the repository's own modules;
time in socket calls is the wait for InfluxDB). cProfile roughly doubles the cost of a Python call, so
read the shares, not the absolute numbers.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from bench.api_load import Params, Scenario

T = TypeVar("T")


@contextmanager
def _inline_threadpool() -> Iterator[None]:
    import fastapi.dependencies.utils as dep_utils
    import fastapi.routing as routing

    async def inline(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return func(*args, **kwargs)

    modules = (routing, dep_utils)
    saved = [getattr(m, "run_in_threadpool") for m in modules]  # noqa: B009 - not re-exported: mypy
    for m in modules:
        setattr(m, "run_in_threadpool", inline)  # noqa: B010
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            setattr(m, "run_in_threadpool", original)  # noqa: B010


async def _call(app: Any, path: str, params: Params, headers: Mapping[str, str]) -> int:
    """One GET as the server would hand it to the app; the response status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(params).encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


def _build_app(env: Mapping[str, str]) -> Any:
    """The app as ``citywatch api run`` builds it, on the settings the API process was given."""
    from analytics.alerts.settings import AlertSettings
    from api.app import create_app
    from api.settings import ApiSettings
    from citywatch.services import build_api_deps
    from citywatch.settings import CommonSettings

    common = CommonSettings(
        var_dir=Path(env["CITYWATCH_VAR_DIR"]),
        registry_url=env["CITYWATCH_REGISTRY_URL"],
        influx_url=env["CITYWATCH_INFLUX_URL"],
    )
    settings = ApiSettings(db_url=env["CITYWATCH_API_DB_URL"])
    alerts = AlertSettings(db_url=env["CITYWATCH_ALERTS_DB_URL"])
    return create_app(build_api_deps(common, settings, alerts, env["CITYWATCH_INFLUX_URL"]))


async def _profile(
    app: Any, chosen: Sequence[Scenario], headers: Mapping[str, str], repeat: int, rng: random.Random
) -> tuple[pstats.Stats, int, float, float]:
    """The profile of ``repeat`` rounds of ``chosen``: stats, requests, wall and CPU ms a request."""
    for s in chosen:  # once each outside the profile: first-call costs (imports, caches)
        await _call(app, *s.make(rng), headers)
    # The default (wall) clock: a CPU clock (process_time) is a system call per event, which inflated
    # the profile threefold and most where calls are many. Socket time is then the wait for InfluxDB.
    profiler = cProfile.Profile()
    count = 0
    started, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    for _ in range(repeat):
        for s in chosen:
            status = await _call(app, *s.make(rng), headers)
            if status != 200:
                raise RuntimeError(f"{s.route} {s.name}: status {status} in the profile")
            count += 1
    profiler.disable()
    wall_ms = (time.perf_counter() - started) * 1000 / count
    cpu_ms = (time.process_time() - cpu) * 1000 / count
    return pstats.Stats(profiler, stream=io.StringIO()), count, wall_ms, cpu_ms


def profile_routes(
    env: Mapping[str, str], headers: Mapping[str, str], plan: Sequence[Scenario], repeat: int, out: Path
) -> str:
    """Profile each route's scenarios ``repeat`` times; write the full listings to ``out`` and return a
    summary: per route, wall and CPU ms per request alone, CPU by package, the functions with the most."""
    app = _build_app(env)
    summary: list[str] = []
    listings: list[str] = []

    async def main() -> None:
        async with app.router.lifespan_context(app):
            # The fault map reads every asset's position in a thread at startup: wait, or it is profiled too.
            layer = getattr(app.state, "fault_layer", None)
            while layer is not None and not layer.ready.is_set():
                await asyncio.sleep(0.1)
            rng = random.Random(1)
            for route in sorted({s.route for s in plan}):
                chosen = [s for s in plan if s.route == route]
                stats, count, wall_ms, cpu_ms = await _profile(app, chosen, headers, repeat, rng)
                text = io.StringIO()
                stats.stream = text  # type: ignore[attr-defined]
                stats.sort_stats("tottime").print_stats(30)
                stats.sort_stats("cumulative").print_stats(50)
                listings.append(
                    f"==== {route}: {count} requests, {cpu_ms:.1f} ms CPU each\n{text.getvalue()}"
                )
                summary.append(
                    f"{route}: {wall_ms:.1f} ms a request alone, {cpu_ms:.1f} ms of it CPU (profiled; the "
                    "rest is waiting on InfluxDB and the host); own time by package, ms a request:"
                )
                packages = _by_package(stats)
                summary.append("  " + ", ".join(f"{name} {t * 1000 / count:.2f}" for name, t in packages))
                summary.append("  functions with the most own time:")
                summary.extend(_top_own(stats, count, 6))

    with _inline_threadpool():
        asyncio.run(main())
    out.write_text("\n".join(listings), encoding="utf-8")
    return "\n".join(summary)


def _package(filename: str, name: str) -> str:
    if "socket" in name:
        return "sockets (waiting on InfluxDB)"
    if "sqlite3" in name:
        return "SQLite (C)"
    if filename == "~":
        return "builtins"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    for mine in ("api", "analytics", "devices", "ingest", "citywatch"):
        if mine in parts and "lib" not in parts:
            return f"{mine}/ (this repository)"
    return f"stdlib {path.stem}"


def _by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, name), (_cc, _calls, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        totals[_package(filename, name)] += own
    return sorted(totals.items(), key=lambda kv: -kv[1])[:12]


def _top_own(stats: pstats.Stats, requests: int, n: int) -> list[str]:
    """The ``n`` functions with the most own time, as ms per request."""
    rows = []
    for (filename, line, name), (_cc, calls, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}({name})" if line else name
        rows.append((own, cumulative, calls, where))
    rows.sort(reverse=True)
    return [
        f"    {own * 1000 / requests:6.2f} ms own {cum * 1000 / requests:6.2f} ms with callees "
        f"{calls / requests:7.1f} calls  {where}"
        for own, cum, calls, where in rows[:n]
    ]
