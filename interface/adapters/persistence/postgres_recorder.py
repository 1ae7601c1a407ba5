"""The library's PostgreSQL recorder, made to write a hash chain in one call.

Three reasons to replace the library's insert. Its statement, one
`INSERT ... SELECT unnest(%s) RETURNING` in pipeline mode, hangs forever on a
save of a few thousand events over a Unix socket (shared/repro); the ledger's
group commit saves up to tens of thousands at once. Every event must carry a
hash chained to its predecessor, computed under the same table lock that
orders the log, in the same transaction. And a save is the writer's critical
path: the database function `ledger_append_events` (migration 0007) locks,
chains, inserts, records pending deadlines and notifies in one statement, one
round trip, where each round trip from Python costs the writer's thread the
interpreter lock, which a busy event loop holds for up to its switch interval.

That one round trip is the whole commit path: the writer's saves go over a
connection of their own, kept open between batches, because the pool checks
every connection it hands out with an empty query (a second round trip per
commit). The kept connection is checked only when something arrived on it
while it was idle (a killed backend, a server shutting down say so before
they close it): then it is replaced before the save is sent.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from application.ports.event_store import AppendEvents, PendingDeadlineChanges
from interface.adapters.persistence import database

EVENTS_TABLE = "ledger_events"
PENDING_DEADLINES_TABLE = "ledger_pending_deadlines"


class HashChainedPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = EVENTS_TABLE):
        super().__init__(datastore, events_table_name=events_table_name)
        table = Identifier(datastore.schema, events_table_name)
        self._append_events = SQL(
            "SELECT {}.ledger_append_events(%s::uuid[], %s::int8[], %s::text[], %s::bytea[],"
            " %s::uuid[], %s::timestamptz[], %s::uuid[], %s::text) AS last_id"
        ).format(Identifier(datastore.schema))
        self._select_events_of = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(table)
        self._select_events_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM {} AS e"
            " JOIN unnest(%s::uuid[], %s::int8[]) AS v(id, version)"
            " ON e.originator_id = v.id AND e.originator_version > v.version"
            " ORDER BY e.originator_id, e.originator_version"
        ).format(table)
        self._select_versions = SQL(
            "SELECT originator_id, max(originator_version) AS version FROM {} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(table)
        self._select_position_of = SQL(
            "SELECT notification_id FROM {} WHERE originator_id = %s"
            " AND originator_version = %s AND topic = %s AND state = %s"
        ).format(table)
        deadlines = Identifier(datastore.schema, PENDING_DEADLINES_TABLE)
        self._select_due = SQL(
            "SELECT transfer_id FROM {} WHERE expires_at <= %s ORDER BY expires_at LIMIT %s"
        ).format(deadlines)
        self._append_connection = _AppendConnection(datastore)
        # Closed with the recorder, whoever drops it last.
        weakref.finalize(self, self._append_connection.close)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        deadlines: PendingDeadlineChanges = kwargs.get("pending_deadlines") or NO_DEADLINE_CHANGES
        if not stored_events:
            return []
        try:
            # One statement in autocommit: its own transaction, one round trip.
            with self._append_connection.use() as connection, connection.cursor() as cursor:
                last_id = self._append(cursor, stored_events, deadlines)
        except psycopg.errors.UniqueViolation as error:
            raise IntegrityError(str(error)) from error
        except psycopg.Error as error:
            raise _persistence_error(error) from error
        return list(range(last_id - len(stored_events) + 1, last_id + 1))

    def close_append_connection(self) -> None:
        """Close the writer's own connection now (it is otherwise closed with
        the recorder, or at its next use once the pool is closed)."""
        self._append_connection.close()

    @contextmanager
    def exclusive_append(self) -> Iterator[AppendEvents]:
        with (
            self.datastore.get_connection() as connection,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            self._lock_table(cursor)

            def append(
                stored_events: Sequence[StoredEvent], deadlines: PendingDeadlineChanges
            ) -> Sequence[int]:
                last_id = self._append(cursor, stored_events, deadlines)
                return list(range(last_id - len(stored_events) + 1, last_id + 1))

            yield append

    def _append(
        self,
        cursor: psycopg.Cursor[Any],
        stored_events: Sequence[StoredEvent],
        deadlines: PendingDeadlineChanges,
    ) -> int:
        """Lock, chain, insert, record deadlines and notify in one call (migration
        0007); the last id given out. Binary: states travel as raw bytes."""
        cursor.execute(
            self._append_events,
            (
                [_uuid(stored.originator_id) for stored in stored_events],
                [stored.originator_version for stored in stored_events],
                [stored.topic for stored in stored_events],
                [stored.state for stored in stored_events],
                list(deadlines.added),
                list(deadlines.added.values()),
                list(deadlines.removed),
                self.channel_name,
            ),
            binary=True,
        )
        row = cursor.fetchone()
        assert row is not None
        return int(row["last_id"])

    def select_events_of_originators(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]:
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_events_of, (list(originator_ids),))
            return _by_originator(cursor.fetchall())

    def select_events_after(self, versions: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        if not versions:
            return {}
        ids = list(versions)
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_events_after, (ids, [versions[i] for i in ids]))
            return _by_originator(cursor.fetchall())

    def select_versions(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_versions, (list(originator_ids),))
            return {row["originator_id"]: int(row["version"]) for row in cursor.fetchall()}

    def position_of(self, stored_event: StoredEvent) -> int | None:
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(
                self._select_position_of,
                (
                    _uuid(stored_event.originator_id),
                    stored_event.originator_version,
                    stored_event.topic,
                    stored_event.state,
                ),
            )
            row = cursor.fetchone()
        return None if row is None else int(row["notification_id"])

    def select_due_pending_transfer_ids(self, now: datetime, limit: int) -> list[UUID]:
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_due, (now, limit))
            return [row["transfer_id"] for row in cursor.fetchall()]


NO_DEADLINE_CHANGES: Final = PendingDeadlineChanges()


class _AppendConnection:
    """One connection kept for the saves, opened like the pool's; another
    thread saving at the same time takes one from the pool instead."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore
        self._connection: psycopg.Connection[DictRow] | None = None
        self._lock = threading.Lock()

    @contextmanager
    def use(self) -> Iterator[psycopg.Connection[DictRow]]:
        if not self._lock.acquire(blocking=False):
            with self._datastore.get_connection() as pooled:
                yield pooled
            return
        try:
            connection = self._ready()
            try:
                yield connection
            finally:
                if connection.closed or connection.broken:
                    self._discard()
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _ready(self) -> psycopg.Connection[DictRow]:
        pool = self._datastore.pool
        if pool.closed:
            self._discard()
            raise psycopg.OperationalError("the connection pool is closed")
        connection = self._connection
        if connection is not None and (
            connection.closed or connection.broken or database.has_unread_input(connection)
        ):
            # Something arrived while it was idle: most likely the server
            # ending it. Check it as the pool would, and replace it if dead.
            try:
                pool.check_connection(connection)
            except psycopg.Error:
                self._discard()
                connection = None
        if connection is None:
            connection = self._connection = self._open()
        return connection

    def _open(self) -> psycopg.Connection[DictRow]:
        pool = self._datastore.pool
        keywords = dict(pool.kwargs) if isinstance(pool.kwargs, Mapping) else {}
        conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        connection: psycopg.Connection[DictRow] = psycopg.Connection.connect(
            conninfo, connect_timeout=int(pool.timeout) or None, **keywords
        )
        # Autocommit and the session settings the pool gives its connections.
        self._datastore.after_connect_func()(connection)
        return connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.close()


def _persistence_error(error: psycopg.Error) -> PersistenceError:
    """The library's error for a psycopg one, as its own connections raise them."""
    if isinstance(error, psycopg.IntegrityError):
        return IntegrityError(str(error))
    if isinstance(error, psycopg.OperationalError):
        return OperationalError(str(error))
    if isinstance(error, psycopg.InterfaceError):
        return InterfaceError(str(error))
    if isinstance(error, psycopg.InternalError):
        return InternalError(str(error))
    if isinstance(error, psycopg.DatabaseError):
        return DatabaseError(str(error))
    return PersistenceError(str(error))


def _uuid(originator_id: object) -> UUID:
    return originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))


def _by_originator(rows: Iterable[Mapping[str, Any]]) -> dict[UUID, list[StoredEvent]]:
    """Stored events from their rows, grouped by aggregate, each in row order."""
    found: dict[UUID, list[StoredEvent]] = {}
    for row in rows:
        found.setdefault(row["originator_id"], []).append(
            StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
        )
    return found
