"""Composition root: build the services from settings, choosing the real adapters."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from analytics.alerts import DeliveryError
from analytics.alerts.notify import AppriseCourier, MqttCourier, OutboxSender
from analytics.alerts.policy import AlertPolicy, PolicyConfig
from analytics.alerts.routing import Locator, TopologyLocator
from analytics.alerts.service import AlertService, load_contacts
from analytics.alerts.settings import AlertSettings
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from analytics.alerts.store import AlertStore
from analytics.assembly import build_assembly
from analytics.findings import RuleInfo
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

if TYPE_CHECKING:  # the API's modules load FastAPI: only `citywatch api` and `citywatch run` need them
    from api.commanding.service import CommandDesk, FindingSink
    from api.commanding.settings import CommandSettings
    from api.deps import ApiDeps
    from api.settings import ApiSettings

log = logging.getLogger(__name__)


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


def registry_device(common: CommonSettings, device_id: str) -> DeviceRef | None:
    with Registry(common.registry_sqlalchemy_url()) as registry:
        return registry.device_ref(device_id)


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
        lambda device_id: registry_device(common, device_id),
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
    common: CommonSettings,
    settings: AnalyticsSettings,
    mqtt_url: str,
    influx_url: str,
    alerts: AlertSettings | None = None,
) -> AnalyticsWorker:
    """An analytics worker (not started) for the partition ``settings`` names, with its alert service
    when ``alerts`` is given."""
    topology, directory = analytics_inputs(common, settings)
    assembly = build_assembly(topology, settings)
    influx = InfluxV1(influx_target(common, influx_url))
    influx.create_database()
    service = None
    if alerts is not None:
        service = build_alert_service(
            common,
            alerts,
            topology,
            assembly.engine.rule_catalogue,
            mqtt_url,
            influx_url,
            settings.partition,
            districts=settings.districts or None,
        )
    return AnalyticsWorker(
        settings,
        BrokerAddress.from_url(mqtt_url),
        influx,
        assembly.engine,
        directory,
        gateway_sink=assembly.comm,
        listener=service,
        on_stop=(service.close,) if service is not None else (),
    )


def build_alert_service(
    common: CommonSettings,
    settings: AlertSettings,
    topology: Topology,
    catalogue: Mapping[str, RuleInfo],
    mqtt_url: str,
    influx_url: str,
    partition: str,
    *,
    districts: Sequence[str] | None = None,
) -> AlertService:
    """The alert service of one partition: store, policy from the contacts file, apprise and MQTT couriers.
    ``districts``: the partition's (its closure figures count only those; None: the whole city)."""
    contacts = load_contacts(settings.contacts_file)
    policy = AlertPolicy(
        PolicyConfig(),
        SeverityPolicy(SeverityConfig(), WorkCalendar()),
        contacts,
        TopologyLocator(topology),
        catalogue=catalogue,
    )
    store = AlertStore(settings.sqlalchemy_url(common.var_dir))
    closers = []
    control_room = []
    try:
        courier = MqttCourier(BrokerAddress.from_url(mqtt_url), client_id=f"citywatch-alerts-{partition}")
        control_room.append(courier.__enter__())
        closers.append(courier.close)
    except DeliveryError as exc:  # the control-room feed waits for the broker; mail still goes
        log.warning("control-room MQTT feed off: %s", exc)
    sender = OutboxSender(store, [AppriseCourier()], contacts.urls, control_room=control_room)
    influx = InfluxV1(influx_target(common, influx_url))
    closers.append(influx.close)
    return AlertService(
        policy,
        store,
        sender,
        influx,
        partition,
        wall_ms=lambda: time.time_ns() // 1_000_000,
        on_close=closers,
        rules_file=settings.rules_file,
        districts=districts,
    )


def build_command_desk(
    common: CommonSettings,
    settings: CommandSettings,
    mqtt_url: str,
    influx_url: str,
    alerts: FindingSink | None = None,
) -> CommandDesk:
    """The command desk (not started): the registry's lamps and stations; its findings go to InfluxDB and,
    when given, to an alert service."""
    from api.commanding.fleet import Fleet
    from api.commanding.service import CommandDesk
    from api.commanding.sinks import FindingWriter

    with (
        Registry(common.registry_sqlalchemy_url()) as registry,
        contextlib.closing(registry.iter_assets()) as assets,
    ):
        fleet = Fleet(assets)
    writer = FindingWriter(InfluxV1(influx_target(common, influx_url)), settings.finding_partition)
    sinks: list[FindingSink] = [writer] if alerts is None else [writer, alerts]
    return CommandDesk(
        settings,
        BrokerAddress.from_url(mqtt_url),
        fleet,
        settings.sqlalchemy_url(common.var_dir),
        findings=sinks,
        on_stop=(writer.close,),
    )


def build_api_deps(
    common: CommonSettings, settings: ApiSettings, alerts: AlertSettings, influx_url: str
) -> ApiDeps:
    """What the API runs on: the stores, InfluxDB, and the alert policy of the city's contacts (the same
    severity, calendar and contacts the alert service decides with)."""
    from analytics.reports.settings import ReportSettings
    from api.deps import ApiDeps

    contacts = load_contacts(alerts.contacts_file)
    analytics = AnalyticsSettings()

    def alert_policy(locator: Locator) -> AlertPolicy:
        severity = SeverityPolicy(SeverityConfig(), WorkCalendar())
        return AlertPolicy(PolicyConfig(), severity, contacts, locator)

    return ApiDeps(
        settings=settings,
        registry_url=common.registry_sqlalchemy_url(),
        alerts_url=alerts.sqlalchemy_url(common.var_dir),
        accounts_url=settings.sqlalchemy_url(common.var_dir),
        influx=influx_target(common, influx_url),
        alert_policy=alert_policy,
        report_config=ReportSettings().config(analytics.rates, analytics.schedule),
        rules_file=alerts.rules_file,
    )
