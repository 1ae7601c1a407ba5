"""Withdrawals: request, list, the admins' queue and decisions, Stripe's webhooks.

A request holds its amount at once (a pending transfer to the payouts
clearing account, and a reservation on the funded account), so requests can
never together pass the withdrawable amount. Under 1,000.00 it is approved at
once and the payout worker, woken, pays it out; from 1,000.00 it waits in
`GET /v1/admin/withdrawals?status=pending` for an admin to approve or reject
it. Writes answer with the withdrawal as the view shows it once the view has
the write; reads come from the view. A user sees their own withdrawals only:
another owner's answers 404, exactly like an unknown id.

Webhooks are not called with an API key: Stripe signs them, and a request
whose signature is missing, forged, altered or older than 5 minutes is
refused with 400 before anything is read from it. A verified payout event
settles its withdrawal (paid: completed; failed or canceled: failed) once,
however often and in whatever order it is delivered.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from uuid import UUID, uuid4

import structlog
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from application.withdrawals import PayoutUpdate, WithdrawalRequest
from domain.money import parse_amount
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY
from domain.withdrawal import WithdrawalStatus
from interface.adapters.payouts.stripe_webhooks import WebhookRejected, verify_payout_event
from interface.adapters.persistence.api_keys import Principal
from interface.api.consistency import MinPosition, views_caught_up
from interface.api.deps import (
    Admin,
    Auditor,
    LedgerDep,
    Mover,
    OwnedFundedAccount,
    OwnedFundedAccountDetail,
    Reader,
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
from interface.api.schemas.common import IdempotencyKey
from interface.api.schemas.withdrawals import (
    RejectWithdrawalRequest,
    RequestWithdrawalRequest,
    WebhookReceipt,
    WithdrawalPageResponse,
    WithdrawalResponse,
)
from interface.bootstrap import Ledger
from projections import withdrawals
from projections.account_listing import (
    PAGE_SIZE_DEFAULT,
    encode_cursor,
)
from projections.withdrawals import WithdrawalRow

log = structlog.get_logger(__name__)

router = APIRouter(tags=["withdrawals"])

VIEWS: Final[tuple[str, ...]] = (withdrawals.NAME,)
STRIPE_SIGNATURE_HEADER: Final[str] = "Stripe-Signature"
_CREATED_BEFORE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": WithdrawalResponse, "description": "Requested before: the same withdrawal"}
}


def _not_found(withdrawal_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.WITHDRAWAL_NOT_FOUND,
        f"withdrawal {withdrawal_id} does not exist",
        withdrawal_id=str(withdrawal_id),
    )


WithdrawalStatusFilter = Annotated[
    WithdrawalStatus | None,
    Query(description="Withdrawals in this status only: `pending` waits for a decision."),
]


def _visible_row(
    ledger: Ledger, principal: Principal, withdrawal_id: UUID, position: int | None
) -> WithdrawalRow:
    views_caught_up(ledger, VIEWS, position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        row = withdrawals.withdrawal_row(reading, withdrawal_id)
    if row is None or not principal.may_see_owner(row.owner_id):
        raise _not_found(withdrawal_id)
    return row


def _page(rows: list[WithdrawalRow], limit: int) -> WithdrawalPageResponse:
    page = page_of(rows, limit, lambda row: encode_cursor(row.requested_log_position))
    return WithdrawalPageResponse(
        items=[WithdrawalResponse.of(row) for row in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


# The trader's side ----------------------------------------------------------------


@router.post(
    "/v1/funded-accounts/{funded_account_id}/withdrawals",
    response_model=WithdrawalResponse,
    status_code=201,
    responses=_CREATED_BEFORE | ERROR_RESPONSES,
)
def request_withdrawal_route(
    body: RequestWithdrawalRequest,
    ledger: LedgerDep,
    principal: Mover,
    account: OwnedFundedAccount,
    response: Response,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> WithdrawalResponse:
    """Ask for money out of a funded account. Refused unless the account is
    active (`account_not_active`), holds no open position (`open_positions`),
    and the amount is at least 100.00 (`below_minimum`) and at most the
    withdrawable amount (`exceeds_withdrawable`). Under 1,000.00 it is approved
    and paid out at once; from 1,000.00 an admin decides."""
    outcome = ledger.withdrawals.request(
        WithdrawalRequest(
            funded_account_id=account.id,
            amount_minor=parse_amount(body.amount, TIER_CURRENCY),
            request_key=body.idempotency_key or idempotency_key or str(uuid4()),
            actor=principal.actor,
        )
    )
    if not outcome.created:
        response.status_code = 200
    elif outcome.withdrawal.status is WithdrawalStatus.APPROVED:
        ledger.payout_worker.wake(outcome.withdrawal.id)
    row = _visible_row(ledger, principal, outcome.withdrawal.id, outcome.position)
    return WithdrawalResponse.of(row)


@router.get(
    "/v1/funded-accounts/{funded_account_id}/withdrawals",
    response_model=WithdrawalPageResponse,
    responses=ERROR_RESPONSES,
)
def list_account_withdrawals_route(
    ledger: LedgerDep,
    principal: Reader,
    detail: OwnedFundedAccountDetail,
    status: WithdrawalStatusFilter = None,
    requested_from: CreatedFrom = None,
    requested_to: CreatedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> WithdrawalPageResponse:
    """An account's withdrawals in the order they were requested, in one
    `status` when given (`pending`: waiting for a decision), requested in
    [`from`, `to`)."""
    after = position_after(cursor)
    views_caught_up(ledger, VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = withdrawals.withdrawal_page(
            reading,
            funded_account_id=detail.account.funded_account_id,
            status=status,
            requested_from=requested_from,
            requested_to=requested_to,
            after_position=after,
            limit=limit + 1,
        )
    return _page(rows, limit)


@router.get(
    "/v1/withdrawals/{withdrawal_id}", response_model=WithdrawalResponse, responses=ERROR_RESPONSES
)
def get_withdrawal_route(
    withdrawal_id: UUID, ledger: LedgerDep, principal: Reader, min_position: MinPosition = None
) -> WithdrawalResponse:
    """One withdrawal and where it is in its process."""
    return WithdrawalResponse.of(_visible_row(ledger, principal, withdrawal_id, min_position))


# The admins' side -----------------------------------------------------------------


@router.get(
    "/v1/admin/withdrawals", response_model=WithdrawalPageResponse, responses=ERROR_RESPONSES
)
def list_withdrawals_route(
    ledger: LedgerDep,
    _: Auditor,
    status: WithdrawalStatusFilter = None,
    needs_attention: Annotated[
        bool | None, Query(description="true: the payouts that stopped retrying.")
    ] = None,
    owner_id: OwnerFilter = None,
    funded_account_id: Annotated[
        UUID | None, Query(description="One funded account's withdrawals only.")
    ] = None,
    requested_from: CreatedFrom = None,
    requested_to: CreatedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> WithdrawalPageResponse:
    """Every account's withdrawals, oldest request first: `status=pending` is the
    queue waiting for a decision, `needs_attention=true` the payouts that
    stopped retrying; of one owner or funded account, requested in [`from`,
    `to`), when given."""
    after = position_after(cursor)
    views_caught_up(ledger, VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = withdrawals.withdrawal_page(
            reading,
            funded_account_id=funded_account_id,
            owner_id=owner_id,
            status=status,
            needs_attention=needs_attention,
            requested_from=requested_from,
            requested_to=requested_to,
            after_position=after,
            limit=limit + 1,
        )
    return _page(rows, limit)


@router.post(
    "/v1/admin/withdrawals/{withdrawal_id}/approve",
    response_model=WithdrawalResponse,
    responses=ERROR_RESPONSES,
)
def approve_withdrawal_route(
    withdrawal_id: UUID, ledger: LedgerDep, principal: Admin
) -> WithdrawalResponse:
    """Approve a pending withdrawal; it is paid out next. Anything but a pending
    one answers 409 `withdrawal_not_pending`."""
    ledger.withdrawals.approve(withdrawal_id, principal.actor)
    ledger.payout_worker.wake(withdrawal_id)
    return WithdrawalResponse.of(_visible_row(ledger, principal, withdrawal_id, None))


@router.post(
    "/v1/admin/withdrawals/{withdrawal_id}/reject",
    response_model=WithdrawalResponse,
    responses=ERROR_RESPONSES,
)
def reject_withdrawal_route(
    withdrawal_id: UUID, body: RejectWithdrawalRequest, ledger: LedgerDep, principal: Admin
) -> WithdrawalResponse:
    """Reject a pending withdrawal with the reason: its hold is voided and the
    amount is withdrawable again."""
    ledger.withdrawals.reject(withdrawal_id, body.reason, principal.actor)
    return WithdrawalResponse.of(_visible_row(ledger, principal, withdrawal_id, None))


@router.post(
    "/v1/admin/withdrawals/{withdrawal_id}/resume-payouts",
    response_model=WithdrawalResponse,
    responses=ERROR_RESPONSES,
)
def resume_payouts_route(
    withdrawal_id: UUID, ledger: LedgerDep, principal: Admin
) -> WithdrawalResponse:
    """Start payout attempts again for an approved withdrawal whose retries ran
    out (`needs_attention`), once the processor shows no payout for it."""
    ledger.withdrawals.resume_payouts(withdrawal_id, principal.actor)
    ledger.payout_worker.wake(withdrawal_id)
    return WithdrawalResponse.of(_visible_row(ledger, principal, withdrawal_id, None))


# Stripe ---------------------------------------------------------------------------


@router.post(
    "/v1/webhooks/stripe",
    response_model=WebhookReceipt,
    responses=ERROR_RESPONSES,
    openapi_extra={"security": []},
)
async def stripe_webhook_route(
    request: Request,
    ledger: LedgerDep,
    stripe_signature: Annotated[str | None, Header(alias=STRIPE_SIGNATURE_HEADER)] = None,
) -> WebhookReceipt:
    """Stripe's payout events, signed with the endpoint's secret
    (STRIPE_WEBHOOK_SECRET). No API key: the signature is the credential."""
    secret = ledger.settings.stripe_webhook_secret
    if not secret:
        raise ApiError(
            503,
            "webhook_not_configured",
            "this service has no Stripe webhook secret (STRIPE_WEBHOOK_SECRET)",
        )
    payload = await request.body()
    try:
        event = verify_payout_event(payload, stripe_signature, secret)
    except WebhookRejected as rejected:
        log.warning("stripe_webhook_rejected", reason=rejected.reason.value)
        raise ApiError(
            400,
            "webhook_rejected",
            "the Stripe-Signature does not verify this body (missing, forged, altered or "
            "older than 5 minutes)",
            details={"reason": rejected.reason.value},
        ) from rejected
    if event.payout is None:
        return WebhookReceipt(outcome="ignored")
    update = PayoutUpdate(event.payout, f"stripe-webhook:{event.event_id}")
    try:
        before = await run_in_threadpool(_status_of, ledger, update)
        if before is None:
            log.warning(
                "stripe_webhook_unknown_payout",
                event_id=event.event_id,
                payout_id=event.payout.payout_id,
            )
            return WebhookReceipt(outcome="ignored")
        after = await run_in_threadpool(ledger.withdrawals.apply_payout_update, update)
    except LedgerRefusal as refusal:
        if refusal.code is ResultCode.WITHDRAWAL_NOT_FOUND:
            return WebhookReceipt(outcome="ignored")
        if refusal.code is ResultCode.INVALID_STATE_TRANSITION:
            # Another payout than the one recorded, say: Stripe retrying would
            # not change that. For a person, and for reconciliation.
            log.error(
                "stripe_webhook_contradicts_withdrawal",
                event_id=event.event_id,
                payout_id=event.payout.payout_id,
                message=refusal.message,
            )
            return WebhookReceipt(outcome="conflict")
        raise
    log.info(
        "stripe_webhook_applied",
        event_id=event.event_id,
        event_type=event.event_type,
        withdrawal_id=str(after.id),
        status=after.status.value,
    )
    return WebhookReceipt(outcome="applied" if after.status is not before else "unchanged")


def _status_of(ledger: Ledger, update: PayoutUpdate) -> WithdrawalStatus | None:
    """The withdrawal's status before the update; None if the payout is not ours."""
    withdrawal_id = update.payout.metadata.get("withdrawal_id", "")
    try:
        withdrawal = ledger.withdrawals.withdrawal(UUID(withdrawal_id))
    except ValueError:
        return None
    return None if withdrawal is None else withdrawal.status
