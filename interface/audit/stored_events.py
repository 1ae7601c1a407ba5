"""Reading `ledger_events` as stored, for `ledger audit verify`: plain SQL in
one REPEATABLE READ snapshot, keyset pages on `notification_id` read ahead
by a thread of their own, rows as tuples in binary with ids and topics as
raw bytes, and times as PostgreSQL's binary timestamptz (what the links
cover: no UUID, str or datetime made per event).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg import IsolationLevel
from psycopg.types.string import ByteaBinaryLoader

# Events read per round trip (and per progress report).
LOG_PAGE_ROWS: Final[int] = 20_000
# Pages read ahead of the checks (memory: this many pages at most).
PREFETCHED_PAGES_MAX: Final[int] = 2
# How often the page reader and its consumer look whether the other stopped.
PREFETCH_WAIT_S: Final[float] = 0.1

_SELECT_PAGE: Final = (
    "SELECT notification_id, originator_id, originator_version, topic, state, event_hash,"
    " recorded_at FROM ledger_events WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
)
# For events whose predecessors memory does not hold (a reversal of a closed
# transfer): the first versions of the same aggregate, by the primary key's
# index (the LIMIT keeps the planner on the index whatever its statistics say;
# a transfer has at most three events).
_SELECT_VERSIONS_OF: Final = (
    "SELECT q.position, e.originator_version, e.notification_id "
    "FROM unnest(%s::uuid[], %s::int8[]) AS q(originator_id, position) "
    "CROSS JOIN LATERAL (SELECT originator_version, notification_id FROM ledger_events "
    "WHERE originator_id = q.originator_id ORDER BY originator_version LIMIT %s) AS e"
)
# Versions looked up per aggregate: more than any transfer has.
_VERSIONS_LOOKED_UP_MAX: Final[int] = 8


def snapshot_connection(database_url: str) -> psycopg.Connection[Any]:
    """A read-only REPEATABLE READ connection that loads ids, text and times
    as raw bytes: what the links cover, with no object made per event."""
    connection = psycopg.connect(database_url)
    connection.isolation_level = IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    for type_name in ("uuid", "text", "timestamptz"):
        connection.adapters.register_loader(type_name, ByteaBinaryLoader)
    return connection


class PrefetchedPages:
    """Pages of the log read by a thread of its own, a few ahead of the
    checks: the database and the network work while Python hashes."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection
        self._pages: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(
            maxsize=PREFETCHED_PAGES_MAX
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name="audit-verify-pages", daemon=True)

    def __enter__(self) -> PrefetchedPages:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._pages.get(timeout=PREFETCH_WAIT_S)
        self._thread.join()

    def __iter__(self) -> Iterator[list[tuple[Any, ...]]]:
        while True:
            page = self._pages.get()
            if page is None:
                return
            if isinstance(page, BaseException):
                raise page
            yield page

    def _read(self) -> None:
        try:
            after = 0
            with self._connection.cursor(binary=True) as cursor:
                while not self._stopping.is_set():
                    cursor.execute(_SELECT_PAGE, (after, LOG_PAGE_ROWS))
                    rows = cursor.fetchall()
                    if rows:
                        self._put(rows)
                        after = rows[-1][0]
                    if len(rows) < LOG_PAGE_ROWS:
                        break
            self._put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the reading thread
            self._put(error)

    def _put(self, item: list[tuple[Any, ...]] | BaseException | None) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(queue.Full):
                self._pages.put(item, timeout=PREFETCH_WAIT_S)
                return


def earlier_versions(
    cursor: psycopg.Cursor[Any], wanted: dict[int, tuple[bytes, int]]
) -> dict[int, list[int]]:
    """Position of an event -> the versions of its aggregate recorded before it
    in the log (of `wanted`: position -> (originator id, version))."""
    cursor.execute(
        _SELECT_VERSIONS_OF,
        (
            [UUID(bytes=originator) for originator, _ in wanted.values()],
            list(wanted),
            _VERSIONS_LOOKED_UP_MAX,
        ),
    )
    earlier: dict[int, list[int]] = {position: [] for position in wanted}
    for position, other_version, other_position in cursor.fetchall():
        if other_position < position:
            earlier[position].append(other_version)
    return earlier
