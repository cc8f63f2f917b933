"""`citywatch alerts` sub-commands: list and show alerts, and act on them as a crew member.

The store is the one ``CITYWATCH_ALERTS_DB_URL`` names (default: ``alerts.db`` in the var dir). An action
(ack, start, resolve, close) moves the alert by the lifecycle table and records who, when and the note;
a move the table does not allow is refused with the moves that are allowed (exit code 2).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analytics.alerts import IllegalTransition, UnknownAlert
from analytics.alerts.lifecycle import allowed, step
from analytics.alerts.model import Alert, AlertEvent, AlertState, Severity, Transition
from analytics.alerts.policy import Changes
from analytics.alerts.settings import AlertSettings
from analytics.alerts.store import AlertStore, AlertStoreError, StaleAlert
from citywatch.settings import CommonSettings

app = typer.Typer(no_args_is_help=True)

#: The events a person triggers, by the command that triggers them (the others are the system's).
COMMANDS: Final = {
    AlertEvent.ACKNOWLEDGE: "ack",
    AlertEvent.START: "start",
    AlertEvent.RESOLVE: "resolve",
    AlertEvent.CLOSE: "close",
}
#: Tries of an action whose alert someone else changed meanwhile (each reads it again).
ACT_TRIES = 3
#: Exit code of a refused action (unknown alert, a move the lifecycle does not allow).
REFUSED = 2

_SEVERITY_STYLE: Final = {Severity.EMERGENCY: "bold red", Severity.SERIOUS: "yellow", Severity.ORDINARY: ""}

WhoOption = Annotated[
    str, typer.Option("--who", help="Who acts (name or staff id); recorded in the history.")
]
IdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="The alert id, as `citywatch alerts list` shows it.")
]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _local(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def _zone() -> str:
    return dt.datetime.now(tz=dt.UTC).astimezone().strftime("%Z (UTC%z)")


def _open_store() -> AlertStore:
    common, settings = CommonSettings(), AlertSettings()
    if settings.db_url is None:
        common.var_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    return AlertStore(settings.sqlalchemy_url(common.var_dir))


def _fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True).print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(code)


def _deadline(alert: Alert, now_ms: int) -> Text:
    overdue = alert.live and alert.deadline_ms < now_ms
    return Text(_local(alert.deadline_ms) + (" overdue" if overdue else ""), "bold red" if overdue else "")


@app.command("list")
def list_command(
    state: Annotated[
        AlertState | None, typer.Option("--state", help="Only this state (default: every live one).")
    ] = None,
    crew: Annotated[str | None, typer.Option("--crew", help="Only this crew's alerts.")] = None,
    severity: Annotated[Severity | None, typer.Option("--severity", help="Only this severity.")] = None,
    road: Annotated[str | None, typer.Option("--road", help="Only alerts on this road.")] = None,
    district: Annotated[str | None, typer.Option("--district", help="Only alerts in this district.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only live alerts past their deadline.")] = False,
    every: Annotated[bool, typer.Option("--all", help="Resolved and closed alerts too.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 100,
) -> None:
    """List alerts, the nearest deadline first."""
    now_ms = _now_ms()
    states: AlertState | tuple[AlertState, ...] | None = state
    if state is None and not every:
        states = tuple(s for s in AlertState if s not in (AlertState.RESOLVED, AlertState.CLOSED))
    try:
        with _open_store() as store:
            alerts = store.list(
                state=states,
                crew=crew,
                severity=severity,
                road=road,
                district=district,
                overdue_at_ms=now_ms if overdue else None,
                limit=limit,
            )
    except AlertStoreError as exc:
        raise _fail(str(exc)) from exc
    table = Table(caption=f"{len(alerts)} alert{'' if len(alerts) == 1 else 's'}; times in {_zone()}")
    table.add_column("alert", no_wrap=True)
    for column in ("severity", "state", "subject", "road", "crew", "opened", "deadline", "esc."):
        table.add_column(column)
    for a in alerts:
        table.add_row(
            Text(a.id),
            Text(a.severity.value, _SEVERITY_STYLE[a.severity]),
            Text(a.state.value),
            Text(a.subject),
            Text(a.road),
            Text(a.crew),
            Text(_local(a.opened_ms)),
            _deadline(a, now_ms),
            Text(str(a.escalation) if a.escalation else ""),
        )
    Console().print(table)


@app.command("show")
def show_command(alert_id: IdArgument) -> None:
    """Show one alert and its history."""
    try:
        with _open_store() as store:
            alert = store.get(alert_id)
            history = store.history(alert_id)
    except UnknownAlert as exc:
        raise _fail(str(exc), REFUSED) from exc
    except AlertStoreError as exc:
        raise _fail(str(exc)) from exc
    console = Console()
    console.print(_alert_table(alert, _now_ms()))
    console.print(_history_table(history))


def _alert_table(a: Alert, now_ms: int) -> Table:
    table = Table(title=a.id, show_header=False, caption=f"times in {_zone()}")
    table.add_column("field", style="bold")
    table.add_column("value")
    rows: list[tuple[str, str | Text]] = [
        ("rule", f"{a.rule} ({a.family})"),
        ("subject", f"{a.subject} ({a.subject_kind})"),
        ("where", f"{a.district} / {a.road} / grid {a.grid_cell}"),
        ("crew", a.crew),
        ("severity", Text(a.severity.value, _SEVERITY_STYLE[a.severity])),
        ("state", a.state.value),
        ("what", a.explanation),
        ("opened", _local(a.opened_ms)),
        ("deadline", _deadline(a, now_ms)),
        ("acknowledged", _local(a.acknowledged_ms)),
        ("resolved", _local(a.resolved_ms)),
        ("closed", _local(a.closed_ms)),
        ("escalation", ("crew", "road chief", "supervisor")[min(a.escalation, 2)]),
    ]
    if a.children:
        rows.append(
            ("carries", f"{len(a.children)}: {', '.join(a.children[:10])}" + " ..." * (len(a.children) > 10))
        )
    extras = (
        ("part of", a.parent),
        ("maintenance", a.maintenance),
        ("flapping", "yes" if a.flapping else ""),
        ("reopened", f"{a.reopen_count} times" if a.reopen_count else ""),
        ("on time", {None: "", True: "yes", False: "no: resolved after the deadline"}[a.on_time()]),
        ("condition clear since", _local(a.condition_clear_ms)),
    )
    rows.extend((name, value) for name, value in extras if value)
    for name, value in rows:
        table.add_row(name, value if isinstance(value, Text) else Text(value))
    return table


def _history_table(history: list[Transition]) -> Table:
    table = Table(title="history")
    for column in ("when", "move", "event", "who", "note"):
        table.add_column(column)
    for t in history:
        move = t.to_state.value if t.from_state is None else f"{t.from_state.value} → {t.to_state.value}"
        table.add_row(*(Text(v) for v in (_local(t.at_ms), move, t.event, t.actor, t.note)))
    return table


def _refusal(exc: IllegalTransition) -> str:
    moves = [COMMANDS[e] for e in allowed(AlertState(exc.state)) if e in COMMANDS]
    if not moves:
        return f"{exc}; a {exc.state} alert takes no more actions"
    return f"{exc}; from {exc.state} you can: {', '.join(moves)}"


def _act(alert_id: str, event: AlertEvent, who: str, note: str) -> None:
    who = who.strip()
    if not who:
        raise typer.BadParameter("say who acts", param_hint="--who")
    try:
        with _open_store() as store:
            for _ in range(ACT_TRIES):
                alert = store.get(alert_id)
                moved, transition = step(alert, event, who, _now_ms(), note)
                try:
                    store.apply(Changes(alerts=(moved,), transitions=(transition,)), based_on=(alert,))
                    break
                except StaleAlert:
                    continue  # the service (or a colleague) changed it meanwhile: decide on the new version
            else:
                raise _fail(f"alert {alert_id} keeps changing under us; try again")
    except UnknownAlert as exc:
        raise _fail(str(exc), REFUSED) from exc
    except IllegalTransition as exc:
        raise _fail(_refusal(exc), REFUSED) from exc
    except AlertStoreError as exc:
        raise _fail(str(exc)) from exc
    Console().print(
        Text.assemble(
            alert_id, ": ", (alert.state.value, "dim"), " → ", (moved.state.value, "bold"), f" by {who}"
        )
    )


@app.command("ack")
def ack_command(
    alert_id: IdArgument,
    who: WhoOption,
    note: Annotated[str, typer.Option("--note", help="A note for the history.")] = "",
) -> None:
    """Acknowledge: you have seen the alert and own it (stops its escalation)."""
    _act(alert_id, AlertEvent.ACKNOWLEDGE, who, note)


@app.command("start")
def start_command(
    alert_id: IdArgument,
    who: WhoOption,
    note: Annotated[str, typer.Option("--note", help="A note for the history.")] = "",
) -> None:
    """Start: work on site has begun."""
    _act(alert_id, AlertEvent.START, who, note)


@app.command("resolve")
def resolve_command(
    alert_id: IdArgument,
    who: WhoOption,
    note: Annotated[str, typer.Option("--note", help="What was done (required).")],
) -> None:
    """Resolve: it is fixed; say what was done."""
    if not note.strip():
        raise typer.BadParameter("say what was done", param_hint="--note")
    _act(alert_id, AlertEvent.RESOLVE, who, note)


@app.command("close")
def close_command(
    alert_id: IdArgument,
    who: WhoOption,
    note: Annotated[str, typer.Option("--note", help="A note for the history.")] = "",
) -> None:
    """Close: confirmed fixed (a resolved alert)."""
    _act(alert_id, AlertEvent.CLOSE, who, note)
