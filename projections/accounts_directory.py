"""The accounts directory: who owns each account, what kind it is, its state,
currency, flags and parent, in the order accounts were opened.

`parent_account_id` is read from an `Opened` event that carries one; the
hierarchy (forks and merges) will set it. Subtrees are a recursive query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from projections.events import (
    ACCOUNT_OPENED,
    ACCOUNT_POSTINGS_APPLIED,
    ACCOUNT_STATE_CHANGED,
    LoggedEvent,
    parse_time,
)
from projections.view import Cursor, copy_rows

NAME: Final[str] = "accounts_directory"
# Depth at which a subtree query stops, whatever the data says (a cycle
# cannot happen through the domain, but a query must not run forever).
SUBTREE_DEPTH_MAX: Final[int] = 64

_COLUMNS: Final = (
    "account_id",
    "position",
    "owner_id",
    "kind",
    "state",
    "currency",
    "parent_account_id",
    "debits_must_not_exceed_credits",
    "credits_must_not_exceed_debits",
    "metadata",
    "opened_at",
    "state_reason",
    "version",
)


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    account_id: UUID
    position: int
    owner_id: str
    kind: str
    state: str
    currency: str
    parent_account_id: UUID | None
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    metadata: dict[str, str]
    opened_at: datetime
    state_reason: str
    # The account aggregate's version: every account event counts.
    version: int


class AccountsDirectoryView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = ("view_accounts",)

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_accounts ("
            " account_id uuid PRIMARY KEY, position bigint NOT NULL, owner_id text NOT NULL,"
            " kind text NOT NULL, state text NOT NULL, currency text NOT NULL,"
            " parent_account_id uuid, debits_must_not_exceed_credits boolean NOT NULL,"
            " credits_must_not_exceed_debits boolean NOT NULL, metadata jsonb NOT NULL,"
            " opened_at timestamptz NOT NULL, state_reason text NOT NULL,"
            " version bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_accounts_position_idx"
            " ON view_accounts (position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_accounts_owner_idx"
            " ON view_accounts (owner_id, position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_accounts_parent_idx"
            " ON view_accounts (parent_account_id)"
            " WHERE parent_account_id IS NOT NULL"
        )

    def forget(self, *, starts_empty: bool) -> None:
        """Remembers nothing between pages."""

    def digest_order(self, table: str) -> str:
        return "account_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> _DirectoryPage:
        opened: dict[UUID, list[Any]] = {}
        # account id -> (state, reason) or None, and its latest version
        states: dict[UUID, tuple[str, str]] = {}
        versions: dict[UUID, int] = {}
        for event in events:
            topic = event.topic
            account_id = event.originator_id
            if topic == ACCOUNT_OPENED:
                data = event.data()
                parent = data.get("parent_account_id")
                opened[account_id] = [
                    account_id,
                    event.position,
                    data["owner_id"],
                    data["kind"],
                    "active",
                    data["currency"],
                    UUID(parent) if parent else None,
                    data["debits_must_not_exceed_credits"],
                    data["credits_must_not_exceed_debits"],
                    orjson.dumps(data["metadata"]).decode(),
                    parse_time(data["opened_at"]),
                    "",
                    event.originator_version,
                ]
            elif topic == ACCOUNT_STATE_CHANGED:
                data = event.data()
                if account_id in opened:
                    opened[account_id][4] = data["to_state"]
                    opened[account_id][11] = data["reason"]
                else:
                    states[account_id] = (data["to_state"], data["reason"])
            elif topic != ACCOUNT_POSTINGS_APPLIED:
                continue
            if account_id in opened:
                opened[account_id][12] = event.originator_version
            else:
                versions[account_id] = event.originator_version
        return _DirectoryPage(list(opened.values()), versions, states)


@dataclass(frozen=True, slots=True)
class _DirectoryPage:
    opened: list[list[Any]]
    versions: dict[UUID, int]
    states: dict[UUID, tuple[str, str]]

    def write(self, cursor: Cursor) -> None:
        versions, states = self.versions, self.states
        copy_rows(cursor, "view_accounts", _COLUMNS, self.opened)
        if versions:
            ids = list(versions)
            cursor.execute(
                "UPDATE view_accounts AS a SET version = v.version "
                "FROM unnest(%s::uuid[], %s::int8[]) AS v(id, version) WHERE a.account_id = v.id",
                (ids, [versions[account_id] for account_id in ids]),
            )
        if states:
            ids = list(states)
            cursor.execute(
                "UPDATE view_accounts AS a SET state = v.state, state_reason = v.reason "
                "FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS v(id, state, reason)"
                " WHERE a.account_id = v.id",
                (ids, [states[i][0] for i in ids], [states[i][1] for i in ids]),
            )


# Queries ---------------------------------------------------------------------

_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM view_accounts"  # noqa: S608


def _entry(row: Sequence[Any]) -> DirectoryEntry:
    return DirectoryEntry(*row)


def subtree(cursor: Cursor, root_account_id: UUID) -> list[tuple[DirectoryEntry, int]]:
    """The account and every descendant, each with its depth (root 0), in
    depth then opening order."""
    columns = ", ".join(f"a.{column}" for column in _COLUMNS)
    cursor.execute(
        f"WITH RECURSIVE tree AS ("  # noqa: S608
        f" SELECT {columns}, 0 AS depth FROM view_accounts AS a WHERE a.account_id = %s"
        f" UNION ALL"
        f" SELECT {columns}, tree.depth + 1 FROM view_accounts AS a"
        f" JOIN tree ON a.parent_account_id = tree.account_id WHERE tree.depth < %s"
        f") SELECT * FROM tree ORDER BY depth, position",
        (root_account_id, SUBTREE_DEPTH_MAX),
    )
    return [(_entry(row[:-1]), int(row[-1])) for row in cursor.fetchall()]
