"""CSV files the project writes open safely in a spreadsheet: no cell a citizen typed runs as a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from hotline.ingest import ColumnMap, ingest
from hotline.spreadsheet import SafeDictWriter, SafeWriter, safe_cell
from tests.test_cli import run

HOSTILE = ['=HYPERLINK("http://evil.example","点此")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-1+1",
           "\t=1+1", "\r=1+1", "=1+1"]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_cells_are_neutralised(value: str) -> None:
    assert safe_cell(value) == "'" + value
    out = io.StringIO()
    SafeWriter(out).writerow([value, 3, -1.5, "普通文本"])
    SafeDictWriter(out, fieldnames=["a"]).writerow({"a": value})
    cells = [c for row in csv.reader(io.StringIO(out.getvalue())) for c in row]
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells)
    assert "-1.5" in cells and "3" in cells and "普通文本" in cells


def test_reject_files_and_alert_files_hold_no_formula(tmp_path: Path, store, builder) -> None:
    source = tmp_path / "calls.csv"
    with source.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "received_at", "text", "district", "category_l2"])
        writer.writerow(["=1+1", "not a date", "=HYPERLINK(\"http://x\")", "海陵区", "供水"])
        for day in range(1, 29):
            for n in range(15 if day == 27 else 3):  # a surge on the 27th, so an alert names the cell
                writer.writerow([f"C{day}-{n}", f"2025-06-{day:02d} 09:00:00", "停水了", "@SUM(1)", "+供水"])
    ingest(source, store, builder, ColumnMap(), tmp_path / "rejects.csv")
    rejects = list(csv.reader((tmp_path / "rejects.csv").open(encoding="utf-8-sig")))
    assert rejects[1][2].startswith("{") and not any(c.startswith(("=", "@", "+")) for row in rejects for c in row)
    out = tmp_path / "alerts.csv"
    result = run(["hotspots", "--data", str(source), "--area-col", "district", "--category-col", "category_l2",
                  "--start", "2025-06-20", "--end", "2025-06-28", "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "'@SUM(1)" in text and "'+供水" in text
    assert not any(c.startswith(("=", "@", "+")) for row in csv.reader(io.StringIO(text)) for c in row)
