"""Accounts: open one, list them, read one and its balance now or as of a past
time or position. Reads come from the views (directory and balances)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from domain.account import AccountKind, AccountState
from domain.commands import open_account
from interface.adapters.persistence.api_keys import Principal
from interface.api.consistency import MinPosition, tell_position, views_caught_up
from interface.api.deps import (
    LedgerDep,
    Mover,
    OwnedAccountSummary,
    Reader,
    ServiceDep,
    listed_owner,
)
from interface.api.errors import ApiError, status_for
from interface.api.pagination import (
    CreatedFrom,
    CreatedTo,
    CurrencyFilter,
    OwnerFilter,
    PageCursor,
    PageLimit,
    page_of,
    position_after,
)
from interface.api.query_types import POSITION_MAX, IsoTime
from interface.api.responses import ERROR_RESPONSES, refusal_of
from interface.api.schemas.ledger import (
    AccountFlags,
    AccountPageResponse,
    AccountResponse,
    BalanceAsOfResponse,
    BalancesResponse,
    OpenAccountRequest,
)
from projections.account_listing import PAGE_SIZE_DEFAULT, encode_cursor
from projections.account_summaries import SUMMARY_VIEWS, account_summary_page
from projections.balances import balance_as_of

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

_OPENED_BEFORE: dict[int | str, dict[str, Any]] = {
    200: {"model": AccountResponse, "description": "Opened before with this key"}
}
# A user's own account never lets them spend money they do not hold.
_USER_FLAGS = AccountFlags(debits_must_not_exceed_credits=True)


def _terms_for(body: OpenAccountRequest, principal: Principal) -> tuple[str, AccountFlags]:
    if principal.is_user:
        if body.owner_id not in (None, principal.owner_id):
            raise ApiError(403, "forbidden", "a user key opens accounts for its own owner only")
        if body.kind is not AccountKind.USER or body.flags not in (None, _USER_FLAGS):
            raise ApiError(
                403,
                "forbidden",
                "a user key opens user accounts that cannot spend more than they hold",
            )
        assert principal.owner_id is not None
        return principal.owner_id, _USER_FLAGS
    if body.owner_id is None:
        raise ApiError(422, "invalid_request", "owner_id is required for a platform key")
    default_flags = _USER_FLAGS if body.kind is AccountKind.USER else AccountFlags()
    return body.owner_id, body.flags or default_flags


@router.post(
    "",
    response_model=AccountResponse,
    status_code=201,
    responses=_OPENED_BEFORE | ERROR_RESPONSES,
)
def open_account_route(
    body: OpenAccountRequest, service: ServiceDep, principal: Mover, response: Response
) -> AccountResponse:
    """Open an account. Users (role `user`) open their own; admin and service any."""
    owner_id, flags = _terms_for(body, principal)
    command = open_account(
        idempotency_key=body.idempotency_key or f"generated-{uuid.uuid4()}",
        currency=body.currency,
        owner_id=owner_id,
        kind=body.kind,
        debits_must_not_exceed_credits=flags.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=flags.credits_must_not_exceed_debits,
        metadata=body.metadata,
        scope=principal.idempotency_scope,
    )
    receipt = service.execute([command])
    result = receipt.results[0]
    if not result.succeeded:
        raise refusal_of(result)
    account = service.account(command.account_id)
    assert account is not None, "an account the writer acknowledged must be readable"
    response.status_code = status_for(result.code)
    tell_position(response, receipt.position)
    return AccountResponse.of(account)


@router.get("", response_model=AccountPageResponse, responses=ERROR_RESPONSES)
def list_accounts_route(
    ledger: LedgerDep,
    principal: Reader,
    owner_id: OwnerFilter = None,
    kind: Annotated[AccountKind | None, Query(description="Accounts of this kind only.")] = None,
    state: Annotated[AccountState | None, Query(description="Accounts in this state only.")] = None,
    currency: CurrencyFilter = None,
    opened_from: CreatedFrom = None,
    opened_to: CreatedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> AccountPageResponse:
    """Accounts in the order they were opened, a page at a time, of one owner,
    kind, state and currency when given, opened in [`from`, `to`). A user
    lists their own; platform keys list everyone's, or one owner's."""
    owner_id = listed_owner(principal, owner_id, "owner's accounts")
    after = position_after(cursor)
    views_caught_up(ledger, SUMMARY_VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = account_summary_page(
            reading,
            owner_id=owner_id,
            kind=None if kind is None else kind.value,
            state=None if state is None else state.value,
            currency=currency,
            opened_from=opened_from,
            opened_to=opened_to,
            after_position=after,
            limit=limit + 1,
        )
    page = page_of(rows, limit, lambda row: encode_cursor(row.entry.position))
    return AccountPageResponse(
        items=[AccountResponse.of_summary(summary) for summary in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get("/{account_id:uuid}", response_model=AccountResponse, responses=ERROR_RESPONSES)
async def get_account_route(principal: Reader, summary: OwnedAccountSummary) -> AccountResponse:
    """An account with its balances. A user sees only their own (others: 404)."""
    # `async`: the only blocking read is the dependency's, in the thread pool.
    return AccountResponse.of_summary(summary)


@router.get(
    "/{account_id:uuid}/balance", response_model=BalanceAsOfResponse, responses=ERROR_RESPONSES
)
def get_balance_route(
    ledger: LedgerDep,
    principal: Reader,
    summary: OwnedAccountSummary,
    as_of: Annotated[
        IsoTime | None,
        Query(description="A time with its zone (ISO 8601): the balance as the log had it then."),
    ] = None,
    as_of_position: Annotated[
        int | None,
        Query(
            ge=0,
            le=POSITION_MAX,
            description="A log position: the balance after the account's changes recorded "
            "at or before it. Use positions writes answered with (Ledger-Position).",
        ),
    ] = None,
    min_position: MinPosition = None,
) -> BalanceAsOfResponse:
    """The account's balance now, or as of a past time or log position, from
    its balance history (every change the log recorded), not today's row.

    A writer batch records its transfers, then each account's net change for
    the batch; a batch commits whole, so a position inside one (between its
    transfers and an account's change) was never seen on its own. Positions a
    write answered with (`Ledger-Position`, a batch's last) and times are
    exact; the statement shows the same money transfer by transfer."""
    if as_of is not None and as_of_position is not None:
        raise ApiError(422, "invalid_request", "give as_of or as_of_position, not both")
    if as_of is not None and as_of.utcoffset() is None:
        raise ApiError(422, "invalid_request", "as_of needs a time zone, e.g. 2026-11-30T12:00:00Z")
    if as_of_position is not None:
        # The views must have seen the position (a position past the log's
        # end is refused there: 409 position_not_reached).
        views_caught_up(ledger, SUMMARY_VIEWS, max(min_position or 0, as_of_position))
    account_id, currency = summary.entry.account_id, summary.entry.currency
    if as_of_position is None and as_of is None:
        balance = summary.balance
    else:
        with ledger.pool.connection() as connection, connection.cursor() as cursor:
            balance = balance_as_of(cursor, account_id, currency, position=as_of_position, at=as_of)
    return BalanceAsOfResponse(
        account_id=account_id,
        currency=currency,
        balances=BalancesResponse.of_balance(balance),
        as_of_position=as_of_position,
        last_change_position=balance.position,
        as_of=as_of,
    )
