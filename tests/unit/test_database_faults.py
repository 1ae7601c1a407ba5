"""Telling a database fault (503, retry later) from a bug (500)."""

from __future__ import annotations

import psycopg
import psycopg_pool
import pytest
from eventsourcing import persistence as event_store

from interface.adapters.persistence.database_faults import (
    DatabaseFault,
    FaultReason,
    database_fault_of,
)


def wrapped(wrapper: type[Exception], cause: Exception) -> Exception:
    """The error as the event store raises it: its own, with psycopg's as the cause."""
    try:
        raise wrapper(str(cause)) from cause
    except wrapper as error:
        return error


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (
            psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec"),
            DatabaseFault(FaultReason.POOL_EXHAUSTED, 1),
        ),
        (
            psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            DatabaseFault(FaultReason.TIMEOUT, 1, "57014"),
        ),
        (
            psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
            DatabaseFault(FaultReason.TIMEOUT, 1, "55P03"),
        ),
        (
            psycopg.errors.DeadlockDetected("deadlock detected"),
            DatabaseFault(FaultReason.CONTENTION, 1, "40P01"),
        ),
        (
            psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
            DatabaseFault(FaultReason.CONNECTION_LOST, 5, "57P01"),
        ),
        (
            psycopg.errors.CannotConnectNow("the database system is starting up"),
            DatabaseFault(FaultReason.CONNECTION_LOST, 5, "57P03"),
        ),
        (
            psycopg.OperationalError("consuming input failed: server closed the connection"),
            DatabaseFault(FaultReason.CONNECTION_LOST, 5),
        ),
        (
            psycopg.InterfaceError("the connection is closed"),
            DatabaseFault(FaultReason.CONNECTION_LOST, 5),
        ),
        (
            psycopg.errors.DiskFull("could not extend file"),
            DatabaseFault(FaultReason.SERVER_UNAVAILABLE, 5, "53100"),
        ),
        (
            psycopg.errors.ReadOnlySqlTransaction(
                "cannot execute INSERT in a read-only transaction"
            ),
            DatabaseFault(FaultReason.READ_ONLY, 5, "25006"),
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_a_fault_is_told_raw_or_as_the_event_store_wraps_it(
    error: Exception, fault: DatabaseFault
) -> None:
    assert database_fault_of(error) == fault
    wrapper = (
        event_store.InternalError
        if isinstance(error, psycopg.InternalError)
        else event_store.OperationalError
    )
    assert database_fault_of(wrapped(wrapper, error)) == fault


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        psycopg.errors.UndefinedTable('relation "ledger_events" does not exist'),
        psycopg.errors.UniqueViolation("duplicate key value"),
        wrapped(event_store.ProgrammingError, psycopg.errors.SyntaxError("syntax error")),
        event_store.IntegrityError("duplicate key value"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_bug_or_a_refusal_is_not_a_fault(error: Exception) -> None:
    assert database_fault_of(error) is None


def test_the_event_store_losing_its_connection_without_a_cause_is_a_fault() -> None:
    fault = database_fault_of(event_store.OperationalError("connection lost"))
    assert fault == DatabaseFault(FaultReason.CONNECTION_LOST, 5)
