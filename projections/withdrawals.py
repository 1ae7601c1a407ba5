"""The withdrawals view: one row per withdrawal, as its events left it.

What it answers: an account's withdrawals (`GET /v1/funded-accounts/{id}/
withdrawals`), the admins' queue by status (`GET /v1/admin/withdrawals`), one
withdrawal, and the payout worker's due work (approved, not waiting for a
person, its next attempt due).

Each handler sets what the aggregate's handler of the same event sets
(domain/withdrawal.py); a test holds the two equal over generated histories.
Rows are keyed by the withdrawal id and ordered for lists by the log position
of the request, so pages never skip or repeat while withdrawals come in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from domain.withdrawal import WithdrawalStatus
from projections.aggregate_rows import AggregateRows, RowsPage
from projections.events import (
    WITHDRAWAL_LATER_TOPICS,
    WITHDRAWAL_REQUESTED,
    LoggedEvent,
    parse_time,
)
from projections.view import Cursor

NAME: Final[str] = "withdrawals"
# Withdrawals remembered between pages; past this memory is dropped and
# misses are read back from the table.
REMEMBERED_WITHDRAWALS_MAX: Final[int] = 100_000

_COLUMNS: Final = (
    "withdrawal_id",
    "requested_log_position",
    "funded_account_id",
    "owner_id",
    "ledger_account_id",
    "hold_transfer_id",
    "amount_minor",
    "currency",
    "status",
    "approval_required",
    "requested_at",
    "requested_by",
    "approved_at",
    "approved_by",
    "decided_automatically",
    "rejected_reason",
    "payout_id",
    "payout_gateway",
    "payout_failed_attempts",
    "last_payout_error",
    "next_payout_attempt_at",
    "needs_attention",
    "failure_code",
    "failure_message",
    "settled_at",
    "settled_by",
    "updated_at",
    "position",
)


@dataclass(slots=True)
class WithdrawalRow:
    """A `view_withdrawals` row; its fields are `_COLUMNS`, in order."""

    withdrawal_id: UUID
    requested_log_position: int
    funded_account_id: UUID
    owner_id: str
    ledger_account_id: UUID
    hold_transfer_id: UUID
    amount_minor: int
    currency: str
    status: str
    approval_required: bool
    requested_at: datetime
    requested_by: str
    approved_at: datetime | None
    approved_by: str | None
    decided_automatically: bool
    rejected_reason: str | None
    payout_id: str | None
    payout_gateway: str | None
    payout_failed_attempts: int
    last_payout_error: str | None
    next_payout_attempt_at: datetime | None
    needs_attention: bool
    failure_code: str | None
    failure_message: str | None
    settled_at: datetime | None
    settled_by: str | None
    updated_at: datetime
    position: int

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _COLUMNS)


def _requested(event: LoggedEvent) -> WithdrawalRow:
    data = event.data()
    requested_at = parse_time(data["requested_at"])
    assert requested_at is not None
    return WithdrawalRow(
        withdrawal_id=event.originator_id,
        requested_log_position=event.position,
        funded_account_id=UUID(data["funded_account_id"]),
        owner_id=data["owner_id"],
        ledger_account_id=UUID(data["ledger_account_id"]),
        hold_transfer_id=UUID(data["hold_transfer_id"]),
        amount_minor=data["amount_minor"],
        currency=data["currency"],
        status=WithdrawalStatus.PENDING.value,
        approval_required=data["approval_required"],
        requested_at=requested_at,
        requested_by=data["actor"],
        approved_at=None,
        approved_by=None,
        decided_automatically=False,
        rejected_reason=None,
        payout_id=None,
        payout_gateway=None,
        payout_failed_attempts=0,
        last_payout_error=None,
        next_payout_attempt_at=None,
        needs_attention=False,
        failure_code=None,
        failure_message=None,
        settled_at=None,
        settled_by=None,
        updated_at=requested_at,
        position=event.position,
    )


def _settle(row: WithdrawalRow, status: WithdrawalStatus, at: datetime | None, actor: str) -> None:
    row.status = status.value
    row.settled_at = at
    row.settled_by = actor
    row.next_payout_attempt_at = None
    row.needs_attention = False


def _apply(row: WithdrawalRow, event: LoggedEvent) -> None:
    """One later event onto the row, as the aggregate's handler applies it."""
    data = event.data()
    name = event.topic.rsplit(".", 1)[-1]
    at = parse_time(data["at"])
    if name == "Approved":
        row.status = WithdrawalStatus.APPROVED.value
        row.approved_at = at
        row.approved_by = data["actor"]
        row.decided_automatically = data["automatic"]
        row.next_payout_attempt_at = at
    elif name == "Rejected":
        row.rejected_reason = data["reason"]
        _settle(row, WithdrawalStatus.REJECTED, at, data["actor"])
    elif name == "PayoutAttemptFailed":
        row.payout_failed_attempts = data["attempt"]
        row.last_payout_error = data["error"]
        row.next_payout_attempt_at = parse_time(data["next_attempt_at"])
        row.needs_attention = data["needs_attention"]
    elif name == "PayoutRetriesResumed":
        row.needs_attention = False
        row.next_payout_attempt_at = at
        row.payout_failed_attempts = 0
    elif name == "PaidOut":
        row.status = WithdrawalStatus.PAID_OUT.value
        row.payout_id = data["payout_id"]
        row.payout_gateway = data["gateway"]
        row.next_payout_attempt_at = None
        row.needs_attention = False
    elif name == "Completed":
        row.payout_id = data["payout_id"]
        _settle(row, WithdrawalStatus.COMPLETED, at, data["actor"])
    elif name == "Failed":
        row.failure_code = data["code"]
        row.failure_message = data["message"]
        row.payout_id = data["payout_id"]
        _settle(row, WithdrawalStatus.FAILED, at, data["actor"])
    else:
        raise ValueError(f"the withdrawals view has no handler for {event.topic}")
    assert at is not None
    row.updated_at = at
    row.position = event.position


class WithdrawalsView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = ("view_withdrawals",)

    def __init__(self) -> None:
        self._rows = AggregateRows(
            table="view_withdrawals",
            columns=_COLUMNS,
            first_topic=WITHDRAWAL_REQUESTED,
            later_topics=WITHDRAWAL_LATER_TOPICS,
            created=_requested,
            apply=_apply,
            from_columns=WithdrawalRow,
            remembered_max=REMEMBERED_WITHDRAWALS_MAX,
        )

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_withdrawals ("
            " withdrawal_id uuid PRIMARY KEY, requested_log_position bigint NOT NULL,"
            " funded_account_id uuid NOT NULL, owner_id text NOT NULL,"
            " ledger_account_id uuid NOT NULL, hold_transfer_id uuid NOT NULL,"
            " amount_minor bigint NOT NULL, currency text NOT NULL, status text NOT NULL,"
            " approval_required boolean NOT NULL, requested_at timestamptz NOT NULL,"
            " requested_by text NOT NULL, approved_at timestamptz, approved_by text,"
            " decided_automatically boolean NOT NULL, rejected_reason text, payout_id text,"
            " payout_gateway text, payout_failed_attempts integer NOT NULL,"
            " last_payout_error text, next_payout_attempt_at timestamptz,"
            " needs_attention boolean NOT NULL, failure_code text, failure_message text,"
            " settled_at timestamptz, settled_by text, updated_at timestamptz NOT NULL,"
            " position bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_withdrawals_requested_idx"
            " ON view_withdrawals (requested_log_position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_withdrawals_account_idx"
            " ON view_withdrawals (funded_account_id, requested_log_position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_withdrawals_status_idx"
            " ON view_withdrawals (status, requested_log_position)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._rows.forget(starts_empty=starts_empty)

    def digest_order(self, table: str) -> str:
        return "withdrawal_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> RowsPage:
        return self._rows.prepare(cursor, events)


# Queries ---------------------------------------------------------------------

_SELECT: Final[str] = f"SELECT {', '.join(_COLUMNS)} FROM view_withdrawals"  # noqa: S608


def withdrawal_row(cursor: Cursor, withdrawal_id: UUID) -> WithdrawalRow | None:
    cursor.execute(f"{_SELECT} WHERE withdrawal_id = %s", (withdrawal_id,))
    found = cursor.fetchone()
    return None if found is None else WithdrawalRow(*found)


def withdrawal_page(
    cursor: Cursor,
    *,
    funded_account_id: UUID | None = None,
    owner_id: str | None = None,
    status: WithdrawalStatus | None = None,
    needs_attention: bool | None = None,
    requested_from: datetime | None = None,
    requested_to: datetime | None = None,
    after_position: int = 0,
    limit: int,
) -> list[WithdrawalRow]:
    """Withdrawals in the order they were requested, after a log position;
    of one account, one owner, one status, requested in [requested_from,
    requested_to), as asked."""
    conditions = ["requested_log_position > %s"]
    parameters: list[Any] = [after_position]
    if funded_account_id is not None:
        conditions.append("funded_account_id = %s")
        parameters.append(funded_account_id)
    if owner_id is not None:
        conditions.append("owner_id = %s")
        parameters.append(owner_id)
    if requested_from is not None:
        conditions.append("requested_at >= %s")
        parameters.append(requested_from)
    if requested_to is not None:
        conditions.append("requested_at < %s")
        parameters.append(requested_to)
    if status is not None:
        conditions.append("status = %s")
        parameters.append(status.value)
    if needs_attention is not None:
        conditions.append("needs_attention = %s")
        parameters.append(needs_attention)
    parameters.append(limit)
    cursor.execute(
        f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY requested_log_position LIMIT %s",
        parameters,
    )
    return [WithdrawalRow(*found) for found in cursor.fetchall()]


def payouts_due(cursor: Cursor, now: datetime, limit: int) -> list[UUID]:
    """Approved withdrawals whose next payout attempt is due, oldest first."""
    cursor.execute(
        "SELECT withdrawal_id FROM view_withdrawals"
        " WHERE status = %s AND NOT needs_attention"
        " AND (next_payout_attempt_at IS NULL OR next_payout_attempt_at <= %s)"
        " ORDER BY requested_log_position LIMIT %s",
        (WithdrawalStatus.APPROVED.value, now, limit),
    )
    return [found[0] for found in cursor.fetchall()]
