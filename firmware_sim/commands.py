"""The simulated devices taking commands (``devices.commands``): check, apply, acknowledge.

``CommandTaker.take`` handles one command message the way a lamp controller or a station PLC would: a
device that cannot hear it (offline, its gateway down, its circuit without supply, or a ``command_deaf``
fault) stays silent; one past the command's ``expires_at`` by its own clock, or asked something it cannot
do (a pump command to a lamp, pump 4 of a 3-pump station), rejects it; one with an ``ignores_commands``
fault accepts it and does nothing; any other applies it to the physics' manual controls
(``firmware_sim.manual``) and accepts it.

The effect shows from the next tick's readings on, so the acknowledgement's ``ts`` (the device clock when
the command takes effect) is that tick's time minus the largest clock lag a device of the simulation has:
at or before every reading of that tick, after every reading of the tick before (a lag is at most half an
interval, ``Simulation``). Pure: the runner passes the simulated time and publishes the answers.
"""

from __future__ import annotations

import logging
from collections import Counter

from devices.commands import (
    Ack,
    AckStatus,
    Command,
    CommandRejected,
    Dim,
    Override,
    PumpRun,
    Route,
    Switch,
    decode_command,
    describe,
    encode_ack,
)
from devices.kinds import DeviceKind
from firmware_sim.payloads import Message
from firmware_sim.simulation import Simulation

log = logging.getLogger(__name__)


class CommandTaker:
    """The city's devices answering the commands addressed to them."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self._tables = sim.city.devices()
        self._gateway_ids: list[str] = sim.city.gateways.ids.tolist()
        config = sim.config
        # Simulation draws each device's clock lag from 0 to this (inclusive), in ms.
        self._max_lag_ms = min(config.max_clock_lag_ms, int(config.interval_s * 500))
        self.outcomes: Counter[str] = Counter()  # accepted, rejected, ignored, silent, malformed, ...

    def take(self, topic: str, payload: bytes, now_s: float) -> list[Message]:
        """The answer (none, or one acknowledgement) to one command message at simulated time ``now_s``."""
        try:
            route, command = decode_command(topic, payload)
        except CommandRejected as exc:
            self.outcomes["malformed"] += 1
            log.warning("command on %s dropped: %s", topic, exc)
            return []
        found = self._find(command.device)
        if found is None:
            self.outcomes["unknown_device"] += 1
            return []
        kind, number = found
        if route.gateway and not self._behind(kind, number, route.sender):
            self.outcomes["not_this_gateway"] += 1  # that gateway does not know the device
            return []
        if self._unreachable(kind, number):
            self.outcomes["silent"] += 1
            return []
        masks = self.sim.masks
        if masks.command_deaf[kind][number]:
            self.outcomes["deaf"] += 1
            return []
        refusal = self._refusal(command, kind, number, now_s)
        if refusal:
            self.outcomes["rejected"] += 1
            return [self._ack(route, command, AckStatus.REJECTED, refusal)]
        if masks.ignores_commands[kind][number]:
            self.outcomes["ignored"] += 1
            return [self._ack(route, command, AckStatus.ACCEPTED)]
        self._apply(command, number)
        self.outcomes["accepted"] += 1
        log.debug("%s: %s from the next tick on", command.device, describe(command.order))
        return [self._ack(route, command, AckStatus.ACCEPTED)]

    def _find(self, device: str) -> tuple[DeviceKind, int] | None:
        for kind, table in self._tables.items():
            number = int(table.find([device])[0])
            if number >= 0 and table.in_service[number]:
                return kind, number
        return None

    def _behind(self, kind: DeviceKind, number: int, gateway: str) -> bool:
        gw = int(self._tables[kind].gateway[number])
        return gw >= 0 and self._gateway_ids[gw] == gateway

    def _unreachable(self, kind: DeviceKind, number: int) -> bool:
        masks = self.sim.masks
        if masks.offline[kind][number]:
            return True
        gw = int(self._tables[kind].gateway[number])
        if gw >= 0 and masks.gateway_down[gw]:
            return True
        # A lamp controller on a circuit without supply (cable theft) is dead.
        return kind is DeviceKind.LAMP and bool(masks.circuit_theft[self.sim.city.lamps.circuit[number]])

    def _refusal(self, command: Command, kind: DeviceKind, number: int, now_s: float) -> str:
        if command.expired(round(now_s * 1000)):
            return "expired"
        order = command.order
        if kind is DeviceKind.LAMP and isinstance(order, Switch | Dim | Override):
            return ""
        if kind is DeviceKind.PUMP_STATION and isinstance(order, PumpRun):
            pumps = int(self.sim.city.stations.pumps[number])
            return "" if order.pump <= pumps else f"no pump {order.pump}: the station has {pumps}"
        return f"unsupported: a {kind.value} does not take {order.action.value} commands"

    def _apply(self, command: Command, number: int) -> None:
        order = command.order
        lamps = self.sim.physics.lighting.manual
        if isinstance(order, Switch):
            lamps.switch(number, order.on)
        elif isinstance(order, Dim):
            lamps.dim(number, order.level)
        elif isinstance(order, Override):
            lamps.override(number, order.on, order.level, order.until_ms / 1000)
        else:
            self.sim.physics.drainage.hand.hand(number, order.pump, order.run, order.until_ms / 1000)

    def _ack(self, route: Route, command: Command, status: AckStatus, reason: str = "") -> Message:
        effective_ms = round(self.sim.next_time * 1000) - self._max_lag_ms
        ack = Ack(command.id, command.device, status, effective_ms, reason)
        return Message(route.ack_topic, encode_ack(ack), 0)
