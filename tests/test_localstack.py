"""A real Mosquitto and a real InfluxDB, started and stopped by citywatch.localstack."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citywatch.localstack import (
    LocalInfluxDB,
    LocalMosquitto,
    LocalServiceError,
    find_binary,
    influx_ping,
    influxdb_conf,
    mosquitto_conf,
)
from tests.conftest import InfluxTarget
from tests.waiting import wait_until

TIMEOUT_S = 15.0

# --- pure: the generated configs ---------------------------------------------------------------------


def _mosquitto_options(conf: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in conf.splitlines() if line and not line.startswith("#"))


def test_mosquitto_queue_holds_an_hour_of_the_whole_city() -> None:
    options = _mosquitto_options(mosquitto_conf(1883, Path("/srv/mq")))

    devices, report_every_s, outage_s = 100_000, 60, 3600
    one_hour_unbatched = devices * outage_s // report_every_s  # one reading per message: the worst case
    assert one_hour_unbatched == 6_000_000
    assert int(options["max_queued_messages"]) >= one_hour_unbatched
    assert int(options["max_queued_bytes"]) == 0  # no byte cap that would drop before the count does
    assert int(options["max_inflight_messages"]) >= 1000  # a batch of acknowledgements, not 20
    assert int(options["max_packet_size"]) == 1024 * 1024
    assert "message_size_limit" not in options  # deprecated in Mosquitto 2.0


def test_mosquitto_conf_is_loopback_persistent_and_logs_to_its_data_dir() -> None:
    options = _mosquitto_options(mosquitto_conf(18830, Path("/srv/mq")))

    assert options["listener"] == "18830 127.0.0.1"
    assert options["allow_anonymous"] == "true"
    assert options["persistence"] == "true"
    assert options["persistence_location"] == "/srv/mq/"
    assert options["autosave_interval"] == "30"
    assert options["log_dest"] == "file /srv/mq/mosquitto.log"
    assert options["set_tcp_nodelay"] == "true"
    assert "user" not in options


def test_mosquitto_conf_names_the_user_when_started_as_root_and_appends_extra() -> None:
    conf = mosquitto_conf(1883, Path("/srv/mq"), "sys_interval 0", run_as="root")

    assert _mosquitto_options(conf)["user"] == "root"
    assert conf.splitlines()[-1] == "sys_interval 0"


def test_influxdb_conf_binds_every_listener_to_loopback_on_its_own_port() -> None:
    conf = tomllib.loads(influxdb_conf(18086, 18088, Path("/srv/influx")))

    assert conf["bind-address"] == "127.0.0.1:18088"
    assert conf["http"]["bind-address"] == "127.0.0.1:18086"
    assert conf["http"]["unix-socket-enabled"] is False
    assert conf["ifql"]["enabled"] is False
    assert conf["data"]["wal-dir"] == "/srv/influx/wal"
    with pytest.raises(ValueError, match="must differ"):
        influxdb_conf(18086, 18086, Path("/srv/influx"))


@pytest.mark.integration
def test_influxd_reads_the_conf_as_written(tmp_path: Path) -> None:
    # influxd 1.6 silently ignores unknown keys, so a misspelt key would only show here.
    conf_path = tmp_path / "influxdb.conf"
    conf_path.write_text(influxdb_conf(18086, 18088, tmp_path), encoding="utf-8")

    shown = subprocess.run(
        [find_binary("influxd"), "config", "-config", str(conf_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT_S,
    )
    effective = tomllib.loads(shown.stdout)

    assert effective["reporting-enabled"] is False
    assert effective["bind-address"] == "127.0.0.1:18088"
    assert effective["meta"]["dir"] == str(tmp_path / "meta")
    assert effective["data"]["dir"] == str(tmp_path / "data")
    assert effective["data"]["wal-dir"] == str(tmp_path / "wal")
    assert effective["data"]["query-log-enabled"] is False
    assert effective["http"]["bind-address"] == "127.0.0.1:18086"
    assert effective["http"]["log-enabled"] is False
    assert effective["http"]["max-body-size"] == 25_000_000
    assert effective["http"]["unix-socket-enabled"] is False
    assert effective["monitor"]["store-enabled"] is False
    assert effective["subscriber"]["enabled"] is False
    assert effective["ifql"]["enabled"] is False
    for plugin in ("graphite", "collectd", "opentsdb", "udp"):
        assert not any(listener["enabled"] for listener in effective[plugin]), plugin


# --- Mosquitto ---------------------------------------------------------------------------------------


@dataclass
class _Session:
    """What one paho client saw."""

    connack: tuple[bool, Any, Properties | None] | None = None
    subscribed: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    received: list[tuple[str, bytes, int]] = field(default_factory=list)


@contextlib.contextmanager
def _mqtt_session(
    broker: LocalMosquitto, client_id: str, *, clean_start: bool = True, session_expiry_s: int = 0
) -> Iterator[tuple[mqtt.Client, _Session]]:
    """A connected MQTT 5 client; disconnected cleanly on exit."""
    session = _Session()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )

    def on_connect(_c: mqtt.Client, _u: object, flags: Any, reason: Any, properties: Any) -> None:
        session.connack = (flags.session_present, reason, properties)

    def on_subscribe(_c: mqtt.Client, _u: object, _mid: int, _codes: Any, _props: Any) -> None:
        session.subscribed.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        session.received.append((message.topic, message.payload, message.qos))

    def on_disconnect(_c: mqtt.Client, _u: object, _flags: Any, _reason: Any, _props: Any) -> None:
        session.disconnected.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    connect_properties = Properties(PacketTypes.CONNECT)
    connect_properties.SessionExpiryInterval = session_expiry_s
    client.connect(
        broker.host, broker.port, keepalive=30, clean_start=clean_start, properties=connect_properties
    )
    client.loop_start()
    try:
        wait_until(lambda: session.connack is not None, TIMEOUT_S, f"CONNACK for {client_id}")
        assert session.connack is not None
        assert not session.connack[1].is_failure, session.connack[1]
        yield client, session
    finally:
        client.disconnect()
        if session.connack is not None:
            wait_until(session.disconnected.is_set, TIMEOUT_S, f"{client_id} to disconnect")
        client.loop_stop()


def _subscribe(client: mqtt.Client, session: _Session, topic: str) -> None:
    client.subscribe(topic, qos=1)
    wait_until(session.subscribed.is_set, TIMEOUT_S, f"SUBACK for {topic}")


def _publish_qos1(client: mqtt.Client, messages: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    wait_until(lambda: all(info.is_published() for info in infos), TIMEOUT_S, "PUBACKs from the broker")


@pytest.mark.integration
def test_qos1_message_goes_through_the_broker(mosquitto: LocalMosquitto) -> None:
    with (
        _mqtt_session(mosquitto, "subscriber") as (subscriber, inbox),
        _mqtt_session(mosquitto, "publisher") as (publisher, _),
    ):
        _subscribe(subscriber, inbox, "city/streetlight/#")
        _publish_qos1(publisher, [("city/streetlight/SL-1", b'{"lux": 12.5}')])

        wait_until(lambda: inbox.received, TIMEOUT_S, "the message at the subscriber")
        assert inbox.received == [("city/streetlight/SL-1", b'{"lux": 12.5}', 1)]


@pytest.mark.integration
def test_broker_announces_our_limits_to_mqtt5_clients(mosquitto: LocalMosquitto) -> None:
    with _mqtt_session(mosquitto, "ingest") as (_, session):
        assert session.connack is not None
        properties = session.connack[2]
        assert properties is not None
        assert properties.ReceiveMaximum == 1000  # max_inflight_messages
        assert properties.MaximumPacketSize == 1024 * 1024


@pytest.mark.integration
def test_persistent_session_gets_what_was_queued_while_away_across_a_broker_restart(
    mosquitto: LocalMosquitto,
) -> None:
    # More than Mosquitto's default max_queued_messages (1000), which would silently drop the rest.
    sent = [(f"city/bin/WB-{n}", f'{{"fill": {n % 100}}}'.encode()) for n in range(1500)]
    with _mqtt_session(mosquitto, "ingest", clean_start=False, session_expiry_s=3600) as (ingest, inbox):
        _subscribe(ingest, inbox, "city/#")
    with _mqtt_session(mosquitto, "gateway") as (gateway, _):
        _publish_qos1(gateway, sent)

    mosquitto.restart()

    with _mqtt_session(mosquitto, "ingest", clean_start=False, session_expiry_s=3600) as (_, inbox):
        assert inbox.connack is not None
        assert inbox.connack[0], "the broker forgot the ingest's session"
        wait_until(lambda: len(inbox.received) >= len(sent), TIMEOUT_S, f"{len(sent)} queued messages")
        assert [(topic, payload) for topic, payload, _ in inbox.received] == sent


@pytest.mark.integration
def test_broker_comes_back_on_the_same_port_after_a_crash(mosquitto: LocalMosquitto) -> None:
    port = mosquitto.port
    mosquitto.kill()
    assert not mosquitto.running

    mosquitto.start()

    assert mosquitto.port == port
    with _mqtt_session(mosquitto, "after-crash") as (_, session):
        assert session.connack is not None


@pytest.mark.integration
def test_second_broker_on_a_taken_port_is_refused(mosquitto: LocalMosquitto, tmp_path: Path) -> None:
    intruder = LocalMosquitto(tmp_path / "other", mosquitto.port)

    with pytest.raises(LocalServiceError, match="already in use"):
        intruder.start()
    assert not intruder.running


@pytest.mark.integration
def test_broker_that_cannot_start_says_why(tmp_path: Path) -> None:
    broken = LocalMosquitto(tmp_path / "mosquitto", extra_conf="no_such_option 1")

    with pytest.raises(LocalServiceError, match="no_such_option") as raised:
        broken.start()
    assert raised.value.service == "mosquitto"
    assert not broken.running


@pytest.mark.integration
def test_stopped_broker_leaves_no_process_and_frees_its_port(tmp_path: Path) -> None:
    with LocalMosquitto(tmp_path / "mosquitto") as broker:
        assert broker.running

    assert not broker.running
    assert broker.pid is None
    with pytest.raises(ConnectionRefusedError):
        mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2).connect(broker.host, broker.port)


# --- InfluxDB ----------------------------------------------------------------------------------------


def _http() -> httpx.Client:
    # trust_env=False: a local server must not be reached through a proxy from the environment.
    return httpx.Client(trust_env=False, timeout=TIMEOUT_S)


def _influx(url: str, statement: str, db: str | None = None) -> list[list[Any]]:
    """The rows of the first series an InfluxQL statement returns (epoch milliseconds)."""
    params = {"q": statement, "epoch": "ms"} | ({"db": db} if db else {})
    with _http() as client:
        response = client.post(f"{url}/query", params=params)
    response.raise_for_status()
    result = response.json()["results"][0]
    assert "error" not in result, result
    series = result.get("series", [])
    return list(series[0]["values"]) if series else []


def _write_ms(url: str, db: str, lines: str) -> None:
    with _http() as client:
        response = client.post(f"{url}/write", params={"db": db, "precision": "ms"}, content=lines)
    assert response.status_code == 204, response.text


LINES = (
    "streetlight,device=SL-1 lux=12.5,lamp_on=true 1700000000000\n"
    "streetlight,device=SL-1 lux=13.0,lamp_on=true 1700000060000\n"
)
ROWS = [[1700000000000, "SL-1", True, 12.5], [1700000060000, "SL-1", True, 13.0]]
QUERY = 'SELECT "device", "lamp_on", "lux" FROM "streetlight" ORDER BY time'


@pytest.mark.integration
def test_line_protocol_write_is_queryable(influx_db: InfluxTarget) -> None:
    _write_ms(influx_db.url, influx_db.db, LINES)

    assert _influx(influx_db.url, QUERY, influx_db.db) == ROWS


@pytest.mark.integration
def test_influxdb_keeps_its_data_across_a_restart(influxdb_own: LocalInfluxDB) -> None:
    _influx(influxdb_own.url, 'CREATE DATABASE "city"')
    _write_ms(influxdb_own.url, "city", LINES)

    influxdb_own.stop()
    assert not influx_ping(influxdb_own.url)
    influxdb_own.start()

    assert _influx(influxdb_own.url, QUERY, "city") == ROWS


@pytest.mark.integration
def test_influxdb_keeps_acknowledged_writes_after_a_crash(influxdb_own: LocalInfluxDB) -> None:
    _influx(influxdb_own.url, 'CREATE DATABASE "city"')
    _write_ms(influxdb_own.url, "city", LINES)

    influxdb_own.kill()  # no clean shutdown: the WAL is all there is
    influxdb_own.start()

    assert _influx(influxdb_own.url, QUERY, "city") == ROWS


@pytest.mark.integration
def test_two_influxdb_instances_run_side_by_side(
    influxdb_server: LocalInfluxDB, influxdb_own: LocalInfluxDB
) -> None:
    assert influxdb_own.port != influxdb_server.port
    assert influxdb_own.rpc_port != influxdb_server.rpc_port
    assert influx_ping(influxdb_server.url)
    assert influx_ping(influxdb_own.url)
