"""The closures view: one row per account closure, as its events left it.

What it answers: the operators' list (`GET /v1/closures?status=stuck`,
`ledger closures find-stuck`) and the closure worker's due work. One closure's
full progress (its tranches, its phase history) is read from the aggregate
itself, which is always current.

Each handler sets what the aggregate's handler of the same event sets
(domain/closure.py); a test holds the two equal over generated histories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from domain.closure import INITIATION_TIMEOUT, ClosurePhase, TrancheStatus
from projections.aggregate_rows import AggregateRows, RowsPage
from projections.events import CLOSURE_INITIATED, CLOSURE_LATER_TOPICS, LoggedEvent, parse_time
from projections.view import Cursor

NAME: Final[str] = "closures"
REMEMBERED_CLOSURES_MAX: Final[int] = 100_000

_COLUMNS: Final = (
    "closure_id",
    "initiated_log_position",
    "funded_account_id",
    "owner_id",
    "confirmation_number",
    "phase",
    "stuck",
    "stuck_reason",
    "next_action_at",
    "deadline_at",
    "failed_attempts",
    "last_error",
    "tranches_completed",
    "tranche_in_flight_minor",
    "next_tranche_not_before",
    "total_paid_minor",
    "initiated_at",
    "completed_at",
    "updated_at",
    "position",
)


@dataclass(slots=True)
class ClosureRow:
    closure_id: UUID
    initiated_log_position: int
    funded_account_id: UUID
    owner_id: str
    confirmation_number: str
    phase: str
    stuck: bool
    stuck_reason: str | None
    next_action_at: datetime | None
    deadline_at: datetime | None
    failed_attempts: int
    last_error: str | None
    tranches_completed: int
    tranche_in_flight_minor: int | None
    next_tranche_not_before: datetime | None
    total_paid_minor: int
    initiated_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    position: int

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _COLUMNS)


def _initiated(event: LoggedEvent) -> ClosureRow:
    data = event.data()
    at = parse_time(data["at"])
    assert at is not None
    return ClosureRow(
        closure_id=event.originator_id,
        initiated_log_position=event.position,
        funded_account_id=UUID(data["funded_account_id"]),
        owner_id=data["owner_id"],
        confirmation_number=data["confirmation_number"],
        phase=ClosurePhase.INITIATED.value,
        stuck=False,
        stuck_reason=None,
        next_action_at=at,
        deadline_at=at + INITIATION_TIMEOUT,
        failed_attempts=0,
        last_error=None,
        tranches_completed=0,
        tranche_in_flight_minor=None,
        next_tranche_not_before=None,
        total_paid_minor=0,
        initiated_at=at,
        completed_at=None,
        updated_at=at,
        position=event.position,
    )


def _apply(row: ClosureRow, event: LoggedEvent) -> None:
    data = event.data()
    name = event.topic.rsplit(".", 1)[-1]
    at = parse_time(data["at"])
    assert at is not None
    if name == "PhaseEntered":
        _phase_entered(row, data, at)
    elif name == "Waiting":
        row.next_action_at = parse_time(data["until"])
    elif name == "AttemptFailed":
        row.failed_attempts = data["attempt"]
        row.last_error = data["error"]
        row.next_action_at = parse_time(data["retry_at"])
    elif name == "MarkedStuck":
        row.stuck = True
        row.stuck_reason = data["reason"]
        row.next_action_at = None
    elif name == "Resumed":
        row.stuck = False
        row.stuck_reason = None
        row.failed_attempts = 0
        row.next_action_at = at
        row.deadline_at = parse_time(data["deadline_at"])
    elif name == "TrancheRequested":
        row.tranche_in_flight_minor = data["amount_minor"]
        row.next_tranche_not_before = parse_time(data["next_tranche_not_before"])
        row.next_action_at = at
        row.failed_attempts = 0
    elif name == "TrancheSettled":
        _tranche_settled(row, data, at)
    elif name == "ClosedOut":
        row.next_action_at = at
    elif name != "EmailSent":
        raise ValueError(f"the closures view has no handler for {event.topic}")
    row.updated_at = at
    row.position = event.position


def _phase_entered(row: ClosureRow, data: dict[str, Any], at: datetime) -> None:
    row.phase = data["phase"]
    row.deadline_at = parse_time(data["deadline_at"])
    completed = data["phase"] == ClosurePhase.COMPLETED
    row.next_action_at = None if completed else parse_time(data["next_action_at"])
    row.failed_attempts = 0
    row.last_error = None
    if completed:
        row.completed_at = at


def _tranche_settled(row: ClosureRow, data: dict[str, Any], at: datetime) -> None:
    amount = row.tranche_in_flight_minor or 0
    row.tranche_in_flight_minor = None
    if data["status"] == TrancheStatus.COMPLETED:
        row.tranches_completed += 1
        row.total_paid_minor += amount
        row.next_action_at = at
        row.failed_attempts = 0
    else:
        row.failed_attempts += 1
        row.last_error = data["error"]
        retry_at = parse_time(data["retry_at"])
        row.next_tranche_not_before = retry_at
        row.next_action_at = retry_at


class ClosuresView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = ("view_closures",)

    def __init__(self) -> None:
        self._rows = AggregateRows(
            table="view_closures",
            columns=_COLUMNS,
            first_topic=CLOSURE_INITIATED,
            later_topics=CLOSURE_LATER_TOPICS,
            created=_initiated,
            apply=_apply,
            from_columns=ClosureRow,
            remembered_max=REMEMBERED_CLOSURES_MAX,
        )

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_closures ("
            " closure_id uuid PRIMARY KEY, initiated_log_position bigint NOT NULL,"
            " funded_account_id uuid NOT NULL, owner_id text NOT NULL,"
            " confirmation_number text NOT NULL, phase text NOT NULL, stuck boolean NOT NULL,"
            " stuck_reason text, next_action_at timestamptz, deadline_at timestamptz,"
            " failed_attempts integer NOT NULL, last_error text,"
            " tranches_completed integer NOT NULL, tranche_in_flight_minor bigint,"
            " next_tranche_not_before timestamptz, total_paid_minor bigint NOT NULL,"
            " initiated_at timestamptz NOT NULL, completed_at timestamptz,"
            " updated_at timestamptz NOT NULL, position bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_closures_initiated_idx"
            " ON view_closures (initiated_log_position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_closures_due_idx"
            " ON view_closures (next_action_at) WHERE phase <> 'completed' AND NOT stuck"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._rows.forget(starts_empty=starts_empty)

    def digest_order(self, table: str) -> str:
        return "closure_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> RowsPage:
        return self._rows.prepare(cursor, events)


# Queries ---------------------------------------------------------------------

_SELECT: Final[str] = f"SELECT {', '.join(_COLUMNS)} FROM view_closures"  # noqa: S608


def closures_due(cursor: Cursor, now: datetime, limit: int) -> list[UUID]:
    """Closures with work due now, the longest waiting first."""
    cursor.execute(
        "SELECT closure_id FROM view_closures"
        " WHERE phase <> 'completed' AND NOT stuck AND next_action_at <= %s"
        " ORDER BY next_action_at LIMIT %s",
        (now, limit),
    )
    return [found[0] for found in cursor.fetchall()]


def stuck_closures(
    cursor: Cursor, now: datetime, overdue_after: timedelta, after_position: int, limit: int
) -> list[ClosureRow]:
    """Closures that need a person: marked stuck, or whose work has been due
    for longer than `overdue_after` (no worker has run them)."""
    return closure_list(
        cursor,
        status="stuck",
        owner_id=None,
        now=now,
        overdue_after=overdue_after,
        after_position=after_position,
        limit=limit,
    )


def closure_list(
    cursor: Cursor,
    *,
    status: str | None,
    owner_id: str | None,
    now: datetime,
    overdue_after: timedelta,
    funded_account_id: UUID | None = None,
    initiated_from: datetime | None = None,
    initiated_to: datetime | None = None,
    after_position: int,
    limit: int,
) -> list[ClosureRow]:
    """Closures in the order they were initiated, after a log position:
    `stuck` (marked stuck, or work overdue by `overdue_after`), `active`
    (not completed), `completed`, or all; of one owner, or everyone's; of one
    funded account; initiated in [initiated_from, initiated_to)."""
    conditions: list[str] = ["initiated_log_position > %s"]
    parameters: list[Any] = [after_position]
    if status == "stuck":
        conditions.append("phase <> 'completed' AND (stuck OR next_action_at < %s)")
        parameters.append(now - overdue_after)
    elif status == "active":
        conditions.append("phase <> 'completed'")
    elif status == "completed":
        conditions.append("phase = 'completed'")
    if owner_id is not None:
        conditions.append("owner_id = %s")
        parameters.append(owner_id)
    if funded_account_id is not None:
        conditions.append("funded_account_id = %s")
        parameters.append(funded_account_id)
    if initiated_from is not None:
        conditions.append("initiated_at >= %s")
        parameters.append(initiated_from)
    if initiated_to is not None:
        conditions.append("initiated_at < %s")
        parameters.append(initiated_to)
    cursor.execute(
        f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY initiated_log_position LIMIT %s",
        [*parameters, limit],
    )
    return [ClosureRow(*found) for found in cursor.fetchall()]
