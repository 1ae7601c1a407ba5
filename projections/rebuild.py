"""Rebuilding a view from the log: in place, or in a shadow schema and swapped in.

In place empties the view and replays it; readers see it fill up. With a
shadow, the view is replayed into the same tables in `ledger_shadow` while
the live one keeps serving; then, in one short transaction holding the live
view's tracking row (so no runner writes it meanwhile), the shadow applies
the last events, the live tables are dropped, and the shadow's are moved in.
Readers wait for that transaction only, not for the replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import psycopg

from projections.runner import (
    PAGE_SIZE,
    ProjectionRunner,
    ensure_tracking,
    lock_tracking,
    read_events,
    reset_view,
    save_tracking,
)
from projections.view import View

SHADOW_SCHEMA: Final[str] = "ledger_shadow"
LIVE_SCHEMA: Final[str] = "public"
# Events a replay applies per transaction.
REPLAY_PAGE_SIZE: Final[int] = 20_000

Progress = Callable[[int], None]


def rebuild_in_place(database_url: str, view: View, *, progress: Progress | None = None) -> int:
    """Empty the view and replay the log into it; the position reached."""
    with (
        psycopg.connect(database_url) as connection,
        connection.transaction(),
        connection.cursor() as cursor,
    ):
        ensure_tracking(cursor, view)
        lock_tracking(cursor, view.name)
        reset_view(cursor, view)
    runner = ProjectionRunner(database_url, [view], page_size=REPLAY_PAGE_SIZE)
    try:
        runner.prepare()
        runner.catch_up(progress=progress)
        with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
            view.create_indexes(cursor)
        return runner.positions()[view.name]
    finally:
        runner.stop()


def schema_connection(database_url: str, schema: str) -> psycopg.Connection[Any]:
    """A connection whose unqualified view tables are those in `schema`
    (the log and the tracking table are still found in the live schema)."""
    connection = psycopg.connect(database_url)
    connection.execute(
        psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psycopg.sql.Identifier(schema))
    )
    connection.execute(
        psycopg.sql.SQL("SET search_path TO {}, {}").format(
            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(LIVE_SCHEMA)
        )
    )
    connection.commit()
    return connection


def _replay(
    connection: psycopg.Connection[Any],
    view: View,
    after: int,
    until: int | None,
    progress: Progress | None,
) -> int:
    """Apply events after `after` (up to `until`) to the view's tables as
    the connection sees them; commits each page; the last position applied."""
    position = after
    while True:
        limit = REPLAY_PAGE_SIZE
        with connection.transaction(), connection.cursor() as cursor:
            events = read_events(cursor, position, limit)
            if until is not None:
                events = [event for event in events if event.position <= until]
            if events:
                view.apply(cursor, events)
                position = events[-1].position
        if progress is not None and events:
            progress(position)
        if len(events) < limit:
            return position


def replay_into_schema(
    database_url: str,
    view: View,
    schema: str,
    *,
    until: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Make the view afresh in `schema` (never the live one) from the log, up
    to position `until` (default: all of it), indexes included."""
    if schema == LIVE_SCHEMA:
        raise ValueError("a replay into a schema never writes the live views")
    with schema_connection(database_url, schema) as connection:
        with connection.transaction(), connection.cursor() as cursor:
            for table in reversed(view.tables):
                cursor.execute(
                    psycopg.sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                        psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
                    )
                )
            view.create_tables(cursor)
        view.forget(starts_empty=True)
        position = _replay(connection, view, 0, until, progress)
        with connection.transaction(), connection.cursor() as cursor:
            view.create_indexes(cursor)
        return position


def rebuild_with_shadow(database_url: str, view: View, *, progress: Progress | None = None) -> int:
    """Replay into the shadow schema, then swap it in; the position reached."""
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        ensure_tracking(cursor, view)
    position = replay_into_schema(database_url, view, SHADOW_SCHEMA, progress=progress)
    with (
        schema_connection(database_url, SHADOW_SCHEMA) as connection,
        connection.transaction(),
        connection.cursor() as cursor,
    ):
        lock_tracking(cursor, view.name)
        while True:
            tail = read_events(cursor, position, PAGE_SIZE)
            if tail:
                view.apply(cursor, tail)
                position = tail[-1].position
            if len(tail) < PAGE_SIZE:
                break
        for table in view.tables:
            cursor.execute(
                psycopg.sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                    psycopg.sql.Identifier(LIVE_SCHEMA), psycopg.sql.Identifier(table)
                )
            )
            cursor.execute(
                psycopg.sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                    psycopg.sql.Identifier(SHADOW_SCHEMA),
                    psycopg.sql.Identifier(table),
                    psycopg.sql.Identifier(LIVE_SCHEMA),
                )
            )
        save_tracking(cursor, view.name, position, view.version)
    if progress is not None:
        progress(position)
    return position
