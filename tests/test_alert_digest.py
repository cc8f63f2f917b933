"""Storm collapsing: what a crew member's phone shows when fifty alerts open at once."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.alerts import AlertConfigError
from analytics.alerts.digest import DigestConfig, collapse
from analytics.alerts.model import Alert, AlertState, Notification, NotificationKind, Severity

T0 = 1_750_000_200_000  # 2025-06-15 15:10 UTC; a multiple of 5 min, so the window starts here
MIN = 60_000
HOUR = 60 * MIN
CONFIG = DigestConfig()  # 5 min windows, at most 3 separate messages per person


def note(
    i: int,
    *,
    to: tuple[str, ...] = ("wang",),
    at: int = T0,
    severity: Severity = Severity.ORDINARY,
    kind: NotificationKind = NotificationKind.OPENED,
    attributes: dict[str, str] | None = None,
) -> Notification:
    alert_id = f"lamp_dark:LMP-{i:04d}:{at}"
    return Notification(
        id=f"{alert_id}:{kind.value}:0",
        kind=kind,
        recipients=to,
        title=f"Lamp dark: LMP-{i:04d} on Luoyu Road",
        body="active power 0.4 W below 18 W while switched on",
        alert_ids=(alert_id,),
        created_ms=at,
        severity=severity,
        attributes=attributes or {},
    )


def alert_for(n: Notification, *, crew: str = "crew-east", district: str = "hongshan", due: int) -> Alert:
    return Alert(
        id=n.alert_ids[0],
        key=n.alert_ids[0].rsplit(":", 1)[0],
        rule="lamp_dark",
        family="streetlight",
        subject_kind="lamp",
        subject=n.alert_ids[0].split(":")[1],
        district=district,
        road="Luoyu Road",
        grid_cell="G-01",
        crew=crew,
        severity=n.severity,
        state=AlertState.OPEN,
        opened_ms=n.created_ms,
        deadline_ms=due,
        explanation=n.body,
    )


def test_a_few_notifications_go_out_one_by_one() -> None:
    pending = [note(i, at=T0 + i * MIN) for i in range(3)]

    out, digested = collapse(pending, T0 + 4 * MIN, CONFIG)

    assert out == pending
    assert digested == {}


def test_a_storm_of_fifty_for_one_crew_is_one_digest_listing_all_of_them() -> None:
    pending = [note(i, at=T0 + i * 1000) for i in range(50)]
    alerts = {
        n.alert_ids[0]: alert_for(n, due=T0 + 24 * HOUR - i * MIN)  # later notifications are due sooner
        for i, n in enumerate(pending)
    }

    out, digested = collapse(pending, T0 + MIN, CONFIG, alerts)

    assert len(out) == 1
    digest = out[0]
    assert digest.kind is NotificationKind.DIGEST
    assert digest.recipients == ("wang",)
    assert digest.title == "50 alerts opened in crew crew-east"
    assert set(digest.alert_ids) == {n.alert_ids[0] for n in pending}
    assert digest.id.startswith(f"digest:wang:{T0}:")
    assert digested == dict.fromkeys((n.id for n in pending), digest.id)
    lines = [line for line in digest.body.splitlines() if line.startswith("- ")]
    assert len(lines) == CONFIG.max_lines  # the rest is counted, not listed
    assert lines[0].endswith("LMP-0049 on Luoyu Road")  # due soonest
    assert "... and 10 more" in digest.body


def test_digest_lists_by_severity_then_deadline() -> None:
    pending = [
        note(1, severity=Severity.ORDINARY, attributes={"deadline_ms": str(T0 + 2 * HOUR)}),
        note(2, severity=Severity.SERIOUS, attributes={"deadline_ms": str(T0 + 72 * HOUR)}),
        note(3, severity=Severity.ORDINARY, attributes={"deadline_ms": str(T0 + HOUR)}),
        note(4, severity=Severity.SERIOUS, attributes={"deadline_ms": str(T0 + 48 * HOUR)}),
    ]

    [digest], _ = collapse(pending, T0, CONFIG)

    order = [line.split("LMP-")[1][:4] for line in digest.body.splitlines() if line.startswith("- ")]
    assert order == ["0004", "0002", "0003", "0001"]
    assert digest.severity is Severity.SERIOUS  # the most severe of its members
    assert "SERIOUS due 06-17 23:10" in digest.body  # deadlines in the city's local time (UTC+8)


def test_an_emergency_always_stands_on_its_own_and_goes_first() -> None:
    emergency = note(99, severity=Severity.EMERGENCY, at=T0 + 2 * MIN)
    pending = [note(i, at=T0 + i * 1000) for i in range(10)] + [emergency]

    out, digested = collapse(pending, T0 + 3 * MIN, CONFIG)

    assert out[0] == emergency
    assert [n.kind for n in out[1:]] == [NotificationKind.DIGEST]
    assert emergency.id not in digested
    assert emergency.alert_ids[0] not in out[1].alert_ids


def test_each_window_and_each_person_is_counted_apart() -> None:
    first = [note(i, at=T0 + i * 1000) for i in range(4)]  # 4 in the first window: a digest
    second = [note(10 + i, at=T0 + 5 * MIN + i * 1000) for i in range(3)]  # 3 in the next: one by one
    other = [note(20 + i, to=("li",), at=T0 + i * 1000) for i in range(2)]  # li's 2 are not wang's

    out, digested = collapse(first + second + other, T0 + 6 * MIN, CONFIG)

    digests = [n for n in out if n.kind is NotificationKind.DIGEST]
    assert [d.recipients for d in digests] == [("wang",)]
    assert set(digested) == {n.id for n in first}
    assert {n.id for n in out if n.kind is not NotificationKind.DIGEST} == {n.id for n in second + other}


def test_a_notification_shared_with_someone_not_in_a_storm_goes_to_both_on_its_own() -> None:
    # Rule: deliveries are per person, the outbox status per notification; a notification is folded
    # only when it is folded for every recipient, so nobody loses it and nobody gets it twice.
    shared = note(0, to=("wang", "zhao"))
    pending = [shared] + [note(i, at=T0 + i * 1000) for i in range(1, 6)]

    out, digested = collapse(pending, T0 + MIN, CONFIG)

    assert shared in out
    assert shared.id not in digested
    [digest] = [n for n in out if n.kind is NotificationKind.DIGEST]
    assert digest.title.startswith("5 alerts opened")


def test_a_storm_for_a_whole_crew_gives_each_member_a_digest() -> None:
    pending = [note(i, to=("wang", "li", "zhao"), at=T0 + i * 1000) for i in range(8)]

    out, digested = collapse(pending, T0 + MIN, CONFIG)

    assert sorted(d.recipients[0] for d in out) == ["li", "wang", "zhao"]
    assert all(d.kind is NotificationKind.DIGEST and len(d.alert_ids) == 8 for d in out)
    assert set(digested) == {n.id for n in pending}


def test_a_lone_foldable_notification_is_not_a_digest_of_one() -> None:
    pending = [note(i, severity=Severity.EMERGENCY, at=T0 + i * 1000) for i in range(3)] + [note(9)]

    out, digested = collapse(pending, T0 + MIN, CONFIG)

    assert digested == {}
    assert sorted(n.id for n in out) == sorted(n.id for n in pending)


def test_the_same_pending_set_makes_the_same_digest_and_a_digest_is_never_folded_again() -> None:
    pending = [note(i, at=T0 + i * 1000) for i in range(6)]

    out1, map1 = collapse(pending, T0 + MIN, CONFIG)
    out2, map2 = collapse(pending, T0 + 2 * MIN, CONFIG)  # a restart before the folding was recorded
    assert [n.id for n in out1] == [n.id for n in out2]
    assert map1 == map2

    # the digest waits in the outbox (a retry) next to a new storm: it passes through untouched
    storm = [note(100 + i, at=T0 + 10 * MIN + i) for i in range(5)]
    out3, map3 = collapse([*out1, *storm], T0 + 11 * MIN, CONFIG)
    assert out1[0] in out3
    assert out1[0].id not in map3
    assert len([n for n in out3 if n.kind is NotificationKind.DIGEST]) == 2

    # a pass that stopped after storing the digest: the digest is pending with its members; not twice
    out4, map4 = collapse([*pending, out1[0]], T0 + 3 * MIN, CONFIG)
    assert [n.id for n in out4] == [out1[0].id]
    assert map4 == map1


def test_two_storms_in_one_window_make_two_different_digests() -> None:
    early = [note(i, at=T0 + i * 1000) for i in range(4)]
    late = [note(10 + i, at=T0 + 2 * MIN + i * 1000) for i in range(4)]

    [first], _ = collapse(early, T0 + MIN, CONFIG)
    [second], _ = collapse(late, T0 + 3 * MIN, CONFIG)  # the early ones are digested by now

    assert first.id != second.id  # the store would ignore a second digest with the first one's id


def test_mixed_kinds_say_what_happened() -> None:
    pending = [
        note(i, kind=NotificationKind.ESCALATED, attributes={"district": "hongshan"}) for i in range(4)
    ]

    [digest], _ = collapse(pending, T0, CONFIG)

    assert digest.title == "4 alerts need attention in district hongshan"
    assert "(escalated)" in digest.body


@pytest.mark.parametrize(
    "kwargs",
    [{"window_ms": 0}, {"max_individual": 0}, {"max_lines": 0}, {"timezone": "Mars/Olympus"}],
)
def test_inconsistent_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(AlertConfigError):
        DigestConfig(**kwargs)  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------------------------

PEOPLE = ("wang", "li", "zhao")
pending_sets = st.lists(
    st.builds(
        note,
        st.integers(0, 9999),
        to=st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True).map(tuple),
        at=st.integers(T0, T0 + 20 * MIN),
        severity=st.sampled_from(Severity),
        kind=st.sampled_from([k for k in NotificationKind if k is not NotificationKind.DIGEST]),
    ),
    max_size=40,
    unique_by=lambda n: n.alert_ids[0],
)


@settings(max_examples=200, deadline=None)
@given(pending=pending_sets, max_individual=st.integers(1, 5))
def test_nothing_is_lost_or_sent_twice(pending: list[Notification], max_individual: int) -> None:
    config = DigestConfig(max_individual=max_individual)
    out, digested = collapse(pending, T0 + 30 * MIN, config)

    sent = {n.id for n in out if n.kind is not NotificationKind.DIGEST}
    assert sent.isdisjoint(digested)
    assert sent | set(digested) == {n.id for n in pending}
    assert all(n.severity is not Severity.EMERGENCY for n in pending if n.id in digested)
    # every person hears of every notification addressed to them exactly once
    heard: Counter[tuple[str, str]] = Counter()
    for n in out:
        for person in n.recipients:
            for alert_id in n.alert_ids:
                heard[(person, alert_id)] += 1
    assert heard == Counter((p, n.alert_ids[0]) for n in pending for p in n.recipients)
    for digest in (n for n in out if n.kind is NotificationKind.DIGEST):
        assert len(digest.recipients) == 1
        assert len(digest.alert_ids) >= 2


@settings(max_examples=200, deadline=None)
@given(pending=pending_sets, max_individual=st.integers(1, 5))
def test_one_person_alone_gets_at_most_the_limit_or_their_emergencies_and_one_digest(
    pending: list[Notification], max_individual: int
) -> None:
    config = DigestConfig(max_individual=max_individual)
    alone = [n for n in pending if len(n.recipients) == 1]
    out, _ = collapse(alone, T0 + 30 * MIN, config)

    messages: Counter[tuple[str, int]] = Counter()
    emergencies: defaultdict[tuple[str, int], int] = defaultdict(int)
    for n in out:
        start = config.window_start(
            int(n.attributes["window_start_ms"]) if n.kind is NotificationKind.DIGEST else n.created_ms
        )
        messages[(n.recipients[0], start)] += 1
        emergencies[(n.recipients[0], start)] += n.severity is Severity.EMERGENCY and (
            n.kind is not NotificationKind.DIGEST
        )
    for key, count in messages.items():
        assert count <= max(max_individual, emergencies[key] + 1)
