"""One request at a time per aggregate, within a process.

Requests that change the same aggregate (fifty withdrawals from one account
at once) would otherwise all read the same version, and all but one find
their write stale, read again, and race again: correct (the writer's version
check decides) but wasteful, and past the retry bound some would be refused
with `concurrent_change`. Taking the aggregate's lock around read, decide
and write makes them queue instead. Across processes the version check still
decides; this only spares the retries within one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID


class AggregateLocks:
    def __init__(self) -> None:
        # A lock lives while someone holds or waits for it: nothing to evict.
        self._locks: weakref.WeakValueDictionary[UUID, threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, aggregate_id: UUID) -> Iterator[None]:
        with self._guard:
            lock = self._locks.get(aggregate_id)
            if lock is None:
                lock = threading.Lock()
                self._locks[aggregate_id] = lock
        with lock:
            yield
