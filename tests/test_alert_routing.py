"""Who hears about an alert (on-call rota, road chief and grid manager, supervisor) and where it is."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from analytics.alerts import AlertConfigError
from analytics.alerts.model import Alert, AlertState, Severity
from analytics.alerts.routing import Contacts, Place, TopologyLocator
from analytics.alerts.severity import WorkCalendar
from analytics.topology import build_topology
from devices.assets import Asset

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


CALENDAR = WorkCalendar(
    holidays=frozenset({dt.date(2025, 10, 1)}), makeup_days=frozenset({dt.date(2025, 10, 11)})
)

CONTACTS: dict[str, Any] = {
    "people": {
        "wang": {
            "name": "Wang Wei",
            "urls": ["mailto://wang@example.org", "dingtalk://token"],
            "phone": "138",
        },
        "li": {"name": "Li Na", "urls": ["wecombot://key"]},
        "liu": {"urls": ["json://127.0.0.1:8080/hook"]},
        "zhang": {"name": "Zhang (road chief)", "urls": ["mailto://zhang@example.org"]},
        "zhao": {"name": "Zhao (grid)", "urls": ["mailto://zhao@example.org"]},
        "chen": {"name": "Chen (supervisor)", "urls": ["mailto://chen@example.org"]},
        "boss": {"name": "City", "urls": ["mailto://boss@example.org"]},
    },
    "crews": {
        "east": {
            "members": ["wang", "li", "liu"],
            "on_call": "liu",
            "rota": [
                {"days": "workdays", "start": "08:00", "end": "18:00", "on_call": "li"},
                {"days": "mon-fri", "start": "18:00", "end": "08:00", "on_call": "wang"},
            ],
        },
        "west": {"members": ["wang", "li"]},
    },
    "road_chiefs": {"Luoyu Road": "zhang"},
    "grid_managers": {"G1": "zhao", "G2": "zhang"},
    "supervisors": {"hongshan": "chen", "*": "boss"},
}


def alert(
    crew: str = "east", road: str = "Luoyu Road", grid: str = "G1", district: str = "hongshan"
) -> Alert:
    return Alert(
        id="lamp_failure:L1:0",
        key="lamp_failure:L1",
        rule="lamp_failure",
        family="streetlight",
        subject_kind="lamp",
        subject="L1",
        district=district,
        road=road,
        grid_cell=grid,
        crew=crew,
        severity=Severity.ORDINARY,
        state=AlertState.OPEN,
        opened_ms=0,
        deadline_ms=1,
        explanation="",
    )


@pytest.fixture(scope="module")
def contacts() -> Contacts:
    return Contacts.from_mapping(CONTACTS)


@pytest.mark.parametrize(
    ("now", "on_call"),
    [
        (at(2025, 9, 30, 9), ("li",)),  # Tuesday, day shift
        (at(2025, 9, 30, 19), ("wang",)),  # Tuesday evening: the night shift
        (at(2025, 10, 1, 3), ("wang",)),  # past midnight, still Tuesday's night shift
        (at(2025, 10, 1, 9), ("liu",)),  # National Day: no day shift on a holiday, the default on-call
        (at(2025, 10, 4, 9), ("liu",)),  # Saturday
        (at(2025, 10, 11, 9), ("li",)),  # make-up Saturday: a working day, the day shift works
        (at(2025, 10, 4, 3), ("wang",)),  # Saturday 03:00: Friday's night shift
        (at(2025, 10, 5, 3), ("liu",)),  # Sunday 03:00: no Saturday night shift
    ],
)
def test_the_crew_hears_through_whoever_is_on_call_now(
    contacts: Contacts, now: int, on_call: tuple[str, ...]
) -> None:
    assert contacts.recipients(alert(), 0, now, CALENDAR) == on_call


def test_a_crew_without_rota_or_default_tells_every_member(contacts: Contacts) -> None:
    assert contacts.recipients(alert(crew="west"), 0, at(2025, 9, 30, 9), CALENDAR) == ("wang", "li")
    assert contacts.recipients(alert(crew="nobody"), 0, at(2025, 9, 30, 9), CALENDAR) == ()


def test_escalation_reaches_the_road_chief_and_grid_manager_then_the_supervisor(contacts: Contacts) -> None:
    now = at(2025, 9, 30, 9)
    assert contacts.recipients(alert(), 1, now, CALENDAR) == ("zhang", "zhao")
    assert contacts.recipients(alert(grid="G2"), 1, now, CALENDAR) == ("zhang",)  # one person, told once
    assert contacts.recipients(alert(road="", grid=""), 1, now, CALENDAR) == ()
    assert contacts.recipients(alert(), 2, now, CALENDAR) == ("chen",)
    assert contacts.recipients(alert(district="wuchang"), 2, now, CALENDAR) == ("boss",)


def test_people_are_reached_at_their_apprise_urls(contacts: Contacts) -> None:
    assert contacts.urls("wang") == ("mailto://wang@example.org", "dingtalk://token")
    assert contacts.urls("gone") == ()
    assert contacts.name("liu") == "liu"
    assert contacts.people["wang"].phone == "138"


def _broken(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(CONTACTS)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _broken("crews.east.rota.1.on_call", "nobody"),
            r"crews\.east\.rota\[1\]\.on_call: 'nobody' is not a person",
        ),
        (_broken("crews.east.rota.0.start", "8am"), r"crews\.east\.rota\[0\]\.start: '8am' is not a time"),
        (_broken("crews.east.rota.0.days", "weekdays"), r"crews\.east\.rota\[0\]\.days"),
        (_broken("crews.east.members", []), r"crews\.east\.members: a non-empty list"),
        (_broken("crews.west.members", ["wang", "ghost"]), r"crews\.west\.members\[1\]: 'ghost'"),
        (
            _broken("people.li.urls", ["not a url"]),
            r"people\.li\.urls\[0\]: 'not a url' is not an apprise URL",
        ),
        (_broken("people.li.urls", []), r"people\.li\.urls: a non-empty list"),
        (_broken("people.li.colour", "red"), r"people\.li: unknown keys \['colour'\]"),
        (_broken("road_chiefs.Luoyu Road", "ghost"), r"road_chiefs\.Luoyu Road: 'ghost'"),
        (_broken("supervisors.*", 7), r"supervisors\.\*: 7 is not a person"),
        (_broken("crews.east.rota", {"days": "daily"}), r"crews\.east\.rota: a list"),
        ({**CONTACTS, "pagers": {}}, r"contacts: unknown keys \['pagers'\]"),
    ],
)
def test_a_bad_contacts_entry_is_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertConfigError, match=message):
        Contacts.from_mapping(data)


def test_no_contacts_means_nobody_to_tell() -> None:
    assert Contacts.empty().recipients(alert(), 0, 0, CALENDAR) == ()
    assert Contacts.from_mapping({}).recipients(alert(), 2, 0, CALENDAR) == ()


# --- where a subject is ----------------------------------------------------------------------------------


def city() -> list[Asset]:
    assets = [Asset(id="GW-1", kind="gateway", district="hongshan", lat=30.5, lon=114.3)]
    for i in range(5):
        assets.append(
            Asset(
                id=f"LMP-{i}",
                kind="lamp",
                district="hongshan" if i < 4 else "wuchang",
                road="Luoyu Road" if i < 3 else "Bayi Road",
                road_class="trunk",
                grid_cell="G1" if i < 2 else "G2",
                circuit="CIR-A" if i < 3 else "CIR-B",
                gateway="GW-1",
                crew="east" if i < 4 else "west",
                lat=30.5,
                lon=114.3,
            )
        )
    assets.append(
        Asset(
            id="CAB-A",
            kind="cabinet",
            district="hongshan",
            road="Luoyu Road",
            grid_cell="G9",
            circuit="CIR-A",
            crew="cabinets",
            lat=30.5,
            lon=114.3,
        )
    )
    assets.append(
        Asset(id="PS-1", kind="pump_station", district="wuchang", road="Bayi Road", lat=30.5, lon=114.3)
    )
    return assets


@pytest.mark.parametrize(
    ("kind", "subject", "place"),
    [
        ("lamp", "LMP-1", Place("hongshan", "Luoyu Road", "G1", "east", "CIR-A", "GW-1")),
        ("circuit", "CIR-A", Place("hongshan", "Luoyu Road", "G9", "cabinets", "CIR-A", "")),  # its cabinet
        ("circuit", "CIR-B", Place("hongshan", "Bayi Road", "G2", "east", "CIR-B", "GW-1")),  # its first lamp
        ("gateway", "GW-1", Place("hongshan", "Luoyu Road", "G2", "east", "", "GW-1")),  # most of its devices
        ("road", "Bayi Road", Place("wuchang", "Bayi Road", "", "east")),  # 2 of its 3 devices
        ("grid_cell", "G2", Place("hongshan", "", "G2", "east")),
        ("district", "wuchang", Place("wuchang")),
        ("pump_station", "PS-1", Place("wuchang", "Bayi Road")),
        ("lamp", "LMP-404", Place()),
        ("road_class", "trunk", Place()),
    ],
)
def test_the_topology_places_every_kind_of_subject(kind: str, subject: str, place: Place) -> None:
    assert TopologyLocator(build_topology(city())).place(kind, subject) == place
