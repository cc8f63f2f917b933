"""What the technician sees (rich): one line per step, a spinner on the step under way, and a summary.

On a terminal the step under way shows a spinner with the time spent; otherwise (a log, a test) only the
finished steps are printed. Errors print what went wrong, what to do, and the supporting lines (failed
self-test checks, the device's log). Text from the device is printed as text, never as rich markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from citywatch.commission import CommissionError
from citywatch.commission.runner import Outcome
from devices.commissioning.config import Identity
from devices.commissioning.flow import EVENT_MEANING, Action, Move, Progress, Stage, Undo

STEP = MappingProxyType(
    {
        Action.REGISTER: "registry",
        Action.ISSUE_CREDENTIALS: "credentials",
        Action.WRITE_CONFIG: "configuration",
        Action.SELF_TEST: "self-test",
        Action.PUT_IN_SERVICE: "in service",
        Action.RESTART: "restart",
        Action.AWAIT_READING: "first reading",
    }
)


def print_error(console: Console, error: CommissionError, indent: str = "") -> None:
    console.print(Text.assemble(indent, ("error: ", "bold red"), error.message))
    if error.hint:
        console.print(Text.assemble(indent, ("what to do: ", "yellow"), error.hint))
    for line in error.details:
        console.print(Text(f"{indent}  {line}", style="dim"))


class ConsoleReporter:
    """The progress of one device, printed as it happens."""

    def __init__(self, console: Console, port: str, *, live: bool) -> None:
        self.console = console
        self.port = port
        self.live = live
        self._status: Status | None = None
        self._step = ""

    def identified(self, identity: Identity, progress: Progress, resumed: bool) -> None:
        what = (
            f"{identity.model}, serial {identity.serial}, firmware {identity.firmware} ({identity.hardware})"
        )
        self.console.print(Text.assemble((f"{self.port}: ", "bold"), what))
        if progress.done:
            self.console.print(Text(f"  {progress.device_id} is already in service (--start-over to redo)"))
        elif resumed:
            self.console.print(Text(f"  resuming {progress.device_id} at stage {progress.stage.value}"))
        else:
            self.console.print(Text(f"  commissioning it as {progress.device_id} ({progress.kind.value})"))

    def started(self, action: Action) -> None:
        self._step = STEP[action]
        if self.live:
            self._stop_status()
            self._status = self.console.status(f"{self._step}: {action.value} ...")
            self._status.start()

    def waiting(self, action: Action, elapsed_s: float) -> None:
        if self._status is not None:
            self._status.update(f"{STEP[action]}: {action.value} ... {elapsed_s:.0f} s")

    def done(self, action: Action, detail: str) -> None:
        self._stop_status()
        self.console.print(Text.assemble("  ", ("✓ ", "green"), (f"{STEP[action]:<14}", "bold"), detail))

    def failed(self, action: Action | None, error: CommissionError) -> None:
        self._stop_status()
        step = STEP[action] if action is not None else "identify"
        self.console.print(Text.assemble("  ", ("✗ ", "red"), (f"{step:<14}", "bold"), error.message))

    def moved(self, move: Move, undone: tuple[Undo, ...]) -> None:
        backwards = list(Stage).index(move.after) < list(Stage).index(move.before)
        if backwards:
            taken_back = f" ({'; '.join(u.value for u in undone)})" if undone else ""
            self.console.print(Text(f"  ↩ {EVENT_MEANING[move.event]}{taken_back}", style="yellow"))

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def summary(outcomes: Sequence[Outcome]) -> Table:
    """The batch summary: one row per device (or per port where none answered)."""
    table = Table(title="Commissioning summary")
    for column in ("port", "address", "serial", "device", "stage", "result"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        result = Text("in service", style="green") if o.error is None else Text(str(o.error), style="red")
        table.add_row(
            Text(o.port),
            str(o.address or "-"),
            Text(o.serial or "-"),
            Text(o.device_id or "-"),
            o.stage.value if o.stage else "-",
            result,
        )
    done = sum(o.error is None for o in outcomes)
    table.caption = f"{done} of {len(outcomes)} in service"
    return table
