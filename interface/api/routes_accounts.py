"""Accounts: open one, read one."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response

from domain.commands import open_account
from domain.result_codes import LedgerRefusal, ResultCode
from interface.api.deps import PrincipalDep, ServiceDep
from interface.api.errors import status_for
from interface.api.responses import ERROR_RESPONSES, refusal_of
from interface.api.schemas import AccountResponse, OpenAccountRequest

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

_OPENED_BEFORE: dict[int | str, dict[str, Any]] = {
    200: {"model": AccountResponse, "description": "Opened before with this key"}
}


@router.post(
    "",
    response_model=AccountResponse,
    status_code=201,
    responses=_OPENED_BEFORE | ERROR_RESPONSES,
)
def open_account_route(
    body: OpenAccountRequest, service: ServiceDep, principal: PrincipalDep, response: Response
) -> AccountResponse:
    command = open_account(
        idempotency_key=body.idempotency_key or f"generated-{uuid.uuid4()}",
        currency=body.currency,
        owner_id=body.owner_id,
        kind=body.kind,
        debits_must_not_exceed_credits=body.flags.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=body.flags.credits_must_not_exceed_debits,
        metadata=body.metadata,
    )
    result = service.execute([command]).results[0]
    if not result.succeeded:
        raise refusal_of(result)
    account = service.account(command.account_id)
    assert account is not None, "an account the writer acknowledged must be readable"
    response.status_code = status_for(result.code)
    return AccountResponse.of(account)


@router.get("/{account_id}", response_model=AccountResponse, responses=ERROR_RESPONSES)
def get_account_route(
    account_id: UUID, service: ServiceDep, principal: PrincipalDep
) -> AccountResponse:
    account = service.account(account_id)
    if account is None:
        raise LedgerRefusal(ResultCode.ACCOUNT_NOT_FOUND, f"account {account_id} does not exist")
    return AccountResponse.of(account)
