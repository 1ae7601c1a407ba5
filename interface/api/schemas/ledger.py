"""Bodies of the ledger routes: accounts, their balances, and transfers.
Requests forbid unknown fields; amounts are strings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, Strict, StrictBool, model_validator

from application.writer import BATCH_SIZE_MAX_DEFAULT
from domain.account import METADATA_KEYS_MAX, Account, AccountKind, Totals
from domain.money import format_amount
from domain.transfer import PENDING_TIMEOUT_S_MAX, POSTINGS_MAX, Posting, Transfer
from interface.api.pagination import HasMore, NextCursor
from interface.api.schemas.common import Amount, Currency, IdempotencyKey, RequestModel
from projections.account_summaries import AccountSummary
from projections.balances import Balance

Metadata = Annotated[
    dict[Annotated[str, Strict()], Annotated[str, Strict()]], Field(max_length=METADATA_KEYS_MAX)
]


class AccountFlags(RequestModel):
    debits_must_not_exceed_credits: StrictBool = False
    credits_must_not_exceed_debits: StrictBool = False


class OpenAccountRequest(RequestModel):
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="Optional: the same key opens the same account once."
    )
    currency: Currency
    owner_id: Annotated[str, Strict(), Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="Required for platform keys; a user key opens its own."
    )
    kind: AccountKind = AccountKind.USER
    flags: AccountFlags | None = Field(
        default=None,
        description="Omitted: a user account may not spend more than it holds "
        "(debits_must_not_exceed_credits); a platform account is unlimited.",
    )
    metadata: Metadata = Field(default_factory=dict)


class PostingRequest(RequestModel):
    account_id: UUID
    side: Literal["debit", "credit"]
    amount: Amount
    currency: Currency


class TransferRequest(RequestModel):
    """Either the simple form (debit, credit, amount, currency) or `postings`."""

    idempotency_key: IdempotencyKey
    debit_account_id: UUID | None = None
    credit_account_id: UUID | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    postings: Annotated[list[PostingRequest], Field(max_length=POSTINGS_MAX)] | None = None
    pending: StrictBool = False
    timeout_s: Annotated[int, Strict(), Field(ge=1, le=PENDING_TIMEOUT_S_MAX)] | None = None
    metadata: Metadata = Field(default_factory=dict)
    linked: StrictBool = Field(
        default=False, description="In a batch: succeed or fail together with the next item."
    )

    @model_validator(mode="after")
    def _one_form(self) -> TransferRequest:
        simple = (self.debit_account_id, self.credit_account_id, self.amount, self.currency)
        if self.postings is not None:
            if any(field is not None for field in simple):
                raise ValueError(
                    "give either postings or debit_account_id/credit_account_id/amount/currency"
                )
        elif any(field is None for field in simple):
            raise ValueError(
                "give debit_account_id, credit_account_id, amount and currency, or postings"
            )
        return self


class TransferBatchRequest(RequestModel):
    transfers: Annotated[
        list[TransferRequest], Field(min_length=1, max_length=BATCH_SIZE_MAX_DEFAULT)
    ]


class PostPendingRequest(RequestModel):
    amount: Amount | None = Field(default=None, description="Omit to post the full pending amount.")


class ReverseRequest(RequestModel):
    metadata: Metadata = Field(default_factory=dict)


# Responses ---------------------------------------------------------------


class BalancesResponse(BaseModel):
    debits_posted: str
    credits_posted: str
    debits_pending: str
    credits_pending: str
    posted: str = Field(description="credits_posted - debits_posted")
    available: str = Field(description="credits_posted - debits_posted - debits_pending")

    @classmethod
    def of(cls, totals: Totals, currency: str) -> BalancesResponse:
        posted = totals.credits_posted - totals.debits_posted
        return cls(
            debits_posted=format_amount(totals.debits_posted, currency),
            credits_posted=format_amount(totals.credits_posted, currency),
            debits_pending=format_amount(totals.debits_pending, currency),
            credits_pending=format_amount(totals.credits_pending, currency),
            posted=format_amount(posted, currency),
            available=format_amount(posted - totals.debits_pending, currency),
        )

    @classmethod
    def of_balance(cls, balance: Balance) -> BalancesResponse:
        totals = Totals(
            balance.debits_pending,
            balance.debits_posted,
            balance.credits_pending,
            balance.credits_posted,
        )
        return cls.of(totals, balance.currency)


class BalanceAsOfResponse(BaseModel):
    account_id: UUID
    currency: str
    balances: BalancesResponse
    as_of_position: int | None = Field(
        description="The log position asked for, if a position was given."
    )
    last_change_position: int = Field(
        description="Position of the account's last change at or before it (0: none)."
    )
    as_of: datetime | None = Field(description="The time asked for, if a time was given.")


class AccountResponse(BaseModel):
    id: UUID
    currency: str
    owner_id: str
    kind: AccountKind
    state: str
    flags: AccountFlags
    balances: BalancesResponse
    metadata: dict[str, str]
    version: int

    @classmethod
    def of(cls, account: Account) -> AccountResponse:
        """From the aggregate, as the writer has it (right after a write)."""
        return cls(
            id=account.id,
            currency=account.currency,
            owner_id=account.owner_id,
            kind=account.kind,
            state=account.state.value,
            flags=AccountFlags(
                debits_must_not_exceed_credits=account.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits=account.credits_must_not_exceed_debits,
            ),
            balances=BalancesResponse.of(account.totals, account.currency),
            metadata=account.metadata,
            version=account.version,
        )

    @classmethod
    def of_summary(cls, summary: AccountSummary) -> AccountResponse:
        """From the views (directory and balances)."""
        entry, balance = summary.entry, summary.balance
        return cls(
            id=entry.account_id,
            currency=entry.currency,
            owner_id=entry.owner_id,
            kind=AccountKind(entry.kind),
            state=entry.state,
            flags=AccountFlags(
                debits_must_not_exceed_credits=entry.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits=entry.credits_must_not_exceed_debits,
            ),
            balances=BalancesResponse.of_balance(balance),
            metadata=entry.metadata,
            version=entry.version,
        )


class AccountPageResponse(BaseModel):
    items: list[AccountResponse]
    has_more: HasMore
    next_cursor: NextCursor


class PostingResponse(BaseModel):
    account_id: UUID
    side: str
    amount: str
    currency: str

    @classmethod
    def of(cls, posting: Posting) -> PostingResponse:
        return cls(
            account_id=posting.account_id,
            side=posting.side.value,
            amount=format_amount(posting.amount_minor, posting.currency),
            currency=posting.currency,
        )


class TransferResponse(BaseModel):
    id: UUID
    status: str
    postings: list[PostingResponse]
    posted_postings: list[PostingResponse]
    pending: bool
    expires_at: datetime | None
    reverses_transfer_id: UUID | None
    reversed_by_transfer_id: UUID | None
    metadata: dict[str, str]
    recorded_at: datetime
    resolved_at: datetime | None
    version: int

    @classmethod
    def of(cls, transfer: Transfer) -> TransferResponse:
        return cls(
            id=transfer.id,
            status=transfer.status.value,
            postings=[PostingResponse.of(posting) for posting in transfer.postings],
            posted_postings=[PostingResponse.of(posting) for posting in transfer.posted_postings],
            pending=transfer.was_pending,
            expires_at=transfer.expires_at,
            reverses_transfer_id=_uuid(transfer.reverses_transfer_id),
            reversed_by_transfer_id=_uuid(transfer.reversed_by_transfer_id),
            metadata=transfer.metadata,
            recorded_at=transfer.recorded_at,
            resolved_at=transfer.resolved_at,
            version=transfer.version,
        )


class BatchItemResult(BaseModel):
    index: int
    code: str
    id: UUID | None = None
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class TransferBatchResponse(BaseModel):
    results: list[BatchItemResult]
    succeeded: int
    failed: int


def _uuid(text: str | None) -> UUID | None:
    return UUID(text) if text else None
