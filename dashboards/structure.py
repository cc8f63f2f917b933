"""Checks of a dashboard's JSON model, and its queries made runnable (pure: JSON in, values out).

``problems(model)`` lists what would break in Grafana: panel ids not unique, a panel off the 24-column
grid, a data source that is not CityWatch's, two targets of a panel with one refId, a variable used but
not defined (in a query, a title, a link, a repeat), a variable used other than as ``/^$name$/``.

``queries(model)`` lists every query a dashboard runs: panel targets, variable queries, annotations.
``interpolate`` fills one in as Grafana would (time range, interval, variable values) so it can run
against InfluxDB directly; ``output_columns`` says which columns its rows should have.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID

GRAFANA_DATASOURCE = "-- Grafana --"  # the built-in annotations' source
GRID_COLUMNS = 24
#: Grafana's own variables and the InfluxDB data source's alias patterns, never defined by a dashboard.
BUILTIN = frozenset(
    {"timeFilter", "col", "__interval", "__interval_ms", "__all", "__data", "__url_time_range"}
)
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\[\[([A-Za-z0-9_]+)\]\]|\$([A-Za-z_][A-Za-z0-9_]*)")
_REGEX_USE = re.compile(r"/\^\$([A-Za-z_][A-Za-z0-9_]*)\$/")
_TAG_ALIAS = re.compile(r"^tag_")
_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}/])")


@dataclass(frozen=True, slots=True)
class DashboardQuery:
    """One query of a dashboard: where it sits (panel title, variable or annotation name) and its text."""

    dashboard: str
    kind: str  # "panel", "variable" or "annotation"
    where: str
    ref_id: str
    query: str
    table: bool = False  # the panel asks for table-format rows


def all_panels(model: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_names(model: Mapping[str, Any]) -> list[str]:
    return [v["name"] for v in model.get("templating", {}).get("list", [])]


def used_variables(text: str) -> set[str]:
    """Variables ``text`` refers to ($name, ${name}, ${name:format}, [[name]]), Grafana's own left out."""
    names = {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(text)}
    return {n for n in names if n not in BUILTIN and not _TAG_ALIAS.match(n)}


def queries(model: Mapping[str, Any]) -> list[DashboardQuery]:
    uid = str(model.get("uid", ""))
    found = []
    for panel in all_panels(model):
        for target in panel.get("targets", []):
            table = target.get("resultFormat") == "table"
            found.append(
                DashboardQuery(uid, "panel", panel.get("title", ""), target["refId"], target["query"], table)
            )
    for v in model.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            found.append(DashboardQuery(uid, "variable", v["name"], "", str(v["query"])))
    for a in model.get("annotations", {}).get("list", []):
        if "query" in a:
            found.append(DashboardQuery(uid, "annotation", a["name"], "Anno", a["query"]))
    return found


def problems(model: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``model``, one line each; empty when it is sound."""
    out: list[str] = []
    uid = model.get("uid") or "?"
    if not model.get("uid") or len(str(model["uid"])) > 40:
        out.append(f"{uid}: uid missing or longer than 40 characters")
    if not model.get("title"):
        out.append(f"{uid}: no title")
    out += _panel_problems(uid, model)
    out += _datasource_problems(uid, model)
    out += _variable_problems(uid, model)
    return out


def _panel_problems(uid: str, model: Mapping[str, Any]) -> list[str]:
    out = []
    seen: set[int] = set()
    for panel in all_panels(model):
        title = panel.get("title", "")
        pid = panel.get("id")
        if not isinstance(pid, int):
            out.append(f"{uid}: panel {title!r} has no numeric id")
        elif pid in seen:
            out.append(f"{uid}: panel id {pid} is used twice (again by {title!r})")
        else:
            seen.add(pid)
        grid = panel.get("gridPos", {})
        if grid.get("x", 0) + grid.get("w", 0) > GRID_COLUMNS or grid.get("w", 0) <= 0:
            out.append(f"{uid}: panel {title!r} does not fit the {GRID_COLUMNS}-column grid: {grid}")
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if len(refs) != len(set(refs)):
            out.append(f"{uid}: panel {title!r} has two targets with one refId: {refs}")
        if panel.get("type") != "row" and not panel.get("targets"):
            out.append(f"{uid}: panel {title!r} has no query")
    return out


def _datasource_problems(uid: str, model: Mapping[str, Any]) -> list[str]:
    out = []
    refs: list[tuple[str, Any]] = []
    for panel in all_panels(model):
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('title')!r}"
        refs.append((where, panel.get("datasource")))
        refs += [(f"{where} {t.get('refId')}", t.get("datasource")) for t in panel.get("targets", [])]
    for v in model.get("templating", {}).get("list", []):
        refs.append((f"variable {v.get('name')!r}", v.get("datasource")))
    for a in model.get("annotations", {}).get("list", []):
        if a.get("datasource", {}).get("uid") != GRAFANA_DATASOURCE:
            refs.append((f"annotation {a.get('name')!r}", a.get("datasource")))
    for where, ref in refs:
        ours = isinstance(ref, Mapping) and ref.get("uid") == DATASOURCE_UID
        if not ours or ref.get("type") != DATASOURCE_TYPE:
            out.append(
                f"{uid}: {where} names data source {ref!r}, not {DATASOURCE_UID!r} ({DATASOURCE_TYPE})"
            )
    return out


def _texts(model: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) of everything Grafana interpolates variables into."""
    for panel in all_panels(model):
        where = f"panel {panel.get('title')!r}"
        yield where, str(panel.get("title", ""))
        if panel.get("repeat"):
            yield f"{where} repeat", f"${panel['repeat']}"
        for target in panel.get("targets", []):
            yield f"{where} {target.get('refId')}", str(target.get("query", ""))
        for link in panel.get("links", []):
            yield f"{where} link", str(link.get("url", ""))
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in override.get("properties", []):
                if prop.get("id") == "links":
                    yield from ((f"{where} data link", str(x.get("url", ""))) for x in prop.get("value", []))
    for v in model.get("templating", {}).get("list", []):
        yield f"variable {v.get('name')!r}", str(v.get("query", ""))
    for a in model.get("annotations", {}).get("list", []):
        yield f"annotation {a.get('name')!r}", str(a.get("query", ""))


def _variable_problems(uid: str, model: Mapping[str, Any]) -> list[str]:
    out = []
    names = variable_names(model)
    defined = set(names)
    if len(defined) != len(names):
        out.append(f"{uid}: a variable is defined twice: {names}")
    for where, text in _texts(model):
        for name in sorted(used_variables(text) - defined):
            out.append(f"{uid}: {where} uses ${name}, which the dashboard does not define")
    for q in queries(model):
        plain = _REGEX_USE.sub("", q.query)
        for name in sorted(used_variables(plain)):
            out.append(f"{uid}: {q.kind} {q.where!r} uses ${name} other than as /^${name}$/")
    order = {name: i for i, name in enumerate(names)}
    for v in model.get("templating", {}).get("list", []):
        later = [n for n in used_variables(str(v.get("query", ""))) if order.get(n, -1) >= order[v["name"]]]
        if later:
            out.append(f"{uid}: variable {v['name']!r} depends on {later}, defined at or after it")
    return out


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def interpolate(
    query: str, values: Mapping[str, Sequence[str]], start_ms: int, end_ms: int, interval: str = "1m"
) -> str:
    """``query`` as Grafana would send it: the time range, the interval and each variable's values (one
    or several, as the anchored regex alternation Grafana builds). KeyError for a variable not given."""
    text = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    text = text.replace("$__interval", interval)

    def fill(match: re.Match[str]) -> str:
        chosen = values[match.group(1)]
        return "/^(" + "|".join(regex_escape(v) for v in chosen) + ")$/"

    return _REGEX_USE.sub(fill, text)


def output_columns(query: str) -> list[str] | None:
    """The value columns the outermost SELECT names (aliases, or plain fields and tags); None when a
    regex or wildcard picks them. ``SHOW TAG VALUES`` gives key and value."""
    text = query.strip()
    if text.upper().startswith("SHOW TAG VALUES"):
        return ["key", "value"]
    depth, start, items, i = 0, len("SELECT"), [], len("SELECT")
    while i < len(text):
        ch = text[i]
        if ch in "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
        elif depth == 0 and text[i : i + 6].upper() == " FROM ":
            items.append(text[start:i])
            break
        elif ch in "'\"":
            i = text.index(ch, i + 1)
        i += 1
    columns = []
    for item in (x.strip() for x in items):
        alias = re.search(r'\bAS\s+"([^"]+)"\s*$', item, re.IGNORECASE)
        if alias:
            columns.append(alias.group(1))
        elif re.fullmatch(r'"[^"]+"', item):
            columns.append(item.strip('"'))
        else:
            return None
    return columns
