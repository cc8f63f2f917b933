"""The commissioning runner: drives ``devices.commissioning.flow`` for one device, step by saved step.

``Commissioning.run`` identifies the device, loads its saved progress (by serial number), checks that
the device still holds what an earlier run wrote, and then carries out the action of each stage until
the first reading is stored. After every step the progress is saved, so an interrupted run resumes where
it stopped. A failure that must undo work (a rejected configuration, a device that never reports)
moves back in the table first; every failure raises a ``CommissionError`` that tells the technician what
to do. The device, the registry, the broker's accounts and InfluxDB come in as small ports.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, Protocol, TypeVar

from citywatch.commission import (
    CommissionError,
    ConfigRejected,
    DeviceRefused,
    LinkError,
    NeverReported,
    NoAnswer,
    NotCommissionable,
    PlacementMissing,
    ReadbackMismatch,
    SelfTestFailed,
    ServiceUnavailable,
)
from citywatch.commission.backends import (
    AssetBook,
    CredentialIssuer,
    IssuedCredentials,
    ReadingSource,
    StoredReading,
)
from citywatch.commission.client import DeviceClient
from citywatch.commission.progress import ProgressStore
from citywatch.commission.settings import CommissionSettings
from devices import RegistryError
from devices.assets import Asset
from devices.commissioning import flow, placement
from devices.commissioning.config import Identity, Position, StoredConfig
from devices.commissioning.flow import Action, Event, Move, Progress, Stage, Undo
from devices.commissioning.placement import PlacementHints
from devices.kinds import DeviceKind

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """What the technician asked for one device."""

    device_id: str | None = None
    kind: DeviceKind | None = None
    hints: PlacementHints = field(default_factory=PlacementHints)
    start_over: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one device's commissioning ended (for the batch summary)."""

    port: str
    address: int
    serial: str | None = None
    device_id: str | None = None
    stage: Stage | None = None
    reading: StoredReading | None = None
    error: CommissionError | None = None


class Reporter(Protocol):
    """The progress display."""

    def identified(self, identity: Identity, progress: Progress, resumed: bool) -> None: ...

    def started(self, action: Action) -> None: ...

    def done(self, action: Action, detail: str) -> None: ...

    def failed(self, action: Action | None, error: CommissionError) -> None: ...

    def moved(self, move: Move, undone: tuple[Undo, ...]) -> None: ...

    def waiting(self, action: Action, elapsed_s: float) -> None: ...


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Commissioning:
    """One device on one line, from identification to its first stored reading."""

    def __init__(
        self,
        client: DeviceClient,
        *,
        settings: CommissionSettings,
        assets: AssetBook,
        accounts: CredentialIssuer,
        readings: ReadingSource,
        store: ProgressStore,
        broker_url: str,
        reporter: Reporter,
        now_ms: Callable[[], int] = _wall_ms,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], object] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.assets = assets
        self.accounts = accounts
        self.readings = readings
        self.store = store
        self.broker_url = broker_url
        self.reporter = reporter
        self.now_ms, self.clock = now_ms, clock
        self.pause = pause or threading.Event().wait  # a pause that is not a bare sleep
        self._secret: IssuedCredentials | None = None  # in memory only, for this run
        self._identity: Identity | None = None
        self._reading: StoredReading | None = None
        self._order = Order()
        self.progress: Progress | None = None  # the last saved progress, also when a step failed

    # -- the run ----------------------------------------------------------------------------------
    def run(self, order: Order) -> Progress:
        """Commission the device on the line; returns its final progress, raises ``CommissionError``."""
        action: Action | None = None
        try:
            progress = self._begin(order)
            while (action := progress.action) is not None:
                self.reporter.started(action)
                progress, detail = self._perform(action, progress)
                self.reporter.done(action, detail)
            return progress
        except CommissionError as exc:
            self.reporter.failed(action, exc)
            raise

    @property
    def reading(self) -> StoredReading | None:
        return self._reading

    @property
    def identity(self) -> Identity | None:
        return self._identity

    def _begin(self, order: Order) -> Progress:
        identity = self._identity = self.client.identify()
        problem = flow.identity_problem(identity)
        if problem is not None:
            raise NotCommissionable(f"{identity.model} (serial {identity.serial}): {problem}")
        stored = self.client.read_config()
        saved = self.store.load(identity.serial)
        if saved is not None and order.start_over and saved.stage is not Stage.NEW:
            saved = self._move(saved, Event.START_OVER)
        kind = flow.choose_kind(identity, order.kind or (saved.kind if saved else None))
        if not isinstance(kind, DeviceKind):  # (a DeviceKind is a str too: test for it)
            raise NotCommissionable(kind)
        resumed = saved is not None and saved.stage is not Stage.NEW
        if saved is not None and resumed:
            if order.device_id and order.device_id != saved.device_id:
                raise NotCommissionable(
                    f"this device is part-way through commissioning as {saved.device_id} ({saved.stage})",
                    hint=f"run with --start-over to commission it as {order.device_id} instead",
                )
            progress = saved
        else:
            device_id = flow.choose_device_id(
                kind, identity, given=order.device_id, saved=saved.device_id if saved else None, stored=stored
            )
            progress = Progress(serial=identity.serial, device_id=device_id, kind=kind)
            if saved is not None:  # a fresh start keeps the earlier runs' history
                progress = dataclasses.replace(progress, history=saved.history)
            self.store.save(progress)
        self.progress = progress
        self.reporter.identified(identity, progress, resumed)
        self._order = order
        if resumed:
            progress = self._resume(progress, stored)
        return progress

    def _resume(self, progress: Progress, stored: StoredConfig | None) -> Progress:
        """Check what the saved progress says against the device and the registry."""
        if progress.done:
            return progress
        asset = self._get(progress.device_id)
        if asset is None and progress.stage is not Stage.NEW:
            return self._move(progress, Event.START_OVER)  # someone deleted it from the registry
        event = flow.resume_event(progress, stored, have_secret=self._secret is not None)
        if event is not None:
            progress = self._move(progress, event)
        if asset is not None and progress.stage is not Stage.NEW:
            self._set_in_service(asset.id, progress.stage in flow.IN_SERVICE_STAGES)
        return progress

    def _move(self, progress: Progress, event: Event, **changes: object) -> Progress:
        """Step, save, then take back what the move undoes (a crash in between is healed on resume)."""
        before = progress.stage
        progress = flow.step(progress, event, self.now_ms(), **changes)
        self.store.save(progress)
        self.progress = progress
        undone = flow.undo(before, progress.stage)
        for work in undone:
            if work is Undo.REVOKE_CREDENTIALS:
                self.accounts.revoke(progress.device_id)
                self._secret = None
            elif work is Undo.OUT_OF_SERVICE:
                self._set_in_service(progress.device_id, False)
        self.reporter.moved(progress.history[-1], undone)
        return progress

    def _perform(self, action: Action, p: Progress) -> tuple[Progress, str]:
        match action:
            case Action.REGISTER:
                return self._register(p)
            case Action.ISSUE_CREDENTIALS:
                self._secret = self.accounts.issue(p.device_id)
                detail = f"broker account {self._secret.username} (password kept in memory only)"
                return self._move(p, Event.CREDENTIALS_ISSUED), detail
            case Action.WRITE_CONFIG:
                return self._write_config(p)
            case Action.SELF_TEST:
                return self._self_test(p)
            case Action.PUT_IN_SERVICE:
                self._set_in_service(p.device_id, True)
                return self._move(p, Event.PUT_IN_SERVICE), f"{p.device_id} is in service in the registry"
            case Action.RESTART:
                return self._restart(p)
            case Action.AWAIT_READING:
                return self._await_reading(p)
        raise AssertionError(action)  # pragma: no cover: every action is handled above

    # -- the steps --------------------------------------------------------------------------------
    def _register(self, p: Progress) -> tuple[Progress, str]:
        asset = self._get(p.device_id)
        if asset is not None:
            if asset.kind != p.kind.value:
                raise NotCommissionable(
                    f"{p.device_id} is registered as a {asset.kind}, but this device is a {p.kind.value}",
                    hint="give the right --device-id",
                )
            self._set_in_service(asset.id, False)  # until its first reading: no alerts for it meanwhile
            where = f"{asset.road or 'no road'}, district {asset.district}"
            return self._move(
                p, Event.FOUND
            ), f"{p.device_id} is registered ({where}); out of service for now"
        assert self._identity is not None
        hints, gnss = self._order.hints, self._identity.gnss
        position = hints.position(gnss)
        neighbour = None if position is None else self._neighbour(position, p.kind)
        need = placement.missing(p.kind, hints, gnss, neighbour)
        if need:
            options = ", ".join(f"--{name.replace('_', '-')}" for name in need)
            why = "it has no GNSS fix" if "lat" in need else f"no registered {p.kind.value} is near it"
            raise PlacementMissing(
                f"{p.device_id} is not in the registry, and {why}",
                needed=need,
                hint=f"give {options} to register it",
            )
        try:
            asset = placement.new_asset(p.device_id, p.kind, hints, gnss, neighbour)
        except RegistryError as exc:
            raise PlacementMissing(
                f"cannot register {p.device_id}: {exc}", hint="correct the option"
            ) from exc
        self._registry("register", self.assets.upsert, [asset])
        detail = f"registered {asset.id} at {asset.lat:.6f}, {asset.lon:.6f}: {asset.road or 'no road'}"
        detail += f", district {asset.district}" + (f", circuit {asset.circuit}" if asset.circuit else "")
        if neighbour is not None:
            assert position is not None
            metres = placement.distance_m(position, Position(neighbour.lat, neighbour.lon))
            detail += f" (as its neighbour {neighbour.id}, {metres:.0f} m away)"
        return self._move(p, Event.REGISTERED, registered_now=True), detail

    def _write_config(self, p: Progress) -> tuple[Progress, str]:
        secret = self._secret
        asset = self._get(p.device_id)
        if secret is None or asset is None:  # cannot happen after _resume; move back rather than guess
            return self._move(p, Event.SECRET_LOST), "credentials to be issued again"
        config = flow.device_config(
            p,
            broker_url=self.broker_url,
            username=secret.username,
            password=secret.password,
            interval_s=self.settings.interval_s,
            position=Position(asset.lat, asset.lon),
            circuit=asset.circuit,
            road=asset.road,
        )
        try:
            self.client.write_config(config)
        except DeviceRefused as exc:
            self._move(p, Event.CONFIG_REJECTED)
            field = f" ({exc.field})" if exc.field else ""
            raise ConfigRejected(
                f"the device refused the configuration{field}: {exc.detail}",
                hint="fix what it names and run again (its broker credentials were revoked)",
                details=self._log(),
            ) from exc
        stored = self.client.read_config()
        expected = config.stored()
        if stored is None or (diff := expected.differences(stored)):
            what = "nothing" if stored is None else ", ".join(diff)
            raise ReadbackMismatch(
                f"the device stored something else than was written (differs: {what})",
                hint="run again; if it persists the device's flash is failing: replace the device",
            )
        detail = f"written and read back: {self.broker_url} every {config.interval_s} s"
        return self._move(p, Event.CONFIG_VERIFIED, expected=stored), detail

    def _self_test(self, p: Progress) -> tuple[Progress, str]:
        report = self.client.self_test(self.settings.self_test_timeout_s)
        if not report.passed:
            failed = tuple(f"{c.name}: {c.detail or 'failed'}" for c in report.failed)
            raise SelfTestFailed(
                f"the self-test failed: {', '.join(c.name for c in report.failed)}",
                hint="fix what failed (below) and run again: the run goes on from the self-test",
                details=failed + self._log(),
            )
        broker = next((c.detail for c in report.checks if c.name == "broker"), "")
        return self._move(p, Event.SELF_TEST_PASSED), f"{len(report.checks)} checks passed; {broker}"

    def _restart(self, p: Progress) -> tuple[Progress, str]:
        started_ms, started = self.now_ms(), self.clock()
        try:
            back_in = self.client.reboot().back_in_s
        except LinkError:
            self._move(p, Event.RESTART_FAILED)
            raise
        self.pause(back_in)
        # One request sent again and again (same sequence number) until the deadline: an answer slower
        # than one attempt's timeout still counts, as it would not for a fresh request per attempt.
        attempts = max(1, math.ceil(self.settings.restart_timeout_s / self.settings.response_timeout_s))
        try:
            identity = self.client.identify(attempts=attempts)
        except LinkError as exc:
            self._move(p, Event.RESTART_FAILED)
            raise NoAnswer(
                f"the device did not come back within {self.settings.restart_timeout_s:g} s of its restart",
                hint="check its power; run again to retry the restart (it is out of service)",
            ) from exc
        if identity.serial != p.serial:
            raise NotCommissionable(
                f"another device ({identity.serial}) answers on the line after the restart"
            )
        detail = f"back after {self.clock() - started:.1f} s"
        return self._move(p, Event.RESTARTED, restarted_ms=started_ms), detail

    def _await_reading(self, p: Progress) -> tuple[Progress, str]:
        since = (p.restarted_ms or self.now_ms()) - int(self.settings.clock_slack_s * 1000)
        started = self.clock()
        deadline = started + self.settings.first_reading_timeout_s
        while True:
            reading = self.readings.first_reading(p.kind, p.device_id, since)
            if reading is not None:
                self._reading = reading
                shown = ", ".join(f"{k} {v}" for k, v in list(reading.fields.items())[:6])
                return self._move(p, Event.FIRST_READING), f"stored: {shown}"
            if self.clock() >= deadline:
                break
            self.reporter.waiting(Action.AWAIT_READING, self.clock() - started)
            self.pause(self.settings.poll_interval_s)
        log = self._log()
        self._move(p, Event.SILENT)
        raise NeverReported(
            f"no reading of {p.device_id} was stored within {self.settings.first_reading_timeout_s:g} s",
            hint="the device's log (below) says why: a broker it cannot reach, refused credentials, no "
            "network. It is out of service again; fix it and run again",
            details=log,
        )

    # -- helpers ----------------------------------------------------------------------------------
    def _log(self) -> tuple[str, ...]:
        """The device's last log lines, if it answers (an error message must not fail for want of them)."""
        try:
            lines = self.client.read_log(self.settings.log_lines)
        except LinkError:
            return ("(the device's log could not be read)",)
        return tuple(f"device log: {line}" for line in lines)

    def _neighbour(self, position: Position, kind: DeviceKind) -> Asset | None:
        max_m = self.settings.neighbour_m
        candidates = self._registry("read", self.assets.near, position, kind, max_m)
        return placement.nearest(position, candidates, kind, max_m)

    def _get(self, device_id: str) -> Asset | None:
        return self._registry("read", self.assets.get, device_id)

    def _set_in_service(self, device_id: str, in_service: bool) -> None:
        asset = self._get(device_id)
        if asset is not None and asset.in_service != in_service:
            self._registry("update", self.assets.upsert, [dataclasses.replace(asset, in_service=in_service)])

    def _registry(self, what: str, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return call(*args, **kwargs)
        except RegistryError as exc:
            raise ServiceUnavailable(
                f"cannot {what} the asset registry: {exc}", hint="check CITYWATCH_REGISTRY_URL"
            ) from exc
