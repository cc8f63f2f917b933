"""What the runner needs from the rest of CityWatch, as tiny ports, and the real adapters behind them.

- ``AssetBook``: the asset registry (``RegistryBook`` over ``devices.registry.Registry``);
- ``CredentialIssuer``: the broker's device accounts (``BrokerIssuer`` over ``BrokerAccounts``);
- ``ReadingSource``: the readings the ingest stored (``InfluxReadings`` over InfluxDB's v1 /query).

The pure tier tests the runner with in-memory ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from citywatch.broker_accounts import BrokerAccounts, BrokerAccountsError
from citywatch.commission import ServiceUnavailable
from devices.assets import Asset
from devices.commissioning.config import Position
from devices.kinds import DeviceKind
from devices.registry import Registry
from ingest import InfluxError
from ingest.influx import InfluxV1


class AssetBook(Protocol):
    def get(self, asset_id: str) -> Asset | None: ...

    def upsert(self, assets: Iterable[Asset]) -> int: ...

    def near(self, position: Position, kind: DeviceKind, max_m: float) -> Iterable[Asset]:
        """Assets of ``kind`` that may be within ``max_m`` of ``position`` (a superset is fine)."""
        ...


class IssuedCredentials(Protocol):
    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...


class CredentialIssuer(Protocol):
    def issue(self, device_id: str) -> IssuedCredentials: ...

    def revoke(self, device_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredReading:
    ts_ms: int
    fields: Mapping[str, object]


class ReadingSource(Protocol):
    def first_reading(self, kind: DeviceKind, device_id: str, since_ms: int) -> StoredReading | None: ...


class RegistryBook:
    """The asset registry as the runner needs it: lookups, registration, and a new device's neighbours."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def close(self) -> None:
        """Nothing of its own to close: the registry is the caller's."""

    def get(self, asset_id: str) -> Asset | None:
        return self._registry.get(asset_id)

    def upsert(self, assets: Iterable[Asset]) -> int:
        return self._registry.upsert(assets)

    def near(self, position: Position, kind: DeviceKind, max_m: float) -> list[Asset]:
        dlat = math.degrees(max_m / 6_371_000.0)
        dlon = dlat / max(0.01, math.cos(math.radians(position.lat)))
        return self._registry.in_box(
            kind.value,
            (position.lat - dlat, position.lat + dlat),
            (position.lon - dlon, position.lon + dlon),
        )


class BrokerIssuer:
    """Device accounts on the broker, through its admin account; a context manager (one admin session)."""

    def __init__(self, admin_url: str, timeout_s: float = 10.0) -> None:
        self._accounts = BrokerAccounts(admin_url, timeout_s=timeout_s)
        self.where = str(self._accounts.address)

    def __enter__(self) -> Self:
        try:
            self._accounts.open()
        except BrokerAccountsError as exc:
            raise _unavailable(exc) from exc
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._accounts.close()

    def issue(self, device_id: str) -> IssuedCredentials:
        try:
            return self._accounts.issue(device_id)
        except BrokerAccountsError as exc:
            raise _unavailable(exc) from exc

    def revoke(self, device_id: str) -> None:
        try:
            self._accounts.revoke(device_id)
        except BrokerAccountsError as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: BrokerAccountsError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"the broker's account service failed: {exc}",
        hint="check that the broker runs (citywatch run) and CITYWATCH_MQTT_ADMIN_URL, if set",
    )


# Constants only: the device and the time are bound parameters; the measurement is a DeviceKind value.
_FIRST = 'SELECT * FROM "{kind}" WHERE "device" = $device AND time >= $since ORDER BY time ASC LIMIT 1'


class InfluxReadings:
    """The first stored reading of a device, asked of InfluxDB's v1-compatible /query."""

    def __init__(self, influx: InfluxV1) -> None:
        self.influx = influx

    def first_reading(self, kind: DeviceKind, device_id: str, since_ms: int) -> StoredReading | None:
        query = _FIRST.format(kind=DeviceKind(kind).value)
        try:
            series = self.influx.query(query, {"device": device_id, "since": since_ms * 1_000_000})
        except InfluxError as exc:
            raise ServiceUnavailable(
                f"cannot ask InfluxDB at {self.influx.target.url} for readings: {exc}",
                hint="check that InfluxDB runs (citywatch run) and CITYWATCH_INFLUX_URL, if set",
            ) from exc
        for s in series:
            columns: list[str] = s["columns"]
            for values in s.get("values") or ():
                point: dict[str, Any] = dict(zip(columns, values, strict=True))
                ts = int(point.pop("time"))
                for tag in ("device", "district"):
                    point.pop(tag, None)
                return StoredReading(ts, {k: v for k, v in point.items() if v is not None})
        return None
