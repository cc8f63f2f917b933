"""Fault alerts for maintenance crews: lifecycle, severity and deadlines, routing, notifications, closure.

An alert is what a crew acts on; it comes from a finding (``analytics.findings``). The core here is pure
(``model``, ``lifecycle``, ``severity``, ``policy``, ``routing``, ``closure``); ``store`` (SQL and the
InfluxDB event line), ``notify`` (apprise, MQTT) and the service loop are the adapters.

Exceptions::

    AlertError
     ├── IllegalTransition      the lifecycle table has no such move from the alert's state
     ├── UnknownAlert           no alert with that id
     ├── AlertConfigError       severity, calendar, routing or notification settings are inconsistent
     └── DeliveryError          a notification could not be delivered (retried later)
"""


class AlertError(Exception):
    """Root of every error raised by the alerts package."""


class IllegalTransition(AlertError):
    def __init__(self, alert_id: str, state: str, event: str) -> None:
        super().__init__(f"alert {alert_id} is {state}: it cannot be {event}")
        self.alert_id, self.state, self.event = alert_id, state, event


class UnknownAlert(AlertError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(f"no alert {alert_id}")
        self.alert_id = alert_id


class AlertConfigError(AlertError, ValueError):
    """A severity, calendar, routing or notification setting is inconsistent."""


class DeliveryError(AlertError):
    """A notification could not be delivered; the sender retries it."""
