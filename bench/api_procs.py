"""Processes of the API benchmark (``bench/api.py``): the API as ``citywatch api run``, and what the kernel
says about CPU -- each process's time from ``/proc/<pid>/stat``, the whole machine's from ``/proc/stat``
(colleagues' work on a shared host shows there), how long tasks waited for a CPU from
``/proc/pressure/cpu`` -- and the API's own latency histogram from its ``/metrics``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A measurement could not be made: a process died, a deadline passed."""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, its threads included."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine since boot (``/proc/stat``, every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    total = sum(values[:8])  # user .. steal; guest time is counted in user already
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def _cpu_stall_s() -> float:
    """Seconds some task waited for a CPU since boot (PSI; 0 where the kernel has none)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return 0.0
    return int(some.rsplit("total=", 1)[1]) / 1e6


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU over a stretch of wall time: each watched process and the rest of the machine (% of one core),
    and the share of the time some task waited for a CPU."""

    processes: dict[str, float]
    others: float  # everything else on the machine: colleagues' work on a shared host
    stalled: float  # % of the time (PSI "some")
    seconds: float


class CpuWatch:
    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._at = time.monotonic()
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = _machine()[0]
        self._stall = _cpu_stall_s()

    def use(self) -> CpuUse:
        wall = time.monotonic() - self._at
        processes = {n: 100 * (cpu_seconds(p) - self._cpu[n]) / wall for n, p in self.pids.items()}
        busy = 100 * (_machine()[0] - self._machine) / wall
        stalled = 100 * (_cpu_stall_s() - self._stall) / wall
        return CpuUse(processes, max(0.0, busy - sum(processes.values())), stalled, wall)


def settle(pid: int, idle_percent: float = 10.0, timeout_s: float = 300.0) -> float:
    """Wait until a process (InfluxDB compacting what was just loaded) idles for 3 s; seconds waited."""
    started = time.monotonic()
    quiet = 0
    while quiet < 3 and time.monotonic() - started < timeout_s:
        watch = CpuWatch({"p": pid})
        time.sleep(1.0)
        quiet = quiet + 1 if watch.use().processes["p"] < idle_percent else 0
    return time.monotonic() - started


class ApiProcess:
    """``citywatch api run`` as a child process; a context manager that stops it (SIGTERM, then KILL)."""

    def __init__(self, env: Mapping[str, str], port: int, log_path: Path) -> None:
        self.env, self.port, self.log_path = dict(env), port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(BIN / "citywatch"), "api", "run", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark, which stops the API in order
            )
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, headers: Mapping[str, str], timeout_s: float) -> float:
        """Until ``/healthz`` and the fault map answer (its positions are read at startup, in a thread
        that would compete with the requests); seconds waited."""
        started = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=10.0, trust_env=False) as http:
            for path, auth in (("/healthz", {}), ("/api/v1/map/summary", headers)):
                while True:
                    if self._proc is None or self._proc.poll() is not None:
                        raise BenchError(f"the API exited:\n{self.log_tail()}")
                    if time.monotonic() - started > timeout_s:
                        raise BenchError(f"the API was not ready in {timeout_s:.0f} s:\n{self.log_tail()}")
                    try:
                        if http.get(path, headers=auth).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
        return time.monotonic() - started


def server_seconds(url: str) -> dict[str, tuple[float, float]]:
    """``citywatch_api_request_seconds`` sum and count per GET route template."""
    text = httpx.get(f"{url}/metrics", timeout=10.0, trust_env=False).text
    out: dict[str, tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("method") != "GET":
                continue
            total, count = out[s.labels["route"]]
            if s.name == "citywatch_api_request_seconds_sum":
                out[s.labels["route"]] = (total + s.value, count)
            elif s.name == "citywatch_api_request_seconds_count":
                out[s.labels["route"]] = (total, count + s.value)
    return dict(out)


def since(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """What the histogram gained between two reads."""
    zero = (0.0, 0.0)
    return {k: (t - before.get(k, zero)[0], c - before.get(k, zero)[1]) for k, (t, c) in after.items()}
