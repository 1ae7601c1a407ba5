"""What a database fault looks like, told apart from a bug.

A lost connection, a server shutting down or not yet accepting connections,
a statement or lock timeout, a read-only server, a pool with no connection
to give: the same request may succeed once the database answers again, so
the API answers 503 with `Retry-After` rather than 500. Errors arrive raw
from psycopg (the interface's own pool) or wrapped by the eventsourcing
library (the event store), which keeps psycopg's error as the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import psycopg
import psycopg_pool
from eventsourcing import persistence as event_store


class FaultReason(StrEnum):
    # Every connection was in use for as long as a request may wait for one.
    POOL_EXHAUSTED = "pool_exhausted"
    # A statement or lock wait ran past its limit, or was cancelled.
    TIMEOUT = "timeout"
    # The server takes no writes (a standby, or default_transaction_read_only).
    READ_ONLY = "read_only"
    # A deadlock or a serialization failure: the transaction was rolled back.
    CONTENTION = "contention"
    # The connection broke, or none could be made: the server is stopping,
    # starting or gone.
    CONNECTION_LOST = "connection_lost"
    # The server answered that it cannot work now (out of connections, disk
    # or memory).
    SERVER_UNAVAILABLE = "server_unavailable"


@dataclass(frozen=True, slots=True)
class DatabaseFault:
    reason: FaultReason
    retry_after_s: int
    # The PostgreSQL error code, when the server sent one.
    sqlstate: str | None = None


# A busy pool or a slow statement clears in a moment; a server that went away
# takes a few seconds to come back.
_LOAD_RETRY_AFTER_S: Final[int] = 1
_OUTAGE_RETRY_AFTER_S: Final[int] = 5
# Causes followed before giving up: the chains here are one or two long.
_CAUSES_FOLLOWED_MAX: Final[int] = 8
# SQLSTATE classes of a broken connection (08) and of a server shutting down
# or refusing connections while it starts (57P).
_CONNECTION_SQLSTATE_PREFIXES: Final = ("08", "57P")
# SQLSTATE class of a transaction rolled back by the server (a deadlock, a
# serialization failure).
_ROLLBACK_SQLSTATE_PREFIX: Final = "40"


def database_fault_of(error: BaseException) -> DatabaseFault | None:
    """The fault behind an error, or None when it is not one (a bug, a refusal)."""
    seen: BaseException | None = error
    wrapped_by_event_store = False
    for _ in range(_CAUSES_FOLLOWED_MAX):
        if seen is None:
            break
        if isinstance(seen, psycopg.Error):
            return _fault_of_psycopg(seen)
        if isinstance(seen, (event_store.OperationalError, event_store.InterfaceError)):
            wrapped_by_event_store = True
        seen = seen.__cause__
    if wrapped_by_event_store:
        return DatabaseFault(FaultReason.CONNECTION_LOST, _OUTAGE_RETRY_AFTER_S)
    return None


def _fault_of_psycopg(error: psycopg.Error) -> DatabaseFault | None:
    sqlstate = error.sqlstate
    if isinstance(error, psycopg_pool.PoolTimeout | psycopg_pool.TooManyRequests):
        return DatabaseFault(FaultReason.POOL_EXHAUSTED, _LOAD_RETRY_AFTER_S)
    if isinstance(error, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return DatabaseFault(FaultReason.TIMEOUT, _LOAD_RETRY_AFTER_S, sqlstate)
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        return DatabaseFault(FaultReason.READ_ONLY, _OUTAGE_RETRY_AFTER_S, sqlstate)
    if sqlstate is not None and sqlstate.startswith(_ROLLBACK_SQLSTATE_PREFIX):
        return DatabaseFault(FaultReason.CONTENTION, _LOAD_RETRY_AFTER_S, sqlstate)
    if isinstance(error, psycopg.InterfaceError) or (
        isinstance(error, psycopg.OperationalError)
        # No code: the client lost the connection or could not make one.
        and (sqlstate is None or sqlstate.startswith(_CONNECTION_SQLSTATE_PREFIXES))
    ):
        return DatabaseFault(FaultReason.CONNECTION_LOST, _OUTAGE_RETRY_AFTER_S, sqlstate)
    if isinstance(error, psycopg.OperationalError):
        return DatabaseFault(FaultReason.SERVER_UNAVAILABLE, _OUTAGE_RETRY_AFTER_S, sqlstate)
    return None
