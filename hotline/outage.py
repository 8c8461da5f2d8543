"""One line when a backend goes away and one when it is back, from loops that try it every second.

With Elasticsearch unreachable the index sync, the event assigner and the
Elasticsearch client each logged a full traceback every few seconds: 300 MB a
day, in which the one fact (the index is away since 09:12) was hard to find.
"""

from __future__ import annotations

import logging
import threading
import time


class OutageLog:
    """Reports the state of named backends to ``log``: the first failure of an outage, then its end."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._since: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def failed(self, name: str, error: BaseException | str) -> None:
        """Note a failure; logged (one line, no traceback) only when ``name`` was up until now."""
        with self._lock:
            since = self._since.get(name)
            self._since[name] = (since[0] if since else time.monotonic(), since[1] + 1 if since else 1)
        if since is None:
            self.log.warning("%s is away: %s (one line until it is back)", name, " ".join(str(error).split())[:300])

    def succeeded(self, name: str) -> None:
        with self._lock:
            since = self._since.pop(name, None)
        if since is not None:
            self.log.warning("%s is back after %.0f s and %d failed tries", name, time.monotonic() - since[0], since[1])

    def away(self) -> dict[str, float]:
        """The backends away now, with the seconds since they went."""
        now = time.monotonic()
        with self._lock:
            return {name: now - since for name, (since, _) in self._since.items()}
