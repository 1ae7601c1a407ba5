"""Pages of accounts, read from the log's `Opened` events in log order.

Keyset pagination on the event's position: a page never skips or repeats an
account however many are opened meanwhile, and costs the same at any depth.
The cursor is opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from psycopg_pool import ConnectionPool

from domain.result_codes import LedgerRefusal, ResultCode

PAGE_SIZE_DEFAULT: Final[int] = 50
PAGE_SIZE_MAX: Final[int] = 200
_CURSOR_VERSION: Final[str] = "p1"
_OPENED_TOPIC: Final[str] = "domain.account:Account.Opened"


class InvalidCursor(LedgerRefusal):
    def __init__(self) -> None:
        super().__init__(
            ResultCode.INVALID_CURSOR, "the cursor is not one this API gave; start without it"
        )


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_VERSION}:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, _, position = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        value = int(position)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor from None
    if version != _CURSOR_VERSION or value < 0:
        raise InvalidCursor
    return value


@dataclass(frozen=True, slots=True)
class AccountPage:
    account_ids: list[UUID]
    next_cursor: str | None


class AccountListing:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def page(self, *, owner_id: str | None, cursor: str | None, limit: int) -> AccountPage:
        assert 1 <= limit <= PAGE_SIZE_MAX, limit
        after = decode_cursor(cursor)
        query = (
            "SELECT originator_id, notification_id FROM ledger_events "
            "WHERE topic = %s AND notification_id > %s"
        )
        parameters: list[object] = [_OPENED_TOPIC, after]
        if owner_id is not None:
            # Owner ids live in the event's JSON body; the index narrows the
            # scan to Opened events before this filter reads any of them.
            query += " AND convert_from(state, 'UTF8')::jsonb ->> 'owner_id' = %s"
            parameters.append(owner_id)
        query += " ORDER BY notification_id LIMIT %s"
        parameters.append(limit + 1)
        with self._pool.connection() as connection:
            rows = connection.execute(query, parameters).fetchall()
        page, more = rows[:limit], len(rows) > limit
        return AccountPage(
            account_ids=[row[0] for row in page],
            next_cursor=encode_cursor(page[-1][1]) if more else None,
        )
