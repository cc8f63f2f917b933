"""Composition root: build the services from settings, choosing the real adapters."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from analytics.assembly import build_assembly
from analytics.settings import AnalyticsSettings
from analytics.topology import Topology, build_topology
from analytics.worker import AnalyticsWorker
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


def analytics_inputs(
    common: CommonSettings, settings: AnalyticsSettings
) -> tuple[Topology, dict[str, DeviceRef]]:
    """The partition's dense topology and its decoder directory, from the asset registry."""
    districts = settings.districts or None
    with Registry(common.registry_sqlalchemy_url()) as registry:
        with contextlib.closing(registry.iter_assets()) as assets:
            topology = build_topology(assets, districts=districts)
        directory = registry.directory()
    if districts is not None:
        wanted = frozenset(districts)
        directory = {k: ref for k, ref in directory.items() if ref.district in wanted}
    return topology, directory


def build_analytics_worker(
    common: CommonSettings, settings: AnalyticsSettings, mqtt_url: str, influx_url: str
) -> AnalyticsWorker:
    """An analytics worker (not started) for the partition ``settings`` names."""
    topology, directory = analytics_inputs(common, settings)
    assembly = build_assembly(topology, settings)
    influx = InfluxV1(influx_target(common, influx_url))
    influx.create_database()
    return AnalyticsWorker(
        settings,
        BrokerAddress.from_url(mqtt_url),
        influx,
        assembly.engine,
        directory,
        gateway_sink=assembly.comm,
    )
