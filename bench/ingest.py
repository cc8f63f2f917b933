"""Ingest throughput, lag, CPU and memory on this machine, against the ceilings of its parts.

    .venv/bin/python bench/ingest.py            # the full run: a million-lamp city, ~15-20 minutes
    .venv/bin/python bench/ingest.py --quick    # smoke run, under 2 minutes
    .venv/bin/python bench/ingest.py --py-spy /tmp/ingest.txt   # also profile the worker during (a)

Everything runs here, on 127.0.0.1: a fresh Mosquitto and InfluxDB in a temporary directory
(``citywatch.localstack``), a SQLite registry of the benchmark city (lamps under gateways, 100 per gateway),
and the ingest worker as its own process (``citywatch ingest run``, fixed ``CITYWATCH_INGEST_CLIENT_ID`` so
its persistent session is reused), whose CPU time (``/proc/<pid>/stat``) and peak RSS (``VmHWM``) are read.
Every InfluxDB series of the city exists before the measurements (one old ``seq`` point per lamp), as in a
city that has been running for a minute; each measurement stamps its readings in a time window of its own,
which its count queries (``SELECT count(seq) FROM lamp WHERE time ...``).

- (d) ceilings, first: InfluxDB write-only (the drain's points as the ingest's own line protocol, 5,000
  lines a write, from 1 and 2 clients); broker to a paho receive-only subscriber (QoS 1, auto-ack) of the
  drain's gateway batches and of single-reading messages, queued while it was away.
- (a) drain: a fresh session for the worker (any old one removed; the worker started until it handled a
  message, then SIGTERM), N gateway-batched readings published (QoS 1, every PUBACK awaited), then the
  worker started and timed from its first stored batch until the count says all N are queryable (target:
  80% of the better InfluxDB ceiling). If the broker did not queue for the absent shared subscriber, the
  drain is measured while publishing to the connected worker instead, and the table says so.
- (c) the same with single-reading messages on ``cw/v1/dev/{id}/telemetry``.
- (e) the worker's CPU seconds per 1,000 readings while draining (start-up excluded) and its peak RSS; a
  second drain twice as large, run last because it may overload InfluxDB, shows whether memory grows
  with the backlog.
- (b) live: a rate-limited publisher of gateway batches (100 full lamp readings each, stamped when sent)
  steps up the rate while the worker runs. Per step: achieved publish rate, stored rate (the worker's
  counter, until the step's last reading was stored), end-to-end lag (a probe reading published every
  second on its own topic and polled in InfluxDB until queryable; and the worker's
  ``citywatch_ingest_lag_seconds`` histogram), CPU of each process (% of one core). A step passes when the
  publisher kept the rate, the worker stored it and no lag reached 2 s. Steps up to the target always run;
  above it, stepping stops at the first failure. (Why not the simulator: ``firmware_sim.runner.run`` stamps
  readings with its tick time and publishes a tick at once. With 60 s ticks a million-lamp city arrives as
  one burst a minute, so the lag of its last reading is the burst's length whatever the ingest does; with
  1 s ticks and the devices' reporting phases spread, a gateway's batch holds one or two readings.)

Each row also shows InfluxDB's own write counters (``/debug/vars``): writes, points per write, and how much
of the time a write was open. Every process started here is stopped at the end, on errors and on Ctrl-C.
"""

# ruff: noqa: E402 - the path fix below must run before the imports
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file (ingest.py) would shadow the
# ``ingest`` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import itertools
import math
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Self

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from citywatch.localstack import LocalInfluxDB, LocalMosquitto, free_port
from devices import topics
from devices.assets import Asset
from devices.contract import FieldValue, Reading, batch_payload, encode_reading, single_payload
from devices.kinds import DeviceKind
from devices.registry import Registry
from ingest.influx import InfluxTarget, InfluxV1
from ingest.lineproto import reading_line

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

LAMPS_PER_GATEWAY = 100
DISTRICTS = ("jiangan", "jianghan", "qiaokou", "hanyang", "wuchang", "qingshan", "hongshan")
PROBE = "PROBE-0001"  # a registered lamp without gateway: the live lag probe
DB = "citywatch"
CLIENT_ID = "bench-ingest-1"
BATCH_LINES = 5000  # the ingest's CITYWATCH_INGEST_BATCH_MAX_LINES default
TARGET_RATE = 1_000_000 / 60  # a million lamps reporting every 60 s
LAG_LIMIT_S = 2.0
HOUR_MS = 3_600_000
PUBLISH_WINDOW = 20_000  # unacknowledged QoS 1 publishes; paho's message ids are 16-bit
BIN = Path(sys.executable).parent
SOURCE = "rate-limited publisher"  # what feeds the live steps


class BenchError(Exception):
    """A measurement could not be made: a process died, a deadline passed."""


@dataclass(frozen=True, slots=True)
class Plan:
    lamps: int
    readings: int  # the drain (a), the ceilings (d)
    memory_readings: int  # the second drain (e); 0: skip
    singles: int  # (c)
    rates: tuple[float, ...]  # (b), readings/s
    step_s: float
    py_spy: Path | None = None


FULL = Plan(1_000_000, 500_000, 1_000_000, 100_000, (5000, 10_000, TARGET_RATE, 25_000, 35_000, 50_000), 60)
QUICK = Plan(20_000, 50_000, 100_000, 10_000, (5000, TARGET_RATE, 35_000), 15)


@dataclass(frozen=True, slots=True)
class Row:
    measurement: str
    value: str
    target: str = ""
    verdict: str = ""  # PASS, FAIL or empty (information)


# -- the benchmark city ---------------------------------------------------------------------------------


def lamp_id(i: int) -> str:
    return f"LAMP-{i:07d}"


def gateway_id(g: int) -> str:
    return f"GWB-{g:05d}"


def district(g: int) -> str:
    return DISTRICTS[g % len(DISTRICTS)]


def _field_variants(n: int = 251) -> list[dict[str, FieldValue]]:
    """Plausible full lamp readings (the simulator's 14 fields), typed as the decoder returns them."""
    rng = random.Random(7)
    out = []
    for _ in range(n):
        watts = round(rng.uniform(55, 240), 1)
        volts = round(rng.uniform(214, 236), 1)
        out.append(
            {
                "supply_voltage": volts,
                "supply_current": round(watts / volts / 0.97, 3),
                "active_power": watts,
                "power_factor": round(rng.uniform(0.95, 0.99), 3),
                "active_energy": round(rng.uniform(1e5, 3e6), 1),
                "lamp_on": True,
                "dim_level": 100,
                "burning_hours": round(rng.uniform(1000, 40000), 2),
                "switch_count": rng.randint(300, 9000),
                "controller_temp": round(rng.uniform(18, 45), 1),
                "lamp_failure": False,
                "relay_failure": False,
                "day_burning": False,
                "cycling": False,
            }
        )
    return out


FIELDS = _field_variants()


def register_city(url: str, lamps: int) -> int:
    """Gateways, their lamps and the probe lamp into the registry; returns the number of assets."""

    def assets() -> Iterator[Asset]:
        for g in range(math.ceil(lamps / LAMPS_PER_GATEWAY)):
            yield Asset(id=gateway_id(g), kind="gateway", district=district(g), lat=30.59, lon=114.30)
        for i in range(lamps):
            g = i // LAMPS_PER_GATEWAY
            yield Asset(
                id=lamp_id(i),
                kind="lamp",
                district=district(g),
                road_class="branch",
                gateway=gateway_id(g),
                lat=30.4 + (i % 1000) * 1e-4,
                lon=114.1 + (i // 1000) * 1e-4,
            )
        yield Asset(id=PROBE, kind="lamp", district=DISTRICTS[0], road_class="trunk", lat=30.59, lon=114.30)

    with Registry(url) as registry:
        return registry.upsert(assets())


@dataclass(frozen=True, slots=True)
class Window:
    """A measurement's time window: its readings are stamped here (one round of the city per minute)."""

    start_ms: int
    lamps: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + HOUR_MS

    def stamp(self, k: int) -> tuple[int, int, int]:
        """Reading k of the window: (lamp, ts_ms, seq)."""
        rounds, lamp = divmod(k, self.lamps)
        if rounds >= 60:
            raise ValueError("more than 60 readings per lamp in one window: use more lamps")
        return lamp, self.start_ms + rounds * 60_000, rounds


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    readings: int


def batch_messages(w: Window, n: int) -> Iterator[Message]:
    """n readings as gateway batches: each gateway's lamps of one round in one message."""
    k = 0
    while k < n:
        first, ts, seq = w.stamp(k)
        g = first // LAMPS_PER_GATEWAY
        end = min((g + 1) * LAMPS_PER_GATEWAY, w.lamps, first + n - k)
        readings = [encode_reading(lamp_id(i), ts, seq, FIELDS[i % len(FIELDS)]) for i in range(first, end)]
        yield Message(topics.batch(gateway_id(g)), batch_payload(gateway_id(g), readings), end - first)
        k += end - first


def single_messages(w: Window, n: int) -> Iterator[Message]:
    for k in range(n):
        i, ts, seq = w.stamp(k)
        device = lamp_id(i)
        yield Message(topics.telemetry(device), single_payload(device, ts, seq, FIELDS[i % len(FIELDS)]), 1)


def line_bodies(w: Window, n: int, per_body: int = BATCH_LINES) -> list[bytes]:
    """The same readings as the ingest writes them (its own line protocol code), per_body lines a write."""
    lines = []
    for k in range(n):
        i, ts, seq = w.stamp(k)
        g = i // LAMPS_PER_GATEWAY
        lines.append(
            reading_line(Reading(lamp_id(i), DeviceKind.LAMP, district(g), ts, seq, FIELDS[i % len(FIELDS)]))
        )
    return ["\n".join(lines[j : j + per_body]).encode() for j in range(0, len(lines), per_body)]


def count_points(influx: InfluxV1, w: Window) -> int:
    series = influx.query(f"SELECT count(seq) FROM lamp WHERE time >= {w.start_ms}ms AND time < {w.end_ms}ms")
    return int(series[0]["values"][0][1]) if series else 0


# -- processes: CPU time and memory from /proc --------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


class CpuWatch:
    """CPU % of one core of several processes over a stretch of wall time."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._at = time.monotonic()
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def percent(self) -> dict[str, float]:
        wall = time.monotonic() - self._at
        return {name: 100 * (cpu_seconds(pid) - self._cpu[name]) / wall for name, pid in self.pids.items()}


def cpu_text(percent: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}%" for name, value in percent.items())


# -- MQTT: a windowed QoS 1 publisher and a counting subscriber ---------------------------------------------


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )


class Publisher:
    """QoS 1 with at most PUBLISH_WINDOW messages waiting for their PUBACK; thread-safe."""

    def __init__(self, broker: LocalMosquitto, client_id: str) -> None:
        self.broker = broker
        self._client = _client(client_id)
        self._client.max_inflight_messages_set(1000)  # the broker's max_inflight_messages (localstack)
        self._client.max_queued_messages_set(0)
        self._client.on_publish = self._on_publish
        self._connected = threading.Event()
        self._client.on_connect = lambda *_: self._connected.set()
        self._cond = threading.Condition()
        self.sent = self.acked = 0

    def __enter__(self) -> Self:
        self._client.connect(self.broker.host, self.broker.port)
        self._client.loop_start()
        if not self._connected.wait(10):
            self.__exit__()
            raise BenchError("no CONNACK from the broker in 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_publish(self, _c: mqtt.Client, _u: object, _mid: int, _reason: object, _p: object) -> None:
        with self._cond:
            self.acked += 1
            self._cond.notify_all()

    def publish(self, message: Message, timeout: float = 60.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.sent - self.acked < PUBLISH_WINDOW, timeout):
                raise BenchError(f"the broker acknowledged nothing for {timeout:.0f} s")
            self.sent += 1
        info = self._client.publish(message.topic, message.payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BenchError(f"publish failed: {mqtt.error_string(info.rc)}")

    def wait_acked(self, timeout: float = 120.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.acked >= self.sent, timeout):
                raise BenchError(f"{self.sent - self.acked} publishes unacknowledged after {timeout:.0f} s")


@dataclass(frozen=True, slots=True)
class Published:
    messages: int
    readings: int
    seconds: float


def publish_all(broker: LocalMosquitto, messages: Iterator[Message]) -> Published:
    """Publish at QoS 1 and return once the broker acknowledged every message."""
    start = time.monotonic()
    count = readings = 0
    with Publisher(broker, "bench-publisher") as pub:
        for message in messages:
            pub.publish(message)
            count += 1
            readings += message.readings
        pub.wait_acked()
    return Published(count, readings, time.monotonic() - start)


def _session_props(expiry_s: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry_s
    props.ReceiveMaximum = 1000  # as the ingest (CITYWATCH_INGEST_RECEIVE_MAXIMUM default)
    return props


class CountingSubscriber:
    """A paho MQTT 5 subscriber that only counts (QoS 1, auto-ack), in a persistent shared subscription."""

    def __init__(self, broker: LocalMosquitto, client_id: str = "bench-receiver") -> None:
        self.broker, self.client_id = broker, client_id
        self.messages = self.readings = 0
        self.last_at = 0.0
        self._client: mqtt.Client | None = None

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages += 1
        self.readings += msg.payload.count(b'"device"')
        self.last_at = time.monotonic()

    def connect(self, *, subscribe: bool) -> None:
        client = self._client = _client(self.client_id)
        client.on_message = self._on_message
        subscribed = threading.Event()
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect(
            self.broker.host, self.broker.port, clean_start=subscribe, properties=_session_props(3600)
        )
        client.loop_start()
        if subscribe:
            group = [(f"$share/bench-receiver/{f}", 1) for f in topics.INGEST_FILTERS]
            client.subscribe(group)
            if not subscribed.wait(10):
                raise BenchError("no SUBACK from the broker")

    def disconnect(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def forget_session(self) -> None:
        self.disconnect()
        forget_session(self.broker, self.client_id)


def forget_session(broker: LocalMosquitto, client_id: str) -> None:
    """Remove a client's session (its subscriptions and queue) from the broker: connect with a clean start."""
    client = _client(client_id)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(broker.host, broker.port, clean_start=True, properties=_session_props(0))
    client.loop_start()
    connected.wait(10)
    client.disconnect()
    client.loop_stop()


def wait_progress(
    read: Callable[[], int],
    target: int,
    *,
    stall_s: float,
    timeout: float = 600.0,
    poll_s: float = 0.05,
    moving: Callable[[], int] | None = None,
) -> bool:
    """Poll ``read`` until it reaches ``target``; False when ``moving`` (default: ``read``) stops moving
    for ``stall_s``, or after ``timeout``."""
    moving = moving or read
    start = last_moved = time.monotonic()
    last = -1
    while read() < target:
        now = time.monotonic()
        if (value := moving()) != last:
            last, last_moved = value, now
        elif now - last_moved > stall_s:
            return False
        if now - start > timeout:
            return False
        time.sleep(poll_s)
    return True


# -- the ingest worker as a process -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metrics:
    messages: float
    written: float
    rejected: float
    spooled: float  # written to the worker's spool because InfluxDB did not answer in time
    lag_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)

    @property
    def activity(self) -> float:
        """Grows while the worker does anything with its messages."""
        return self.messages + self.written + self.rejected + self.spooled


class IngestProcess:
    """``citywatch ingest run`` as a child process; a context manager that stops it (SIGTERM, then KILL)."""

    def __init__(self, env: Mapping[str, str], metrics_port: int, log_path: Path) -> None:
        self._env = dict(env)
        self._url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(trust_env=False, timeout=5.0)
        self.started_at = math.nan

    def __enter__(self) -> Self:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(BIN / "citywatch"), "ingest", "run"],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark, which stops the worker in order
            )
        self.started_at = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._http.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise BenchError(f"the ingest worker exited:\n{self.log_tail()}")

    def metrics(self) -> Metrics | None:
        """The worker's counters, or None while its endpoint is not up."""
        self._check_alive()
        try:
            # Uncompressed: gzip would cost the worker's CPU, which is being measured.
            text = self._http.get(self._url, headers={"Accept-Encoding": "identity"}).text
        except httpx.HTTPError:
            return None
        values: dict[str, float] = defaultdict(float)
        buckets = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "citywatch_ingest_lag_seconds_bucket":
                    buckets.append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_total"):
                    values[s.name] += s.value
        return Metrics(
            values["citywatch_ingest_messages_total"],
            values["citywatch_ingest_readings_written_total"],
            values["citywatch_ingest_readings_rejected_total"],
            values["citywatch_ingest_readings_spooled_total"],
            tuple(sorted(buckets)),
        )

    def wait_metrics(self, timeout: float = 120.0) -> Metrics:
        deadline = time.monotonic() + timeout
        while (m := self.metrics()) is None:
            if time.monotonic() > deadline:
                raise BenchError(f"the worker's metrics endpoint did not come up in {timeout:.0f} s")
            time.sleep(0.05)
        return m

    def handled(self) -> int:
        """Readings stored in InfluxDB or rejected."""
        m = self.metrics()
        return 0 if m is None else int(m.written + m.rejected)

    def activity(self) -> int:
        m = self.metrics()
        return 0 if m is None else int(m.activity)

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]the worker did not stop in {timeout:.0f} s; killing it[/yellow]")
            proc.kill()
            proc.wait()


class PySpy:
    """py-spy recording a process's Python stacks (raw collapsed format) until stopped."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        binary = BIN / "py-spy" if (BIN / "py-spy").exists() else shutil.which("py-spy")
        if binary is None:
            console.print("[yellow]py-spy not found (.venv/bin/pip install py-spy): no profile[/yellow]")
            return self
        args = [str(binary), "record", "--pid", str(self.pid), "--rate", "100", "--format", "raw"]
        self._proc = subprocess.Popen(
            [*args, "--nonblocking", "-o", str(self.out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def profile_summary(path: Path, top: int = 15) -> Table:
    """Self and inclusive share of samples per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [f.split(":")[0] + ")" if ":" in f else f for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    table = Table(title=f"ingest worker during the drain: py-spy, {total} samples of busy threads")
    for column in ("self %", "function (self)", "total %", "function (inclusive)"):
        table.add_column(column, justify="right" if "%" in column else "left", overflow="fold")
    for (f1, n1), (f2, n2) in zip(own.most_common(top), inclusive.most_common(top), strict=False):
        table.add_row(f"{100 * n1 / total:.1f}", f1, f"{100 * n2 / total:.1f}", f2)
    return table


# -- InfluxDB's own counters, and waiting for it to be idle ------------------------------------------------


@dataclass(frozen=True, slots=True)
class InfluxWrites:
    """InfluxDB's /write requests (its /debug/vars httpd counters)."""

    requests: int
    points: int
    busy_s: float  # summed request durations

    def __sub__(self, other: InfluxWrites) -> InfluxWrites:
        return InfluxWrites(
            self.requests - other.requests, self.points - other.points, self.busy_s - other.busy_s
        )

    def text(self, wall_s: float) -> str:
        per = self.points / self.requests if self.requests else 0
        busy = 100 * self.busy_s / wall_s
        return f"{self.requests:,} InfluxDB writes of {per:,.0f} points, a write open {busy:.0f}% of the time"


def influx_writes(url: str) -> InfluxWrites:
    stats = httpx.get(f"{url}/debug/vars", timeout=10, trust_env=False).json()
    values = next(v["values"] for key, v in stats.items() if key.startswith("httpd"))
    return InfluxWrites(values["writeReq"], values["pointsWrittenOK"], values["writeReqDurationNs"] / 1e9)


def settle(b: Bench, idle_percent: float = 15.0, timeout: float = 120.0) -> None:
    """Wait until InfluxDB has finished its compactions (under ``idle_percent`` of a core for a second)."""
    assert b.influxd.pid is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(b.influxd.pid)
        time.sleep(1.0)
        if 100 * (cpu_seconds(b.influxd.pid) - before) < idle_percent:
            return
    console.print(f"[yellow]InfluxDB still busy after {timeout:.0f} s; measuring anyway[/yellow]")


# -- the measurements ---------------------------------------------------------------------------------------


@dataclass
class Bench:
    """The running services and what the measurements share."""

    plan: Plan
    tmp: Path
    broker: LocalMosquitto
    influxd: LocalInfluxDB
    influx: InfluxV1
    registry_url: str
    now_ms: int
    worker_runs: Iterator[int] = field(default_factory=itertools.count)

    def window(self, index: int) -> Window:
        """Window ``index`` (0 to 7) lies in the last 9 hours, an hour apart; live readings are newer."""
        return Window(self.now_ms - (9 - index) * HOUR_MS, self.plan.lamps)

    def worker(self) -> IngestProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}
        port, run = free_port(), next(self.worker_runs)
        env |= {
            "CITYWATCH_MQTT_URL": self.broker.url,
            "CITYWATCH_INFLUX_URL": self.influxd.url,
            "CITYWATCH_INFLUX_DB": DB,
            "CITYWATCH_REGISTRY_URL": self.registry_url,
            # A var (spool, dead letters) per run: a measurement that ended with a spool does not replay it
            # into the next one.
            "CITYWATCH_VAR_DIR": str(self.tmp / f"var-{run}"),
            "CITYWATCH_INGEST_CLIENT_ID": CLIENT_ID,
            "CITYWATCH_INGEST_METRICS_PORT": str(port),
        }
        return IngestProcess(env, port, self.tmp / f"ingest-{run}.log")

    def cpu_watch(self, worker: IngestProcess | None = None) -> CpuWatch:
        pids = {"ingest": worker.pid} if worker is not None else {}
        assert self.influxd.pid is not None and self.broker.pid is not None
        return CpuWatch(
            {**pids, "influxd": self.influxd.pid, "mosquitto": self.broker.pid, "bench": os.getpid()}
        )


def warm_series(b: Bench) -> Row:
    """A ``seq`` point per lamp in window 0: InfluxDB knows the city's series before anything is measured."""
    start = time.monotonic()
    b.influx.create_database()
    ts = b.window(0).start_ms
    lamps = [*map(lamp_id, range(b.plan.lamps)), PROBE]
    districts = [district(i // LAMPS_PER_GATEWAY) for i in range(b.plan.lamps)] + [DISTRICTS[0]]
    lines = [f"lamp,device={d},district={t} seq=0i {ts}" for d, t in zip(lamps, districts, strict=True)]
    for j in range(0, len(lines), BATCH_LINES):
        b.influx.write("\n".join(lines[j : j + BATCH_LINES]).encode())
    seconds = time.monotonic() - start
    return Row("setup: InfluxDB series of every lamp", f"{len(lines):,} series created in {seconds:.1f} s")


def influx_ceiling(b: Bench, clients: int, index: int) -> tuple[float, float]:
    """Points/s written by ``clients`` concurrent writers, 5,000 lines a write, bodies encoded beforehand;
    and InfluxDB's CPU (% of one core) meanwhile."""
    bodies = line_bodies(b.window(index), b.plan.readings)
    target = InfluxTarget(b.influxd.url, DB, timeout_s=60)
    settle(b)
    start, watch = time.monotonic(), b.cpu_watch()

    def write(part: list[bytes]) -> None:
        with InfluxV1(target) as client:
            for body in part:
                client.write(body)

    threads = [threading.Thread(target=write, args=(bodies[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds, cpu = time.monotonic() - start, watch.percent()["influxd"]
    if (stored := count_points(b.influx, b.window(index))) != b.plan.readings:
        raise BenchError(f"InfluxDB ceiling: {stored} points stored of {b.plan.readings}")
    return b.plan.readings / seconds, cpu


@dataclass(frozen=True, slots=True)
class Received:
    messages: int
    readings: int
    seconds: float
    queued: bool  # the broker kept them for the absent subscriber


def receive_ceiling(b: Bench, messages: Callable[[], Iterator[Message]]) -> Received:
    """Messages/s and readings/s a paho subscriber receives when it connects to a queue of them."""
    sub = CountingSubscriber(b.broker)
    settle(b)
    try:
        sub.connect(subscribe=True)
        sub.disconnect()
        sent = publish_all(b.broker, messages())
        start = time.monotonic()
        sub.connect(subscribe=False)
        queued = wait_progress(lambda: sub.messages, sent.messages, stall_s=10)
        if not queued:  # measure while connected instead: publish to the waiting subscriber
            sub.messages = sub.readings = 0
            start = time.monotonic()
            publish_all(b.broker, messages())
            if not wait_progress(lambda: sub.messages, sent.messages, stall_s=10):
                raise BenchError(f"the subscriber received {sub.messages} of {sent.messages} messages")
        return Received(sub.messages, sub.readings, sub.last_at - start, queued)
    finally:
        sub.forget_session()


def create_ingest_session(b: Bench) -> None:
    """A new session for the worker: any old one (and what it queued) removed, then the worker started
    until it has handled a message (its session and shared subscription exist), then stopped (SIGTERM)."""
    forget_session(b.broker, CLIENT_ID)
    probe = Message(topics.telemetry(PROBE), single_payload(PROBE, b.window(0).start_ms + 1, 0, FIELDS[0]), 1)
    with b.worker() as worker:
        worker.wait_metrics()
        deadline = time.monotonic() + 60
        while worker.handled() < 1:  # a message sent before the SUBSCRIBE is not queued: send again
            if time.monotonic() > deadline:
                raise BenchError("the worker handled no message in 60 s")
            publish_all(b.broker, iter([probe]))
            wait_progress(worker.handled, 1, stall_s=2)


@dataclass(frozen=True, slots=True)
class Drain:
    published: Published
    startup_s: float  # worker start to the first stored batch
    seconds: float  # first stored batch until all were queryable
    cpu_s: float  # the worker's CPU time over ``seconds``
    peak_rss_mb: float
    cpu: dict[str, float]  # % of one core per process over ``seconds``
    writes: InfluxWrites  # over ``seconds``
    queued: bool
    rejected: int  # by the worker (none expected)
    spooled: int  # readings the worker spooled because InfluxDB did not answer in time
    stored: int  # queryable: the count in the window

    @property
    def readings(self) -> int:
        return self.published.readings

    @property
    def finished(self) -> bool:
        return self.stored + self.rejected >= self.readings

    @property
    def rate(self) -> float:
        return self.stored / self.seconds

    @property
    def cpu_ms_per_1000(self) -> float:
        return 1e6 * self.cpu_s / max(self.stored, 1)


def drain(
    b: Bench, index: int, messages: Callable[[Window], Iterator[Message]], profile: Path | None = None
) -> Drain:
    """Queue messages for the stopped worker's session, start it, time it until they are all queryable
    (bounded: a drain slower than 2,500 readings/s is stopped and reported unfinished)."""
    w = b.window(index)
    create_ingest_session(b)
    settle(b)
    published = publish_all(b.broker, messages(w))
    n = published.readings
    with ExitStack() as stack:
        worker = stack.enter_context(b.worker())
        worker.wait_metrics()
        queued = wait_progress(worker.activity, 1, stall_s=15)
        if not queued:  # the broker dropped them: publish again, now to the connected worker
            console.print(
                "[yellow]nothing was queued for the absent worker: measuring while publishing[/yellow]"
            )
            threading.Thread(target=publish_all, args=(b.broker, messages(w)), daemon=True).start()
            wait_progress(worker.activity, 1, stall_s=30, poll_s=0.01)
        if profile is not None:  # from the first message on: the start-up is not in the profile
            stack.enter_context(PySpy(worker.pid, profile))
        first_at, first_cpu, watch = time.monotonic(), cpu_seconds(worker.pid), b.cpu_watch(worker)
        writes, deadline = influx_writes(b.influxd.url), first_at + max(180.0, n / 2500)

        def given_away() -> int:  # to InfluxDB (or, when it timed out, to the spool) or rejected
            m = worker.metrics()
            return 0 if m is None else int(m.written + m.rejected + m.spooled)

        wait_progress(given_away, n, stall_s=60, timeout=deadline - first_at, poll_s=0.1)
        end = worker.wait_metrics()
        while True:  # the count, not the worker's counters, says "queryable"
            asked_at = time.monotonic()
            if (stored := count_points(b.influx, w)) + end.rejected >= n or asked_at > deadline:
                break
            time.sleep(0.5)
            end = worker.wait_metrics()
        cpu, writes = watch.percent(), influx_writes(b.influxd.url) - writes
        cpu_s, rss = cpu_seconds(worker.pid) - first_cpu, peak_rss_mb(worker.pid)
        if stored + end.rejected < n:
            console.print(f"[yellow]drain unfinished: {stored:,} of {n:,} queryable[/yellow]")
            console.print(worker.log_tail(8), markup=False)
    startup = first_at - worker.started_at
    return Drain(
        published,
        startup,
        asked_at - first_at,
        cpu_s,
        rss,
        cpu,
        writes,
        queued,
        int(end.rejected),
        int(end.spooled),
        stored,
    )


@dataclass(frozen=True, slots=True)
class Step:
    seconds: float  # publishing
    offered: float
    achieved: float
    stored: float
    probe_lags: list[float]
    hist_p50: float | None
    hist_max: float | None  # the upper bound of the highest bucket reached
    cpu: dict[str, float]
    writes: InfluxWrites
    caught_up: bool

    @property
    def lag_ok(self) -> bool:
        probes_ok = bool(self.probe_lags) and max(self.probe_lags) < LAG_LIMIT_S
        return probes_ok and self.hist_max is not None and self.hist_max <= LAG_LIMIT_S

    @property
    def passed(self) -> bool:
        kept = self.achieved >= 0.95 * self.offered and self.stored >= 0.95 * self.achieved
        return kept and self.caught_up and self.lag_ok


def histogram_summary(before: Metrics, after: Metrics) -> tuple[float | None, float | None]:
    """Median (interpolated in its bucket) and the highest bucket bound reached, between two snapshots."""
    deltas = [(le, a - b) for (le, a), (_, b) in zip(after.lag_buckets, before.lag_buckets, strict=True)]
    total = deltas[-1][1] if deltas else 0
    if total <= 0:
        return None, None
    p50 = highest = None
    low, below = 0.0, 0.0
    for le, cumulative in deltas:
        if p50 is None and cumulative >= total / 2:
            p50 = low if math.isinf(le) else low + (le - low) * (total / 2 - below) / (cumulative - below)
        if highest is None and cumulative >= total:
            highest = le
        low, below = le, cumulative
    return p50, highest


class PacedPublisher:
    """Gateway batches at a fixed readings/s rate, each stamped when it is built (like a gateway sends)."""

    def __init__(self, broker: LocalMosquitto, lamps: int) -> None:
        self.broker = broker
        self.gateways = math.ceil(lamps / LAMPS_PER_GATEWAY)
        self.lamps = lamps
        self._next = itertools.count()  # the k-th batch: gateway k mod G, its round k div G (the seq)

    def run(self, rate: float, seconds: float) -> tuple[int, float]:
        """Publish for ``seconds``; returns (readings acknowledged, seconds taken)."""
        readings = 0
        with Publisher(self.broker, "bench-live") as pub:
            start = due = time.monotonic()
            end = start + seconds
            while (now := time.monotonic()) < end:
                if due > now:
                    time.sleep(min(due - now, end - now))
                    continue
                due = max(due, now - 1.0)  # when behind, owe at most a second
                seq, g = divmod(next(self._next), self.gateways)
                ts = time.time_ns() // 1_000_000
                first, last = g * LAMPS_PER_GATEWAY, min((g + 1) * LAMPS_PER_GATEWAY, self.lamps)
                body = [
                    encode_reading(lamp_id(i), ts, seq, FIELDS[i % len(FIELDS)]) for i in range(first, last)
                ]
                pub.publish(
                    Message(topics.batch(gateway_id(g)), batch_payload(gateway_id(g), body), len(body))
                )
                readings += len(body)
                due += len(body) / rate
            pub.wait_acked(timeout=60)
            return readings, time.monotonic() - start


class LagProbe:
    """Every second, a probe reading on its own topic, polled in InfluxDB until it is queryable."""

    def __init__(self, broker: LocalMosquitto, influx_url: str) -> None:
        self.broker, self.influx_url = broker, influx_url
        self._seq = itertools.count(1)

    def run(self, stop: threading.Event, lags: list[float]) -> None:
        with (
            Publisher(self.broker, "bench-probe") as pub,
            InfluxV1(InfluxTarget(self.influx_url, DB)) as influx,
        ):
            while not stop.is_set():
                seq, sent = next(self._seq), time.time()
                ts_ms = int(sent * 1000)
                pub.publish(Message(topics.telemetry(PROBE), single_payload(PROBE, ts_ms, seq, FIELDS[0]), 1))
                deadline = sent + 30
                while time.time() < deadline:
                    rows = influx.query("SELECT last(seq) FROM lamp WHERE device = $d", {"d": PROBE})
                    if rows and rows[0]["values"][0][1] >= seq:
                        lags.append(time.time() - ts_ms / 1000)
                        break
                    time.sleep(0.02)
                stop.wait(max(0.0, 1.0 - (time.time() - sent)))


def live_steps(b: Bench) -> list[Step]:
    steps: list[Step] = []
    paced = PacedPublisher(b.broker, b.plan.lamps)
    probe = LagProbe(b.broker, b.influxd.url)
    forget_session(b.broker, CLIENT_ID)  # nothing left over from the drains
    with b.worker() as worker:
        worker.wait_metrics()
        for rate in b.plan.rates:
            settle(b)
            before, watch, writes = worker.wait_metrics(), b.cpu_watch(worker), influx_writes(b.influxd.url)
            stop, lags = threading.Event(), list[float]()
            prober = threading.Thread(target=probe.run, args=(stop, lags), daemon=True)
            prober.start()
            start = time.monotonic()
            readings, seconds = paced.run(rate, b.plan.step_s)
            cpu, writes = watch.percent(), influx_writes(b.influxd.url) - writes
            stop.set()
            target = int(before.written + before.rejected) + readings
            caught_up = wait_progress(worker.handled, target, stall_s=30, timeout=120)
            stored_s = time.monotonic() - start  # until the step's last reading was stored
            prober.join(35)
            after = worker.wait_metrics()
            p50, highest = histogram_summary(before, after)
            stored = (after.written - before.written) / stored_s
            step = Step(seconds, rate, readings / seconds, stored, lags, p50, highest, cpu, writes, caught_up)
            steps.append(step)
            console.print(f"  live {rate:,.0f}/s: {'pass' if step.passed else 'FAIL'} ({step_text(step)})")
            if not step.passed and rate >= TARGET_RATE - 1:  # the target step runs even after a failure
                break
    return steps


# -- the report ---------------------------------------------------------------------------------------------


def k(rate: float) -> str:
    return f"{rate / 1000:,.1f}k"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def step_text(s: Step) -> str:
    probes = sorted(s.probe_lags)
    lag = f"lag p50 {probes[len(probes) // 2]:.2f} s, max {probes[-1]:.2f} s" if probes else "no probe seen"
    hist = "-" if s.hist_max is None else f"{s.hist_p50:.2f} s / <= {s.hist_max:g} s"
    return (
        f"achieved {k(s.achieved)}/s, stored {k(s.stored)}/s, {lag} (worker histogram p50 / max {hist})"
        f"{'' if s.caught_up else ', backlog left'}; CPU {cpu_text(s.cpu)}; {s.writes.text(s.seconds)}"
    )


def drain_text(d: Drain, unit: str = "readings") -> str:
    mode = "queued before start" if d.queued else "NOT queued: published to the connected worker"
    messages = "" if unit == "msgs" else f", {d.published.messages:,} msgs"
    done = f"{d.readings:,} {unit}" if d.finished else f"UNFINISHED: {d.stored:,} of {d.readings:,} {unit}"
    notes = [f"{d.rejected:,} rejected"] if d.rejected else []
    if d.spooled:
        notes.append(f"{d.spooled:,} spooled after InfluxDB write timeouts")
    timing = f"in {d.seconds:.1f} s (+{d.startup_s:.1f} s start-up) = {d.rate:,.0f} {unit}/s"
    return f"{done} ({mode}{messages}) {timing}; CPU {cpu_text(d.cpu)}; " + "; ".join(
        [d.writes.text(d.seconds), *notes]
    )


def cpu_per_1000_text(d: Drain) -> str:
    share = d.cpu_ms_per_1000 * TARGET_RATE / 1e5
    return f"{d.cpu_ms_per_1000:.1f} ms (= {share:.0f}% of a core at {k(TARGET_RATE)}/s)"


@dataclass(frozen=True, slots=True)
class Ceilings:
    influx: float  # points/s, the better of 1 and 2 clients
    single: float  # single-reading msgs/s a paho subscriber receives


def setup_city(b: Bench) -> list[Row]:
    start = time.monotonic()
    assets = register_city(b.registry_url, b.plan.lamps)
    gateways = math.ceil(b.plan.lamps / LAMPS_PER_GATEWAY)
    value = f"{b.plan.lamps:,} lamps under {gateways:,} gateways ({assets:,} assets)"
    return [
        Row("setup: city in the registry", f"{value} in {time.monotonic() - start:.1f} s"),
        warm_series(b),
    ]


def measure_ceilings(b: Bench) -> tuple[list[Row], Ceilings]:
    console.print("(d) ceilings")
    (influx_1, cpu_1), (influx_2, cpu_2) = influx_ceiling(b, 1, 1), influx_ceiling(b, 2, 2)
    batches = receive_ceiling(b, lambda: batch_messages(b.window(3), b.plan.readings))
    singles = receive_ceiling(b, lambda: single_messages(b.window(3), b.plan.singles))
    queued = "queued while away" if batches.queued else "NOT queued while away: received live"
    batch_rates = (
        f"{batches.readings / batches.seconds:,.0f} readings/s = {batches.messages / batches.seconds:,.0f}"
    )
    single_rate = singles.messages / singles.seconds
    rows = [
        Row(
            "(d) InfluxDB write-only, 1 client",
            f"{influx_1:,.0f} points/s ({b.plan.readings:,} points, {BATCH_LINES:,} lines a write);"
            f" CPU influxd {cpu_1:.0f}%",
        ),
        Row("(d) InfluxDB write-only, 2 clients", f"{influx_2:,.0f} points/s; CPU influxd {cpu_2:.0f}%"),
        Row(
            "(d) broker -> paho receive-only, gateway batches",
            f"{batch_rates} msgs/s ({batches.messages:,} msgs, {queued})",
        ),
        Row(
            "(d) broker -> paho receive-only, single readings",
            f"{single_rate:,.0f} msgs/s ({singles.messages:,} msgs)",
        ),
    ]
    return rows, Ceilings(max(influx_1, influx_2), single_rate)


def measure_drains(b: Bench, ceilings: Ceilings) -> tuple[list[Row], Drain]:
    plan = b.plan
    console.print("(a) drain")
    d = drain(b, 4, lambda w: batch_messages(w, plan.readings), plan.py_spy)
    console.print("(c) single-reading messages")
    s = drain(b, 5, lambda w: single_messages(w, plan.singles))
    into_broker = f"{d.published.messages / d.published.seconds:,.0f} msgs/s"
    into_broker += f" = {d.published.readings / d.published.seconds:,.0f} readings/s (QoS 1)"
    rows = [
        Row("(a) publish the drain's messages", into_broker),
        Row(
            "(a) drain, gateway batches",
            drain_text(d),
            f">= 80% of the InfluxDB ceiling: {100 * d.rate / ceilings.influx:.0f}%",
            verdict(d.finished and d.rate >= 0.8 * ceilings.influx),
        ),
        Row(
            "(c) drain, single-reading messages",
            drain_text(s, "msgs"),
            f">= 80% of paho single ceiling: {100 * s.rate / ceilings.single:.0f}%",
            verdict(s.finished and s.rate >= 0.8 * ceilings.single),
        ),
        Row("(e) ingest CPU per 1,000 readings, batches", cpu_per_1000_text(d)),
        Row("(e) ingest CPU per 1,000 readings, singles", cpu_per_1000_text(s)),
        Row(f"(e) ingest peak RSS, drain of {d.readings:,}", f"{d.peak_rss_mb:,.0f} MB"),
    ]
    return rows, d


def measure_memory(b: Bench, first: Drain) -> list[Row]:
    """A larger drain, last: when it overloads InfluxDB, nothing measured after it suffers."""
    if not b.plan.memory_readings:
        return []
    console.print("(e) memory: a larger drain")
    m = drain(b, 6, lambda w: batch_messages(w, b.plan.memory_readings))
    return [
        Row(
            f"(e) ingest peak RSS, drain of {m.readings:,}",
            f"{m.peak_rss_mb:,.0f} MB; {drain_text(m)}",
            f"<= 1.25 x the {first.readings:,} drain ({1.25 * first.peak_rss_mb:,.0f} MB)",
            verdict(m.finished and m.peak_rss_mb <= 1.25 * first.peak_rss_mb),
        )
    ]


def measure_live(b: Bench) -> list[Row]:
    console.print(f"(b) live, {b.plan.step_s:.0f} s steps")
    steps = live_steps(b)
    rows = [
        Row(
            f"(b) live {k(s.offered)}/s, {SOURCE}",
            step_text(s),
            f"lag < {LAG_LIMIT_S:g} s",
            verdict(s.passed),
        )
        for s in steps
    ]
    sustained = max((s.offered for s in steps if s.passed), default=0.0)
    rows.append(
        Row(
            f"(b) highest rate sustained with lag < {LAG_LIMIT_S:g} s",
            f"{sustained:,.0f} readings/s",
            f">= {TARGET_RATE:,.0f}/s",
            verdict(sustained >= TARGET_RATE - 1),
        )
    )
    if at_target := [s for s in steps if abs(s.offered - TARGET_RATE) < 1]:
        cpu = at_target[0].cpu["ingest"]
        rows.append(
            Row(
                f"(b) ingest CPU at {k(TARGET_RATE)}/s",
                f"{cpu:.0f}% of one core",
                "< 100%: CPU to spare",
                verdict(cpu < 100),
            )
        )
    return rows


def run(plan: Plan) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="cw-ingest-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        console.print(f"starting Mosquitto and InfluxDB in {tmp}")
        broker = stack.enter_context(LocalMosquitto(tmp / "mosquitto"))
        influxd = stack.enter_context(LocalInfluxDB(tmp / "influxdb"))
        influx = stack.enter_context(InfluxV1(InfluxTarget(influxd.url, DB, timeout_s=120)))
        registry_url = f"sqlite:///{tmp / 'registry.db'}"
        b = Bench(plan, tmp, broker, influxd, influx, registry_url, time.time_ns() // 1_000_000)
        rows = setup_city(b)
        ceiling_rows, ceilings = measure_ceilings(b)
        drain_rows, first_drain = measure_drains(b, ceilings)
        live_rows = measure_live(b)
        return rows + ceiling_rows + drain_rows + live_rows + measure_memory(b, first_drain)


def print_table(rows: list[Row], plan: Plan) -> None:
    table = Table(
        title=f"ingest benchmark: {plan.lamps:,} lamps, {os.cpu_count()} cores, all on 127.0.0.1",
        show_lines=True,
    )
    table.add_column("measurement", overflow="fold", max_width=34)
    table.add_column("value", overflow="fold")
    table.add_column("target", overflow="fold", max_width=30)
    table.add_column("result")
    for row in rows:
        style = {"PASS": "green", "FAIL": "red"}.get(row.verdict, "")
        table.add_row(
            row.measurement, row.value, row.target, f"[{style}]{row.verdict}[/{style}]" if style else ""
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and 15 s steps: a smoke run")
    parser.add_argument("--readings", type=int, help="readings in the drain and the ceilings")
    parser.add_argument("--memory-readings", type=int, help="readings in the second drain (0: skip)")
    parser.add_argument("--singles", type=int, help="single-reading messages")
    parser.add_argument("--lamps", type=int, help="lamps in the city")
    parser.add_argument("--step-s", type=float, help="seconds per live step")
    parser.add_argument("--py-spy", type=Path, help="profile the worker during the drain into this file")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    overrides = {
        name: value
        for name in ("readings", "memory_readings", "singles", "lamps", "step_s", "py_spy")
        if (value := getattr(args, name)) is not None
    }
    if "readings" in overrides and "memory_readings" not in overrides:
        overrides["memory_readings"] = 2 * overrides["readings"]
    plan = replace(plan, **overrides)

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    try:
        rows = run(plan)
    except KeyboardInterrupt:
        console.print("[red]interrupted: every process started here was stopped[/red]")
        raise SystemExit(130) from None
    except BenchError as exc:
        console.print(f"[red]benchmark failed: {exc}[/red]")
        raise SystemExit(1) from None
    print_table(rows, plan)
    console.print(f"{time.monotonic() - started:.0f} s in all")
    if plan.py_spy is not None and plan.py_spy.exists():
        console.print(profile_summary(plan.py_spy))


if __name__ == "__main__":
    main()
