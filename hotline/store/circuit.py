"""A circuit breaker for a store on another host: a database that is down answers in a second, not fifteen.

With PostgreSQL killed, every call waited for a pooled connection until the
pool's timeout (15 s) and each caller held a worker thread meanwhile; the
service froze for everyone, agents' routing included. After ``threshold``
failures in a row the circuit opens: calls fail at once with
:class:`Unavailable` for ``cooldown`` seconds, then one call at a time is let
through to try (half-open) and the first success closes the circuit again.
This is Nygard's pattern (*Release It!*, 2007), as Hystrix and resilience4j
implement it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hotline.errors import Unavailable

log = logging.getLogger(__name__)


class Circuit:
    """Counts failures of one backend and refuses calls while it is known to be down."""

    def __init__(self, name: str, threshold: int = 3, cooldown: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.last_error = ""

    @property
    def open(self) -> bool:
        """Whether calls are refused now (the backend failed ``threshold`` times in a row)."""
        return self._opened_at is not None

    def before(self) -> None:
        """Raise :class:`Unavailable` at once while the circuit is open, except for one probe per cooldown."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self._clock() - self._opened_at
            if waited >= self.cooldown and not self._probing:
                self._probing = True  # this call tries the backend; the others still fail fast
                return
            left = max(0.0, self.cooldown - waited)
        raise Unavailable(f"{self.name} is down ({self.last_error}); trying again in {left:.1f} s")

    def succeeded(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.warning("%s answers again after %.1f s", self.name, self._clock() - self._opened_at)
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def inconclusive(self) -> None:
        """A call that ended without saying whether the backend is up (a busy pool): a probe tries again later."""
        with self._lock:
            if self._probing:
                self._opened_at = self._clock()
                self._probing = False

    def failed(self, error: str) -> None:
        with self._lock:
            self.last_error = error[:200]
            self._failures += 1
            if self._probing:  # the probe failed: stay open for another cooldown
                self._opened_at = self._clock()
                self._probing = False
            elif self._opened_at is None and self._failures >= self.threshold:
                self._opened_at = self._clock()
                log.warning("%s is down after %d failures in a row (%s): refusing calls for %.0f s at a time",
                            self.name, self._failures, self.last_error, self.cooldown)
