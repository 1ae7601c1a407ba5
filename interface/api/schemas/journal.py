"""Response bodies of the journal routes: transfers as the journal view keeps
them, and statements with the running balance. Amounts are decimal strings."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from domain.money import format_amount
from interface.api.pagination import HasMore, NextCursor
from interface.api.schemas.ledger import PostingResponse
from projections.journal import JournalEntry, JournalTransfer, RunningFigures


def _posting(data: dict[str, Any]) -> PostingResponse:
    return PostingResponse(
        account_id=UUID(data["account_id"]),
        side=data["side"],
        amount=format_amount(data["amount_minor"], data["currency"]),
        currency=data["currency"],
    )


class JournalTransferResponse(BaseModel):
    id: UUID
    position: int = Field(description="The log position that recorded the transfer.")
    status: str = Field(description="pending, posted, voided or expired")
    postings: list[PostingResponse]
    posted_postings: list[PostingResponse] = Field(
        description="What was posted: the postings, smaller amounts of a partially "
        "posted hold, or none while pending (or once voided or expired)."
    )
    pending: bool = Field(description="Whether the transfer was made as a hold.")
    expires_at: datetime | None
    reverses_transfer_id: UUID | None
    reversed_by_transfer_id: UUID | None
    metadata: dict[str, str]
    recorded_at: datetime = Field(description="The ledger's time when it was recorded.")
    logged_at: datetime = Field(description="When the log recorded it: what from/to filter.")
    resolved_at: datetime | None

    @classmethod
    def of(cls, transfer: JournalTransfer) -> JournalTransferResponse:
        return cls(
            id=transfer.transfer_id,
            position=transfer.position,
            status=transfer.status,
            postings=[_posting(posting) for posting in transfer.postings],
            posted_postings=[_posting(posting) for posting in transfer.posted_postings],
            pending=transfer.pending,
            expires_at=transfer.expires_at,
            reverses_transfer_id=transfer.reverses_transfer_id,
            reversed_by_transfer_id=transfer.reversed_by_transfer_id,
            metadata=transfer.metadata,
            recorded_at=transfer.recorded_at,
            logged_at=transfer.logged_at,
            resolved_at=transfer.resolved_at,
        )


class TransferPageResponse(BaseModel):
    items: list[JournalTransferResponse]
    has_more: HasMore
    next_cursor: NextCursor


class RunningFiguresResponse(BaseModel):
    posted: str = Field(description="credits_posted - debits_posted")
    debits_pending: str
    credits_pending: str
    available: str = Field(description="posted - debits_pending")

    @classmethod
    def of(cls, figures: RunningFigures, currency: str) -> RunningFiguresResponse:
        return cls(
            posted=format_amount(figures.posted_balance, currency),
            debits_pending=format_amount(figures.debits_pending, currency),
            credits_pending=format_amount(figures.credits_pending, currency),
            available=format_amount(figures.available, currency),
        )


class StatementEntryResponse(BaseModel):
    position: int = Field(description="The log position of the event that moved the money.")
    seq: int = Field(description="The posting's index in its transfer.")
    transfer_id: UUID
    entry_type: str = Field(
        description="posted, pending (a hold made), pending_posted (posted out of a "
        "hold; the whole hold is released), pending_voided or pending_expired "
        "(the hold released)."
    )
    side: str
    amount: str = Field(
        description="posted and pending_posted: the amount posted; pending: the amount "
        "held; pending_voided and pending_expired: the amount released."
    )
    currency: str
    logged_at: datetime
    after: RunningFiguresResponse = Field(description="The account's figures after the entry.")

    @classmethod
    def of(cls, entry: JournalEntry) -> StatementEntryResponse:
        return cls(
            position=entry.position,
            seq=entry.seq,
            transfer_id=entry.transfer_id,
            entry_type=entry.entry_type,
            side=entry.side,
            amount=format_amount(entry.amount_minor, entry.currency),
            currency=entry.currency,
            logged_at=entry.logged_at,
            after=RunningFiguresResponse.of(entry.after, entry.currency),
        )


class StatementResponse(BaseModel):
    account_id: UUID
    currency: str
    opening: RunningFiguresResponse = Field(
        description="The figures before this page's first entry (on an empty page, "
        "at the start of the range asked for)."
    )
    entries: list[StatementEntryResponse]
    has_more: HasMore
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
