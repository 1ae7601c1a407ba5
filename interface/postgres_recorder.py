"""The library's PostgreSQL recorder, made to write a hash chain with COPY.

Two reasons to replace the library's insert. Its statement, one
`INSERT ... SELECT unnest(%s) RETURNING` in pipeline mode, hangs forever on a
save of a few thousand events over a Unix socket (shared/repro); the ledger's
group commit saves up to tens of thousands at once. And every event must
carry a hash chained to its predecessor, computed under the same table lock
that orders the log, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.sql import SQL, Identifier

from application.ports import AppendEvents, PendingDeadlineChanges
from domain.event_chain import GENESIS_HASH, chained_hash

EVENTS_TABLE = "ledger_events"
PENDING_DEADLINES_TABLE = "ledger_pending_deadlines"


class HashChainedPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = EVENTS_TABLE):
        super().__init__(datastore, events_table_name=events_table_name)
        table = Identifier(datastore.schema, events_table_name)
        self._select_last_hash = SQL(
            "SELECT event_hash FROM {} ORDER BY notification_id DESC LIMIT 1"
        ).format(table)
        self._copy_events = SQL(
            "COPY {} (originator_id, originator_version, topic, state, event_hash) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(table)
        self._select_last_id = SQL(
            "SELECT currval(pg_get_serial_sequence({}, 'notification_id'))"
        ).format(psycopg.sql.Literal(f"{datastore.schema}.{events_table_name}"))
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
        deadlines = Identifier(datastore.schema, PENDING_DEADLINES_TABLE)
        self._upsert_deadline = SQL(
            "INSERT INTO {} (transfer_id, expires_at) VALUES (%s, %s) "
            "ON CONFLICT (transfer_id) DO UPDATE SET expires_at = EXCLUDED.expires_at"
        ).format(deadlines)
        self._delete_deadlines = SQL("DELETE FROM {} WHERE transfer_id = ANY(%s)").format(deadlines)
        self._select_due = SQL(
            "SELECT transfer_id FROM {} WHERE expires_at <= %s ORDER BY expires_at LIMIT %s"
        ).format(deadlines)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        deadlines: PendingDeadlineChanges | None = kwargs.get("pending_deadlines")
        if not stored_events:
            return []
        try:
            with (
                self.datastore.get_connection() as connection,
                connection.transaction(),
                connection.cursor() as cursor,
            ):
                last_id = self._insert_chained(cursor, stored_events)
                if deadlines is not None:
                    self._record_deadlines(cursor, deadlines)
                self._notify_channel(cursor)
        except IntegrityError:
            raise
        except psycopg.errors.UniqueViolation as error:
            raise IntegrityError(str(error)) from error
        first_id = last_id - len(stored_events) + 1
        return list(range(first_id, last_id + 1))

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
                last_id = self._insert_chained(cursor, stored_events)
                self._record_deadlines(cursor, deadlines)
                self._notify_channel(cursor)
                return list(range(last_id - len(stored_events) + 1, last_id + 1))

            yield append

    def _insert_chained(
        self, cursor: psycopg.Cursor[Any], stored_events: Sequence[StoredEvent]
    ) -> int:
        # The table lock orders writers; the chain must be extended under it.
        self._lock_table(cursor)
        cursor.execute(self._select_last_hash)
        row = cursor.fetchone()
        previous = bytes(row["event_hash"]) if row else GENESIS_HASH
        with cursor.copy(self._copy_events) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea", "bytea"])
            for stored in stored_events:
                originator_id = stored.originator_id
                if not isinstance(originator_id, UUID):
                    originator_id = UUID(str(originator_id))
                previous = chained_hash(
                    previous, originator_id, stored.originator_version, stored.topic, stored.state
                )
                copy.write_row(
                    (originator_id, stored.originator_version, stored.topic, stored.state, previous)
                )
        # Under the table lock no other writer draws from the sequence, so the
        # batch's ids are the contiguous run ending at the current value.
        cursor.execute(self._select_last_id)
        last = cursor.fetchone()
        assert last is not None
        return int(last["currval"])

    def _record_deadlines(
        self, cursor: psycopg.Cursor[Any], deadlines: PendingDeadlineChanges
    ) -> None:
        if deadlines.removed:
            cursor.execute(self._delete_deadlines, (list(deadlines.removed),))
        if deadlines.added:
            cursor.executemany(self._upsert_deadline, list(deadlines.added.items()))

    def select_events_of_originators(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]:
        found: dict[UUID, list[StoredEvent]] = {}
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_events_of, (list(originator_ids),))
            for row in cursor.fetchall():
                found.setdefault(row["originator_id"], []).append(
                    StoredEvent(
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                )
        return found

    def select_events_after(self, versions: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        found: dict[UUID, list[StoredEvent]] = {}
        if not versions:
            return found
        ids = list(versions)
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_events_after, (ids, [versions[i] for i in ids]))
            for row in cursor.fetchall():
                found.setdefault(row["originator_id"], []).append(
                    StoredEvent(
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                )
        return found

    def select_versions(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_versions, (list(originator_ids),))
            return {row["originator_id"]: int(row["version"]) for row in cursor.fetchall()}

    def select_due_pending_transfer_ids(self, now: datetime, limit: int) -> list[UUID]:
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._select_due, (now, limit))
            return [row["transfer_id"] for row in cursor.fetchall()]
