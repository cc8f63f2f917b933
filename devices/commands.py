"""Device commands (contract version 1): what CityWatch asks a device to do, and the device's answer.

A command, on ``cw/v1/dev/{device}/cmd`` (a device with its own connection) or ``cw/v1/gw/{gateway}/cmd``
(a device behind a gateway, which hands it on)::

    {"v": 1, "id": "7d0f4f7e-5a53-4c43-9a53-8f0c3f2a9b11", "device": "LMP-000001",
     "action": "switch", "params": {"on": true},
     "issued_at": 1795000000000, "expires_at": 1795000030000}

=========  =========================================  =====================================================
action     params                                     what the device does
=========  =========================================  =====================================================
switch     ``{"on": bool}``                           relay on (full level) or off, until its schedule next
                                                      switches (sunset, sunrise), then the schedule again
dim        ``{"level": 0..100}``                      dim level (0 is off), until the schedule next switches
override   ``{"on": bool, "level": 0..100,            that state and level until ``until``, whatever the
           "until": ms}``                             schedule says, then the schedule again
pump       ``{"pump": 1..8, "run": bool,              start (``run`` true) or stop pump n by hand until
           "until": ms}``                             ``until``, then the station's level control again
=========  =========================================  =====================================================

Hand control of a pump always ends (``until``): a station left stopped by hand floods a street.

``id`` is a UUID chosen by CityWatch; ``issued_at`` / ``expires_at`` are epoch milliseconds of
CityWatch's clock. A device must not act on a command past ``expires_at`` (a "switch on" queued in a
broker for an hour would light a street at the wrong time): it answers ``rejected`` with reason
``expired``.

The acknowledgement, on the same family's ``.../cmd/ack`` topic (the gateway answers for its devices)::

    {"v": 1, "id": "7d0f4f7e-...", "device": "LMP-000001", "status": "accepted", "ts": 1795000000500}
    {"v": 1, "id": "7d0f4f7e-...", "device": "LMP-000001", "status": "rejected", "ts": ...,
     "reason": "expired"}

``status``: ``accepted`` (it acts on it), ``rejected`` (it will not: expired, unsupported, bad params) or
``failed`` (it tried and could not). ``ts`` is the device's own clock at the moment the command takes
effect: its readings timestamped at or after ``ts`` show the effect, so CityWatch judges the effect from
the device's own timeline, whatever the transport delays.

A message that cannot be used raises ``CommandRejected`` with a reason a person can act on. Pure: bytes
in, values out; no clock.

Errors::

    DevicesError             (devices)
     ├── ContractError        a command or ack built from impossible values (a programming error)
     └── CommandRejected      a command or ack message that cannot be used: reason, detail, topic
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from devices import ContractError, DevicesError, topics

COMMAND_VERSION = 1
MAX_COMMAND_BYTES = 4096  # a command is a few hundred bytes; anything bigger is not one
MAX_PUMP = 8  # devices.kinds: pump{1..8}_* fields
MAX_REASON = 200

#: What a device or a gateway subscribes to (its own id in place of ``+`` when the broker's ACL says so).
COMMAND_FILTERS = (f"{topics.ROOT}/dev/+/cmd", f"{topics.ROOT}/gw/+/cmd")
#: What CityWatch subscribes to for the answers.
ACK_FILTERS = (f"{topics.ROOT}/dev/+/cmd/ack", f"{topics.ROOT}/gw/+/cmd/ack")


class CommandRejectReason(enum.StrEnum):
    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    MALFORMED_JSON = "malformed_json"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_SCHEMA = "bad_schema"
    BAD_COMMAND_ID = "bad_command_id"
    BAD_DEVICE_ID = "bad_device_id"
    DEVICE_TOPIC_MISMATCH = "device_topic_mismatch"
    UNKNOWN_ACTION = "unknown_action"
    BAD_PARAMS = "bad_params"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_STATUS = "unknown_status"


class CommandRejected(DevicesError):
    """A command or acknowledgement message that cannot be used."""

    def __init__(self, reason: CommandRejectReason, detail: str, topic: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.topic = topic


class Action(enum.StrEnum):
    SWITCH = "switch"
    DIM = "dim"
    OVERRIDE = "override"
    PUMP = "pump"


def _check_level(level: object) -> None:
    if type(level) is not int or not 0 <= level <= 100:
        raise ContractError(f"level must be an integer 0 to 100, not {level!r:.20}")


def _check_ms(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ContractError(f"{name} must be epoch milliseconds, not {value!r:.30}")


@dataclass(frozen=True, slots=True)
class Switch:
    on: bool

    action = Action.SWITCH

    def __post_init__(self) -> None:
        if type(self.on) is not bool:
            raise ContractError(f"on must be true or false, not {self.on!r:.20}")


@dataclass(frozen=True, slots=True)
class Dim:
    level: int

    action = Action.DIM

    def __post_init__(self) -> None:
        _check_level(self.level)


@dataclass(frozen=True, slots=True)
class Override:
    on: bool
    level: int  # 0 when off
    until_ms: int

    action = Action.OVERRIDE

    def __post_init__(self) -> None:
        if type(self.on) is not bool:
            raise ContractError(f"on must be true or false, not {self.on!r:.20}")
        _check_level(self.level)
        if self.on != (self.level > 0):
            raise ContractError(f"an override {'on' if self.on else 'off'} cannot have level {self.level}")
        _check_ms("until", self.until_ms)


@dataclass(frozen=True, slots=True)
class PumpRun:
    pump: int  # 1-based, as the pump{n}_* fields
    run: bool  # True: start, False: stop
    until_ms: int

    action = Action.PUMP

    def __post_init__(self) -> None:
        if type(self.pump) is not int or not 1 <= self.pump <= MAX_PUMP:
            raise ContractError(f"pump must be 1 to {MAX_PUMP}, not {self.pump!r:.20}")
        if type(self.run) is not bool:
            raise ContractError(f"run must be true or false, not {self.run!r:.20}")
        _check_ms("until", self.until_ms)


Order = Switch | Dim | Override | PumpRun


def describe(order: Order) -> str:
    """The order in a few words, as an operator says it ("switch on", "dim to 40 %", "start pump 2")."""
    if isinstance(order, Switch):
        return f"switch {'on' if order.on else 'off'}"
    if isinstance(order, Dim):
        return f"dim to {order.level} %"
    if isinstance(order, Override):
        return f"override {'on at ' + str(order.level) + ' %' if order.on else 'off'}"
    return f"{'start' if order.run else 'stop'} pump {order.pump}"


def order_params(order: Order) -> dict[str, bool | int]:
    """The ``params`` object of an order."""
    if isinstance(order, Switch):
        return {"on": order.on}
    if isinstance(order, Dim):
        return {"level": order.level}
    if isinstance(order, Override):
        return {"on": order.on, "level": order.level, "until": order.until_ms}
    return {"pump": order.pump, "run": order.run, "until": order.until_ms}


_PARAM_KEYS = {
    Action.SWITCH: frozenset({"on"}),
    Action.DIM: frozenset({"level"}),
    Action.OVERRIDE: frozenset({"on", "level", "until"}),
    Action.PUMP: frozenset({"pump", "run", "until"}),
}


def order_from(action: str, params: object) -> Order:
    """An order from its action and ``params`` object; ``CommandRejected`` says what is wrong."""
    try:
        verb = Action(action)
    except ValueError:
        raise CommandRejected(
            CommandRejectReason.UNKNOWN_ACTION,
            f"action {action!r:.30} is not one of {', '.join(a.value for a in Action)}",
        ) from None
    if not isinstance(params, dict):
        raise CommandRejected(CommandRejectReason.BAD_PARAMS, "params must be a JSON object")
    keys = set(params)
    wanted = _PARAM_KEYS[verb]
    if keys != wanted:
        missing, extra = sorted(wanted - keys), sorted(keys - wanted)
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(map(str, extra))[:60]}" if extra else "",
            )
            if part
        )
        raise CommandRejected(CommandRejectReason.BAD_PARAMS, f"{verb} params: {detail}")
    try:
        if verb is Action.SWITCH:
            return Switch(params["on"])
        if verb is Action.DIM:
            return Dim(params["level"])
        if verb is Action.OVERRIDE:
            return Override(params["on"], params["level"], params["until"])
        return PumpRun(params["pump"], params["run"], params["until"])
    except ContractError as exc:
        raise CommandRejected(CommandRejectReason.BAD_PARAMS, f"{verb} params: {exc}") from None


@dataclass(frozen=True, slots=True)
class Route:
    """Who carries a command to a device and its answer back: the device itself, or its gateway."""

    sender: str  # the device id, or the gateway id
    gateway: bool

    @property
    def command_topic(self) -> str:
        return topics.command(self.sender, gateway=self.gateway)

    @property
    def ack_topic(self) -> str:
        return topics.command_ack(self.sender, gateway=self.gateway)


@dataclass(frozen=True, slots=True)
class Command:
    id: str  # canonical UUID text
    device: str
    order: Order
    issued_ms: int
    expires_ms: int

    def __post_init__(self) -> None:
        if _canonical_uuid(self.id) != self.id:
            raise ContractError(f"command id {self.id!r:.50} is not a canonical UUID")
        if not topics.ID_PATTERN.fullmatch(self.device):
            raise ContractError(f"device id {self.device!r:.70} is not valid")
        _check_ms("issued_at", self.issued_ms)
        _check_ms("expires_at", self.expires_ms)
        if self.expires_ms <= self.issued_ms:
            raise ContractError("expires_at must be after issued_at")

    def expired(self, device_now_ms: int) -> bool:
        return device_now_ms > self.expires_ms


class AckStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # the device acts on it
    REJECTED = "rejected"  # it will not: expired, unsupported, bad params
    FAILED = "failed"  # it tried and could not


@dataclass(frozen=True, slots=True)
class Ack:
    command_id: str
    device: str
    status: AckStatus
    ts_ms: int  # the device's clock when the command takes effect
    reason: str = ""

    def __post_init__(self) -> None:
        if _canonical_uuid(self.command_id) != self.command_id:
            raise ContractError(f"command id {self.command_id!r:.50} is not a canonical UUID")
        if not topics.ID_PATTERN.fullmatch(self.device):
            raise ContractError(f"device id {self.device!r:.70} is not valid")
        _check_ms("ts", self.ts_ms)
        if len(self.reason) > MAX_REASON:
            raise ContractError(f"reason has {len(self.reason)} characters, limit {MAX_REASON}")


def _canonical_uuid(text: object) -> str | None:
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def encode_command(command: Command) -> bytes:
    return orjson.dumps(
        {
            "v": COMMAND_VERSION,
            "id": command.id,
            "device": command.device,
            "action": command.order.action.value,
            "params": order_params(command.order),
            "issued_at": command.issued_ms,
            "expires_at": command.expires_ms,
        }
    )


def encode_ack(ack: Ack) -> bytes:
    body: dict[str, object] = {
        "v": COMMAND_VERSION,
        "id": ack.command_id,
        "device": ack.device,
        "status": ack.status.value,
        "ts": ack.ts_ms,
    }
    if ack.reason:
        body["reason"] = ack.reason
    return orjson.dumps(body)


def _envelope(topic: str, payload: bytes, kind: topics.TopicKind) -> tuple[Route, dict[str, Any]]:
    """The route of ``topic`` and the checked common part of the body: size, JSON, version, id, device."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected(
            CommandRejectReason.OVERSIZED, f"{len(payload)} bytes, limit {MAX_COMMAND_BYTES}", topic
        )
    parsed = topics.parse(topic)
    if parsed is None or parsed.kind is not kind:
        raise CommandRejected(
            CommandRejectReason.BAD_TOPIC, f"{topic[:120]!r} is not a {kind.value} topic", topic
        )
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise CommandRejected(CommandRejectReason.MALFORMED_JSON, f"not JSON: {exc}", topic) from None
    if not isinstance(body, dict):
        raise CommandRejected(CommandRejectReason.BAD_SCHEMA, "payload must be a JSON object", topic)
    if body.get("v") != COMMAND_VERSION:
        raise CommandRejected(
            CommandRejectReason.UNSUPPORTED_VERSION,
            f"version {body.get('v')!r:.20}, expected {COMMAND_VERSION}",
            topic,
        )
    if _canonical_uuid(body.get("id")) is None:
        raise CommandRejected(
            CommandRejectReason.BAD_COMMAND_ID, f"id {body.get('id')!r:.50} is not a UUID", topic
        )
    device = body.get("device")
    if not isinstance(device, str) or not topics.ID_PATTERN.fullmatch(device):
        raise CommandRejected(
            CommandRejectReason.BAD_DEVICE_ID,
            f"device id {device!r:.70} is not 1-64 characters of A-Z a-z 0-9 _ . -",
            topic,
        )
    if not parsed.is_gateway and parsed.sender != device:
        raise CommandRejected(
            CommandRejectReason.DEVICE_TOPIC_MISMATCH,
            f"payload says {device}, topic says {parsed.sender}",
            topic,
        )
    return Route(parsed.sender, parsed.is_gateway), body


def _ms(body: dict[str, Any], name: str, topic: str) -> int:
    value = body.get(name)
    if type(value) is not int or not 0 <= value < 2**63:
        raise CommandRejected(
            CommandRejectReason.BAD_TIMESTAMP, f"{name} must be epoch milliseconds, not {value!r:.30}", topic
        )
    return value


def decode_command(topic: str, payload: bytes) -> tuple[Route, Command]:
    """A command message: the route it came by and the command. A device behind a gateway gets its
    commands on the gateway's topic; whether the device is the gateway's own is for the gateway to say."""
    route, body = _envelope(topic, payload, topics.TopicKind.COMMAND)
    try:
        order = order_from(str(body.get("action")), body.get("params"))
    except CommandRejected as exc:
        exc.topic = topic
        raise
    issued, expires = _ms(body, "issued_at", topic), _ms(body, "expires_at", topic)
    if expires <= issued:
        raise CommandRejected(CommandRejectReason.BAD_TIMESTAMP, "expires_at is not after issued_at", topic)
    if isinstance(order, Override | PumpRun) and order.until_ms <= issued:
        raise CommandRejected(CommandRejectReason.BAD_TIMESTAMP, "until is not after issued_at", topic)
    return route, Command(str(uuid.UUID(body["id"])), body["device"], order, issued, expires)


def decode_ack(topic: str, payload: bytes) -> tuple[Route, Ack]:
    """An acknowledgement message: the route it came by and the ack."""
    route, body = _envelope(topic, payload, topics.TopicKind.COMMAND_ACK)
    try:
        status = AckStatus(str(body.get("status")))
    except ValueError:
        raise CommandRejected(
            CommandRejectReason.UNKNOWN_STATUS,
            f"status {body.get('status')!r:.30} is not one of {', '.join(s.value for s in AckStatus)}",
            topic,
        ) from None
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise CommandRejected(CommandRejectReason.BAD_SCHEMA, "reason must be text", topic)
    ts = _ms(body, "ts", topic)
    return route, Ack(str(uuid.UUID(body["id"])), body["device"], status, ts, reason[:MAX_REASON])
