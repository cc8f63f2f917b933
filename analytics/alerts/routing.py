"""Who hears about an alert: the crew's on-call person, then the road chief and grid manager, then the
supervisor; and where an alert's subject is (district, road, grid cell, crew).

Escalation levels (the issue: "an alert goes to its crew; if nobody acknowledges ... it escalates to the
road chief, then the supervisor"):

- level 0: the crew's on-call person now (a rota entry matching the local day and time), else the crew's
  default on-call person, else every member of the crew;
- level 1: the road chief (路长) of the alert's road and the grid manager (网格长) of its grid cell;
- level 2: the supervisor of the alert's district, else the city-wide supervisor ``"*"``.

``Contacts.from_mapping`` reads the contacts file's structure (the service loads it from TOML)::

    [people.wang]
    name = "Wang Wei"
    urls = ["mailto://wang@example.org", "dingtalk://token"]   # apprise URLs
    phone = "+86 138 0000 0000"                                # optional

    [crews.east-lighting]
    members = ["wang", "li"]
    on_call = "wang"                  # optional: who is on call when no rota entry matches
    rota = [{days = "mon-fri", start = "08:00", end = "20:00", on_call = "li"},
            {days = "mon-sun", start = "20:00", end = "08:00", on_call = "wang"}]   # overnight wraps

    [road_chiefs]     # road -> person
    "Jiefang Road" = "zhang"
    [grid_managers]   # grid cell -> person
    "G-101" = "zhao"
    [supervisors]     # district (or "*" for the rest of the city) -> person
    hongshan = "chen"
    "*" = "boss"

Rota days are "mon-fri", "sat,sun", "daily", or "workdays" / "offdays" (the ``WorkCalendar``'s working days,
holidays and make-up days included). Pure: no file, no clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from analytics.alerts import AlertConfigError
from analytics.alerts.model import Alert
from analytics.alerts.severity import WorkCalendar, weekdays
from analytics.topology import CIRCUIT, DISTRICT, GATEWAY_SUBJECT, GRID, NONE, ROAD, Topology
from devices.kinds import DeviceKind

_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_ALL_DAYS = frozenset(range(7))
WORKDAYS = "workdays"
OFFDAYS = "offdays"


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    urls: tuple[str, ...]  # apprise URLs
    phone: str = ""


@dataclass(frozen=True, slots=True)
class RotaEntry:
    """Who is on call on some days between two local times (``end <= start`` runs past midnight)."""

    days: str  # as written: "mon-fri", "daily", "workdays", "offdays", ...
    start_min: int  # minutes after local midnight
    end_min: int
    on_call: str

    def on_duty(self, local: dt.datetime, calendar: WorkCalendar) -> bool:
        minute = local.hour * 60 + local.minute
        today = local.date()
        if self.start_min < self.end_min:
            return self._covers(today, calendar) and self.start_min <= minute < self.end_min
        # overnight: from start on a listed day until end on the next day
        if minute >= self.start_min:
            return self._covers(today, calendar)
        return minute < self.end_min and self._covers(today - dt.timedelta(days=1), calendar)

    def _covers(self, day: dt.date, calendar: WorkCalendar) -> bool:
        if self.days == WORKDAYS:
            return calendar.is_working_day(day)
        if self.days == OFFDAYS:
            return not calendar.is_working_day(day)
        return day.weekday() in _parse_days(self.days)


def _parse_days(text: str) -> frozenset[int]:
    return _ALL_DAYS if text == "daily" else weekdays(text)


@dataclass(frozen=True, slots=True)
class Crew:
    name: str
    members: tuple[str, ...]
    rota: tuple[RotaEntry, ...] = ()
    on_call: str = ""  # default when no rota entry matches ("" : every member)


@dataclass(frozen=True, slots=True)
class Contacts:
    """People, crews with their rotas, and who is responsible for each road, grid cell and district."""

    people: Mapping[str, Person]
    crews: Mapping[str, Crew]
    road_chiefs: Mapping[str, str]
    grid_managers: Mapping[str, str]
    supervisors: Mapping[str, str]

    @staticmethod
    def empty() -> Contacts:
        return Contacts(*(MappingProxyType({}) for _ in range(5)))

    @staticmethod
    def from_mapping(data: Mapping[str, Any]) -> Contacts:
        """Validate and build; an error names the bad entry, e.g. ``crews.east.rota[1].on_call``."""
        data = _keys("contacts", data, {"people", "crews", "road_chiefs", "grid_managers", "supervisors"})
        people = {pid: _person(pid, entry) for pid, entry in _table("people", data.get("people", {})).items()}

        def person_ref(where: str, value: object) -> str:
            if not isinstance(value, str) or value not in people:
                raise AlertConfigError(f"{where}: {value!r} is not a person in [people]")
            return value

        crews: dict[str, Crew] = {}
        for name, raw in _table("crews", data.get("crews", {})).items():
            where = f"crews.{name}"
            entry = _keys(where, raw, {"members", "rota", "on_call"})
            members = entry.get("members", [])
            if not isinstance(members, list) or not members:
                raise AlertConfigError(f"{where}.members: a non-empty list of people")
            rota = entry.get("rota", [])
            if not isinstance(rota, list):
                raise AlertConfigError(f"{where}.rota: a list of entries")
            crews[name] = Crew(
                name=name,
                members=tuple(person_ref(f"{where}.members[{i}]", m) for i, m in enumerate(members)),
                rota=tuple(_rota(f"{where}.rota[{i}]", r, person_ref) for i, r in enumerate(rota)),
                on_call=person_ref(f"{where}.on_call", entry["on_call"]) if "on_call" in entry else "",
            )
        chiefs = {
            table: {k: person_ref(f"{table}.{k}", v) for k, v in _table(table, data.get(table, {})).items()}
            for table in ("road_chiefs", "grid_managers", "supervisors")
        }
        return Contacts(
            people=MappingProxyType(people),
            crews=MappingProxyType(crews),
            road_chiefs=MappingProxyType(chiefs["road_chiefs"]),
            grid_managers=MappingProxyType(chiefs["grid_managers"]),
            supervisors=MappingProxyType(chiefs["supervisors"]),
        )

    def on_call(self, crew: str, now_ms: int, calendar: WorkCalendar) -> tuple[str, ...]:
        """The crew's on-call person(s) now; the default on-call person or every member otherwise."""
        team = self.crews.get(crew)
        if team is None:
            return ()
        local = calendar.local(now_ms)
        on_duty = _unique(e.on_call for e in team.rota if e.on_duty(local, calendar))
        if on_duty:
            return on_duty
        return (team.on_call,) if team.on_call else team.members

    def recipients(self, alert: Alert, level: int, now_ms: int, calendar: WorkCalendar) -> tuple[str, ...]:
        """Person ids to tell about ``alert`` at escalation ``level`` (0 crew, 1 road chief and grid
        manager, 2 supervisor); () when nobody is configured for that level."""
        if level <= 0:
            return self.on_call(alert.crew, now_ms, calendar)
        if level == 1:
            return _unique(
                p
                for p in (self.road_chiefs.get(alert.road, ""), self.grid_managers.get(alert.grid_cell, ""))
                if p
            )
        boss = self.supervisors.get(alert.district) or self.supervisors.get("*", "")
        return (boss,) if boss else ()

    def urls(self, person: str) -> tuple[str, ...]:
        """The person's apprise URLs; () for a person not in the contacts (e.g. removed since)."""
        found = self.people.get(person)
        return found.urls if found is not None else ()

    def name(self, person: str) -> str:
        found = self.people.get(person)
        return found.name if found is not None else person


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _table(where: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AlertConfigError(f"{where}: a table (mapping) expected, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise AlertConfigError(f"{where}: key {key!r} is not a non-empty text")
    return value


def _keys(where: str, entry: object, allowed: set[str]) -> Mapping[str, Any]:
    table = _table(where, entry)
    unknown = set(table) - allowed
    if unknown:
        raise AlertConfigError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    return table


def _person(pid: str, raw: object) -> Person:
    where = f"people.{pid}"
    entry = _keys(where, raw, {"name", "urls", "phone"})
    name = entry.get("name", pid)
    urls = entry.get("urls")
    phone = entry.get("phone", "")
    if not isinstance(name, str) or not name:
        raise AlertConfigError(f"{where}.name: a non-empty text")
    if not isinstance(urls, list) or not urls:
        raise AlertConfigError(f"{where}.urls: a non-empty list of apprise URLs")
    for i, url in enumerate(urls):
        if not isinstance(url, str) or "://" not in url:
            raise AlertConfigError(f"{where}.urls[{i}]: {url!r} is not an apprise URL (scheme://...)")
    if not isinstance(phone, str):
        raise AlertConfigError(f"{where}.phone: a text")
    return Person(pid, name, tuple(urls), phone)


def _minutes(where: str, value: object) -> int:
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise AlertConfigError(f"{where}: {value!r} is not a time HH:MM")
    return int(match[1]) * 60 + int(match[2])


def _rota(where: str, raw: object, person_ref: Callable[[str, object], str]) -> RotaEntry:
    entry = _keys(where, raw, {"days", "start", "end", "on_call"})
    days = entry.get("days", "daily")
    if not isinstance(days, str):
        raise AlertConfigError(f"{where}.days: a text like 'mon-fri'")
    if days not in (WORKDAYS, OFFDAYS):
        try:
            _parse_days(days)
        except AlertConfigError as exc:
            raise AlertConfigError(f"{where}.days: {exc} (or daily, workdays, offdays)") from exc
    start = _minutes(f"{where}.start", entry.get("start", "00:00"))
    end = _minutes(f"{where}.end", entry.get("end", "00:00"))
    if "on_call" not in entry:
        raise AlertConfigError(f"{where}.on_call: who is on call")
    on_call = person_ref(f"{where}.on_call", entry["on_call"])
    return RotaEntry(days, start, end, on_call)


# --- where a subject is --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    """Where a finding's subject is, for routing and maintenance windows ("" where it has none)."""

    district: str = ""
    road: str = ""
    grid_cell: str = ""
    crew: str = ""
    circuit: str = ""
    gateway: str = ""


class Locator(Protocol):
    def place(self, subject_kind: str, subject: str) -> Place: ...


class TopologyLocator:
    """Places from the analytics topology: a device by its table row; a circuit by its cabinet, else its
    first lamp; a gateway, road or grid cell by what most of its devices say; a district by name."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._cache: dict[tuple[str, str], Place] = {}

    def place(self, subject_kind: str, subject: str) -> Place:
        key = (subject_kind, subject)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._find(subject_kind, subject)
        return found

    def _find(self, kind: str, subject: str) -> Place:
        topo = self.topology
        number = topo.number(kind, subject)
        if kind == DISTRICT:
            return Place(district=subject)
        if number == NONE:
            return Place()
        if kind == CIRCUIT:
            cabinet = int(topo.circuit_cabinet[number])
            if cabinet != NONE:
                return self._device(DeviceKind.CABINET, cabinet)
            lamps = topo.tables.get(DeviceKind.LAMP)
            if lamps is not None:
                rows = np.flatnonzero(lamps.circuit == number)
                if len(rows):
                    return self._device(DeviceKind.LAMP, int(rows[0]))
            return Place(circuit=subject)
        if kind == GATEWAY_SUBJECT:
            return self._mode("gateway", number, gateway=subject)
        if kind == ROAD:
            return self._mode("road", number, road=subject, use_grid=False)
        if kind == GRID:
            return self._mode("grid", number, grid_cell=subject, use_road=False)
        try:
            device_kind = DeviceKind(kind)
        except ValueError:
            return Place()
        return self._device(device_kind, number)

    def _device(self, kind: DeviceKind, row: int) -> Place:
        table = self.topology.tables[kind]
        topo = self.topology
        return Place(
            district=_name(topo.districts, int(table.district[row])),
            road=_name(topo.roads, int(table.road[row])),
            grid_cell=_name(topo.grid_cells, int(table.grid[row])),
            crew=_name(topo.crews, int(table.crew[row])),
            circuit=_name(topo.circuits, int(table.circuit[row])),
            gateway=_name(topo.gateways, int(table.gateway[row])),
        )

    def _mode(
        self, relation: str, number: int, *, use_road: bool = True, use_grid: bool = True, **fixed: str
    ) -> Place:
        """The most common district, road, grid cell and crew among the devices related to ``number``."""
        topo = self.topology
        picked: dict[str, list[npt.NDArray[np.int64]]] = {"district": [], "road": [], "grid": [], "crew": []}
        for table in topo.tables.values():
            rows = np.flatnonzero(getattr(table, relation) == number)
            for name, codes in picked.items():
                codes.append(getattr(table, name)[rows].astype(np.int64))
        values = {
            "district": _name(topo.districts, _most_common(picked["district"])),
            "road": _name(topo.roads, _most_common(picked["road"])) if use_road else "",
            "grid_cell": _name(topo.grid_cells, _most_common(picked["grid"])) if use_grid else "",
            "crew": _name(topo.crews, _most_common(picked["crew"])),
        }
        return Place(**{**values, **fixed})


def _most_common(parts: Sequence[npt.NDArray[np.int64]]) -> int:
    codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    codes = codes[codes >= 0]
    return int(np.bincount(codes).argmax()) if len(codes) else NONE


def _name(names: Sequence[str], code: int) -> str:
    return names[code] if code >= 0 else ""
