"""The projection runner: pages of events into views, each with its own tracking.

One loop: read a page of events after the lowest position any view has
reached; for each view, in its own transaction, lock its tracking row, apply
the events it has not seen, and write the new position with the rows. Two
runners (say `ledger serve` and `ledger projections run`) may run at once:
the row lock takes turns, and a runner that finds a position it did not
write forgets what it remembered about that view before going on.

Woken by the writers' NOTIFY on the events channel; a poll every
`poll_interval_s` covers a lost notification or a broken listen connection.

A view that cannot apply an event never holds the others back: the page is
applied to it again event by event, each in a transaction of its own, up to
the event that fails; that one is recorded (`view_health`) and the view
stops there, while the others go on. A stopped view resumes when its record
is cleared (a rebuild, another runner that applied it), and a runner that
starts tries it again (a fixed handler). Lost connections, deadlocks and
the like are not the view's fault: the whole loop waits and tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import psycopg
import structlog

from projections.events import EVENT_COLUMNS, LoggedEvent
from projections.notification_wait import NotificationWait
from projections.view import Cursor, View, apply_page
from projections.view_health import ViewFailure, failure_reason, record_failure

log = structlog.get_logger(__name__)

PAGE_SIZE: Final[int] = 5_000
POLL_INTERVAL_S: Final[float] = 1.0
# The channel the event recorder notifies after each write (its table name).
EVENTS_CHANNEL: Final[str] = "ledger_events"
# After an error (database restarting, say) the loop waits this long.
ERROR_PAUSE_S: Final[float] = 1.0
# How the runner's sessions show in pg_stat_activity: `projections rebuild
# --in-place` refuses to run while one is connected (see `rebuild.py`).
RUNNER_APPLICATION_NAME: Final[str] = "ledger projection runner"
# Errors that say nothing about the events: the connection, a deadlock, a
# cancelled statement (psycopg's OperationalError covers the last three).
# The loop retries the page after a pause.
TRANSIENT_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)

_SELECT_EVENTS: Final = (
    f"SELECT {EVENT_COLUMNS} FROM ledger_events "  # noqa: S608 - constant text
    "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
)
_SELECT_HEAD: Final = "SELECT coalesce(max(notification_id), 0) FROM ledger_events"


def _logged_events(cursor: Cursor) -> Callable[[Sequence[Any]], LoggedEvent]:
    """A row factory: each row straight into an event (no tuple made first,
    then copied; a replay reads millions)."""
    return lambda values: LoggedEvent(*values)


def read_events(cursor: Cursor, after: int, limit: int) -> list[LoggedEvent]:
    # The caller's cursor goes on with its own rows afterwards.
    rows = cursor.row_factory
    cursor.row_factory = _logged_events
    try:
        # Binary results: bodies arrive as bytes, not hex text to decode.
        cursor.execute(_SELECT_EVENTS, (after, limit), binary=True)
        events: list[LoggedEvent] = cursor.fetchall()
    finally:
        cursor.row_factory = rows
    return events


def log_head(cursor: Cursor) -> int:
    cursor.execute(_SELECT_HEAD)
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def ensure_tracking(cursor: Cursor, view: View) -> int:
    """Make the view's tables and tracking row if missing; its position.
    Secondary indexes are the caller's: a view replaying from empty loads
    faster without them and makes them once it has caught up."""
    view.create_tables(cursor)
    cursor.execute(
        "INSERT INTO projection_tracking (name, position, version) VALUES (%s, 0, %s) "
        "ON CONFLICT (name) DO NOTHING",
        (view.name, view.version),
    )
    cursor.execute(
        "SELECT position, version FROM projection_tracking WHERE name = %s", (view.name,)
    )
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def lock_tracking(cursor: Cursor, name: str) -> tuple[int, int]:
    """Lock the view's tracking row for this transaction; (position, version)."""
    cursor.execute(
        "SELECT position, version FROM projection_tracking WHERE name = %s FOR UPDATE", (name,)
    )
    row = cursor.fetchone()
    if row is None:
        raise LookupError(f"projection {name!r} has no tracking row; run the runner once first")
    return int(row[0]), int(row[1])


def save_tracking(cursor: Cursor, name: str, position: int, version: int) -> None:
    """The view's new position; a failure recorded at or before it is
    cleared (the view applied that event after all, or was rebuilt)."""
    cursor.execute(
        "UPDATE projection_tracking SET position = %(position)s, version = %(version)s,"
        " updated_at = now(),"
        " failure = CASE WHEN failed_position <= %(position)s THEN NULL ELSE failure END,"
        " failed_at = CASE WHEN failed_position <= %(position)s THEN NULL ELSE failed_at END,"
        " failed_position = CASE WHEN failed_position <= %(position)s THEN NULL"
        " ELSE failed_position END"
        " WHERE name = %(name)s",
        {"position": position, "version": version, "name": name},
    )


def wake_runners(cursor: Cursor) -> None:
    """Wake every listening runner when this transaction commits (a rebuild
    swapped a view in: a runner that stopped the view resumes it now)."""
    cursor.execute("SELECT pg_notify(%s, '')", (EVENTS_CHANNEL,))


def reset_view(cursor: Cursor, view: View) -> None:
    """Drop and make the view's tables empty, at position 0 (caller's transaction)."""
    for table in reversed(view.tables):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    view.create_tables(cursor)
    save_tracking(cursor, view.name, 0, view.version)


class ProjectionRunner:
    def __init__(
        self,
        database_url: str,
        views: Sequence[View],
        *,
        page_size: int = PAGE_SIZE,
        poll_interval_s: float = POLL_INTERVAL_S,
        channel: str = EVENTS_CHANNEL,
        durable_commits: bool = True,
        application_name: str = RUNNER_APPLICATION_NAME,
    ) -> None:
        if not views:
            raise ValueError("a runner needs at least one view")
        self._database_url = database_url
        self._views = {view.name: view for view in views}
        self._page_size = page_size
        self._poll_interval_s = poll_interval_s
        self._channel = channel
        self._durable_commits = durable_commits
        self._application_name = application_name
        # Positions this runner wrote or saw last, by view.
        self._known: dict[str, int] = {}
        # Views stopped on an event they could not apply, by name.
        self._failed: dict[str, ViewFailure] = {}
        # Views replaying from empty: their secondary indexes come after.
        self._unindexed: set[str] = set()
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._notification_wait = NotificationWait()
        self._thread: threading.Thread | None = None
        self._connection: psycopg.Connection[Any] | None = None

    @property
    def views(self) -> tuple[View, ...]:
        return tuple(self._views.values())

    def _work_connection(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self._database_url, application_name=self._application_name
            )
            if not self._durable_commits:
                # A replay need not wait for each page to reach the disk: a
                # crash loses its last pages whole (rows with their position)
                # and they are replayed again.
                self._connection.execute("SET synchronous_commit = off")
                self._connection.commit()
        return self._connection

    def prepare(self) -> None:
        """Tables and tracking rows for every view; a view stored at another
        version is emptied here and replays from the start."""
        connection = self._work_connection()
        for view in self._views.values():
            with connection.transaction(), connection.cursor() as cursor:
                ensure_tracking(cursor, view)
                position, version = lock_tracking(cursor, view.name)
                if version != view.version:
                    log.warning(
                        "projection_version_changed",
                        projection=view.name,
                        stored_version=version,
                        version=view.version,
                    )
                    reset_view(cursor, view)
                    position = 0
                if position > 0:
                    view.create_indexes(cursor)
                else:
                    self._unindexed.add(view.name)
            view.forget(starts_empty=position == 0)
            self._known[view.name] = position
        # A runner that starts tries a stopped view again (its handler may be
        # fixed now); the record stays until the view moves past the event.
        self._failed.clear()

    # Running -----------------------------------------------------------------

    def run_once(self) -> int:
        """Apply one page to every view that needs it and has not stopped;
        how many events were read."""
        connection = self._work_connection()
        if not self._known:
            self.prepare()
        if self._failed:
            self._resume_cleared(connection)
        running = [view for view in self._views.values() if view.name not in self._failed]
        if not running:
            return 0
        start = min(self._known[view.name] for view in running)
        with connection.cursor() as cursor:
            events = read_events(cursor, start, self._page_size)
        connection.commit()
        if not events:
            return 0
        for view in running:
            self._apply_to(connection, view, start, events)
        with self._changed:
            self._changed.notify_all()
        return len(events)

    def _resume_cleared(self, connection: psycopg.Connection[Any]) -> None:
        """Stopped views whose failure record is gone (a rebuild replaced
        them, another runner applied the event) run again from where they are."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT name, position FROM projection_tracking"
                " WHERE name = ANY(%s) AND failed_position IS NULL",
                (list(self._failed),),
            )
            cleared = cursor.fetchall()
        connection.commit()
        for name, position in cleared:
            del self._failed[name]
            self._views[name].forget(starts_empty=position == 0)
            self._known[name] = int(position)
            log.info("projection_resumed", projection=name, position=position)

    def _apply_to(
        self,
        connection: psycopg.Connection[Any],
        view: View,
        after: int,
        events: Sequence[LoggedEvent],
    ) -> None:
        if self._try_to_apply(connection, view, after, events) is None:
            return
        # Some event of the page fails: find it, event by event.
        for event in events:
            error = self._try_to_apply(connection, view, after, [event])
            if error is not None:
                self._stop_view(connection, view, event.position, error)
                return

    def _try_to_apply(
        self,
        connection: psycopg.Connection[Any],
        view: View,
        after: int,
        events: Sequence[LoggedEvent],
    ) -> Exception | None:
        """Apply the events in one transaction; the error of one the view
        cannot apply (None when applied). Transient errors are raised."""
        try:
            self._known[view.name] = self._apply_in_transaction(connection, view, after, events)
        except Exception as error:
            # The transaction rolled back; what the view remembers may not have.
            view.forget(starts_empty=False)
            if isinstance(error, TRANSIENT_ERRORS) or connection.broken:
                raise
            return error
        except BaseException:
            view.forget(starts_empty=False)
            raise
        return None

    def _stop_view(
        self,
        connection: psycopg.Connection[Any],
        view: View,
        position: int,
        error: Exception,
    ) -> None:
        reason = failure_reason(error)
        with connection.transaction(), connection.cursor() as cursor:
            failed_at = record_failure(cursor, view.name, position, reason)
        log.error(
            "projection_failed",
            projection=view.name,
            position=position,
            reason=reason,
            exc_info=error,
        )
        self._failed[view.name] = ViewFailure(position, reason, failed_at)
        with self._changed:
            # Readers waiting for this view need wait no more.
            self._changed.notify_all()

    def _apply_in_transaction(
        self,
        connection: psycopg.Connection[Any],
        view: View,
        after: int,
        events: Sequence[LoggedEvent],
    ) -> int:
        with connection.transaction(), connection.cursor() as cursor:
            tracked, version = lock_tracking(cursor, view.name)
            if tracked != self._known[view.name] or version != view.version:
                # Someone else moved this view (another runner, a rebuild).
                view.forget(starts_empty=tracked == 0)
            if tracked < after:
                # Reset behind this page (a rebuild): the next page starts lower.
                return tracked
            unseen = [event for event in events if event.position > tracked]
            if unseen:
                apply_page(view, cursor, unseen)
                tracked = unseen[-1].position
                save_tracking(cursor, view.name, tracked, view.version)
        return tracked

    def catch_up(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Run pages until every view has read the whole log; events read."""
        total = 0
        while True:
            read = self.run_once()
            if progress is not None and read:
                progress(min(self._running_positions(), default=0))
            total += read
            if read < self._page_size:
                self._make_indexes()
                return total

    def _running_positions(self) -> list[int]:
        return [position for name, position in self._known.items() if name not in self._failed]

    def _make_indexes(self) -> None:
        if not self._unindexed:
            return
        connection = self._work_connection()
        with connection.transaction(), connection.cursor() as cursor:
            for name in sorted(self._unindexed):
                self._views[name].create_indexes(cursor)
        self._unindexed.clear()

    def start(self) -> None:
        """Catch up, then keep up in a background thread until `stop`."""
        self._stopping.clear()
        # A new one each start: the last stop's wake-up stays in the old one.
        self._notification_wait = NotificationWait()
        self.prepare()
        self._thread = threading.Thread(target=self._loop, name="projection-runner", daemon=True)
        self._thread.start()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._notification_wait.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if not self._thread.is_alive():
                self._notification_wait.close()
            self._thread = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def run_forever(self) -> None:
        """The loop in the calling thread (for `ledger projections run`)."""
        self._stopping.clear()
        self._notification_wait = NotificationWait()
        self.prepare()
        self._loop()

    def _loop(self) -> None:
        listener: psycopg.Connection[Any] | None = None
        while not self._stopping.is_set():
            try:
                if listener is None or listener.closed:
                    listener = psycopg.connect(
                        self._database_url,
                        autocommit=True,
                        application_name=self._application_name,
                    )
                    listener.execute(
                        psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self._channel))
                    )
                self.catch_up()
                self._wait_for_notification(listener)
            except Exception as error:
                # The database went away, or a bug outside any one view: the
                # loop must outlive both (a dead thread would serve no view).
                log.warning("projection_runner_error", error=str(error), exc_info=error)
                if listener is not None:
                    listener.close()
                listener = None
                if self._connection is not None:
                    self._connection.close()
                self._stopping.wait(ERROR_PAUSE_S)
        if listener is not None:
            listener.close()

    def _wait_for_notification(self, listener: psycopg.Connection[Any]) -> None:
        """Return on a notification (all of those that arrived are consumed:
        they would only wake empty passes), after the poll interval, or at
        once on `stop`."""
        self._notification_wait.wait(listener, self._poll_interval_s)

    # Reading positions --------------------------------------------------------

    def positions(self) -> dict[str, int]:
        return dict(self._known)

    def failures(self) -> dict[str, ViewFailure]:
        """Views this runner has stopped on an event they cannot apply."""
        return dict(self._failed)

    def wait_for(self, position: int, names: Sequence[str], timeout_s: float) -> bool:
        """Block until every named view has reached `position`; False at the
        timeout, or at once when one of them has stopped short of it."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not all(self._known.get(name, 0) >= position for name in names):
                if any(name in self._failed for name in names):
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True
