"""A commissioned simulated device on the network (adapter): paho in, its readings out.

With its stored configuration the device connects to the configured broker as its own user (client id =
device id), says ``online`` on its retained status topic (its last will says ``offline``), publishes a
reading at once and then every reporting interval on ``cw/v1/dev/{id}/telemetry`` (contract v1, QoS 1),
and writes what happens into the console's log, where the technician's tool reads it.
``broker_check`` is the self-test's network check: connect with the stored credentials, then leave.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices import topics
from devices.broker import BrokerAddress
from devices.commissioning.config import DeviceConfig
from devices.commissioning.messages import Check
from devices.contract import single_payload, status_payload
from firmware_sim.console_readings import DeviceCounters, reading_fields

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _client(config: DeviceConfig, client_id: str) -> tuple[mqtt.Client, BrokerAddress]:
    address = BrokerAddress.from_url(config.broker_url)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
    )
    client.username_pw_set(config.username, config.password)
    if address.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    return client, address


def broker_check(config: DeviceConfig, timeout_s: float = 3.0) -> Check:
    """Connect with the stored configuration and disconnect: the self-test's ``broker`` check."""
    client, address = _client(config, f"{config.device_id}-selftest")
    answer: dict[str, str] = {}
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        answer["reason"] = "" if not reason.is_failure else str(reason)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(address.host, address.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return Check("broker", False, f"{address}: cannot connect ({exc})")
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return Check("broker", False, f"{address}: no answer within {timeout_s:g} s")
        if answer["reason"]:
            return Check("broker", False, f"{address} refused {config.username}: {answer['reason']}")
        return Check("broker", True, f"{address} accepts {config.username}")
    finally:
        client.disconnect()
        client.loop_stop()


class DeviceReporter:
    """The device's network side: connected and reporting from ``start`` until ``stop``."""

    def __init__(
        self,
        config: DeviceConfig,
        console_log: deque[str],
        *,
        offline: bool = False,
        silent: bool = False,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.console_log = console_log
        self.offline = offline  # the network never comes up
        self.silent = silent  # connected, but no reading ever comes from the sensors
        self.published = 0
        self._rng = np.random.default_rng(seed)
        self._counters = DeviceCounters()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._client, self._address = _client(config, config.device_id)
        self._client.will_set(
            topics.status(config.device_id), status_payload(False, _now_ms()), qos=1, retain=True
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._thread = threading.Thread(
            target=self._report_loop, name=f"report-{config.device_id}", daemon=True
        )

    def start(self) -> None:
        if self.offline:
            self.console_log.append(f"mqtt: {self._address}: network unreachable (no route to host)")
            return
        self.console_log.append(f"mqtt: connecting to {self._address} as {self.config.username}")
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.offline:
            return
        if self._connected.is_set():
            info = self._client.publish(
                topics.status(self.config.device_id), status_payload(False, _now_ms()), qos=1, retain=True
            )
            info.wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            self.console_log.append(f"mqtt: {self._address} refused {self.config.username}: {reason}")
            return
        self.console_log.append(f"mqtt: connected to {self._address} as {self.config.username}")
        client.publish(
            topics.status(self.config.device_id), status_payload(True, _now_ms()), qos=1, retain=True
        )
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            self.console_log.append(f"mqtt: connection lost ({reason}); retrying")

    def _report_loop(self) -> None:
        """A reading as soon as the broker accepts the device, then one every interval."""
        seq = 0
        while not self._stop.is_set():
            if not self._connected.wait(0.5):
                continue
            if self.silent:
                self.console_log.append("telemetry: no reading: sensor bus timeout")
                self._stop.wait(self.config.interval_s)
                continue
            seq += 1
            t = time.time()
            fields = reading_fields(self.config.kind, t, self.config.position, self._counters, self._rng)
            payload = single_payload(self.config.device_id, int(t * 1000), seq, fields)
            self._client.publish(topics.telemetry(self.config.device_id), payload, qos=1)
            self.published += 1
            if seq == 1:
                self.console_log.append(f"telemetry: first reading sent (seq {seq})")
            self._stop.wait(self.config.interval_s)
