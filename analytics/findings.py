"""Findings: what the rules see, with its explanation, opened once and cleared once.

A rule reports, at every evaluation, the full set of subjects where its condition holds now as one
``Conditions`` value (arrays: subject numbers, the observed value, the threshold or baseline, a level,
since when). The ``FindingBook`` compares that set with the findings it holds open for the rule and
returns ``FindingEvent``s: ``opened`` for a new subject, ``level`` when the level changes (a bridge
channel going from level 3 to level 2), ``cleared`` when the condition no longer holds. A rule absent
from an update keeps its findings as they are. Debounce and hysteresis are the rules' business: a
subject is active or not.

Every rule has a ``RuleInfo`` (subject kind, title, explanation template); the book writes each
finding's explanation from it when the finding opens, so a crew reads e.g. "active power 0.4 W below
18.0 W while switched on, since 2026-06-21 21:04 UTC". Pure.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from analytics import RuleConfigError

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a rule is about and how its findings explain themselves.

    ``explain`` is a ``str.format`` template over: subject, value, threshold, unit, level, since (UTC
    text), children (how many attached). ``family`` groups rules (streetlight, comm, bridge, drainage,
    flood, bin, rate, generic).
    """

    rule: str
    subject: str  # a DeviceKind value, "circuit", "gateway", "road", "road_class", "grid_cell", ...
    family: str
    title: str
    explain: str
    unit: str = ""


class Namer(Protocol):
    def names(self, subject: str, numbers: npt.ArrayLike) -> list[str]: ...

    def subject_district(self, subject: str, numbers: npt.ArrayLike) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Conditions:
    """The subjects where a rule's condition holds now; per-subject arrays are aligned with ``active``."""

    rule: str
    active: IntArray  # subject numbers, ascending, unique
    value: FloatArray
    threshold: FloatArray
    level: IntArray | None = None  # 1 most severe; None: the rule has one level (0)
    since_ms: Int64Array | None = None  # when the condition began; None: the evaluation that first sees it
    children: Mapping[int, IntArray] | None = None  # subject number -> attached child subject numbers
    child_subject: str | None = None  # what the children are (e.g. "lamp")

    @staticmethod
    def none(rule: str) -> Conditions:
        empty = np.zeros(0, dtype=np.int32)
        return Conditions(rule, empty, np.zeros(0), np.zeros(0))

    @staticmethod
    def where(
        rule: str,
        mask: npt.NDArray[np.bool_],
        value: npt.ArrayLike,
        threshold: npt.ArrayLike,
        *,
        level: npt.ArrayLike | None = None,
        since_ms: npt.ArrayLike | None = None,
    ) -> Conditions:
        """Conditions from a boolean mask over all subjects and per-subject (or scalar) arrays."""
        active = np.flatnonzero(mask).astype(np.int32)
        n = len(mask)

        def pick(a: npt.ArrayLike, dtype: type) -> npt.NDArray[Any]:
            arr: npt.NDArray[Any] = np.asarray(a, dtype=dtype)
            if arr.ndim != 0 and arr.shape != (n,):
                raise RuleConfigError(f"{rule}: a value array of shape {arr.shape} for {n} subjects")
            return np.broadcast_to(arr, (n,))[active]

        return Conditions(
            rule,
            active,
            pick(value, np.float64),
            pick(threshold, np.float64),
            None if level is None else pick(level, np.int32),
            None if since_ms is None else pick(since_ms, np.int64),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One open (or just cleared) finding: a rule holding for one subject."""

    rule: str
    subject_kind: str
    subject: str  # the subject's id (device id, circuit, gateway, road, ...)
    number: int  # the subject's number in this worker's topology
    district: str
    level: int
    value: float
    threshold: float
    since_ms: int
    explanation: str
    children: tuple[str, ...] = ()
    child_kind: str = ""

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"


class Change(enum.StrEnum):
    OPENED = "opened"
    LEVEL = "level"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class FindingEvent:
    change: Change
    finding: Finding
    at_ms: int


@dataclass(slots=True)
class _Open:
    subjects: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    findings: dict[int, Finding] = field(default_factory=dict)
    hold_until: dict[int, int] = field(default_factory=dict)  # restored, not to be cleared before (ms)


def utc_text(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class FindingBook:
    """The open findings of every rule, updated from ``Conditions``."""

    def __init__(self, rules: Mapping[str, RuleInfo], namer: Namer) -> None:
        self.rules = MappingProxyType(dict(rules))
        self.namer = namer
        self._open: dict[str, _Open] = {rule: _Open() for rule in rules}

    def update(self, now_ms: int, conditions: Iterable[Conditions]) -> list[FindingEvent]:
        events: list[FindingEvent] = []
        for cond in conditions:
            info = self.rules.get(cond.rule)
            if info is None:
                raise RuleConfigError(f"rule {cond.rule!r} has no RuleInfo")
            events.extend(self._update_rule(now_ms, info, cond))
        return events

    def _update_rule(self, now_ms: int, info: RuleInfo, cond: Conditions) -> list[FindingEvent]:
        held = self._open[info.rule]
        active = cond.active
        events: list[FindingEvent] = []
        gone = np.setdiff1d(held.subjects, active, assume_unique=True)
        kept: list[int] = []
        for number in gone.tolist():
            if held.hold_until.get(number, 0) > now_ms:
                kept.append(number)  # restored after a restart; the rule may not have seen enough yet
                continue
            held.hold_until.pop(number, None)
            finding = held.findings.pop(number)
            events.append(FindingEvent(Change.CLEARED, finding, now_ms))
        new_mask = ~np.isin(active, held.subjects, assume_unique=True)
        levels = cond.level if cond.level is not None else np.zeros(len(active), dtype=np.int32)
        if cond.level is not None and held.findings:
            for i in np.flatnonzero(~new_mask).tolist():
                number = int(active[i])
                old = held.findings[number]
                if old.level != int(levels[i]):
                    changed = replace(old, level=int(levels[i]), value=float(cond.value[i]))
                    held.findings[number] = changed
                    events.append(FindingEvent(Change.LEVEL, changed, now_ms))
        new = np.flatnonzero(new_mask)
        if len(new):
            numbers = active[new]
            names = self.namer.names(info.subject, numbers)
            districts = self.namer.subject_district(info.subject, numbers)
            for j, i in enumerate(new.tolist()):
                number = int(active[i])
                since = int(cond.since_ms[i]) if cond.since_ms is not None else now_ms
                kids: tuple[str, ...] = ()
                if cond.children is not None and cond.child_subject is not None:
                    kids = tuple(self.namer.names(cond.child_subject, cond.children.get(number, ())))
                finding = Finding(
                    rule=info.rule,
                    subject_kind=info.subject,
                    subject=names[j],
                    number=number,
                    district=districts[j],
                    level=int(levels[i]),
                    value=float(cond.value[i]),
                    threshold=float(cond.threshold[i]),
                    since_ms=since,
                    explanation=_explain(info, names[j], cond, i, int(levels[i]), since, len(kids)),
                    children=kids,
                    child_kind=cond.child_subject or "",
                )
                held.findings[number] = finding
                events.append(FindingEvent(Change.OPENED, finding, now_ms))
        subjects = np.asarray(active, dtype=np.int32)
        held.subjects = np.union1d(subjects, np.array(kept, dtype=np.int32)) if kept else subjects.copy()
        return events

    def adopt(self, restored: Iterable[Finding], hold_until_ms: int) -> list[Finding]:
        """Take back the findings that were open before a restart, after the state has been replayed.

        A restored finding the replay also opened keeps its original identity (since, explanation) and
        raises nothing. One the replay did not open stays open, and is not cleared before
        ``hold_until_ms``: the rule may need more readings than the replay held to see it again. Returns
        the findings the replay opened that were not open before: they opened while the worker was down
        and still need their ``opened`` event.
        """
        before: set[tuple[str, int]] = set()
        for finding in restored:
            held = self._open.get(finding.rule)
            if held is None or finding.number < 0:
                continue
            before.add((finding.rule, finding.number))
            if finding.number not in held.findings:
                held.hold_until[finding.number] = hold_until_ms
            held.findings[finding.number] = finding
        for held in self._open.values():
            held.subjects = np.array(sorted(held.findings), dtype=np.int32)
        return [f for f in self.open_findings() if (f.rule, f.number) not in before]

    def open_subjects(self, rule: str) -> IntArray:
        held = self._open.get(rule)
        return held.subjects if held is not None else np.zeros(0, dtype=np.int32)

    def open_findings(self) -> list[Finding]:
        return [f for held in self._open.values() for f in held.findings.values()]

    def counts(self) -> dict[str, int]:
        return {rule: len(held.findings) for rule, held in self._open.items() if held.findings}


def _explain(
    info: RuleInfo, subject: str, cond: Conditions, i: int, level: int, since: int, kids: int
) -> str:
    try:
        return info.explain.format(
            subject=subject,
            value=float(cond.value[i]),
            threshold=float(cond.threshold[i]),
            unit=info.unit,
            level=level,
            since=utc_text(since),
            children=kids,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise RuleConfigError(f"rule {info.rule}: bad explanation template: {exc}") from exc
