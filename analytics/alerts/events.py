"""Alert transitions as InfluxDB line protocol, for Grafana annotations (pure).

Measurement::

    alert_event  tags rule, subject, severity, district, crew, state (the state moved to), event, partition
                 fields alert_id, actor, note, from_state ("" for a creation), deadline_ms,
                 title ("<state>: <rule> on <subject>", the annotation's text)
                 time: the transition's at_ms (write with precision=ms)

Escaped as ``analytics.lineproto`` escapes findings. ``subject`` is a tag, as in the ``finding``
measurement: InfluxDB keeps one point per series and time, and one tick opens many alerts at the same
millisecond (the lamps of a circuit, a crew's district): without the subject in the series they would
overwrite each other and Grafana would draw one annotation for ten alerts.
"""

from __future__ import annotations

from analytics.alerts.model import Alert, Transition
from analytics.lineproto import string_field, tag_set

ALERT_EVENT = "alert_event"
# InfluxDB refuses a string field above 64 KiB, and with it the whole write; a person's note is a few
# lines, so a longer one is cut here rather than lose the batch.
MAX_NOTE_CHARS = 4000


def annotation_title(t: Transition, alert: Alert) -> str:
    return f"{t.to_state.value}: {alert.rule} on {alert.subject}"


def transition_line(t: Transition, alert: Alert, partition: str) -> str:
    """One transition of ``alert`` as a line (ms precision); tags with an empty value are left out."""
    tags = tag_set(
        [
            ("rule", alert.rule),
            ("subject", alert.subject),
            ("severity", alert.severity.value),
            ("district", alert.district),
            ("crew", alert.crew),
            ("state", t.to_state.value),
            ("event", t.event),
            ("partition", partition),
        ]
    )
    fields = [
        f"alert_id={string_field(t.alert_id)}",
        f"actor={string_field(t.actor)}",
        f"note={string_field(t.note[:MAX_NOTE_CHARS])}",
        f"from_state={string_field('' if t.from_state is None else t.from_state.value)}",
        f"deadline_ms={alert.deadline_ms}i",
        f"title={string_field(annotation_title(t, alert))}",
    ]
    return f"{ALERT_EVENT}{tags} {','.join(fields)} {t.at_ms}"
