"""Keeping an index in step with the store through the store's outbox.

The store queues every written case in the same transaction as the write;
:func:`sync` indexes the queued cases and only then forgets the entries. If
the index fails midway, the entries stay and the next run indexes them
again; since documents are keyed by case id, a replay overwrites rather
than duplicates, so each case ends up indexed exactly once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from hotline.errors import Unavailable
from hotline.outage import OutageLog
from hotline.store.base import CaseStore
from search.base import SearchIndex

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncReport:
    indexed: int = 0
    deleted: int = 0
    pending: int = 0
    error: str = ""


def sync(store: CaseStore, index: SearchIndex, batch: int = 1000, limit: int | None = None) -> SyncReport:
    """Replay the outbox into ``index`` until it is empty (or ``limit`` entries); stops at the first failure."""
    report = SyncReport()
    seen = 0
    while limit is None or seen < limit:
        entries = store.pending(batch if limit is None else min(batch, limit - seen))
        if not entries:
            break
        seen += len(entries)
        if not getattr(index, "needs_cases", True):  # the store's own FTS table: written with the cases
            store.acknowledge([seq for seq, _, _ in entries])
            report.indexed += len(entries)
            continue
        last_op = {case_id: op for _, case_id, op in entries}  # the latest entry of a case wins
        versions = {case_id: seq for seq, case_id, _ in entries}  # and its sequence is the document's version
        to_delete = [case_id for case_id, op in last_op.items() if op == "delete"]
        # One read for the batch (a case deleted after it was queued is not there: its delete entry follows).
        to_index = store.get_many([case_id for case_id, op in last_op.items() if op != "delete"])
        try:
            if to_index:
                report.indexed += index.index(to_index, versions)
            if to_delete:
                index.delete(to_delete, versions)
                report.deleted += len(to_delete)
        except Unavailable as exc:
            store.release([seq for seq, _, _ in entries])
            report.error = str(exc)
            log.info("index sync stopped, %d entries wait in the outbox: %s", store.pending_count(), exc)
            break
        store.acknowledge([seq for seq, _, _ in entries])
    report.pending = store.pending_count()
    return report


class Syncer:
    """A background thread that drains the outbox every ``interval`` seconds (the service runs one)."""

    def __init__(self, store: CaseStore, index: SearchIndex, interval: float = 1.0) -> None:
        self.store = store
        self.index = index
        self.interval = interval
        self.last = SyncReport()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-sync", daemon=True)
        self.outages = OutageLog(log)

    def start(self) -> Syncer:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Sync now rather than at the next tick (after an ingest)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = sync(self.store, self.index)
            except Unavailable as exc:  # the store is away: one line for the outage, not one a second
                self.last = SyncReport(error=str(exc))
                self.outages.failed("the index sync's store", exc)
            except Exception as exc:  # the thread must outlive any one failure
                log.exception("index sync failed")
                self.last = SyncReport(error=str(exc))
            else:
                self.outages.succeeded("the index sync's store")
                if self.last.error:
                    self.outages.failed(f"the search index {self.index.url.split('@')[-1]}", self.last.error)
                else:
                    self.outages.succeeded(f"the search index {self.index.url.split('@')[-1]}")
            self._wake.wait(self.interval)
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
