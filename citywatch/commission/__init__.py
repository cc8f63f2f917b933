"""`citywatch commission`: bring a field device into service over its serial port (docs/commissioning.md).

    settings    CommissionSettings (prefix CITYWATCH_COMMISSION_): line, timeouts, deadlines
    link        the pyserial adapter: open a port (exclusively), send bytes, receive with a timeout
    client      requests and answers over a link: sequence numbers, timeouts, retries, stale answers
    backends    what the runner needs from CityWatch: the registry, broker accounts, stored readings
    progress    each device's progress, saved under <var>/commissioning/ so a run can resume
    runner      drives ``devices.commissioning.flow`` from identification to the first stored reading
    session     one or more lines (a device each, or a bus of them): open, scan, run, collect outcomes
    display     the progress display (rich) and the batch summary
    endpoints   where the broker, its admin account and InfluxDB are (configured, or `citywatch run`'s)

Every error says what went wrong and what the technician can do about it::

    CommissionError                 root: the message is meant for the technician
     ├── PortError                   the serial port cannot be used
     │    ├── PortNotFound            no such port, or not a serial port
     │    └── PortBusy                another program has the port open
     ├── LinkError                   the device did not answer usefully
     │    ├── NoAnswer                nothing came back in time, after every retry
     │    ├── Garbled                 answers came back, but every one failed its checksum
     │    └── DeviceRefused           the device answered with an error (version, bad request, busy)
     ├── NotCommissionable           the device cannot be commissioned by this tool (protocol, kind)
     ├── PlacementMissing            the device is not registered and its position or district is unknown
     ├── ConfigRejected              the device refused the configuration (its reason, the field)
     ├── ReadbackMismatch            the configuration read back is not the one written
     ├── SelfTestFailed              a self-test check failed (the checks, the device's log)
     ├── NeverReported               no reading stored before the deadline (the device's log)
     └── ServiceUnavailable          the registry, the broker's admin or InfluxDB cannot be used
"""

from __future__ import annotations


class CommissionError(Exception):
    """A commissioning cannot go on; the message says why and what to do."""

    def __init__(self, message: str, *, hint: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint  # what the technician can do about it
        self.details = details  # supporting lines: the failed checks, the device's last log lines

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class PortError(CommissionError):
    """The serial port cannot be used."""


class PortNotFound(PortError):
    """No such port, or the path is not a serial port."""


class PortBusy(PortError):
    """Another program holds the port."""


class LinkError(CommissionError):
    """The device did not answer usefully."""


class NoAnswer(LinkError):
    """No answer within the timeout, after every attempt."""


class Garbled(LinkError):
    """Only damaged frames came back."""


class DeviceRefused(LinkError):
    """The device answered a request with an error."""

    def __init__(
        self, message: str, *, code: str, detail: str = "", field: str | None = None, hint: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.detail = detail or message  # the device's own words
        self.field = field


class NotCommissionable(CommissionError):
    """This tool cannot commission the device (protocol version, device kind)."""


class PlacementMissing(CommissionError):
    """The device is not registered and the tool cannot tell where it stands; ``needed``: which fields."""

    def __init__(self, message: str, *, needed: tuple[str, ...] = (), hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.needed = needed


class ConfigRejected(CommissionError):
    """The device refused the configuration."""


class ReadbackMismatch(CommissionError):
    """The configuration read back differs from the one written."""


class SelfTestFailed(CommissionError):
    """A check of the device's self-test failed."""


class NeverReported(CommissionError):
    """No reading of the device was stored before the deadline."""


class ServiceUnavailable(CommissionError):
    """The registry, the broker's admin account or InfluxDB cannot be used."""
