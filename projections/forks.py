"""The forks view: one row per fork, as its events left it (domain/fork.py).

What it answers: how many forks are executing now (the limit of 5 is checked
against it), a fork's status, and the operators' list. Each handler sets what
the aggregate's handler of the same event sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from domain.fork import ForkStatus
from projections.aggregate_rows import AggregateRows, RowsPage
from projections.events import FORK_LATER_TOPICS, FORK_PROPOSED, LoggedEvent, parse_time
from projections.view import Cursor

NAME: Final[str] = "forks"
REMEMBERED_FORKS_MAX: Final[int] = 100_000

_COLUMNS: Final = (
    "fork_id",
    "proposed_log_position",
    "parent_id",
    "parent_tier",
    "child_tier",
    "amount_minor",
    "status",
    "confidence",
    "approved_automatically",
    "child_id",
    "rollback_reason",
    "proposed_at",
    "updated_at",
    "position",
)


@dataclass(slots=True)
class ForkRow:
    fork_id: UUID
    proposed_log_position: int
    parent_id: UUID
    parent_tier: str
    child_tier: str
    amount_minor: int
    status: str
    confidence: str
    approved_automatically: bool
    child_id: UUID | None
    rollback_reason: str | None
    proposed_at: datetime
    updated_at: datetime
    position: int

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _COLUMNS)


def _proposed(event: LoggedEvent) -> ForkRow:
    data = event.data()
    at = parse_time(data["at"])
    assert at is not None
    return ForkRow(
        fork_id=event.originator_id,
        proposed_log_position=event.position,
        parent_id=UUID(data["parent_id"]),
        parent_tier=data["parent_tier"],
        child_tier=data["child_tier"],
        amount_minor=data["amount_minor"],
        status=ForkStatus.PROPOSED.value,
        confidence=data["confidence"],
        approved_automatically=False,
        child_id=None,
        rollback_reason=None,
        proposed_at=at,
        updated_at=at,
        position=event.position,
    )


def _apply(row: ForkRow, event: LoggedEvent) -> None:
    data = event.data()
    name = event.topic.rsplit(".", 1)[-1]
    at = parse_time(data["at"])
    assert at is not None
    if name == "Approved":
        row.status = ForkStatus.APPROVED.value
        row.approved_automatically = data["automatic"]
    elif name == "Executing":
        row.status = ForkStatus.EXECUTING.value
    elif name == "Completed":
        row.status = ForkStatus.COMPLETED.value
        row.child_id = UUID(data["child_id"])
    elif name == "RolledBack":
        row.status = ForkStatus.ROLLED_BACK.value
        row.rollback_reason = data["reason"]
    else:
        raise ValueError(f"the forks view has no handler for {event.topic}")
    row.updated_at = at
    row.position = event.position


class ForksView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = ("view_forks",)

    def __init__(self) -> None:
        self._rows = AggregateRows(
            table="view_forks",
            columns=_COLUMNS,
            first_topic=FORK_PROPOSED,
            later_topics=FORK_LATER_TOPICS,
            created=_proposed,
            apply=_apply,
            from_columns=ForkRow,
            remembered_max=REMEMBERED_FORKS_MAX,
        )

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_forks ("
            " fork_id uuid PRIMARY KEY, proposed_log_position bigint NOT NULL,"
            " parent_id uuid NOT NULL, parent_tier text NOT NULL, child_tier text NOT NULL,"
            " amount_minor bigint NOT NULL, status text NOT NULL, confidence text NOT NULL,"
            " approved_automatically boolean NOT NULL, child_id uuid, rollback_reason text,"
            " proposed_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,"
            " position bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_forks_proposed_idx"
            " ON view_forks (proposed_log_position)"
        )
        cursor.execute("CREATE INDEX IF NOT EXISTS view_forks_status_idx ON view_forks (status)")

    def forget(self, *, starts_empty: bool) -> None:
        self._rows.forget(starts_empty=starts_empty)

    def digest_order(self, table: str) -> str:
        return "fork_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> RowsPage:
        return self._rows.prepare(cursor, events)


# Queries ---------------------------------------------------------------------

_SELECT: Final[str] = f"SELECT {', '.join(_COLUMNS)} FROM view_forks"  # noqa: S608


def forks_executing(cursor: Cursor) -> int:
    cursor.execute(
        "SELECT count(*) FROM view_forks WHERE status = %s", (ForkStatus.EXECUTING.value,)
    )
    found = cursor.fetchone()
    return int(found[0]) if found else 0


def fork_page(
    cursor: Cursor,
    *,
    status: ForkStatus | None,
    parent_id: UUID | None = None,
    owner_id: str | None = None,
    proposed_from: datetime | None = None,
    proposed_to: datetime | None = None,
    after_position: int,
    limit: int,
) -> list[ForkRow]:
    """Forks in the order they were proposed, after a log position: in one
    status, of one parent funded account, of one owner's accounts (from the
    funded accounts view), proposed in [proposed_from, proposed_to)."""
    conditions: list[str] = ["proposed_log_position > %s"]
    parameters: list[Any] = [after_position]
    if status is not None:
        conditions.append("status = %s")
        parameters.append(status.value)
    if parent_id is not None:
        conditions.append("parent_id = %s")
        parameters.append(parent_id)
    if owner_id is not None:
        conditions.append(
            "parent_id IN (SELECT funded_account_id FROM view_funded_accounts WHERE owner_id = %s)"
        )
        parameters.append(owner_id)
    if proposed_from is not None:
        conditions.append("proposed_at >= %s")
        parameters.append(proposed_from)
    if proposed_to is not None:
        conditions.append("proposed_at < %s")
        parameters.append(proposed_to)
    cursor.execute(
        f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY proposed_log_position LIMIT %s",
        [*parameters, limit],
    )
    return [ForkRow(*found) for found in cursor.fetchall()]
