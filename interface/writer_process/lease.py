"""The writer lease: one `ledger writer` process per database.

A PostgreSQL session advisory lock (WRITER_LEASE_LOCK_KEY) held on a
connection of its own for as long as the writer serves. A second
`ledger writer` on the same database waits for it, so it can stand by and
take over when the first one dies: the lock goes with the dead process's
connection. A writer whose lease connection breaks has lost the lease (the
lock went with the connection) and stops, rather than decide beside the one
that may have taken over.
"""

from __future__ import annotations

import contextlib
import threading
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
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for the lease; False if `stop` was set first."""
        waiting_logged = False
        while not stop.is_set():
            try:
                if self._try_acquire():
                    log.info("writer_lease_acquired")
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
        """Until `stop`: check the lease's connection; when it breaks, set
        `lost` and `stop` (run on a thread of its own)."""
        while not stop.wait(LEASE_CHECK_INTERVAL_S):
            if not self.holds():
                log.error("writer_lease_lost", reason="its connection broke")
                lost.set()
                stop.set()
                return

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
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            # A broken connection has released it already.
            with contextlib.suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LEASE_LOCK_KEY,))
            connection.close()
