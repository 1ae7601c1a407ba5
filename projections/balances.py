"""The balances view: each account's posted and pending totals, now and at
every position it changed, so a balance "as of" a time or position is one
index lookup into history rather than a replay.

Built from the accounts' `Opened` and `PostingsApplied` events (the totals
the writer checked limits against), not from transfers: the journal view
derives the same figures from the transfers, and the audit compares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from projections.events import (
    ACCOUNT_OPENED,
    ACCOUNT_POSTINGS_APPLIED,
    POSITION_MAX,
    LoggedEvent,
)
from projections.view import Cursor, copy_rows

NAME: Final[str] = "balances"
# Accounts remembered between pages; past this the memory is dropped and
# misses are read back from the table (memory stays flat however many accounts).
REMEMBERED_ACCOUNTS_MAX: Final[int] = 200_000

_TOTAL_COLUMNS: Final = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


@dataclass(frozen=True, slots=True)
class Balance:
    account_id: UUID
    currency: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    # The log position this balance is as of (the last change at or before it).
    position: int

    @property
    def posted(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.posted - self.debits_pending


class BalancesView:
    name = NAME
    version = 2
    tables: tuple[str, ...] = ("view_balances", "view_balance_history")

    def __init__(self) -> None:
        # account id -> [currency, debits_pending, debits_posted, credits_pending, credits_posted]
        self._accounts: dict[UUID, list[Any]] = {}
        self._complete = False

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_balances ("
            " account_id uuid PRIMARY KEY, currency text NOT NULL,"
            " debits_pending bigint NOT NULL, debits_posted bigint NOT NULL,"
            " credits_pending bigint NOT NULL, credits_posted bigint NOT NULL,"
            " position bigint NOT NULL)"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_balance_history ("
            " account_id uuid NOT NULL, position bigint NOT NULL,"
            " recorded_at timestamptz NOT NULL,"
            " debits_pending bigint NOT NULL, debits_posted bigint NOT NULL,"
            " credits_pending bigint NOT NULL, credits_posted bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        # The history's key: made after a replay has loaded it, not row by row.
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_balance_history_key_idx"
            " ON view_balance_history (account_id, position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_balance_history_time_idx "
            "ON view_balance_history (account_id, recorded_at)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._accounts = {}
        self._complete = starts_empty

    def digest_order(self, table: str) -> str:
        return "account_id, position" if table == "view_balance_history" else "account_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> _BalancesPage:
        # Only a view that can read back forgets: a replay from empty (no
        # cursor) keeps every account, memory growing with accounts, not events.
        if cursor is not None and len(self._accounts) > REMEMBERED_ACCOUNTS_MAX:
            self.forget(starts_empty=False)
        accounts = self._accounts
        self._remember(cursor, events)
        opened: dict[UUID, int] = {}
        changed: dict[UUID, int] = {}
        history: list[tuple[object, ...]] = []
        for event in events:
            topic = event.topic
            if topic == ACCOUNT_POSTINGS_APPLIED:
                data = event.data()
                totals = accounts[event.originator_id]
                totals[1] += data["debits_pending"]
                totals[2] += data["debits_posted"]
                totals[3] += data["credits_pending"]
                totals[4] += data["credits_posted"]
                history.append(
                    (event.originator_id, event.position, event.recorded_at, *totals[1:])
                )
                if event.originator_id not in opened:
                    changed[event.originator_id] = event.position
                else:
                    opened[event.originator_id] = event.position
            elif topic == ACCOUNT_OPENED:
                accounts[event.originator_id] = [event.data()["currency"], 0, 0, 0, 0]
                opened[event.originator_id] = event.position
        # Rows are copied out of memory now: memory moves on with the next page.
        return _BalancesPage(
            opened=[
                (account_id, *accounts[account_id], position)
                for account_id, position in opened.items()
            ],
            changed=[
                (account_id, *accounts[account_id][1:], position)
                for account_id, position in changed.items()
            ],
            history=history,
        )

    def _remember(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> None:
        """Read back the totals of accounts this page changes that memory lacks."""
        if self._complete:
            return
        if cursor is None:
            raise ValueError("only a view that replays from empty prepares without a cursor")
        missing = {
            event.originator_id
            for event in events
            if event.topic == ACCOUNT_POSTINGS_APPLIED and event.originator_id not in self._accounts
        }
        if not missing:
            return
        cursor.execute(
            "SELECT account_id, currency, debits_pending, debits_posted, credits_pending,"
            " credits_posted FROM view_balances WHERE account_id = ANY(%s)",
            (list(missing),),
        )
        for account_id, *totals in cursor.fetchall():
            self._accounts[account_id] = totals


@dataclass(frozen=True, slots=True)
class _BalancesPage:
    opened: list[tuple[Any, ...]]
    changed: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]

    def write(self, cursor: Cursor) -> None:
        copy_rows(
            cursor,
            "view_balances",
            ("account_id", "currency", *_TOTAL_COLUMNS, "position"),
            self.opened,
        )
        if self.changed:
            columns = list(zip(*self.changed, strict=True))
            cursor.execute(
                "UPDATE view_balances AS b SET debits_pending = v.dp, debits_posted = v.dq,"
                " credits_pending = v.cp, credits_posted = v.cq, position = v.p "
                "FROM unnest(%s::uuid[], %s::int8[], %s::int8[], %s::int8[], %s::int8[],"
                " %s::int8[]) AS v(id, dp, dq, cp, cq, p) WHERE b.account_id = v.id",
                [list(column) for column in columns],
            )
        copy_rows(
            cursor,
            "view_balance_history",
            ("account_id", "position", "recorded_at", *_TOTAL_COLUMNS),
            self.history,
        )


# Queries ---------------------------------------------------------------------

_SELECT_AT_POSITION: Final = (
    "SELECT h.debits_pending, h.debits_posted, h.credits_pending, h.credits_posted, h.position"
    " FROM view_balance_history AS h WHERE h.account_id = %s AND h.position <= %s"
    " ORDER BY h.position DESC LIMIT 1"
)
_SELECT_AT_TIME: Final = (
    "SELECT h.debits_pending, h.debits_posted, h.credits_pending, h.credits_posted, h.position"
    " FROM view_balance_history AS h WHERE h.account_id = %s AND h.recorded_at <= %s"
    " ORDER BY h.recorded_at DESC, h.position DESC LIMIT 1"
)


def balance_as_of(
    cursor: Cursor,
    account_id: UUID,
    currency: str,
    *,
    position: int | None = None,
    at: datetime | None = None,
) -> Balance:
    """The account's totals after every change up to `position` (or recorded
    by time `at`); all zero before its first change. Without either: now."""
    if position is not None and at is not None:
        raise ValueError("give position or at, not both")
    if position is None and at is None:
        cursor.execute(_SELECT_AT_POSITION, (account_id, POSITION_MAX))
    elif position is not None:
        cursor.execute(_SELECT_AT_POSITION, (account_id, position))
    else:
        cursor.execute(_SELECT_AT_TIME, (account_id, at))
    row = cursor.fetchone()
    if row is None:
        return Balance(account_id, currency, 0, 0, 0, 0, 0)
    return Balance(account_id, currency, *row)
