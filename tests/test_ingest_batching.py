"""The worker never writes more than one batch's worth at once, however much waits (no broker needed:
messages are handed to the worker's callback directly; the pipeline tests cover the broker)."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt

from devices.broker import BrokerAddress
from ingest.influx import InfluxTarget, InfluxV1
from ingest.settings import IngestSettings
from ingest.worker import IngestWorker
from tests.mqtt_tools import lamp_batches, lamp_city


def test_a_backlog_is_taken_in_batches_of_the_configured_size_in_arrival_order(tmp_path: Path) -> None:
    city = lamp_city(1000, per_gateway=100)  # 10 messages of 100 readings per tick
    settings = IngestSettings(client_id="unit", batch_max_lines=250, batch_max_age_s=0.01)
    worker = IngestWorker(
        settings,
        BrokerAddress("127.0.0.1", 1),
        InfluxV1(InfluxTarget("http://127.0.0.1:1", "db")),
        lambda: city,
        tmp_path,
    )
    worker.reload_directory()
    for mid, (topic, payload) in enumerate(lamp_batches(city, time.time_ns() // 1_000_000, 1), start=1):
        message = mqtt.MQTTMessage(mid, topic.encode())
        message.payload = payload
        worker._on_message(worker._client, None, message)  # as paho's network thread would
    sizes, acks = [], []
    while True:
        with worker._cond:
            if not worker._pending:
                break
        taken = worker._take_due_batch()
        assert taken is not None
        batch, _ = taken
        sizes.append(len(batch.lines))
        acks += batch.acks
    assert sizes == [300, 300, 300, 100]  # whole messages, up to the first that reaches 250 lines
    assert acks == list(range(1, 11))
    worker.dead_letters.close()
    worker.influx.close()
