"""Each device's commissioning progress on disk: ``<var>/commissioning/<serial>.json`` (adapter).

Keyed by the device's serial number, so a run resumes whichever port the device is on next. Written
whole and renamed into place after every step (a crash leaves the previous step's file, never half a
file). Holds no secret: the broker password is never saved (``flow.Event.SECRET_LOST``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from citywatch.commission import CommissionError
from devices.commissioning import MessageError
from devices.commissioning.config import StoredConfig
from devices.commissioning.flow import Event, Move, Progress, Stage
from devices.kinds import DeviceKind
from devices.topics import ID_PATTERN


def _to_json(p: Progress) -> dict[str, Any]:
    return {
        "serial": p.serial,
        "device_id": p.device_id,
        "kind": p.kind.value,
        "stage": p.stage.value,
        "registered_now": p.registered_now,
        "expected": None if p.expected is None else p.expected.to_json(),
        "restarted_ms": p.restarted_ms,
        "history": [[m.before.value, m.event.value, m.after.value, m.at_ms] for m in p.history],
    }


def _from_json(body: dict[str, Any]) -> Progress:
    expected = body.get("expected")
    return Progress(
        serial=str(body["serial"]),
        device_id=str(body["device_id"]),
        kind=DeviceKind(body["kind"]),
        stage=Stage(body["stage"]),
        registered_now=bool(body.get("registered_now", False)),
        expected=None if expected is None else StoredConfig.from_json(expected),
        restarted_ms=body.get("restarted_ms"),
        history=tuple(Move(Stage(b), Event(e), Stage(a), int(t)) for b, e, a, t in body.get("history", ())),
    )


class ProgressStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, serial: str) -> Path:
        if not ID_PATTERN.fullmatch(serial):  # the serial names a file: never a path
            raise ValueError(f"not a serial number: {serial!r:.70}")
        return self.directory / f"{serial}.json"

    def load(self, serial: str) -> Progress | None:
        path = self.path(serial)
        try:
            return _from_json(orjson.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, MessageError) as exc:
            raise CommissionError(
                f"cannot read the saved progress {path}: {exc}",
                hint="run again with --start-over (or delete the file)",
            ) from exc

    def save(self, progress: Progress) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(progress.serial)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(orjson.dumps(_to_json(progress), option=orjson.OPT_INDENT_2))
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
