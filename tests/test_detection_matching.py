"""The detection report's truth matching (bench/detection_matching.py) on hand-made truth and findings, and
its fault plan (bench/detection_truth.py)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.faults import FaultInjector, FaultType
from firmware_sim.inventory import generate_city
from firmware_sim.simulation import SimConfig

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    """bench/ is not a package: load a module from its file."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while the class is built
    spec.loader.exec_module(module)
    return module


dm = _load("detection_matching")
TruthFault, FindingSpan, Runs = dm.TruthFault, dm.FindingSpan, dm.Runs

MIN = 60_000
HOUR = 60 * MIN
ROWS = {"lamp_failure": "lamp_failure", "day_burning": "day_burning", "cable_theft": "circuit_outage"}


def lamp_failure(subject: str, start: int, end: int, runs: tuple[tuple[int, int], ...]) -> object:
    return TruthFault(
        "lamp_failure", "lamp_failure", subject, start, end, runs, hold_ms=MIN, slack_ms=3 * MIN
    )


def test_a_finding_two_readings_in_is_a_detection_with_its_delay() -> None:
    fault = lamp_failure("LMP-1", 0, 10 * HOUR, ((2 * HOUR, 9 * HOUR),))  # failed by day, seen from dusk
    spans = [FindingSpan("lamp_failure", "LMP-1", 2 * HOUR + MIN + 5000, 10 * HOUR + MIN)]
    row = dm.score([fault], spans, ROWS)["lamp_failure"]
    assert (row.injected, row.observable, row.detected, row.true_pos, row.false_pos) == (1, 1, 1, 1, 0)
    assert row.recall == row.precision == 1.0
    assert row.delay_median_s == row.delay_max_s == 65.0
    assert row.max_incidents == 1


def test_findings_outside_the_window_or_on_another_subject_are_false_positives() -> None:
    fault = lamp_failure("LMP-1", HOUR, 2 * HOUR, ((HOUR, 2 * HOUR - MIN),))
    spans = [
        FindingSpan("lamp_failure", "LMP-1", HOUR - MIN, HOUR + MIN),  # before the fault began
        FindingSpan("lamp_failure", "LMP-1", 2 * HOUR + 4 * MIN),  # after end + slack
        FindingSpan("lamp_failure", "LMP-2", HOUR + 2 * MIN),  # the healthy neighbour
        FindingSpan("lamp_failure", "LMP-1", 2 * HOUR + 2 * MIN),  # within the slack: still this fault
    ]
    row = dm.score([fault], spans, ROWS)["lamp_failure"]
    assert (row.true_pos, row.false_pos, row.detected) == (1, 3, 1)
    assert row.precision == 0.25
    assert row.delays_ms == (2 * HOUR + 2 * MIN - HOUR,)


def test_a_fault_never_seen_long_enough_leaves_recall_alone_but_its_finding_is_no_false_positive() -> None:
    blink = lamp_failure("LMP-1", 0, HOUR, ((10 * MIN, 10 * MIN),))  # one reading: below the debounce
    assert blink.since_ms is None
    row = dm.score([blink], [FindingSpan("lamp_failure", "LMP-1", 11 * MIN)], ROWS)["lamp_failure"]
    assert (row.injected, row.observable, row.detected, row.true_pos, row.false_pos) == (1, 0, 0, 1, 0)
    assert math.isnan(row.recall)
    quiet = dm.score([blink], [], ROWS)["lamp_failure"]
    assert math.isnan(quiet.recall) and math.isnan(quiet.precision) and math.isnan(quiet.delay_max_s)


def test_a_missed_fault_lowers_recall() -> None:
    faults = [lamp_failure(f"LMP-{k}", 0, HOUR, ((0, HOUR),)) for k in range(4)]
    spans = [FindingSpan("lamp_failure", f"LMP-{k}", 2 * MIN) for k in range(3)]
    row = dm.score(faults, spans, ROWS)["lamp_failure"]
    assert (row.observable, row.detected, row.recall, row.precision) == (4, 3, 0.75, 1.0)


def test_a_finding_already_open_when_the_fault_shows_counts_with_no_delay() -> None:
    fault = lamp_failure("LMP-1", 5 * HOUR, 9 * HOUR, ((6 * HOUR, 8 * HOUR),))
    still_open = FindingSpan("lamp_failure", "LMP-1", HOUR)  # raised by an earlier fault, never cleared
    row = dm.score([fault], [still_open], ROWS)["lamp_failure"]
    assert (row.detected, row.delays_ms, row.false_pos) == (1, (0,), 1)
    cleared_before = FindingSpan("lamp_failure", "LMP-1", HOUR, 2 * HOUR)
    assert dm.score([fault], [cleared_before], ROWS)["lamp_failure"].detected == 0


def test_a_theft_over_two_nights_may_reopen_at_dusk_but_must_not_flap() -> None:
    nights = ((1 * HOUR, 6 * HOUR), (20 * HOUR, 26 * HOUR))
    theft = TruthFault("cable_theft", "circuit_outage", "CIR-1", 0, 27 * HOUR, nights, MIN, 3 * MIN)
    per_night = [
        FindingSpan("circuit_outage", "CIR-1", 1 * HOUR + MIN, 6 * HOUR),
        FindingSpan("circuit_outage", "CIR-1", 20 * HOUR + MIN),
    ]
    row = dm.score([theft], per_night, ROWS)["cable_theft"]
    assert (row.true_pos, row.detected, row.max_incidents) == (2, 1, 1)
    flapping = [*per_night, FindingSpan("circuit_outage", "CIR-1", 3 * HOUR)]
    assert dm.score([theft], flapping, ROWS)["cable_theft"].max_incidents == 2


def test_a_false_positive_on_a_faulty_subject_or_its_circuit_is_marked_cross() -> None:
    stuck = TruthFault("relay_stuck", "relay_stuck", "LMP-1", 0, 5 * HOUR, ((0, 5 * HOUR),), MIN, 3 * MIN)
    sag = TruthFault("voltage_sag", "circuit_under_voltage", "CIR-9", 0, HOUR, ((0, HOUR),), MIN, 3 * MIN)
    spans = [
        FindingSpan("day_burning", "LMP-1", 2 * MIN),  # a stuck relay burns by day
        FindingSpan("day_burning", "LMP-2", 2 * MIN),  # on the sagging circuit
        FindingSpan("day_burning", "LMP-3", 2 * MIN),  # nothing wrong there
    ]
    parents = {"LMP-2": ("CIR-9", "GW-9"), "LMP-3": ("CIR-1", "GW-1")}
    row = dm.score([stuck, sag], spans, ROWS, parents=parents)["day_burning"]
    assert (row.injected, row.false_pos, row.cross) == (0, 3, 2)


def test_spans_from_finding_events() -> None:
    events = [
        ("opened", "lamp_failure", "LMP-1", 100),
        ("level", "lamp_failure", "LMP-1", 150),
        ("opened", "bin_full", "BIN-1", 160),
        ("cleared", "lamp_failure", "LMP-1", 200),
        ("opened", "lamp_failure", "LMP-1", 300),
        ("cleared", "bin_full", "BIN-9", 310),  # never opened here: ignored
    ]
    assert dm.finding_spans(events) == [
        FindingSpan("lamp_failure", "LMP-1", 100, 200),
        FindingSpan("bin_full", "BIN-1", 160, None),
        FindingSpan("lamp_failure", "LMP-1", 300, None),
    ]
    assert dm.unmapped_counts(dm.finding_spans(events), ["lamp_failure"]) == {"bin_full": (1, 1, 1)}


def test_runs_of_observable_ticks() -> None:
    runs = Runs()
    for t, seen in enumerate([False, True, True, False, True, False, False, True, True, True]):
        runs.step(t * MIN, seen)
    assert runs.close() == ((1 * MIN, 2 * MIN), (4 * MIN, 4 * MIN), (7 * MIN, 9 * MIN))
    fault = TruthFault("x", "x", "s", 0, 10 * MIN, runs.close(), hold_ms=2 * MIN)
    assert fault.qualifying == ((7 * MIN, 9 * MIN),) and fault.since_ms == 7 * MIN


def test_rate_gap_in_points_leaves_nan_out() -> None:
    gap = dm.rate_gap([(0.981, 0.980), (math.nan, 0.5), (0.97, 0.973), (0.99, math.nan)])
    assert gap.samples == 2
    assert math.isclose(gap.max_pt, 0.3) and math.isclose(gap.mean_pt, 0.2)
    assert dm.rate_gap([]).samples == 0


@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 10_000), st.integers(1, 600), st.integers(0, 5)),
        min_size=1,
        max_size=30,
    )
)
def test_a_detector_that_fires_exactly_when_each_fault_shows_scores_perfectly(
    faults: list[tuple[int, int, int, int]],
) -> None:
    """Faults on distinct lamps, each seen from some minute on; a finding opens after the debounce."""
    truth, spans = [], []
    for lamp, (_, start_min, length_min, shift_min) in enumerate(faults):
        start, end = start_min * MIN, (start_min + length_min) * MIN
        since = min(start + shift_min * MIN, end - MIN)
        truth.append(
            lamp_failure(f"LMP-{lamp}", start, end, ((since, end - MIN),) if end - MIN - since >= MIN else ())
        )
        if end - MIN - since >= MIN:
            spans.append(FindingSpan("lamp_failure", f"LMP-{lamp}", since + MIN, end + MIN))
    row = dm.score(truth, spans, ROWS)["lamp_failure"]
    assert row.false_pos == 0 and row.true_pos == row.detected == row.observable == len(spans)
    assert all(d == MIN for d in row.delays_ms) and row.max_incidents <= 1


def test_the_plan_injects_every_fault_kind_where_it_can_be_seen() -> None:
    if str(ROOT) not in sys.path:  # detection_truth imports bench.detection_matching
        sys.path.insert(0, str(ROOT))
    truth = _load("detection_truth")
    city = generate_city(600, seed=4)
    start = dt.datetime(2026, 6, 15, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    config = SimConfig()
    plan = truth.fault_plan(city, config, start=start, days=7, per_kind=3, seed=2, obs=truth.Observability())
    kinds = Counter(e.fault for e in plan)
    assert all(kinds[f] >= 3 for f in FaultType)
    assert Counter(e.mode for e in plan if e.fault is FaultType.CABLE_THEFT) == {"silent": 3, "zero_power": 3}
    assert all(start + 3600 <= e.start < start + 7 * 86_400 for e in plan)
    local_hour = {e: (e.start / 3600 + 8) % 24 for e in plan}
    assert all(local_hour[e] >= 20 or local_hour[e] < 3 for e in plan if e.fault is FaultType.LAMP_FAILURE)
    assert all(9 <= local_hour[e] < 15 for e in plan if e.fault is FaultType.RELAY_STUCK)
    assert all(e.start >= start + 2 * 86_400 for e in plan if e.fault is FaultType.BRIDGE_FREQ_DROP)
    FaultInjector(city, schedule=plan)  # every target exists, every pump number fits its station
