"""On-time closure rate (按期结案率) and closure rate of fault alerts, per period and group (pure).

DOMAIN.md section 6 counts cases per period, as digital city management does: ``on-time closure rate =
cases closed before their deadline / cases due in the period`` (a published monthly bulletin: 737 / 972 =
75.82 %; the plan's target is at least 95 %). Over a period ``[start_ms, end_ms)`` (half-open: a deadline
exactly at ``end_ms`` belongs to the next period, one exactly at ``start_ms`` to this one):

- **case**: an alert that counts (``ClosureConfig``): not a rate shortfall (a KPI, not a repair), not
  carried by an incident (a circuit outage's lamp: the incident is the case), not under planned works.
- **done at**: ``resolved_ms``, the fix, while the alert is resolved or closed. The deadline is a repair
  deadline, so the fix is what is judged; ``closed_ms`` only confirms it (the reopen grace ran out, or a
  person checked) and moves no count. A reopened alert is not done (the lifecycle clears
  ``resolved_ms``); a closed alert without ``resolved_ms`` (the lifecycle table allows none) counts as
  done at ``closed_ms``.
- **due**: ``deadline_ms`` in the period. **on time**: due and done at or before the deadline (the rule
  of ``Alert.on_time``). **overdue open**: due and not done by ``end_ms``.
- **opened**: ``opened_ms`` in the period. **closed**: opened in the period and done before ``end_ms``.
- ``on_time_rate = on_time / due``; ``closure_rate = closed / opened`` (of the cases opened in the
  period, the share fixed by its end: at most 100 %, unlike closures / openings, which a worked-off
  backlog pushes over 100 % while new cases stay open). ``None`` where the denominator is 0.

Every count is a sum over alerts, so any grouping adds up to the city (a case with no district, road,
... falls in the group ``""``). Once the period is over its numbers no longer change: a case due in it
is on time only if fixed by its deadline, which lies inside the period.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from analytics.alerts import AlertConfigError
from analytics.alerts.model import Alert, AlertState

CITY = "city"

#: What ``closure_table`` groups by: the alert's own routing fields, its rule family (the asset class:
#: streetlight, drainage, ...) or the whole city (one row named "city").
GROUPS: Mapping[str, Callable[[Alert], str]] = MappingProxyType(
    {
        "district": lambda a: a.district,
        "road": lambda a: a.road,
        "grid_cell": lambda a: a.grid_cell,
        "crew": lambda a: a.crew,
        "family": lambda a: a.family,
        CITY: lambda a: CITY,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosureConfig:
    """Which alerts are cases, and the target."""

    # DOMAIN.md section 6: the plan's target for the on-time closure rate is at least 95 %.
    on_time_target: float = 0.95
    # CHOICE: rate shortfalls (family "rate", docs/analytics.md) are KPIs a district misses, not repairs.
    excluded_families: tuple[str, ...] = ("rate",)
    # CHOICE: an alert carried by an incident (``parent`` set) is fixed with it; the incident is the case
    # (DOMAIN.md section 2: crews fix a circuit, not a lamp list).
    count_suppressed: bool = False
    # CHOICE: an alert raised under planned works (``maintenance`` set) is expected, not a fault to repair.
    count_maintenance: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.on_time_target <= 1.0:
            raise AlertConfigError(f"on_time_target {self.on_time_target!r} is not a rate in (0, 1]")
        object.__setattr__(self, "excluded_families", tuple(self.excluded_families))
        if any(not isinstance(f, str) or not f for f in self.excluded_families):
            raise AlertConfigError("excluded_families holds an empty or non-text family name")

    def counts(self, alert: Alert) -> bool:
        """Whether ``alert`` is a case."""
        return (
            alert.family not in self.excluded_families
            and (self.count_suppressed or not alert.parent)
            and (self.count_maintenance or not alert.maintenance)
        )


@dataclass(frozen=True, slots=True)
class ClosureRow:
    """One group's cases in one period; rates are ``None`` where nothing is counted below the line."""

    group: str
    due: int = 0
    on_time: int = 0
    overdue_open: int = 0
    opened: int = 0
    closed: int = 0

    @property
    def late(self) -> int:
        """Due in the period and not fixed by the deadline (fixed late, or still open)."""
        return self.due - self.on_time

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.due if self.due else None

    @property
    def closure_rate(self) -> float | None:
        return self.closed / self.opened if self.opened else None

    def __add__(self, other: ClosureRow) -> ClosureRow:
        return ClosureRow(
            self.group,
            self.due + other.due,
            self.on_time + other.on_time,
            self.overdue_open + other.overdue_open,
            self.opened + other.opened,
            self.closed + other.closed,
        )


def done_ms(alert: Alert) -> int | None:
    """When the case counts as closed: the fix (``resolved_ms``) once resolved or closed; else None."""
    if alert.state not in (AlertState.RESOLVED, AlertState.CLOSED):
        return None
    return alert.resolved_ms if alert.resolved_ms is not None else alert.closed_ms


def case_row(alert: Alert, start_ms: int, end_ms: int, group: str = "") -> ClosureRow:
    """One alert's contribution to a period (0 or 1 in each count), whether or not it is a case."""
    done = done_ms(alert)
    due = start_ms <= alert.deadline_ms < end_ms
    opened = start_ms <= alert.opened_ms < end_ms
    done_by_end = done is not None and done < end_ms
    return ClosureRow(
        group,
        due=int(due),
        on_time=int(due and done is not None and done <= alert.deadline_ms),
        overdue_open=int(due and not done_by_end),
        opened=int(opened),
        closed=int(opened and done_by_end),
    )


def closure_table(
    alerts: Iterable[Alert],
    start_ms: int,
    end_ms: int,
    by: str,
    config: ClosureConfig | None = None,
) -> list[ClosureRow]:
    """Cases of ``[start_ms, end_ms)`` per group of ``by`` (a key of ``GROUPS``), sorted by group.

    Groups with nothing due or opened in the period are left out, except the one "city" row, which is
    always there.
    """
    if by not in GROUPS:
        raise AlertConfigError(f"closure rates group by one of {', '.join(GROUPS)}, not {by!r:.40}")
    if end_ms <= start_ms:
        raise AlertConfigError(f"the period ends ({end_ms}) before it starts ({start_ms})")
    config = config or ClosureConfig()
    key = GROUPS[by]
    rows: dict[str, ClosureRow] = {CITY: ClosureRow(CITY)} if by == CITY else {}
    for alert in alerts:
        if not config.counts(alert):
            continue
        row = case_row(alert, start_ms, end_ms)
        if not (row.due or row.opened):
            continue
        group = key(alert)
        rows[group] = rows.get(group, ClosureRow(group)) + row
    return [rows[g] for g in sorted(rows)]


def closure_by_window(
    alerts: Iterable[Alert], windows: Sequence[tuple[int, int]], config: ClosureConfig | None = None
) -> list[ClosureRow]:
    """The city row of each window (sorted, not overlapping; e.g. the days of a period): the same rows as
    ``closure_table(alerts, start, end, "city")`` per window, in one pass (an alert counts only in the
    windows holding its deadline or its opening)."""
    config = config or ClosureConfig()
    starts = [start for start, _ in windows]
    if any(end <= start for start, end in windows) or any(
        b[0] < a[1] for a, b in itertools.pairwise(windows)
    ):
        raise AlertConfigError("closure windows must be sorted, not empty and not overlapping")
    rows = [ClosureRow(CITY) for _ in windows]
    for alert in alerts:
        if not config.counts(alert):
            continue
        hit = {
            bisect.bisect_right(starts, alert.deadline_ms) - 1,
            bisect.bisect_right(starts, alert.opened_ms) - 1,
        }
        for i in hit:
            if i >= 0:
                rows[i] = rows[i] + case_row(alert, *windows[i])
    return rows


def overdue_at(alerts: Iterable[Alert], at_ms: int, config: ClosureConfig | None = None) -> list[Alert]:
    """Cases past their deadline and not fixed at ``at_ms``, the longest overdue first."""
    config = config or ClosureConfig()
    late = []
    for alert in alerts:
        done = done_ms(alert)
        if (
            config.counts(alert)
            and alert.opened_ms < at_ms
            and alert.deadline_ms < at_ms
            and (done is None or done >= at_ms)
        ):
            late.append(alert)
    return sorted(late, key=lambda a: (a.deadline_ms, a.id))
