"""Withdrawal request and response bodies. Amounts are decimal strings in major
units of the tier currency; requests forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from domain.money import format_amount
from domain.withdrawal import REASON_LENGTH_MAX, WithdrawalStatus
from interface.api.pagination import HasMore, NextCursor
from interface.api.schemas.common import PLAIN_TEXT_PATTERN, Amount, IdempotencyKey, RequestModel
from projections.withdrawals import WithdrawalRow


class RequestWithdrawalRequest(RequestModel):
    amount: Amount = Field(
        description="At least 100.00 and at most the account's withdrawable amount."
    )
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description="Names this request: the same key again finds the same withdrawal. "
        "Defaults to the Idempotency-Key header; without either, every request is new.",
    )


class RejectWithdrawalRequest(RequestModel):
    reason: Annotated[
        str,
        Strict(),
        Field(min_length=1, max_length=REASON_LENGTH_MAX, pattern=PLAIN_TEXT_PATTERN),
    ] = Field(description="Why the withdrawal is rejected; shown to the trader.")


class WithdrawalResponse(BaseModel):
    id: UUID
    funded_account_id: UUID
    owner_id: str
    amount: str
    currency: str
    status: WithdrawalStatus = Field(
        description="pending (waiting for an admin), approved (to be paid out), paid_out "
        "(the processor accepted the payout), completed, rejected or failed."
    )
    approval_required: bool = Field(description="True from 1,000.00: an admin decides.")
    requested_at: datetime
    requested_by: str
    approved_at: datetime | None
    approved_by: str | None
    approved_automatically: bool
    rejected_reason: str | None
    payout_id: str | None = Field(description="The processor's payout id (Stripe's po_...).")
    payout_gateway: str | None
    payout_failed_attempts: int = Field(description="Transient payout failures so far.")
    next_payout_attempt_at: datetime | None
    needs_attention: bool = Field(
        description="Payout retries ran out of their window: an admin resumes them once "
        "the processor shows no payout."
    )
    failure_code: str | None
    failure_message: str | None
    settled_at: datetime | None
    settled_by: str | None
    hold_transfer_id: UUID = Field(description="The ledger's pending transfer holding the amount.")
    updated_at: datetime

    @classmethod
    def of(cls, row: WithdrawalRow) -> WithdrawalResponse:
        return cls(
            id=row.withdrawal_id,
            funded_account_id=row.funded_account_id,
            owner_id=row.owner_id,
            amount=format_amount(row.amount_minor, row.currency),
            currency=row.currency,
            status=WithdrawalStatus(row.status),
            approval_required=row.approval_required,
            requested_at=row.requested_at,
            requested_by=row.requested_by,
            approved_at=row.approved_at,
            approved_by=row.approved_by,
            approved_automatically=row.decided_automatically,
            rejected_reason=row.rejected_reason,
            payout_id=row.payout_id,
            payout_gateway=row.payout_gateway,
            payout_failed_attempts=row.payout_failed_attempts,
            next_payout_attempt_at=row.next_payout_attempt_at,
            needs_attention=row.needs_attention,
            failure_code=row.failure_code,
            failure_message=row.failure_message,
            settled_at=row.settled_at,
            settled_by=row.settled_by,
            hold_transfer_id=row.hold_transfer_id,
            updated_at=row.updated_at,
        )


class WithdrawalPageResponse(BaseModel):
    items: list[WithdrawalResponse]
    has_more: HasMore
    next_cursor: NextCursor


class WebhookReceipt(BaseModel):
    received: bool = True
    outcome: str = Field(
        description="applied; unchanged (applied before, or about a settled withdrawal); "
        "ignored (not about a payout of ours); conflict (contradicts the withdrawal: "
        "logged for a person)"
    )
