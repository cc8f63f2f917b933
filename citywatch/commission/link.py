"""The serial line (adapter): pyserial opens the port exclusively; bytes out, bytes in with a timeout.

pyserial's errors become errors a technician can act on: no such port, not a serial port, no
permission, another program has it. ``exclusive=True`` takes an advisory lock (flock), so two CityWatch
tools, or ``screen`` started with locking, cannot talk over each other.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import serial
from serial.tools import list_ports

from citywatch.commission import LinkError, PortBusy, PortError, PortNotFound

_LIST_HINT = "`citywatch commission --list-ports` lists the serial ports of this machine"


class Transport(Protocol):
    """What the client needs of a line: send bytes, and receive whatever arrives within a timeout."""

    name: str

    def write(self, data: bytes) -> None: ...

    def read(self, timeout_s: float) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PortInfo:
    device: str
    description: str
    hardware: str


def serial_ports() -> list[PortInfo]:
    """The serial ports the OS knows (USB adapters, on-board UARTs); pseudo-terminals are not listed."""
    return [
        PortInfo(p.device, p.description or "", p.hwid or "")
        for p in sorted(list_ports.comports(), key=lambda p: p.device)
    ]


class SerialLink:
    """One open serial port; a context manager."""

    def __init__(self, port: str, baudrate: int = 115_200) -> None:
        self.name = port
        self._serial = serial.Serial()
        self._serial.port = port
        self._serial.baudrate = baudrate
        self._serial.write_timeout = 2.0
        self._serial.exclusive = True

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        try:
            self._serial.open()
        except serial.SerialException as exc:
            raise _port_error(self.name, exc) from exc
        except ValueError as exc:  # a baud rate or setting the port does not take
            raise PortError(f"cannot set up {self.name}: {exc}", hint="check the settings") from exc

    def close(self) -> None:
        self._serial.close()

    def write(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except serial.SerialTimeoutException as exc:
            raise LinkError(
                f"cannot send on {self.name}: the line is blocked",
                hint="check the cable and the adapter's flow control",
            ) from exc
        except (serial.SerialException, OSError) as exc:
            raise _lost(self.name, exc) from exc

    def read(self, timeout_s: float) -> bytes:
        """What arrives within ``timeout_s``: returns as soon as something came (b"" when nothing)."""
        try:
            self._serial.timeout = max(0.0, timeout_s)
            first = self._serial.read(1)
            if not first:
                return b""
            waiting = self._serial.in_waiting
            return first + (self._serial.read(waiting) if waiting else b"")
        except (serial.SerialException, OSError) as exc:
            raise _lost(self.name, exc) from exc


def _lost(port: str, exc: Exception) -> LinkError:
    return LinkError(
        f"lost {port}: {exc}", hint="the device or its USB adapter was unplugged; plug it in and run again"
    )


def _port_error(port: str, exc: serial.SerialException) -> PortError:
    code = exc.errno
    text = str(exc)
    if "exclusively lock" in text or code in (errno.EBUSY, errno.EWOULDBLOCK):
        return PortBusy(
            f"{port} is in use by another program",
            hint="close the other program (a terminal such as screen or minicom, another commissioning run)",
        )
    if code == errno.ENOENT:
        return PortNotFound(f"there is no port {port}", hint=f"check the name and the cable; {_LIST_HINT}")
    if code in (errno.EACCES, errno.EPERM):
        return PortError(
            f"no permission to open {port}",
            hint=f"add yourself to the port's group (ls -l {port}; usually dialout) and log in again",
        )
    if "Could not configure port" in text or code == errno.ENOTTY or (os.path.exists(port) and code is None):
        return PortNotFound(f"{port} is not a serial port", hint=_LIST_HINT)
    return PortError(f"cannot open {port}: {exc}", hint=_LIST_HINT)
