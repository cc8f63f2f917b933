"""MQTT topic scheme (contract version 1).

    cw/v1/dev/{device}/telemetry     one device's reading (device publishes, QoS 1)
    cw/v1/gw/{gateway}/batch         a gateway's batch of its devices' readings (QoS 1)
    cw/v1/dev/{device}/status        online / offline, retained; the device's last will says offline
    cw/v1/gw/{gateway}/status        the same for a gateway
    cw/v1/dev/{device}/cmd           commands to a device (CityWatch publishes)
    cw/v1/dev/{device}/cmd/ack       the device's acknowledgement of a command
    cw/v1/gw/{gateway}/cmd           commands to a gateway; .../cmd/ack likewise

The second level names the contract version, so a v2 can run beside v1 on the same broker. The
identity is one topic level, which lets the broker's ACL say ``pattern write cw/v1/dev/%u/#``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

ROOT = "cw/v1"

#: Device and gateway ids: safe in a topic level, an InfluxDB tag and a file name, without escaping.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


class TopicKind(enum.Enum):
    TELEMETRY = "telemetry"
    BATCH = "batch"
    STATUS = "status"
    COMMAND = "cmd"
    COMMAND_ACK = "cmd/ack"


@dataclass(frozen=True, slots=True)
class Topic:
    kind: TopicKind
    sender: str  # device id or gateway id
    is_gateway: bool


def telemetry(device_id: str) -> str:
    return f"{ROOT}/dev/{device_id}/telemetry"


def batch(gateway_id: str) -> str:
    return f"{ROOT}/gw/{gateway_id}/batch"


def status(sender_id: str, *, gateway: bool = False) -> str:
    return f"{ROOT}/{'gw' if gateway else 'dev'}/{sender_id}/status"


def command(sender_id: str, *, gateway: bool = False) -> str:
    return f"{ROOT}/{'gw' if gateway else 'dev'}/{sender_id}/cmd"


def command_ack(sender_id: str, *, gateway: bool = False) -> str:
    return f"{ROOT}/{'gw' if gateway else 'dev'}/{sender_id}/cmd/ack"


#: What the ingest subscribes to (telemetry and gateway batches).
INGEST_FILTERS = (f"{ROOT}/dev/+/telemetry", f"{ROOT}/gw/+/batch")

_SUFFIXES = {s.value: s for s in TopicKind}


def parse(topic: str) -> Topic | None:
    """Parse a topic of this scheme; None when it is not one."""
    parts = topic.split("/", 4)
    if len(parts) < 5 or parts[0] != "cw" or parts[1] != "v1" or parts[2] not in ("dev", "gw"):
        return None
    kind = _SUFFIXES.get(parts[4])
    sender = parts[3]
    if kind is None or not ID_PATTERN.fullmatch(sender):
        return None
    is_gateway = parts[2] == "gw"
    if (kind is TopicKind.TELEMETRY and is_gateway) or (kind is TopicKind.BATCH and not is_gateway):
        return None
    return Topic(kind, sender, is_gateway)
