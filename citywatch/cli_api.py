"""`citywatch api`: run the operations HTTP API, and manage its users and API keys.

Outside development mode nothing is created for you: add the first admin with
``citywatch api users add NAME --role admin`` (it asks for the password), machine clients get keys from
``citywatch api keys create NAME --role viewer``. In development mode (``CITYWATCH_API_DEV_MODE=true``,
and always under ``citywatch run``) demo users with random passwords are (re)created at start and
written to ``var/api-users.txt`` (readable by this user only).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
import time
import tomllib
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import typer
from rich.console import Console
from rich.table import Table

from analytics.alerts.settings import AlertSettings
from api import ApiError, Conflict
from api.accounts import AccountStore
from api.roles import Role
from api.settings import ApiSettings
from citywatch.settings import CommonSettings

if TYPE_CHECKING:
    from api.commanding.service import CommandDesk

console = Console(highlight=False)
app = typer.Typer(no_args_is_help=True, help="The operations HTTP API: run it, manage users and API keys.")
users_app = typer.Typer(no_args_is_help=True, help="API users (people): add, list, change password, disable.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (machine clients): create, list, revoke.")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

DEFAULT_PORT: Final = 8000
_DEMO_STAFF: Final = (("admin", Role.ADMIN), ("operator", Role.OPERATOR), ("viewer", Role.VIEWER))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _accounts(common: CommonSettings, settings: ApiSettings) -> AccountStore:
    if settings.db_url is None:
        common.var_dir.mkdir(parents=True, exist_ok=True)
    return AccountStore(settings.sqlalchemy_url(common.var_dir))


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise typer.BadParameter(f"one of {', '.join(r.value for r in Role)}", param_hint="--role") from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("password (12 characters or more)", hide_input=True, confirmation_prompt=True))


# --- demo users (development mode) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoUser:
    name: str
    role: Role
    crew: str
    password: str


def ensure_demo_users(accounts: AccountStore, crews: Sequence[str], path: Path) -> list[DemoUser]:
    """(Re)create the demo users with new random passwords and write them to ``path`` (mode 0600).

    One admin, operator and viewer, and one crew user per crew, named like the crew's on-call person in
    the demo contacts (``<crew>-on-call``), so the alert history names the same person as the mail.
    """
    wanted = [(name, role, "") for name, role in _DEMO_STAFF]
    wanted += [(f"{crew}-on-call", Role.CREW, crew) for crew in crews]
    made = []
    now = _now_ms()
    for name, role, crew in wanted:
        password = secrets.token_urlsafe(12)
        try:
            accounts.add_user(name, role, crew, password, now)
        except Conflict:
            accounts.update_user(name, now, role=role, crew=crew, password=password, disabled=False)
        made.append(DemoUser(name, role, crew, password))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode on open: make sure
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# CityWatch API demo users (development mode): name, role, crew, password\n")
        out.write("# rewritten with new passwords at every start; sign in at /api/docs (Authorize)\n")
        for u in made:
            out.write(f"{u.name}\t{u.role.value}\t{u.crew or '-'}\t{u.password}\n")
    return made


# --- serving --------------------------------------------------------------------------------------------


class ApiRun:
    """The API serving beside other things, and how to tell people where it is."""

    def __init__(self, url: str, users_file: Path | None) -> None:
        self.url = url
        self.users_file = users_file

    def print_where(self, out: Console) -> None:
        sign_in = f"  (users and passwords: {self.users_file})" if self.users_file else ""
        out.print(f"  API docs      {self.url}/api/docs{sign_in}")
        out.print(f"  crew page     {self.url}/crew")
        out.print(f"  overview      {self.url}/overview")


def start_api(
    common: CommonSettings,
    settings: ApiSettings,
    alerts: AlertSettings,
    influx_url: str,
    stack: ExitStack,
    *,
    default_port: int = 0,
    commands: CommandDesk | None = None,
) -> ApiRun:
    """Build the app, create the demo users in development mode, serve it until ``stack`` closes;
    ``commands``: the device command desk behind ``/api/v1/commands`` (none: no commands)."""
    from api.app import create_app
    from api.commanding.routes import commands_router
    from api.security import caller_name
    from api.server import ApiServer
    from citywatch.demo_contacts import crews_of
    from citywatch.services import build_api_deps

    deps = build_api_deps(common, settings, alerts, influx_url)
    users_file = None
    with _accounts(common, settings) as accounts:
        if settings.dev_mode:
            users_file = settings.users_path(common.var_dir)
            ensure_demo_users(accounts, crews_of(deps.registry_url), users_file)
        elif not accounts.users():
            console.print(
                "[yellow]no API users yet:[/yellow] citywatch api users add NAME --role admin "
                "(or CITYWATCH_API_DEV_MODE=true for demo users)"
            )
    port = settings.port if settings.port is not None else default_port
    routers = []
    if commands is not None:
        desk = commands
        # operators and admins send (api.roles: the commands area); every signed-in user may read
        routers.append(commands_router(desk=lambda: desk, actor=caller_name, reader=caller_name))
    server = stack.enter_context(ApiServer(create_app(deps, extra_routers=routers), settings.host, port))
    return ApiRun(server.url, users_file)


def start_dev_api(
    common: CommonSettings,
    settings: ApiSettings,
    alerts: AlertSettings,
    influx_url: str,
    stack: ExitStack,
    commands: CommandDesk | None = None,
) -> ApiRun:
    """The API of ``citywatch run``: development mode, on a free port unless one is configured."""
    dev = settings.model_copy(update={"dev_mode": True})
    return start_api(common, dev, alerts, influx_url, stack, commands=commands)


def _influx_url(common: CommonSettings) -> str:
    if common.influx_url:
        return common.influx_url
    from citywatch.localstack import influx_ping

    conf = common.var_dir / "influxdb" / "influxdb.conf"
    try:
        url = f"http://{tomllib.loads(conf.read_text(encoding='utf-8'))['http']['bind-address']}"
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
        url = ""
    if url and influx_ping(url):
        return url
    raise _fail("no InfluxDB: set CITYWATCH_INFLUX_URL, or run `citywatch run` (it serves the API too)", 2)


@app.command("run")
def run_command(
    host: str | None = typer.Option(
        None, help="Address to listen on (default CITYWATCH_API_HOST or 127.0.0.1)."
    ),
    port: int | None = typer.Option(None, help=f"Port (default CITYWATCH_API_PORT or {DEFAULT_PORT})."),
) -> None:
    """Serve the API until Ctrl-C."""
    common = CommonSettings()
    settings = ApiSettings()
    updates = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings.model_copy(update=updates)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with ExitStack() as stack:
            influx_url = _influx_url(common)
            desk = None
            if common.mqtt_url:  # commands need the broker; without it the API serves everything else
                from api.commanding.settings import CommandSettings
                from citywatch.services import build_command_desk

                desk = stack.enter_context(
                    build_command_desk(common, CommandSettings(), common.mqtt_url, influx_url)
                )
            else:
                console.print("[yellow]no CITYWATCH_MQTT_URL:[/yellow] device commands are off")
            run = start_api(
                common,
                settings,
                AlertSettings(),
                influx_url,
                stack,
                default_port=DEFAULT_PORT,
                commands=desk,
            )
            console.print(f"[bold]CityWatch API[/bold] on {run.url} (Ctrl-C stops it)")
            run.print_where(console)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    except ApiError as exc:
        raise _fail(exc.detail) from exc
    console.print("stopped")


# --- users and keys -----------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Sign-in name: 1-64 of A-Z a-z 0-9 _ . @ -."),
    role: str = typer.Option(..., help="viewer, operator, crew or admin."),
    crew: str = typer.Option("", help="The crew of a crew user (as in the registry)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Add a user (asks for the password twice)."""
    the_role = _role(role)
    password = _password(password_stdin)
    try:
        with _accounts(CommonSettings(), ApiSettings()) as accounts:
            user = accounts.add_user(name, the_role, crew, password, _now_ms())
    except ApiError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"added {user.name} ({user.role.value}{', crew ' + user.crew if user.crew else ''})")


@users_app.command("list")
def users_list() -> None:
    """The users, their roles and crews."""
    with _accounts(CommonSettings(), ApiSettings()) as accounts:
        users = accounts.users()
    table = Table("name", "role", "crew", "disabled")
    for u in users:
        table.add_row(u.name, u.role.value, u.crew, "yes" if u.disabled else "")
    console.print(table)


@users_app.command("passwd")
def users_passwd(
    name: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Set a user's password (its tokens are revoked)."""
    password = _password(password_stdin)
    try:
        with _accounts(CommonSettings(), ApiSettings()) as accounts:
            accounts.update_user(name, _now_ms(), password=password)
    except ApiError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"password of {name} changed; it signs in again")


@users_app.command("disable")
def users_disable(name: str, enable: bool = typer.Option(False, "--enable", help="Enable it again.")) -> None:
    """Disable a user (its tokens are revoked) or, with --enable, enable it again."""
    try:
        with _accounts(CommonSettings(), ApiSettings()) as accounts:
            accounts.update_user(name, _now_ms(), disabled=not enable)
    except ApiError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"{name} {'enabled' if enable else 'disabled'}")


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="What the key is for, e.g. grafana or bench."),
    role: str = typer.Option(..., help="viewer, operator, crew or admin."),
    crew: str = typer.Option("", help="The crew of a crew key."),
) -> None:
    """Create an API key; it is printed once (send it as the X-API-Key header)."""
    the_role = _role(role)
    try:
        with _accounts(CommonSettings(), ApiSettings()) as accounts:
            secret, key = accounts.create_key(name, the_role, crew, "cli", _now_ms())
    except ApiError as exc:
        raise _fail(exc.detail) from exc
    console.print(
        f"API key {key.name} ({key.key_id}, {key.role.value}); store it now, it is not shown again:"
    )
    typer.echo(secret)


@keys_app.command("list")
def keys_list() -> None:
    with _accounts(CommonSettings(), ApiSettings()) as accounts:
        keys = accounts.api_keys()
    table = Table("key id", "name", "role", "crew", "created by", "revoked")
    for k in keys:
        table.add_row(k.key_id, k.name, k.role.value, k.crew, k.created_by, "yes" if k.revoked_ms else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    try:
        with _accounts(CommonSettings(), ApiSettings()) as accounts:
            key = accounts.revoke_key(key_id, _now_ms())
    except ApiError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"revoked {key.name} ({key.key_id})")
