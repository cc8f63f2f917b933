"""Serving the app with uvicorn in a thread of this process (adapter): ``citywatch run`` runs it beside
the pipeline, ``citywatch api run`` on its own.

A context manager: entering starts uvicorn and waits until it listens (or raises with the reason it did
not: the lifespan failed to open a store, the port is taken); leaving asks it to stop, gives open live
feeds a few seconds, and waits for the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Final, Self

import uvicorn
from fastapi import FastAPI

from api import Unavailable

log = logging.getLogger(__name__)

_GRACE_S: Final = 3  # open live feeds are cut after this at shutdown (their clients reconnect)


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int, *, start_timeout_s: float = 60.0) -> None:
        self.host = host
        self.start_timeout_s = start_timeout_s
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # the command's logging stays as it is
            access_log=False,  # /metrics counts requests; an access line each would drown the log
            timeout_graceful_shutdown=_GRACE_S,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="citywatch-api", daemon=True)

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.server.config.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        wake = threading.Event()
        while not self.server.started:
            if not self._thread.is_alive():
                raise Unavailable(
                    f"the API did not start on {self.host}:{self.server.config.port} (see the log)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"the API did not start within {self.start_timeout_s:.0f} s")
            wake.wait(0.02)
        log.info("API listening on %s", self.url)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=_GRACE_S + 10)

    def wait(self) -> None:
        """Block until the server stops (``citywatch api run``)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
