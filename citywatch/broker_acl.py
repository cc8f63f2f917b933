"""Who may do what on the broker: CityWatch's accounts and roles as Mosquitto dynamic-security data.

The model (pure: values in, JSON-ready dicts out; the adapters in ``broker_accounts`` and ``localstack``
send or write them)::

    account              username              role: may publish               may subscribe
    a device             its device id         cw/v1/dev/{id}/# but .../cmd    cw/v1/dev/{id}/cmd
    a gateway            its gateway id        cw/v1/gw/{id}/# but .../cmd     cw/v1/gw/{id}/cmd
    citywatch-ingest     (service)             -                               cw/v1/# (also shared)
    citywatch-analytics  (service)             cw/v1/alerts/#                  cw/v1/# (also shared)
    citywatch-api        (service)             cw/v1/+/+/cmd/#                 cw/v1/# (also shared)
    citywatch-sim        (simulated city only) cw/v1/dev/#, cw/v1/gw/# but cmd cw/v1/+/+/cmd
    citywatch-admin      (broker admin)        $CONTROL/dynamic-security/#     its responses

Anything not allowed is denied (the plugin's default for publishing and subscribing). Receiving stays
allowed by default: what an account may subscribe to already bounds what it receives.

Mosquitto 2.0's dynamic-security plugin has no ``%u`` substitution in ACL topics (tried on 2.0.11:
``cw/v1/dev/%u/#`` matches nothing), so every device has a role of its own, ``device:{id}``, holding its
own topics. A device id is a single topic level without wildcards (``devices.topics.ID_PATTERN``), so a
role can never grant more than that device's subtree.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from devices import topics

#: The plugin's API: commands go to this topic, answers come back on ``.../response``.
CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = f"{CONTROL_TOPIC}/response"

#: Written into an account's ``textname``: how ``BrokerAccounts`` tells its own accounts from others
#: (a service's or one an operator made by hand), which it refuses to rotate or delete.
DEVICE_TEXT: Final = "citywatch device"
GATEWAY_TEXT: Final = "citywatch gateway"
ACCOUNT_TEXTS: Final = frozenset({DEVICE_TEXT, GATEWAY_TEXT})

# The plugin's own defaults (Mosquitto 2.0), written out so the file says what is in force.
DEFAULT_ACL_ACCESS: Final = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}

# The same count the plugin uses for the accounts it creates itself (2.0.11). PBKDF2 iterations slow
# down guessing a weak password; every password here is 32 random bytes, which no iteration count helps.
HASH_ITERATIONS: Final = 101


@dataclass(frozen=True, slots=True)
class Acl:
    """One ACL entry of a role. ``acltype``: publishClientSend, publishClientReceive, subscribeLiteral,
    subscribePattern, unsubscribeLiteral or unsubscribePattern. A higher priority is checked first."""

    acltype: str
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow, "priority": self.priority}


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    acls: tuple[Acl, ...]
    description: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "rolename": self.name,
            "textname": self.description,
            "acls": [acl.as_json() for acl in self.acls],
        }


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A CityWatch service's own broker account (``username`` also names its role)."""

    service: str
    username: str
    role: Role


def _send(topic: str, *, allow: bool = True, priority: int = 0) -> Acl:
    return Acl("publishClientSend", topic, allow, priority)


def _subscribe(topic: str) -> Acl:
    return Acl("subscribePattern", topic)


#: Everything CityWatch publishes, for the services that read it. Mosquitto 2.0 checks a shared
#: subscription (``$share/group/filter``) against the ACL as written, prefix and all.
_READ_ALL = (_subscribe(f"{topics.ROOT}/#"), _subscribe(f"$share/+/{topics.ROOT}/#"))
# Higher than the allow it overrides: a device never writes a command, not even to itself.
_NO_COMMANDS = 10


def device_role_name(device_id: str) -> str:
    return f"device:{device_id}"


def device_role(device_id: str, *, gateway: bool = False) -> Role:
    """A device's (or gateway's) role: its own subtree, minus the command topic only CityWatch writes."""
    if not topics.ID_PATTERN.fullmatch(device_id):
        raise ValueError(f"{device_id!r} is not a device id (1-64 of A-Z a-z 0-9 _ . -)")
    base = f"{topics.ROOT}/{'gw' if gateway else 'dev'}/{device_id}"
    command = topics.command(device_id, gateway=gateway)
    return Role(
        device_role_name(device_id),
        (
            _send(f"{base}/#"),
            _send(command, allow=False, priority=_NO_COMMANDS),
            Acl("subscribeLiteral", command),
        ),
        f"{'gateway' if gateway else 'device'} {device_id}: its own topics only",
    )


ADMIN = ServiceAccount(
    "admin",
    "citywatch-admin",
    Role(
        "citywatch-admin",
        (
            _send("$CONTROL/dynamic-security/#"),
            _subscribe("$CONTROL/dynamic-security/#"),
            # Allowed by default anyway; kept if an operator makes receiving deny-by-default.
            Acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
        ),
        "issues and revokes device accounts (the dynamic-security API only)",
    ),
)

SERVICES: Final[Mapping[str, ServiceAccount]] = {
    account.service: account
    for account in (
        ServiceAccount(
            "ingest",
            "citywatch-ingest",
            Role("citywatch-ingest", _READ_ALL, "reads telemetry into InfluxDB"),
        ),
        ServiceAccount(
            "analytics",
            "citywatch-analytics",
            Role(
                "citywatch-analytics",
                (*_READ_ALL, _send(f"{topics.ROOT}/alerts/#")),
                "reads telemetry, publishes alerts to the control room",
            ),
        ),
        ServiceAccount(
            "api",
            "citywatch-api",
            Role(
                "citywatch-api",
                (*_READ_ALL, _send(f"{topics.ROOT}/+/+/cmd/#")),
                "reads everything, sends commands to devices and gateways",
            ),
        ),
        ServiceAccount(
            "sim",
            "citywatch-sim",
            # Stands in for the whole field network of the simulated city (every device and gateway over
            # a few connections). It exists only in the broker `citywatch run` starts for the simulation;
            # a real deployment gives each device its own account instead.
            Role(
                "citywatch-sim",
                (
                    _send(f"{topics.ROOT}/dev/#"),
                    _send(f"{topics.ROOT}/gw/#"),
                    _send(f"{topics.ROOT}/+/+/cmd", allow=False, priority=_NO_COMMANDS),
                    _subscribe(f"{topics.ROOT}/+/+/cmd"),
                ),
                "the simulated city's field network (local demo only)",
            ),
        ),
    )
}


def hashed_password(password: str, salt: bytes) -> dict[str, Any]:
    """The plugin's stored form of a password: base64 PBKDF2-HMAC-SHA512 over the raw salt."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": HASH_ITERATIONS,
    }


def with_accounts(
    config: Mapping[str, Any],
    accounts: Iterable[tuple[ServiceAccount, str]],
    salt: Callable[[], bytes],
) -> dict[str, Any]:
    """A copy of the plugin's config file with these accounts (and their roles) set to these passwords;
    every other client, role and group is kept as it was."""
    result = copy.deepcopy(dict(config))
    clients = {c["username"]: c for c in result.get("clients", [])}
    roles = {r["rolename"]: r for r in result.get("roles", [])}
    for account, password in accounts:
        roles[account.role.name] = account.role.as_json()
        clients[account.username] = {
            "username": account.username,
            "textname": f"citywatch {account.service}",
            **hashed_password(password, salt()),
            "roles": [{"rolename": account.role.name}],
        }
    result["clients"] = list(clients.values())
    result["roles"] = list(roles.values())
    result.setdefault("groups", [])
    result.setdefault("defaultACLAccess", dict(DEFAULT_ACL_ACCESS))
    return result
