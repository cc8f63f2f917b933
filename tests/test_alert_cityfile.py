"""The city's alert rules file: severity, calendar, planned works; read again when an operator edits it."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from analytics.alerts import AlertConfigError
from analytics.alerts.cityfile import rules_from_text
from analytics.alerts.model import Severity
from analytics.alerts.policy import AlertPolicy, PolicyConfig
from analytics.alerts.routing import Contacts, TopologyLocator
from analytics.alerts.service import AlertService
from analytics.alerts.severity import SeverityConfig, SeverityPolicy, WorkCalendar
from analytics.alerts.store import AlertStore
from analytics.topology import build_topology

RULES = """
[severity]
rules = { cabinet_door = "ordinary" }

[calendar]
holidays = ["2026-10-01"]

[policy]
ack_timeout_min = { serious = 60 }
auto_resolve_after_min = 5

[[maintenance]]
scope_kind = "road"
scope_id = "Luoyu Road"
start = 2026-11-24T22:00:00+08:00
end = "2026-11-25T05:00:00+08:00"
reason = "cable replacement"
"""


def test_the_rules_file_gives_severity_calendar_and_planned_works() -> None:
    rules = rules_from_text(RULES)
    assert rules.severity.rules["cabinet_door"] is Severity.ORDINARY
    assert dt.date(2026, 10, 1) in rules.calendar.holidays
    assert rules.policy.ack_timeout_ms[Severity.SERIOUS] == 3_600_000
    assert rules.policy.ack_timeout_ms[Severity.EMERGENCY] == 15 * 60_000  # the default stays
    assert rules.policy.auto_resolve_after_ms == 5 * 60_000
    (window,) = rules.maintenance
    assert (window.scope_kind, window.scope_id, window.reason) == ("road", "Luoyu Road", "cable replacement")
    assert window.start_ms == round(dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC).timestamp() * 1000)
    assert window.end_ms - window.start_ms == 7 * 3_600_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[maintenance]]\nscope_kind = 'road'\nscope_id = 'x'\nstart = 2026-11-24T22:00:00\n"
         "end = 2026-11-25T05:00:00+08:00\nreason = 'r'", "UTC offset"),
        ("[[maintenance]]\nscope_kind = 'road'\nscope_id = 'x'\nend = 2026-11-25T05:00:00+08:00",
         "start is missing"),
        ("[works]\n", "unknown sections"),
        ("[policy]\nack_timeout = 5", "unknown keys"),
        ("[severity]\nrules = { leakage = 'urgent' }", "severity"),
        ("not toml = = 1", "alert rules file"),
    ],
)  # fmt: skip
def test_a_bad_rules_file_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(AlertConfigError, match=message):
        rules_from_text(text)


def test_the_service_reads_planned_works_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "alert-rules.toml"
    path.write_text("", encoding="utf-8")
    policy = AlertPolicy(
        PolicyConfig(),
        SeverityPolicy(SeverityConfig(), WorkCalendar()),
        Contacts.from_mapping({}),
        TopologyLocator(build_topology([])),
        catalogue={},
    )
    with AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}") as store:
        service = AlertService(policy, store, None, None, "all", rules_file=path)
        assert service.policy.config.maintenance == ()
        path.write_text(RULES, encoding="utf-8")
        os.utime(path, ns=(1, 2))  # a new modification time, whatever the clock's resolution
        service.tick(0)
        assert [w.scope_id for w in service.policy.config.maintenance] == ["Luoyu Road"]
        path.write_text("[works]\n", encoding="utf-8")  # a broken edit keeps what was loaded
        os.utime(path, ns=(3, 4))
        service.tick(1)
        assert [w.scope_id for w in service.policy.config.maintenance] == ["Luoyu Road"]
