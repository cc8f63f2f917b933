"""What a device is and how it is configured: the values the commissioning messages carry.

Secrets go one way: a device never sends its broker password back, only ``password_digest`` (the first
16 hex digits of its SHA-256), which is enough for the tool to verify a write. Positions go as
``[lat, lon]`` (not GeoJSON's ``[lon, lat]``): the order a technician reads off a GNSS receiver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from devices.broker import BrokerAddress, BrokerUrlError
from devices.commissioning import MessageError
from devices.commissioning.payload import device_kind, integer, number, only, text
from devices.kinds import DeviceKind
from devices.topics import ID_PATTERN

MIN_INTERVAL_S, MAX_INTERVAL_S = 1, 86_400
_MAX_SECRET = 128


@dataclass(frozen=True, slots=True)
class Position:
    lat: float
    lon: float

    @classmethod
    def from_json(cls, value: object, name: str) -> Position:
        if not isinstance(value, list) or len(value) != 2:
            raise MessageError("must be [lat, lon]", name)
        coordinates = {"lat": value[0], "lon": value[1]}
        return cls(number(coordinates, "lat", -90, 90), number(coordinates, "lon", -180, 180))

    def to_json(self) -> list[float]:
        return [self.lat, self.lon]


_IDENTITY_KEYS: Final = frozenset({"model", "serial", "firmware", "hardware", "kinds", "protocols", "gnss"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """What the device says it is; ``gnss`` is its own position fix, when it has a receiver."""

    model: str
    serial: str
    firmware: str
    hardware: str
    kinds: tuple[DeviceKind, ...]
    protocols: tuple[int, ...]
    gnss: Position | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Identity:
        only(body, _IDENTITY_KEYS)
        kinds, protocols = body.get("kinds"), body.get("protocols")
        if not isinstance(kinds, list) or not kinds:
            raise MessageError("must be a non-empty list of device kinds", "kinds")
        if not isinstance(protocols, list) or not protocols or any(type(p) is not int for p in protocols):
            raise MessageError("must be a non-empty list of protocol versions", "protocols")
        serial = text(body, "serial", 64, empty=False)
        if not ID_PATTERN.fullmatch(serial):
            raise MessageError("must be 1-64 of A-Z a-z 0-9 _ . -", "serial")
        gnss = body.get("gnss")
        return cls(
            model=text(body, "model", 64, empty=False),
            serial=serial,
            firmware=text(body, "firmware", 64, empty=False),
            hardware=text(body, "hardware", 64, empty=False),
            kinds=tuple(device_kind(k, "kinds") for k in kinds),
            protocols=tuple(protocols),
            gnss=None if gnss is None else Position.from_json(gnss, "gnss"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "serial": self.serial,
            "firmware": self.firmware,
            "hardware": self.hardware,
            "kinds": [k.value for k in self.kinds],
            "protocols": list(self.protocols),
            "gnss": None if self.gnss is None else self.gnss.to_json(),
        }


def password_digest(password: str) -> str:
    """What a device shows of its broker password: enough to compare, useless to an eavesdropper."""
    return hashlib.sha256(password.encode()).hexdigest()[:16]


_CONFIG_KEYS: Final = frozenset(
    {"device_id", "kind", "broker_url", "username", "interval_s", "position", "circuit", "road"}
)


def _config_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a written and a stored configuration share, validated."""
    device_id = text(body, "device_id", 64, empty=False)
    if not ID_PATTERN.fullmatch(device_id):
        raise MessageError("must be 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit", "device_id")
    broker_url = text(body, "broker_url", empty=False)
    try:
        address = BrokerAddress.from_url(broker_url)
    except BrokerUrlError as exc:
        raise MessageError(str(exc), "broker_url") from None
    if address.username is not None or address.password is not None:
        raise MessageError("must not carry credentials: give username and password", "broker_url")
    return {
        "device_id": device_id,
        "kind": device_kind(body.get("kind"), "kind"),
        "broker_url": broker_url,
        "username": text(body, "username", _MAX_SECRET, empty=False),
        "interval_s": integer(body, "interval_s", MIN_INTERVAL_S, MAX_INTERVAL_S),
        "position": Position.from_json(body.get("position"), "position"),
        "circuit": text(body, "circuit", 100),
        "road": text(body, "road"),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceConfig:
    """What the tool writes: identity on the network, where to report, how often, where it stands."""

    device_id: str
    kind: DeviceKind
    broker_url: str  # without credentials: mqtt://host:port or mqtts://host:port
    username: str
    password: str
    interval_s: int
    position: Position
    circuit: str = ""
    road: str = ""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> DeviceConfig:
        only(body, _CONFIG_KEYS | {"password"})
        return cls(**_config_fields(body), password=text(body, "password", _MAX_SECRET, empty=False))

    def to_json(self) -> dict[str, Any]:
        body = self.stored().to_json()
        del body["password_digest"]
        return {**body, "password": self.password}

    def stored(self) -> StoredConfig:
        """What the device will answer to READ_CONFIG once it has stored this."""
        return StoredConfig(
            device_id=self.device_id,
            kind=self.kind,
            broker_url=self.broker_url,
            username=self.username,
            password_digest=password_digest(self.password),
            interval_s=self.interval_s,
            position=self.position,
            circuit=self.circuit,
            road=self.road,
        )

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"DeviceConfig(device_id={self.device_id!r}, kind={self.kind.value!r}, password=***)"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredConfig:
    """What the device answers to READ_CONFIG: the configuration with the password as a digest."""

    device_id: str
    kind: DeviceKind
    broker_url: str
    username: str
    password_digest: str
    interval_s: int
    position: Position
    circuit: str = ""
    road: str = ""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> StoredConfig:
        only(body, _CONFIG_KEYS | {"password_digest", "configured"})
        return cls(**_config_fields(body), password_digest=text(body, "password_digest", 64, empty=False))

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "kind": self.kind.value,
            "broker_url": self.broker_url,
            "username": self.username,
            "password_digest": self.password_digest,
            "interval_s": self.interval_s,
            "position": self.position.to_json(),
            "circuit": self.circuit,
            "road": self.road,
        }

    def differences(self, other: StoredConfig) -> tuple[str, ...]:
        """The names of the fields that differ (for a read-back check)."""
        mine, theirs = self.to_json(), other.to_json()
        return tuple(name for name in mine if mine[name] != theirs[name])
