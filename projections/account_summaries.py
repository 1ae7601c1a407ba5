"""Accounts as the API shows them: the directory entry joined with its balance.

Both come from views (projections), read in one query; the caller waits for
the views to reach the position it needs first (interface/api/consistency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from projections.accounts_directory import NAME as DIRECTORY_VIEW
from projections.accounts_directory import DirectoryEntry
from projections.balances import NAME as BALANCES_VIEW
from projections.balances import Balance
from projections.view import Cursor

# The views an account summary reads.
SUMMARY_VIEWS: Final[tuple[str, ...]] = (DIRECTORY_VIEW, BALANCES_VIEW)

_SELECT: Final = (
    "SELECT a.account_id, a.position, a.owner_id, a.kind, a.state, a.currency,"
    " a.parent_account_id, a.debits_must_not_exceed_credits,"
    " a.credits_must_not_exceed_debits, a.metadata, a.opened_at, a.state_reason, a.version,"
    " b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted, b.position"
    " FROM view_accounts AS a JOIN view_balances AS b ON b.account_id = a.account_id"
)
_DIRECTORY_COLUMNS: Final[int] = 13


@dataclass(frozen=True, slots=True)
class AccountSummary:
    entry: DirectoryEntry
    balance: Balance


def _summary(row: Sequence[Any]) -> AccountSummary:
    entry = DirectoryEntry(*row[:_DIRECTORY_COLUMNS])
    balance = Balance(entry.account_id, entry.currency, *row[_DIRECTORY_COLUMNS:])
    return AccountSummary(entry, balance)


def account_summaries(cursor: Cursor, account_ids: Sequence[UUID]) -> dict[UUID, AccountSummary]:
    cursor.execute(f"{_SELECT} WHERE a.account_id = ANY(%s)", (list(account_ids),))
    return {row[0]: _summary(row) for row in cursor.fetchall()}


def account_summary_page(
    cursor: Cursor,
    *,
    owner_id: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    currency: str | None = None,
    opened_from: datetime | None = None,
    opened_to: datetime | None = None,
    after_position: int,
    limit: int,
) -> list[AccountSummary]:
    """Accounts opened after `after_position`, in opening order, at most
    `limit`: of one owner, kind, state and currency when given, opened in
    [opened_from, opened_to)."""
    conditions = ["a.position > %s"]
    parameters: list[Any] = [after_position]
    for column, value in (
        ("a.owner_id", owner_id),
        ("a.kind", kind),
        ("a.state", state),
        ("a.currency", currency),
    ):
        if value is not None:
            conditions.append(f"{column} = %s")
            parameters.append(value)
    if opened_from is not None:
        conditions.append("a.opened_at >= %s")
        parameters.append(opened_from)
    if opened_to is not None:
        conditions.append("a.opened_at < %s")
        parameters.append(opened_to)
    cursor.execute(
        f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY a.position LIMIT %s",
        [*parameters, limit],
    )
    return [_summary(row) for row in cursor.fetchall()]
