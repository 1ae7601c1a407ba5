"""Views replayed into a scratch schema and digested, with the live views'
digests, on every core: the engine of `ledger audit verify` and of the
reconciliation's projections check (docs/performance.md#projections-and-audit).

The replays are those of `ledger projections rebuild` (`rebuild`: a view
with a set-based replay made by it inside PostgreSQL, the others sharing a
read of the log, pages written with COPY, indexes after loading), each
group in a spawned process of its own with its own connections, and each
group digests its own tables as soon as it is done. The live views'
digests are taken meanwhile, a table per task, in the caller's snapshot
(exported to the workers), so they are the views exactly as the tracking
positions the caller read say. One pool of a process per core runs both
kinds of task, the replays first (the longest).

A view's digest does not depend on where or with which others it was
replayed: the results are the same on one core or many.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Final

import psycopg
from psycopg import sql

from projections.fingerprint import table_fingerprint
from projections.rebuild import (
    LIVE_SCHEMA,
    PROGRESS_POLL_S,
    _replay_groups,
    progress_to_parent,
    replay_processes,
    replay_views_into_schema,
    report_progress_to,
)
from projections.registry import view_named

# (view name, position reached): a replay's progress, view by view.
ViewProgress = Callable[[str, int], None]
# View name -> table -> digest.
Digests = dict[str, dict[str, str]]

# What a worker reports as its phase when it digests rather than replays.
DIGESTING: Final[str] = "digesting"


def replay_and_digest(
    database_url: str,
    positions: Mapping[str, int],
    schema: str,
    *,
    live_snapshot: str | None = None,
    processes: int | None = None,
    progress: ViewProgress | None = None,
) -> tuple[Digests, Digests]:
    """Replay each named view into `schema` up to its position, and digest
    it; with `live_snapshot` (an exported snapshot, `pg_export_snapshot()`,
    whose transaction stays open until this returns), digest the live views
    in it too. (replayed digests, live digests), by view."""
    if schema == LIVE_SCHEMA:
        raise ValueError("a replay into a schema never writes the live views")
    count = processes or replay_processes()
    views = [view_named(name) for name in positions]
    groups = _replay_groups(views, count)
    # Made once here: two processes making it at once would collide.
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    context = multiprocessing.get_context("spawn")
    progress_queue: multiprocessing.Queue[tuple[str, int]] = context.Queue()
    replayed: Digests = {}
    live: Digests = {name: {} for name in positions}
    with ProcessPoolExecutor(
        max(1, min(count, len(groups) + (len(views) if live_snapshot else 0))),
        mp_context=context,
        initializer=report_progress_to,
        initargs=(progress_queue,),
    ) as pool:
        replays = [
            pool.submit(
                _replay_and_digest_group,
                database_url,
                schema,
                {name: positions[name] for name in group},
            )
            for group in groups
        ]
        tables: list[tuple[str, str, Future[str]]] = []
        if live_snapshot is not None:
            tables = [
                (
                    view.name,
                    table,
                    pool.submit(_digest_in_snapshot, database_url, live_snapshot, table),
                )
                for view in views
                for table in view.tables
            ]
        everything: list[Future[Any]] = [*replays, *(future for *_, future in tables)]
        _follow(everything, progress_queue, progress)
        for future in replays:
            replayed.update(future.result())
        for name, table, digest in tables:
            live[name][table] = digest.result()
    return replayed, live


def _follow(
    futures: Sequence[Future[Any]],
    progress_queue: multiprocessing.Queue[tuple[str, int]],
    progress: ViewProgress | None,
) -> None:
    """Pass the workers' progress on until every task is done."""
    while not all(future.done() for future in futures):
        try:
            name, position = progress_queue.get(timeout=PROGRESS_POLL_S)
        except queue.Empty:
            continue
        if progress is not None:
            progress(name, position)
    # A failed task raises here, in the caller.
    for future in futures:
        future.result()


def _replay_and_digest_group(
    database_url: str, schema: str, positions: Mapping[str, int]
) -> Digests:
    """In a worker: the views replayed into `schema` up to their positions
    (those at one position together, in one read of the log), then digested."""
    by_position: dict[int, list[str]] = {}
    for name, position in positions.items():
        by_position.setdefault(position, []).append(name)
    digests: Digests = {}
    for position, names in sorted(by_position.items()):
        views = [view_named(name) for name in names]
        replay_views_into_schema(
            database_url, views, schema, until=position, progress=progress_to_parent(names)
        )
        with psycopg.connect(database_url) as connection, connection.transaction():
            for view in views:
                digests[view.name] = {
                    table: table_fingerprint(connection, schema, table) for table in view.tables
                }
    return digests


def _digest_in_snapshot(database_url: str, snapshot: str, table: str) -> str:
    """In a worker: a live table's digest as the exported snapshot sees it."""
    with psycopg.connect(database_url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with connection.transaction():
            connection.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            return table_fingerprint(connection, LIVE_SCHEMA, table)
