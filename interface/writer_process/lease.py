"""The writer lease: one `ledger writer` process per database.

A PostgreSQL session advisory lock (WRITER_LEASE_LOCK_KEY) held on a
connection of its own for as long as the writer serves. A second
`ledger writer` on the same database waits for it, so it can stand by and
take over when the first one dies: the lock goes with the dead process's
connection. A writer whose lease connection breaks (a database restart, a
killed backend) takes the lease back on a new connection as soon as the
database answers; only when another writer holds it by then does it stop,
rather than decide beside the one that took over. Two writers deciding for
a moment would still be safe: every append is checked against the stored
versions under the log's write lock, and a conflict is retried
(application/writer.py); the lease keeps them from wasting work on it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, Final

import psycopg
import structlog

from interface.adapters.persistence.advisory_locks import WRITER_LEASE_LOCK_KEY

log = structlog.get_logger(__name__)

# How often a waiting writer asks for the lease again.
LEASE_RETRY_INTERVAL_S: Final[float] = 1.0
# How often a serving writer checks that its lease's connection still holds it.
LEASE_CHECK_INTERVAL_S: Final[float] = 2.0
# Each lease query's own bound, so a database that stops answering is noticed.
LEASE_QUERY_TIMEOUT_S: Final[int] = 5


class WriterLease:
    def __init__(self, database_url: str, on_state: Callable[[str], None] | None = None) -> None:
        self._database_url = database_url
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None
        # Told each state it enters (interface/writer_process/metrics.py's LEASE_STATES).
        self._on_state = on_state or (lambda _: None)

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for the lease; False if `stop` was set first."""
        waiting_logged = False
        while not stop.is_set():
            try:
                if self._try_acquire():
                    log.info("writer_lease_acquired")
                    self._on_state("held")
                    return True
            except psycopg.Error as error:
                log.warning("writer_lease_unavailable", error_type=type(error).__name__)
            if not waiting_logged:
                log.warning("writer_lease_waiting", reason="another writer holds it")
                waiting_logged = True
            stop.wait(LEASE_RETRY_INTERVAL_S)
        return False

    def _try_acquire(self) -> bool:
        connection = psycopg.connect(
            self._database_url,
            autocommit=True,
            connect_timeout=LEASE_QUERY_TIMEOUT_S,
            application_name="ledger-writer-lease",
        )
        row = connection.execute(
            "SELECT pg_try_advisory_lock(%s)", (WRITER_LEASE_LOCK_KEY,)
        ).fetchone()
        if row is not None and row[0]:
            self._connection = connection
            return True
        connection.close()
        return False

    def watch(self, stop: threading.Event, lost: threading.Event) -> None:
        """Until `stop`: check the lease's connection; when it breaks, take
        the lease back; when another writer has it, set `lost` and `stop`
        (run on a thread of its own)."""
        while not stop.wait(LEASE_CHECK_INTERVAL_S):
            if self.holds():
                continue
            log.warning("writer_lease_connection_broken")
            self._on_state("waiting")
            if self._take_back(stop):
                self._on_state("held")
                log.info("writer_lease_taken_back")
                continue
            if not stop.is_set():
                log.error("writer_lease_lost", reason="another writer holds it")
                self._on_state("lost")
                lost.set()
                stop.set()
            return

    def _take_back(self, stop: threading.Event) -> bool:
        """The lease again, on a new connection (the lock went with the broken
        one). While the database does not answer, keep asking: the writer's
        own batches fail meanwhile and are answered 503. False when another
        writer holds it, or on `stop`."""
        self._drop_connection()
        while not stop.is_set():
            try:
                return self._try_acquire()
            except psycopg.Error as error:
                log.warning("writer_lease_unavailable", error_type=type(error).__name__)
                stop.wait(LEASE_RETRY_INTERVAL_S)
        return False

    def holds(self) -> bool:
        connection = self._connection
        if connection is None or connection.closed:
            return False
        try:
            connection.execute(f"SET statement_timeout = '{LEASE_QUERY_TIMEOUT_S}s'")
            connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            self._on_state("released")
        self._drop_connection()

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            # A broken connection has released it already.
            with contextlib.suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LEASE_LOCK_KEY,))
            connection.close()
