"""Writing a report to a folder: report.html and one CSV per table (adapter: the file system).

CSV files are UTF-8 with a byte-order mark, so spreadsheet programs on Chinese Windows read road names
as UTF-8 rather than GBK. Each file is written to a temporary name and renamed: a reader never sees half
a report file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from analytics.reports.html import render_html
from analytics.reports.model import Report
from analytics.reports.tables import Cell, Column, from_csv, report_tables, to_csv

CSV_ENCODING = "utf-8-sig"


def _write(path: Path, text: str, encoding: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding=encoding, newline="")
    os.replace(tmp, path)


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """Write report.html and the CSV tables into ``out_dir`` (created); the paths written, HTML first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / "report.html"
    _write(html, render_html(report), "utf-8")
    paths = [html]
    for table in report_tables(report):
        path = out_dir / f"{table.name}.csv"
        _write(path, to_csv(table), CSV_ENCODING)
        paths.append(path)
    return paths


def read_csv(path: Path, columns: Sequence[Column]) -> tuple[tuple[Cell, ...], ...]:
    """The rows of a CSV file ``write_report`` wrote for a table with these columns."""
    return from_csv(path.read_text(encoding=CSV_ENCODING), columns)
