"""Commands the ledger accepts, validated when they are made.

A command that exists is well-formed: amounts positive, postings balanced,
metadata bounded, idempotency key valid. Whether it can be *applied* (the
accounts exist, are active, have the funds) is decided later, in a batch,
against the accounts' current totals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

from domain.account import Account, AccountKind, AccountState, require_valid_metadata
from domain.field_checks import is_storable_text
from domain.identifiers import account_id_for, reversal_id_for, transfer_id_for
from domain.result_codes import LedgerRefusal, ResultCode
from domain.transfer import PENDING_TIMEOUT_S_MAX, Posting, require_balanced

ACTOR_LENGTH_MAX: Final[int] = 128
REASON_LENGTH_MAX: Final[int] = 1024


def fingerprint_of(details: tuple[Any, ...]) -> str:
    """A stable digest of a request's details, to tell a retry from a key reuse.

    The details are a tuple of strings, numbers, booleans and None (and tuples
    of them), whose repr is canonical: no hash seeds, no dict ordering."""
    return hashlib.sha256(repr(details).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OpenAccount:
    account_id: UUID
    currency: str
    owner_id: str
    kind: AccountKind
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    metadata: dict[str, str]
    fingerprint: str
    linked: bool = False


@dataclass(frozen=True, slots=True)
class CreateTransfer:
    transfer_id: UUID
    postings: tuple[Posting, ...]
    pending: bool
    timeout_s: int | None
    metadata: dict[str, str]
    fingerprint: str
    linked: bool = False


@dataclass(frozen=True, slots=True)
class PostPendingTransfer:
    transfer_id: UUID
    # None posts the full pending amount.
    amount_minor: int | None = None
    linked: bool = False


@dataclass(frozen=True, slots=True)
class VoidPendingTransfer:
    transfer_id: UUID
    linked: bool = False


@dataclass(frozen=True, slots=True)
class ExpirePendingTransfer:
    transfer_id: UUID
    linked: bool = False


@dataclass(frozen=True, slots=True)
class ReverseTransfer:
    transfer_id: UUID
    metadata: dict[str, str] = field(default_factory=dict)
    linked: bool = False

    @property
    def reversal_id(self) -> UUID:
        return reversal_id_for(self.transfer_id)


@dataclass(frozen=True, slots=True)
class ChangeAccountState:
    account_id: UUID
    new_state: AccountState
    reason: str
    actor: str
    linked: bool = False


Command = (
    OpenAccount
    | CreateTransfer
    | PostPendingTransfer
    | VoidPendingTransfer
    | ExpirePendingTransfer
    | ReverseTransfer
    | ChangeAccountState
)


def open_account(
    *,
    idempotency_key: str,
    currency: str,
    owner_id: str,
    kind: AccountKind = AccountKind.USER,
    debits_must_not_exceed_credits: bool = False,
    credits_must_not_exceed_debits: bool = False,
    metadata: dict[str, str] | None = None,
    scope: str = "",
) -> OpenAccount:
    Account.require_valid_terms(
        currency, debits_must_not_exceed_credits, credits_must_not_exceed_debits
    )
    checked_metadata = require_valid_metadata(metadata or {})
    if not owner_id or len(owner_id) > ACTOR_LENGTH_MAX or not is_storable_text(owner_id):
        raise LedgerRefusal(
            ResultCode.INVALID_METADATA,
            f"owner id must be 1 to {ACTOR_LENGTH_MAX} characters of valid Unicode",
        )
    details = (
        "account",
        currency,
        owner_id,
        kind.value,
        debits_must_not_exceed_credits,
        credits_must_not_exceed_debits,
        tuple(sorted(checked_metadata.items())),
    )
    return OpenAccount(
        account_id=account_id_for(idempotency_key, scope),
        currency=currency,
        owner_id=owner_id,
        kind=kind,
        debits_must_not_exceed_credits=debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=credits_must_not_exceed_debits,
        metadata=checked_metadata,
        fingerprint=fingerprint_of(details),
    )


def create_transfer(
    *,
    idempotency_key: str,
    postings: tuple[Posting, ...],
    pending: bool = False,
    timeout_s: int | None = None,
    metadata: dict[str, str] | None = None,
    linked: bool = False,
    scope: str = "",
) -> CreateTransfer:
    require_balanced(postings)
    checked_metadata = require_valid_metadata(metadata or {})
    if pending:
        if timeout_s is not None and not (
            isinstance(timeout_s, int) and 1 <= timeout_s <= PENDING_TIMEOUT_S_MAX
        ):
            raise LedgerRefusal(
                ResultCode.INVALID_TIMEOUT,
                f"timeout_s must be a whole number of seconds from 1 to {PENDING_TIMEOUT_S_MAX}",
            )
    elif timeout_s is not None:
        raise LedgerRefusal(
            ResultCode.INVALID_TIMEOUT, "timeout_s applies only to pending transfers"
        )
    details = (
        "transfer",
        tuple(
            (str(posting.account_id), posting.side.value, posting.amount_minor, posting.currency)
            for posting in postings
        ),
        pending,
        timeout_s,
        tuple(sorted(checked_metadata.items())),
    )
    return CreateTransfer(
        transfer_id=transfer_id_for(idempotency_key, scope),
        postings=postings,
        pending=pending,
        timeout_s=timeout_s,
        metadata=checked_metadata,
        fingerprint=fingerprint_of(details),
        linked=linked,
    )


def change_account_state(
    *, account_id: UUID, new_state: AccountState, reason: str, actor: str
) -> ChangeAccountState:
    if not reason or len(reason) > REASON_LENGTH_MAX or not is_storable_text(reason):
        raise LedgerRefusal(
            ResultCode.INVALID_METADATA,
            f"reason must be 1 to {REASON_LENGTH_MAX} characters of valid Unicode",
        )
    if not actor or len(actor) > ACTOR_LENGTH_MAX or not is_storable_text(actor):
        raise LedgerRefusal(
            ResultCode.INVALID_METADATA,
            f"actor must be 1 to {ACTOR_LENGTH_MAX} characters of valid Unicode",
        )
    return ChangeAccountState(account_id, new_state, reason, actor)
