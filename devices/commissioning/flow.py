"""The commissioning flow: one transition table that the runner and the docs (``flow_doc``) both read.

A commissioning is keyed by the device's serial number and always begins by identifying the device, so
a run that was interrupted resumes on whichever port the device is plugged into next. Each stage is what
has been done and survives a crash; ``ACTIONS`` says what the runner does next from each stage. Moves
backwards undo work: a rejected configuration revokes the credentials, a device that never reports is
taken out of service again. Pure: values in, the next ``Progress`` out; the caller passes the time.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from devices.commissioning import IllegalStep
from devices.commissioning.config import DeviceConfig, Identity, Position, StoredConfig
from devices.commissioning.messages import SUPPORTED_VERSIONS
from devices.kinds import DeviceKind
from devices.topics import ID_PATTERN


class Stage(enum.StrEnum):
    NEW = "new"
    REGISTERED = "registered"
    CREDENTIALED = "credentialed"
    CONFIGURED = "configured"
    TESTED = "tested"
    LIVE = "live"
    RESTARTED = "restarted"
    IN_SERVICE = "in_service"


class Event(enum.StrEnum):
    FOUND = "found"
    REGISTERED = "registered"
    CREDENTIALS_ISSUED = "credentials_issued"
    CONFIG_VERIFIED = "config_verified"
    CONFIG_REJECTED = "config_rejected"
    SECRET_LOST = "secret_lost"  # noqa: S105  # an event name, not a secret
    CONFIG_LOST = "config_lost"
    SELF_TEST_PASSED = "self_test_passed"
    PUT_IN_SERVICE = "put_in_service"
    RESTARTED = "restarted"
    RESTART_FAILED = "restart_failed"
    FIRST_READING = "first_reading"
    SILENT = "silent"
    START_OVER = "start_over"


class Action(enum.StrEnum):
    """What the runner does from a stage; its outcome is the event."""

    REGISTER = "look the device up in the registry, or register it"
    ISSUE_CREDENTIALS = "issue the device's MQTT credentials"
    WRITE_CONFIG = "write the configuration and read it back"
    SELF_TEST = "run the device's self-test"
    PUT_IN_SERVICE = "mark the device in service in the registry"
    RESTART = "restart the device with its new configuration"
    AWAIT_READING = "wait for its first reading through the broker and the ingest"


_S, _E = Stage, Event
_ANY_BUT_NEW: Final = tuple(s for s in Stage if s is not Stage.NEW)

# {stage: {event: next stage}}: the only place the moves are written down (see h11/_state.py).
TRANSITIONS: Mapping[Stage, Mapping[Event, Stage]] = MappingProxyType(
    {
        stage: MappingProxyType({**moves, **({_E.START_OVER: _S.NEW} if stage is not _S.NEW else {})})
        for stage, moves in {
            _S.NEW: {_E.FOUND: _S.REGISTERED, _E.REGISTERED: _S.REGISTERED},
            _S.REGISTERED: {_E.CREDENTIALS_ISSUED: _S.CREDENTIALED},
            _S.CREDENTIALED: {
                _E.CONFIG_VERIFIED: _S.CONFIGURED,
                _E.CONFIG_REJECTED: _S.REGISTERED,
                _E.SECRET_LOST: _S.REGISTERED,
            },
            _S.CONFIGURED: {_E.SELF_TEST_PASSED: _S.TESTED, _E.CONFIG_LOST: _S.REGISTERED},
            _S.TESTED: {_E.PUT_IN_SERVICE: _S.LIVE, _E.CONFIG_LOST: _S.REGISTERED},
            _S.LIVE: {
                _E.RESTARTED: _S.RESTARTED,
                _E.RESTART_FAILED: _S.TESTED,
                _E.CONFIG_LOST: _S.REGISTERED,
            },
            _S.RESTARTED: {
                _E.FIRST_READING: _S.IN_SERVICE,
                _E.SILENT: _S.TESTED,
                _E.CONFIG_LOST: _S.REGISTERED,
            },
            _S.IN_SERVICE: {},
        }.items()
    }
)

ACTIONS: Mapping[Stage, Action] = MappingProxyType(
    {
        _S.NEW: Action.REGISTER,
        _S.REGISTERED: Action.ISSUE_CREDENTIALS,
        _S.CREDENTIALED: Action.WRITE_CONFIG,
        _S.CONFIGURED: Action.SELF_TEST,
        _S.TESTED: Action.PUT_IN_SERVICE,
        _S.LIVE: Action.RESTART,
        _S.RESTARTED: Action.AWAIT_READING,
    }
)

EVENT_MEANING: Mapping[Event, str] = MappingProxyType(
    {
        _E.FOUND: "the device id is in the asset registry already",
        _E.REGISTERED: "the device was added to the registry (out of service) with its position and road",
        _E.CREDENTIALS_ISSUED: "the broker has an account for the device; the password is in memory only",
        _E.CONFIG_VERIFIED: "the configuration was written and read back identical",
        _E.CONFIG_REJECTED: "the device refused the configuration: its credentials are revoked",
        _E.SECRET_LOST: "resumed before the configuration was written: the password was never saved, "
        "so the credentials are issued again",
        _E.CONFIG_LOST: "resumed, and the device no longer holds the configuration written to it",
        _E.SELF_TEST_PASSED: "every check of the device's self-test passed",
        _E.PUT_IN_SERVICE: "the registry says in service, so the ingest accepts the device's readings",
        _E.RESTARTED: "the device restarted and answers again",
        _E.RESTART_FAILED: "the device did not come back from its restart: out of service again",
        _E.FIRST_READING: "the device's first reading is stored in InfluxDB: commissioned",
        _E.SILENT: "no reading before the deadline: out of service again",
        _E.START_OVER: "the technician asked to start over: credentials revoked, out of service",
    }
)


class Undo(enum.StrEnum):
    """Work a backward move takes back, before the run goes on."""

    REVOKE_CREDENTIALS = "revoke the device's broker credentials"
    OUT_OF_SERVICE = "mark the device out of service"


#: Stages in which the broker holds credentials this commissioning issued.
CREDENTIALED_STAGES: Final = frozenset(
    {_S.CREDENTIALED, _S.CONFIGURED, _S.TESTED, _S.LIVE, _S.RESTARTED, _S.IN_SERVICE}
)
#: Stages from which the device holds the configuration the tool wrote (checked again on resume).
CONFIGURED_STAGES: Final = frozenset({_S.CONFIGURED, _S.TESTED, _S.LIVE, _S.RESTARTED, _S.IN_SERVICE})
#: Stages in which this commissioning has put the device in service.
IN_SERVICE_STAGES: Final = frozenset({_S.LIVE, _S.RESTARTED, _S.IN_SERVICE})


def undo(before: Stage, after: Stage) -> tuple[Undo, ...]:
    """What leaving ``before`` for ``after`` takes back."""
    work = []
    if before in CREDENTIALED_STAGES and after not in CREDENTIALED_STAGES:
        work.append(Undo.REVOKE_CREDENTIALS)
    if before in IN_SERVICE_STAGES and after not in IN_SERVICE_STAGES:
        work.append(Undo.OUT_OF_SERVICE)
    return tuple(work)


@dataclass(frozen=True, slots=True)
class Move:
    before: Stage
    event: Event
    after: Stage
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One device's commissioning as saved between runs (never its password)."""

    serial: str
    device_id: str
    kind: DeviceKind
    stage: Stage = Stage.NEW
    registered_now: bool = False  # this commissioning added the asset to the registry
    expected: StoredConfig | None = None  # what the device answered after the write
    restarted_ms: int | None = None  # its first reading is one timestamped after this (less the clock slack)
    history: tuple[Move, ...] = ()

    @property
    def done(self) -> bool:
        return self.stage is Stage.IN_SERVICE

    @property
    def action(self) -> Action | None:
        return ACTIONS.get(self.stage)


def step(progress: Progress, event: Event, at_ms: int, **changes: object) -> Progress:
    """Move ``progress`` by ``event``, with field ``changes``; ``IllegalStep`` when the table has no move."""
    event = Event(event)
    target = TRANSITIONS[progress.stage].get(event)
    if target is None:
        raise IllegalStep(progress.stage.value, event.value)
    move = Move(progress.stage, event, target, at_ms)
    if target is Stage.NEW or target is Stage.REGISTERED:
        changes = {"expected": None, "restarted_ms": None, **changes}
    return replace(progress, stage=target, history=(*progress.history, move), **changes)  # type: ignore[arg-type]


# -- decisions between the steps -------------------------------------------------------------------------

#: Id prefixes of new devices, as the simulated city names them (``LMP-000001``).
ID_PREFIX: Final = MappingProxyType(
    {
        DeviceKind.LAMP: "LMP",
        DeviceKind.CABINET: "CAB",
        DeviceKind.BRIDGE_NODE: "BRN",
        DeviceKind.PUMP_STATION: "PST",
        DeviceKind.FLOOD_GAUGE: "FLG",
        DeviceKind.BIN: "BIN",
    }
)


def identity_problem(identity: Identity) -> str | None:
    """Why this tool cannot commission the device, or None."""
    if not set(identity.protocols) & set(SUPPORTED_VERSIONS):
        speaks = ", ".join(map(str, identity.protocols))
        ours = ", ".join(map(str, SUPPORTED_VERSIONS))
        return (
            f"the device speaks commissioning protocol {speaks}, this tool speaks {ours}: "
            "update citywatch or the device's firmware"
        )
    return None


def choose_kind(identity: Identity, wanted: DeviceKind | None) -> DeviceKind | str:
    """The kind the device will report as, or why none can be chosen."""
    if wanted is not None:
        if wanted not in identity.kinds:
            can = ", ".join(k.value for k in identity.kinds)
            return f"a {identity.model} cannot act as a {wanted.value}; it can be: {can}"
        return wanted
    if len(identity.kinds) == 1:
        return identity.kinds[0]
    can = ", ".join(k.value for k in identity.kinds)
    return f"a {identity.model} can be any of {can}: say which with --kind"


def default_device_id(kind: DeviceKind, serial: str) -> str:
    """``LMP-<serial>``: unique as long as serial numbers are, and safe in a topic and a tag."""
    device_id = f"{ID_PREFIX[kind]}-{serial}"[:64]
    assert ID_PATTERN.fullmatch(device_id), device_id
    return device_id


def choose_device_id(
    kind: DeviceKind, identity: Identity, *, given: str | None, saved: str | None, stored: StoredConfig | None
) -> str:
    """The id given, else the one a resumed run used, else the device's own, else a new one."""
    for candidate in (given, saved, stored.device_id if stored is not None else None):
        if candidate:
            return candidate
    return default_device_id(kind, identity.serial)


def device_config(
    progress: Progress,
    *,
    broker_url: str,
    username: str,
    password: str,
    interval_s: int,
    position: Position,
    circuit: str,
    road: str,
) -> DeviceConfig:
    return DeviceConfig(
        device_id=progress.device_id,
        kind=progress.kind,
        broker_url=broker_url,
        username=username,
        password=password,
        interval_s=interval_s,
        position=position,
        circuit=circuit,
        road=road,
    )


def resume_event(progress: Progress, stored: StoredConfig | None, *, have_secret: bool) -> Event | None:
    """On a resumed run, what the device's present state says about the saved progress (None: carry on)."""
    if progress.stage is Stage.CREDENTIALED and not have_secret:
        return Event.SECRET_LOST
    checked = progress.stage in CONFIGURED_STAGES and progress.stage is not Stage.IN_SERVICE
    if checked and (stored is None or progress.expected is None or stored.differences(progress.expected)):
        return Event.CONFIG_LOST
    return None
