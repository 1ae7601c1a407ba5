"""Page sizes and position cursors, as every list of the API uses them.

Keyset pagination on the event's position: a page never skips or repeats an
item however many are added meanwhile, and costs the same at any depth.
The cursor is opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from domain.result_codes import LedgerRefusal, ResultCode

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
