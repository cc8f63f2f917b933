"""The analytics core's contracts: dense topology, readings in rounds, the finding book, line protocol."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.engine import KpiTable
from analytics.findings import Change, Conditions, FindingBook, RuleInfo
from analytics.lineproto import finding_line, findings_from_rows, kpi_lines
from analytics.state import Batch, LiveState, order_rounds
from analytics.topology import build_topology
from devices.assets import Asset
from devices.kinds import DeviceKind


def small_city() -> list[Asset]:
    assets = [Asset(id="GW-1", kind="gateway", district="hongshan", lat=30.5, lon=114.3)]
    for i in range(6):
        assets.append(
            Asset(
                id=f"LMP-{i:03d}",
                kind="lamp",
                district="hongshan" if i < 4 else "wuchang",
                road="Luoyu Road" if i < 3 else "Bayi Road",
                road_class="trunk" if i < 3 else "branch",
                grid_cell=f"G{i // 2}",
                circuit="CIR-A" if i < 3 else "CIR-B",
                gateway="GW-1",
                lat=30.5 + i * 1e-4,
                lon=114.3,
                rated_power_w=120.0,
            )
        )
    assets.append(
        Asset(
            id="CAB-A",
            kind="cabinet",
            district="hongshan",
            circuit="CIR-A",
            gateway="GW-1",
            lat=30.5,
            lon=114.3,
        )
    )
    return assets


def test_topology_numbers_devices_by_id_and_resolves_relations() -> None:
    topo = build_topology(reversed(small_city()))
    lamps = topo.table(DeviceKind.LAMP)
    assert lamps.id_text(range(6)) == [f"LMP-{i:03d}" for i in range(6)]  # sorted, whatever the input order
    assert lamps.find(["LMP-004", "nope", "LMP-000"]).tolist() == [4, -1, 0]
    assert topo.names("circuit", lamps.circuit[[0, 5]]) == ["CIR-A", "CIR-B"]
    assert topo.number("circuit", "CIR-B") == lamps.circuit[5]
    assert topo.number("lamp", "LMP-002") == 2
    assert topo.number("road", "No Such Road") == -1
    assert topo.names("road_class", topo.road_class[lamps.road[[0, 4]]]) == ["trunk", "branch"]
    circuit_a = topo.number("circuit", "CIR-A")
    assert topo.circuit_cabinet[circuit_a] == 0
    assert topo.subject_district("circuit", [circuit_a]) == ["hongshan"]
    assert topo.names("gateway", lamps.gateway[:1]) == ["GW-1"]


def test_a_partition_keeps_only_its_districts_devices() -> None:
    topo = build_topology(small_city(), districts=["wuchang"])
    assert topo.names("lamp", [0, 1]) == ["LMP-004", "LMP-005"]
    assert len(topo.table(DeviceKind.CABINET)) == 0
    assert topo.gateways == ("GW-1",)  # a partition's devices may hang on any gateway


def batch(device: list[int], ts: list[int], power: list[float]) -> Batch:
    n = len(device)
    return Batch(
        DeviceKind.LAMP,
        np.array(device, np.int32),
        np.array(ts, np.int64),
        np.arange(n, dtype=np.int64),
        MappingProxyType({"active_power": np.array(power)}),
    )


def test_rounds_drop_duplicates_and_stale_readings_and_keep_time_order() -> None:
    last = np.array([-1, 5_000, -1], np.int64)
    b = batch([0, 1, 0, 0, 1, 2], [2_000, 4_000, 1_000, 2_000, 6_000, 7_000], [2.0, 9.0, 1.0, 2.0, 6.0, 7.0])
    rounds, dropped = order_rounds(b, last)
    assert dropped == 2  # device 0 at 2000 twice (QoS 1 redelivery); device 1 at 4000 is older than stored
    assert [r.device.tolist() for r in rounds] == [[0, 1, 2], [0]]
    assert rounds[0].fields["active_power"].tolist() == [1.0, 6.0, 7.0]
    assert rounds[1].fields["active_power"].tolist() == [2.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 20)), max_size=40))
def test_rounds_apply_every_fresh_reading_once_and_end_at_the_newest(rows: list[tuple[int, int]]) -> None:
    topo = build_topology(small_city())
    state = LiveState(topo)
    lamps = state[DeviceKind.LAMP]
    b = batch([d for d, _ in rows], [t for _, t in rows], [float(t) for _, t in rows])
    rounds, dropped = order_rounds(b, lamps.last_ts)
    for r in rounds:
        assert len(set(r.device.tolist())) == len(r.device)  # each device once per round
        lamps.apply(r)
    assert sum(len(r) for r in rounds) + dropped == len(rows)
    assert sum(len(r) for r in rounds) == len(set(rows))
    for d in range(5):
        times = [t for dd, t in rows if dd == d]
        assert lamps.last_ts[d] == (max(times) if times else -1)
        if times:
            assert lamps.values["active_power"][d] == float(max(times))


RULES = {
    "lamp_failure": RuleInfo(
        "lamp_failure",
        "lamp",
        "streetlight",
        "Lamp failure",
        "{value:.1f} W < {threshold:.1f} W since {since}",
        "W",
    ),
    "bridge_crack_width": RuleInfo(
        "bridge_crack_width", "lamp", "bridge", "Crack", "level {level}: {value} mm"
    ),
    "circuit_outage": RuleInfo(
        "circuit_outage", "circuit", "streetlight", "Circuit outage", "{children} lamps dark"
    ),
}


def cond(rule: str, active: list[int], level: list[int] | None = None) -> Conditions:
    n = len(active)
    return Conditions(
        rule,
        np.array(active, np.int32),
        np.full(n, 0.4),
        np.full(n, 36.0),
        None if level is None else np.array(level, np.int32),
    )


def test_book_opens_once_relevels_and_clears_with_explanations() -> None:
    book = FindingBook(RULES, build_topology(small_city()))
    events = book.update(1_000, [cond("lamp_failure", [1, 3])])
    assert [(e.change, e.finding.subject) for e in events] == [
        (Change.OPENED, "LMP-001"),
        (Change.OPENED, "LMP-003"),
    ]
    assert events[0].finding.explanation == "0.4 W < 36.0 W since 1970-01-01 00:00 UTC"
    assert events[0].finding.district == "hongshan"
    assert book.update(2_000, [cond("lamp_failure", [1, 3])]) == []  # still open: nothing new
    assert book.update(2_500, []) == []  # a rule not evaluated keeps its findings
    events = book.update(3_000, [cond("lamp_failure", [3])])
    assert [(e.change, e.finding.subject, e.at_ms) for e in events] == [(Change.CLEARED, "LMP-001", 3_000)]
    book.update(4_000, [cond("bridge_crack_width", [2], [3])])
    events = book.update(5_000, [cond("bridge_crack_width", [2], [2])])
    assert [(e.change, e.finding.level) for e in events] == [(Change.LEVEL, 2)]
    assert book.counts() == {"lamp_failure": 1, "bridge_crack_width": 1}


def test_circuit_incident_carries_its_lamps() -> None:
    topo = build_topology(small_city())
    book = FindingBook(RULES, topo)
    circuit = topo.number("circuit", "CIR-A")
    c = Conditions(
        "circuit_outage",
        np.array([circuit], np.int32),
        np.array([0.0]),
        np.array([0.0]),
        children={circuit: np.array([0, 1, 2], np.int32)},
        child_subject="lamp",
    )
    (event,) = book.update(1_000, [c])
    assert event.finding.children == ("LMP-000", "LMP-001", "LMP-002")
    assert event.finding.explanation == "3 lamps dark"


def test_restart_adopts_open_findings_without_raising_them_again() -> None:
    topo = build_topology(small_city())
    before = FindingBook(RULES, topo)
    opened = [e.finding for e in before.update(1_000, [cond("lamp_failure", [1, 3, 4])])]
    # After the restart the replay re-raised 1 (still failing) and 5 (failed while the worker was down),
    # but not 3 or 4 (its debounce needs more readings than the replay held).
    after = FindingBook(RULES, topo)
    after.update(50_000, [cond("lamp_failure", [1, 5])])
    fresh = after.adopt(opened, hold_until_ms=80_000)
    assert [f.subject for f in fresh] == ["LMP-005"]
    assert {f.subject: f.since_ms for f in after.open_findings()} == {
        "LMP-001": 1_000,  # the original finding, not a second one
        "LMP-003": 1_000,
        "LMP-004": 1_000,
        "LMP-005": 50_000,
    }
    assert after.update(60_000, [cond("lamp_failure", [1, 3, 5])]) == []  # 4 is held, 3 seen again
    events = after.update(90_000, [cond("lamp_failure", [1, 3, 5])])
    assert [(e.change, e.finding.subject) for e in events] == [(Change.CLEARED, "LMP-004")]


def test_finding_lines_read_back_as_the_same_open_finding() -> None:
    topo = build_topology(small_city())
    book = FindingBook(RULES, topo)
    (event,) = book.update(1_700_000_000_000, [cond("lamp_failure", [2])])
    line = finding_line(event, RULES["lamp_failure"], "p1")
    assert line.startswith("finding,district=hongshan,family=streetlight,partition=p1,rule=lamp_failure,")
    assert 'state="open"' in line
    assert line.endswith(" 1700000000000")
    row = {
        "name": "finding",
        "tags": {
            "rule": "lamp_failure",
            "subject": "LMP-002",
            "subject_kind": "lamp",
            "district": "hongshan",
        },
        "columns": [
            "time",
            "state",
            "level",
            "value",
            "threshold",
            "since_ms",
            "explanation",
            "children",
            "child_kind",
        ],
        "values": [[1, "open", 0, 0.4, 36.0, 1_700_000_000_000, event.finding.explanation, "", ""]],
    }
    ((_, back),) = findings_from_rows([row])
    assert (back.rule, back.subject, back.since_ms, back.explanation) == (
        "lamp_failure",
        "LMP-002",
        1_700_000_000_000,
        event.finding.explanation,
    )
    row["values"][0][1] = "cleared"
    assert findings_from_rows([row]) == []


def test_kpi_lines_leave_out_undefined_values_and_escape_names() -> None:
    table = KpiTable(
        "kpi",
        "road",
        ("Luoyu Road", "Bayi Road"),
        {"due": np.array([3.0, 0.0]), "lighting_rate": np.array([2 / 3, np.nan])},
        1_000,
    )
    lines = list(kpi_lines(table, "all"))
    assert lines == [
        f"kpi,partition=all,scope=road,scope_id=Luoyu\\ Road due=3.0,lighting_rate={2 / 3!r} 1000",
        "kpi,partition=all,scope=road,scope_id=Bayi\\ Road due=0.0 1000",
    ]


def test_conditions_where_picks_per_subject_values() -> None:
    mask = np.array([False, True, False, True])
    c = Conditions.where("lamp_failure", mask, np.array([1.0, 2.0, 3.0, 4.0]), 36.0, since_ms=np.arange(4))
    assert c.active.tolist() == [1, 3]
    assert c.value.tolist() == [2.0, 4.0]
    assert c.threshold.tolist() == [36.0, 36.0]
    assert c.since_ms is not None and c.since_ms.tolist() == [1, 3]
    with pytest.raises(RuleConfigError, match="shape"):
        Conditions.where("lamp_failure", mask, np.array([1.0, 2.0]), 1.0)


def test_the_rule_catalogue_in_the_docs_is_current() -> None:
    from pathlib import Path

    from analytics.rules_doc import rule_tables

    doc = (Path(__file__).resolve().parent.parent / "docs" / "analytics.md").read_text(encoding="utf-8")
    assert rule_tables() in doc, "docs/analytics.md is stale: paste `python -m analytics.rules_doc` into it"
