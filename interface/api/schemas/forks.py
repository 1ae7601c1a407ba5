"""Bodies of the fork and merge routes: opportunities, proposals and the
processes as their aggregates hold them, with the factors of their confidence."""

from __future__ import annotations

import re
from datetime import datetime
from fractions import Fraction
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from domain.fork import (
    AUTO_APPROVAL_CONFIDENCE,
    EXECUTE_AT_ONCE_CONFIDENCE,
    Fork,
    ForkDecision,
    ForkStatus,
)
from domain.merge import Merge, MergeStatus, MergeTarget, MergeTrigger, MergeUrgency
from domain.tiers import TIER_CURRENCY, TierName
from interface.api.pagination import HasMore, NextCursor
from interface.api.schemas.common import (
    PLAIN_TEXT_PATTERN,
    RATIO_DESCRIPTION,
    Amount,
    IdempotencyKey,
    Ratio,
    RequestModel,
    money,
    ratio_text,
)

REASON_LENGTH_MAX: Final[int] = 500


class FactorResponse(BaseModel):
    name: str
    weight: Ratio
    value: Ratio = Field(description="The factor, from 0 to 1. " + RATIO_DESCRIPTION)
    explanation: str
    inputs: dict[str, str] = Field(
        default_factory=dict, description="What the value was computed from."
    )


class ForkResponse(BaseModel):
    id: UUID
    parent_id: UUID
    parent_tier: TierName
    child_tier: TierName
    amount: str = Field(description="What moves to the child: its tier's minimum capital.")
    currency: str
    status: ForkStatus
    confidence: Ratio = Field(
        description="The weighted sum of the factors, from 0 to 1. " + RATIO_DESCRIPTION
    )
    confidence_needed: Ratio = Field(description="At least this approves a fork by itself.")
    confidence_to_execute_at_once: Ratio = Field(
        description="At least this also executes it at once; between the two it is approved "
        "and waits for its execution step (a scan, or POST .../execute)."
    )
    decision: ForkDecision = Field(description="What the confidence decided at the proposal.")
    factors: list[FactorResponse]
    approved_automatically: bool
    approved_by: str | None
    child_id: UUID | None
    rollback_reason: str | None
    proposed_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, fork: Fork) -> ForkResponse:
        return cls(
            id=fork.id,
            parent_id=fork.parent_id,
            parent_tier=fork.parent_tier,
            child_tier=fork.child_tier,
            amount=money(fork.amount_minor),
            currency=TIER_CURRENCY,
            status=fork.status,
            confidence=ratio_text(fork.confidence),
            confidence_needed=ratio_text(AUTO_APPROVAL_CONFIDENCE),
            confidence_to_execute_at_once=ratio_text(EXECUTE_AT_ONCE_CONFIDENCE),
            decision=fork.decision,
            factors=factor_responses(fork.factors),
            approved_automatically=fork.approved_automatically,
            approved_by=fork.approved_by,
            child_id=UUID(fork.child_id) if fork.child_id else None,
            rollback_reason=fork.rollback_reason,
            proposed_at=fork.proposed_at,
            updated_at=fork.updated_at,
        )


class ForkOpportunityResponse(BaseModel):
    funded_account_id: UUID
    owner_id: str
    tier: TierName
    child_tier: TierName
    balance: str
    threshold: str
    amount: str = Field(description="What would move to the child.")
    executable_from: str = Field(
        description="The balance a fork executes from: the child's capital plus the parent's "
        "own tier minimum, which it keeps."
    )
    executable_now: bool
    confidence: Ratio = Field(
        description="What a fork proposed now would have, from 0 to 1. " + RATIO_DESCRIPTION
    )
    factors: list[FactorResponse]


class ForkOpportunitiesResponse(BaseModel):
    items: list[ForkOpportunityResponse]


class ForkPageResponse(BaseModel):
    items: list[ForkResponse]
    has_more: HasMore
    next_cursor: NextCursor


class ProposeForkRequest(RequestModel):
    funded_account_id: UUID


class MergeResponse(BaseModel):
    id: UUID
    source_id: UUID
    target_kind: MergeTarget
    target_id: UUID | None
    amount: str | None = Field(description="A partial merge's amount; null for the whole balance.")
    moved: str | None = Field(description="What moved, once completed.")
    currency: str
    trigger: MergeTrigger
    urgency: MergeUrgency
    reason: str
    status: MergeStatus
    confidence: Ratio | None = Field(
        description="Consolidation confidence, from 0 to 1: trigger reliability 30 %, benefit "
        "magnitude 40 %, risk assessment 30 %; null on merges proposed before it was "
        "recorded. " + RATIO_DESCRIPTION
    )
    confidence_factors: list[dict[str, Any]] = Field(
        description="Each factor's weight, value and inputs."
    )
    approved_by: str | None
    rollback_reason: str | None
    proposed_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, merge: Merge) -> MergeResponse:
        return cls(
            id=merge.id,
            source_id=merge.source_id,
            target_kind=merge.target_kind,
            target_id=merge.target_id,
            amount=None if merge.amount_minor is None else money(merge.amount_minor),
            moved=None if merge.moved_minor is None else money(merge.moved_minor),
            currency=TIER_CURRENCY,
            trigger=merge.trigger,
            urgency=merge.urgency,
            reason=merge.reason,
            status=merge.status,
            confidence=None if merge.confidence is None else ratio_text(merge.confidence),
            confidence_factors=merge.confidence_factors,
            approved_by=merge.approved_by,
            rollback_reason=merge.rollback_reason,
            proposed_at=merge.proposed_at,
            updated_at=merge.updated_at,
        )


class ProposeMergeRequest(RequestModel):
    source_id: UUID = Field(description="The funded account whose capital moves.")
    target_kind: MergeTarget
    target_id: UUID | None = Field(
        default=None, description="The sibling, for target_kind sibling."
    )
    amount: Amount | None = Field(default=None, description="Partial: this much; whole: null.")
    trigger: MergeTrigger = MergeTrigger.MANUAL
    urgency: MergeUrgency = MergeUrgency.MEDIUM
    reason: Annotated[
        str,
        Strict(),
        Field(min_length=1, max_length=REASON_LENGTH_MAX, pattern=PLAIN_TEXT_PATTERN),
    ]
    idempotency_key: IdempotencyKey | None = None


# An exact fraction as the fork's events keep it ("5/6"): rendered as a decimal.
_FRACTION: Final = re.compile(r"-?[0-9]+/[0-9]+")


def _decimal_if_fraction(value: Any) -> Any:
    if isinstance(value, str) and _FRACTION.fullmatch(value):
        return ratio_text(Fraction(value))
    return value


def factor_responses(factors: list[dict[str, Any]]) -> list[FactorResponse]:
    """The factors as recorded, their fractions (weight, value, inputs such as
    a volatility) as decimals (domain.ratios)."""
    return [
        FactorResponse(
            **{
                **factor,
                "weight": ratio_text(Fraction(factor["weight"])),
                "value": ratio_text(Fraction(factor["value"])),
                "inputs": {
                    name: _decimal_if_fraction(value)
                    for name, value in factor.get("inputs", {}).items()
                },
            }
        )
        for factor in factors
    ]


class MergeOpportunityResponse(BaseModel):
    source_id: UUID
    parent_id: UUID
    tier: TierName
    band: str
    balance: str
    trigger: MergeTrigger
    urgency: MergeUrgency
    reason: str


class MergeOpportunitiesResponse(BaseModel):
    items: list[MergeOpportunityResponse]
