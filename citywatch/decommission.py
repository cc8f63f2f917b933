"""Decommissioning a device: its broker account is revoked, its asset marked out of service.

The broker is the one ``CITYWATCH_MQTT_ADMIN_URL`` names, else the one ``citywatch run`` starts under
``var/``: reached where it last started, or, when it is not running, started for the moment (the
revocation must land in its accounts file, which only the broker itself writes safely).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from citywatch.broker_accounts import BrokerAccounts, BrokerAccountsError, BrokerUnreachable
from citywatch.localstack import LocalMosquitto
from citywatch.settings import CommonSettings
from devices.registry import Registry

log = logging.getLogger(__name__)

#: How long to wait for a broker that may not be running.
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Decommissioned:
    device_id: str
    had_account: bool  # the broker had an account of this id (now revoked)
    in_registry: bool  # the registry has the asset (now out of service)


def decommission(common: CommonSettings, registry: Registry, device_id: str) -> Decommissioned:
    """Revoke the device's broker account (disconnecting it), then mark its asset out of service.

    The account goes first: a device still able to connect is the risk; an asset left in service by a
    failure after that is fixed by running this again.
    """
    asset = registry.get(device_id)
    had_account = revoke_account(common, device_id)
    if asset is not None and asset.in_service:
        registry.upsert([dataclasses.replace(asset, in_service=False)])
    log.info("decommissioned %s (account: %s, asset: %s)", device_id, had_account, asset is not None)
    return Decommissioned(device_id, had_account, asset is not None)


def revoke_account(common: CommonSettings, device_id: str) -> bool:
    """Revoke ``device_id``'s broker account; True when there was one."""
    if common.mqtt_admin_url is not None:
        return _revoke(common.mqtt_admin_url, device_id)
    if common.mqtt_url is not None:
        raise BrokerAccountsError(
            "CITYWATCH_MQTT_URL names a broker CityWatch does not start: "
            "set CITYWATCH_MQTT_ADMIN_URL to its admin account"
        )
    broker = LocalMosquitto(common.var_dir / "mosquitto", common.local_mqtt_port, auth=True)
    previous = broker.previous_admin_url()
    if previous is None:
        return False  # the local broker never ran with accounts: none to revoke
    try:
        return _revoke(previous, device_id, PROBE_TIMEOUT_S)
    except BrokerUnreachable:
        log.info("the local broker is not running; starting it to revoke %s", device_id)
    with broker:
        return _revoke(broker.admin_url, device_id)


def _revoke(admin_url: str, device_id: str, timeout_s: float = 10.0) -> bool:
    with BrokerAccounts(admin_url, timeout_s=timeout_s) as accounts:
        existed = accounts.exists(device_id)
        accounts.revoke(device_id)
    return existed
