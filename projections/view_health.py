"""Where each view stands: its position, how far behind the log, and whether
it has stopped on an event it could not apply.

A view that cannot apply an event (a handler's bug, a value its tables
refuse) stops at the event before and says so in its tracking row: the
event's position, the reason, and when. The other views go on. The row is
cleared when the view moves past that position: a runner started with a
fixed handler applies it, or a rebuild replaces the view. `/readyz`,
`ledger projections status`, the `ledger_projection_failed` series and
reads that need the view (503 `projection_failed`) all read it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from projections.view import Cursor

# A failure's reason as stored: enough for an exception's message and the
# value it quotes, never a whole page of data.
FAILURE_REASON_LENGTH_MAX: Final[int] = 1_000


@dataclass(frozen=True)
class ViewFailure:
    # The event the view could not apply; it stays at the position before.
    position: int
    reason: str
    failed_at: datetime


@dataclass(frozen=True)
class ViewState:
    name: str
    position: int
    # Both None for a view no runner has made yet (position 0).
    version: int | None
    updated_at: datetime | None
    # Events in the log after the view's position.
    lag_events: int
    # Seconds since the first event the view has not applied was recorded;
    # 0 when it has applied them all.
    lag_s: float
    failure: ViewFailure | None


def failure_reason(error: BaseException) -> str:
    """The error as text a text column holds: NUL and lone surrogates spelt
    out, cut to `FAILURE_REASON_LENGTH_MAX` characters."""
    text = f"{type(error).__name__}: {error}"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
    return text[:FAILURE_REASON_LENGTH_MAX]


def record_failure(cursor: Cursor, name: str, position: int, reason: str) -> datetime:
    """Mark the view stopped on the event at `position` (caller's transaction);
    when it was marked."""
    cursor.execute(
        "UPDATE projection_tracking SET failed_position = %s, failure = %s,"
        " failed_at = now() WHERE name = %s RETURNING failed_at",
        (position, reason, name),
    )
    row = cursor.fetchone()
    if row is None:
        raise LookupError(f"projection {name!r} has no tracking row")
    failed_at: datetime = row[0]
    return failed_at


def failed_views(cursor: Cursor, names: Sequence[str] | None = None) -> dict[str, ViewFailure]:
    """The named views (every view when None) that have stopped, by name."""
    cursor.execute(
        "SELECT name, failed_position, failure, failed_at FROM projection_tracking"
        " WHERE failed_position IS NOT NULL AND (%(names)s::text[] IS NULL"
        " OR name = ANY(%(names)s::text[]))",
        {"names": None if names is None else list(names)},
    )
    return {
        name: ViewFailure(int(position), reason, failed_at)
        for name, position, reason, failed_at in cursor.fetchall()
    }


# One probe of the log's primary key per view: the first event it lacks.
_SELECT_STATES: Final = """
SELECT wanted.name, coalesce(t.position, 0), t.version, t.updated_at,
    greatest(head.position - coalesce(t.position, 0), 0) AS lag_events,
    coalesce(extract(epoch FROM clock_timestamp() - (
        SELECT e.recorded_at FROM ledger_events AS e
        WHERE e.notification_id > coalesce(t.position, 0)
        ORDER BY e.notification_id LIMIT 1
    )), 0)::float8 AS lag_s,
    t.failed_position, t.failure, t.failed_at
FROM unnest(%s::text[]) AS wanted(name)
    LEFT JOIN projection_tracking AS t ON t.name = wanted.name,
    (SELECT coalesce(max(notification_id), 0) AS position FROM ledger_events) AS head
ORDER BY wanted.name
"""


def view_states(cursor: Cursor, names: Sequence[str]) -> dict[str, ViewState]:
    """The named views' states, by name; a view no runner has made yet is
    at position 0, as far behind as the whole log."""
    cursor.execute(_SELECT_STATES, (list(names),))
    states: dict[str, ViewState] = {}
    for row in cursor.fetchall():
        name, position, version, updated_at, lag_events, lag_s = row[:6]
        failed_position, reason, failed_at = row[6:]
        failure = (
            None
            if failed_position is None
            else ViewFailure(int(failed_position), reason or "", failed_at)
        )
        states[name] = ViewState(
            name=name,
            position=int(position),
            version=None if version is None else int(version),
            updated_at=updated_at,
            lag_events=int(lag_events),
            lag_s=max(float(lag_s), 0.0),
            failure=failure,
        )
    return states
