"""Rebuilding views from the log: in a shadow schema and swapped in, or in place.

With a shadow (the default of `ledger projections rebuild`), the views are
replayed into the same tables in `ledger_shadow` while the live ones keep
serving; then, in one short transaction holding the live views' tracking
rows (so no runner writes them meanwhile), the shadow applies the last
events, the live tables are dropped, and the shadow's are moved in, every
view at once. Readers wait for that transaction only, never see a view
empty or partial. One shadow rebuild at a time uses the schema (a session
advisory lock).

In place empties the views and replays them; readers see them empty and
filling up, so the command refuses it while a service, a runner or another
rebuild uses the database (`view_sessions`).

A view with a set-based replay (the journal: `journal_sql_replay`) replays
from empty inside PostgreSQL, in one transaction that shows nothing until
it is whole; so it is always made aside and swapped in, even "in place".
The other views replay page by page through their Python handlers. Either
way a view then follows the log through its Python handlers, as the live
runner keeps it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final, Protocol

import psycopg
import structlog

from projections import journal
from projections.events import LoggedEvent
from projections.journal_sql_replay import replay_journal
from projections.replay import REPLAY_PAGE_SIZE, Progress, replay_pages
from projections.runner import (
    PAGE_SIZE,
    ProjectionRunner,
    ensure_tracking,
    lock_tracking,
    read_events,
    reset_view,
    save_tracking,
    wake_runners,
)
from projections.view import Cursor, PageWrite, View, apply_page

log = structlog.get_logger(__name__)

# Processes replaying views at once.
REPLAY_PROCESSES_MAX: Final[int] = 8
# How often the parent of rebuild processes looks for their progress.
PROGRESS_POLL_S: Final[float] = 0.2
SHADOW_SCHEMA: Final[str] = "ledger_shadow"
LIVE_SCHEMA: Final[str] = "public"
# Held (a session advisory lock) by the shadow rebuild using SHADOW_SCHEMA.
SHADOW_LOCK_KEY: Final[int] = 0x5348_4144_4F57  # "SHADOW"
# How rebuilding sessions show in pg_stat_activity (see `view_sessions`).
REBUILD_APPLICATION_NAME: Final[str] = "ledger projections rebuild"
# A swap takes the live tables with a short lock timeout: a reader holding
# one of them while it waits for another the swap already took would
# otherwise deadlock with it, and PostgreSQL would cancel one of the two
# (the reader, as likely as not). Giving up at once lets the reader through;
# the swap tries again after a pause, keeping what it did so far.
SWAP_LOCK_TIMEOUT_MS: Final[int] = 200
SWAP_LOCK_ATTEMPTS_MAX: Final[int] = 100
SWAP_LOCK_RETRY_PAUSE_S: Final[float] = 0.05


class SetBasedReplay(Protocol):
    """Fills the view's empty tables from the log up to `until` (default: all
    of it) and makes their indexes, in the caller's transaction; the
    position reached."""

    def __call__(self, view: View, cursor: Cursor, *, until: int | None = None) -> int: ...


# Views replayed from empty set-based inside PostgreSQL, by name. The live
# runner keeps them with their Python handlers: two derivations that check
# each other (`ledger audit verify` compares a live view with a replay).
SET_BASED_REPLAYS: Final[dict[str, SetBasedReplay]] = {journal.NAME: replay_journal}


def rebuild_in_place(database_url: str, view: View, *, progress: Progress | None = None) -> int:
    """Empty the view and replay the log into it (one with a set-based replay:
    make it aside and swap it in); the position reached."""
    return rebuild_views_in_place(database_url, [view], progress=progress)[view.name]


class ReplayInterleaved(Exception):
    """Another runner wrote the view while this replay was writing it."""


def rebuild_all_in_place(
    database_url: str, views: Sequence[View], *, progress: Progress | None = None
) -> dict[str, int]:
    """Empty the views and replay the log into them; their positions reached.

    The views replay at once in processes of their own, which build their
    own instances by name from the registry: each view with a set-based
    replay in one (its work is PostgreSQL's), and the others together in
    one more, sharing one read of the log (reading it is most of their work,
    and Python's share is held to one core per process by the interpreter
    lock either way)."""
    groups = _replay_groups(views, replay_processes())
    if len(groups) == 1:
        return rebuild_views_in_place(database_url, views, progress=progress)
    return _in_processes(database_url, groups, _rebuild_named_views, progress)


def replay_processes() -> int:
    """Processes replaying at once: one per core, within REPLAY_PROCESSES_MAX."""
    return max(1, min(os.cpu_count() or 1, REPLAY_PROCESSES_MAX))


def _replay_groups(views: Sequence[View], processes: int = 2) -> list[list[str]]:
    """Each view with a set-based replay alone; the others shared out, in
    registry order, between the processes left (at least one): each group
    reads the log once for all its views, so a group per core, not per view.
    The grouping changes only where a view is replayed, never what."""
    groups = [[view.name] for view in views if view.name in SET_BASED_REPLAYS]
    paged = [view.name for view in views if view.name not in SET_BASED_REPLAYS]
    shares = max(1, min(len(paged), processes - len(groups)))
    groups.extend(paged[share::shares] for share in range(shares) if paged[share::shares])
    return groups


def _in_processes(
    database_url: str,
    groups: Sequence[Sequence[str]],
    work: Callable[[str, Sequence[str]], dict[str, int]],
    progress: Progress | None,
) -> dict[str, int]:
    """`work` for each group of views (by name) in a process of its own, at
    once; the positions they reached, by view."""
    context = multiprocessing.get_context("spawn")
    reached: dict[str, int] = {name: 0 for group in groups for name in group}
    progress_queue: multiprocessing.Queue[tuple[str, int]] = context.Queue()
    with ProcessPoolExecutor(
        min(len(groups), REPLAY_PROCESSES_MAX),
        mp_context=context,
        initializer=report_progress_to,
        initargs=(progress_queue,),
    ) as processes:
        futures = [processes.submit(work, database_url, group) for group in groups]
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


def report_progress_to(progress_queue: multiprocessing.Queue[tuple[str, int]]) -> None:
    global _progress_queue  # noqa: PLW0603 - one per process, set once at its start
    _progress_queue = progress_queue


def progress_to_parent(names: Sequence[str]) -> Progress:
    def report(position: int) -> None:
        if _progress_queue is not None:
            for name in names:
                _progress_queue.put((name, position))

    return report


def _rebuild_named_views(database_url: str, names: Sequence[str]) -> dict[str, int]:
    # Imported here: the registry imports every view, which this module's
    # importers (the views' own tests among them) need not.
    from projections.registry import view_named

    views = [view_named(name) for name in names]
    return rebuild_views_in_place(database_url, views, progress=progress_to_parent(names))


def _replay_named_views_into_shadow(database_url: str, names: Sequence[str]) -> dict[str, int]:
    # Imported here, as in `_rebuild_named_views`.
    from projections.registry import view_named

    views = [view_named(name) for name in names]
    position = replay_views_into_schema(
        database_url, views, SHADOW_SCHEMA, progress=progress_to_parent(names)
    )
    return dict.fromkeys(names, position)


def rebuild_views_in_place(
    database_url: str, views: Sequence[View], *, progress: Progress | None = None
) -> dict[str, int]:
    """Empty the views and replay the log into them in this process (one read
    of the log, pipelined); their positions reached. Indexes are made after
    loading. If another runner (a running server's) writes one of the views
    meanwhile, the replay goes on page by page alongside it instead.

    A view with a set-based replay is not emptied but made aside and swapped
    in, as with a shadow: its replay shows nothing until it is whole, and
    meanwhile the live view keeps serving and following the log, and no
    runner waits for the replay (only for the swap)."""
    paged = [view for view in views if view.name not in SET_BASED_REPLAYS]
    for view in views:
        if view.name in SET_BASED_REPLAYS:
            rebuild_with_shadow(database_url, view, progress=None if paged else progress)
    if paged:
        _replay_paged_in_place(database_url, paged, progress)
    runner = ProjectionRunner(
        database_url,
        views,
        page_size=REPLAY_PAGE_SIZE,
        application_name=REBUILD_APPLICATION_NAME,
    )
    try:
        runner.prepare()
        runner.catch_up(progress=progress)
        with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
            for view in views:
                view.create_indexes(cursor)
        return runner.positions()
    finally:
        runner.stop()


def _replay_paged_in_place(
    database_url: str, views: Sequence[View], progress: Progress | None
) -> None:
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
    set_based: bool = True,
) -> int:
    """Make the view afresh in `schema` (never the live one) from the log, up
    to position `until` (default: all of it), indexes included. A view with
    a set-based replay is made by it, unless `set_based` is False: then it
    replays through its Python handlers, so one derivation can check the
    other."""
    return replay_views_into_schema(
        database_url, [view], schema, until=until, progress=progress, set_based=set_based
    )


def replay_views_into_schema(
    database_url: str,
    views: Sequence[View],
    schema: str,
    *,
    until: int | None = None,
    progress: Progress | None = None,
    set_based: bool = True,
) -> int:
    """`replay_into_schema` for several views at once: those with a set-based
    replay each by it, the others together in one read of the log (the
    log is read and decoded once however many views it feeds)."""
    if schema == LIVE_SCHEMA:
        raise ValueError("a replay into a schema never writes the live views")
    with schema_connection(database_url, schema) as connection:
        with connection.transaction(), connection.cursor() as cursor:
            for view in views:
                for table in reversed(view.tables):
                    cursor.execute(
                        psycopg.sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
                        )
                    )
                view.create_tables(cursor)
        paged: list[View] = []
        position = 0
        for view in views:
            view.forget(starts_empty=True)
            set_based_replay = SET_BASED_REPLAYS.get(view.name) if set_based else None
            if set_based_replay is None:
                paged.append(view)
                continue
            with connection.transaction(), connection.cursor() as cursor:
                position = set_based_replay(view, cursor, until=until)
            # Its rows came from SQL, not from its handlers: read back from now on.
            view.forget(starts_empty=False)
            if progress is not None:
                progress(position)
        if paged:

            def write_page(events: Sequence[LoggedEvent], writes: Sequence[PageWrite]) -> None:
                with connection.transaction(), connection.cursor() as cursor:
                    for page in writes:
                        page.write(cursor)

            position = replay_pages(database_url, paged, write_page, until=until, progress=progress)
        with connection.transaction(), connection.cursor() as cursor:
            for view in views:
                view.create_indexes(cursor)
        return position


def rebuild_with_shadow(database_url: str, view: View, *, progress: Progress | None = None) -> int:
    """Replay into the shadow schema, then swap it in; the position reached."""
    return rebuild_all_with_shadow(database_url, [view], progress=progress)[view.name]


def rebuild_all_with_shadow(
    database_url: str, views: Sequence[View], *, progress: Progress | None = None
) -> dict[str, int]:
    """Replay the views into the shadow schema while the live ones serve
    (each group in a process of its own, as `rebuild_all_in_place` does),
    then swap them all in, in one transaction; their positions."""
    with psycopg.connect(
        database_url, autocommit=True, application_name=REBUILD_APPLICATION_NAME
    ) as guard:
        guard.execute("SELECT pg_advisory_lock(%s)", (SHADOW_LOCK_KEY,))
        with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
            for view in views:
                ensure_tracking(cursor, view)
        groups = _replay_groups(views, replay_processes())
        if len(groups) == 1:
            position = replay_views_into_schema(
                database_url, views, SHADOW_SCHEMA, progress=progress
            )
            replayed = {view.name: position for view in views}
        else:
            replayed = _in_processes(
                database_url, groups, _replay_named_views_into_shadow, progress
            )
        positions = _swap_in(database_url, views, replayed)
    if progress is not None:
        progress(min(positions.values()))
    return positions


def _swap_in(database_url: str, views: Sequence[View], replayed: dict[str, int]) -> dict[str, int]:
    """Bring each shadow view up with the log and move it in for the live
    one, every view in one transaction."""
    positions: dict[str, int] = {}
    with (
        schema_connection(database_url, SHADOW_SCHEMA) as connection,
        connection.transaction(),
        connection.cursor() as cursor,
    ):
        # In one order, so two swaps (or a swap and a runner) never deadlock.
        for view in sorted(views, key=lambda view: view.name):
            lock_tracking(cursor, view.name)
        for view in views:
            # What it remembers may be another process's replay: it reads
            # the shadow tables back instead.
            view.forget(starts_empty=False)
            position = replayed[view.name]
            while True:
                tail = read_events(cursor, position, PAGE_SIZE)
                if tail:
                    apply_page(view, cursor, tail)
                    position = tail[-1].position
                if len(tail) < PAGE_SIZE:
                    break
            positions[view.name] = position
        _lock_live_tables(connection, cursor, views)
        for view in views:
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
            save_tracking(cursor, view.name, positions[view.name], view.version)
        wake_runners(cursor)
    return positions


def _lock_live_tables(
    connection: psycopg.Connection[Any], cursor: Cursor, views: Sequence[View]
) -> None:
    """Every live table of the views, for this transaction, never waiting
    long enough to deadlock with a reader."""
    cursor.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)"
        " ORDER BY tablename",
        (LIVE_SCHEMA, [table for view in views for table in view.tables]),
    )
    tables = [row[0] for row in cursor.fetchall()]
    if not tables:
        return
    statement = psycopg.sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
        psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(LIVE_SCHEMA, table) for table in tables)
    )
    cursor.execute(f"SET LOCAL lock_timeout = {SWAP_LOCK_TIMEOUT_MS}")
    for attempt in range(1, SWAP_LOCK_ATTEMPTS_MAX + 1):
        try:
            # A savepoint: a lock that times out undoes only this attempt.
            with connection.transaction():
                cursor.execute(statement)
            break
        except psycopg.errors.LockNotAvailable:
            if attempt == SWAP_LOCK_ATTEMPTS_MAX:
                raise
            time.sleep(SWAP_LOCK_RETRY_PAUSE_S)
    cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
