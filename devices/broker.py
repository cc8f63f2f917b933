"""Where a device or a service finds the MQTT broker: the broker URL every CityWatch part accepts."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from devices import DevicesError

_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}


class BrokerUrlError(DevicesError):
    """A broker URL that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS; ports default to 1883 / 8883)."""
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise BrokerUrlError(f"{url!r}: the scheme must be one of {', '.join(_SCHEMES)}")
        try:
            port = parts.port
        except ValueError as exc:
            raise BrokerUrlError(f"{url!r}: bad port") from exc
        if not parts.hostname:
            raise BrokerUrlError(f"{url!r} names no host")
        tls = _SCHEMES[parts.scheme]
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=tls,
        )

    def __str__(self) -> str:
        """The URL without credentials (safe to log)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
