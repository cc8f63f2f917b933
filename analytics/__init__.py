"""CityWatch analytics: live device state, detectors, findings and the city's rates.

The core (``topology``, ``state``, ``findings``, ``engine``, ``schedule``, ``rates`` and the rule
modules) is pure: values in, values out, no MQTT, HTTP or database code and no clock. The adapters
(``worker``: MQTT in; ``store``: InfluxDB out and the restart replay) sit at the edge.

Exceptions::

    AnalyticsError
     ├── TopologyError       the registry's assets cannot be turned into the dense device tables
     ├── RuleConfigError     a rule, schedule or rate setting is inconsistent
     └── RestoreError        the state could not be rebuilt from InfluxDB on start
"""


class AnalyticsError(Exception):
    """Root of every error raised by the analytics package."""


class TopologyError(AnalyticsError):
    """The registry's assets cannot be turned into dense device tables."""


class RuleConfigError(AnalyticsError, ValueError):
    """A rule, schedule or rate setting is inconsistent (a ValueError, so settings report it as invalid)."""


class RestoreError(AnalyticsError):
    """The live state could not be rebuilt from InfluxDB."""
