"""Matching the analytics' findings with the simulator's ground truth: pure functions for bench/detection.py.

Vocabulary:

- a ``TruthFault`` is one injected fault as the report sees it: the rule expected to catch it, the subject
  (device, circuit or gateway id), its window ``[start, end)`` and the *runs* in which it was observable
  (first and last tick of each stretch of consecutive ticks at which the simulator says it could be seen:
  a lamp failure while the lamp is switched on, a fail-to-start while the well is at the start level...).
  A run counts when it lasts at least ``hold_ms`` (the debounce or persistence a rule needs); the fault is
  *observable* when one run counts, from the start of the first such run (``since_ms``). Faults never
  observable are left out of recall and counted on their own.
- a ``FindingSpan`` is one finding of the engine, from its ``opened`` event to its ``cleared`` one (None:
  still open at the end).

Rules of the count (``score``), per report row (one expected rule):

- a finding of the row's rule is a true positive when a fault of that rule on the same subject has a window
  ``[start, end + slack_ms]`` containing the finding's open time; otherwise a false positive. A false
  positive on a subject (or a parent: a lamp's circuit or gateway) that had another fault at the time is
  also counted as ``cross``: the detector saw *something*, under another rule's name.
- an observable fault is detected when a finding of its rule and subject opens within its window, or was
  already open before it began and stayed open through its first observable run (delay 0). Delay: open
  time minus ``since_ms``.
- incidents: how many findings of the rule opened for one fault within one observable run (a run starts a
  new part of the window: a circuit outage may clear at dawn and rightly reopen at dusk); the row keeps the
  worst fault. A cable theft should be one incident, not one per lamp nor a flapping finding.

Pure: no clock, no I/O; loaded by path from the bench script and the tests (``bench`` is not a package).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Run = tuple[int, int]  # first and last observable tick (epoch ms)


@dataclass(frozen=True, slots=True)
class TruthFault:
    label: str  # the report row: the fault kind (device_offline is split by device kind)
    rule: str  # the rule expected to catch it
    subject: str  # the id of the device, circuit or gateway
    start_ms: int
    end_ms: int
    runs: tuple[Run, ...] = ()
    hold_ms: int = 0  # a run counts when last - first >= hold_ms
    slack_ms: int = 0  # a finding may open this long after the end and still match

    @property
    def qualifying(self) -> tuple[Run, ...]:
        return tuple(r for r in self.runs if r[1] - r[0] >= self.hold_ms)

    @property
    def since_ms(self) -> int | None:
        """When the fault became observable: the first tick of its first run that lasts long enough."""
        runs = self.qualifying
        return runs[0][0] if runs else None

    def window_has(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms <= self.end_ms + self.slack_ms


@dataclass(frozen=True, slots=True)
class FindingSpan:
    rule: str
    subject: str
    opened_ms: int
    cleared_ms: int | None = None  # None: still open at the end of the run


def finding_spans(events: Iterable[tuple[str, str, str, int]]) -> list[FindingSpan]:
    """Spans from ``(change, rule, subject, at_ms)`` events in time order ("opened", "level", "cleared")."""
    open_at: dict[tuple[str, str], int] = {}
    spans: list[FindingSpan] = []
    for change, rule, subject, at_ms in events:
        key = (rule, subject)
        if change == "opened":
            if key in open_at:  # the book never opens twice; close the old one rather than lose it
                spans.append(FindingSpan(rule, subject, open_at[key], at_ms))
            open_at[key] = at_ms
        elif change == "cleared" and key in open_at:
            spans.append(FindingSpan(rule, subject, open_at.pop(key), at_ms))
    spans.extend(FindingSpan(rule, subject, at) for (rule, subject), at in open_at.items())
    spans.sort(key=lambda s: (s.opened_ms, s.rule, s.subject))
    return spans


@dataclass(slots=True)
class Runs:
    """Stretches of consecutive observable ticks of one fault, fed tick by tick."""

    runs: list[Run] = field(default_factory=list)
    _first: int | None = None
    _last: int = 0

    def step(self, t_ms: int, observable: bool) -> None:
        if observable:
            if self._first is None:
                self._first = t_ms
            self._last = t_ms
        elif self._first is not None:
            self.runs.append((self._first, self._last))
            self._first = None

    def close(self) -> tuple[Run, ...]:
        """The runs so far, an unfinished one included (the fault ended, or the simulation did)."""
        if self._first is not None:
            self.runs.append((self._first, self._last))
            self._first = None
        return tuple(self.runs)


@dataclass(frozen=True, slots=True)
class RowScore:
    label: str
    rule: str
    injected: int
    observable: int
    detected: int
    true_pos: int
    false_pos: int
    cross: int  # false positives on a subject with another fault at the time
    delays_ms: tuple[int, ...]
    max_incidents: int  # the most findings one fault raised within one observable run

    @property
    def recall(self) -> float:
        return self.detected / self.observable if self.observable else math.nan

    @property
    def precision(self) -> float:
        found = self.true_pos + self.false_pos
        return self.true_pos / found if found else math.nan

    @property
    def delay_median_s(self) -> float:
        return statistics.median(self.delays_ms) / 1000 if self.delays_ms else math.nan

    @property
    def delay_max_s(self) -> float:
        return max(self.delays_ms) / 1000 if self.delays_ms else math.nan


def detection_delay(fault: TruthFault, spans: Sequence[FindingSpan]) -> int | None:
    """The delay (ms) with which ``spans`` (its rule and subject) caught ``fault``; None: not caught, or
    never observable."""
    runs = fault.qualifying
    if not runs:
        return None
    since, until = runs[0]
    for span in spans:
        if span.opened_ms < fault.start_ms and (span.cleared_ms is None or span.cleared_ms > until):
            return 0  # raised before and held through the first run it could be seen in: on the board
        if fault.window_has(span.opened_ms):
            return span.opened_ms - since
    return None


def incidents(fault: TruthFault, spans: Sequence[FindingSpan]) -> int:
    """The most findings opened within one observable run of ``fault`` (each run owns the time up to the
    next one)."""
    runs = fault.qualifying
    if not runs:
        return 0
    starts = [fault.start_ms, *(r[0] for r in runs[1:])]
    ends = [*(r[0] for r in runs[1:]), fault.end_ms + fault.slack_ms + 1]
    counts = [sum(1 for s in spans if lo <= s.opened_ms < hi) for lo, hi in zip(starts, ends, strict=True)]
    return max(counts)


class _Index:
    """Faults and findings by (rule, subject), and faults by subject."""

    def __init__(self, truth: Sequence[TruthFault], spans: Sequence[FindingSpan]) -> None:
        self.faults_at: dict[tuple[str, str], list[TruthFault]] = defaultdict(list)
        self.any_fault: dict[str, list[TruthFault]] = defaultdict(list)
        for fault in truth:
            self.faults_at[fault.rule, fault.subject].append(fault)
            self.any_fault[fault.subject].append(fault)
        self.spans_at: dict[tuple[str, str], list[FindingSpan]] = defaultdict(list)
        for span in sorted(spans, key=lambda s: s.opened_ms):
            self.spans_at[span.rule, span.subject].append(span)

    def true_positive(self, span: FindingSpan) -> bool:
        return any(f.window_has(span.opened_ms) for f in self.faults_at.get((span.rule, span.subject), ()))

    def other_fault(self, span: FindingSpan, parents: Mapping[str, Sequence[str]]) -> bool:
        subjects = (span.subject, *parents.get(span.subject, ()))
        return any(f.window_has(span.opened_ms) for s in subjects for f in self.any_fault.get(s, ()))


def score(
    truth: Sequence[TruthFault],
    spans: Sequence[FindingSpan],
    rows: Mapping[str, str],
    *,
    parents: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, RowScore]:
    """One ``RowScore`` per row of ``rows`` (label -> expected rule), in its order."""
    parents = parents or {}
    index = _Index(truth, spans)
    out: dict[str, RowScore] = {}
    for label, rule in rows.items():
        tp = fp = cross = detected = observable = worst = 0
        delays: list[int] = []
        for span in (s for s in spans if s.rule == rule):
            if index.true_positive(span):
                tp += 1
            else:
                fp += 1
                cross += index.other_fault(span, parents)
        mine = [f for f in truth if f.label == label]
        for fault in mine:
            if fault.since_ms is None:
                continue
            observable += 1
            candidates = index.spans_at.get((rule, fault.subject), [])
            delay = detection_delay(fault, candidates)
            if delay is not None:
                detected += 1
                delays.append(delay)
            worst = max(worst, incidents(fault, candidates))
        out[label] = RowScore(
            label, rule, len(mine), observable, detected, tp, fp, cross, tuple(delays), worst
        )
    return out


def details(
    truth: Sequence[TruthFault],
    spans: Sequence[FindingSpan],
    rules: Iterable[str],
    *,
    parents: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, object]]:
    """One record per fault (observable since, delay, incidents), per false positive of ``rules`` and per
    finding of any other rule: what a reader needs to chase a miss or a false alarm."""
    parents = parents or {}
    index = _Index(truth, spans)
    out: list[dict[str, object]] = []
    for fault in truth:
        candidates = index.spans_at.get((fault.rule, fault.subject), [])
        delay = detection_delay(fault, candidates)
        out.append(
            {
                "type": "fault",
                "label": fault.label,
                "rule": fault.rule,
                "subject": fault.subject,
                "start_ms": fault.start_ms,
                "end_ms": fault.end_ms,
                "observable_ms": fault.since_ms,
                "delay_s": None if delay is None else delay / 1000,
                "incidents": incidents(fault, candidates),
                "runs": [list(r) for r in fault.runs],
            }
        )
    wanted = set(rules)
    for span in spans:
        if span.rule not in wanted:
            out.append(
                {
                    "type": "other_rule",
                    "rule": span.rule,
                    "subject": span.subject,
                    "opened_ms": span.opened_ms,
                    "cleared_ms": span.cleared_ms,
                    "other_fault": index.other_fault(span, parents),
                }
            )
        elif not index.true_positive(span):
            out.append(
                {
                    "type": "false_positive",
                    "rule": span.rule,
                    "subject": span.subject,
                    "opened_ms": span.opened_ms,
                    "cleared_ms": span.cleared_ms,
                    "other_fault": index.other_fault(span, parents),
                }
            )
    return out


@dataclass(frozen=True, slots=True)
class RateGap:
    """Absolute differences between a computed rate and the truth, in percentage points."""

    samples: int
    max_pt: float
    mean_pt: float
    within: float = math.nan  # share of the samples within the 0.1-point target


def rate_gap(pairs: Iterable[tuple[float, float]], target_pt: float = 0.1) -> RateGap:
    """Compare ``(computed, truth)`` rates (fractions); pairs where either is NaN are left out."""
    gaps = [abs(a - b) * 100.0 for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
    if not gaps:
        return RateGap(0, math.nan, math.nan)
    within = sum(g <= target_pt + 1e-9 for g in gaps) / len(gaps)
    return RateGap(len(gaps), max(gaps), sum(gaps) / len(gaps), within)


def unmapped_counts(spans: Iterable[FindingSpan], mapped: Iterable[str]) -> dict[str, tuple[int, int, int]]:
    """Per rule not in ``mapped``: findings opened, distinct subjects, open at the end; busiest first."""
    known = set(mapped)
    opened: dict[str, int] = defaultdict(int)
    subjects: dict[str, set[str]] = defaultdict(set)
    still: dict[str, int] = defaultdict(int)
    for span in spans:
        if span.rule in known:
            continue
        opened[span.rule] += 1
        subjects[span.rule].add(span.subject)
        still[span.rule] += span.cleared_ms is None
    order = sorted(opened, key=lambda r: (-opened[r], r))
    return {rule: (opened[rule], len(subjects[rule]), still[rule]) for rule in order}
