"""A local mail sink for the demo: an SMTP server on a free loopback port that files every message into a
Maildir under ``var/mail`` (read it with any mail client, or ``citywatch`` prints the newest)."""

from __future__ import annotations

import logging
import mailbox
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller

from citywatch.localstack import free_port

log = logging.getLogger(__name__)


class _Filer:
    def __init__(self, box: mailbox.Maildir) -> None:
        self.box = box

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message: Message = message_from_bytes(envelope.original_content or envelope.content)
        self.box.add(message)
        log.info("mail for %s: %s", ", ".join(envelope.rcpt_tos), message.get("Subject", ""))
        return "250 OK"


class LocalMailSink:
    """SMTP on 127.0.0.1 into a Maildir; a context manager."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        directory.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(directory), create=True)
        self._controller = Controller(_Filer(self.box), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def mailto(self, to: str) -> str:
        """The apprise URL that delivers to ``to`` through this sink (plain SMTP, no login)."""
        return f"mailto://127.0.0.1:{self.port}?from=citywatch@localhost&to={to}"

    def messages(self) -> list[EmailMessage]:
        """Every message filed so far, parsed (subjects and bodies decoded)."""
        parsed: list[EmailMessage] = []
        for m in self.box:
            message = message_from_bytes(m.as_bytes(), policy=policy.default)
            if isinstance(message, EmailMessage):
                parsed.append(message)
        return parsed


def text_of(message: EmailMessage) -> str:
    """Subject and plain-text body of a message, decoded."""
    body = message.get_body(preferencelist=("plain", "html"))
    content = body.get_content() if body is not None else ""
    return f"{message.get('Subject', '')}\n{content}"
