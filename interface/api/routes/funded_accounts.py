"""Funded accounts: activation, reads from their view, and the tier configuration.

Activation (service role) funds the account of a passed assessment through
the writer: the trader's ledger account, its capital from the platform's
funding account and the `Activated` event land in one transaction. It answers
201 with the account as the view shows it once the view has the write (the
same bounded wait as a read of one's own write), or 200 with the account an
earlier identical request made.

Reads come from the `funded_accounts` view, not the aggregates: each first
waits until the view includes the caller's writes (`min_position`, or this
server's last write), so a client reads what it just did. A user sees their
own accounts only; another owner's answers 404, exactly like an unknown id.
Lists are keyset pages on the log position of each account's activation,
behind opaque cursors: no skips or repeats while accounts are activated.

The rule status and the withdrawable amount are worked out from the view's
figures by the domain's rules, as the aggregate works them out; the tiers are
the domain's configuration (domain/tiers.py), the same for every caller.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Query, Response

from application.funded_accounts import ActivationRequest
from domain.funded_account_states import FundedAccountState
from domain.money import parse_amount
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY, TIERS, TierName
from interface.api.consistency import MinPosition, views_caught_up
from interface.api.deps import (
    Admin,
    LedgerDep,
    OwnedFundedAccountDetail,
    Reader,
    ServiceOnly,
    listed_owner,
)
from interface.api.errors import ApiError
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
from interface.api.schemas.funded_accounts import (
    ActivateFundedAccountRequest,
    ChangeFundedAccountStateRequest,
    FundedAccountDetailResponse,
    FundedAccountPageResponse,
    FundedAccountResponse,
    TiersResponse,
)
from projections import funded_accounts
from projections.account_listing import (
    PAGE_SIZE_DEFAULT,
    encode_cursor,
)

router = APIRouter(tags=["funded accounts"])

VIEWS: Final[tuple[str, ...]] = (funded_accounts.NAME,)
ASSESSMENT_PASSED: Final[str] = "passed"
_ACTIVATED_BEFORE: dict[int | str, dict[str, Any]] = {
    200: {"model": FundedAccountDetailResponse, "description": "Activated before: the same account"}
}


@router.get(
    "/v1/funded-accounts", response_model=FundedAccountPageResponse, responses=ERROR_RESPONSES
)
def list_funded_accounts_route(
    ledger: LedgerDep,
    principal: Reader,
    owner_id: OwnerFilter = None,
    state: Annotated[
        FundedAccountState | None, Query(description="Accounts in this state only.")
    ] = None,
    tier: Annotated[TierName | None, Query(description="Accounts of this tier only.")] = None,
    activated_from: CreatedFrom = None,
    activated_to: CreatedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> FundedAccountPageResponse:
    """Funded accounts in the order they were activated, a page at a time, in
    one state and tier when given, activated in [`from`, `to`). A user lists
    their own; platform and auditor keys list everyone's, or one owner's
    with `owner_id`."""
    owner_id = listed_owner(principal, owner_id, "funded accounts")
    after = position_after(cursor)
    views_caught_up(ledger, VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = funded_accounts.funded_account_page(
            reading,
            owner_id=owner_id,
            state=state,
            tier=tier,
            activated_from=activated_from,
            activated_to=activated_to,
            after_position=after,
            limit=limit + 1,
        )
    page = page_of(rows, limit, lambda row: encode_cursor(row.activated_log_position))
    return FundedAccountPageResponse(
        items=[FundedAccountResponse.of(row) for row in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/v1/funded-accounts/{funded_account_id}",
    response_model=FundedAccountDetailResponse,
    responses=ERROR_RESPONSES,
)
async def get_funded_account_route(
    principal: Reader, detail: OwnedFundedAccountDetail
) -> FundedAccountDetailResponse:
    """A funded account: its balance figures, open positions, rule status and
    withdrawable amount. A user sees only their own (others: 404)."""
    # `async`: the only blocking read is the dependency's, in the thread pool.
    return FundedAccountDetailResponse.of_detail(detail)


@router.post(
    "/v1/funded-accounts",
    response_model=FundedAccountDetailResponse,
    status_code=201,
    responses=_ACTIVATED_BEFORE | ERROR_RESPONSES,
)
def activate_funded_account_route(
    body: ActivateFundedAccountRequest,
    ledger: LedgerDep,
    principal: ServiceOnly,
    response: Response,
) -> FundedAccountDetailResponse:
    """Fund the account of a passed assessment, with the tier's starting capital
    (or more) moved from the platform's funding account. At most one account
    per assessment; a failure half-way leaves no account and no money."""
    if body.assessment_status != ASSESSMENT_PASSED:
        raise LedgerRefusal(
            ResultCode.ASSESSMENT_NOT_PASSED,
            f"only a passed assessment is funded, not one that is {body.assessment_status!r}",
            assessment_status=body.assessment_status,
        )
    completed_at = body.completed_at
    if completed_at > ledger.clock.now():
        raise ApiError(422, "invalid_request", "completed_at is in the future")
    activation = ledger.funded_accounts.activate(
        ActivationRequest(
            assessment_id=body.assessment_id,
            owner_id=body.owner_id,
            tier=body.tier,
            profit_split=_profit_split(body.profit_split),
            completed_at=completed_at,
            starting_balance_minor=None
            if body.starting_balance is None
            else parse_amount(body.starting_balance, TIER_CURRENCY),
        ),
        actor=principal.actor,
    )
    if not activation.created:
        response.status_code = 200
    views_caught_up(ledger, VIEWS, activation.position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        detail = funded_accounts.funded_account_detail(reading, activation.account.id)
    assert detail is not None, "the view has reached the activation"
    return FundedAccountDetailResponse.of_detail(detail)


@router.post(
    "/v1/funded-accounts/{funded_account_id}/state",
    response_model=FundedAccountDetailResponse,
    responses=ERROR_RESPONSES,
)
def change_funded_account_state_route(
    funded_account_id: UUID,
    body: ChangeFundedAccountStateRequest,
    ledger: LedgerDep,
    principal: Admin,
) -> FundedAccountDetailResponse:
    """Move an account to another state, with the reason; recorded with the
    admin's key as the actor. A transition the state machine does not allow
    is refused with `invalid_state_transition` naming both states."""
    service = ledger.funded_accounts
    service.require_funded_account(funded_account_id)
    service.change_state(funded_account_id, body.state, body.reason, principal.actor)
    views_caught_up(ledger, VIEWS, None)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        detail = funded_accounts.funded_account_detail(reading, funded_account_id)
    assert detail is not None, "the view has reached the change"
    return FundedAccountDetailResponse.of_detail(detail)


def _profit_split(text: str) -> Fraction:
    """ "4/5" or "0.8", exactly; over 0 and at most 1."""
    try:
        split = Fraction(text)
    except (ValueError, ZeroDivisionError) as error:
        raise ApiError(422, "invalid_request", f"profit_split {text!r} is not a ratio") from error
    if not 0 < split <= 1:
        raise ApiError(422, "invalid_request", "profit_split must be over 0 and at most 1")
    return split


@router.get("/v1/tiers", response_model=TiersResponse, responses=ERROR_RESPONSES)
def list_tiers_route(_: Reader) -> TiersResponse:
    """The account tiers and their limits, in ascending order of capital."""
    return TiersResponse.of(sorted(TIERS.values(), key=lambda tier: tier.minimum_capital_minor))
