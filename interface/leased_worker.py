"""A background loop that runs its passes in one process at a time.

The rules monitor, the payout worker (and the closure worker) share this
shape: every few seconds, or at once when woken, take a lease, do the due
work, let the lease go. The lease is a PostgreSQL advisory lock held on a
connection of the pass's own, so a process killed mid-pass frees it with its
connection and another process carries on at its next pass. A pass that
fails is logged; the next one tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import psycopg
import structlog

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S: Final[float] = 30.0

Connection = psycopg.Connection[tuple[Any, ...]]
PassResult = TypeVar("PassResult")


class LeasedLoop(Generic[PassResult]):
    def __init__(
        self,
        *,
        name: str,
        database_url: str,
        lock_key: int,
        interval_s: float,
        work: Callable[[Connection, threading.Event], PassResult],
        report: Callable[[PassResult], None] | None = None,
    ) -> None:
        """`work` does one pass under the lease, on the lease's connection,
        and returns soon after `stopping` is set. `report` is told of each
        background pass's result (to log what is worth logging)."""
        self.name = name
        self._database_url = database_url
        self._lock_key = lock_key
        self._interval_s = interval_s
        self._work = work
        self._report = report
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PassResult | None:
        """One pass if this process gets the lease; None when another holds it."""
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            leased = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (self._lock_key,)
            ).fetchone()
            if leased is None or not leased[0]:
                return None
            try:
                return self._work(connection, self._stopping)
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    # Running in the background ------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._woken.set()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._woken.wait(self._interval_s)
            self._woken.clear()
            if self._stopping.is_set():
                return
            try:
                result = self.run_once()
            except Exception:
                # A database hiccup: the next pass tries again.
                log.exception("leased_pass_failed", worker=self.name)
                continue
            if result is not None and self._report is not None:
                self._report(result)
