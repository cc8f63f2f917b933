"""Telemetry payloads (contract version 1): bytes and a topic in, readings and rejections out.

A single reading, on ``cw/v1/dev/{device}/telemetry``::

    {"v": 1, "device": "LMP-000001", "ts": 1795000000000, "seq": 42,
     "fields": {"supply_voltage": 221.5, "active_power": 98.0, "lamp_on": true, "dim_level": 100}}

A gateway batch, on ``cw/v1/gw/{gateway}/batch``::

    {"v": 1, "gateway": "GW-0001", "readings": [{"device": ..., "ts": ..., "seq": ..., "fields": {...}}, ...]}

``ts`` is the device's own clock: integer milliseconds since the Unix epoch (UTC), or an RFC 3339 string
with an offset. ``seq`` is the device's reading counter. Every reading is judged on its own: one bad reading
in a gateway batch is rejected with its reason and the others are accepted. Pure code: no I/O, no clock
(the caller passes ``now_ms``).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from devices import topics
from devices.kinds import FIELDS, DeviceKind, FieldSpec, FieldType

CONTRACT_VERSION = 1


class RejectReason(enum.StrEnum):
    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    MALFORMED_JSON = "malformed_json"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_SCHEMA = "bad_schema"
    BAD_DEVICE_ID = "bad_device_id"
    UNREGISTERED = "unregistered"
    DEVICE_TOPIC_MISMATCH = "device_topic_mismatch"
    NOT_GATEWAY_DEVICE = "not_gateway_device"
    BAD_TIMESTAMP = "bad_timestamp"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    DB_REJECTED = "db_rejected"  # InfluxDB refused the point (field type conflict, ...)


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What the decoder needs to know of a registered device."""

    device_id: str
    kind: DeviceKind
    district: str
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 256 * 1024
    max_batch_readings: int = 5000
    max_future_ms: int = 5 * 60 * 1000  # device clocks drift; more than this is a broken clock
    max_age_ms: int = 30 * 24 * 3600 * 1000  # gateways buffer through outages; older is a broken clock


FieldValue = float | int | bool


@dataclass(frozen=True, slots=True)
class Reading:
    device: str
    kind: DeviceKind
    district: str
    ts_ms: int
    seq: int
    fields: Mapping[str, FieldValue]


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
    topic: str
    device: str | None = None
    index: int | None = None  # position in a gateway batch


@dataclass(frozen=True, slots=True)
class Decoded:
    readings: tuple[Reading, ...] = ()
    rejections: tuple[Rejection, ...] = field(default_factory=tuple)


class _Reject(Exception):
    def __init__(self, reason: RejectReason, detail: str, device: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.device = device


def _load_json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses the NaN / Infinity literals some firmware emits. Parse those with the standard
    # library so a non-finite value rejects its own reading, not the gateway's whole batch.
    try:
        return json.loads(payload, parse_constant=float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Reject(RejectReason.MALFORMED_JSON, f"not JSON: {exc}") from None
    except RecursionError:
        raise _Reject(RejectReason.MALFORMED_JSON, "not JSON: nested too deeply") from None


def _parse_ts(raw: object, now_ms: int, limits: Limits) -> int:
    if type(raw) is int:
        ts = raw
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise _Reject(RejectReason.BAD_TIMESTAMP, f"ts {raw[:40]!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise _Reject(RejectReason.BAD_TIMESTAMP, f"ts {raw[:40]!r} has no UTC offset")
        ts = int(parsed.timestamp() * 1000)
    else:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "ts must be epoch milliseconds or an RFC 3339 string")
    if ts > now_ms + limits.max_future_ms:
        raise _Reject(RejectReason.TS_IN_FUTURE, f"ts is {(ts - now_ms) / 1000:.0f} s ahead of the server")
    if ts < now_ms - limits.max_age_ms:
        raise _Reject(RejectReason.TS_TOO_OLD, f"ts is {(now_ms - ts) / 86_400_000:.1f} days old")
    return ts


def _check_value(spec: FieldSpec, value: object) -> FieldValue:
    kind = type(value)
    if spec.type is FieldType.BOOL:
        if kind is bool:
            return bool(value)
        if kind is int and value in (0, 1):
            return value == 1
        raise _Reject(RejectReason.WRONG_TYPE, f"{spec.name} must be a boolean, got {value!r:.40}")
    if kind is bool or kind not in (int, float):
        raise _Reject(RejectReason.WRONG_TYPE, f"{spec.name} must be a number, got {value!r:.40}")
    number: float = value  # type: ignore[assignment]
    if kind is float and not math.isfinite(number):
        raise _Reject(RejectReason.NON_FINITE, f"{spec.name} is {number}")
    if not spec.low <= number <= spec.high:
        raise _Reject(
            RejectReason.OUT_OF_RANGE, f"{spec.name}={number:g} {spec.unit} outside {spec.range_text}".strip()
        )
    if spec.type is FieldType.INT:
        if kind is float:
            if not number.is_integer():
                raise _Reject(RejectReason.WRONG_TYPE, f"{spec.name} must be an integer, got {number!r}")
            return int(number)
        return number
    return float(number)


_FLOAT, _INT, _BOOL = 0, 1, 2
_CODES = {FieldType.FLOAT: _FLOAT, FieldType.INT: _INT, FieldType.BOOL: _BOOL}
#: Per kind, per field: (type code, low, high, spec), so the hot loop below does no attribute look-ups.
_CHECKS: Mapping[DeviceKind, dict[str, tuple[int, float, float, FieldSpec]]] = {
    kind: {name: (_CODES[s.type], s.low, s.high, s) for name, s in specs.items()}
    for kind, specs in FIELDS.items()
}


def _check_fields(kind: DeviceKind, values: dict[str, object]) -> dict[str, FieldValue]:
    """Validate a reading's fields. The common case (right type, in range) takes the fast path;
    anything else goes through ``_check_value``, which converts or raises with the precise reason.
    (This loop runs for every field of every reading: it is the ingest's hot path.)"""
    checks = _CHECKS[kind]
    checked: dict[str, FieldValue] = {}
    for name, value in values.items():
        check = checks.get(name)
        if check is None:
            raise _Reject(RejectReason.UNKNOWN_FIELD, f"{kind} has no field {name!r:.40}")
        code, low, high, spec = check
        kind_of = type(value)
        if code == _FLOAT:
            if kind_of is float and low <= value <= high:  # type: ignore[operator]  # NaN fails here
                checked[name] = value  # type: ignore[assignment]
                continue
        elif code == _BOOL:
            if kind_of is bool:
                checked[name] = value  # type: ignore[assignment]
                continue
        elif kind_of is int and low <= value <= high:  # type: ignore[operator]
            checked[name] = value  # type: ignore[assignment]
            continue
        checked[name] = _check_value(spec, value)
    return checked


def _reading(
    raw: object,
    now_ms: int,
    directory: Mapping[str, DeviceRef],
    limits: Limits,
    expect_device: str | None,
    expect_gateway: str | None,
) -> Reading:
    if not isinstance(raw, dict):
        raise _Reject(RejectReason.BAD_SCHEMA, "a reading must be a JSON object")
    device = raw.get("device")
    if not isinstance(device, str) or not topics.ID_PATTERN.fullmatch(device):
        raise _Reject(
            RejectReason.BAD_DEVICE_ID,
            f"device id {device!r:.70} is not 1-64 characters of A-Z a-z 0-9 _ . -",
        )
    if expect_device is not None and device != expect_device:
        raise _Reject(
            RejectReason.DEVICE_TOPIC_MISMATCH, f"payload says {device}, topic says {expect_device}", device
        )
    ref = directory.get(device)
    if ref is None:
        raise _Reject(RejectReason.UNREGISTERED, f"{device} is not in the asset registry", device)
    if expect_gateway is not None and ref.gateway != expect_gateway:
        raise _Reject(
            RejectReason.NOT_GATEWAY_DEVICE,
            f"{device} belongs to gateway {ref.gateway}, not {expect_gateway}",
            device,
        )
    try:
        ts = _parse_ts(raw.get("ts"), now_ms, limits)
        seq = raw.get("seq")
        if type(seq) is not int or not 0 <= seq < 2**63:
            raise _Reject(RejectReason.BAD_SCHEMA, "seq must be a non-negative integer")
        values = raw.get("fields")
        if not isinstance(values, dict) or not values:
            raise _Reject(RejectReason.BAD_SCHEMA, "fields must be a non-empty object")
        checked = _check_fields(ref.kind, values)
    except _Reject as exc:
        exc.device = device
        raise
    return Reading(device, ref.kind, ref.district, ts, seq, checked)


def decode(
    topic: str,
    payload: bytes,
    now_ms: int,
    directory: Mapping[str, DeviceRef],
    limits: Limits = Limits(),
) -> Decoded:
    """Decode one MQTT message into accepted readings and rejections (each with its reason)."""
    try:
        if len(payload) > limits.max_payload_bytes:
            raise _Reject(
                RejectReason.OVERSIZED, f"payload is {len(payload)} bytes, limit {limits.max_payload_bytes}"
            )
        parsed = topics.parse(topic)
        if parsed is None or parsed.kind not in (topics.TopicKind.TELEMETRY, topics.TopicKind.BATCH):
            raise _Reject(RejectReason.BAD_TOPIC, f"{topic[:120]!r} is not a telemetry or batch topic")
        body = _load_json(payload)
        if not isinstance(body, dict):
            raise _Reject(RejectReason.BAD_SCHEMA, "payload must be a JSON object")
        version = body.get("v")
        if version != CONTRACT_VERSION:
            raise _Reject(RejectReason.UNSUPPORTED_VERSION, f"contract version {version!r:.20}, expected 1")
        if parsed.kind is topics.TopicKind.TELEMETRY:
            return Decoded(readings=(_reading(body, now_ms, directory, limits, parsed.sender, None),))
        return _decode_batch(topic, body, parsed.sender, now_ms, directory, limits)
    except _Reject as exc:
        return Decoded(rejections=(Rejection(exc.reason, exc.detail, topic, exc.device),))


def _decode_batch(
    topic: str,
    body: dict[str, Any],
    gateway: str,
    now_ms: int,
    directory: Mapping[str, DeviceRef],
    limits: Limits,
) -> Decoded:
    if body.get("gateway") != gateway:
        raise _Reject(
            RejectReason.DEVICE_TOPIC_MISMATCH,
            f"payload says gateway {body.get('gateway')!r:.70}, topic says {gateway}",
        )
    items = body.get("readings")
    if not isinstance(items, list):
        raise _Reject(RejectReason.BAD_SCHEMA, "readings must be a list")
    if len(items) > limits.max_batch_readings:
        raise _Reject(
            RejectReason.OVERSIZED, f"{len(items)} readings in one batch, limit {limits.max_batch_readings}"
        )
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            readings.append(_reading(item, now_ms, directory, limits, None, gateway))
        except _Reject as exc:
            rejections.append(Rejection(exc.reason, exc.detail, topic, exc.device, index))
    return Decoded(tuple(readings), tuple(rejections))


def encode_reading(device: str, ts_ms: int, seq: int, fields: Mapping[str, FieldValue]) -> dict[str, object]:
    """The JSON object of one reading (what devices and the simulator send)."""
    return {"device": device, "ts": ts_ms, "seq": seq, "fields": dict(fields)}


def single_payload(device: str, ts_ms: int, seq: int, fields: Mapping[str, FieldValue]) -> bytes:
    return orjson.dumps({"v": CONTRACT_VERSION, **encode_reading(device, ts_ms, seq, fields)})


def batch_payload(gateway: str, readings: list[dict[str, object]]) -> bytes:
    return orjson.dumps({"v": CONTRACT_VERSION, "gateway": gateway, "readings": readings})


def status_payload(online: bool, ts_ms: int) -> bytes:
    """The retained payload of a device's or gateway's status topic (its last will says offline)."""
    return orjson.dumps({"v": CONTRACT_VERSION, "state": "online" if online else "offline", "ts": ts_ms})
