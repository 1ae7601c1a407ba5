"""Pages of accounts from the accounts directory view, in the order opened.

Keyset pagination on the event's position: a page never skips or repeats an
account however many are opened meanwhile, and costs the same at any depth.
The cursor is opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

from psycopg_pool import ConnectionPool

from domain.result_codes import LedgerRefusal, ResultCode
from projections.account_summaries import AccountSummary, account_summary_page

PAGE_SIZE_DEFAULT: Final[int] = 50
PAGE_SIZE_MAX: Final[int] = 200
_CURSOR_VERSION: Final[str] = "p1"


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
    items: list[AccountSummary]
    next_cursor: str | None


class AccountListing:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def page(self, *, owner_id: str | None, cursor: str | None, limit: int) -> AccountPage:
        assert 1 <= limit <= PAGE_SIZE_MAX, limit
        after = decode_cursor(cursor)
        with self._pool.connection() as connection, connection.cursor() as database_cursor:
            rows = account_summary_page(
                database_cursor, owner_id=owner_id, after_position=after, limit=limit + 1
            )
        page, more = rows[:limit], len(rows) > limit
        return AccountPage(
            items=page, next_cursor=encode_cursor(page[-1].entry.position) if more else None
        )
