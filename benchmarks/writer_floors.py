"""The database's own limits, measured beside the writer on the same server.

Two floors that no writer in Python can beat, so the writer's figures can be
read as a fraction of them (docs/performance.md, "Writer"):

- the COPY limit: event-sized rows written by binary `COPY` into a logged
  table shaped like the event store (same columns, primary key and unique
  index), one transaction per batch, on the same server, so with the same
  durability settings. Rows/s; the rows are built before the clock starts.
- the round-trip floor: one client doing one single-row `INSERT` and its
  `COMMIT` (autocommit: one round trip) per iteration. Per second.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import psycopg
from psycopg import sql

COPY_TABLE: Final[str] = "bench_copy_limit"
ROUND_TRIP_TABLE: Final[str] = "bench_round_trip_floor"
# Bodies to copy are drawn from this many stored events, so the rows have
# the sizes and topics the writer writes.
SAMPLED_EVENTS: Final[int] = 1_000
COPY_COLUMNS: Final[str] = (
    "notification_id, originator_id, originator_version, topic, state, event_hash, recorded_at"
)
COPY_TYPES: Final[tuple[str, ...]] = (
    "int8",
    "uuid",
    "int8",
    "text",
    "bytea",
    "bytea",
    "timestamptz",
)


@dataclass(frozen=True, slots=True)
class CopyLimit:
    rows: int
    seconds: float
    rows_per_s: float
    rows_per_transaction: int
    mean_state_bytes: float


@dataclass(frozen=True, slots=True)
class RoundTripFloor:
    iterations: int
    seconds: float
    per_s: float


def measure_copy_limit(database_url: str, rows: int, rows_per_transaction: int) -> CopyLimit:
    """Binary COPY of `rows` event-sized rows, committed every `rows_per_transaction`."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        samples = connection.execute(
            "SELECT topic, state FROM ledger_events ORDER BY notification_id DESC LIMIT %s",
            (SAMPLED_EVENTS,),
        ).fetchall()
        if not samples:
            raise ValueError("the COPY limit needs stored events to take their sizes from")
        table = sql.Identifier(COPY_TABLE)
        drop = sql.SQL("DROP TABLE IF EXISTS {}").format(table)
        connection.execute(drop)
        connection.execute(
            sql.SQL(
                "CREATE TABLE {} (LIKE ledger_events INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            ).format(table)
        )
        copy_statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
            table, sql.SQL(COPY_COLUMNS)
        )
        recorded_at = datetime.now(UTC)
        prepared = [
            (
                number,
                uuid.uuid4(),
                1,
                topic,
                bytes(state),
                os.urandom(32),
                recorded_at,
            )
            for number, (topic, state) in zip(
                range(1, rows + 1), itertools.cycle(samples), strict=False
            )
        ]
        try:
            started = time.perf_counter()
            for first in range(0, rows, rows_per_transaction):
                with (
                    connection.transaction(),
                    connection.cursor() as cursor,
                    cursor.copy(copy_statement) as copy,
                ):
                    copy.set_types(list(COPY_TYPES))
                    for row in prepared[first : first + rows_per_transaction]:
                        copy.write_row(row)
            seconds = time.perf_counter() - started
        finally:
            connection.execute(drop)
    mean_state = sum(len(row[4]) for row in prepared) / len(prepared)
    return CopyLimit(
        rows=rows,
        seconds=seconds,
        rows_per_s=rows / seconds if seconds else 0.0,
        rows_per_transaction=rows_per_transaction,
        mean_state_bytes=mean_state,
    )


def measure_round_trip_floor(database_url: str, iterations: int) -> RoundTripFloor:
    """One client, one single-row INSERT committed per iteration."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        table = sql.Identifier(ROUND_TRIP_TABLE)
        drop = sql.SQL("DROP TABLE IF EXISTS {}").format(table)
        connection.execute(drop)
        connection.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, state bytea NOT NULL)").format(table)
        )
        state = b"x" * 200
        try:
            with connection.cursor() as cursor:
                statement = sql.SQL("INSERT INTO {} (id, state) VALUES (%s, %s)").format(table)
                # Prepared on the server from the first call on.
                cursor.execute(statement, (0, state), prepare=True)
                started = time.perf_counter()
                for number in range(1, iterations + 1):
                    cursor.execute(statement, (number, state), prepare=True)
                seconds = time.perf_counter() - started
        finally:
            connection.execute(drop)
    return RoundTripFloor(
        iterations=iterations,
        seconds=seconds,
        per_s=iterations / seconds if seconds else 0.0,
    )
