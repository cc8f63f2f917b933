"""Per-device credentials, enforced by a real authenticated Mosquitto (dynamic-security plugin) and
checked again by the ingest: a device writes only as itself, a revoked one cannot connect."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from citywatch.broker_accounts import (
    AccountConflict,
    AdminLoginRefused,
    BrokerAccounts,
    BrokerUnreachable,
    DeviceCredentials,
    DynsecUnavailable,
    InvalidDeviceId,
    write_accounts_file,
)
from citywatch.broker_acl import ADMIN, SERVICES, device_role
from citywatch.cli import app
from citywatch.localstack import (
    LocalMosquitto,
    LocalServiceError,
    find_binary,
    find_dynsec_plugin,
    free_port,
    mosquitto_conf,
)
from devices import topics
from devices.assets import Asset
from devices.broker import BrokerAddress
from devices.contract import DeviceRef, batch_payload, encode_reading, single_payload
from devices.kinds import DeviceKind
from devices.registry import Registry
from ingest.influx import InfluxTarget, InfluxV1
from ingest.settings import IngestSettings
from ingest.worker import IngestWorker
from tests.conftest import InfluxTarget as DbTarget
from tests.mqtt_tools import count_points
from tests.waiting import wait_until

NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86
REFUSED_LOGIN = {NOT_AUTHORIZED, BAD_CREDENTIALS}  # 2.0.11 answers a wrong password with 0x87


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Session:
    """One MQTT 5 connection as some account, recording what the broker answers and delivers."""

    def __init__(self, broker: LocalMosquitto, username: str | None, password: str | None) -> None:
        self._cond = threading.Condition()
        self.connack: Any = None
        self.disconnected: Any = None
        self.received: list[tuple[str, bytes]] = []
        self._pubacks: dict[int, Any] = {}
        self._subacks: dict[int, list[Any]] = {}
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-{username}-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def accepted(self) -> bool:
        return not self.connack.is_failure

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        reason = self._wait(lambda: self._pubacks.get(info.mid), f"PUBACK on {topic}")
        return int(reason.value)

    def subscribe(self, topic_filter: str) -> bool:
        """Subscribe at QoS 1; True when granted."""
        _, mid = self.client.subscribe(topic_filter, qos=1)
        assert mid is not None
        (code,) = self._wait(lambda: self._subacks.get(mid), f"SUBACK for {topic_filter}")
        return not code.is_failure

    def topics_received(self) -> list[str]:
        with self._cond:
            return [topic for topic, _ in self.received]

    def _wait(self, predicate: Any, what: str) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: predicate() or self.disconnected is not None, 10)
            value = predicate()
            assert value, f"no {what} within 10 s (disconnected: {self.disconnected})"
            return value

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self.connack = reason
            self._cond.notify_all()
        if reason.is_failure:
            self.client.disconnect()  # no reconnect attempts with a refused login

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self.disconnected = reason
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._cond:
            self._pubacks[mid] = reason
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        with self._cond:
            self._subacks[mid] = codes
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.received.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()


def login(broker: LocalMosquitto, credentials: DeviceCredentials) -> Session:
    return Session(broker, credentials.username, credentials.password)


def service_session(broker: LocalMosquitto, service: str) -> Session:
    address = BrokerAddress.from_url(broker.service_url(service))
    return Session(broker, address.username, address.password)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A fresh broker with authentication on, as `citywatch run` starts it."""
    try:
        find_binary("mosquitto")
    except LocalServiceError as error:
        pytest.fail(f"{error} -- integration tests need the real server", pytrace=False)
    with LocalMosquitto(tmp_path / "broker", auth=True) as server:
        yield server


@pytest.fixture
def accounts(broker: LocalMosquitto) -> Iterator[BrokerAccounts]:
    with BrokerAccounts(broker.admin_url) as admin:
        yield admin


@pytest.fixture
def ingest_view(broker: LocalMosquitto) -> Iterator[Session]:
    """What the ingest's account sees of the telemetry (through a shared subscription, as the ingest)."""
    with service_session(broker, "ingest") as session:
        assert session.accepted
        for topic_filter in topics.INGEST_FILTERS:
            assert session.subscribe(f"$share/test/{topic_filter}")
        yield session


# -- the pure model ---------------------------------------------------------------------------------------


@given(st.from_regex(topics.ID_PATTERN, fullmatch=True), st.booleans())
def test_a_device_role_grants_only_its_own_subtree(device_id: str, gateway: bool) -> None:
    own = f"cw/v1/{'gw' if gateway else 'dev'}/{device_id}/"
    for acl in device_role(device_id, gateway=gateway).acls:
        assert acl.topic.startswith(own)
        assert "+" not in acl.topic and "#" not in acl.topic[:-1]
        if acl.topic.endswith("/cmd") and acl.acltype == "publishClientSend":
            assert not acl.allow  # a device never writes a command


@pytest.mark.parametrize("device_id", ["#", "+", "LMP/1", "", "a" * 65, "LMP 1", "$SYS"])
def test_an_id_that_is_not_one_topic_level_gets_no_role(device_id: str) -> None:
    with pytest.raises(ValueError, match="is not a device id"):
        device_role(device_id)


def test_the_authenticated_conf_refuses_anonymous_clients_and_keeps_the_accounts_in_the_data_dir() -> None:
    plugin = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
    lines = mosquitto_conf(1883, Path("/srv/mq"), dynsec_plugin=plugin).splitlines()
    assert "allow_anonymous false" in lines and "allow_anonymous true" not in lines
    assert f"plugin {plugin}" in lines
    assert "plugin_opt_config_file /srv/mq/dynamic-security.json" in lines
    assert "allow_anonymous true" in mosquitto_conf(1883, Path("/srv/mq")).splitlines()  # the default


# -- the broker enforces the ACL --------------------------------------------------------------------------


@pytest.mark.integration
def test_an_issued_device_publishes_its_own_telemetry_and_the_ingest_gets_it(
    broker: LocalMosquitto, accounts: BrokerAccounts, ingest_view: Session
) -> None:
    lamp = accounts.issue("LMP-000001")
    assert lamp.username == "LMP-000001" and len(lamp.password) >= 40
    with login(broker, lamp) as device:
        assert device.accepted
        assert device.publish(topics.telemetry("LMP-000001"), b"reading") == 0
    wait_until(ingest_view.topics_received, 10, "the reading at the ingest")
    assert ingest_view.received == [(topics.telemetry("LMP-000001"), b"reading")]


@pytest.mark.integration
def test_a_device_publishing_on_another_devices_topic_is_refused_and_never_delivered(
    broker: LocalMosquitto, accounts: BrokerAccounts, ingest_view: Session
) -> None:
    lamp = accounts.issue("LMP-000001")
    accounts.issue("LMP-000002")
    with login(broker, lamp) as device:
        assert device.publish(topics.telemetry("LMP-000002"), b"forged") == NOT_AUTHORIZED
        assert device.publish(topics.batch("GW-0001"), b"forged") == NOT_AUTHORIZED
        assert device.publish("cw/v1/alerts/critical", b"forged") == NOT_AUTHORIZED
        # A marker after the forgeries: once it arrives, anything delivered before it would have too.
        assert device.publish(topics.telemetry("LMP-000001"), b"marker") == 0
    wait_until(ingest_view.topics_received, 10, "the marker at the ingest")
    assert ingest_view.received == [(topics.telemetry("LMP-000001"), b"marker")]


@pytest.mark.integration
def test_a_gateway_publishes_only_its_own_batch_and_status(
    broker: LocalMosquitto, accounts: BrokerAccounts, ingest_view: Session
) -> None:
    gateway = accounts.issue("GW-0001", gateway=True)
    accounts.issue("GW-0002", gateway=True)
    with login(broker, gateway) as session:
        assert session.publish(topics.batch("GW-0002"), b"forged") == NOT_AUTHORIZED
        assert session.publish(topics.telemetry("LMP-000001"), b"forged") == NOT_AUTHORIZED
        assert session.publish(topics.command("GW-0001", gateway=True), b"forged") == NOT_AUTHORIZED
        assert session.publish(topics.status("GW-0001", gateway=True), b"online") in (0, 0x10)
        assert session.publish(topics.batch("GW-0001"), b"batch") == 0
    wait_until(ingest_view.topics_received, 10, "the batch at the ingest")
    assert ingest_view.received == [(topics.batch("GW-0001"), b"batch")]


@pytest.mark.integration
def test_a_device_hears_only_its_own_commands_and_cannot_send_any(
    broker: LocalMosquitto, accounts: BrokerAccounts
) -> None:
    lamp = accounts.issue("LMP-000001")
    with login(broker, lamp) as device, service_session(broker, "api") as api:
        assert device.subscribe(topics.command("LMP-000001"))
        assert not device.subscribe(topics.command("LMP-000002"))
        assert not device.subscribe("cw/v1/#")
        assert not device.subscribe(f"$share/x/{topics.INGEST_FILTERS[0]}")
        assert device.publish(topics.command("LMP-000001"), b"dim 50") == NOT_AUTHORIZED
        assert api.publish(topics.command("LMP-000001"), b"dim 30") == 0
        wait_until(device.topics_received, 10, "the command at the device")
        assert device.received == [(topics.command("LMP-000001"), b"dim 30")]


@pytest.mark.integration
def test_anonymous_and_wrong_password_logins_are_refused(
    broker: LocalMosquitto, accounts: BrokerAccounts
) -> None:
    lamp = accounts.issue("LMP-000001")
    with Session(broker, None, None) as anonymous:
        assert anonymous.connack.value in REFUSED_LOGIN
    with Session(broker, lamp.username, lamp.password + "x") as wrong:
        assert wrong.connack.value in REFUSED_LOGIN
    with Session(broker, "LMP-000002", lamp.password) as other_name:
        assert other_name.connack.value in REFUSED_LOGIN


@pytest.mark.integration
def test_a_revoked_device_is_disconnected_and_cannot_connect_again(
    broker: LocalMosquitto, accounts: BrokerAccounts
) -> None:
    lamp = accounts.issue("LMP-000001")
    with login(broker, lamp) as device:
        assert device.accepted
        accounts.revoke("LMP-000001")
        wait_until(lambda: device.disconnected is not None, 10, "the revoked device disconnected")
    assert not accounts.exists("LMP-000001")
    with login(broker, lamp) as again:
        assert again.connack.value in REFUSED_LOGIN
    accounts.revoke("LMP-000001")  # idempotent
    accounts.revoke("LMP-999999")  # never issued


@pytest.mark.integration
def test_issuing_again_rotates_the_password_and_the_old_one_is_refused(
    broker: LocalMosquitto, accounts: BrokerAccounts
) -> None:
    first = accounts.issue("LMP-000001")
    with login(broker, first) as old_session:
        second = accounts.issue("LMP-000001")
        wait_until(lambda: old_session.disconnected is not None, 10, "the old session disconnected")
    assert second.password != first.password
    with login(broker, first) as old:
        assert old.connack.value in REFUSED_LOGIN
    with login(broker, second) as new:
        assert new.accepted
        assert new.publish(topics.telemetry("LMP-000001")) in (0, 0x10)
    # Issued again as a gateway, the same id writes a gateway's topics instead.
    third = accounts.issue("LMP-000001", gateway=True)
    with login(broker, third) as now_gateway:
        assert now_gateway.publish(topics.telemetry("LMP-000001")) == NOT_AUTHORIZED
        assert now_gateway.publish(topics.batch("LMP-000001")) in (0, 0x10)


@pytest.mark.integration
def test_the_services_accounts_can_do_their_job_and_no_more(broker: LocalMosquitto) -> None:
    with service_session(broker, "ingest") as ingest, service_session(broker, "analytics") as analytics:
        assert ingest.accepted and analytics.accepted
        assert ingest.publish(topics.telemetry("LMP-000001")) == NOT_AUTHORIZED
        assert ingest.publish("cw/v1/alerts/critical") == NOT_AUTHORIZED
        assert analytics.publish("cw/v1/alerts/critical") in (0, 0x10)
        assert analytics.publish(topics.command("LMP-000001")) == NOT_AUTHORIZED
    with service_session(broker, "sim") as sim:
        assert sim.publish(topics.batch("GW-0001")) in (0, 0x10)
        assert sim.publish(topics.command("LMP-000001")) == NOT_AUTHORIZED


@pytest.mark.integration
def test_the_admin_api_refuses_what_it_cannot_do(
    broker: LocalMosquitto, accounts: BrokerAccounts, mosquitto: LocalMosquitto
) -> None:
    with pytest.raises(AccountConflict):
        accounts.issue("citywatch-ingest")  # a service's account is not a device's to rotate
    with pytest.raises(AccountConflict):
        accounts.revoke("citywatch-admin")
    with service_session(broker, "ingest") as ingest:
        assert ingest.accepted  # untouched
    with pytest.raises(InvalidDeviceId):
        accounts.issue("cw/v1/#")
    admin = BrokerAddress.from_url(broker.admin_url)
    with pytest.raises(AdminLoginRefused):
        BrokerAccounts(f"mqtt://{admin.username}:wrong@{broker.host}:{broker.port}").open()
    with pytest.raises(AdminLoginRefused):
        BrokerAccounts(broker.service_url("api")).open()  # an account that may not use the API
    no_plugin = BrokerAccounts(f"mqtt://someone:pw@{mosquitto.host}:{mosquitto.port}", timeout_s=1)
    with no_plugin, pytest.raises(DynsecUnavailable):
        no_plugin.exists("LMP-000001")  # the anonymous broker of the fixtures has no plugin
    with pytest.raises(BrokerUnreachable):
        BrokerAccounts(f"mqtt://a:b@127.0.0.1:{free_port()}", timeout_s=2).open()


@pytest.mark.integration
def test_passwords_and_issued_accounts_survive_a_restart(tmp_path: Path) -> None:
    with LocalMosquitto(tmp_path / "mosquitto", auth=True) as broker:
        ingest_url = broker.service_url("ingest")
        with BrokerAccounts(broker.admin_url) as admin:
            lamp = admin.issue("LMP-000001")
        broker.restart()
        assert broker.service_url("ingest") == ingest_url
        with login(broker, lamp) as device:
            assert device.accepted
    again = LocalMosquitto(tmp_path / "mosquitto", broker.port, auth=True)
    assert again.service_url("ingest") == ingest_url  # a new object reads the same file
    mode = stat.S_IMODE(broker.credentials_path.stat().st_mode)
    assert mode == 0o600
    stored = json.loads(broker.credentials_path.read_text())
    assert stored["accounts"]["ingest"]["url"] == ingest_url


def test_init_config_keeps_issued_devices_and_resets_service_passwords(tmp_path: Path) -> None:
    path = tmp_path / "dynamic-security.json"
    write_accounts_file(path, [(ADMIN, "one"), (SERVICES["ingest"], "two")])
    config = json.loads(path.read_text())
    config["clients"].append({"username": "LMP-1", "textname": "citywatch device", "roles": []})
    path.write_text(json.dumps(config))
    write_accounts_file(path, [(ADMIN, "three")])
    after = json.loads(path.read_text())
    assert sorted(c["username"] for c in after["clients"]) == ["LMP-1", "citywatch-admin", "citywatch-ingest"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert after["defaultACLAccess"]["publishClientSend"] is False


# -- the ingest checks again ------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_ingest_rejects_another_devices_reading_sent_on_a_devices_own_topic(
    broker: LocalMosquitto, accounts: BrokerAccounts, influx_db: DbTarget, tmp_path: Path
) -> None:
    directory = {
        "LMP-000001": DeviceRef("LMP-000001", DeviceKind.LAMP, "d1", "GW-0001"),
        "LMP-000002": DeviceRef("LMP-000002", DeviceKind.LAMP, "d1", "GW-0001"),
        "LMP-000100": DeviceRef("LMP-000100", DeviceKind.LAMP, "d2", "GW-0002"),
    }
    settings = IngestSettings(client_id="ingest-auth", retry_budget_s=0.5, batch_max_age_s=0.05)
    worker = IngestWorker(
        settings,
        BrokerAddress.from_url(broker.service_url("ingest")),
        InfluxV1(InfluxTarget(influx_db.url, influx_db.db, timeout_s=2.0)),
        lambda: directory,
        tmp_path / "var",
    )
    lamp = accounts.issue("LMP-000001")
    gateway = accounts.issue("GW-0001", gateway=True)
    ts = now_ms()
    with worker:
        wait_until(worker.connected.is_set, 10, "the ingest connected with its own account")
        with login(broker, lamp) as device, login(broker, gateway) as gw:
            # The broker lets each write its own topic; what the payload claims is the ingest's to judge.
            forged = single_payload("LMP-000002", ts, 1, {"active_power": 1.0})
            assert device.publish(topics.telemetry("LMP-000001"), forged) == 0
            readings = [
                encode_reading("LMP-000001", ts, 2, {"active_power": 2.0}),
                encode_reading("LMP-000100", ts, 2, {"active_power": 3.0}),  # GW-0002's lamp
            ]
            assert gw.publish(topics.batch("GW-0001"), batch_payload("GW-0001", readings)) == 0
        wait_until(
            lambda: set(worker.dead_letters.counts()) >= {"device_topic_mismatch", "not_gateway_device"},
            20,
            "both rejections recorded",
        )
        wait_until(lambda: count_points(influx_db.url, influx_db.db) >= 1, 20, "the gateway's own reading")
        letters = {letter.reason: letter for letter in worker.dead_letters.list(limit=10)}
        assert letters["device_topic_mismatch"].device == "LMP-000002"
        assert "LMP-000002" in letters["device_topic_mismatch"].detail
        assert letters["not_gateway_device"].device == "LMP-000100"
        assert "GW-0002" in letters["not_gateway_device"].detail
        snapshot = worker.metrics.snapshot()
        assert snapshot.rejected_by_reason["device_topic_mismatch"] == 1
        assert snapshot.rejected_by_reason["not_gateway_device"] == 1
    assert count_points(influx_db.url, influx_db.db) == 1


# -- decommissioning --------------------------------------------------------------------------------------


def _registry_with(url: str, *device_ids: str) -> None:
    with Registry(url) as registry:
        registry.upsert(
            Asset(
                id=d, kind="lamp", district="d1", road_class="branch", gateway="GW-0001", lat=30.5, lon=114.3
            )
            for d in device_ids
        )


@pytest.mark.integration
def test_decommission_revokes_the_account_of_the_running_local_broker_and_takes_the_lamp_out_of_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var = tmp_path / "var"
    registry_url = f"sqlite:///{var / 'registry.db'}"
    monkeypatch.setenv("CITYWATCH_VAR_DIR", str(var))
    for name in ("CITYWATCH_MQTT_URL", "CITYWATCH_MQTT_ADMIN_URL", "CITYWATCH_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    var.mkdir()
    _registry_with(registry_url, "LMP-000001", "LMP-000002")
    runner = CliRunner()
    # The broker `citywatch run` starts, running.
    with LocalMosquitto(var / "mosquitto", auth=True) as broker:
        with BrokerAccounts(broker.admin_url) as admin:
            lamp = admin.issue("LMP-000001")
            other = admin.issue("LMP-000002")
        with login(broker, lamp) as device:
            result = runner.invoke(app, ["devices", "decommission", "LMP-000001"])
            assert result.exit_code == 0, result.output
            assert "LMP-000001: broker account revoked, out of service" in result.output
            wait_until(lambda: device.disconnected is not None, 10, "the device disconnected")
        with login(broker, lamp) as again:
            assert again.connack.value in REFUSED_LOGIN
        with login(broker, other) as untouched:
            assert untouched.accepted
    with Registry(registry_url) as registry:
        lamp_asset = registry.get("LMP-000001")
        assert lamp_asset is not None and not lamp_asset.in_service
        assert "LMP-000001" not in registry.directory()  # the ingest no longer takes its readings
        assert "LMP-000002" in registry.directory()

    # Not running: the broker is started for the moment, and the revocation is kept.
    result = runner.invoke(app, ["devices", "decommission", "LMP-000002"])
    assert result.exit_code == 0, result.output
    with LocalMosquitto(var / "mosquitto", auth=True) as broker, login(broker, other) as gone:
        assert gone.connack.value in REFUSED_LOGIN

    unknown = runner.invoke(app, ["devices", "decommission", "LMP-404404"])
    assert unknown.exit_code == 1
    assert "neither in the registry nor on the broker" in unknown.output


@pytest.mark.integration
def test_decommission_uses_the_configured_admin_of_an_external_broker(
    broker: LocalMosquitto, accounts: BrokerAccounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWATCH_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CITYWATCH_MQTT_URL", broker.service_url("ingest"))
    monkeypatch.setenv("CITYWATCH_MQTT_ADMIN_URL", broker.admin_url)
    monkeypatch.delenv("CITYWATCH_REGISTRY_URL", raising=False)
    accounts.issue("GW-0009", gateway=True)
    result = CliRunner().invoke(app, ["devices", "decommission", "GW-0009"])
    assert result.exit_code == 0, result.output
    assert "GW-0009: broker account revoked, not in the registry" in result.output
    assert not accounts.exists("GW-0009")
    monkeypatch.delenv("CITYWATCH_MQTT_ADMIN_URL")
    refused = CliRunner().invoke(app, ["devices", "decommission", "GW-0009"])
    assert refused.exit_code == 1 and "CITYWATCH_MQTT_ADMIN_URL" in refused.output


# -- the compose stack's broker ---------------------------------------------------------------------------

DEPLOY = Path(__file__).parent.parent / "deploy" / "mosquitto"


@pytest.fixture
def compose_broker(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """deploy/mosquitto/mosquitto.conf on the real broker, its paths moved under tmp_path and its listeners
    to free loopback ports, initialised as the compose stack's init step does; (plain, TLS, ca.crt)."""
    for binary in ("openssl", "mosquitto"):
        if shutil.which(binary, path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None:
            pytest.fail(f"{binary} is needed to test the compose broker config", pytrace=False)
    scripts = tmp_path / "deploy"
    scripts.mkdir()
    shutil.copy(DEPLOY / "make-dev-certs.sh", scripts)
    subprocess.run(["sh", str(scripts / "make-dev-certs.sh"), "localhost"], check=True, capture_output=True)
    certs, data = scripts / "certs", tmp_path / "data"
    data.mkdir()
    write_accounts_file(
        data / "dynamic-security.json", [(ADMIN, "admin-pw"), (SERVICES["ingest"], "ingest-pw")]
    )
    plain, tls = free_port(), free_port()
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf = conf.replace("/usr/lib/mosquitto_dynamic_security.so", str(find_dynsec_plugin()))
    conf = conf.replace("/mosquitto/certs/", f"{certs}/").replace("/mosquitto/data/", f"{data}/")
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {plain} 127.0.0.1")
    conf = conf.replace("listener 8883 0.0.0.0", f"listener {tls} 127.0.0.1")
    settings = [line for line in conf.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "/mosquitto/" in line or "0.0.0.0" in line]
    if os.geteuid() == 0:
        conf += "user root\n"  # else it drops to "mosquitto", which cannot read tmp_path
    (tmp_path / "mosquitto.conf").write_text(conf)
    with (tmp_path / "console.log").open("wb") as console:
        proc = subprocess.Popen(
            [find_binary("mosquitto"), "-c", str(tmp_path / "mosquitto.conf")],
            stdout=console,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: proc.poll() is not None or _listening(tls), 10, "the compose broker listening")
        assert proc.poll() is None, (tmp_path / "console.log").read_text()
        yield plain, tls, certs / "ca.crt"
    finally:
        proc.terminate()
        proc.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.integration
def test_the_compose_broker_config_serves_devices_over_tls_with_their_own_accounts(
    compose_broker: tuple[int, int, Path],
) -> None:
    plain, tls, ca = compose_broker
    with BrokerAccounts(f"mqtts://citywatch-admin:admin-pw@localhost:{tls}", ca_certs=str(ca)) as admin:
        lamp = admin.issue("LMP-000001")
    with BrokerAccounts(f"mqtt://citywatch-admin:admin-pw@127.0.0.1:{plain}") as admin:
        assert admin.exists("LMP-000001")  # the services' plain listener, same accounts

    def connack(port: int, username: str | None, password: str | None, *, tls_ca: Path | None) -> Any:
        answered: list[Any] = []
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username is not None:
            client.username_pw_set(username, password)
        if tls_ca is not None:
            client.tls_set(ca_certs=str(tls_ca))
        client.on_connect = lambda _c, _u, _f, reason, _p: answered.append(reason)
        client.connect("localhost", port)
        client.loop_start()
        try:
            return wait_until(lambda: answered, 10, "CONNACK")[0]
        finally:
            client.disconnect()
            client.loop_stop()

    assert not connack(tls, lamp.username, lamp.password, tls_ca=ca).is_failure
    assert connack(tls, None, None, tls_ca=ca).value in REFUSED_LOGIN
    assert connack(plain, lamp.username, "wrong", tls_ca=None).value in REFUSED_LOGIN
