"""Accounts: open one, read one."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from domain.account import Account, AccountKind
from domain.commands import open_account
from domain.result_codes import LedgerRefusal, ResultCode
from interface.account_listing import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, AccountListing
from interface.api.deps import LedgerDep, Mover, Reader, ServiceDep
from interface.api.errors import ApiError, status_for
from interface.api.responses import ERROR_RESPONSES, refusal_of
from interface.api.schemas import (
    AccountFlags,
    AccountPageResponse,
    AccountResponse,
    OpenAccountRequest,
)
from interface.api_keys import Principal

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

_OPENED_BEFORE: dict[int | str, dict[str, Any]] = {
    200: {"model": AccountResponse, "description": "Opened before with this key"}
}
# A user's own account never lets them spend money they do not hold.
_USER_FLAGS = AccountFlags(debits_must_not_exceed_credits=True)


def visible_account(service: ServiceDep, principal: Principal, account_id: UUID) -> Account:
    """The account, if it exists and the caller may see it; 404 alike otherwise."""
    account = service.account(account_id)
    if account is None or not principal.may_see_owner(account.owner_id):
        raise LedgerRefusal(
            ResultCode.ACCOUNT_NOT_FOUND,
            f"account {account_id} does not exist",
            account_id=str(account_id),
        )
    return account


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
    result = service.execute([command]).results[0]
    if not result.succeeded:
        raise refusal_of(result)
    account = service.account(command.account_id)
    assert account is not None, "an account the writer acknowledged must be readable"
    response.status_code = status_for(result.code)
    return AccountResponse.of(account)


@router.get("", response_model=AccountPageResponse, responses=ERROR_RESPONSES)
def list_accounts_route(
    ledger: LedgerDep,
    principal: Reader,
    owner_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
) -> AccountPageResponse:
    """Accounts in the order they were opened, a page at a time. A user lists
    their own; platform keys list everyone's, or one owner's with `owner_id`."""
    if principal.is_user:
        if owner_id not in (None, principal.owner_id):
            raise ApiError(403, "forbidden", "a user key lists its own owner's accounts only")
        owner_id = principal.owner_id
    page = AccountListing(ledger.pool).page(owner_id=owner_id, cursor=cursor, limit=limit)
    items = []
    for account_id in page.account_ids:
        account = ledger.service.account(account_id)
        assert account is not None, "an account with an Opened event exists"
        items.append(AccountResponse.of(account))
    return AccountPageResponse(items=items, next_cursor=page.next_cursor)


@router.get("/{account_id:uuid}", response_model=AccountResponse, responses=ERROR_RESPONSES)
def get_account_route(account_id: UUID, service: ServiceDep, principal: Reader) -> AccountResponse:
    """An account with its balances. A user sees only their own (others: 404)."""
    return AccountResponse.of(visible_account(service, principal, account_id))
