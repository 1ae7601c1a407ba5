"""The PayoutGateway port: send a withdrawal's money out, and read what became of it.

Adapters live in interface/adapters/payouts/: Stripe, and a sandbox that moves no money.

Idempotency. Every payout is asked for under an idempotency key that the
caller derives from the withdrawal, so one withdrawal can only ever become one
payout: the same key with the same request returns the first payout again;
the same key with another request is refused (`PayoutRejected`,
`IDEMPOTENCY_KEY_REUSED`). After a `PayoutUnavailable`, retry with the same
key: the payout may have been created before the answer was lost.

Stripe remembers a key for at least 24 hours and replays the first answer it
gave, a 500 included. So a key that keeps answering `PayoutUnavailable` does
not prove that nothing happened: reconcile through `list_payouts` (each payout
carries its withdrawal id in its metadata) before giving up on a withdrawal.

Status. A payout is `pending` or `in_transit` until the bank settles it. Stripe
may still turn a `paid` payout into `failed` days later, when the bank returns
the money, so `paid` is not final until the bank's return window has passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Protocol

# Stripe's limits, checked here so that a request the gateway would refuse
# never leaves the process.
IDEMPOTENCY_KEY_LENGTH_MAX: Final[int] = 255
METADATA_KEYS_MAX: Final[int] = 50
METADATA_KEY_LENGTH_MAX: Final[int] = 40
METADATA_VALUE_LENGTH_MAX: Final[int] = 500
# Ours: a description is a short note for the people reading the Stripe dashboard.
DESCRIPTION_LENGTH_MAX: Final[int] = 500

# The metadata key that ties a payout back to its withdrawal; the only
# metadata value an adapter may write to its logs.
WITHDRAWAL_ID_METADATA_KEY: Final[str] = "withdrawal_id"

# Rejection codes the adapters produce themselves (other codes are Stripe's own,
# such as "balance_insufficient", passed through unchanged).
IDEMPOTENCY_KEY_REUSED: Final[str] = "idempotency_key_reused"
PAYOUT_NOT_FOUND: Final[str] = "resource_missing"

_CURRENCY_PATTERN: Final = re.compile(r"[A-Z]{3}")


class PayoutStatus(StrEnum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    """One payout to send. `metadata` must carry the withdrawal id."""

    idempotency_key: str
    amount_minor: int
    currency: str
    metadata: Mapping[str, str]
    description: str | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.idempotency_key) <= IDEMPOTENCY_KEY_LENGTH_MAX:
            raise ValueError(f"an idempotency key has 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} characters")
        # bool is an int to Python, never an amount.
        if type(self.amount_minor) is not int or self.amount_minor <= 0:
            raise ValueError("a payout amount is a positive integer of minor units")
        _require_currency(self.currency)
        _require_metadata(self.metadata)
        if self.description is not None and len(self.description) > DESCRIPTION_LENGTH_MAX:
            raise ValueError(f"a description has at most {DESCRIPTION_LENGTH_MAX} characters")
        # A copy the caller cannot change once the request is made.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def withdrawal_id(self) -> str:
        return self.metadata[WITHDRAWAL_ID_METADATA_KEY]


@dataclass(frozen=True, slots=True)
class Payout:
    """A payout as the gateway last reported it."""

    payout_id: str
    amount_minor: int
    currency: str
    status: PayoutStatus
    metadata: Mapping[str, str]
    created_at: datetime
    failure_code: str | None = None
    failure_message: str | None = None

    def __post_init__(self) -> None:
        if not self.payout_id:
            raise ValueError("a payout has an id")
        _require_currency(self.currency)
        if self.created_at.utcoffset() != timedelta(0):
            raise ValueError("a payout's creation time is in UTC")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


# Errors ---------------------------------------------------------------------------


class PayoutError(Exception):
    """Anything the gateway answers instead of a payout."""


class PayoutUnavailable(PayoutError):
    """No usable answer (network error, timeout, 5xx, rate limit, a concurrent
    request holding the same key): the payout may or may not exist. Retry
    later with the same idempotency key."""


class PayoutRejected(PayoutError):
    """The gateway refused; asking again with the same key will not help."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# The port -------------------------------------------------------------------------


class PayoutGateway(Protocol):
    @property
    def name(self) -> str:
        """ "stripe" or "sandbox": recorded with each withdrawal paid out."""
        ...

    def create_payout(self, request: PayoutRequest) -> Payout: ...

    def retrieve_payout(self, payout_id: str) -> Payout:
        """Raises `PayoutRejected` with `PAYOUT_NOT_FOUND` for an unknown id."""
        ...

    def list_payouts(self, created_from: datetime | None = None) -> Iterator[Payout]:
        """Every payout created at or after `created_from` (all when None),
        newest first, fetched page by page as the iterator is consumed: a
        gateway error is raised from the iteration, not from this call."""
        ...


def _require_currency(currency: str) -> None:
    if not _CURRENCY_PATTERN.fullmatch(currency):
        raise ValueError(f"a currency is an upper-case ISO 4217 code, not {currency!r}")


def _require_metadata(metadata: Mapping[str, str]) -> None:
    if not metadata.get(WITHDRAWAL_ID_METADATA_KEY):
        raise ValueError(f"a payout's metadata carries {WITHDRAWAL_ID_METADATA_KEY!r}")
    if len(metadata) > METADATA_KEYS_MAX:
        raise ValueError(f"at most {METADATA_KEYS_MAX} metadata keys")
    for key, value in metadata.items():
        # Stripe reads brackets in a form-encoded key as nesting.
        if not 0 < len(key) <= METADATA_KEY_LENGTH_MAX or "[" in key or "]" in key:
            raise ValueError(f"a metadata key has 1 to {METADATA_KEY_LENGTH_MAX} characters")
        if not isinstance(value, str) or len(value) > METADATA_VALUE_LENGTH_MAX:
            raise ValueError(f"a metadata value is a string of at most {METADATA_VALUE_LENGTH_MAX}")
