"""The fault map's server-side clustering (api.fault_map) on 10k, 100k and 1M faults: what one map
request costs in the API process once the faults are in memory, and what the in-memory tables cost to
build (asset positions at startup and every refresh; the live alerts after a change in the store).

    .venv/bin/python bench/fault_map.py [--sizes 10000,100000,1000000] [--repeat 20] [--api 100000]

Faults are spread over a 30 x 20 km city (a Gaussian around the centre plus uniform noise, as faults
follow the lamps' density), severities 5 % emergency, 25 % serious, 70 % ordinary.

With ``--api N`` it also serves the real app (``api.app`` under ``api.server``) on a SQLite registry of
the simulated city with about N assets and a live alert on every tenth device, and times the map routes
over HTTP on 127.0.0.1, as the overview calls them. Prints tables; nothing is asserted.
"""

# ruff: noqa: E402 - the path fix below must run before the imports
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where analytics.py would shadow the
# package of that name; the repository root goes there instead (as bench/detection.py does).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from analytics.alerts.model import Alert, AlertState, Severity
from api.fault_map import (
    SEVERITIES,
    AssetRow,
    Box,
    Grid,
    cluster,
    fault_table,
    mercator,
    positions_from_assets,
)

CITY = Box(114.15, 30.45, 114.45, 30.65)


T = TypeVar("T")


def timed(work: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The median milliseconds of ``repeat`` runs, and the last result."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, result


def faults(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    near = n * 2 // 3
    lat = np.concatenate([rng.normal(30.55, 0.03, near), rng.uniform(30.45, 30.65, n - near)])
    lon = np.concatenate([rng.normal(114.30, 0.04, near), rng.uniform(114.15, 114.45, n - near)])
    rank = rng.choice(len(SEVERITIES), n, p=[0.05, 0.25, 0.70]).astype(np.int8)
    return np.clip(lat, 30.45, 30.65), np.clip(lon, 114.15, 114.45), rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--api", type=int, default=0, help="also time the map routes on a city of N assets")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    grid = Grid()
    print(f"{'faults':>9} {'view':<22} {'zoom':>4} {'clusters':>8} {'points':>6} {'ms':>8}")
    districts = Box(114.25, 30.52, 114.35, 30.58)
    street = Box(114.298, 30.548, 114.302, 30.552)
    for n in (int(s) for s in args.sizes.split(",")):
        lat, lon, rank = faults(n, rng)
        world = mercator(lat, lon)  # kept with the table, as the API does
        for name, box, zoom in (
            ("city (1024 px)", CITY, 11),
            ("district", districts, 13),
            ("street", street, 18),
        ):
            work = functools.partial(cluster, lat, lon, rank, box, zoom, grid, len(SEVERITIES), world=world)
            ms, c = timed(work, args.repeat)
            print(f"{n:>9,} {name:<22} {c.zoom:>4} {len(c.count):>8} {len(c.points):>6} {ms:>8.2f}")
    print()
    print(f"{'rows':>9} {'table':<34} {'ms':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        lat, lon, rank = faults(n, rng)
        rows = [
            AssetRow(
                f"LMP-{i:07d}", "lamp", float(a), float(b), f"C{i // 40}", f"R{i // 400}", f"G{i // 1000}"
            )
            for i, (a, b) in enumerate(zip(lat, lon, strict=True))
        ]
        ms, positions = timed(functools.partial(positions_from_assets, rows), 1)
        print(f"{n:>9,} {'asset positions (startup, refresh)':<34} {ms:>8.0f}")
        severities = list(Severity)
        alerts = [
            Alert(
                id=f"lamp_failure:{r.id}:0",
                key=f"lamp_failure:{r.id}",
                rule="lamp_failure",
                family="streetlight",
                subject_kind="lamp",
                subject=r.id,
                district="d",
                road=r.road,
                grid_cell=r.grid_cell,
                crew=f"crew-{i % 20}",
                severity=severities[int(rank[i])],
                state=AlertState.OPEN,
                opened_ms=0,
                deadline_ms=i,
                explanation="",
            )
            for i, r in enumerate(rows[: max(n // 10, 1)])
        ]
        ms, _ = timed(functools.partial(fault_table, alerts, positions), 1)
        print(f"{len(alerts):>9,} {'live alerts placed (after a change)':<34} {ms:>8.0f}")
    if args.api:
        api_table(args.api, args.repeat)


def api_table(assets: int, repeat: int) -> None:
    """The map routes over HTTP against the real app, on a city of about ``assets`` assets."""
    import tempfile

    import httpx

    from analytics.alerts.model import Transition
    from analytics.alerts.policy import AlertPolicy, Changes, PolicyConfig
    from analytics.alerts.routing import Contacts
    from analytics.alerts.severity import SeverityPolicy
    from analytics.alerts.store import AlertStore
    from analytics.reports.model import ReportConfig
    from api.accounts import AccountStore
    from api.app import create_app
    from api.deps import ApiDeps
    from api.roles import Role
    from api.server import ApiServer
    from api.settings import ApiSettings
    from devices.registry import Registry
    from devices.registry_files import import_file
    from firmware_sim.inventory import generate_city, write_inventory
    from ingest.influx import InfluxTarget

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        urls = {name: f"sqlite:///{base / name}.db" for name in ("registry", "alerts", "api")}
        write_inventory(generate_city(assets, 1), base / "city.csv")
        with Registry(urls["registry"]) as registry:
            import_file(registry, base / "city.csv", lambda _done: None)
            devices = [a for a in registry.iter_assets() if a.kind != "gateway"]
        severities = list(Severity)
        live = [
            Alert(
                id=f"bench:{a.id}:0",
                key=f"bench:{a.id}",
                rule="lamp_failure",
                family="streetlight",
                subject_kind=a.kind,
                subject=a.id,
                district=a.district,
                road=a.road,
                grid_cell=a.grid_cell,
                crew=a.crew,
                severity=severities[i % 3],
                state=AlertState.OPEN,
                opened_ms=0,
                deadline_ms=10**13,
                explanation="",
            )
            for i, a in enumerate(devices[::10])
        ]
        created = tuple(Transition(a.id, None, AlertState.OPEN, "create", "bench", 0) for a in live)
        with AlertStore(urls["alerts"]) as store:
            store.apply(Changes(tuple(live), created))
        password = "bench-password-long"
        with AccountStore(urls["api"]) as accounts:
            accounts.add_user("bench", Role.VIEWER, "", password, 0)
        deps = ApiDeps(
            settings=ApiSettings(requests_per_s=0),
            registry_url=urls["registry"],
            alerts_url=urls["alerts"],
            accounts_url=urls["api"],
            influx=InfluxTarget("http://127.0.0.1:9", "none"),  # the map routes never read InfluxDB
            alert_policy=lambda locator: AlertPolicy(
                PolicyConfig(), SeverityPolicy(), Contacts.from_mapping({}), locator
            ),
            report_config=ReportConfig(),
        )
        app = create_app(deps)
        started = time.perf_counter()
        with (
            ApiServer(app, "127.0.0.1", 0) as server,
            httpx.Client(base_url=server.url, trust_env=False) as http,
        ):
            while not app.state.fault_layer.ready.is_set():
                time.sleep(0.05)
            loaded = time.perf_counter() - started
            token = http.post("/api/v1/auth/token", data={"username": "bench", "password": password}).json()
            http.headers["Authorization"] = f"Bearer {token['access_token']}"
            first, _ = timed(lambda: http.get("/api/v1/map/summary").raise_for_status(), 1)
            print()
            counts = f"{len(devices):,} devices, {len(live):,} live alerts"
            print(f"{counts}; positions in memory {loaded:.1f} s after start")
            print(f"{'request (HTTP, 127.0.0.1)':<44} {'ms':>8} {'bytes':>8}")
            print(f"{'first read of the live alerts (summary)':<44} {first:>8.1f}")
            for name, params in (
                ("map/faults, the city (server fits the box)", {}),
                ("map/faults, a district view, zoom 14", {"bbox": "114.25,30.55,114.32,30.60", "zoom": 14}),
                ("map/summary", None),
            ):
                path = "/api/v1/map/faults" if params is not None else "/api/v1/map/summary"
                get = functools.partial(http.get, path, params=params or {})
                ms, response = timed(get, repeat)
                response.raise_for_status()
                print(f"{name:<44} {ms:>8.1f} {len(response.content):>8,}")


if __name__ == "__main__":
    main()
