"""`citywatch run`: the whole pipeline on this machine."""

from __future__ import annotations


def run() -> None:
    """Run broker, database, ingest and the simulated city on this machine."""
    raise NotImplementedError
