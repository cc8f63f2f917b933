"""Device accounts on the broker: issue, rotate and revoke them through Mosquitto's dynamic-security plugin.

``BrokerAccounts`` connects as the broker's admin (``mqtt://citywatch-admin:pw@host:port``) and sends the
plugin's JSON commands on ``$CONTROL/dynamic-security/v1``; the same code serves the broker
``citywatch run`` starts and one in another container. Who may do what is ``citywatch.broker_acl``.

``python -m citywatch.broker_accounts init-config FILE`` writes the admin and service accounts into the
plugin's config file before the broker starts (the compose stack's init step; see deploy/mosquitto).

Exceptions::

    BrokerAccountsError
     ├── BrokerUnreachable    no TCP connection, no CONNACK within the timeout, or the connection dropped
     ├── AdminLoginRefused    the broker refused the admin's credentials, or the account may not use
     │                        the dynamic-security API
     ├── DynsecUnavailable    nothing answers on $CONTROL/dynamic-security/v1: the plugin is not loaded
     ├── AccountConflict      the username belongs to an account that is not a CityWatch device's
     ├── InvalidDeviceId      (also a ValueError) not an id of the topic scheme
     └── CommandRejected      the plugin answered a command with an error (``command``, ``error``)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic_settings import BaseSettings, SettingsConfigDict

from citywatch.broker_acl import (
    ACCOUNT_TEXTS,
    ADMIN,
    CONTROL_TOPIC,
    DEVICE_TEXT,
    GATEWAY_TEXT,
    RESPONSE_TOPIC,
    SERVICES,
    ServiceAccount,
    device_role,
    device_role_name,
    with_accounts,
)
from devices import topics
from devices.broker import BrokerAddress, BrokerUrlError

log = logging.getLogger(__name__)

#: Bytes of randomness in a generated password (token_urlsafe: 43 URL-safe characters).
PASSWORD_BYTES = 32


class BrokerAccountsError(Exception):
    """Root of the errors of broker account management."""


class BrokerUnreachable(BrokerAccountsError):
    """The broker did not accept a connection or did not answer in time."""


class AdminLoginRefused(BrokerAccountsError):
    """The broker refused the admin login, or the admin may not use the dynamic-security API."""


class DynsecUnavailable(BrokerAccountsError):
    """Nothing answered a command: the broker runs without the dynamic-security plugin."""


class AccountConflict(BrokerAccountsError):
    """The username is taken by an account that is not a CityWatch device's (a service, a person)."""


class InvalidDeviceId(BrokerAccountsError, ValueError):
    """Not a device or gateway id of the topic scheme (a single topic level, no wildcards)."""


class CommandRejected(BrokerAccountsError):
    """The plugin refused a command."""

    def __init__(self, command: str, error: str, username: str | None = None) -> None:
        self.command = command
        self.error = error
        self.username = username
        super().__init__(f"{command}{f' {username}' if username else ''}: {error}")


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    username: str  # the device id (ACLs key on it)
    password: str  # generated, strong (secrets.token_urlsafe)


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _checked_id(device_id: str) -> str:
    if not topics.ID_PATTERN.fullmatch(device_id):
        raise InvalidDeviceId(f"{device_id!r} is not a device id (1-64 of A-Z a-z 0-9 _ . -, no wildcards)")
    return device_id


class BrokerAccounts:
    """The broker's admin session: issue, rotate and revoke device accounts. A context manager."""

    def __init__(self, admin_url: str, *, timeout_s: float = 10.0, ca_certs: str | None = None) -> None:
        """``admin_url``: mqtt://admin:pw@host:port (mqtts:// for TLS, verified against ``ca_certs`` or
        the system's CAs). ``timeout_s`` bounds every wait: connecting, subscribing, each answer."""
        try:
            self.address = BrokerAddress.from_url(admin_url)
        except BrokerUrlError as exc:
            raise BrokerAccountsError(f"admin URL: {exc}") from exc
        if self.address.username is None:
            raise AdminLoginRefused(f"the admin URL for {self.address} names no user")
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._connack: Any = None
        self._suback: list[Any] | None = None
        self._lost: str | None = None
        self._answers: dict[str, list[dict[str, Any]] | None] = {}
        self._refused: dict[int, str] = {}  # mid -> PUBACK reason, for refused commands
        # A client id of its own: two admin sessions at once (a tool and a CLI) must not take over each other.
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"citywatch-accounts-{secrets.token_hex(6)}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set(ca_certs=ca_certs)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self._client = client

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect as the admin and subscribe to the plugin's answers."""
        try:
            self._client.connect(self.address.host, self.address.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise BrokerUnreachable(f"cannot connect to {self.address}: {exc}") from exc
        self._client.loop_start()
        try:
            self._wait(lambda: self._connack is not None, "no CONNACK", BrokerUnreachable)
            if self._connack.is_failure:
                raise AdminLoginRefused(f"{self.address} refused {self.address.username}: {self._connack}")
            self._client.subscribe(RESPONSE_TOPIC, qos=1)
            self._wait(lambda: self._suback is not None, "no SUBACK", BrokerUnreachable)
            assert self._suback is not None
            if any(code.is_failure for code in self._suback):
                raise AdminLoginRefused(
                    f"{self.address.username} may not use the dynamic-security API on {self.address}"
                )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._cond:
            self._lost = self._lost or "closed"
            self._cond.notify_all()
        self._client.disconnect()
        self._client.loop_stop()

    # -- device accounts --------------------------------------------------------------------------
    def issue(self, device_id: str, *, gateway: bool = False) -> DeviceCredentials:
        """Create the device's account, or give an existing one a new password (the old one stops
        working and connected sessions are disconnected). Its role follows ``gateway``."""
        client, role_exists = self._lookup(_checked_id(device_id))
        role = device_role(device_id, gateway=gateway)
        password = new_password()
        account = {
            "username": device_id,
            "password": password,
            "textname": GATEWAY_TEXT if gateway else DEVICE_TEXT,
            "roles": [{"rolename": role.name}],
        }
        self._run(
            {"command": "modifyRole" if role_exists else "createRole", **role.as_json()},
            {"command": "modifyClient" if client is not None else "createClient", **account},
        )
        log.info("%s %s account for %s", "rotated" if client else "created", account["textname"], device_id)
        return DeviceCredentials(device_id, password)

    def revoke(self, device_id: str) -> None:
        """Delete the device's account and role; its connected sessions are disconnected. Idempotent."""
        client, role_exists = self._lookup(_checked_id(device_id))
        commands = []
        if client is not None:
            commands.append({"command": "deleteClient", "username": device_id})
        if role_exists:
            commands.append({"command": "deleteRole", "rolename": device_role_name(device_id)})
        if commands:
            self._run(*commands)
            log.info("revoked the broker account of %s", device_id)

    def exists(self, device_id: str) -> bool:
        """True when the broker has an account of this username (a device's or any other)."""
        (answer,) = self._send({"command": "getClient", "username": _checked_id(device_id)})
        return _found(answer, "Client not found")

    def _lookup(self, device_id: str) -> tuple[dict[str, Any] | None, bool]:
        """The device's account (None: none) and whether its role exists; refuses other accounts."""
        client_answer, role_answer = self._send(
            {"command": "getClient", "username": device_id},
            {"command": "getRole", "rolename": device_role_name(device_id)},
        )
        client = client_answer["data"]["client"] if _found(client_answer, "Client not found") else None
        if client is not None and client.get("textname") not in ACCOUNT_TEXTS:
            raise AccountConflict(f"{device_id!r} is another kind of account on {self.address}; left alone")
        return client, _found(role_answer, "Role not found")

    # -- the plugin's API -------------------------------------------------------------------------
    def _run(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """Send commands in one message; raise on the first one the plugin refused."""
        answers = self._send(*commands)
        for command, answer in zip(commands, answers, strict=True):
            if "error" in answer:
                name = command.get("username") or command.get("rolename")
                raise CommandRejected(str(command["command"]), str(answer["error"]), name)
        return answers

    def _send(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """Send commands in one message and return the plugin's answer to each, in order."""
        # The answers to every admin session arrive on the one response topic: ours carry our tag.
        tag = secrets.token_hex(8)
        body = {"commands": [{**command, "correlationData": tag} for command in commands]}
        with self._cond:
            if self._lost is not None:
                raise BrokerUnreachable(f"the admin session to {self.address} is {self._lost}")
            self._answers[tag] = None
        try:
            info = self._client.publish(CONTROL_TOPIC, json.dumps(body), qos=1)
            self._wait(
                lambda: self._answers[tag] is not None or info.mid in self._refused,
                "no answer from the dynamic-security plugin",
                DynsecUnavailable,
                " (is mosquitto_dynamic_security.so loaded?)",
            )
            with self._cond:
                answers, refused = self._answers[tag], self._refused.pop(info.mid, None)
        finally:
            with self._cond:
                self._answers.pop(tag, None)
        if refused is not None:
            raise AdminLoginRefused(f"{self.address} refused {self.address.username}'s command: {refused}")
        assert answers is not None
        if len(answers) != len(commands):
            raise BrokerAccountsError(f"{len(answers)} answers to {len(commands)} commands")
        return answers

    def _wait(
        self, done: Callable[[], bool], what: str, error: type[BrokerAccountsError], hint: str = ""
    ) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: done() or self._lost is not None, self.timeout_s):
                raise error(f"{self.address}: {what} within {self.timeout_s:g} s{hint}")
            if not done():
                raise BrokerUnreachable(f"{self.address}: connection {self._lost}")

    # -- paho callbacks (its network thread) ------------------------------------------------------
    def _on_connect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._cond:
            self._connack = reason
            self._cond.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[Any], _props: Any) -> None:
        with self._cond:
            self._suback = list(codes)
            self._cond.notify_all()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            with self._cond:
                self._refused[mid] = str(reason)
                self._cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            answers = json.loads(msg.payload)["responses"]
            tag = answers[0].get("correlationData")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            log.warning("unreadable answer on %s: %.200r", msg.topic, msg.payload)
            return
        with self._cond:
            if tag in self._answers:
                self._answers[tag] = answers
                self._cond.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._cond:
            self._lost = self._lost or f"lost ({reason})"
            self._cond.notify_all()
        # One session per connection: a reconnect would come back without the subscription.
        self._client.disconnect()


def _found(answer: Mapping[str, Any], missing: str) -> bool:
    error = answer.get("error")
    if error is None:
        return True
    if error == missing:
        return False
    raise CommandRejected(str(answer.get("command")), str(error))


# -- the plugin's config file, before the broker starts ---------------------------------------------------


def write_accounts_file(
    path: Path, accounts: Iterable[tuple[ServiceAccount, str]], *, owner: tuple[int, int] | None = None
) -> None:
    """Set these accounts (and their roles) in the plugin's config file, keeping everything else in it
    (the device accounts issued since). Only while the broker is stopped: it reads the file at start
    and overwrites it on every change. Written whole (temporary file, then rename), mode 0600."""
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged = with_accounts(config, accounts, lambda: secrets.token_bytes(12))
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(fd, 0o600)  # the file existed with a laxer mode
        if owner is not None:
            os.fchown(fd, *owner)
        json.dump(merged, file, indent=1)
        file.flush()
        os.fsync(fd)
    os.replace(temporary, path)


class InitSettings(BaseSettings):
    """The passwords of the accounts ``init-config`` writes (prefix ``CITYWATCH_MQTT_PASSWORD_``).
    A service without a password gets no account."""

    model_config = SettingsConfigDict(env_prefix="CITYWATCH_MQTT_PASSWORD_", extra="forbid")

    admin: str
    ingest: str | None = None
    analytics: str | None = None
    api: str | None = None
    sim: str | None = None  # only for a demo with the simulated city

    def accounts(self) -> list[tuple[ServiceAccount, str]]:
        chosen = [(ADMIN, self.admin)]
        for service, account in SERVICES.items():
            password = getattr(self, service)
            if password:
                chosen.append((account, password))
        return chosen


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m citywatch.broker_accounts")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init-config", help="write the admin and service accounts into FILE")
    init.add_argument("file", type=Path, help="the plugin's config (plugin_opt_config_file)")
    init.add_argument("--owner", help="UID:GID to give the file (the broker's user)")
    args = parser.parse_args(argv)
    owner = None
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        owner = (int(uid), int(gid or uid))
    settings = InitSettings()  # the admin password comes from the environment
    accounts = settings.accounts()
    write_accounts_file(args.file, accounts, owner=owner)
    print(f"{args.file}: accounts {', '.join(account.username for account, _ in accounts)}")


if __name__ == "__main__":
    main()
