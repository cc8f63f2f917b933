"""A tick's readings as MQTT messages (contract v1): gateway batches, or one message per device.

``PayloadBuilder.readings(tick)`` orders the tick's readings by gateway (numpy index arrays only);
``head(n)`` cuts them to exactly n; ``batches`` / ``singles`` build the reading objects
(``encode_reading``) and messages block by block, so a million-lamp tick never holds a million dicts.
A gateway's batch is split into messages of at most ``max_batch`` readings and ``max_bytes`` bytes.
Devices without a gateway always publish on their own telemetry topic. Pure: bytes out, no network.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from devices import topics
from devices.contract import FieldValue, Limits, batch_payload, encode_reading, single_payload, status_payload
from devices.kinds import DeviceKind
from firmware_sim.city import City, IntArray
from firmware_sim.simulation import Frame, Tick

BLOCK = 20_000  # readings turned into Python objects at a time


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    readings: int  # telemetry readings inside (0 for a status message)
    retain: bool = False


class MessageSink(Protocol):
    """Where messages go: the broker (``publisher.MqttPublisher``), or a list in tests."""

    def publish(self, message: Message) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class TickReadings:
    """One tick's readings in gateway order (ascending gateway number; -1, no gateway, first).

    Reading i is row ``row[i]`` of frame ``frame_of[i]``.
    """

    frames: tuple[Frame, ...]
    frame_of: npt.NDArray[np.int8]
    row: IntArray
    gateway: IntArray

    def __len__(self) -> int:
        return len(self.row)

    def head(self, n: int) -> TickReadings:
        if n >= len(self):
            return self
        return TickReadings(self.frames, self.frame_of[:n], self.row[:n], self.gateway[:n])

    def ts_ms(self) -> list[int]:
        stamps = np.empty(len(self), dtype=np.int64)
        for f, frame in enumerate(self.frames):
            mine = self.frame_of == f
            stamps[mine] = frame.ts_ms[self.row[mine]]
        return list(stamps.tolist())


def _field_dicts(
    fields: dict[str, list[FieldValue]], pumps: list[int] | None
) -> Iterator[dict[str, FieldValue]]:
    names = list(fields)
    rows = zip(*fields.values(), strict=True)
    if pumps is None:
        for row in rows:
            yield dict(zip(names, row, strict=True))
        return
    # A station reports the pump blocks it has: pump1_* .. pumpN_*.
    for row, n in zip(rows, pumps, strict=True):
        yield {
            name: value
            for name, value in zip(names, row, strict=True)
            if not name.startswith("pump") or int(name[4 : name.index("_")]) <= n
        }


class PayloadBuilder:
    """Builds the MQTT messages of a city's ticks."""

    def __init__(self, city: City, *, max_batch: int = 1000, max_bytes: int | None = None) -> None:
        self.city = city
        self.max_batch = max_batch
        self.max_bytes = max_bytes or Limits().max_payload_bytes
        self._tables = city.devices()
        self._ids = {kind: table.ids.tolist() for kind, table in self._tables.items()}
        self._gateway_ids: list[str] = city.gateways.ids.tolist()

    def readings(self, tick: Tick) -> TickReadings:
        frames = tuple(f for f in tick.frames if len(f))
        if not frames:
            empty = np.zeros(0, dtype=np.int32)
            return TickReadings((), np.zeros(0, dtype=np.int8), empty, empty)
        gateway = np.concatenate([self._tables[f.kind].gateway[f.device] for f in frames])
        frame_of = np.concatenate([np.full(len(f), i, dtype=np.int8) for i, f in enumerate(frames)])
        row = np.concatenate([np.arange(len(f), dtype=np.int32) for f in frames])
        order = np.argsort(gateway, kind="stable")
        return TickReadings(frames, frame_of[order], row[order], gateway[order].astype(np.int32))

    def devices(self, readings: TickReadings, lo: int = 0, hi: int | None = None) -> list[str]:
        """Device ids of readings lo..hi."""
        out: list[str] = [""] * len(readings.row[lo:hi])
        for f, pos, rows in self._by_frame(readings, lo, hi):
            ids = self._ids[readings.frames[f].kind]
            for p, i in zip(pos, readings.frames[f].device[rows].tolist(), strict=True):
                out[p] = ids[i]
        return out

    def bodies(self, readings: TickReadings, lo: int = 0, hi: int | None = None) -> list[dict[str, object]]:
        """The ``encode_reading`` objects of readings lo..hi."""
        out: list[dict[str, object]] = [{}] * len(readings.row[lo:hi])
        for f, pos, rows in self._by_frame(readings, lo, hi):
            frame = readings.frames[f]
            ids = self._ids[frame.kind]
            devices = frame.device[rows]
            pumps = None
            if frame.kind is DeviceKind.PUMP_STATION:
                pumps = self.city.stations.pumps[devices].tolist()
            fields = _field_dicts({name: col[rows].tolist() for name, col in frame.fields.items()}, pumps)
            device = [ids[i] for i in devices.tolist()]
            made = map(encode_reading, device, frame.ts_ms[rows].tolist(), frame.seq[rows].tolist(), fields)
            for p, body in zip(pos, made, strict=True):
                out[p] = body
        return out

    @staticmethod
    def _by_frame(
        readings: TickReadings, lo: int, hi: int | None
    ) -> Iterator[tuple[int, list[int], IntArray]]:
        frame_of, row = readings.frame_of[lo:hi], readings.row[lo:hi]
        for f in np.unique(frame_of).tolist():
            pos = np.flatnonzero(frame_of == f)
            yield f, pos.tolist(), row[pos]

    def batches(self, readings: TickReadings) -> Iterator[Message]:
        """One or more batch messages per gateway; devices without a gateway publish alone."""
        n = len(readings)
        if not n:
            return
        cuts = np.flatnonzero(np.diff(readings.gateway)) + 1
        starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [n]])
        block_lo = 0
        while block_lo < n:
            # A block ends at the first gateway boundary BLOCK readings on: no gateway spans two blocks.
            block_hi = int(ends[min(int(np.searchsorted(ends, block_lo + BLOCK)), len(ends) - 1)])
            bodies = self.bodies(readings, block_lo, block_hi)
            first, last = np.searchsorted(starts, [block_lo, block_hi])
            for lo, hi in zip(starts[first:last].tolist(), ends[first:last].tolist(), strict=True):
                gateway = int(readings.gateway[lo])
                yield from self._gateway(bodies[lo - block_lo : hi - block_lo], gateway)
            block_lo = block_hi

    def _gateway(self, bodies: list[dict[str, object]], gw: int) -> Iterator[Message]:
        if gw < 0:
            yield from (self._single(body) for body in bodies)
            return
        gateway = self._gateway_ids[gw]
        for first in range(0, len(bodies), self.max_batch):
            yield from self._batch(gateway, bodies[first : first + self.max_batch])

    def _batch(self, gateway: str, chunk: list[dict[str, object]]) -> Iterator[Message]:
        payload = batch_payload(gateway, chunk)
        if len(payload) <= self.max_bytes or len(chunk) == 1:
            yield Message(topics.batch(gateway), payload, len(chunk))
            return
        half = len(chunk) // 2
        yield from self._batch(gateway, chunk[:half])
        yield from self._batch(gateway, chunk[half:])

    def singles(self, readings: TickReadings) -> Iterator[Message]:
        """One telemetry message per reading, on the device's own topic."""
        for lo in range(0, len(readings), BLOCK):
            yield from map(self._single, self.bodies(readings, lo, lo + BLOCK))

    @staticmethod
    def _single(body: dict[str, object]) -> Message:
        device, ts, seq, fields = body["device"], body["ts"], body["seq"], body["fields"]
        assert (
            isinstance(device, str)
            and isinstance(ts, int)
            and isinstance(seq, int)
            and isinstance(fields, dict)
        )
        return Message(topics.telemetry(device), single_payload(device, ts, seq, fields), 1)

    def status(self, sender: str, *, online: bool, gateway: bool, ts_ms: int) -> Message:
        """The retained online / offline status of a gateway or a device."""
        return Message(topics.status(sender, gateway=gateway), status_payload(online, ts_ms), 0, retain=True)

    def gateway_ids(self, numbers: IntArray) -> list[str]:
        return [self._gateway_ids[i] for i in numbers.tolist()]

    def device_ids(self, kind: DeviceKind, numbers: IntArray) -> list[str]:
        ids = self._ids[kind]
        return [ids[i] for i in numbers.tolist()]
