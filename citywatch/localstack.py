"""Local Mosquitto and InfluxDB processes, for ``citywatch run`` (under ``var/``) and the test fixtures.

Each service is a context manager around one child process: it writes its config file into its data
directory, starts the server on 127.0.0.1, waits (bounded, polling) until the server answers, and stops
it with SIGTERM, then SIGKILL after a deadline. ``kill()`` simulates a crash; ``restart()`` keeps the
port and the data directory.

``LocalMosquitto(data_dir, auth=True)`` runs the broker with per-device credentials (Mosquitto's
dynamic-security plugin; the model is ``citywatch.broker_acl``): no anonymous access, an admin account
and one account per CityWatch service, whose generated passwords stay in ``credentials.json`` (0600)
in the data directory and across restarts.

Exceptions::

    LocalServiceError    a binary is missing, a port is taken, or a server did not come up
                         (the service name and the tail of its log are in the message)
"""

from __future__ import annotations

import abc
import http.client
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from citywatch.broker_accounts import write_accounts_file
from citywatch.broker_acl import ADMIN, SERVICES, ServiceAccount
from citywatch.broker_logins import LoginsFile

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

# Queue sizing for a disconnected persistent session (the ingest's) -- the broker must hold at least one
# hour of the whole city while the ingest is down or restarting:
#   100,000 devices x 1 reading / 60 s = 100,000 messages / min
#   x 60 min                           = 6,000,000 messages in the worst case (one reading per message;
#                                        gateway batching makes it ~50x fewer, ~120,000)
# Mosquitto's default max_queued_messages of 1000 would silently drop all but the first 10 s of that.
# 10,000,000 covers the hour with 1.6x headroom (about 100 minutes of outage).
CITY_DEVICES = 100_000
REPORT_INTERVAL_S = 60
OUTAGE_BUDGET_S = 3600
MAX_QUEUED_MESSAGES = 10_000_000
# No byte cap (0): the count above is the limit sized from the city; a byte cap would be a second limit
# that silently drops as soon as payloads grow. Memory stays bounded by the count: measured on 2.0.11,
# a queued ~50-byte reading costs ~400 B of broker memory and ~150 B in mosquitto.db, so the unbatched
# worst case (6M) is ~2.4 GB of RAM and ~0.9 GB rewritten at every autosave.
MAX_QUEUED_BYTES = 0
# The ingest acknowledges in batches; the default of 20 in-flight QoS 1 messages would cap a batch at 20.
MAX_INFLIGHT_MESSAGES = 1000
# 1 MiB per MQTT packet: a gateway batch of 50 readings is ~10 KB; anything near 1 MiB is a fault.
MAX_PACKET_SIZE = 1024 * 1024
# Seconds between saves of the in-memory database: at most this much is lost when the broker crashes
# (a clean stop always saves).
AUTOSAVE_INTERVAL_S = 30

# InfluxDB 1.x rejects a write body above this with 413. The ingest's batches (thousands of ~100-byte
# lines) are well under 1 MB; 25 MB is InfluxDB's own default and leaves room for a backfill.
INFLUX_MAX_BODY_SIZE = 25_000_000


class LocalServiceError(Exception):
    """A local service could not be found, started or reached."""

    def __init__(self, service: str, problem: str, log_tail: str = "") -> None:
        self.service = service
        self.problem = problem
        self.log_tail = log_tail
        message = f"{service}: {problem}"
        if log_tail:
            message += f"\n--- last lines of the {service} log ---\n{log_tail}"
        super().__init__(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str) -> str:
    """The path of a server binary: PATH first, then the sbin folders Debian installs servers into."""
    # Debian puts mosquitto in /usr/sbin, which is not on an ordinary user's PATH.
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        raise LocalServiceError(
            name, f"'{name}' is not on PATH (nor in /usr/sbin): install it, e.g. apt-get install {name}"
        )
    return found


#: The dynamic-security plugin's file names: Debian and Ubuntu put it under a multiarch folder,
#: the eclipse-mosquitto image (Alpine) and source builds directly under lib.
DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"
_DYNSEC_PLACES = ("/usr/lib/*-linux-gnu", "/usr/lib", "/usr/local/lib", "/usr/lib64")
#: The plugin's config (accounts, roles, hashed passwords) in an authenticated broker's data directory.
DYNSEC_FILE = "dynamic-security.json"


def find_dynsec_plugin() -> Path:
    """The path of Mosquitto's dynamic-security plugin."""
    for place in _DYNSEC_PLACES:
        for found in sorted(Path("/").glob(f"{place.lstrip('/')}/{DYNSEC_PLUGIN}")):
            return found
    raise LocalServiceError(
        "mosquitto", f"{DYNSEC_PLUGIN} is not in {', '.join(_DYNSEC_PLACES)}: install Mosquitto 2.0 or later"
    )


def mosquitto_conf(
    port: int,
    data_dir: Path,
    extra: str = "",
    *,
    run_as: str | None = None,
    dynsec_plugin: Path | None = None,
) -> str:
    """The mosquitto.conf (Mosquitto 2.0) for a local broker on 127.0.0.1:``port`` keeping its state in
    ``data_dir``. ``run_as`` is needed only when started as root (see below). With ``dynsec_plugin``
    every client must log in, and the plugin's accounts and ACLs (``data_dir``/dynamic-security.json)
    decide what it may do; without, the loopback-only listener is open to anyone on this machine."""
    _reject_newlines(str(data_dir))
    if dynsec_plugin is None:
        access = ["allow_anonymous true"]
    else:
        _reject_newlines(str(dynsec_plugin))
        access = [
            "allow_anonymous false",
            f"plugin {dynsec_plugin}",
            f"plugin_opt_config_file {data_dir / DYNSEC_FILE}",
        ]
    lines = [
        "# Written by citywatch.localstack; regenerated on every start.",
        f"listener {port} {LOOPBACK}",
        *access,
        "persistence true",
        f"persistence_location {data_dir}/",
        f"autosave_interval {AUTOSAVE_INTERVAL_S}",
        f"log_dest file {data_dir / 'mosquitto.log'}",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"max_packet_size {MAX_PACKET_SIZE}",
        "set_tcp_nodelay true",
    ]
    if run_as is not None:
        # Started as root, mosquitto switches to the user "mosquitto", which cannot write our data
        # directory: the log file fails to open and the persistence database is never saved.
        lines.append(f"user {run_as}")
    if extra:
        lines.append(extra.rstrip("\n"))
    return "\n".join(lines) + "\n"


def influxdb_conf(http_port: int, rpc_port: int, data_dir: Path) -> str:
    """The influxdb.conf (InfluxDB 1.6) for a local database on 127.0.0.1 keeping its files in
    ``data_dir``. Every listening socket is on a port of its own, so several instances can run at once."""
    if http_port == rpc_port:
        raise ValueError(f"HTTP and RPC ports must differ, both are {http_port}")

    def toml_str(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string

    return f"""\
# Written by citywatch.localstack; regenerated on every start.
# influxd 1.6 silently ignores keys it does not know, so both spellings of the usage-report switch are
# here: upstream reads reporting-disabled, Debian's build reads (only) reporting-enabled.
reporting-disabled = true
reporting-enabled = false
# The backup/restore RPC service (default 8088).
bind-address = {toml_str(f"{LOOPBACK}:{rpc_port}")}

[meta]
  dir = {toml_str(data_dir / "meta")}

[data]
  dir = {toml_str(data_dir / "data")}
  wal-dir = {toml_str(data_dir / "wal")}
  query-log-enabled = false
  # The defaults (1,000,000 series per database, 100,000 values per tag) would refuse writes from a
  # million-lamp city: every device is a series per measurement and a value of the device tag.
  max-series-per-database = 0
  max-values-per-tag = 0

[monitor]
  # Otherwise every instance writes its own statistics into an _internal database every 10 s.
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = {toml_str(f"{LOOPBACK}:{http_port}")}
  log-enabled = false
  pprof-enabled = false
  max-body-size = {INFLUX_MAX_BODY_SIZE}
  # The unix socket's path (/var/run/influxdb.sock) would be shared by every instance.
  unix-socket-enabled = false

[ifql]
  # Would listen on :8082 on all interfaces.
  enabled = false

[logging]
  suppress-logo = true

# [[graphite]], [[collectd]], [[opentsdb]] and [[udp]] are disabled by default and stay so.
"""


def influx_ping(url: str, timeout: float = 1.0) -> bool:
    """True when the InfluxDB 1.x at ``url`` answers ``GET /ping`` with 204."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    # No proxy: a local server must not be asked for through an HTTP_PROXY from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url.rstrip('/')}/ping", timeout=timeout) as response:
            return bool(response.status == 204)
    except (OSError, http.client.HTTPException):
        return False


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _reject_newlines(value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"a line break cannot go into a config file: {value!r}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - 16_384))
            text = file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class _LocalServer(abc.ABC):
    """One server process on 127.0.0.1 with its own data directory."""

    name: str
    binary: str
    _POLL_INTERVAL_S = 0.05

    def __init__(self, data_dir: Path, port: int | None, start_timeout: float, stop_timeout: float) -> None:
        self.data_dir = data_dir.resolve()
        self._port = port if port is not None else free_port()
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def console_log(self) -> Path:
        """The process's stdout and stderr."""
        return self.data_dir / f"{self.name}.console.log"

    @abc.abstractmethod
    def _write_config(self) -> list[str]:
        """Write the config file and return the command's arguments after the binary."""

    @abc.abstractmethod
    def _answers(self) -> bool:
        """True once the server serves requests."""

    def _log_files(self) -> list[Path]:
        return [self.console_log]

    def _child_env(self) -> dict[str, str]:
        return dict(os.environ)

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in self._log_files():
            text = _tail(path, lines)
            if text:
                parts.append(f"[{path}]\n{text}")
        return "\n".join(parts)

    def start(self) -> None:
        """Start the server and wait until it answers; raise LocalServiceError if it does not."""
        if self._proc is not None:
            raise LocalServiceError(self.name, f"already started (pid {self._proc.pid})")
        binary = find_binary(self.binary)
        if _accepts_connections(self.host, self.port):
            raise LocalServiceError(self.name, f"port {self.port} is already in use by another process")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [binary, *self._write_config()]
        log.info("starting %s on %s:%d (data in %s)", self.name, self.host, self.port, self.data_dir)
        with self.console_log.open("ab") as console:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=self._child_env(),
                cwd=self.data_dir,
                # Our own process group: Ctrl-C reaches only us, and we stop the servers in order.
                start_new_session=True,
            )
        try:
            self._await_ready(self._proc)
        except BaseException:
            self.kill()
            raise
        log.info("%s is up on %s:%d (pid %d)", self.name, self.host, self.port, self._proc.pid)

    def _await_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._start_timeout
        while not self._answers():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LocalServiceError(
                    self.name,
                    f"not answering on port {self.port} after {self._start_timeout:.0f} s",
                    self.log_tail(),
                )
            try:
                # Waiting on the process is the pause between polls, and notices an early exit at once.
                code = proc.wait(timeout=min(self._POLL_INTERVAL_S, remaining))
            except subprocess.TimeoutExpired:
                continue
            raise LocalServiceError(self.name, f"exited with code {code} while starting", self.log_tail())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server has not exited by the deadline. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, self._stop_timeout)
                proc.kill()
                proc.wait()
        self._proc = None
        log.info("%s stopped (exit code %s)", self.name, proc.returncode)

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed or saved."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None
        log.info("%s killed", self.name)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalMosquitto(_LocalServer):
    """A Mosquitto 2.0 broker on 127.0.0.1 with persistence in ``data_dir``; with ``auth``, every client
    logs in and the dynamic-security plugin enforces the per-device ACL (``citywatch.broker_acl``)."""

    name = "mosquitto"
    binary = "mosquitto"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        extra_conf: str = "",
        auth: bool = False,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        super().__init__(data_dir, port, start_timeout, stop_timeout)
        self._extra_conf = extra_conf
        self.auth = auth
        self._logins = LoginsFile(self.credentials_path)

    @property
    def url(self) -> str:
        """The broker's URL, without credentials."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def credentials_path(self) -> Path:
        """The admin's and the services' passwords (with ``auth``; mode 0600)."""
        return self.data_dir / "credentials.json"

    @property
    def dynsec_path(self) -> Path:
        return self.data_dir / DYNSEC_FILE

    @property
    def admin_url(self) -> str:
        """The URL of the broker's admin account (for ``citywatch.broker_accounts.BrokerAccounts``)."""
        if not self.auth:
            raise LocalServiceError(self.name, "started without auth: there is no admin account")
        return self._account_url(ADMIN)

    def service_url(self, service: str) -> str:
        """The URL ``service`` (ingest, analytics, api, sim) connects with: its own account with ``auth``,
        else the anonymous broker's URL."""
        account = SERVICES.get(service)
        if account is None:
            raise KeyError(f"no broker account for {service!r}; the services are {', '.join(SERVICES)}")
        return self._account_url(account) if self.auth else self.url

    def previous_admin_url(self) -> str | None:
        """The admin URL of this data directory's broker when it last started (None: never with auth).
        Its port may be stale: the broker may have stopped, or started again on another port."""
        return self._logins.previous_admin_url()

    def _account_url(self, account: ServiceAccount) -> str:
        return self._logins.url(account, self.host, self.port)

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mosquitto.log"

    def _write_config(self) -> list[str]:
        run_as = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
        plugin = None
        if self.auth:
            plugin = find_dynsec_plugin()
            self._logins.save(self.host, self.port)
            # The services' accounts are (re)written on every start, so a role changed in broker_acl
            # applies at the next start; the device accounts issued since stay as they are.
            write_accounts_file(self.dynsec_path, self._logins.accounts())
        text = mosquitto_conf(self.port, self.data_dir, self._extra_conf, run_as=run_as, dynsec_plugin=plugin)
        self.conf_path.write_text(text, encoding="utf-8")
        return ["-c", str(self.conf_path)]

    def _answers(self) -> bool:
        return _accepts_connections(self.host, self.port)

    def _log_files(self) -> list[Path]:
        # Config errors go to stderr (the console log) before the log file is opened.
        return [self.console_log, self.log_path]


class LocalInfluxDB(_LocalServer):
    """An InfluxDB 1.x server on 127.0.0.1 with its meta, data and WAL in ``data_dir``."""

    name = "influxd"
    binary = "influxd"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        rpc_port: int | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, port, start_timeout, stop_timeout)
        self._rpc_port = rpc_port if rpc_port is not None else free_port()
        while self._rpc_port == self.port:
            self._rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def rpc_port(self) -> int:
        return self._rpc_port

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "influxdb.conf"

    @property
    def log_path(self) -> Path:
        """influxd logs to stderr, so its log is the console log."""
        return self.console_log

    def _write_config(self) -> list[str]:
        text = influxdb_conf(self.port, self.rpc_port, self.data_dir)
        self.conf_path.write_text(text, encoding="utf-8")
        return ["-config", str(self.conf_path)]

    def _child_env(self) -> dict[str, str]:
        # influxd applies INFLUXDB_<SECTION>_<KEY> variables over the config file (e.g.
        # INFLUXDB_HTTP_BIND_ADDRESS would move the port); the file must be the whole truth.
        return {key: value for key, value in os.environ.items() if not key.startswith("INFLUXDB_")}

    def _answers(self) -> bool:
        return influx_ping(self.url, timeout=0.5)
