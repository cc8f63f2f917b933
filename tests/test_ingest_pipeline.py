"""Ingest against a real Mosquitto and InfluxDB: what lands, what is rejected, what survives outages."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from citywatch.localstack import LocalInfluxDB, LocalMosquitto
from devices import topics
from devices.broker import BrokerAddress
from devices.contract import DeviceRef, batch_payload, encode_reading, single_payload
from ingest.influx import InfluxTarget, InfluxV1
from ingest.settings import IngestSettings
from ingest.worker import IngestWorker
from tests.conftest import InfluxTarget as DbTarget
from tests.mqtt_tools import count_points, influx_rows, lamp_batches, lamp_city, publish_all
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_worker(
    broker: LocalMosquitto,
    influx_url: str,
    db: str,
    directory: Mapping[str, DeviceRef],
    var_dir: Path,
    client_id: str = "ingest-test-1",
    **overrides: object,
) -> IngestWorker:
    settings = IngestSettings(client_id=client_id, retry_budget_s=0.5, batch_max_age_s=0.05, **overrides)  # type: ignore[arg-type]
    return IngestWorker(
        settings,
        BrokerAddress.from_url(broker.url),
        InfluxV1(InfluxTarget(influx_url, db, timeout_s=2.0)),
        lambda: directory,  # the registry's part is tested in test_registry.py
        var_dir,
    )


@pytest.fixture
def city() -> dict[str, DeviceRef]:
    return lamp_city(500)


@pytest.fixture
def worker(
    mosquitto: LocalMosquitto, influx_db: DbTarget, city: dict[str, DeviceRef], tmp_path: Path
) -> Iterator[IngestWorker]:
    with make_worker(mosquitto, influx_db.url, influx_db.db, city, tmp_path) as w:
        wait_until(w.connected.is_set, 10, "ingest connected")
        yield w


def test_k_published_readings_are_exactly_k_queryable(
    worker: IngestWorker, mosquitto: LocalMosquitto, influx_db: DbTarget, city: dict[str, DeviceRef]
) -> None:
    start = now_ms() - 10 * 60_000
    messages = [m for tick in range(10) for m in lamp_batches(city, start + tick * 60_000, tick)]
    singles = [
        (topics.telemetry(d), single_payload(d, start + 11 * 60_000, 11, {"active_power": 1.5}))
        for d in list(city)[:37]
    ]
    publish_all(mosquitto, messages + singles)
    expected = 10 * len(city) + 37
    wait_until(lambda: count_points(influx_db.url, influx_db.db) >= expected, 30, f"{expected} points")
    assert count_points(influx_db.url, influx_db.db) == expected
    rows = influx_rows(
        influx_db.url,
        influx_db.db,
        "SELECT supply_voltage, seq FROM lamp WHERE device = 'LMP-000123' ORDER BY time",
    )
    assert [row[2] for row in rows[:10]] == list(range(10))
    assert rows[0][0] == start
    snap = worker.metrics.snapshot()
    assert (snap.written, snap.rejected, snap.spooled) == (expected, 0, 0)


def test_redelivered_duplicates_are_harmless(
    worker: IngestWorker, mosquitto: LocalMosquitto, influx_db: DbTarget, city: dict[str, DeviceRef]
) -> None:
    batch = lamp_batches(city, now_ms(), 1)
    publish_all(mosquitto, batch + batch + batch)
    wait_until(lambda: worker.metrics.snapshot().written >= 3 * len(city), 30, "all three copies written")
    assert count_points(influx_db.url, influx_db.db) == len(city)


def test_bad_input_is_rejected_with_its_reason_and_the_good_readings_land(
    worker: IngestWorker, mosquitto: LocalMosquitto, influx_db: DbTarget
) -> None:
    ts = now_ms()
    good = [encode_reading(f"LMP-{i:06d}", ts, 5, {"active_power": 90.0}) for i in range(3)]
    bad = {
        "wrong_type": encode_reading("LMP-000003", ts, 5, {"active_power": "high"}),
        "out_of_range": encode_reading("LMP-000004", ts, 5, {"supply_voltage": 9999.0}),
        "ts_in_future": encode_reading("LMP-000005", ts + 86_400_000, 5, {"active_power": 1.0}),
        "ts_too_old": encode_reading("LMP-000006", ts - 90 * 86_400_000, 5, {"active_power": 1.0}),
        "unregistered": encode_reading("LMP-999999", ts, 5, {"active_power": 1.0}),
        "not_gateway_device": encode_reading("LMP-000400", ts, 5, {"active_power": 1.0}),
        "bad_device_id": encode_reading("LMP 1,district=x", ts, 5, {"active_power": 1.0}),
        "unknown_field": encode_reading("LMP-000007", ts, 5, {"wattage": 1.0}),
    }
    gateway_batch = batch_payload("GW-0000", [good[0], *bad.values(), good[1]])
    third_good = batch_payload("GW-0000", [good[2]])
    nan_reading = b'{"v":1,"device":"LMP-000008","ts":%d,"seq":1,"fields":{"active_power":NaN}}' % ts
    messages = [
        (topics.batch("GW-0000"), gateway_batch),
        (topics.batch("GW-0000"), third_good),
        (topics.telemetry("LMP-000008"), nan_reading),
        (topics.telemetry("LMP-000009"), b"{this is not json"),
        (topics.telemetry("LMP-000010"), single_payload("LMP-000011", ts, 1, {"active_power": 1.0})),
        (topics.telemetry("LMP-000012"), b'{"v":1,"device":"LMP-000012"' + b" " * 300_000 + b"}"),
        (topics.telemetry("LMP-000013"), b'{"v":9,"device":"LMP-000013"}'),
    ]
    publish_all(mosquitto, messages)
    expected_reasons = {
        *bad,
        "non_finite",
        "malformed_json",
        "device_topic_mismatch",
        "oversized",
        "unsupported_version",
    }
    wait_until(lambda: set(worker.dead_letters.counts()) >= expected_reasons, 20, "every rejection recorded")
    wait_until(lambda: count_points(influx_db.url, influx_db.db) >= 3, 20, "the good readings")
    assert count_points(influx_db.url, influx_db.db) == 3
    stored = {row[2] for row in influx_rows(influx_db.url, influx_db.db, 'SELECT "seq", device FROM lamp')}
    assert stored == {"LMP-000000", "LMP-000001", "LMP-000002"}
    letters = {d.reason: d for d in worker.dead_letters.list(limit=100)}
    assert set(letters) == expected_reasons
    assert letters["not_gateway_device"].device == "LMP-000400"
    assert "GW-0008" in letters["not_gateway_device"].detail
    assert letters["out_of_range"].batch_index == 2
    assert letters["malformed_json"].payload == "{this is not json"
    snap = worker.metrics.snapshot()
    assert snap.rejected == len(expected_reasons)
    assert snap.rejected_by_reason["unregistered"] == 1
    # the worker is still alive and taking data
    publish_all(
        mosquitto,
        [(topics.telemetry("LMP-000020"), single_payload("LMP-000020", ts, 2, {"active_power": 3.0}))],
    )
    wait_until(
        lambda: count_points(influx_db.url, influx_db.db) == 4, 20, "a good reading after the bad ones"
    )


def test_a_field_type_conflict_dead_letters_that_point_only(
    worker: IngestWorker, mosquitto: LocalMosquitto, influx_db: DbTarget, city: dict[str, DeviceRef]
) -> None:
    # Someone wrote burning_hours as an integer first; our float now conflicts in InfluxDB itself.
    # (InfluxDB 1.x enforces field types per shard, so the earlier point must be recent.)
    ts = now_ms()
    with InfluxV1(InfluxTarget(influx_db.url, influx_db.db)) as client:
        client.write(b"lamp,device=LMP-000000,district=d0 burning_hours=5i,seq=0i %d" % (ts - 60_000))
    readings = [encode_reading(d, ts, 3, {"active_power": 90.0}) for d in list(city)[:50]]
    readings[17] = encode_reading("LMP-000017", ts, 3, {"burning_hours": 12.5})
    publish_all(mosquitto, [(topics.batch("GW-0000"), batch_payload("GW-0000", readings))])
    wait_until(
        lambda: worker.dead_letters.counts().get("db_rejected") == 1,
        20,
        "the conflicting point dead-lettered",
    )
    wait_until(lambda: count_points(influx_db.url, influx_db.db) == 1 + 49, 20, "the other 49 points")
    (letter,) = worker.dead_letters.list(reason=None, device="LMP-000017")
    assert "conflict" in letter.detail and "burning_hours=12.5" in (letter.payload or "")


def test_influxdb_down_mid_stream_loses_nothing(
    mosquitto: LocalMosquitto, influxdb_own: LocalInfluxDB, city: dict[str, DeviceRef], tmp_path: Path
) -> None:
    db = "outage"
    start = now_ms() - 30 * 60_000
    with make_worker(mosquitto, influxdb_own.url, db, city, tmp_path) as w:
        wait_until(w.connected.is_set, 10, "ingest connected")
        publish_all(mosquitto, lamp_batches(city, start, 0))
        wait_until(lambda: count_points(influxdb_own.url, db) == len(city), 20, "first tick stored")
        influxdb_own.stop()
        publish_all(mosquitto, [m for t in range(1, 6) for m in lamp_batches(city, start + t * 60_000, t)])
        wait_until(lambda: w.metrics.snapshot().spooled == 5 * len(city), 30, "the outage's readings spooled")
        influxdb_own.start()
        wait_until(w.spool.is_empty, 60, "spool replayed")
        assert count_points(influxdb_own.url, db) == 6 * len(city)
        assert w.metrics.snapshot().replayed == 5 * len(city)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_stopped_worker_finds_what_was_published_meanwhile(
    protocol: str, mosquitto: LocalMosquitto, influx_db: DbTarget, city: dict[str, DeviceRef], tmp_path: Path
) -> None:
    start = now_ms() - 20 * 60_000
    with make_worker(mosquitto, influx_db.url, influx_db.db, city, tmp_path, mqtt_protocol=protocol) as w:
        wait_until(w.connected.is_set, 10, "connected")
    publish_all(mosquitto, [m for t in range(8) for m in lamp_batches(city, start + t * 60_000, t)])
    with make_worker(mosquitto, influx_db.url, influx_db.db, city, tmp_path, mqtt_protocol=protocol) as w:
        wait_until(
            lambda: count_points(influx_db.url, influx_db.db) == 8 * len(city), 30, "the queued readings"
        )


def test_two_workers_on_a_shared_subscription_store_every_reading(
    mosquitto: LocalMosquitto, influx_db: DbTarget, tmp_path: Path
) -> None:
    city = lamp_city(2000, per_gateway=20)
    start = now_ms() - 10 * 60_000
    with (
        make_worker(mosquitto, influx_db.url, influx_db.db, city, tmp_path / "a", "ingest-a") as a,
        make_worker(mosquitto, influx_db.url, influx_db.db, city, tmp_path / "b", "ingest-b") as b,
    ):
        wait_until(lambda: a.connected.is_set() and b.connected.is_set(), 10, "both connected")
        publish_all(mosquitto, [m for t in range(5) for m in lamp_batches(city, start + t * 60_000, t)])
        expected = 5 * len(city)
        wait_until(lambda: count_points(influx_db.url, influx_db.db) >= expected, 30, f"{expected} points")
        assert count_points(influx_db.url, influx_db.db) == expected
        wrote = (a.metrics.snapshot().written, b.metrics.snapshot().written)
        assert sum(wrote) == expected and min(wrote) > 0, wrote


def test_self_metrics_reach_prometheus_and_influxdb(
    mosquitto: LocalMosquitto, influx_db: DbTarget, city: dict[str, DeviceRef], tmp_path: Path
) -> None:
    import httpx

    from citywatch.localstack import free_port

    port = free_port()
    with make_worker(
        mosquitto, influx_db.url, influx_db.db, city, tmp_path, metrics_port=port, self_metrics_interval_s=0.2
    ) as w:
        wait_until(w.connected.is_set, 10, "connected")
        bad = encode_reading("LMP-999999", now_ms(), 1, {"active_power": 1.0})
        publish_all(
            mosquitto,
            [*lamp_batches(city, now_ms(), 1), (topics.batch("GW-0000"), batch_payload("GW-0000", [bad]))],
        )
        wait_until(lambda: w.metrics.snapshot().written == len(city), 20, "the tick written")

        def scraped() -> str:
            with httpx.Client(trust_env=False) as client:
                return client.get(f"http://127.0.0.1:{port}/metrics").text

        def scraped_with_reject() -> str | None:
            text = scraped()
            return text if 'reason="unregistered"} 1.0' in text else None

        text = wait_until(scraped_with_reject, 10, "the reject on /metrics")
        assert f"citywatch_ingest_readings_written_total {float(len(city))}" in text
        assert "citywatch_ingest_lag_seconds_bucket" in text

        def latest_self_metrics() -> list[object] | None:
            query = "SELECT last(written), last(rejected_unregistered) FROM citywatch_ingest"
            rows = influx_rows(influx_db.url, influx_db.db, query)
            return rows[0][1:] if rows and rows[0][1] == len(city) else None

        assert wait_until(latest_self_metrics, 10, "self-metrics in InfluxDB") == [len(city), 1]


def test_a_device_registered_after_start_has_its_first_reading_stored(
    mosquitto: LocalMosquitto, influx_db: DbTarget, tmp_path: Path
) -> None:
    """A device commissioned a moment ago reports at once: its very first reading lands, without waiting
    for the directory's next reload, while a device that is nowhere in the registry is still refused (and
    looked up once, not once per message)."""
    from devices.assets import Asset
    from devices.registry import Registry

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    old = Asset(id="LMP-000001", kind="lamp", district="d1", road_class="branch", lat=30.5, lon=114.3)
    lookups: list[str] = []

    def lookup(device_id: str) -> DeviceRef | None:
        lookups.append(device_id)
        with Registry(url) as registry:
            return registry.device_ref(device_id)

    with Registry(url) as registry:
        registry.upsert([old])
        directory = registry.directory()
    settings = IngestSettings(client_id="ingest-new-device", batch_max_age_s=0.05, directory_refresh_s=3600)
    with IngestWorker(
        settings,
        BrokerAddress.from_url(mosquitto.url),
        InfluxV1(InfluxTarget(influx_db.url, influx_db.db, timeout_s=2.0)),
        lambda: directory,
        tmp_path,
        lookup,
    ) as worker:
        wait_until(worker.connected.is_set, 10, "ingest connected")
        with Registry(url) as registry:  # commissioned while the worker runs
            registry.upsert(
                [Asset(id="LMP-000002", kind="lamp", district="d2", road_class="branch", lat=30.5, lon=114.3)]
            )
        ts = now_ms()
        publish_all(
            mosquitto,
            [
                (topics.telemetry("LMP-000002"), single_payload("LMP-000002", ts, 1, {"active_power": 5.0})),
                *[
                    (
                        topics.telemetry("LMP-999999"),
                        single_payload("LMP-999999", ts + i, i, {"dim_level": 1}),
                    )
                    for i in range(5)
                ],
            ],
        )
        wait_until(lambda: count_points(influx_db.url, influx_db.db) >= 1, 20, "the new device's reading")
        wait_until(
            lambda: worker.metrics.snapshot().rejected_by_reason.get("unregistered", 0) >= 5,
            20,
            "the unknown device's readings refused",
        )
    rows = influx_rows(influx_db.url, influx_db.db, "SELECT active_power, district FROM lamp")
    assert [row[1:] for row in rows] == [[5.0, "d2"]]
    assert lookups.count("LMP-000002") == 1
    assert lookups.count("LMP-999999") == 1
