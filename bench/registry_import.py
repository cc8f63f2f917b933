"""Registry at city scale: import a million-lamp CSV into SQLite, then build the ingest's directory.

    .venv/bin/python bench/registry_import.py [--rows 1000000]

RSS is the process's peak resident set so far (``getrusage``), so each line shows the high-water mark
reached by the end of that step.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from devices.assets import CSV_HEADER
from devices.registry import Registry
from devices.registry_files import export_file, import_file

T = TypeVar("T")
GATEWAYS = 1000  # one concentrator per ~1000 lamps
DISTRICTS = ("jiangan", "jianghan", "qiaokou", "hanyang", "wuchang", "qingshan", "hongshan")
ROAD_CLASSES = ("trunk", "secondary", "branch", "public_place")


def write_lamps(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_HEADER.split(","))
        for g in range(GATEWAYS):
            district = DISTRICTS[g % len(DISTRICTS)]
            writer.writerow(
                [f"GW-{g:04d}", "gateway", district, "", "", "", "", "", "", "30.5", "114.3"] + [""] * 6
            )
        for n in range(rows):
            g = n % GATEWAYS
            writer.writerow(
                [
                    f"LMP-{n:07d}",
                    "lamp",
                    DISTRICTS[g % len(DISTRICTS)],
                    f"路{n // 400}",
                    ROAD_CLASSES[(n // 400) % 4],
                    f"G-{n // 2000}",
                    f"C-{n // 60}",
                    f"CAB-{n // 60:05d}",
                    f"GW-{g:04d}",
                    f"{30.4 + (n % 1000) * 1e-4:.6f}",
                    f"{114.1 + (n // 1000) * 1e-4:.6f}",
                    "120",
                    "",
                    "2021-05-04",
                    f"crew-{g % 40}",
                    "{}",
                    "true",
                ]
            )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def timed(step: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = step()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="lamps in the file")
    args = parser.parse_args()
    results: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="cw-registry-bench-") as tmp:
        csv_path = Path(tmp) / "lamps.csv"
        _, seconds = timed(lambda: write_lamps(csv_path, args.rows))
        print(f"wrote {csv_path.stat().st_size / 2**20:.0f} MB of CSV in {seconds:.1f} s")
        with Registry(f"sqlite:///{Path(tmp) / 'registry.db'}") as registry:
            summary, seconds = timed(lambda: import_file(registry, csv_path))
            assert summary.rejected == 0, summary.reasons[:5]
            results.append(("import_file (CSV)", summary.accepted, seconds, rss_mb()))
            refs, seconds = timed(registry.directory)
            results.append(("directory()", len(refs), seconds, rss_mb()))
            del refs
            refs, seconds = timed(registry.directory)
            results.append(("directory() again", len(refs), seconds, rss_mb()))
            del refs
            count, seconds = timed(lambda: export_file(registry, Path(tmp) / "export.csv"))
            results.append(("export_file (CSV)", count, seconds, rss_mb()))
            summary, seconds = timed(lambda: import_file(registry, Path(tmp) / "export.csv"))
            results.append(("re-import (all updates)", summary.accepted, seconds, rss_mb()))
        print(f"database: {(Path(tmp) / 'registry.db').stat().st_size / 2**20:.0f} MB")
    print(f"{'step':<24} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}")
    for step, rows, seconds, rss in results:
        print(f"{step:<24} {rows:>10,} {seconds:>8.2f} {rows / seconds:>10,.0f} {rss:>12.0f}")


if __name__ == "__main__":
    main()
