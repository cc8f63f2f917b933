"""The ``command_not_effective`` finding: a device acknowledged a command its telemetry does not show. Pure.

Opened when a device's command ends ``not_effective`` (once per device: a second such command while it is
open raises nothing new), cleared when a later command to the device is confirmed (it obeys again). The
events are ``analytics.findings.FindingEvent``s, so they go where the analytics worker's go: the ``finding``
series (``analytics.lineproto.finding_line``) and the alert service (``on_events``).
"""

from __future__ import annotations

from collections.abc import Iterable

from analytics.findings import Change, Finding, FindingEvent, RuleInfo
from api.commanding.model import CommandState, DeviceCommand
from devices.commands import describe

RULE = "command_not_effective"
COMMAND_NOT_EFFECTIVE = RuleInfo(
    rule=RULE,
    subject="device",  # a lamp or a pump station: the finding's subject_kind says which
    family="command",
    title="Command not effective",
    explain="{subject} acknowledged a command that its telemetry does not show: {value:.1f} observed where"
    " {threshold:.1f} was the bound, since {since}",
)


def _finding(command: DeviceCommand) -> Finding:
    since = command.delivered_ms if command.delivered_ms is not None else command.updated_ms
    return Finding(
        rule=RULE,
        subject_kind=command.kind.value,
        subject=command.device,
        number=-1,  # not numbered in an analytics topology
        district=command.district,
        level=0,
        value=command.observed,
        threshold=command.expected,
        since_ms=since,
        explanation=f"{command.device} acknowledged '{describe(command.order)}' (command {command.id}) but "
        f"{command.detail.removeprefix('acknowledged, but ')}",
    )


class IneffectiveBook:
    """The devices with an open ``command_not_effective`` finding."""

    def __init__(self, open_findings: Iterable[DeviceCommand] = ()) -> None:
        self._open: dict[str, Finding] = {c.device: _finding(c) for c in open_findings}

    def __contains__(self, device: object) -> bool:
        return device in self._open

    def __len__(self) -> int:
        return len(self._open)

    def update(self, changed: Iterable[DeviceCommand], now_ms: int) -> list[FindingEvent]:
        """The finding events of these command changes."""
        events: list[FindingEvent] = []
        for command in changed:
            if command.state is CommandState.NOT_EFFECTIVE and command.device not in self._open:
                finding = self._open[command.device] = _finding(command)
                events.append(FindingEvent(Change.OPENED, finding, now_ms))
            elif command.state is CommandState.CONFIRMED and command.device in self._open:
                events.append(FindingEvent(Change.CLEARED, self._open.pop(command.device), now_ms))
        return events
