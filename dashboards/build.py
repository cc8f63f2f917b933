"""Every dashboard's JSON model, and the committed copies in ``dashboards/json/``.

    python -m dashboards.build            # write dashboards/json/<uid>.json
    python -m dashboards.build --check    # exit 1, naming the files, when the committed JSON is stale

Grafana's file provisioning (``dashboards/provisioning/dashboards/citywatch.yaml``) reads those files;
``citywatch dashboards push`` sends the same models through the HTTP API.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dashboards import bridges, drainage, overview, platform, sanitation, streetlights

JSON_DIR = Path(__file__).resolve().parent / "json"

_BUILDERS: tuple[Callable[[], dict[str, Any]], ...] = (
    overview.build,
    streetlights.build,
    bridges.build,
    drainage.build,
    sanitation.build,
    platform.build,
)


def build_all() -> dict[str, dict[str, Any]]:
    """uid: JSON model, in the order the dashboards are listed in docs/dashboards.md."""
    return {model["uid"]: model for model in (make() for make in _BUILDERS)}


def render(model: Mapping[str, Any]) -> str:
    """The committed text of a model: stable key order, UTF-8 (road names stay readable)."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, model in build_all().items():
        path = directory / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Files that differ from what the code builds (or are missing, or are no dashboard's any more)."""
    wanted = {f"{uid}.json": render(model) for uid, model in build_all().items()}
    present = {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    differ = [
        name
        for name, text in wanted.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted([*differ, *(present - wanted.keys())])


def main(argv: Sequence[str]) -> int:
    if "--check" in argv:
        out_of_date = stale()
        for name in out_of_date:
            print(f"{JSON_DIR / name} differs from the code: run python -m dashboards.build")
        return 1 if out_of_date else 0
    for path in write_all():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
