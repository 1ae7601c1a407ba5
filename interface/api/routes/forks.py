"""Forks and merges: opportunities, proposals, approvals, status.

A fork hands capital from an account past its tier's threshold to a new
child of the next tier; a merge moves capital back into the parent, into a
sibling or into a new account (domain/fork.py, domain/merge.py). Proposals
are for the platform (admin and service keys); approvals for admins; reads
for every role, a user seeing only forks and merges of their own accounts.
Each answer is the process as its aggregate holds it, always current.
"""

from __future__ import annotations

from typing import Annotated, Final
from uuid import UUID, uuid4

from fastapi import APIRouter, Header, Query

from application.merges import MergeRequest
from domain.fork import ForkStatus, fork_plan
from domain.merge import MergeTrigger, MergeUrgency
from domain.money import parse_amount
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY, TIERS, TierName
from interface.adapters.persistence.api_keys import Principal
from interface.api.consistency import MinPosition, views_caught_up
from interface.api.deps import (
    Admin,
    LedgerDep,
    Operator,
    Platform,
    Reader,
    listed_owner,
    visible_funded_account,
)
from interface.api.pagination import (
    CreatedFrom,
    CreatedTo,
    OwnerFilter,
    PageCursor,
    PageLimit,
    page_of,
    position_after,
)
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.common import IdempotencyKey, money, ratio_text
from interface.api.schemas.forks import (
    ForkOpportunitiesResponse,
    ForkOpportunityResponse,
    ForkPageResponse,
    ForkResponse,
    MergeOpportunitiesResponse,
    MergeOpportunityResponse,
    MergeResponse,
    ProposeForkRequest,
    ProposeMergeRequest,
    factor_responses,
)
from interface.bootstrap import Ledger
from projections import daily_values, funded_accounts, hierarchy
from projections import forks as forks_view
from projections.account_listing import PAGE_SIZE_DEFAULT, encode_cursor

router = APIRouter(tags=["forks and merges"])

# An account with no position and no trade closed for this long holds idle capital.
IDLE_AFTER_DAYS: Final[int] = 30


def _require_visible(
    ledger: Ledger, principal: Principal, funded_account_id: UUID, hidden: LedgerRefusal
) -> None:
    """A user sees the forks and merges of their own accounts only; another
    owner's answers `hidden`, the same 404 as an unknown id."""
    try:
        visible_funded_account(ledger, principal, funded_account_id)
    except LedgerRefusal as refusal:
        raise hidden from refusal


# Forks --------------------------------------------------------------------------------


@router.get("/v1/forks", response_model=ForkPageResponse, responses=ERROR_RESPONSES)
def list_forks_route(
    ledger: LedgerDep,
    principal: Reader,
    status: Annotated[ForkStatus | None, Query(description="Forks in this status only.")] = None,
    funded_account_id: Annotated[
        UUID | None, Query(description="Forks of this parent funded account only.")
    ] = None,
    owner_id: OwnerFilter = None,
    proposed_from: CreatedFrom = None,
    proposed_to: CreatedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> ForkPageResponse:
    """Forks in the order they were proposed, in one status, of one parent
    account or owner, proposed in [`from`, `to`), when given; each as its
    aggregate holds it. A user lists the forks of their own accounts."""
    owner_id = listed_owner(principal, owner_id, "forks")
    after = position_after(cursor)
    views_caught_up(ledger, (forks_view.NAME, funded_accounts.NAME), min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = forks_view.fork_page(
            reading,
            status=status,
            parent_id=funded_account_id,
            owner_id=owner_id,
            proposed_from=proposed_from,
            proposed_to=proposed_to,
            after_position=after,
            limit=limit + 1,
        )
    page = page_of(rows, limit, lambda row: encode_cursor(row.proposed_log_position))
    # One query for the page's aggregates, not one per row: the view lacks
    # what a fork answers with (its factors, decision and approver).
    forks = ledger.forks.require_forks([row.fork_id for row in page.items])
    return ForkPageResponse(
        items=[ForkResponse.of(fork) for fork in forks],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/v1/forks/opportunities",
    response_model=ForkOpportunitiesResponse,
    responses=ERROR_RESPONSES,
)
def fork_opportunities_route(
    ledger: LedgerDep,
    _: Operator,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
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
                balance=money(row.current_balance_minor),
                threshold=money(tier.fork_threshold_minor),
                amount=money(plan.amount_minor),
                executable_from=money(plan.executable_from_minor),
                executable_now=row.current_balance_minor - row.reserved_withdrawals_minor
                >= plan.executable_from_minor,
                confidence=ratio_text(confidence.score),
                factors=factor_responses([factor.as_record() for factor in confidence.factors]),
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
    hidden = LedgerRefusal(ResultCode.FORK_NOT_FOUND, f"no fork {fork_id}", fork_id=str(fork_id))
    _require_visible(ledger, principal, fork.parent_id, hidden)
    return ForkResponse.of(fork)


@router.post("/v1/forks/{fork_id}/approve", response_model=ForkResponse, responses=ERROR_RESPONSES)
def approve_fork_route(fork_id: UUID, ledger: LedgerDep, principal: Admin) -> ForkResponse:
    """Approve a fork below the confidence bar; it executes at once (or, with
    five executing, by the next `ledger forks scan`)."""
    return ForkResponse.of(ledger.forks.approve(fork_id, principal.actor).fork)


# Merges -------------------------------------------------------------------------------


@router.get(
    "/v1/merges/opportunities",
    response_model=MergeOpportunitiesResponse,
    responses=ERROR_RESPONSES,
)
def merge_opportunities_route(
    ledger: LedgerDep,
    _: Operator,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
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
                balance=money(candidate.balance_minor),
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
    hidden = LedgerRefusal(
        ResultCode.MERGE_NOT_FOUND, f"no merge {merge_id}", merge_id=str(merge_id)
    )
    _require_visible(ledger, principal, merge.source_id, hidden)
    return MergeResponse.of(merge)


@router.post(
    "/v1/merges/{merge_id}/approve", response_model=MergeResponse, responses=ERROR_RESPONSES
)
def approve_merge_route(merge_id: UUID, ledger: LedgerDep, principal: Admin) -> MergeResponse:
    """Approve a merge waiting for an admin; it executes at once."""
    return MergeResponse.of(ledger.merges.approve(merge_id, principal.actor))
