"""The logins of a broker CityWatch starts itself: the admin's and each service's, generated once and
kept in a 0600 JSON file in the broker's data directory, so they stay the same across restarts.

The file, for a person as much as for the code::

    {"broker": "mqtt://127.0.0.1:PORT",
     "accounts": {"admin": {"username": "citywatch-admin", "password": "...", "url": "mqtt://..."},
                  "ingest": {...}, "analytics": {...}, "api": {...}, "sim": {...}}}
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from citywatch.broker_accounts import BrokerAccountsError, new_password
from citywatch.broker_acl import ADMIN, SERVICES, ServiceAccount

#: The admin first, then the services, in the file and in the plugin's config.
ACCOUNTS = (ADMIN, *SERVICES.values())


class LoginsFile:
    """The logins stored at ``path``; passwords missing there are generated (and written by ``save``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._passwords: dict[str, str] | None = None

    def _stored(self) -> dict[str, Any]:
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise BrokerAccountsError(f"{self.path} is not JSON: {exc}") from exc
        return stored if isinstance(stored, dict) else {}

    def passwords(self) -> dict[str, str]:
        """Service (``admin`` included) -> password: the stored ones, new ones for the rest."""
        if self._passwords is None:
            stored = self._stored().get("accounts", {})
            self._passwords = {
                account.service: str(stored.get(account.service, {}).get("password") or new_password())
                for account in ACCOUNTS
            }
        return self._passwords

    def accounts(self) -> list[tuple[ServiceAccount, str]]:
        passwords = self.passwords()
        return [(account, passwords[account.service]) for account in ACCOUNTS]

    def url(self, account: ServiceAccount, host: str, port: int) -> str:
        return f"mqtt://{account.username}:{self.passwords()[account.service]}@{host}:{port}"

    def previous_admin_url(self) -> str | None:
        """The admin's URL as last saved (None: never saved). The port is that of the last start."""
        url = self._stored().get("accounts", {}).get(ADMIN.service, {}).get("url")
        return url if isinstance(url, str) else None

    def save(self, host: str, port: int) -> None:
        """Write the file (mode 0600, whole: a temporary file, then a rename) for a broker at host:port."""
        accounts = {
            account.service: {
                "username": account.username,
                "password": password,
                "url": self.url(account, host, port),
            }
            for account, password in self.accounts()
        }
        text = json.dumps({"broker": f"mqtt://{host}:{port}", "accounts": accounts}, indent=2) + "\n"
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, self.path)
