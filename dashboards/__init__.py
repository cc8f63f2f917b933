"""CityWatch's Grafana dashboards as code: built with grafana-foundation-sdk, committed as JSON, pushed.

Each dashboard module (``overview``, ``streetlights``, ``bridges``, ``drainage``, ``sanitation``,
``platform``) builds one dashboard; ``dashboards.build.build_all()`` returns them all as JSON models.
Every query is raw InfluxQL against the data source ``citywatch-influx`` (``dashboards.influxql``), so the
same JSON serves InfluxDB 1.x, 2.x and 3.x. ``dashboards.structure`` checks a model (panel ids, data
source references, variables) and lists its queries; ``dashboards.push`` sends the models to a Grafana.

Errors::

    DashboardError          (dashboards) something the dashboards cannot do
     └── PushError           Grafana refused a request or could not be reached: what, and why
"""

from __future__ import annotations


class DashboardError(Exception):
    """Root of the dashboards' errors."""


class PushError(DashboardError):
    """Grafana refused a request of the push, or could not be reached."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason
