"""The MQTT adapter: publishes the simulator's messages at QoS 1 over one or a few paho connections.

The simulator plays every gateway of the city over these few connections (so its broker account must be
allowed to write all ``cw/v1/gw/+/...`` and ``cw/v1/dev/+/...`` topics). Publishing is bounded: at most
``max_inflight`` messages may wait for their PUBACK; ``publish`` blocks until the broker catches up, so a
slow broker slows the simulator instead of filling memory. A topic always goes over the same connection,
so each gateway's messages stay in order.

With ``listen``, the first connection also subscribes to the command topics of every device and gateway
(``devices.commands.COMMAND_FILTERS``; the account must be allowed to read them) and keeps what arrives
for ``commands()``: the runner lets the simulated devices answer them.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import zlib
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt

from devices.broker import BrokerAddress
from devices.commands import COMMAND_FILTERS
from devices.mqtt_client import new_client
from firmware_sim import PublishError
from firmware_sim.payloads import Message

log = logging.getLogger(__name__)


class MqttPublisher:
    """QoS 1 publishing with bounded in-flight messages; a context manager that connects and flushes."""

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str | None = None,
        connections: int = 1,
        max_inflight: int = 1000,
        connect_timeout: float = 10.0,
        ack_timeout: float = 60.0,
        listen: bool = False,
    ) -> None:
        if connections < 1 or max_inflight < 1:
            raise ValueError("connections and max_inflight must be at least 1")
        self.address = address
        self.max_inflight = max_inflight
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.listen = listen
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        prefix = client_id or f"citywatch-sim-{os.getpid()}"
        self._clients = [
            self._client(f"{prefix}-{i}" if connections > 1 else prefix, i) for i in range(connections)
        ]
        self._connected = [threading.Event() for _ in self._clients]
        self._refused: list[str | None] = [None] * connections
        self._lock = threading.Condition()
        self._pending = 0
        self.published = 0
        self.failed = 0

    def _client(self, client_id: str, index: int) -> mqtt.Client:
        # userdata: the callbacks' second argument says which connection
        client = new_client(self.address, client_id, userdata=index)
        client.max_inflight_messages_set(min(self.max_inflight, 65535))
        client.max_queued_messages_set(0)  # unbounded in paho: this class bounds it
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, index: int, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refused[index] = str(reason)
            log.warning("broker %s refused connection %d: %s", self.address, index, reason)
        else:
            log.info("connected to %s (connection %d)", self.address, index)
            if self.listen and index == 0:  # again after every reconnect: the session may be new
                client.subscribe([(f, 1) for f in COMMAND_FILTERS])
        self._connected[index].set()

    def _on_disconnect(self, client: mqtt.Client, index: int, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("connection %d to %s lost (%s); paho reconnects", index, self.address, reason)

    def _on_publish(self, client: mqtt.Client, _index: int, _mid: int, reason: Any, _props: Any) -> None:
        with self._lock:
            self._pending -= 1
            self.published += 1
            if reason.is_failure:
                self.failed += 1
            self._lock.notify_all()
        if reason.is_failure:
            log.warning("broker refused a message: %s", reason)

    def _on_message(self, _client: mqtt.Client, _index: int, message: mqtt.MQTTMessage) -> None:
        self._inbox.put((message.topic, bytes(message.payload)))

    def commands(self) -> list[tuple[str, bytes]]:
        """The command messages received since the last call (topic, payload), oldest first."""
        out: list[tuple[str, bytes]] = []
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out

    def __enter__(self) -> Self:
        for index, client in enumerate(self._clients):
            try:
                client.connect(self.address.host, self.address.port, keepalive=60)
            except (OSError, ValueError) as exc:
                self._stop()
                raise PublishError(f"cannot connect to {self.address}: {exc}") from exc
            client.loop_start()
            if not self._connected[index].wait(self.connect_timeout) or self._refused[index]:
                self._stop()
                raise PublishError(
                    f"{self.address} did not accept the connection: {self._refused[index] or 'timeout'}"
                )
        return self

    def publish(self, message: Message) -> None:
        """Send one message at QoS 1; blocks while ``max_inflight`` messages await their PUBACK."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._pending < self.max_inflight, self.ack_timeout):
                raise PublishError(f"{self.address}: no PUBACK for {self.ack_timeout:.0f} s")
            self._pending += 1
        client = self._clients[zlib.crc32(message.topic.encode()) % len(self._clients)]
        info = client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: queued for the reconnect
            with self._lock:
                self._pending -= 1
            raise PublishError(f"publish on {message.topic} failed: {mqtt.error_string(info.rc)}")

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the broker acknowledged every message published so far."""
        limit = self.ack_timeout if timeout is None else timeout
        with self._lock:
            if not self._lock.wait_for(lambda: self._pending <= 0, limit):
                raise PublishError(
                    f"{self.address}: {self._pending} messages unacknowledged after {limit:.0f} s"
                )

    def _stop(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
            else:
                self.flush(timeout=min(self.ack_timeout, 5.0))
        except PublishError as error:
            log.error("closing with unacknowledged messages: %s", error)
        finally:
            self._stop()
            log.info("disconnected from %s: %d messages acknowledged", self.address, self.published)
