"""Resume points of stream publishers that cannot keep their own
(`stream_publisher_positions`, migrations/0014): the key of the last
integration event the broker acknowledged, one row per publisher."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from projections.integration_event_reads import START, EventKey


class StreamPositions:
    def __init__(self, pool: ConnectionPool, publisher: str) -> None:
        self._pool = pool
        self.publisher = publisher

    def last(self) -> EventKey:
        """The last acknowledged key, START before the first page."""
        with self._pool.connection() as connection:
            row = connection.execute(
                "SELECT position, sequence FROM stream_publisher_positions WHERE publisher = %s",
                (self.publisher,),
            ).fetchone()
        return START if row is None else EventKey(int(row[0]), int(row[1]))

    def record(self, key: EventKey) -> None:
        """Move the resume point to `key`, never back (a page produced twice
        after a crash records the same key again)."""
        with self._pool.connection() as connection:
            connection.execute(
                "INSERT INTO stream_publisher_positions (publisher, position, sequence)"
                " VALUES (%s, %s, %s)"
                " ON CONFLICT (publisher) DO UPDATE"
                " SET position = excluded.position, sequence = excluded.sequence,"
                " updated_at = now()"
                " WHERE (stream_publisher_positions.position, stream_publisher_positions.sequence)"
                " < (excluded.position, excluded.sequence)",
                (self.publisher, key.position, key.ordinal),
            )

    def close(self) -> None:
        """The pool is the ledger's: nothing of its own to close."""
