"""CSV that is safe to open in a spreadsheet (CSV / formula injection, OWASP).

Every CSV the project writes (alerts, predictions, reject files, exports)
carries text that citizens typed. A cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is a formula to Excel and WPS:
``=HYPERLINK("http://…","点此")`` in a complaint became a live link in a
supervisor's sheet. Such a text cell is written with a leading apostrophe,
which spreadsheets show as text; numbers stay numbers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading apostrophe when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value


#: What an XLSX cell may not hold (openpyxl refuses it, and the whole export failed): C0 controls but tab and
#: line breaks.
_NOT_IN_XLSX = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xlsx_cell(value: Any) -> Any:
    """:func:`safe_cell`, without the characters a workbook cannot hold (a note stored before they were cleaned)."""
    value = safe_cell(value)
    return _NOT_IN_XLSX.sub("", value) if isinstance(value, str) else value


class SafeWriter:
    """``csv.writer`` whose text cells are neutralised; the same ``writerow`` / ``writerows``."""

    def __init__(self, fh: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(fh, **kwargs)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter:
    """``csv.DictWriter`` whose text cells are neutralised."""

    def __init__(self, fh: IO[str], fieldnames: Sequence[str], **kwargs: Any) -> None:
        self._writer = csv.DictWriter(fh, fieldnames=fieldnames, **kwargs)

    def writeheader(self) -> None:
        self._writer.writeheader()

    def writerow(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: safe_cell(v) for k, v in row.items()})

    def writerows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.writerow(row)
