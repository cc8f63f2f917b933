"""A simulated device's commissioning console: request frames in, response frames and effects out.

What a real controller's firmware does on its service port, minus the port: answer who it is, store and
show its configuration, run its self-test, restart, show its log. ``ConsoleDevice.handle`` is pure; the
effects it returns (store the configuration, run the broker check, restart) are carried out by
``serial_console``, which owns the pseudo-terminal, the clock and the network. A repeated request (same
sequence number, type and payload: the tool retrying after a lost answer) gets the same answer again
without being carried out twice.

Misbehaviour, for testing the tool: ``garble`` (probability that an answer is damaged on the line),
``drop`` (probability that an answer is lost), ``delay`` (seconds before every answer), ``refuse-write``
(the device refuses any configuration), ``mute`` (never answers), ``offline`` (its network never comes
up: the self-test's broker check fails) and ``silent`` (it connects and passes its self-test, but never
publishes a reading: a sensor-bus fault only the wait for the first reading reveals).
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from devices.commissioning import MessageError
from devices.commissioning.config import DeviceConfig, Identity
from devices.commissioning.framing import ANY_ADDRESS, PROTOCOL_VERSION, Frame
from devices.commissioning.messages import (
    RESPONSE_BIT,
    SUPPORTED_VERSIONS,
    Check,
    ConfigAnswer,
    ConfigWritten,
    DeviceErrorReply,
    ErrorCode,
    Identify,
    LogLines,
    MessageType,
    ReadConfig,
    ReadLog,
    Reboot,
    Rebooting,
    Response,
    SelfTest,
    SelfTestReport,
    WriteConfig,
    decode_request,
    encode_response,
    response_type,
)
from devices.kinds import DeviceKind
from firmware_sim import SimError

#: What each kind's self-test checks besides its storage, configuration and broker (sensor names).
HARDWARE_CHECKS = {
    DeviceKind.LAMP: ("relay", "power_meter", "photocell"),
    DeviceKind.CABINET: ("contactor", "phase_meters", "door_contact", "rcd_sensor"),
    DeviceKind.BRIDGE_NODE: ("strain_gauges", "accelerometer", "inclinometer"),
    DeviceKind.PUMP_STATION: ("plc_link", "level_sensor", "flow_meter"),
    DeviceKind.FLOOD_GAUGE: ("depth_sensor", "rain_gauge", "battery"),
    DeviceKind.BIN: ("ultrasonic", "thermistor", "battery"),
}


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    garble: float = 0.0
    drop: float = 0.0
    delay_s: float = 0.0
    refuse_write: bool = False
    mute: bool = False
    offline: bool = False
    silent: bool = False


_SWITCHES = {"refuse-write": "refuse_write", "mute": "mute", "offline": "offline", "silent": "silent"}
_AMOUNTS = {"garble": ("garble", 0.3), "drop": ("drop", 0.3), "delay": ("delay_s", 2.0)}


def parse_misbehaviour(specs: Iterable[str]) -> Misbehaviour:
    """``["garble=0.5", "refuse-write"]`` to a Misbehaviour; SimError names a bad spec."""
    values: dict[str, float | bool] = {}
    for spec in specs:
        name, _, amount = spec.partition("=")
        name = name.strip().lower()
        if name in _SWITCHES and not amount:
            values[_SWITCHES[name]] = True
            continue
        if name not in _AMOUNTS:
            known = ", ".join([*(f"{n}[=x]" for n in _AMOUNTS), *_SWITCHES])
            raise SimError(f"unknown misbehaviour {spec!r}: use {known}")
        field, default = _AMOUNTS[name]
        try:
            value = float(amount) if amount else default
        except ValueError:
            raise SimError(f"{spec!r}: {amount!r} is not a number") from None
        if field != "delay_s" and not 0.0 <= value <= 1.0:
            raise SimError(f"{spec!r}: a probability is between 0 and 1")
        if field == "delay_s" and not 0.0 <= value <= 600:
            raise SimError(f"{spec!r}: a delay is between 0 and 600 s")
        values[field] = value
    return Misbehaviour(**values)  # type: ignore[arg-type]


class Effect(enum.Enum):
    STORE_CONFIG = "store the new configuration"
    CHECK_BROKER = "try the stored configuration's broker, then answer the self-test"
    RESTART = "go deaf for a while, then start over with the stored configuration"


@dataclass(frozen=True, slots=True)
class Reply:
    frame: Frame | None  # None: no answer yet (a self-test waits for its broker check) or none at all
    effect: Effect | None = None


class ConsoleDevice:
    """One device's console state: identity, bus address, stored configuration, log, last answer."""

    def __init__(
        self,
        identity: Identity,
        *,
        address: int = 1,
        config: DeviceConfig | None = None,
        misbehaviour: Misbehaviour | None = None,
        reboot_s: float = 2.0,
        log_size: int = 200,
    ) -> None:
        self.identity = identity
        self.address = address
        self.config = config
        self.misbehaviour = misbehaviour or Misbehaviour()
        self.reboot_s = reboot_s
        self.log: deque[str] = deque(maxlen=log_size)
        self._last: tuple[int, int, bytes, Reply] | None = None
        self._pending_test: Frame | None = None

    def hears(self, frame: Frame) -> bool:
        return frame.address in (ANY_ADDRESS, self.address)

    def handle(self, frame: Frame) -> Reply:
        """The answer to one request frame this device hears."""
        if self.misbehaviour.mute:
            return Reply(None)
        if self._last is not None and self._last[:3] == (frame.seq, frame.type, frame.payload):
            return self._last[3]  # a retry: the answer again, the work not again
        reply = self._answer(frame)
        if reply.effect is not Effect.CHECK_BROKER:
            self._last = (frame.seq, frame.type, frame.payload, reply)
        return reply

    def _answer(self, frame: Frame) -> Reply:
        if frame.version not in SUPPORTED_VERSIONS:
            speaks = ", ".join(map(str, SUPPORTED_VERSIONS))
            return self._error(frame, ErrorCode.UNSUPPORTED_VERSION, f"this device speaks version {speaks}")
        try:
            request = decode_request(frame.type, frame.payload)
        except MessageError as exc:
            known = frame.type in MessageType.__members__.values() and frame.type < RESPONSE_BIT
            code = ErrorCode.BAD_REQUEST if known else ErrorCode.UNKNOWN_TYPE
            return self._error(frame, code, exc.detail, exc.field)
        match request:
            case Identify():
                return self._reply(frame, self.identity)
            case ReadConfig():
                stored = self.config.stored() if self.config is not None else None
                return self._reply(frame, ConfigAnswer(stored))
            case WriteConfig(config):
                return self._write(frame, config)
            case SelfTest():
                self._pending_test = frame
                return Reply(None, Effect.CHECK_BROKER)
            case Reboot():
                self.log.append(f"console: restarting in {self.reboot_s:g} s")
                return Reply(self._frame(frame, Rebooting(self.reboot_s)), Effect.RESTART)
            case ReadLog(lines):
                return self._reply(frame, LogLines(tuple(self.log)[-lines:]))
        raise AssertionError(request)  # pragma: no cover: decode_request returns only the cases above

    def _write(self, frame: Frame, config: DeviceConfig) -> Reply:
        if self.misbehaviour.refuse_write:
            self.log.append("config: refused (write protected: the service switch is off)")
            detail = "configuration is write-protected: set the service switch to ON and try again"
            return self._error(frame, ErrorCode.REJECTED, detail)
        if config.kind not in self.identity.kinds:
            can = ", ".join(k.value for k in self.identity.kinds)
            self.log.append(f"config: refused kind {config.kind.value}")
            return self._error(frame, ErrorCode.REJECTED, f"this device can only be: {can}", "kind")
        self.config = config
        self.log.append(f"config: stored for {config.device_id}, reporting every {config.interval_s} s")
        return Reply(self._frame(frame, ConfigWritten()), Effect.STORE_CONFIG)

    def self_test_done(self, broker: Check) -> Frame | None:
        """The self-test's answer once the adapter has tried the broker (``broker``)."""
        frame, self._pending_test = self._pending_test, None
        if frame is None:
            return None
        checks = [Check("storage", True, "config store writable")]
        checks += [Check(name, True) for name in HARDWARE_CHECKS[self.identity.kinds[0]]]
        if self.config is None:
            checks.append(Check("config", False, "not configured"))
        else:
            checks += [Check("config", True, self.config.device_id), broker]
        report = SelfTestReport(tuple(checks))
        failed = ", ".join(c.name for c in report.failed) or "none"
        self.log.append(f"self-test: {'passed' if report.passed else 'FAILED'} (failed: {failed})")
        reply = Reply(self._frame(frame, report))
        self._last = (frame.seq, frame.type, frame.payload, reply)
        return reply.frame

    def restarted(self) -> None:
        """After a restart the device has forgotten its last answer."""
        self._last = None
        self._pending_test = None

    def _reply(self, request: Frame, response: Response) -> Reply:
        return Reply(self._frame(request, response))

    def _error(self, request: Frame, code: ErrorCode, detail: str, field: str | None = None) -> Reply:
        return Reply(self._frame(request, DeviceErrorReply(code, detail, field)))

    def _frame(self, request: Frame, response: Response) -> Frame:
        kind, payload = encode_response(response)
        assert kind in (response_type(request.type), 0xFF)
        # An error about the version goes in version 1, which every tool reads.
        return Frame(PROTOCOL_VERSION, self.address, request.seq, kind, payload)


def damage(wire: bytes, rng: random.Random) -> bytes:
    """One bit flipped somewhere in a frame's bytes: what a noisy line or a wrong baud rate does."""
    if not wire:
        return wire
    damaged = bytearray(wire)
    position = rng.randrange(len(damaged))
    damaged[position] ^= 1 << rng.randrange(8)
    return bytes(damaged)
