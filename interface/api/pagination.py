"""Keyset pages behind opaque cursors, as every list route answers them.

A list reads one row more than its `limit`: that row's presence says there
is a next page (`has_more`), and the next page's cursor names the page's last
row (its log position, say), so a page is neither skipped nor repeated while
the log grows. Every list is in a stable order (the order its items were
created in the log, unless its route says otherwise), takes `limit` from 1 to
PAGE_SIZE_MAX (PAGE_SIZE_DEFAULT without one), and answers `has_more` with
`next_cursor` (docs/api.md#pagination).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Final, Generic, TypeVar

from fastapi import Query
from pydantic import Field

from interface.adapters.persistence.api_keys import OWNER_ID_LENGTH_MAX
from interface.api.query_types import POSITION_MAX, IsoTime
from projections.account_listing import PAGE_SIZE_MAX, InvalidCursor, decode_cursor

CURSOR_LENGTH_MAX: Final[int] = 64

PageCursor = Annotated[
    str | None,
    Query(
        max_length=CURSOR_LENGTH_MAX,
        description="The `next_cursor` of the page before; without it, the first page.",
    ),
]
PageLimit = Annotated[
    int,
    Query(ge=1, le=PAGE_SIZE_MAX, description=f"Items per page, 1 to {PAGE_SIZE_MAX}."),
]

# The filters lists share. A list's creation time (opened, requested,
# initiated, proposed: its route says which) is in [from, to).
CreatedFrom = Annotated[
    IsoTime | None,
    Query(alias="from", description="Created at or after this time (ISO 8601 with an offset)."),
]
CreatedTo = Annotated[
    IsoTime | None,
    Query(alias="to", description="Created before this time (ISO 8601 with an offset)."),
]
CurrencyFilter = Annotated[
    str | None, Query(pattern=r"^[A-Z]{3}$", description="An ISO 4217 code, e.g. USD.")
]
OwnerFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=OWNER_ID_LENGTH_MAX,
        description="One owner's only (a user key: its own owner, the default).",
    ),
]

# The two fields every page of a list answers with, beside its items.
HasMore = Annotated[
    bool, Field(description="More items follow: ask again with `cursor` set to next_cursor.")
]
NextCursor = Annotated[
    str | None,
    Field(description="Pass as `cursor` for the next page; null on the last page."),
]

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    """One page of rows and the cursor of the next (None on the last)."""

    items: list[Row]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def position_after(cursor: str | None) -> int:
    """The log position a cursor names (0 without one); one this API did not
    give answers 422 `invalid_cursor`."""
    position = decode_cursor(cursor)
    if position > POSITION_MAX:
        raise InvalidCursor
    return position


def encode_key_cursor(version: str, first: int, second: int) -> str:
    """A cursor naming a row by two numbers (a log position and a place
    within it), under a version that says which list gave it."""
    text = f"{version}:{first}:{second}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_key_cursor(version: str, cursor: str) -> tuple[int, int]:
    """The two numbers of a cursor of this version; any other answers 422
    `invalid_cursor` (the caller checks the numbers' ranges)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found, first, second = base64.urlsafe_b64decode(padded).decode().split(":")
        numbers = (int(first), int(second))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor from None
    if found != version:
        raise InvalidCursor
    return numbers


def page_of(rows: Sequence[Row], limit: int, cursor_of: Callable[[Row], str]) -> Page[Row]:
    """The page (the first `limit` of the `limit + 1` rows read) and the next
    page's cursor, made from the page's last row; None on the last page."""
    items = list(rows[:limit])
    return Page(items, cursor_of(items[-1]) if len(rows) > limit else None)
