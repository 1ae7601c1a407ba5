"""Keyset pages behind opaque cursors, as every list route answers them.

A list reads one row more than its `limit`: that row's presence says there
is a next page, and the next page's cursor names the page's last row (its
log position, say), so a page is neither skipped nor repeated while the log
grows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Final, TypeVar

from fastapi import Query

from interface.api.query_types import POSITION_MAX
from projections.account_listing import PAGE_SIZE_MAX, InvalidCursor, decode_cursor

CURSOR_LENGTH_MAX: Final[int] = 64

PageCursor = Annotated[str | None, Query(max_length=CURSOR_LENGTH_MAX)]
PageLimit = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)]

Row = TypeVar("Row")


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


def page_of(
    rows: Sequence[Row], limit: int, cursor_of: Callable[[Row], str]
) -> tuple[list[Row], str | None]:
    """The page (the first `limit` of the `limit + 1` rows read) and the next
    page's cursor, made from the page's last row; None on the last page."""
    page = list(rows[:limit])
    return page, cursor_of(page[-1]) if len(rows) > limit else None
