"""Test helpers that talk to the real broker and database: publish and wait for PUBACKs, count points."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.localstack import LocalMosquitto
from devices.contract import DeviceRef, batch_payload, encode_reading
from devices.kinds import DeviceKind
from tests.waiting import wait_until


@contextmanager
def publisher(broker: LocalMosquitto, client_id: str = "test-publisher") -> Iterator[mqtt.Client]:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(broker: LocalMosquitto, messages: Iterable[tuple[str, bytes]], timeout: float = 60.0) -> int:
    """Publish at QoS 1 and return once the broker acknowledged every message."""
    with publisher(broker) as client:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        wait_until(lambda: all(i.is_published() for i in infos), timeout, f"PUBACK for {len(infos)} messages")
    return len(infos)


def lamp_city(lamps: int, per_gateway: int = 50) -> dict[str, DeviceRef]:
    return {
        f"LMP-{i:06d}": DeviceRef(f"LMP-{i:06d}", DeviceKind.LAMP, f"d{i % 3}", f"GW-{i // per_gateway:04d}")
        for i in range(lamps)
    }


def lamp_batches(directory: dict[str, DeviceRef], ts_ms: int, seq: int) -> list[tuple[str, bytes]]:
    """One batch per gateway with one reading per lamp."""
    by_gateway: dict[str, list[dict[str, object]]] = {}
    for ref in directory.values():
        fields = {"supply_voltage": 220.0 + seq % 7, "active_power": 95.5, "lamp_on": True, "dim_level": 100}
        by_gateway.setdefault(ref.gateway or "", []).append(encode_reading(ref.device_id, ts_ms, seq, fields))
    return [(f"cw/v1/gw/{gw}/batch", batch_payload(gw, readings)) for gw, readings in by_gateway.items()]


def influx_rows(url: str, db: str, query: str) -> list[list[object]]:
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        response = client.get(f"{url}/query", params={"db": db, "q": query, "epoch": "ms"})
    response.raise_for_status()
    result = response.json()["results"][0]
    assert "error" not in result, result
    return [row for series in result.get("series", []) for row in series["values"]]


def count_points(url: str, db: str, measurement: str = "lamp") -> int:
    """How many points are queryable (count of the seq field every reading carries)."""
    rows = influx_rows(url, db, f'SELECT count("seq") FROM "{measurement}"')
    return int(rows[0][1]) if rows else 0
