"""Accounts as the API shows them: the directory entry joined with its balance.

Both come from views (projections), read in one query; the caller waits for
the views to reach the position it needs first (interface/api/consistency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    cursor: Cursor, *, owner_id: str | None, after_position: int, limit: int
) -> list[AccountSummary]:
    """Accounts opened after `after_position`, in opening order, at most `limit`."""
    if owner_id is None:
        cursor.execute(
            f"{_SELECT} WHERE a.position > %s ORDER BY a.position LIMIT %s",
            (after_position, limit),
        )
    else:
        cursor.execute(
            f"{_SELECT} WHERE a.owner_id = %s AND a.position > %s ORDER BY a.position LIMIT %s",
            (owner_id, after_position, limit),
        )
    return [_summary(row) for row in cursor.fetchall()]
