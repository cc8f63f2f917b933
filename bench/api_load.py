"""Load for the API benchmark (``bench/api.py``): the requests the control room, the overview and the crews'
phones make, sent by concurrent clients, and latency percentiles per request kind.

Each client is an ``httpx.AsyncClient`` with its own connection and its own credentials (a token of its
own user, or an API key: the request budget is per caller, docs/api.md "Scaling and the benchmark").
Clients are closed-loop: each sends its next request as soon as the last one answered, cycling through
the scenarios from its own offset so the mix stays even, until its request count or the deadline is
reached. Latency is measured by the client, from sending the request to the last byte of the body.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

Params = list[tuple[str, str | int | float | bool | None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of request: ``make(rng)`` gives the path and query of one instance."""

    route: str  # the route template's short name: rates, alerts, history
    name: str
    make: Callable[[random.Random], tuple[str, Params]]


@dataclass(frozen=True, slots=True)
class Sample:
    scenario: int
    at_s: float  # when it was sent, from the start of the phase
    ms: float
    status: int  # 0: no answer (a transport error or the client's timeout)
    error: str = ""  # what went wrong, for anything but 200: the problem's title, or the exception


@dataclass(frozen=True, slots=True)
class Caller:
    """One client's credentials, as request headers."""

    name: str
    headers: Mapping[str, str]


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Targets:
    """What the scenarios ask about: the data's end (a whole minute) and the sampled names."""

    end_ms: int
    roads: Sequence[str]
    districts: Sequence[str]
    lamps: Sequence[str]
    crews: Sequence[str]


def scenarios(t: Targets) -> list[Scenario]:
    """The requests of the benchmark (the issue: rates, the alerts list and history)."""
    week, day = 7 * 86_400_000, 86_400_000
    last_week: Params = [("start", iso(t.end_ms - week)), ("end", iso(t.end_ms))]
    last_day: Params = [("start", iso(t.end_ms - day)), ("end", iso(t.end_ms))]
    live: Params = [("state", "open"), ("state", "acknowledged"), ("state", "in_progress")]

    def fixed(path: str, params: Params) -> Callable[[random.Random], tuple[str, Params]]:
        return lambda _rng: (path, params)

    def history(params: Params) -> Callable[[random.Random], tuple[str, Params]]:
        return lambda rng: (f"/api/v1/history/{rng.choice(t.lamps)}/active_power", params)

    rates = "/api/v1/rates"
    return [
        Scenario("rates", "city, week", fixed(rates, [("metric", "lighting"), *last_week])),
        Scenario(
            "rates",
            "city, week by hour",
            fixed(rates, [("metric", "lighting"), *last_week, ("interval", "1h")]),
        ),
        Scenario(
            "rates",
            "a district, week by day",
            lambda rng: (
                rates,
                [
                    ("metric", "lighting"),
                    ("scope", "district"),
                    ("scope_id", rng.choice(t.districts)),
                    *last_week,
                    ("interval", "1d"),
                ],
            ),
        ),
        Scenario(
            "rates",
            "every district, intact, day",
            fixed(rates, [("metric", "intact"), ("scope", "district"), *last_day]),
        ),
        Scenario(
            "rates",
            "a road, week",
            lambda rng: (
                rates,
                [("metric", "lighting"), ("scope", "road"), ("scope_id", rng.choice(t.roads)), *last_week],
            ),
        ),
        Scenario("alerts", "first page, no filter", fixed("/api/v1/alerts", [])),
        Scenario(
            "alerts",
            "a crew's live alerts",
            lambda rng: ("/api/v1/alerts", [*live, ("crew", rng.choice(t.crews))]),
        ),
        Scenario(
            "alerts",
            "a district's serious ones",
            lambda rng: ("/api/v1/alerts", [("district", rng.choice(t.districts)), ("severity", "serious")]),
        ),
        Scenario("alerts", "overdue", fixed("/api/v1/alerts", [("overdue", "true")])),
        Scenario("history", "a lamp, 24 h, 500 points", history(last_day)),
        Scenario(
            "history",
            "a lamp, 7 days, 500 points",
            history([("start", iso(t.end_ms - week)), ("end", iso(t.end_ms))]),
        ),
    ]


async def _send(http: httpx.AsyncClient, scenario: Scenario, rng: random.Random) -> tuple[float, int, str]:
    """One request: ms to the last byte, the status and, for anything but 200, what went wrong."""
    path, params = scenario.make(rng)
    started = time.perf_counter()
    error = ""
    try:
        response = await http.get(path, params=params)
        status = response.status_code
        if status != 200:
            error = response.text[:300]
    except httpx.HTTPError as exc:
        status, error = 0, f"{type(exc).__name__}: {exc}"[:300]
    return (time.perf_counter() - started) * 1000, status, error


@dataclass(slots=True)
class Phase:
    """The samples of one phase and what it took."""

    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0


async def _client(
    number: int,
    base_url: str,
    caller: Caller,
    plan: Sequence[Scenario],
    *,
    requests: int,
    deadline: float,
    phase_start: float,
    timeout_s: float,
    out: list[Sample],
) -> None:
    rng = random.Random(number)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=base_url, headers=dict(caller.headers), timeout=timeout_s, limits=limits, trust_env=False
    ) as http:
        for k in range(requests):
            if time.perf_counter() >= deadline:
                return
            index = (number + k) % len(plan)
            sent = time.perf_counter() - phase_start
            ms, status, error = await _send(http, plan[index], rng)
            out.append(Sample(index, sent, ms, status, error))


def run_clients(
    base_url: str,
    callers: Sequence[Caller],
    plan: Sequence[Scenario],
    *,
    requests: int,
    seconds: float,
    timeout_s: float = 30.0,
) -> Phase:
    """``len(callers)`` closed-loop clients, each at most ``requests`` requests and ``seconds`` long."""

    async def main() -> Phase:
        phase = Phase()
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(
                _client(
                    i,
                    base_url,
                    caller,
                    plan,
                    requests=requests,
                    deadline=deadline,
                    phase_start=start,
                    timeout_s=timeout_s,
                    out=phase.samples,
                )
                for i, caller in enumerate(callers)
            )
        )
        phase.seconds = time.perf_counter() - start
        return phase

    return asyncio.run(main())


def run_alone(base_url: str, callers: Sequence[Caller], plan: Sequence[Scenario], rounds: int) -> Phase:
    """``rounds`` of every scenario with one request in flight at a time: the service time without
    queueing. The credentials rotate over ``callers`` (one connection each): one caller alone would go
    past its request budget (50/s) and measure the 429s instead."""

    async def main() -> Phase:
        phase = Phase()
        rng = random.Random(0)
        clients = [
            httpx.AsyncClient(base_url=base_url, headers=dict(c.headers), timeout=30.0, trust_env=False)
            for c in callers
        ]
        start = time.perf_counter()
        try:
            for k in range(rounds * len(plan)):
                sent = time.perf_counter() - start
                ms, status, error = await _send(clients[k % len(clients)], plan[k % len(plan)], rng)
                phase.samples.append(Sample(k % len(plan), sent, ms, status, error))
        finally:
            for client in clients:
                await client.aclose()
        phase.seconds = time.perf_counter() - start
        return phase

    return asyncio.run(main())


def check_each(base_url: str, caller: Caller, plan: Sequence[Scenario]) -> list[tuple[int, int, str]]:
    """One request of each scenario: (status, bytes, what came back), so the table shows that the
    benchmark measured answers with data in them rather than errors or empty lists."""

    async def main() -> list[tuple[int, int, str]]:
        out = []
        rng = random.Random(0)
        async with httpx.AsyncClient(base_url=base_url, headers=dict(caller.headers), timeout=60.0) as http:
            for scenario in plan:
                path, params = scenario.make(rng)
                response = await http.get(path, params=params)
                out.append((response.status_code, len(response.content), _gist(scenario.route, response)))
        return out

    return asyncio.run(main())


def _gist(route: str, response: httpx.Response) -> str:
    if response.status_code != 200:
        return response.text[:80]
    body = response.json()
    if route == "rates":
        points = sum(len(s["points"]) for s in body["series"])
        return f"{len(body['series'])} series, {points} points"
    if route == "alerts":
        return f"{len(body['items'])} alerts"
    return f"{len(body['points'])} windows of {body['window_s']:g} s"


# -- statistics (pure) --------------------------------------------------------------------------------------


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of sorted values; NaN when empty."""
    if not sorted_ms:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    requests: int
    errors: int  # anything but 200, and no answer
    p50: float
    p90: float
    p99: float
    max: float

    @staticmethod
    def of(samples: Sequence[Sample]) -> Summary:
        ms = sorted(s.ms for s in samples)
        return Summary(
            requests=len(samples),
            errors=sum(1 for s in samples if s.status != 200),
            p50=percentile(ms, 50),
            p90=percentile(ms, 90),
            p99=percentile(ms, 99),
            max=ms[-1] if ms else math.nan,
        )
