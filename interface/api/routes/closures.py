"""Account closure: initiate, follow its progress (also live), and the operators' side.

`POST /v1/accounts/{account_id}/closure` answers at once (202) with the
confirmation number; the closure worker does the rest over the following
days. `{account_id}` is the funded (trading) account's id. Repeating the
request answers 200 with the same closure. Progress is read from the closure
aggregate itself, always current; the operators' list comes from the
closures view. A user sees their own closures only: another owner's answers
404, like an unknown one.

Live progress: `GET /v1/accounts/{account_id}/closure/events` is a stream of
server-sent events, one `progress` event each time the closure moves, fed
by Redis pub/sub when REDIS_URL is set (the worker may run in another
process), by a poll otherwise. It ends when the closure completes, or after
`STREAM_DURATION_MAX_S` (the client reconnects).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import redis.asyncio
import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from application.closures import ClosureRequest
from domain.closure import TRANCHE_MAX_MINOR, Closure, ClosurePhase
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY
from interface.adapters.notifications.closure_progress import (
    CHANNEL_PREFIX_DEFAULT,
    closure_channel,
)
from interface.adapters.persistence.api_keys import Principal
from interface.api.consistency import MinPosition, views_caught_up
from interface.api.deps import (
    Admin,
    LedgerDep,
    Mover,
    OwnedFundedAccountUnderAccounts,
    Reader,
    listed_owner,
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
from interface.api.schemas.closures import (
    OVERDUE_AFTER,
    ClosurePageResponse,
    ClosureResponse,
    ClosureSummaryResponse,
    InitiateClosureRequest,
    ResumeClosureRequest,
    ResumeClosureResponse,
    TrancheResponse,
)
from interface.api.schemas.common import money
from interface.bootstrap import Ledger
from projections import closures as closures_view
from projections.account_listing import (
    PAGE_SIZE_DEFAULT,
    encode_cursor,
)

log = structlog.get_logger(__name__)

router = APIRouter(tags=["closures"])

VIEWS: Final[tuple[str, ...]] = (closures_view.NAME,)
# The live stream: how often it looks when no Redis message comes, how often it
# says it is alive, and how long it lasts before the client reconnects.
STREAM_POLL_S: Final[float] = 1.0
STREAM_HEARTBEAT_S: Final[float] = 15.0
STREAM_DURATION_MAX_S: Final[float] = 600.0


_INITIATED_BEFORE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "Initiated before: the same closure"}
}


_NEXT_ACTIONS: Final[dict[ClosurePhase, str]] = {
    ClosurePhase.INITIATED: "send the starting email and start liquidating",
    ClosurePhase.LIQUIDATING: "cancel open orders and close every position",
    ClosurePhase.SETTLING: "check that the trades have settled (T+1)",
    ClosurePhase.WITHDRAWING: "pay out the next tranche, or check the one in flight",
    ClosurePhase.CLOSING: "return the rest to the platform, close, send the completion email",
}


def _progress(ledger: Ledger, closure: Closure) -> ClosureResponse:
    remaining = 0
    if closure.phase not in (ClosurePhase.CLOSING, ClosurePhase.COMPLETED):
        account = ledger.funded_accounts.funded_account(closure.funded_account_id)
        left = account.withdrawable_minor() if account is not None else 0
        in_flight = closure.tranche_in_flight
        remaining = math.ceil(left / TRANCHE_MAX_MINOR) + (1 if in_flight is not None else 0)
    return ClosureResponse(
        id=closure.id,
        funded_account_id=closure.funded_account_id,
        confirmation_number=closure.confirmation_number,
        phase=closure.phase,
        phases_entered={
            phase: datetime.fromisoformat(at) for phase, at in closure.phase_history.items()
        },
        needs_attention=closure.stuck,
        stuck_reason=closure.stuck_reason,
        next_action=None
        if closure.is_completed
        else ("wait for an operator" if closure.stuck else _NEXT_ACTIONS[closure.phase]),
        next_action_at=closure.next_action_at,
        deadline_at=closure.deadline_at,
        failed_attempts=closure.failed_attempts,
        last_error=closure.last_error,
        settles_at=closure.settles_at,
        tranches=[
            TrancheResponse(
                number=tranche["number"],
                attempt=tranche["attempt"],
                withdrawal_id=UUID(tranche["withdrawal_id"]),
                amount=money(tranche["amount_minor"]),
                status=tranche["status"],
                requested_at=datetime.fromisoformat(tranche["requested_at"]),
                settled_at=datetime.fromisoformat(tranche["settled_at"])
                if tranche["settled_at"]
                else None,
                payout_id=tranche["payout_id"],
            )
            for tranche in closure.tranches
        ],
        tranches_done=closure.tranches_completed,
        tranches_remaining=remaining,
        total_paid=money(closure.total_paid_minor),
        currency=TIER_CURRENCY,
        initiated_at=closure.initiated_at,
        completed_at=closure.completed_at,
    )


def _visible_closure(ledger: Ledger, principal: Principal, account_id: UUID) -> Closure:
    closure = ledger.closures.closure_of(account_id)
    if closure is None or not principal.may_see_owner(closure.owner_id):
        raise LedgerRefusal(
            ResultCode.CLOSURE_NOT_FOUND,
            f"funded account {account_id} has no closure",
            funded_account_id=str(account_id),
        )
    return closure


@router.post(
    "/v1/accounts/{account_id}/closure",
    response_model=ClosureResponse,
    status_code=202,
    responses=_INITIATED_BEFORE | ERROR_RESPONSES,
)
def initiate_closure_route(
    body: InitiateClosureRequest,
    ledger: LedgerDep,
    principal: Mover,
    account: OwnedFundedAccountUnderAccounts,
    response: Response,
) -> ClosureResponse:
    """Start closing a funded account (its id): it goes PENDING_CLOSURE now,
    and the closure liquidates, settles, pays out in tranches and closes over
    the following days. Answers at once with the confirmation number."""
    outcome = ledger.closures.initiate(
        ClosureRequest(
            funded_account_id=account.id,
            recipient_name=body.recipient_name,
            recipient_address=body.recipient_email,
            reason=body.reason,
            actor=principal.actor,
        )
    )
    if outcome.created:
        ledger.closure_worker.wake(outcome.closure.id)
    else:
        response.status_code = 200
    return _progress(ledger, outcome.closure)


@router.get(
    "/v1/accounts/{account_id}/closure",
    response_model=ClosureResponse,
    responses=ERROR_RESPONSES,
)
def closure_progress_route(
    account_id: UUID, ledger: LedgerDep, principal: Reader
) -> ClosureResponse:
    """Where the closure is: its phase, tranches paid and left, what it does
    next and when, and whether it needs attention."""
    return _progress(ledger, _visible_closure(ledger, principal, account_id))


@router.get(
    "/v1/accounts/{account_id}/closure/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events: `progress` (the closure, as JSON) each time it "
            "moves; the stream ends when it completes",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **{status: ERROR_RESPONSES[status] for status in (401, 403, 404, 429)},
    },
)
async def closure_events_route(
    account_id: UUID, request: Request, ledger: LedgerDep, principal: Reader
) -> StreamingResponse:
    """Live progress of the closure, as server-sent events."""
    closure = await run_in_threadpool(_visible_closure, ledger, principal, account_id)
    return StreamingResponse(
        _progress_stream(request, ledger, closure.id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _progress_stream(
    request: Request, ledger: Ledger, closure_id: UUID
) -> AsyncIterator[bytes]:
    subscriber = await _subscribe(ledger, closure_id)
    started = time.monotonic()
    last_version = -1
    last_sent = started
    try:
        while time.monotonic() - started < STREAM_DURATION_MAX_S:
            closure = await run_in_threadpool(ledger.closures.require_closure, closure_id)
            if closure.version != last_version:
                last_version = closure.version
                # The figures read the funded account: not on the event loop.
                progress = await run_in_threadpool(_progress, ledger, closure)
                body = progress.model_dump_json()
                yield f"id: {closure.version}\nevent: progress\ndata: {body}\n\n".encode()
                last_sent = time.monotonic()
                if closure.is_completed:
                    return
            elif time.monotonic() - last_sent >= STREAM_HEARTBEAT_S:
                yield b": still here\n\n"
                last_sent = time.monotonic()
            if await request.is_disconnected():
                return
            await _next_change(subscriber)
    finally:
        if subscriber is not None:
            await _unsubscribe(subscriber)


async def _subscribe(ledger: Ledger, closure_id: UUID) -> Any:
    """A Redis subscription to the closure's channel, or None (poll instead)."""
    if not ledger.settings.redis_url:
        return None
    try:
        client = redis.asyncio.Redis.from_url(ledger.settings.redis_url)
        subscriber = client.pubsub()
        await subscriber.subscribe(closure_channel(CHANNEL_PREFIX_DEFAULT, closure_id))
    except (RedisError, OSError) as error:
        log.warning("closure_events_poll_instead", error=str(error))
        return None
    return subscriber


async def _next_change(subscriber: Any) -> None:
    """Until a message on the channel, or the poll interval."""
    if subscriber is None:
        await asyncio.sleep(STREAM_POLL_S)
        return
    try:
        await subscriber.get_message(ignore_subscribe_messages=True, timeout=STREAM_POLL_S)
    except (RedisError, OSError):
        await asyncio.sleep(STREAM_POLL_S)


async def _unsubscribe(subscriber: Any) -> None:
    try:
        await subscriber.aclose()
    except (RedisError, OSError):
        log.warning("closure_events_unsubscribe_failed")


# Operators ------------------------------------------------------------------------


@router.get("/v1/closures", response_model=ClosurePageResponse, responses=ERROR_RESPONSES)
def list_closures_route(
    ledger: LedgerDep,
    principal: Reader,
    status: Annotated[
        Literal["stuck", "active", "completed"] | None,
        Query(description="stuck: they need a person; active: not completed; completed."),
    ] = None,
    owner_id: OwnerFilter = None,
    funded_account_id: Annotated[
        UUID | None, Query(description="One funded account's closures only.")
    ] = None,
    initiated_from: CreatedFrom = None,
    initiated_to: CreatedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> ClosurePageResponse:
    """Closures in the order they were initiated. `status=stuck`: those that
    need a person (marked stuck, or overdue by an hour: no worker ran them);
    `active`; `completed`. Of one owner or funded account, initiated in
    [`from`, `to`), when given. A user lists their own."""
    owner_id = listed_owner(principal, owner_id, "closures")
    after = position_after(cursor)
    views_caught_up(ledger, VIEWS, min_position)
    now = ledger.clock.now()
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = closures_view.closure_list(
            reading,
            status=status,
            owner_id=owner_id,
            now=now,
            overdue_after=OVERDUE_AFTER,
            funded_account_id=funded_account_id,
            initiated_from=initiated_from,
            initiated_to=initiated_to,
            after_position=after,
            limit=limit + 1,
        )
    page = page_of(rows, limit, lambda row: encode_cursor(row.initiated_log_position))
    return ClosurePageResponse(
        items=[ClosureSummaryResponse.of(row, now) for row in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.post(
    "/v1/closures/{closure_id}/resume",
    response_model=ResumeClosureResponse,
    responses=ERROR_RESPONSES,
)
def resume_closure_route(
    closure_id: UUID, body: ResumeClosureRequest, ledger: LedgerDep, principal: Admin
) -> ResumeClosureResponse:
    """Resume a stuck closure: its phase is tried again now, with a new
    deadline (`dry_run`: only say so). Not stuck: 409."""
    plan = ledger.closures.resume_plan(closure_id)
    closure = plan.closure
    if not body.dry_run:
        closure = ledger.closures.resume(closure_id, principal.actor)
    return ResumeClosureResponse(
        dry_run=body.dry_run,
        phase=plan.phase,
        deadline_at=plan.deadline_at,
        closure=_progress(ledger, closure),
    )
