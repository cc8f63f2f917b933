"""The dashboards' JSON: committed as the code builds it, structurally sound, wired to the provisioned data
source and folder, and documented. The structural checker itself is shown to catch what it claims to.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import JSON_DIR, build_all, render, stale
from dashboards.doc import panel_tables
from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.push import influx_datasource
from dashboards.structure import (
    all_panels,
    interpolate,
    output_columns,
    problems,
    queries,
    used_variables,
    variable_names,
)

ROOT = Path(__file__).resolve().parent.parent
PROVISIONING = ROOT / "dashboards" / "provisioning"
MODELS = build_all()


def test_the_committed_json_is_what_the_code_builds() -> None:
    assert stale() == [], "run: python -m dashboards.build (or citywatch dashboards build)"
    for uid, model in MODELS.items():
        assert (JSON_DIR / f"{uid}.json").read_text(encoding="utf-8") == render(model)


@pytest.mark.parametrize("uid", sorted(MODELS))
def test_each_dashboard_is_structurally_sound(uid: str) -> None:
    assert problems(MODELS[uid]) == []


def test_panel_ids_are_unique_across_rows_and_every_panel_queries_the_citywatch_data_source() -> None:
    for model in MODELS.values():
        ids = [p["id"] for p in all_panels(model)]
        assert len(ids) == len(set(ids))
        for panel in all_panels(model):
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
                assert all(
                    t["datasource"]["uid"] == DATASOURCE_UID and t["rawQuery"] for t in panel["targets"]
                )


def test_the_checker_catches_a_duplicate_id_a_foreign_data_source_and_an_undefined_variable() -> None:
    broken: dict[str, Any] = copy.deepcopy(MODELS["citywatch-streetlights"])
    panels = [p for p in broken["panels"] if p["type"] != "row"]
    panels[1]["id"] = panels[0]["id"]
    panels[2]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "prom"}
    panels[3]["targets"][0]["query"] += ' AND "device" =~ /^$cabinet_nr$/'
    panels[4]["targets"][0]["query"] = panels[4]["targets"][0]["query"].replace(
        "/^$circuit_lamps$/", "'$lamp'"
    )
    broken["templating"]["list"].reverse()  # road now depends on district defined after it

    found = "\n".join(problems(broken))

    assert f"panel id {panels[0]['id']} is used twice" in found
    assert "names data source {'type': 'prometheus', 'uid': 'prom'}" in found
    assert "uses $cabinet_nr, which the dashboard does not define" in found
    assert "uses $lamp other than as /^$lamp$/" in found
    assert "variable 'road' depends on ['district']" in found


def test_every_variable_a_query_uses_is_defined_and_links_between_dashboards_resolve() -> None:
    uids = set(MODELS)
    for model in MODELS.values():
        defined = set(variable_names(model))
        for query in queries(model):
            assert used_variables(query.query) <= defined, query
        for panel in all_panels(model):
            links = [link["url"] for link in panel.get("links", [])]
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                links += [x["url"] for p in override["properties"] if p["id"] == "links" for x in p["value"]]
            for url in links:
                target = re.match(r"/d/([a-z0-9-]+)", url)
                assert target and target.group(1) in uids, url
                assert "${__url_time_range}" in url  # the drill-down keeps the time range


def test_alert_transitions_are_annotations_on_every_operations_screen() -> None:
    for uid, model in MODELS.items():
        annotations = [
            a for a in model["annotations"]["list"] if a["datasource"].get("uid") == DATASOURCE_UID
        ]
        if uid == "citywatch-platform":
            continue
        assert {a["name"] for a in annotations} == {"Emergency alerts", "Serious alerts", "Ordinary alerts"}
        for a in annotations:
            assert 'FROM "alert_event"' in a["query"] and a["textColumn"] == "title"
            assert a["target"]["query"] == a["query"] and a["target"]["fromAnnotations"]


def test_the_screens_the_issue_asks_for_are_there() -> None:
    titles = {uid: {p["title"] for p in all_panels(m)} for uid, m in MODELS.items()}
    overview = titles["citywatch-overview"]
    assert {
        "City lighting rate",
        "Facility intact rate",
        "On-time closure, month to date",
        "Open alerts",
    } <= overview
    assert {
        "Lighting rate by district",
        "Lighting rate by road class, last night check",
        "Open faults",
    } <= overview
    assert (
        next(p for p in all_panels(MODELS["citywatch-overview"]) if p["title"] == "Open faults")["type"]
        == "geomap"
    )
    names = {uid: variable_names(m) for uid, m in MODELS.items()}
    assert names["citywatch-streetlights"][:4] == ["district", "road", "circuit", "lamp"]
    assert "Bin fill, $district" in titles["citywatch-sanitation"]
    assert {"Ingest lag", "Rejected readings by reason", "Spool", "Evaluation time per tick"} <= titles[
        "citywatch-platform"
    ]


def test_targets_are_drawn_against_their_thresholds() -> None:
    """Lighting rate coloured against 100 % (orange from 95 %), intact and on-time closure against 95 %,
    the flood depth ladder 15 / 27 / 40 cm, bins near full and full at 75 / 90 %."""

    def steps(uid: str, title: str) -> list[tuple[float | None, str]]:
        panel = next(p for p in all_panels(MODELS[uid]) if p["title"] == title)
        return [(s["value"], s["color"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    assert steps("citywatch-overview", "Lighting rate by district") == [
        (None, "red"),
        (0.95, "orange"),
        (1.0, "green"),
    ]
    assert steps("citywatch-overview", "Facility intact rate by district") == [(None, "red"), (0.95, "green")]
    assert steps("citywatch-overview", "On-time closure, month to date")[-1] == (0.95, "green")
    assert [v for v, _ in steps("citywatch-drainage", "Water depth at the flood points")] == [
        None,
        15,
        27,
        40,
    ]
    assert [v for v, _ in steps("citywatch-sanitation", "Bin fill, $district")] == [None, 75, 90]
    assert [v for v, _ in steps("citywatch-bridges", "Crack width")][1:] == pytest.approx([0.15, 0.2, 0.3])


def test_provisioning_names_the_data_source_and_folder_the_dashboards_use() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "citywatch.yaml").read_text(encoding="utf-8"))
    (source,) = sources["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, DATASOURCE_TYPE)
    assert source["jsonData"]["version"] == "InfluxQL" and source["access"] == "proxy"
    pushed = influx_datasource("http://x:8086", "citywatch", token="t")
    assert {k: pushed["jsonData"][k] for k in ("version", "httpMode", "timeInterval")} == {
        k: source["jsonData"][k] for k in ("version", "httpMode", "timeInterval")
    }
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "citywatch.yaml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["folderUid"] == "citywatch"
    assert provider["options"]["path"].startswith("/")


def test_the_docs_list_every_dashboard_for_whom_and_its_panels_as_built() -> None:
    doc = (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")
    audience = doc.split("## The dashboards, what they answer and for whom")[1].split("\n## ")[0]
    for uid, model in MODELS.items():
        (row,) = [line for line in audience.splitlines() if f"`{uid}`" in line]
        assert model["title"] in row and row.count("|") == 5  # dashboard, uid, for whom, what it answers
    assert panel_tables() in doc, "run: python -m dashboards.doc and paste it into docs/dashboards.md"


def test_interpolate_fills_the_time_range_and_variables_as_grafana_does() -> None:
    query = 'SELECT last("x") AS "x" FROM "m" WHERE "road" =~ /^$road$/ AND $timeFilter GROUP BY '
    query += "time($__interval)"
    text = interpolate(query, {"road": ["Luoyu Road (East)", "常青六路"]}, 1000, 2000, "5m")
    assert text == (
        'SELECT last("x") AS "x" FROM "m" WHERE "road" =~ /^(Luoyu Road \\(East\\)|常青六路)$/ '
        "AND time >= 1000ms and time <= 2000ms GROUP BY time(5m)"
    )
    with pytest.raises(KeyError):
        interpolate(query, {}, 0, 1)


def test_output_columns_are_read_from_the_outer_select() -> None:
    assert output_columns('SELECT sum("a") / sum("b") AS "rate", "tag" FROM (SELECT x FROM y) WHERE z') == [
        "rate",
        "tag",
    ]
    assert output_columns('SELECT last(/^pump[0-9]+_running$/) FROM "pump_station"') is None
    assert output_columns('SHOW TAG VALUES FROM "asset" WITH KEY = "road"') == ["key", "value"]
