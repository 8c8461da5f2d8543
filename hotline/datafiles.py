"""The city's data files (gazetteer, taxonomy, routing rules): a TOML from a path, or the one bundled.

One reader, so a missing or malformed file is the same one-line error
whichever file it is, naming the file and what is wrong with it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from hotline.errors import InvalidInput


@contextmanager
def toml_data(path: Path | str | None, bundled: str, what: str) -> Iterator[dict[str, Any]]:
    """The parsed TOML at ``path`` (or ``hotline/data/<bundled>``); what the body cannot find in it is an error too."""
    if path is None:
        raw = resources.files("hotline.data").joinpath(bundled).read_text("utf-8")
    else:
        try:
            raw = Path(path).read_text("utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        yield tomllib.loads(raw)
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{what} {path or 'bundled'} is malformed: {exc}") from None
