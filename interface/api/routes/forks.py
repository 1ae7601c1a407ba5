"""Forks and merges: opportunities, proposals, approvals, status.

A fork hands capital from an account past its tier's threshold to a new
child of the next tier; a merge moves capital back into the parent, into a
sibling or into a new account (domain/fork.py, domain/merge.py). Proposals
are for the platform (admin and service keys); approvals for admins; reads
for every role, a user seeing only forks and merges of their own accounts.
Each answer is the process as its aggregate holds it, always current.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID, uuid4

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field, Strict

from application.merges import MergeRequest
from domain.fork import (
    AUTO_APPROVAL_CONFIDENCE,
    EXECUTE_AT_ONCE_CONFIDENCE,
    Fork,
    ForkDecision,
    ForkStatus,
    fork_plan,
)
from domain.merge import Merge, MergeStatus, MergeTarget, MergeTrigger, MergeUrgency
from domain.money import format_amount, parse_amount
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY, TIERS, TierName
from interface.api.consistency import views_caught_up
from interface.api.deps import (
    Admin,
    LedgerDep,
    Operator,
    Platform,
    Reader,
    visible_funded_account,
)
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.ledger import PLAIN_TEXT_PATTERN, Amount, IdempotencyKey
from projections import daily_values, funded_accounts, hierarchy
from projections.account_listing import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX

router = APIRouter(tags=["forks and merges"])

REASON_LENGTH_MAX: Final[int] = 500
# An account with no position and no trade closed for this long holds idle capital.
IDLE_AFTER_DAYS: Final[int] = 30


class FactorResponse(BaseModel):
    name: str
    weight: str = Field(description="Exact fraction, e.g. 1/2.")
    value: str = Field(description="The factor, from 0 to 1, as an exact fraction.")
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
    confidence: float = Field(description="The weighted sum of the factors, from 0 to 1.")
    confidence_needed: float = Field(description="At least this approves a fork by itself.")
    confidence_to_execute_at_once: float = Field(
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
            amount=format_amount(fork.amount_minor, TIER_CURRENCY),
            currency=TIER_CURRENCY,
            status=fork.status,
            confidence=float(fork.confidence),
            confidence_needed=float(AUTO_APPROVAL_CONFIDENCE),
            confidence_to_execute_at_once=float(EXECUTE_AT_ONCE_CONFIDENCE),
            decision=fork.decision,
            factors=_factors(fork.factors),
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
    confidence: float
    factors: list[FactorResponse]


class ForkOpportunitiesResponse(BaseModel):
    items: list[ForkOpportunityResponse]


class ProposeForkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    confidence: float | None = Field(
        description="Consolidation confidence: trigger reliability 30 %, benefit magnitude "
        "40 %, risk assessment 30 %; null on merges proposed before it was recorded."
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
            amount=None
            if merge.amount_minor is None
            else format_amount(merge.amount_minor, TIER_CURRENCY),
            moved=None
            if merge.moved_minor is None
            else format_amount(merge.moved_minor, TIER_CURRENCY),
            currency=TIER_CURRENCY,
            trigger=merge.trigger,
            urgency=merge.urgency,
            reason=merge.reason,
            status=merge.status,
            confidence=None if merge.confidence is None else float(merge.confidence),
            confidence_factors=merge.confidence_factors,
            approved_by=merge.approved_by,
            rollback_reason=merge.rollback_reason,
            proposed_at=merge.proposed_at,
            updated_at=merge.updated_at,
        )


class ProposeMergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


def _factors(factors: list[dict[str, Any]]) -> list[FactorResponse]:
    return [FactorResponse(**factor) for factor in factors]


# Forks --------------------------------------------------------------------------------


@router.get(
    "/v1/forks/opportunities",
    response_model=ForkOpportunitiesResponse,
    responses=ERROR_RESPONSES,
)
def fork_opportunities_route(
    ledger: LedgerDep,
    _: Operator,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
) -> ForkOpportunitiesResponse:
    """Active accounts past their tier's fork threshold, each with what a fork
    would move, whether it could execute now, and its confidence now."""
    thresholds = {
        tier.name.value: tier.fork_threshold_minor
        for tier in TIERS.values()
        if tier.fork_threshold_minor is not None
    }
    views_caught_up(ledger, (funded_accounts.NAME,), None)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = funded_accounts.fork_candidates(reading, thresholds, after_position=0, limit=limit)
    items = []
    for row in rows:
        tier = TIERS[TierName(row.tier)]
        plan = fork_plan(tier.name)
        if plan is None or tier.fork_threshold_minor is None:
            continue
        confidence = ledger.forks.assess(row.funded_account_id)
        items.append(
            ForkOpportunityResponse(
                funded_account_id=row.funded_account_id,
                owner_id=row.owner_id,
                tier=tier.name,
                child_tier=plan.child_tier,
                balance=format_amount(row.current_balance_minor, TIER_CURRENCY),
                threshold=format_amount(tier.fork_threshold_minor, TIER_CURRENCY),
                amount=format_amount(plan.amount_minor, TIER_CURRENCY),
                executable_from=format_amount(plan.executable_from_minor, TIER_CURRENCY),
                executable_now=row.current_balance_minor - row.reserved_withdrawals_minor
                >= plan.executable_from_minor,
                confidence=float(confidence.score),
                factors=_factors([factor.as_record() for factor in confidence.factors]),
            )
        )
    return ForkOpportunitiesResponse(items=items)


@router.post("/v1/forks", response_model=ForkResponse, status_code=201, responses=ERROR_RESPONSES)
def propose_fork_route(
    body: ProposeForkRequest, ledger: LedgerDep, principal: Platform
) -> ForkResponse:
    """Propose a fork of an account past its tier's threshold (one attempt per
    account per 24 hours: `fork_cooldown` with when it ends). From 80 %
    confidence it is approved and executed at once; from 70 % approved and
    executed at its execution step (the next scan, or `execute`); below, an
    admin decides."""
    return ForkResponse.of(ledger.forks.propose(body.funded_account_id, principal.actor).fork)


@router.post("/v1/forks/{fork_id}/execute", response_model=ForkResponse, responses=ERROR_RESPONSES)
def execute_fork_route(fork_id: UUID, ledger: LedgerDep, _: Admin) -> ForkResponse:
    """Execute an approved fork now (one that waits for its execution step);
    a fork executed before answers as it is. Five executing: 409
    `fork_capacity_reached`."""
    return ForkResponse.of(ledger.forks.execute(fork_id).fork)


@router.get("/v1/forks/{fork_id}", response_model=ForkResponse, responses=ERROR_RESPONSES)
def get_fork_route(fork_id: UUID, ledger: LedgerDep, principal: Reader) -> ForkResponse:
    """A fork: its status, confidence and factors, the child it made."""
    fork = ledger.forks.require_fork(fork_id)
    try:
        visible_funded_account(ledger, principal, fork.parent_id)
    except LedgerRefusal as hidden:
        raise LedgerRefusal(
            ResultCode.FORK_NOT_FOUND, f"no fork {fork_id}", fork_id=str(fork_id)
        ) from hidden
    return ForkResponse.of(fork)


@router.post("/v1/forks/{fork_id}/approve", response_model=ForkResponse, responses=ERROR_RESPONSES)
def approve_fork_route(fork_id: UUID, ledger: LedgerDep, principal: Admin) -> ForkResponse:
    """Approve a fork below the confidence bar; it executes at once (or, with
    five executing, by the next `ledger forks scan`)."""
    return ForkResponse.of(ledger.forks.approve(fork_id, principal.actor).fork)


# Merges -------------------------------------------------------------------------------


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


@router.get(
    "/v1/merges/opportunities",
    response_model=MergeOpportunitiesResponse,
    responses=ERROR_RESPONSES,
)
def merge_opportunities_route(
    ledger: LedgerDep,
    _: Operator,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
) -> MergeOpportunitiesResponse:
    """Children worth merging back, with the trigger and urgency a proposal
    would carry: a rule band past safe is `risk` (danger or violation:
    critical; warning: high); no position and no trade closed for 30 days is
    `idle_capital` (low)."""
    views_caught_up(ledger, (hierarchy.NAME, funded_accounts.NAME, daily_values.NAME), None)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        candidates = hierarchy.merge_candidates(
            reading,
            today=ledger.clock.now().date(),
            idle_after_days=IDLE_AFTER_DAYS,
            limit=limit,
        )
    items = []
    for candidate in candidates:
        if candidate.band != "safe":
            trigger = MergeTrigger.RISK
            urgency = MergeUrgency.HIGH if candidate.band == "warning" else MergeUrgency.CRITICAL
            reason = f"the account is in the {candidate.band} band"
        else:
            trigger, urgency = MergeTrigger.IDLE_CAPITAL, MergeUrgency.LOW
            since = "ever" if candidate.idle_days is None else f"{candidate.idle_days} days"
            reason = f"no position and no trade closed for {since}"
        items.append(
            MergeOpportunityResponse(
                source_id=candidate.funded_account_id,
                parent_id=candidate.parent_id,
                tier=TierName(candidate.tier),
                band=candidate.band,
                balance=format_amount(candidate.balance_minor, TIER_CURRENCY),
                trigger=trigger,
                urgency=urgency,
                reason=reason,
            )
        )
    return MergeOpportunitiesResponse(items=items)


@router.post("/v1/merges", response_model=MergeResponse, status_code=201, responses=ERROR_RESPONSES)
def propose_merge_route(
    body: ProposeMergeRequest,
    ledger: LedgerDep,
    principal: Platform,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> MergeResponse:
    """Merge an account's capital into its parent, a sibling or a new account,
    whole or partially. Manual and critical merges run at once; the others
    wait for an admin. Positions must be closed first (`open_positions`)."""
    merge = ledger.merges.propose(
        MergeRequest(
            source_id=body.source_id,
            target_kind=body.target_kind,
            target_id=body.target_id,
            amount_minor=None if body.amount is None else parse_amount(body.amount, TIER_CURRENCY),
            trigger=body.trigger,
            urgency=body.urgency,
            reason=body.reason,
            request_key=body.idempotency_key or idempotency_key or str(uuid4()),
            actor=principal.actor,
        )
    )
    return MergeResponse.of(merge)


@router.get("/v1/merges/{merge_id}", response_model=MergeResponse, responses=ERROR_RESPONSES)
def get_merge_route(merge_id: UUID, ledger: LedgerDep, principal: Reader) -> MergeResponse:
    merge = ledger.merges.require_merge(merge_id)
    try:
        visible_funded_account(ledger, principal, merge.source_id)
    except LedgerRefusal as hidden:
        raise LedgerRefusal(
            ResultCode.MERGE_NOT_FOUND, f"no merge {merge_id}", merge_id=str(merge_id)
        ) from hidden
    return MergeResponse.of(merge)


@router.post(
    "/v1/merges/{merge_id}/approve", response_model=MergeResponse, responses=ERROR_RESPONSES
)
def approve_merge_route(merge_id: UUID, ledger: LedgerDep, principal: Admin) -> MergeResponse:
    """Approve a merge waiting for an admin; it executes at once."""
    return MergeResponse.of(ledger.merges.approve(merge_id, principal.actor))
