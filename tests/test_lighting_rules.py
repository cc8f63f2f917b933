"""Streetlight rules through the real engine: lamps and cabinets on two circuits, each on its own gateway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import RuleConfigError
from analytics.comm import CommDetector, CommRules
from analytics.engine import Engine, LampSchedule
from analytics.findings import Change, Finding, FindingEvent
from analytics.lamps import LampPower, lit
from analytics.lighting_rules import StreetlightDetector, StreetlightRules
from analytics.state import Batch
from analytics.topology import build_topology
from devices.assets import Asset
from devices.kinds import DeviceKind

T0 = 1_750_000_000_000
MIN = 60_000
LAMP, CABINET = DeviceKind.LAMP, DeviceKind.CABINET
RATED_W = 100.0
Override = Mapping[str, float | Mapping[int, float]]


def city(per_circuit: int = 10) -> list[Asset]:
    assets = [Asset(id=f"GW-{c}", kind="gateway", district="hongshan", lat=30.5, lon=114.3) for c in "AB"]
    for c in "AB":
        for i in range(per_circuit):
            assets.append(
                Asset(
                    id=f"LMP-{c}{i:02d}",
                    kind="lamp",
                    district="hongshan",
                    road=f"Road {c}",
                    road_class="trunk",
                    circuit=f"CIR-{c}",
                    gateway=f"GW-{c}",
                    lat=30.5,
                    lon=114.3 + i * 1e-4,
                    rated_power_w=RATED_W,
                )
            )
        assets.append(
            Asset(
                id=f"CAB-{c}",
                kind="cabinet",
                district="hongshan",
                circuit=f"CIR-{c}",
                gateway=f"GW-{c}",
                lat=30.5,
                lon=114.3,
            )
        )
    return assets


class Sky:
    """The schedule: "night" (due), "day" (daytime) or "dusk" (the grace margin: neither)."""

    def __init__(self, n: int) -> None:
        self.n, self.mode, self.dim = n, "night", 100.0

    def at(self, now_ms: int) -> LampSchedule:
        night = self.mode == "night"
        return LampSchedule(
            due=np.full(self.n, night),
            daytime=np.full(self.n, self.mode == "day"),
            dim=np.full(self.n, self.dim if night else 0.0, np.float32),
            planned_off=np.zeros(self.n, np.bool_),
        )


class Street:
    """Two circuits reporting every minute; ``minute()`` ingests one round and ticks."""

    def __init__(self, per_circuit: int = 10, rules: StreetlightRules | None = None) -> None:
        self.topo = build_topology(city(per_circuit))
        self.n = len(self.topo.table(LAMP))
        self.per_circuit = per_circuit
        self.sky = Sky(self.n)
        self.comm = CommDetector(self.topo, CommRules())
        self.light = StreetlightDetector(self.topo, rules or StreetlightRules(), LampPower(), comm=self.comm)
        self.engine = Engine(self.topo, [self.comm, self.light], self.sky)
        self.t = T0
        self.seq = 0
        self.switches = np.full(self.n, 500.0)
        self.events: list[FindingEvent] = []

    def lamp_defaults(self) -> dict[str, np.ndarray]:
        on = self.sky.mode == "night"
        return {
            "supply_voltage": np.full(self.n, 226.0),
            "active_power": np.full(self.n, 0.97 * RATED_W * self.sky.dim / 100 if on else 0.4),
            "lamp_on": np.full(self.n, float(on)),
            "dim_level": np.full(self.n, self.sky.dim if on else 0.0),
            "switch_count": self.switches.copy(),
            "lamp_failure": np.zeros(self.n),
            "relay_failure": np.zeros(self.n),
            "day_burning": np.zeros(self.n),
            "cycling": np.zeros(self.n),
        }

    def cabinet_defaults(self, lamp_power: np.ndarray) -> dict[str, np.ndarray]:
        closed = float(self.sky.mode == "night")
        amps = np.array(
            [lamp_power[c * self.per_circuit : (c + 1) * self.per_circuit].sum() for c in range(2)]
        )
        out = {f"voltage_l{k}": np.full(2, 226.0) for k in (1, 2, 3)}
        out |= {f"current_l{k}": amps / 226.0 / 3 * closed for k in (1, 2, 3)}
        out |= {
            "residual_current": np.full(2, 8.0),
            "contactor_closed": np.full(2, closed),
            "door_open": np.zeros(2),
        }
        return out

    def minute(
        self,
        lamps: Override | None = None,
        cabinets: Override | None = None,
        *,
        silent: Sequence[int] = (),
        silent_cabinets: Sequence[int] = (),
    ) -> list[FindingEvent]:
        self.t += MIN
        fields = _apply(self.lamp_defaults(), lamps or {})
        cab = _apply(self.cabinet_defaults(fields["active_power"]), cabinets or {})
        self.engine.ingest(
            [
                self._batch(LAMP, np.setdiff1d(np.arange(self.n), silent), fields),
                self._batch(CABINET, np.setdiff1d(np.arange(2), silent_cabinets), cab),
            ]
        )
        events = list(self.engine.tick(self.t + 2000).events)
        self.events += events
        return events

    def _batch(self, kind: DeviceKind, devices: np.ndarray, fields: dict[str, np.ndarray]) -> Batch:
        self.seq += 1
        n = len(devices)
        return Batch(
            kind,
            devices.astype(np.int32),
            np.full(n, self.t, dtype=np.int64),
            np.full(n, self.seq, dtype=np.int64),
            MappingProxyType({name: col[devices].astype(np.float64) for name, col in fields.items()}),
        )

    def settle(self, minutes: int = 3) -> None:
        """Healthy minutes, which must open nothing."""
        for _ in range(minutes):
            events = self.minute()
            assert not [e for e in events if e.change is Change.OPENED], "a healthy street raised findings"

    def opened(self, rule: str | None = None) -> list[str]:
        return [
            e.finding.subject
            for e in self.events
            if e.change is Change.OPENED and rule in (None, e.finding.rule)
        ]

    def cleared(self, rule: str) -> list[str]:
        return [
            e.finding.subject for e in self.events if e.change is Change.CLEARED and e.finding.rule == rule
        ]

    def open_findings(self, rule: str) -> list[Finding]:
        return [f for f in self.engine.book.open_findings() if f.rule == rule]


def _apply(defaults: dict[str, np.ndarray], overrides: Override) -> dict[str, np.ndarray]:
    out = dict(defaults)
    for name, value in overrides.items():
        col = out[name].copy()
        if isinstance(value, Mapping):
            for i, v in value.items():
                col[i] = v
        else:
            col[:] = value
        out[name] = col
    return out


A = range(10)  # the lamps of CIR-A
B = range(10, 20)


# -- lamp failure ----------------------------------------------------------------------------------------


def test_one_bad_reading_is_not_a_lamp_failure_two_are_and_two_good_ones_clear_it() -> None:
    street = Street()
    street.settle()
    street.minute({"active_power": {3: 0.4}})
    street.minute()
    assert street.opened() == []
    street.minute({"active_power": {3: 0.4}})
    assert street.opened() == []
    first_bad = street.t
    street.minute({"active_power": {3: 0.4}})
    assert street.opened() == ["LMP-A03"]
    (finding,) = street.open_findings("lamp_failure")
    assert finding.since_ms == first_bad
    assert finding.explanation.startswith(
        "dark while switched on: 0.4 W drawn where lit takes 30.0 W or more"
    )
    street.minute()
    assert street.cleared("lamp_failure") == []
    street.minute()
    assert street.cleared("lamp_failure") == ["LMP-A03"]


def test_the_controllers_lamp_failure_flag_is_a_failure_and_a_switched_off_lamp_is_not_judged() -> None:
    street = Street()
    street.settle()
    for _ in range(2):
        street.minute({"lamp_failure": {4: 1.0}})
    assert street.opened() == ["LMP-A04"]
    street.sky.mode = "day"
    street.minute()
    street.minute()  # switched off by day: neither dark nor lit, the failure stands
    assert street.cleared("lamp_failure") == []


def test_a_lamp_dimmed_to_half_drawing_half_power_is_lit_and_not_a_failure() -> None:
    street = Street()
    street.sky.dim = 50.0
    street.settle(4)
    state = street.engine.state[LAMP]
    assert lit(state, street.topo.table(LAMP), LampPower()).all()


def test_lamp_failure_agrees_with_the_lighting_rates_lit_definition() -> None:
    street = Street()
    rng = np.random.default_rng(3)
    power = rng.choice([0.0, 10.0, 29.0, 31.0, 60.0, 97.0], street.n)
    dim = rng.choice([0.0, 30.0, 50.0, 100.0], street.n)
    on = rng.choice([0.0, 1.0], street.n)
    flag = rng.choice([0.0, 1.0], street.n, p=[0.8, 0.2])
    for _ in range(2):
        street.minute(
            {
                "active_power": dict(enumerate(power)),
                "dim_level": dict(enumerate(dim)),
                "lamp_on": dict(enumerate(on)),
                "lamp_failure": dict(enumerate(flag)),
            }
        )
    state = street.engine.state[LAMP]
    is_lit = lit(state, street.topo.table(LAMP), LampPower())
    commanded = (on > 0.5) & (dim > 0)
    assert np.array_equal(street.light.failure.active, commanded & ~is_lit)


# -- day burning, cycling, stuck relay -------------------------------------------------------------------


def test_a_lamp_switching_on_at_dusk_is_not_day_burning_but_one_burning_by_day_is() -> None:
    street = Street()
    street.sky.mode = "day"
    street.settle(2)
    street.sky.mode = "dusk"  # the grace margin around sunset: lamps come on, nobody judges
    street.minute({"lamp_on": 1.0, "dim_level": 100.0, "active_power": 97.0})
    street.minute({"lamp_on": 1.0, "dim_level": 100.0, "active_power": 97.0})
    street.sky.mode = "night"
    street.settle(2)
    street.sky.mode = "day"  # morning: a lamp still burning from the night is judged on what it does next
    burning = {"lamp_on": {12: 1.0}, "dim_level": {12: 100.0}, "active_power": {12: 97.0}}
    street.minute(burning)
    assert street.opened() == []
    street.minute(burning)
    street.minute(burning)
    assert street.opened() == ["LMP-B02"]
    assert "burning in daylight: 97.0 W drawn" in street.open_findings("day_burning")[0].explanation
    street.minute()
    street.minute()
    assert street.cleared("day_burning") == ["LMP-B02"]


def test_a_switch_counter_racing_is_cycling_and_a_nightly_switch_is_not() -> None:
    street = Street()
    street.settle()
    for _ in range(5):  # three switches a minute on LMP-A01; one switch on every other lamp, once
        street.switches[1] += 3
        street.minute()
    assert street.opened() == ["LMP-A01"]
    assert street.opened("lamp_cycling") == ["LMP-A01"]
    street.switches += 1
    for _ in range(5):
        street.minute()
    assert street.opened() == ["LMP-A01"]
    for _ in range(120):  # two hours of quiet
        street.minute()
    assert street.cleared("lamp_cycling") == ["LMP-A01"]


def test_the_controllers_cycling_flag_is_cycling() -> None:
    street = Street()
    street.settle()
    street.minute({"cycling": {15: 1.0}})
    assert street.opened() == ["LMP-B05"]


def test_power_while_commanded_off_is_a_stuck_relay_and_one_finding_though_it_is_daytime() -> None:
    street = Street()
    street.sky.mode = "day"
    street.settle()
    stuck = {"active_power": {7: 96.0}, "relay_failure": {7: 1.0}}
    for _ in range(3):
        street.minute(stuck)
    assert street.opened() == ["LMP-A07"]
    assert street.opened("relay_stuck") == ["LMP-A07"]
    assert "drawing 96.0 W while commanded off" in street.open_findings("relay_stuck")[0].explanation


def test_no_power_with_the_relay_closed_is_a_lamp_failure_not_a_stuck_relay() -> None:
    street = Street()
    street.settle()
    for _ in range(2):
        street.minute({"active_power": {2: 0.0}})
    assert street.opened() == ["LMP-A02"]
    assert street.opened("lamp_failure") == ["LMP-A02"]


# -- voltage ---------------------------------------------------------------------------------------------


def test_one_sagging_lamp_is_a_lamp_finding_a_sagging_circuit_is_one_circuit_finding() -> None:
    street = Street()
    street.settle()
    for _ in range(2):
        street.minute({"supply_voltage": {13: 192.0}})
    assert street.opened() == ["LMP-B03"]
    assert street.opened("under_voltage") == ["LMP-B03"]
    sag = {"supply_voltage": {i: 190.0 - i * 0.1 for i in A}}
    for _ in range(2):
        street.minute(sag)
    assert street.opened("circuit_under_voltage") == ["CIR-A"]
    assert street.opened("under_voltage") == ["LMP-B03"]
    (finding,) = street.open_findings("circuit_under_voltage")
    assert finding.children == tuple(f"LMP-A{i:02d}" for i in A)
    assert finding.explanation.startswith(
        "circuit CIR-A down to 189 V, below the 198 V line-end floor (10 lamps"
    )


def test_a_cabinets_phases_over_the_ceiling_are_one_circuit_finding() -> None:
    street = Street()
    street.settle()
    over = {f"voltage_l{k}": {1: 255.0} for k in (1, 2, 3)}
    lamps_over = {"supply_voltage": dict.fromkeys(B, 254.0)}
    for _ in range(2):
        street.minute(lamps_over, over)
    assert street.opened() == ["CIR-B"]
    assert street.opened("circuit_over_voltage") == ["CIR-B"]
    assert street.open_findings("circuit_over_voltage")[0].value == 255.0


def test_a_dead_circuit_is_an_outage_not_under_voltage_nor_lamp_failures() -> None:
    street = Street()
    street.settle()
    dead = {"supply_voltage": dict.fromkeys(A, 0.0), "active_power": dict.fromkeys(A, 0.0)}
    cut = {f"current_l{k}": {0: 0.01} for k in (1, 2, 3)}
    for _ in range(6):
        street.minute(dead, cut)
    assert street.opened() == ["CIR-A"]
    (finding,) = street.open_findings("circuit_outage")
    assert finding.children == tuple(f"LMP-A{i:02d}" for i in A)
    assert finding.explanation.startswith(
        "circuit CIR-A lost supply, cable theft or break: 100 % of its lamps"
    )
    street.settle(3)
    assert street.cleared("circuit_outage") == ["CIR-A"]
    street.minute()
    assert street.opened() == ["CIR-A"]  # power back: no lamp failures left over from the outage


# -- circuit outage vs gateway ---------------------------------------------------------------------------


def test_a_silent_cable_theft_is_one_outage_and_never_offline_lamps() -> None:
    street = Street()
    street.settle()
    cut = {f"current_l{k}": {0: 0.02} for k in (1, 2, 3)}
    street.minute(None, cut, silent=A)
    street.minute(None, cut, silent=A)
    assert street.opened() == ["CIR-A"]  # two cabinet readings, before any lamp is even offline
    for _ in range(10):
        street.minute(None, cut, silent=A)
    assert street.opened() == ["CIR-A"]
    street.sky.mode = "day"  # the day comes, the lamps are still silent: the outage stands
    for _ in range(5):
        street.minute(None, {"contactor_closed": {0: 0.0}}, silent=A)
    assert street.cleared("circuit_outage") == []
    street.sky.mode = "night"
    street.settle(2)
    assert street.cleared("circuit_outage") == ["CIR-A"]


def test_a_dead_gateway_is_a_gateway_finding_not_a_circuit_outage() -> None:
    street = Street()
    street.settle()
    for _ in range(6):
        street.minute(silent=B, silent_cabinets=[1])
    assert street.opened() == ["GW-B"]


def test_at_dawn_two_silent_lamps_whose_last_word_was_on_are_not_an_outage() -> None:
    street = Street()
    street.settle()
    for _ in range(4):  # LMP-A03 and LMP-A04 fall silent at night: two offline lamps
        street.minute(silent=[3, 4])
    street.sky.mode = "dusk"  # dawn's grace margin: nothing is due, the others switch off
    for _ in range(3):
        street.minute(silent=[3, 4])
    assert street.opened() == ["LMP-A03", "LMP-A04"]
    assert street.opened("offline_lamp") == ["LMP-A03", "LMP-A04"]


def test_a_lamp_that_fails_during_an_outage_is_not_raised_until_power_is_back() -> None:
    street = Street()
    street.settle()
    dead = {"supply_voltage": dict.fromkeys(A, 0.0), "active_power": dict.fromkeys(A, 0.0)}
    for _ in range(4):
        street.minute(dead)
    assert street.opened() == ["CIR-A"]
    for _ in range(3):
        street.minute({"active_power": {5: 0.4}})
    assert street.opened() == ["CIR-A", "LMP-A05"]


# -- cabinets --------------------------------------------------------------------------------------------


def test_leakage_above_30_ma_three_times_is_a_finding_and_noise_around_a_normal_level_is_not() -> None:
    street = Street()
    street.settle()
    for residual in (32.0, 24.0, 33.0, 31.0, 25.0):  # a healthy cabinet's standing leakage, noisy
        street.minute(None, {"residual_current": {0: residual, 1: 45.0}})
    assert street.opened() == ["CAB-B"]
    assert street.open_findings("leakage")[0].explanation.startswith("residual current 45 mA, above 30 mA")


def test_an_open_cabinet_door_is_a_finding_at_once() -> None:
    street = Street()
    street.settle()
    street.minute(None, {"door_open": {0: 1.0}})
    assert street.opened() == ["CAB-A"]
    street.minute()
    assert street.cleared("cabinet_door") == ["CAB-A"]


def test_inconsistent_settings_are_refused() -> None:
    with pytest.raises(RuleConfigError):
        StreetlightRules(voltage_low_v=250.0)
    with pytest.raises(RuleConfigError):
        StreetlightRules(debounce_readings=0)
    with pytest.raises(RuleConfigError):
        StreetlightRules(outage_clear_fraction=0.95)


# -- properties ------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    dim=st.sampled_from([30.0, 50.0, 80.0, 100.0]),
    volts=st.floats(200.0, 240.0),
    efficiency=st.floats(0.9, 1.0),
    minutes=st.integers(3, 12),
    night=st.booleans(),
)
def test_a_constant_healthy_series_never_fires(
    dim: float, volts: float, efficiency: float, minutes: int, night: bool
) -> None:
    street = Street(per_circuit=4)
    street.sky.mode = "night" if night else "day"
    street.sky.dim = dim
    power = efficiency * RATED_W * dim / 100 if night else 0.4
    for _ in range(minutes):
        street.minute({"supply_voltage": volts, "active_power": power})
    assert street.opened() == []


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(2, 12),
    mode=st.sampled_from(["silent", "zero_power"]),
    minutes=st.integers(1, 15),
    cabinet_sees_it=st.booleans(),
    restore=st.booleans(),
)
def test_a_circuit_outage_never_yields_more_than_one_incident(
    size: int, mode: str, minutes: int, cabinet_sees_it: bool, restore: bool
) -> None:
    """Cable theft in either simulator mode, with the cabinet's meter showing the collapse or not (the lamps
    alone must tell then), for any duration, restored or not: at most one finding, the circuit's."""
    street = Street(per_circuit=size)
    street.settle(4)
    lamps = range(size)  # CIR-A
    dead = {"supply_voltage": dict.fromkeys(lamps, 0.0), "active_power": dict.fromkeys(lamps, 0.0)}
    cut = {f"current_l{k}": {0: 0.01} for k in (1, 2, 3)} if cabinet_sees_it else None
    for _ in range(minutes):
        if mode == "silent":
            street.minute(None, cut, silent=lamps)
        else:
            street.minute(dead, cut)
    if restore:
        for _ in range(4):
            street.minute()
    opened = street.opened()
    assert opened in ([], ["CIR-A"]), opened  # one circuit incident at most, never lamps or a gateway
    assert len(street.opened("circuit_outage")) <= 1
