"""Reading a message payload strictly: one JSON object, known keys only, each value checked once.

Every reader raises ``MessageError`` naming the field and what is wrong, so a device can answer
``bad_request`` with the field, and the tool can say which part of a device's answer it could not read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from devices.commissioning import MessageError
from devices.kinds import DeviceKind

MAX_TEXT = 200  # road names are the longest free text (devices.assets.TEXT_LIMITS)


def json_object(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MessageError(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MessageError("payload must be a JSON object")
    return body


def only(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise MessageError("unknown key", unknown[0][:40])


def text(body: Mapping[str, Any], name: str, limit: int = MAX_TEXT, *, empty: bool = True) -> str:
    value = body.get(name, "" if empty else None)
    if not isinstance(value, str):
        raise MessageError("must be text", name)
    if len(value) > limit:
        raise MessageError(f"{len(value)} characters, the limit is {limit}", name)
    if not empty and not value:
        raise MessageError("must not be empty", name)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise MessageError("contains a control character", name)
    return value


def number(body: Mapping[str, Any], name: str, low: float, high: float) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MessageError("must be a number", name)
    if not low <= value <= high:
        raise MessageError(f"{value:g} is outside {low:g} to {high:g}", name)
    return float(value)


def integer(body: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if type(value) is not int:
        raise MessageError("must be an integer", name)
    if not low <= value <= high:
        raise MessageError(f"{value} is outside {low} to {high}", name)
    return value


def flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if type(value) is not bool:
        raise MessageError("must be true or false", name)
    return value


def device_kind(value: object, name: str) -> DeviceKind:
    try:
        return DeviceKind(str(value))
    except ValueError:
        kinds = ", ".join(k.value for k in DeviceKind)
        raise MessageError(f"{value!r:.40} is not one of {kinds}", name) from None


def dump(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(body))
