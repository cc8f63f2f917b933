"""The devices commands reach, from the asset registry: lamps and pump stations, by circuit and road. Pure.

``Fleet.expand`` turns a request's target into devices through the registry's relations: a lamp is
itself; a circuit, every in-service lamp the registry puts on it; a road, every in-service lamp on it; a
pump station, itself. Each device carries its route (its gateway when it has one: a device behind a
concentrator gets its commands through it) and its rating (lamp watts; one pump's rated current, from the
station's ``rated_current_a`` parameter) for judging the effect.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from api.commanding import UnknownTarget
from api.commanding.model import TargetKind
from devices.assets import Asset
from devices.commands import Route
from devices.contract import DeviceRef
from devices.kinds import DeviceKind

_COMMANDABLE = {
    DeviceKind.LAMP.value: DeviceKind.LAMP,
    DeviceKind.PUMP_STATION.value: DeviceKind.PUMP_STATION,
}


@dataclass(frozen=True, slots=True)
class Commandable:
    device: str
    kind: DeviceKind
    district: str
    route: Route
    rated: float  # lamp: rated power (W); station: one pump's rated current (A); NaN unknown
    pumps: int = 0  # stations: how many pumps; 0 unknown
    gateway: str = ""


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return math.nan


def commandable(asset: Asset) -> Commandable | None:
    """The asset as a command target, or None for kinds that take no commands and assets out of service."""
    kind = _COMMANDABLE.get(asset.kind)
    if kind is None or not asset.in_service:
        return None
    route = Route(asset.gateway, True) if asset.gateway else Route(asset.id, False)
    if kind is DeviceKind.LAMP:
        rated = asset.rated_power_w if asset.rated_power_w is not None else math.nan
        return Commandable(asset.id, kind, asset.district, route, rated, gateway=asset.gateway)
    pumps = _number(asset.params.get("pumps"))
    return Commandable(
        asset.id,
        kind,
        asset.district,
        route,
        _number(asset.params.get("rated_current_a")),
        int(pumps) if pumps >= 1 else 0,
        asset.gateway,
    )


class Fleet:
    """The commandable devices of the city and the groups a request may name."""

    def __init__(self, assets: Iterable[Asset]) -> None:
        devices: dict[str, Commandable] = {}
        circuits: dict[str, list[str]] = {}
        roads: dict[str, list[str]] = {}
        for asset in assets:
            target = commandable(asset)
            if target is None:
                continue
            devices[asset.id] = target
            if target.kind is DeviceKind.LAMP:
                if asset.circuit:
                    circuits.setdefault(asset.circuit, []).append(asset.id)
                if asset.road:
                    roads.setdefault(asset.road, []).append(asset.id)
        self._devices = MappingProxyType(devices)
        self._groups: Mapping[TargetKind, Mapping[str, tuple[str, ...]]] = {
            TargetKind.CIRCUIT: {k: tuple(sorted(v)) for k, v in circuits.items()},
            TargetKind.ROAD: {k: tuple(sorted(v)) for k, v in roads.items()},
        }
        self._directory = MappingProxyType(
            {
                d.device: DeviceRef(d.device, d.kind, d.district, d.gateway or None)
                for d in self._devices.values()
            }
        )

    def __len__(self) -> int:
        return len(self._devices)

    def get(self, device: str) -> Commandable | None:
        return self._devices.get(device)

    def expand(self, kind: TargetKind, target: str) -> tuple[Commandable, ...]:
        """The devices a request for ``target`` (of ``kind``) commands; ``UnknownTarget`` when none."""
        if kind in (TargetKind.LAMP, TargetKind.PUMP_STATION):
            found = self._devices.get(target)
            if found is None or found.kind.value != kind.value:
                raise UnknownTarget(
                    f"no {kind.value.replace('_', ' ')} {target!r:.80} in service in the registry"
                )
            return (found,)
        members = self._groups[kind].get(target)
        if not members:
            raise UnknownTarget(f"no {kind.value} {target!r:.80} with lamps in service in the registry")
        return tuple(self._devices[d] for d in members)

    def directory(self) -> Mapping[str, DeviceRef]:
        """The commandable devices as the telemetry decoder needs them."""
        return self._directory
