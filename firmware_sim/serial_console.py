"""Simulated devices behind a pseudo-terminal (adapter): the commissioning tool opens ``path`` with pyserial.

One ``SerialConsole`` is one serial line: a point-to-point cable to one device, or an RS-485 bus with
several devices at bus addresses 1, 2, ... The console thread reads the pty's master side, deframes
(``devices.commissioning.framing``), lets each ``ConsoleDevice`` that hears a frame answer, applies the
line's misbehaviour (answers lost, damaged or late), and carries out the devices' effects: the
configuration goes to a ``ConfigStore`` (the device's flash: it survives a restart of the simulator),
a self-test tries the broker, a restart makes the device deaf for a while and then starts its
``DeviceReporter`` with the stored configuration.

The slave side is put in raw mode and kept open by the simulator itself, so the line stays up (no EIO on
the master) while the tool closes and reopens the port.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import random
import select
import threading
import time
import tty
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson

from devices.commissioning import MessageError
from devices.commissioning.config import DeviceConfig, Identity, Position
from devices.commissioning.framing import Deframer, Frame, encode
from devices.commissioning.messages import SUPPORTED_VERSIONS, Check
from devices.kinds import DeviceKind
from firmware_sim import SimError
from firmware_sim.console_device import ConsoleDevice, Effect, Misbehaviour, damage
from firmware_sim.console_mqtt import DeviceReporter, broker_check

log = logging.getLogger(__name__)

MODELS = {
    DeviceKind.LAMP: "CW-LC100 single-lamp controller",
    DeviceKind.CABINET: "CW-CC300 lighting cabinet controller",
    DeviceKind.BRIDGE_NODE: "CW-SN200 structure sensor node",
    DeviceKind.PUMP_STATION: "CW-PB400 pump station PLC bridge",
    DeviceKind.FLOOD_GAUGE: "CW-WD110 water depth gauge",
    DeviceKind.BIN: "CW-FL120 fill-level meter",
}
FIRMWARE = "1.4.2"
HARDWARE = "rev C"


def new_serial() -> str:
    return f"SIM{uuid.uuid4().hex[:8].upper()}"


def identity(kind: DeviceKind, serial: str, gnss: Position | None) -> Identity:
    return Identity(
        model=MODELS[kind],
        serial=serial,
        firmware=FIRMWARE,
        hardware=HARDWARE,
        kinds=(kind,),
        protocols=SUPPORTED_VERSIONS,
        gnss=gnss,
    )


class ConfigStore:
    """The simulated devices' flash: one JSON file per serial number (password included, as on a device)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, serial: str) -> Path:
        return self.directory / f"{serial}.json"

    def load(self, serial: str) -> DeviceConfig | None:
        try:
            return DeviceConfig.from_json(orjson.loads(self._path(serial).read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, MessageError) as exc:
            raise SimError(f"{self._path(serial)}: not a stored configuration ({exc})") from exc

    def save(self, serial: str, config: DeviceConfig) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(serial)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(config.to_json()))
        tmp.chmod(0o600)
        os.replace(tmp, path)


@dataclass(slots=True)
class _Station:
    """One device on the line, with what only the adapter knows: when it is deaf, its network side."""

    device: ConsoleDevice
    reporter: DeviceReporter | None = None
    deaf_until: float = 0.0
    waking: bool = False


class SerialConsole:
    """Devices behind one pseudo-terminal; a context manager that serves the line in a thread."""

    def __init__(
        self,
        devices: Sequence[ConsoleDevice],
        store: ConfigStore | None = None,
        *,
        seed: int = 0,
        broker_timeout_s: float = 3.0,
    ) -> None:
        if not devices:
            raise ValueError("a line needs at least one device")
        self.stations = [_Station(d) for d in devices]
        self.store = store
        self.broker_timeout_s = broker_timeout_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._outbox: list[tuple[float, int, bytes]] = []  # (due, order, wire bytes)
        self._order = itertools.count()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="serial-console", daemon=True)
        self._master = self._slave = -1
        self.path = ""
        self.deframer = Deframer()

    @property
    def devices(self) -> list[ConsoleDevice]:
        return [s.device for s in self.stations]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # binary: no echo, no CR/LF translation, no signals from ^C bytes
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        for station in self.stations:
            station.device.log.append(f"boot: {station.device.identity.model}, firmware {FIRMWARE}")
            self._bring_up(station)
        self._thread.start()
        log.info("serial console on %s: %d device(s)", self.path, len(self.stations))

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        for station in self.stations:
            if station.reporter is not None:
                station.reporter.stop()
                station.reporter = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    # -- the line ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            with self._lock:
                due = self._outbox[0][0] if self._outbox else now + 0.05
            ready, _, _ = select.select([self._master], [], [], max(0.0, min(0.05, due - now)))
            if ready:
                try:
                    data = os.read(self._master, 4096)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError as exc:  # the line is gone
                    log.warning("serial console %s: %s", self.path, exc)
                    return
                for frame in self.deframer.feed(data):
                    self._dispatch(frame)
            self._wake_restarted()
            self._write_due()

    def _dispatch(self, frame: Frame) -> None:
        now = time.monotonic()
        for station in self.stations:
            device = station.device
            if not device.hears(frame) or now < station.deaf_until:
                continue
            with self._lock:
                reply = device.handle(frame)
            if reply.frame is not None:
                self._send(reply.frame, device.misbehaviour)
            if reply.effect is Effect.STORE_CONFIG and self.store is not None and device.config is not None:
                self.store.save(device.identity.serial, device.config)
            elif reply.effect is Effect.CHECK_BROKER:
                threading.Thread(target=self._self_test, args=(station,), daemon=True).start()
            elif reply.effect is Effect.RESTART:
                station.deaf_until = now + device.reboot_s
                station.waking = True
                reporter, station.reporter = station.reporter, None
                if reporter is not None:
                    threading.Thread(target=reporter.stop, daemon=True).start()

    def _self_test(self, station: _Station) -> None:
        device = station.device
        config = device.config
        if config is None:
            check = Check("broker", False, "not configured")
        elif device.misbehaviour.offline:
            check = Check("broker", False, "network unreachable (no route to host)")
        else:
            check = broker_check(config, self.broker_timeout_s)
        with self._lock:
            frame = device.self_test_done(check)
        if frame is not None:
            self._send(frame, device.misbehaviour)

    def _wake_restarted(self) -> None:
        now = time.monotonic()
        for station in self.stations:
            if station.waking and now >= station.deaf_until:
                station.waking = False
                with self._lock:
                    station.device.restarted()
                    station.device.log.append(f"boot: restarted, firmware {FIRMWARE}")
                self._bring_up(station)

    def _bring_up(self, station: _Station) -> None:
        """Start reporting with the stored configuration, if there is one."""
        device = station.device
        if device.config is None:
            device.log.append("boot: not configured; waiting on the service port")
            return
        station.reporter = DeviceReporter(
            device.config,
            device.log,
            offline=device.misbehaviour.offline,
            silent=device.misbehaviour.silent,
            seed=self._rng.randrange(2**32),
        )
        station.reporter.start()

    def _send(self, frame: Frame, misbehaviour: Misbehaviour) -> None:
        wire = encode(frame)
        with self._lock:
            if self._rng.random() < misbehaviour.drop:
                return
            if self._rng.random() < misbehaviour.garble:
                wire = damage(wire, self._rng)
            heapq.heappush(self._outbox, (time.monotonic() + misbehaviour.delay_s, next(self._order), wire))

    def _write_due(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._outbox or self._outbox[0][0] > now:
                    return
                _, _, wire = heapq.heappop(self._outbox)
            self._write(wire)

    def _write(self, wire: bytes) -> None:
        view = memoryview(wire)
        deadline = time.monotonic() + 2.0
        while view and time.monotonic() < deadline:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)  # the tool is not reading: wait a little
