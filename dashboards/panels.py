"""The panel kinds the CityWatch dashboards use, with the house defaults, and the dashboard assembly.

Colours follow one rule on every screen: a rate is green at its target and red below it (orange between
a floor and the target); an alarm ladder is yellow / orange / red from level 3 to level 1 (DOMAIN.md
section 3: level 1 is the most severe). ``dashboard()`` lays the panels out, numbers them 1..n in order
and returns the JSON model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries, xychart
from grafana_foundation_sdk.builders import common as common_build
from grafana_foundation_sdk.builders import dashboard as build
from grafana_foundation_sdk.builders import geomap as geomap_build
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.influxql import Annotation, Query, datasource

RED, ORANGE, YELLOW, GREEN, BLUE = "red", "orange", "yellow", "green", "blue"
CITY_TIMEZONE = "Asia/Shanghai"  # the alert calendar's default zone (analytics.alerts.severity.WorkCalendar)
TAG = "citywatch"  # every CityWatch dashboard carries it; the dashboards' links list them by it
LINES = common.GraphTresholdsStyleMode.DASHED  # thresholds drawn as lines: a target, start / stop levels
BANDS = common.GraphTresholdsStyleMode.LINE_AND_AREA  # thresholds drawn as bands: an alarm ladder

Thresholds = build.ThresholdsConfig
AnyPanel = (
    timeseries.Panel
    | stat.Panel
    | bargauge.Panel
    | table.Panel
    | geomap_build.Panel
    | xychart.Panel
    | statetimeline.Panel
)


def steps(base: str, *rising: tuple[float, str]) -> Thresholds:
    """``base`` colour below the first step, then each (value, colour) from its value up."""
    return (
        build.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(None, base), *(model.Threshold(v, c) for v, c in rising)])
    )


def target(rate: float, floor: float | None = None) -> Thresholds:
    """A rate against its target: red below (orange from ``floor`` when given), green at or above."""
    if floor is None:
        return steps(RED, (rate, GREEN))
    return steps(RED, (floor, ORANGE), (rate, GREEN))


def ladder(level3: float, level2: float, level1: float) -> Thresholds:
    """An alarm ladder: yellow from level 3, orange from level 2, red from level 1."""
    return steps("transparent", (level3, YELLOW), (level2, ORANGE), (level1, RED))


def link(title: str, url: str) -> build.DashboardLink:
    """A link to another dashboard keeping the time range; ``url`` may use ``${__data.fields.x}``."""
    joiner = "&" if "?" in url else "?"
    return build.DashboardLink(title).url(f"{url}{joiner}${{__url_time_range}}")


def dashboard_url(uid: str) -> str:
    return f"/d/{uid}"


def timeseries_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "",
    thresholds: Thresholds | None = None,
    style: common.GraphTresholdsStyleMode = common.GraphTresholdsStyleMode.OFF,
    bars: bool = False,
    stacked: bool = False,
    min_value: float | None = None,
    max_value: float | None = None,
    span: int = 12,
    height: int = 8,
) -> timeseries.Panel:
    p = timeseries.Panel().title(title).description(description).span(span).height(height)
    p.targets(list(queries)).unit(unit).thresholds(thresholds or steps(GREEN))
    p.thresholds_style(common_build.GraphThresholdsStyleConfig().mode(style))
    p.span_nulls(True).fill_opacity(10 if not bars else 80)
    if bars:
        p.draw_style(common.GraphDrawStyle.BARS)
    if stacked:
        p.stacking(common_build.StackingConfig().mode(common.StackingMode.NORMAL))
    if min_value is not None:
        p.min(min_value)
    if max_value is not None:
        p.max(max_value)
    return p


def stat_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "",
    thresholds: Thresholds | None = None,
    decimals: float | None = None,
    colors: Sequence[tuple[str, str]] = (),
    links: Sequence[build.DashboardLink] = (),
    span: int = 6,
    height: int = 5,
) -> stat.Panel:
    """The last value of each series; ``colors`` gives a series (by name) a fixed colour instead."""
    p = stat.Panel().title(title).description(description).span(span).height(height).targets(list(queries))
    p.unit(unit).thresholds(thresholds or steps(BLUE)).color_mode(common.BigValueColorMode.BACKGROUND)
    p.graph_mode(common.BigValueGraphMode.NONE).reduce_options(
        common_build.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
    )
    if decimals is not None:
        p.decimals(decimals)
    for name, color in colors:
        fixed = {"mode": "fixed", "fixedColor": color}
        p.override_by_name(name, [model.DynamicConfigValue("color", fixed)])
    if links:
        p.links(list(links))
    return p


def bargauge_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "",
    thresholds: Thresholds | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    links: Sequence[build.DashboardLink] = (),
    span: int = 8,
    height: int = 8,
) -> bargauge.Panel:
    p = bargauge.Panel().title(title).description(description).span(span).height(height)
    p.targets(list(queries)).unit(unit).thresholds(thresholds or steps(BLUE))
    p.display_mode(common.BarGaugeDisplayMode.BASIC).orientation(common.VizOrientation.HORIZONTAL)
    p.reduce_options(common_build.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    if min_value is not None:
        p.min(min_value)
    if max_value is not None:
        p.max(max_value)
    if links:
        p.links(list(links))
    return p


def table_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    hide: Sequence[str] = ("Time",),
    rename: Sequence[tuple[str, str]] = (),
    units: Sequence[tuple[str, str]] = (),
    data_links: Sequence[build.DashboardLink] = (),
    link_field: str = "",
    sort_by: str = "",
    descending: bool = False,
    transformations: Sequence[model.DataTransformerConfig] = (),
    span: int = 12,
    height: int = 8,
) -> table.Panel:
    """A table: ``hide`` and ``rename`` columns (by their query names), give columns ``units`` and put
    ``data_links`` on ``link_field``'s cells (the drill-down; names after renaming)."""
    p = table.Panel().title(title).description(description).span(span).height(height).targets(list(queries))
    steps_ = [*transformations]
    if hide or rename:
        organize = transform(
            "organize", excludeByName=dict.fromkeys(hide, True), renameByName=dict(rename), indexByName={}
        )
        steps_.append(organize)
    if steps_:
        p.transformations(steps_)
    for name, unit in units:
        p.override_by_name(name, [model.DynamicConfigValue("unit", unit)])
    if sort_by:
        p.sort_by([common_build.TableSortByFieldState().display_name(sort_by).desc(descending)])
    if data_links and link_field:
        p.override_by_name(link_field, [model.DynamicConfigValue("links", [x.build() for x in data_links])])
    return p


def geomap_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    layer: str,
    color_field: str = "",
    thresholds: Thresholds | None = None,
    transformations: Sequence[model.DataTransformerConfig] = (),
    span: int = 12,
    height: int = 12,
) -> geomap_build.Panel:
    """Markers at each row's ``lat`` / ``lon``, coloured by ``color_field`` through the thresholds."""
    color: dict[str, Any] = {"fixed": RED}
    if color_field:
        color = {"field": color_field, "fixed": RED}
    markers = (
        common_build.MapLayerOptions()
        .type("markers")
        .name(layer)
        .config({"showLegend": True, "style": {"color": color, "size": {"fixed": 6}, "opacity": 0.8}})
        .location(
            common_build.FrameGeometrySource()
            .mode(common.FrameGeometrySourceMode.COORDS)
            .latitude("lat")
            .longitude("lon")
        )
        .tooltip(True)
    )
    p = geomap_build.Panel().title(title).description(description).span(span).height(height)
    p.targets(list(queries)).thresholds(thresholds or steps(RED)).layers([markers])
    p.view(geomap_build.MapViewConfig().id("fit"))
    p.basemap(common_build.MapLayerOptions().type("default").name("Basemap"))
    if transformations:
        p.transformations(list(transformations))
    return p


def xy_panel(
    title: str, description: str, queries: Sequence[Query], *, x: str, span: int = 12, height: int = 8
) -> xychart.Panel:
    """Points of every other numeric column against ``x``."""
    p = xychart.Panel().title(title).description(description).span(span).height(height)
    p.targets(list(queries)).dims(xychart.XYDimensionConfig().x(x))
    return p


def timeline_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    thresholds: Thresholds | None = None,
    mappings: Sequence[model.ValueMapping] = (),
    span: int = 12,
    height: int = 8,
) -> statetimeline.Panel:
    p = statetimeline.Panel().title(title).description(description).span(span).height(height)
    p.targets(list(queries)).thresholds(thresholds or steps(GREEN)).merge_values(True)
    p.show_value(common.VisibilityMode.AUTO)
    if mappings:
        p.mappings(list(mappings))
    return p


def transform(transform_id: str, **options: Any) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=transform_id, options=options)


def value_map(pairs: Sequence[tuple[str, str, str]]) -> model.ValueMapping:
    """Value to (text, colour): ``[("true", "running", GREEN), ...]``."""
    options = {value: model.ValueMappingResult(text=text, color=color) for value, text, color in pairs}
    return model.ValueMap(options=options)


@dataclass(slots=True)
class Section:
    """A row of the dashboard and its panels (a row title of "" puts them at the top, without a row)."""

    title: str
    panels: Sequence[cogbuilder.Builder[model.Panel]] = field(default_factory=list)


def dashboard(
    uid: str,
    title: str,
    description: str,
    sections: Sequence[Section],
    *,
    variables: Sequence[build.QueryVariable] = (),
    annotations: Sequence[Annotation] = (),
    time_from: str = "now-24h",
) -> dict[str, Any]:
    """The JSON model of one dashboard: panels laid out row by row and numbered 1..n in order."""
    d = (
        build.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone(CITY_TIMEZONE)
        .time(time_from, "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .link(
            build.DashboardLink("CityWatch")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )
    for v in variables:
        d.with_variable(v)
    d.annotations([_builtin_annotations(), *annotations])
    for section in sections:
        if section.title:
            d.with_row(build.Row(section.title))
        for panel in section.panels:
            d.with_panel(panel)
    built = d.build()
    for number, placed in enumerate(built.panels or [], start=1):
        placed.id_val = number
        if isinstance(placed, model.Panel):
            placed.datasource = datasource()
    encoded: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    encoded["templating"].setdefault("list", [])  # Grafana's own export always has the list
    return encoded


def _builtin_annotations() -> build.AnnotationQuery:
    """Grafana's own annotations (people's notes on panels), as every new dashboard has them."""
    return (
        build.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .target(build.AnnotationTarget().type("dashboard").limit(100).match_any(False).tags([]))
    )
