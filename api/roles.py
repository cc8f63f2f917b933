"""Who may do what: roles, the areas routes belong to, and one table of which roles each area admits (pure).

Every route of the API is listed in ``ROUTE_AREAS`` (method and path template to area), or falls under a
prefix of ``PREFIX_AREAS`` (routers handed over by other teams, such as device commands). A route in
neither is refused to everyone: a new route is closed until someone decides who may use it. The docs
(docs/api.md) print ``ROLE_TABLE``; a test walks every route of the app through it.

A crew user works with its own crew's alerts only (``CREW_SCOPED``): lists are filtered to the crew and
an alert of another crew is refused (``may_touch_crew``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from api import Forbidden


class Role(enum.StrEnum):
    VIEWER = "viewer"  # the control room's screens, supervisors: read everything, change nothing
    OPERATOR = "operator"  # the control room: acts on alerts, sends device commands
    CREW = "crew"  # a maintenance crew: sees and acts on its own crew's alerts
    ADMIN = "admin"  # users, API keys, the asset registry, the audit log; and everything else


class Area(enum.StrEnum):
    SELF = "self"  # one's own session: who am I, sign out
    READ = "read"  # assets, live state, history, rates, the live feed
    ALERTS_READ = "alerts.read"
    ALERTS_ACT = "alerts.act"  # acknowledge, start, note, resolve
    ALERTS_ASSIGN = "alerts.assign"  # hand an alert to a crew (a crew user: within its own crew)
    ALERTS_CONFIRM = "alerts.confirm"  # close (confirm the fix) or reopen
    REPORTS = "reports"  # the weekly assessment and the monthly bulletin
    COMMANDS = "commands"  # device commands (switch, dim, reboot)
    REGISTRY = "registry"  # create, update and import assets
    ACCOUNTS = "accounts"  # users and API keys
    AUDIT = "audit"  # read the audit log


_V, _O, _C, _A = Role.VIEWER, Role.OPERATOR, Role.CREW, Role.ADMIN

# {area: roles}: the only place the permissions are written down.
ROLE_TABLE: Final[Mapping[Area, frozenset[Role]]] = MappingProxyType(
    {
        Area.SELF: frozenset({_V, _O, _C, _A}),
        Area.READ: frozenset({_V, _O, _C, _A}),
        Area.ALERTS_READ: frozenset({_V, _O, _C, _A}),
        Area.ALERTS_ACT: frozenset({_O, _C, _A}),
        Area.ALERTS_ASSIGN: frozenset({_O, _C, _A}),
        Area.ALERTS_CONFIRM: frozenset({_O, _A}),
        # the bulletin lists every crew's overdue faults: not for a crew that sees only its own
        Area.REPORTS: frozenset({_V, _O, _A}),
        Area.COMMANDS: frozenset({_O, _A}),
        Area.REGISTRY: frozenset({_A}),
        Area.ACCOUNTS: frozenset({_A}),
        Area.AUDIT: frozenset({_A}),
    }
)

#: Areas where a crew user is limited to alerts of its own crew.
CREW_SCOPED: Final = frozenset({Area.ALERTS_READ, Area.ALERTS_ACT, Area.ALERTS_ASSIGN})

V1: Final = "/api/v1"

_ROUTES: dict[tuple[str, str], Area] = {
    ("POST", "/auth/logout"): Area.SELF,
    ("GET", "/me"): Area.SELF,
    ("GET", "/users"): Area.ACCOUNTS,
    ("POST", "/users"): Area.ACCOUNTS,
    ("PATCH", "/users/{name}"): Area.ACCOUNTS,
    ("GET", "/keys"): Area.ACCOUNTS,
    ("POST", "/keys"): Area.ACCOUNTS,
    ("DELETE", "/keys/{key_id}"): Area.ACCOUNTS,
    ("GET", "/audit"): Area.AUDIT,
    ("GET", "/assets"): Area.READ,
    ("GET", "/assets/export"): Area.READ,
    ("GET", "/assets/{asset_id}"): Area.READ,
    ("POST", "/assets"): Area.REGISTRY,
    ("PATCH", "/assets/{asset_id}"): Area.REGISTRY,
    ("POST", "/assets/import"): Area.REGISTRY,
    ("GET", "/live/devices/{device_id}"): Area.READ,
    ("GET", "/live/circuits/{circuit_id}"): Area.READ,
    ("GET", "/live/stations/{station_id}"): Area.READ,
    ("GET", "/history/{device_id}/{field}"): Area.READ,
    ("GET", "/rates"): Area.READ,
    ("GET", "/alerts"): Area.ALERTS_READ,
    ("GET", "/alerts/{alert_id}"): Area.ALERTS_READ,
    ("POST", "/alerts/{alert_id}/ack"): Area.ALERTS_ACT,
    ("POST", "/alerts/{alert_id}/start"): Area.ALERTS_ACT,
    ("POST", "/alerts/{alert_id}/note"): Area.ALERTS_ACT,
    ("POST", "/alerts/{alert_id}/resolve"): Area.ALERTS_ACT,
    ("POST", "/alerts/{alert_id}/assign"): Area.ALERTS_ASSIGN,
    ("POST", "/alerts/{alert_id}/close"): Area.ALERTS_CONFIRM,
    ("POST", "/alerts/{alert_id}/reopen"): Area.ALERTS_CONFIRM,
    ("GET", "/feed"): Area.READ,
    ("GET", "/map/faults"): Area.READ,  # a crew user: its own crew's faults (api.routes.fault_map)
    ("GET", "/map/summary"): Area.READ,
    ("GET", "/map/positions"): Area.READ,
    ("GET", "/reports/{kind}"): Area.REPORTS,
    # the command desk's router (api.commanding.routes): anyone reads what was sent, only
    # operators send (its POST falls under the commands prefix below)
    ("GET", "/commands"): Area.READ,
    ("GET", "/commands/{command_id}"): Area.READ,
}
#: (method, path template) of every own route to its area.
ROUTE_AREAS: Final[Mapping[tuple[str, str], Area]] = MappingProxyType(
    {(method, V1 + path): area for (method, path), area in _ROUTES.items()}
)
#: Routers handed over by other teams: every method under the prefix.
PREFIX_AREAS: Final[tuple[tuple[str, Area], ...]] = ((f"{V1}/commands", Area.COMMANDS),)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user signed in with a token, or a machine client with an API key."""

    name: str
    role: Role
    crew: str = ""  # the crew of a crew user or key; "" otherwise
    via: str = "token"  # "token" or "key"

    @property
    def actor(self) -> str:
        """How the alert history and the audit log name this caller (keys are marked as such)."""
        return f"key:{self.name}" if self.via == "key" else self.name


def area_of(method: str, path_template: str) -> Area | None:
    """The area of a route, or None: a route nobody has placed is refused to everyone."""
    found = ROUTE_AREAS.get((method.upper(), path_template))
    if found is not None:
        return found
    for prefix, area in PREFIX_AREAS:
        if path_template == prefix or path_template.startswith(prefix + "/"):
            return area
    return None


def allowed(role: Role, area: Area) -> bool:
    return role in ROLE_TABLE[area]


def may_touch_crew(principal: Principal, crew: str) -> bool:
    """Whether ``principal`` may see or act on an alert of ``crew`` (only crew users are limited)."""
    return principal.role is not Role.CREW or (bool(principal.crew) and crew == principal.crew)


def crew_for_listing(principal: Principal, requested: str | None) -> str | None:
    """The crew filter to apply (None: every crew); a crew user gets its own crew, and ``Forbidden``
    when it asks for another."""
    if principal.role is not Role.CREW:
        return requested
    if requested is not None and requested != principal.crew:
        raise Forbidden(
            f"{principal.name} works for crew {principal.crew!r}: it sees that crew's alerts only"
        )
    return principal.crew
