"""The telemetry contract's decoder: every bad-input class gets its own reason; good readings survive."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import topics
from devices.contract import (
    DeviceRef,
    Limits,
    RejectReason,
    batch_payload,
    decode,
    encode_reading,
    single_payload,
)
from devices.kinds import FIELDS, DeviceKind

NOW = 1_795_000_000_000
DIRECTORY = {
    "LMP-1": DeviceRef("LMP-1", DeviceKind.LAMP, "jiangan", "GW-1"),
    "LMP-2": DeviceRef("LMP-2", DeviceKind.LAMP, "jiangan", "GW-1"),
    "LMP-9": DeviceRef("LMP-9", DeviceKind.LAMP, "wuchang", "GW-2"),
    "BIN-1": DeviceRef("BIN-1", DeviceKind.BIN, "wuchang", "GW-2"),
}
GOOD = {"supply_voltage": 221.5, "active_power": 98, "lamp_on": True, "dim_level": 100}


def one(device: str = "LMP-1", **overrides: object) -> dict[str, object]:
    reading = encode_reading(device, NOW - 1000, 7, GOOD)
    reading.update(overrides)
    return reading


def gateway(*readings: dict[str, object], gw: str = "GW-1") -> tuple[str, bytes]:
    return topics.batch(gw), batch_payload(gw, list(readings))


def reasons(topic: str, payload: bytes) -> list[str]:
    return [r.reason.value for r in decode(topic, payload, NOW, DIRECTORY).rejections]


def test_single_reading_is_decoded_with_typed_fields() -> None:
    decoded = decode(topics.telemetry("LMP-1"), single_payload("LMP-1", NOW, 3, GOOD), NOW, DIRECTORY)
    assert decoded.rejections == ()
    (reading,) = decoded.readings
    assert (reading.device, reading.kind, reading.district, reading.ts_ms, reading.seq) == (
        "LMP-1",
        DeviceKind.LAMP,
        "jiangan",
        NOW,
        3,
    )
    assert reading.fields == {
        "supply_voltage": 221.5,
        "active_power": 98.0,
        "lamp_on": True,
        "dim_level": 100,
    }
    assert type(reading.fields["active_power"]) is float  # a float field never lands as an integer


def test_rfc3339_timestamp_is_accepted() -> None:
    payload = orjson.dumps({"v": 1, **one(ts="2026-11-18T08:13:20+08:00")})
    (reading,) = decode(topics.telemetry("LMP-1"), payload, NOW, DIRECTORY).readings
    assert reading.ts_ms == 1_794_989_600_000 - 8 * 3_600_000


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (one(fields={"active_power": "98"}), "wrong_type"),
        (one(fields={"lamp_on": 2}), "wrong_type"),
        (one(fields={"dim_level": 50.5}), "wrong_type"),
        (one(fields={"active_power": 5000.0}), "out_of_range"),
        (one(fields={"supply_voltage": -1}), "out_of_range"),
        (one(fields={"colour": 1}), "unknown_field"),
        (one(fields={}), "bad_schema"),
        (one(seq=-1), "bad_schema"),
        (one(seq="7"), "bad_schema"),
        (one(ts=NOW + 3_600_000), "ts_in_future"),
        (one(ts=NOW - 40 * 86_400_000), "ts_too_old"),
        (one(ts="yesterday"), "bad_timestamp"),
        (one(ts="2026-11-18T08:13:20"), "bad_timestamp"),
        (one(ts=1.5e12), "bad_timestamp"),
        (one("LMP-404"), "unregistered"),
        (one("LMP-9"), "not_gateway_device"),
        (one("bad id,x=1"), "bad_device_id"),
        (one("LMP 1"), "bad_device_id"),
        (one("x" * 65), "bad_device_id"),
        (one("LMP-1\nlamp"), "bad_device_id"),
    ],
)
def test_each_bad_reading_is_rejected_and_its_batch_neighbours_land(
    reading: dict[str, object], reason: str
) -> None:
    topic, payload = gateway(one("LMP-1"), reading, one("LMP-2"))
    decoded = decode(topic, payload, NOW, DIRECTORY)
    assert [r.device for r in decoded.readings] == ["LMP-1", "LMP-2"]
    (rejection,) = decoded.rejections
    assert (rejection.reason.value, rejection.index) == (reason, 1)
    assert rejection.detail


def test_nan_and_infinity_reject_only_their_reading() -> None:
    topic = topics.batch("GW-1")
    text = json.dumps({"v": 1, "gateway": "GW-1", "readings": [one(), one("LMP-2")]})
    text = text.replace('"supply_voltage": 221.5', '"supply_voltage": NaN', 1)
    decoded = decode(topic, text.encode(), NOW, DIRECTORY)
    assert [r.device for r in decoded.readings] == ["LMP-2"]
    assert [r.reason for r in decoded.rejections] == [RejectReason.NON_FINITE]
    inf = json.dumps({"v": 1, **one()}).replace("221.5", "Infinity")
    assert reasons(topics.telemetry("LMP-1"), inf.encode()) == ["non_finite"]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (topics.telemetry("LMP-1"), b"{not json", "malformed_json"),
        (topics.telemetry("LMP-1"), b"\xff\xfe", "malformed_json"),
        (topics.telemetry("LMP-1"), b"[1, 2]", "bad_schema"),
        (topics.telemetry("LMP-1"), orjson.dumps({"v": 2, **one()}), "unsupported_version"),
        (topics.telemetry("LMP-1"), orjson.dumps(one()), "unsupported_version"),
        (topics.telemetry("LMP-2"), single_payload("LMP-1", NOW, 1, GOOD), "device_topic_mismatch"),
        (topics.batch("GW-2"), batch_payload("GW-1", [one()]), "device_topic_mismatch"),
        (topics.batch("GW-1"), orjson.dumps({"v": 1, "gateway": "GW-1", "readings": {}}), "bad_schema"),
        ("cw/v1/dev/LMP-1/status", single_payload("LMP-1", NOW, 1, GOOD), "bad_topic"),
        ("other/topic", b"{}", "bad_topic"),
        (topics.telemetry("LMP-1"), b" " * (256 * 1024 + 1), "oversized"),
    ],
)
def test_whole_message_rejections(topic: str, payload: bytes, reason: str) -> None:
    assert reasons(topic, payload) == [reason]


def test_batch_over_the_reading_limit_is_rejected_whole() -> None:
    topic, payload = gateway(*[one() for _ in range(11)])
    decoded = decode(topic, payload, NOW, DIRECTORY, Limits(max_batch_readings=10))
    assert decoded.readings == ()
    assert [r.reason for r in decoded.rejections] == [RejectReason.OVERSIZED]


def test_every_kind_accepts_its_fields_at_both_ends_of_the_range() -> None:
    for kind, specs in FIELDS.items():
        directory = {"D-1": DeviceRef("D-1", kind, "d", None)}
        for bound in ("low", "high"):
            fields = {
                name: (bool(int(getattr(s, bound))) if s.type.value == "bool" else getattr(s, bound))
                for name, s in specs.items()
            }
            fields = {k: (int(v) if specs[k].type.value == "int" else v) for k, v in fields.items()}
            decoded = decode(topics.telemetry("D-1"), single_payload("D-1", NOW, 1, fields), NOW, directory)
            assert decoded.rejections == (), (kind, bound, decoded.rejections)


@settings(max_examples=400)
@given(st.binary(max_size=600), st.sampled_from([topics.telemetry("LMP-1"), topics.batch("GW-1"), "x/y"]))
def test_any_bytes_are_readings_or_rejections(payload: bytes, topic: str) -> None:
    decoded = decode(topic, payload, NOW, DIRECTORY)
    assert decoded.readings or decoded.rejections
    assert all(r.detail for r in decoded.rejections)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
reading_like = st.fixed_dictionaries(
    {
        "device": st.sampled_from(["LMP-1", "LMP-2", "BIN-1", "LMP-9", "x y"]),
        "ts": st.one_of(st.just(NOW), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5)),
        "seq": st.one_of(st.integers(-2, 10), st.none()),
        "fields": st.dictionaries(
            st.sampled_from(["active_power", "lamp_on", "dim_level", "x"]), json_values, max_size=3
        ),
    }
)


@settings(max_examples=300)
@given(st.lists(st.one_of(reading_like, json_values), max_size=6))
def test_every_batch_item_is_either_a_reading_or_a_rejection_at_its_index(items: list[object]) -> None:
    decoded = decode(
        topics.batch("GW-1"), orjson.dumps({"v": 1, "gateway": "GW-1", "readings": items}), NOW, DIRECTORY
    )
    rejected = [r.index for r in decoded.rejections]
    assert len(decoded.readings) + len(rejected) == len(items)
    assert len(set(rejected)) == len(rejected)
    assert all(r.device in DIRECTORY for r in decoded.readings)


def test_the_telemetry_doc_lists_exactly_the_fields_in_the_code() -> None:
    from pathlib import Path

    from devices.contract_doc import field_tables

    doc = (Path(__file__).parent.parent / "docs" / "telemetry.md").read_text()
    assert field_tables() in doc, "docs/telemetry.md is stale: paste `python -m devices.contract_doc` into it"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", ("127.0.0.1", 1883, None, None, False)),
        ("mqtts://dev%40x:p%3Aw@broker.city:9883", ("broker.city", 9883, "dev@x", "p:w", True)),
        ("tcp://h:1", ("h", 1, None, None, False)),
    ],
)
def test_broker_urls(url: str, expected: tuple[object, ...]) -> None:
    from devices.broker import BrokerAddress

    a = BrokerAddress.from_url(url)
    assert (a.host, a.port, a.username, a.password, a.tls) == expected
    assert "p:w" not in str(a)  # safe to log


@pytest.mark.parametrize("url", ["http://h", "mqtt://", "mqtt://h:notaport"])
def test_bad_broker_urls_say_why(url: str) -> None:
    from devices.broker import BrokerAddress, BrokerUrlError

    with pytest.raises(BrokerUrlError, match=r"scheme|host|port"):
        BrokerAddress.from_url(url)
