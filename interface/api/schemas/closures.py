"""Bodies of the closure routes: the request to close, the progress of a
closure, the operators' list, and resuming a stuck one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from domain.closure import ClosurePhase
from interface.api.pagination import HasMore, NextCursor
from interface.api.schemas.common import PLAIN_TEXT_PATTERN, RequestModel, money
from projections.closures import ClosureRow

NAME_LENGTH_MAX: Final[int] = 200


ADDRESS_LENGTH_MAX: Final[int] = 254


REASON_LENGTH_MAX: Final[int] = 500


# One plain address (the mailer's rule): no display name, no list.
EMAIL_ADDRESS_PATTERN: Final[str] = r'^[^\s@<>"(),;:]+@[^\s@<>"(),;:]+$'


# A closure with work overdue by this much counts as stuck for operators
# (no worker has run it).
OVERDUE_AFTER: Final = timedelta(hours=1)


class InitiateClosureRequest(RequestModel):
    recipient_name: Annotated[
        str, Strict(), Field(min_length=1, max_length=NAME_LENGTH_MAX, pattern=PLAIN_TEXT_PATTERN)
    ] = Field(description="Who the closure emails greet.")
    recipient_email: Annotated[
        str,
        Strict(),
        Field(min_length=3, max_length=ADDRESS_LENGTH_MAX, pattern=EMAIL_ADDRESS_PATTERN),
    ] = Field(description="Where the starting and completion emails go.")
    reason: Annotated[
        str,
        Strict(),
        Field(min_length=1, max_length=REASON_LENGTH_MAX, pattern=PLAIN_TEXT_PATTERN),
    ] = "requested by the account holder"


class TrancheResponse(BaseModel):
    number: int
    attempt: int
    withdrawal_id: UUID
    amount: str
    status: str = Field(description="requested, completed or failed")
    requested_at: datetime
    settled_at: datetime | None
    payout_id: str | None


class ClosureResponse(BaseModel):
    id: UUID
    funded_account_id: UUID
    confirmation_number: str = Field(examples=["CLA-7K2QH-M9X4P"])
    phase: ClosurePhase
    phases_entered: dict[str, datetime] = Field(description="Each phase reached, and when.")
    needs_attention: bool = Field(description="Stuck: waits for an operator to resume it.")
    stuck_reason: str | None
    next_action: str | None = Field(description="What the closure does next.")
    next_action_at: datetime | None = Field(description="Not before this time.")
    deadline_at: datetime | None = Field(description="The phase is stuck if not done by then.")
    failed_attempts: int
    last_error: str | None
    settles_at: datetime | None = Field(description="T+1: when the trades settle.")
    tranches: list[TrancheResponse]
    tranches_done: int
    tranches_remaining: int = Field(
        description="Tranches of at most 50,000.00 still to pay (an estimate before settling)."
    )
    total_paid: str
    currency: str
    initiated_at: datetime
    completed_at: datetime | None


class ClosureSummaryResponse(BaseModel):
    id: UUID
    funded_account_id: UUID
    owner_id: str
    confirmation_number: str
    phase: ClosurePhase
    needs_attention: bool
    stuck_reason: str | None
    next_action_at: datetime | None
    overdue: bool = Field(description="Work due for over an hour and not done: no worker ran it.")
    tranches_done: int
    total_paid: str
    updated_at: datetime

    @classmethod
    def of(cls, row: ClosureRow, now: datetime) -> ClosureSummaryResponse:
        return cls(
            id=row.closure_id,
            funded_account_id=row.funded_account_id,
            owner_id=row.owner_id,
            confirmation_number=row.confirmation_number,
            phase=ClosurePhase(row.phase),
            needs_attention=row.stuck,
            stuck_reason=row.stuck_reason,
            next_action_at=row.next_action_at,
            overdue=row.next_action_at is not None and row.next_action_at < now - OVERDUE_AFTER,
            tranches_done=row.tranches_completed,
            total_paid=money(row.total_paid_minor),
            updated_at=row.updated_at,
        )


class ClosurePageResponse(BaseModel):
    items: list[ClosureSummaryResponse]
    has_more: HasMore
    next_cursor: NextCursor


class ResumeClosureRequest(RequestModel):
    dry_run: bool = Field(default=False, description="Say what resuming would do; do nothing.")


class ResumeClosureResponse(BaseModel):
    dry_run: bool
    phase: ClosurePhase = Field(description="The phase tried again.")
    deadline_at: datetime | None = Field(description="Its new deadline.")
    closure: ClosureResponse
