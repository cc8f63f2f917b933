"""Commissioning messages (protocol version 1): requests, responses, and their frame payloads.

A request's response has the request's type with the high bit set, or is an ``ERROR`` (0xFF). Payloads
are UTF-8 JSON objects (empty for requests without arguments): readable on a serial monitor, and
validated field by field here, once, on both sides. Unknown keys are refused: a device must not silently
ignore a setting it does not understand. The values themselves (identity, configuration) are in ``config``.

| request | payload | response |
|---|---|---|
| ``IDENTIFY`` 0x01 | (none) | ``IDENTITY`` 0x81: model, serial, firmware, hardware, kinds, protocols, gnss |
| ``READ_CONFIG`` 0x02 | (none) | ``CONFIG`` 0x82: the stored configuration, or ``{"configured": false}`` |
| ``WRITE_CONFIG`` 0x03 | a configuration | ``CONFIG_WRITTEN`` 0x83 (stored; applied at the next restart) |
| ``SELF_TEST`` 0x04 | (none) | ``SELF_TEST_REPORT`` 0x84: passed, checks [name, ok, detail] |
| ``REBOOT`` 0x05 | (none) | ``REBOOTING`` 0x85: seconds until the device is back |
| ``READ_LOG`` 0x06 | lines | ``LOG`` 0x86: the last log lines, oldest first |
| any | | ``ERROR`` 0xFF: code, detail, field |
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import orjson

from devices.commissioning import MessageError
from devices.commissioning.config import DeviceConfig, Identity, StoredConfig
from devices.commissioning.framing import MAX_PAYLOAD, PROTOCOL_VERSION
from devices.commissioning.payload import dump, flag, integer, json_object, number, only, text

#: The protocol versions this code speaks.
SUPPORTED_VERSIONS: Final = (PROTOCOL_VERSION,)
RESPONSE_BIT = 0x80
MAX_LOG_LINES = 50
MAX_LOG_LINE = 200


class MessageType(enum.IntEnum):
    IDENTIFY = 0x01
    READ_CONFIG = 0x02
    WRITE_CONFIG = 0x03
    SELF_TEST = 0x04
    REBOOT = 0x05
    READ_LOG = 0x06
    IDENTITY = 0x81
    CONFIG = 0x82
    CONFIG_WRITTEN = 0x83
    SELF_TEST_REPORT = 0x84
    REBOOTING = 0x85
    LOG = 0x86
    ERROR = 0xFF


class ErrorCode(enum.StrEnum):
    UNSUPPORTED_VERSION = "unsupported_version"  # the frame's protocol version is not one the device speaks
    UNKNOWN_TYPE = "unknown_type"
    BAD_REQUEST = "bad_request"  # the payload is not a valid request: ``field`` says which
    REJECTED = "rejected"  # valid, but the device will not take it (an unsupported kind, a full store)
    BUSY = "busy"  # the device is running a self-test or restarting: ask again later


# -- requests ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identify:
    pass


@dataclass(frozen=True, slots=True)
class ReadConfig:
    pass


@dataclass(frozen=True, slots=True)
class WriteConfig:
    config: DeviceConfig


@dataclass(frozen=True, slots=True)
class SelfTest:
    pass


@dataclass(frozen=True, slots=True)
class Reboot:
    pass


@dataclass(frozen=True, slots=True)
class ReadLog:
    lines: int = 20


Request = Identify | ReadConfig | WriteConfig | SelfTest | Reboot | ReadLog

# -- responses --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigAnswer:
    """The answer to READ_CONFIG: None when the device was never configured."""

    config: StoredConfig | None


@dataclass(frozen=True, slots=True)
class ConfigWritten:
    pass


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SelfTestReport:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)


@dataclass(frozen=True, slots=True)
class Rebooting:
    back_in_s: float  # how long the device expects to be deaf


@dataclass(frozen=True, slots=True)
class LogLines:
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeviceErrorReply:
    code: ErrorCode
    detail: str
    field: str | None = None


Response = Identity | ConfigAnswer | ConfigWritten | SelfTestReport | Rebooting | LogLines | DeviceErrorReply

# -- encoding ---------------------------------------------------------------------------------------------

_T = MessageType


def _decode_write(body: Mapping[str, Any]) -> WriteConfig:
    return WriteConfig(DeviceConfig.from_json(body))


def _decode_read_log(body: Mapping[str, Any]) -> ReadLog:
    only(body, frozenset({"lines"}))
    return ReadLog(integer(body, "lines", 1, MAX_LOG_LINES))


def _no_arguments(request: Request) -> Callable[[Mapping[str, Any]], Request]:
    def decode(body: Mapping[str, Any]) -> Request:
        only(body, frozenset())
        return request

    return decode


_REQUEST_DECODERS: Mapping[MessageType, Callable[[Mapping[str, Any]], Request]] = MappingProxyType(
    {
        _T.IDENTIFY: _no_arguments(Identify()),
        _T.READ_CONFIG: _no_arguments(ReadConfig()),
        _T.WRITE_CONFIG: _decode_write,
        _T.SELF_TEST: _no_arguments(SelfTest()),
        _T.REBOOT: _no_arguments(Reboot()),
        _T.READ_LOG: _decode_read_log,
    }
)


def encode_request(request: Request) -> tuple[MessageType, bytes]:
    match request:
        case WriteConfig(config):
            return _T.WRITE_CONFIG, dump(config.to_json())
        case ReadLog(lines):
            return _T.READ_LOG, dump({"lines": lines})
        case Identify():
            return _T.IDENTIFY, b""
        case ReadConfig():
            return _T.READ_CONFIG, b""
        case SelfTest():
            return _T.SELF_TEST, b""
        case Reboot():
            return _T.REBOOT, b""
    raise TypeError(f"not a request: {request!r}")


def decode_request(kind: int, payload: bytes) -> Request:
    """A request from a frame's type and payload; ``MessageError`` says what is wrong with it."""
    try:
        decoder = _REQUEST_DECODERS[MessageType(kind)]
    except (ValueError, KeyError):
        raise MessageError(f"0x{kind:02x} is not a request type") from None
    return decoder(json_object(payload))


def response_type(request_type: int) -> int:
    return request_type | RESPONSE_BIT


def _decode_config(body: Mapping[str, Any]) -> ConfigAnswer:
    if body.get("configured") is False:
        only(body, frozenset({"configured"}))
        return ConfigAnswer(None)
    return ConfigAnswer(StoredConfig.from_json(body))


def _decode_checks(body: Mapping[str, Any]) -> SelfTestReport:
    only(body, frozenset({"checks"}))
    raw = body.get("checks")
    if not isinstance(raw, list) or not raw:
        raise MessageError("must be a non-empty list", "checks")
    checks = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 3:
            raise MessageError("each check must be [name, ok, detail]", "checks")
        fields = dict(zip(("name", "ok", "detail"), item, strict=True))
        name = text(fields, "name", 40, empty=False)
        checks.append(Check(name, flag(fields, "ok"), text(fields, "detail")))
    return SelfTestReport(tuple(checks))


def _decode_log(body: Mapping[str, Any]) -> LogLines:
    only(body, frozenset({"lines"}))
    raw = body.get("lines")
    if not isinstance(raw, list) or len(raw) > MAX_LOG_LINES:
        raise MessageError(f"must be a list of at most {MAX_LOG_LINES} lines", "lines")
    return LogLines(tuple(text({"line": line}, "line", MAX_LOG_LINE) for line in raw))


def _decode_error(body: Mapping[str, Any]) -> DeviceErrorReply:
    only(body, frozenset({"code", "detail", "field"}))
    try:
        code = ErrorCode(str(body.get("code")))
    except ValueError:
        raise MessageError(f"{body.get('code')!r:.40} is not an error code", "code") from None
    field = body.get("field")
    if field is not None and not isinstance(field, str):
        raise MessageError("must be text or null", "field")
    return DeviceErrorReply(code, text(body, "detail", 300), field[:40] if field else None)


def _decode_empty(response: Response) -> Callable[[Mapping[str, Any]], Response]:
    def decode(body: Mapping[str, Any]) -> Response:
        only(body, frozenset())
        return response

    return decode


def _decode_rebooting(body: Mapping[str, Any]) -> Rebooting:
    only(body, frozenset({"back_in_s"}))
    return Rebooting(number(body, "back_in_s", 0, 3600))


_RESPONSE_DECODERS: Mapping[MessageType, Callable[[Mapping[str, Any]], Response]] = MappingProxyType(
    {
        _T.IDENTITY: Identity.from_json,
        _T.CONFIG: _decode_config,
        _T.CONFIG_WRITTEN: _decode_empty(ConfigWritten()),
        _T.SELF_TEST_REPORT: _decode_checks,
        _T.REBOOTING: _decode_rebooting,
        _T.LOG: _decode_log,
        _T.ERROR: _decode_error,
    }
)


def encode_response(response: Response) -> tuple[MessageType, bytes]:
    match response:
        case Identity():
            return _T.IDENTITY, dump(response.to_json())
        case ConfigAnswer(None):
            return _T.CONFIG, dump({"configured": False})
        case ConfigAnswer(stored) if stored is not None:
            return _T.CONFIG, dump(stored.to_json())
        case ConfigWritten():
            return _T.CONFIG_WRITTEN, b""
        case SelfTestReport(checks):
            return _T.SELF_TEST_REPORT, dump({"checks": [[c.name, c.ok, c.detail] for c in checks]})
        case Rebooting(back_in_s):
            return _T.REBOOTING, dump({"back_in_s": back_in_s})
        case LogLines(lines):
            return _T.LOG, dump({"lines": fit_log(lines)})
        case DeviceErrorReply(code, detail, field):
            return _T.ERROR, dump({"code": code.value, "detail": detail[:300], "field": field})
    raise TypeError(f"not a response: {response!r}")


def decode_response(kind: int, payload: bytes) -> Response:
    """A response from a frame's type and payload; ``MessageError`` says what is wrong with it."""
    try:
        decoder = _RESPONSE_DECODERS[MessageType(kind)]
    except (ValueError, KeyError):
        raise MessageError(f"0x{kind:02x} is not a response type") from None
    return decoder(json_object(payload))


def answers(request_type: int, response_kind: int) -> bool:
    """Whether a response of ``response_kind`` is an answer to a request of ``request_type``."""
    return response_kind in (response_type(request_type), MessageType.ERROR)


def fit_log(lines: tuple[str, ...]) -> list[str]:
    """The newest lines that fit one frame, each cut to ``MAX_LOG_LINE`` characters, oldest first."""
    kept: list[str] = []
    size = len(b'{"lines":[]}')
    for line in reversed(lines[-MAX_LOG_LINES:]):
        cut = "".join(c if c >= " " and c != "\x7f" else "?" for c in line[:MAX_LOG_LINE])
        cost = len(orjson.dumps(cut)) + 1
        if size + cost > MAX_PAYLOAD:
            break
        kept.append(cut)
        size += cost
    return kept[::-1]
