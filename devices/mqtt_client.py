"""A paho-mqtt 2.x client for a ``BrokerAddress``, set up the same way by every CityWatch service (adapter).

MQTT 5 or 3.1.1, the address's credentials and TLS (the system's CA store, certificates verified),
and paho's reconnect backoff (1 s doubling to 30 s). The caller adds its callbacks and connects.
"""

from __future__ import annotations

from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.broker import BrokerAddress


def new_client(
    address: BrokerAddress,
    client_id: str,
    *,
    protocol: Literal["5", "3.1.1"] = "5",
    persistent: bool = False,
    manual_ack: bool = False,
    userdata: object = None,
) -> mqtt.Client:
    """A client for ``address``. ``persistent``: over 3.1.1 a persistent session (clean_session=False);
    over MQTT 5 the session is chosen at connect (clean_start and the session expiry)."""
    v5 = protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        userdata=userdata,
        manual_ack=manual_ack,
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()  # the system's CAs, certificate required
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client
