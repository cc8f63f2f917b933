"""Raw InfluxQL queries, annotations and variables on the CityWatch data source, for the foundation SDK.

The SDK has no InfluxDB query type, so this module adds one (a ``Dataquery`` with its builder) in the
shape Grafana's InfluxDB data source stores: ``{"refId", "datasource", "query", "rawQuery": true,
"resultFormat"}``. Raw InfluxQL, never the visual editor or Flux: InfluxDB 1.x serves it natively, 2.x and
3.x through their v1 compatibility API, so one dashboard serves all three.

Conventions every query here follows (``dashboards.structure`` relies on them):

- the time range is ``$timeFilter`` and the bucket ``$__interval``, as Grafana substitutes them;
- a template variable is only used as ``/^$name$/`` (a regex: one value, several, or All);
- every selected value is named, ``AS "name"``, or is a plain field or tag, so its column is known.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import dashboard as build
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_UID = "citywatch-influx"
DATASOURCE_TYPE = "influxdb"
TIME_FILTER = "$timeFilter"
INTERVAL = "$__interval"


def datasource() -> model.DataSourceRef:
    """The one data source every panel, variable and annotation names (provisioned with this uid)."""
    return model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


def regex(variable: str) -> str:
    """The only way a query uses a variable: as an anchored regex, which holds one value or All."""
    return f"/^${variable}$/"


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target of a panel."""

    def __init__(self, query: str, ref_id: str = "A", result_format: str = "time_series", alias: str = ""):
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": datasource(),
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias:
            payload["alias"] = self.alias
        return payload


class Query(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builds an ``InfluxQLQuery``: ``Query(text).ref("B").table()``."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(" ".join(query.split()))

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> typing.Self:
        """Rows as a table: group-by tags become columns (lists, maps, joins)."""
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> typing.Self:
        """The series name, e.g. ``$tag_scope_id`` for one series per group."""
        self._internal.alias = alias
        return self


class InfluxAnnotation(model.AnnotationQuery):
    """An annotation from an InfluxQL query: time, ``text`` and ``tags`` columns.

    Written twice over: as the query target Grafana 10 to 12 store (``target``), and in the older
    top-level fields that their migration still reads, so any of those versions shows the same events.
    """

    def __init__(self, name: str, query: str, text_column: str, tags_column: str, icon_color: str) -> None:
        super().__init__(name=name, datasource=datasource(), enable=True, hide=False, icon_color=icon_color)
        self.query = " ".join(query.split())
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        columns = {"textColumn": self.text_column, "tagsColumn": self.tags_column}
        payload["target"] = {
            "refId": "Anno",
            "datasource": datasource(),
            "query": self.query,
            "rawQuery": True,
            "fromAnnotations": True,
            "textEditor": True,
            **columns,
        }
        payload.update(query=self.query, **columns)
        return payload


class Annotation(cogbuilder.Builder[model.AnnotationQuery]):
    def __init__(self, name: str, query: str, *, text: str, tags: str, color: str) -> None:
        self._internal = InfluxAnnotation(name, query, text, tags, color)

    def build(self) -> InfluxAnnotation:
        return self._internal


def variable(
    name: str,
    label: str,
    query: str,
    *,
    include_all: bool = False,
    multi: bool = False,
    hidden: bool = False,
    description: str = "",
) -> build.QueryVariable:
    """A query variable on the data source. All (``include_all``) stands for every value the query
    returns, so a drill-down level set to All still keeps to its parent's choice."""
    v = (
        build.QueryVariable(name)
        .id(name)
        .label(label)
        .query(" ".join(query.split()))
        .datasource(datasource())
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .include_all(include_all)
        .multi(multi)
    )
    if include_all:
        v.current(model.VariableOption(selected=True, text="All", value="$__all"))
    if hidden:
        v.hide(model.VariableHide.HIDE_VARIABLE)
    if description:
        v.description(description)
    return v
