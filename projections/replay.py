"""Replaying the log into views that start empty, in three overlapping stages.

A replay from empty is where the views' speed matters (rebuilds, audits).
One thread reads the next page of the log, the calling thread works out the
rows of the page before it (the views remember everything they need, so it
reads nothing back), and another thread writes the page before that. Reading
and writing wait on PostgreSQL, which works on the other core meanwhile, so
the three overlap instead of taking turns. At most one page waits to be
written: memory stays one page deep however long the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import psycopg

from projections.events import LoggedEvent
from projections.runner import read_events
from projections.view import PageWrite, View

# Events per page of a replay (one transaction each).
REPLAY_PAGE_SIZE: Final[int] = 20_000

# Writes a page's rows (one per view) in a transaction of its own.
WritePage = Callable[[Sequence[LoggedEvent], Sequence[PageWrite]], None]
Progress = Callable[[int], None]


def replay_pages(
    database_url: str,
    views: Sequence[View],
    write_page: WritePage,
    *,
    after: int = 0,
    until: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Replay the log after `after` (up to `until`) into views that remember
    everything they need; the last position written."""
    position = after
    with (
        psycopg.connect(database_url, autocommit=True) as reader,
        ThreadPoolExecutor(1, thread_name_prefix="replay-read") as reading,
        ThreadPoolExecutor(1, thread_name_prefix="replay-write") as writing,
    ):

        def read_after(start: int) -> list[LoggedEvent]:
            with reader.cursor() as cursor:
                events = read_events(cursor, start, REPLAY_PAGE_SIZE)
            if until is not None:
                events = [event for event in events if event.position <= until]
            return events

        next_page = reading.submit(read_after, after)
        writing_page: Future[Any] | None = None
        while True:
            events = next_page.result()
            last_page = len(events) < REPLAY_PAGE_SIZE
            if not last_page:
                next_page = reading.submit(read_after, events[-1].position)
            writes = [view.prepare(None, events) for view in views] if events else []
            if writing_page is not None:
                writing_page.result()
                if progress is not None:
                    progress(position)
            if events:
                writing_page = writing.submit(write_page, events, writes)
                position = events[-1].position
            else:
                writing_page = None
            if last_page:
                if writing_page is not None:
                    writing_page.result()
                if progress is not None:
                    progress(position)
                return position
