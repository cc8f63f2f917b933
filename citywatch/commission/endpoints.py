"""Where the broker, its admin account and InfluxDB are: configured, or the ones `citywatch run` started.

The technician runs ``citywatch commission`` beside ``citywatch run`` (or on a laptop with the settings
of the city's servers). Configured URLs win; otherwise the local services under ``<var>`` are found
where they last started, as ``citywatch devices decommission`` and ``citywatch report`` find them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from citywatch.commission import ServiceUnavailable
from citywatch.commission.settings import CommissionSettings
from citywatch.localstack import LocalMosquitto, influx_ping
from citywatch.settings import CommonSettings
from devices.broker import BrokerAddress, BrokerUrlError

_RUN_FIRST = "start `citywatch run` on this machine first"


@dataclass(frozen=True, slots=True)
class Endpoints:
    admin_url: str  # with the admin's credentials: never printed
    device_broker_url: str  # written into devices: no credentials
    influx_url: str


def find_endpoints(common: CommonSettings, settings: CommissionSettings) -> Endpoints:
    admin_url = common.mqtt_admin_url
    if admin_url is None:
        if common.mqtt_url is not None:
            raise ServiceUnavailable(
                "CITYWATCH_MQTT_URL names a broker CityWatch does not start, and no admin account is set",
                hint="set CITYWATCH_MQTT_ADMIN_URL to its admin account (it issues the device accounts)",
            )
        broker = LocalMosquitto(common.var_dir / "mosquitto", common.local_mqtt_port, auth=True)
        admin_url = broker.previous_admin_url()
        if admin_url is None:
            raise ServiceUnavailable(
                f"no broker with device accounts under {common.var_dir / 'mosquitto'}", hint=_RUN_FIRST
            )
    device_url = settings.device_broker_url or common.mqtt_url or admin_url
    try:
        device_url = str(BrokerAddress.from_url(device_url))  # never the admin's (or anyone's) password
    except BrokerUrlError as exc:
        raise ServiceUnavailable(f"the broker URL for devices is not usable: {exc}") from exc
    return Endpoints(admin_url, device_url, _influx_url(common))


def _influx_url(common: CommonSettings) -> str:
    if common.influx_url:
        return common.influx_url
    conf = common.var_dir / "influxdb" / "influxdb.conf"
    try:
        url = f"http://{tomllib.loads(conf.read_text(encoding='utf-8'))['http']['bind-address']}"
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ServiceUnavailable(
            f"no InfluxDB configured and none under {conf.parent}", hint=_RUN_FIRST
        ) from exc
    if not influx_ping(url):
        raise ServiceUnavailable(f"the local InfluxDB ({url}) does not answer", hint=_RUN_FIRST)
    return url
