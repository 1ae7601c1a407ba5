"""Deterministic identifiers: the same request always names the same aggregate.

A transfer's id is derived from its idempotency key, so a retried request
finds the transfer the first attempt made instead of making a second one.
"""

from __future__ import annotations

import re
from typing import Final
from uuid import UUID, uuid5

from domain.result_codes import LedgerRefusal, ResultCode

_TRANSFER_NAMESPACE: Final = UUID("6f1c1f52-9b8e-4d0a-a8a5-3f0c2f4e7a11")
_ACCOUNT_NAMESPACE: Final = UUID("0b6f8f0e-2d3c-4b5a-9c1d-7e6f5a4b3c21")
_REVERSAL_NAME: Final = "reversal"

IDEMPOTENCY_KEY_LENGTH_MAX: Final[int] = 128
_IDEMPOTENCY_KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]+$")


def require_idempotency_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= IDEMPOTENCY_KEY_LENGTH_MAX
        or _IDEMPOTENCY_KEY_PATTERN.match(key) is None
    ):
        raise LedgerRefusal(
            ResultCode.INVALID_IDEMPOTENCY_KEY,
            f"idempotency key must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} printable ASCII "
            "characters without spaces",
        )
    return key


def transfer_id_for(idempotency_key: str, scope: str = "") -> UUID:
    """The scope keeps two clients' identical keys apart (an owner, an API key)."""
    return uuid5(_TRANSFER_NAMESPACE, f"{scope}\x1f{require_idempotency_key(idempotency_key)}")


def account_id_for(idempotency_key: str, scope: str = "") -> UUID:
    return uuid5(_ACCOUNT_NAMESPACE, f"{scope}\x1f{require_idempotency_key(idempotency_key)}")


def reversal_id_for(original_transfer_id: UUID) -> UUID:
    """One reversal per transfer: asking twice finds the first reversal."""
    return uuid5(original_transfer_id, _REVERSAL_NAME)
