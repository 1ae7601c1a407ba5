"""Rebuilding a view from the log: in place, or in a shadow schema and swapped in.

In place empties the view and replays it; readers see it fill up. With a
shadow, the view is replayed into the same tables in `ledger_shadow` while
the live one keeps serving; then, in one short transaction holding the live
view's tracking row (so no runner writes it meanwhile), the shadow applies
the last events, the live tables are dropped, and the shadow's are moved in.
Readers wait for that transaction only, not for the replay.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final

import psycopg
import structlog

from projections.events import LoggedEvent
from projections.replay import REPLAY_PAGE_SIZE, Progress, replay_pages
from projections.runner import (
    PAGE_SIZE,
    ProjectionRunner,
    ensure_tracking,
    lock_tracking,
    read_events,
    reset_view,
    save_tracking,
)
from projections.view import PageWrite, View, apply_page

log = structlog.get_logger(__name__)

# Views rebuilt at once, each in its own process.
REPLAY_PROCESSES_MAX: Final[int] = 8
# How often the parent of rebuild processes looks for their progress.
PROGRESS_POLL_S: Final[float] = 0.2
SHADOW_SCHEMA: Final[str] = "ledger_shadow"
LIVE_SCHEMA: Final[str] = "public"


def rebuild_in_place(database_url: str, view: View, *, progress: Progress | None = None) -> int:
    """Empty the view and replay the log into it; the position reached."""
    return rebuild_views_in_place(database_url, [view], progress=progress)[view.name]


class ReplayInterleaved(Exception):
    """Another runner wrote the view while this replay was writing it."""


def rebuild_all_in_place(
    database_url: str, views: Sequence[View], *, progress: Progress | None = None
) -> dict[str, int]:
    """Empty the views and replay the log into them; their positions reached.

    Several views replay at once, each in a process of its own (the work is
    Python's, held to one core per process by the interpreter lock), building
    their own instances by name from the registry."""
    if len(views) == 1:
        return rebuild_views_in_place(database_url, views, progress=progress)
    names = [view.name for view in views]
    context = multiprocessing.get_context("spawn")
    reached: dict[str, int] = dict.fromkeys(names, 0)
    progress_queue: multiprocessing.Queue[tuple[str, int]] = context.Queue()
    with ProcessPoolExecutor(
        min(len(names), REPLAY_PROCESSES_MAX),
        mp_context=context,
        initializer=_report_progress_to,
        initargs=(progress_queue,),
    ) as processes:
        futures = [processes.submit(_rebuild_named_view, database_url, name) for name in names]
        while not all(future.done() for future in futures):
            try:
                name, position = progress_queue.get(timeout=PROGRESS_POLL_S)
            except queue.Empty:
                continue
            reached[name] = position
            if progress is not None:
                progress(min(reached.values()))
        for future in futures:
            reached.update(future.result())
    if progress is not None:
        progress(min(reached.values()))
    return reached


# Set in each rebuild process: where it reports its progress.
_progress_queue: multiprocessing.Queue[tuple[str, int]] | None = None


def _report_progress_to(progress_queue: multiprocessing.Queue[tuple[str, int]]) -> None:
    global _progress_queue  # noqa: PLW0603 - one per process, set once at its start
    _progress_queue = progress_queue


def _rebuild_named_view(database_url: str, name: str) -> dict[str, int]:
    from projections.registry import view_named

    def report(position: int) -> None:
        if _progress_queue is not None:
            _progress_queue.put((name, position))

    return rebuild_views_in_place(database_url, [view_named(name)], progress=report)


def rebuild_views_in_place(
    database_url: str, views: Sequence[View], *, progress: Progress | None = None
) -> dict[str, int]:
    """Empty the views and replay the log into them in this process (one read
    of the log, pipelined); their positions reached. Indexes are made after
    loading. If another runner (a running server's) writes one of the views
    meanwhile, the replay goes on page by page alongside it instead."""
    with psycopg.connect(database_url) as connection:
        for view in views:
            with connection.transaction(), connection.cursor() as cursor:
                ensure_tracking(cursor, view)
                lock_tracking(cursor, view.name)
                reset_view(cursor, view)
            view.forget(starts_empty=True)
    written = {view.name: 0 for view in views}
    with psycopg.connect(database_url) as writer:
        # A crash loses the replay's last pages whole (rows with positions).
        writer.execute("SET synchronous_commit = off")
        writer.commit()

        def write_page(events: Sequence[LoggedEvent], writes: Sequence[PageWrite]) -> None:
            for view, page in zip(views, writes, strict=True):
                with writer.transaction(), writer.cursor() as cursor:
                    tracked, _ = lock_tracking(cursor, view.name)
                    if tracked != written[view.name]:
                        raise ReplayInterleaved(view.name)
                    page.write(cursor)
                    save_tracking(cursor, view.name, events[-1].position, view.version)
                written[view.name] = events[-1].position

        try:
            replay_pages(database_url, views, write_page, progress=progress)
        except ReplayInterleaved as interleaved:
            log.warning("projection_replay_interleaved", projection=str(interleaved))
    runner = ProjectionRunner(database_url, views, page_size=REPLAY_PAGE_SIZE)
    try:
        runner.prepare()
        runner.catch_up(progress=progress)
        with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
            for view in views:
                view.create_indexes(cursor)
        return runner.positions()
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

        def write_page(events: Sequence[LoggedEvent], writes: Sequence[PageWrite]) -> None:
            with connection.transaction(), connection.cursor() as cursor:
                for page in writes:
                    page.write(cursor)

        position = replay_pages(database_url, [view], write_page, until=until, progress=progress)
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
                apply_page(view, cursor, tail)
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
