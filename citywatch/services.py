"""Composition root: build the services from settings, choosing the real adapters."""

from __future__ import annotations

from collections.abc import Mapping

from citywatch.settings import CommonSettings
from devices.broker import BrokerAddress
from devices.contract import DeviceRef
from devices.registry import Registry
from ingest.influx import InfluxTarget, InfluxV1
from ingest.settings import IngestSettings
from ingest.worker import IngestWorker


def influx_target(common: CommonSettings, url: str) -> InfluxTarget:
    return InfluxTarget(
        url=url,
        db=common.influx_db,
        user=common.influx_user,
        password=common.influx_password,
        token=common.influx_token,
    )


def registry_directory(common: CommonSettings) -> Mapping[str, DeviceRef]:
    with Registry(common.registry_sqlalchemy_url()) as registry:
        return registry.directory()


def build_ingest_worker(
    common: CommonSettings, settings: IngestSettings, mqtt_url: str, influx_url: str
) -> IngestWorker:
    """An ingest worker (not started) reading its device directory from the asset registry."""
    return IngestWorker(
        settings,
        BrokerAddress.from_url(mqtt_url),
        InfluxV1(influx_target(common, influx_url)),
        lambda: registry_directory(common),
        common.var_dir,
    )
