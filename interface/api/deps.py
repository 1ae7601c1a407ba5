"""Route dependencies, as `Annotated` aliases, in one place.

Every route names who may call it with one of the role aliases below. A
route on one account declares whose it is with an ownership alias (a user
sees only their own accounts): it loads the account or answers 404, then
answers 404 alike when the caller may not see it, so a caller never learns
whether another owner's id exists.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from uuid import UUID

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from application.ledger_use_cases import LedgerService
from domain.account import Account
from domain.funded_account import FundedAccount
from domain.result_codes import LedgerRefusal, ResultCode
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.persistence.api_keys import ApiKeyStore, Principal, Role
from interface.api.consistency import MinPosition, views_caught_up
from interface.api.errors import ApiError
from interface.api.middleware.authentication import PRINCIPAL_STATE_KEY
from interface.bootstrap import Ledger
from projections import funded_accounts
from projections.account_summaries import SUMMARY_VIEWS, AccountSummary, account_summaries
from projections.funded_accounts import FundedAccountDetail

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `ledger keys create`: `Authorization: Bearer ldg_...`",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


# Dependencies are `async def` where they do no I/O: FastAPI runs a plain
# `def` dependency in the thread pool, a hand-off per dependency per request.


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def get_service(request: Request) -> LedgerService:
    ledger: Ledger = request.app.state.ledger
    return ledger.service


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    # On /v1 the authentication middleware has already decided.
    authenticated: Principal | None = getattr(request.state, PRINCIPAL_STATE_KEY, None)
    if authenticated is not None:
        return authenticated
    if credentials is None:
        raise ApiError(
            401,
            "unauthenticated",
            "send an API key as the header Authorization: Bearer <key>",
            headers=_CHALLENGE,
        )
    api_keys: ApiKeyStore = request.app.state.ledger.api_keys
    principal = await run_in_threadpool(api_keys.authenticate, credentials.credentials)
    if principal is None:
        raise ApiError(
            401,
            "invalid_api_key",
            "the API key is unknown, revoked or malformed",
            headers=_CHALLENGE,
        )
    request.state.principal = principal
    _bind_actor(principal)
    return principal


def _bind_actor(principal: Principal) -> None:
    structlog.contextvars.bind_contextvars(
        actor_key_id=str(principal.key_id), actor_role=principal.role.value
    )


def allow(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    allowed = frozenset(roles)

    async def require_role(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if principal.role not in allowed:
            raise ApiError(
                403,
                "forbidden",
                f"this route is for the roles: {', '.join(sorted(role.value for role in allowed))}",
            )
        return principal

    return require_role


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ServiceDep = Annotated[LedgerService, Depends(get_service)]
# Who may call a route.
Reader = Annotated[Principal, Depends(allow(Role.USER, Role.ADMIN, Role.AUDITOR, Role.SERVICE))]
Mover = Annotated[Principal, Depends(allow(Role.USER, Role.ADMIN, Role.SERVICE))]
Platform = Annotated[Principal, Depends(allow(Role.ADMIN, Role.SERVICE))]
Operator = Annotated[Principal, Depends(allow(Role.ADMIN, Role.AUDITOR, Role.SERVICE))]
Auditor = Annotated[Principal, Depends(allow(Role.ADMIN, Role.AUDITOR))]
Admin = Annotated[Principal, Depends(allow(Role.ADMIN))]
ServiceOnly = Annotated[Principal, Depends(allow(Role.SERVICE))]


# Ownership ---------------------------------------------------------------------------
# Declare an ownership alias after the route's role alias: FastAPI solves
# dependencies in order, so a caller of the wrong role hears 403 before any
# account is looked up. Each alias reads the id under the name the path gives
# it; the checks themselves are the functions below, also called directly
# where the id comes from a body or a query.

CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def listed_owner(principal: Principal, owner_id: str | None, listed: str) -> str | None:
    """The owner a list is narrowed to: a user key's own (403 when it asks
    for another's), or what a platform or auditor key asks for (None: all)."""
    if not principal.is_user:
        return owner_id
    if owner_id not in (None, principal.owner_id):
        raise ApiError(403, "forbidden", f"a user key lists its own {listed} only")
    return principal.owner_id


def account_not_found(account_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.ACCOUNT_NOT_FOUND,
        f"account {account_id} does not exist",
        account_id=str(account_id),
    )


def funded_account_not_found(funded_account_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.FUNDED_ACCOUNT_NOT_FOUND,
        f"funded account {funded_account_id} does not exist",
        funded_account_id=str(funded_account_id),
    )


def visible_account(service: LedgerService, principal: Principal, account_id: UUID) -> Account:
    """The ledger account as its aggregate holds it, if the caller may see it."""
    account = service.account(account_id)
    if account is None or not principal.may_see_owner(account.owner_id):
        raise account_not_found(account_id)
    return account


def visible_account_summary(
    ledger: Ledger, principal: Principal, account_id: UUID, min_position: int | None
) -> AccountSummary:
    """The ledger account from the views, once they include the caller's
    writes, if the caller may see it."""
    views_caught_up(ledger, SUMMARY_VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        summary = account_summaries(cursor, [account_id]).get(account_id)
    if summary is None or not principal.may_see_owner(summary.entry.owner_id):
        raise account_not_found(account_id)
    return summary


def visible_funded_account(
    ledger: Ledger, principal: Principal, funded_account_id: UUID
) -> FundedAccount:
    """The funded account as its aggregate holds it (always current: what a
    write acts on), if the caller may see it."""
    account = ledger.funded_accounts.funded_account(funded_account_id)
    if account is None or not principal.may_see_owner(account.owner_id):
        raise funded_account_not_found(funded_account_id)
    return account


def visible_funded_account_detail(
    ledger: Ledger, principal: Principal, funded_account_id: UUID, min_position: int | None
) -> FundedAccountDetail:
    """The funded account from its view, once the view includes the caller's
    writes, if the caller may see it."""
    views_caught_up(ledger, (funded_accounts.NAME,), min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        detail = funded_accounts.funded_account_detail(reading, funded_account_id)
    if detail is None or not principal.may_see_owner(detail.account.owner_id):
        raise funded_account_not_found(funded_account_id)
    return detail


def _account_summary(
    account_id: UUID,
    ledger: LedgerDep,
    principal: CurrentPrincipal,
    min_position: MinPosition = None,
) -> AccountSummary:
    return visible_account_summary(ledger, principal, account_id, min_position)


def _funded_account(
    funded_account_id: UUID, ledger: LedgerDep, principal: CurrentPrincipal
) -> FundedAccount:
    return visible_funded_account(ledger, principal, funded_account_id)


def _funded_account_under_accounts(
    account_id: UUID, ledger: LedgerDep, principal: CurrentPrincipal
) -> FundedAccount:
    return visible_funded_account(ledger, principal, account_id)


def _funded_account_detail(
    funded_account_id: UUID,
    ledger: LedgerDep,
    principal: CurrentPrincipal,
    min_position: MinPosition = None,
) -> FundedAccountDetail:
    return visible_funded_account_detail(ledger, principal, funded_account_id, min_position)


def _funded_account_detail_under_accounts(
    account_id: UUID,
    ledger: LedgerDep,
    principal: CurrentPrincipal,
    min_position: MinPosition = None,
) -> FundedAccountDetail:
    return visible_funded_account_detail(ledger, principal, account_id, min_position)


# `/v1/accounts/{account_id}/...` on a ledger account, from the views.
OwnedAccountSummary = Annotated[AccountSummary, Depends(_account_summary)]
# `/v1/funded-accounts/{funded_account_id}/...`: the aggregate, or the view.
OwnedFundedAccount = Annotated[FundedAccount, Depends(_funded_account)]
OwnedFundedAccountDetail = Annotated[FundedAccountDetail, Depends(_funded_account_detail)]
# `/v1/accounts/{account_id}/...` on a funded account: the aggregate, or the view.
OwnedFundedAccountUnderAccounts = Annotated[FundedAccount, Depends(_funded_account_under_accounts)]
OwnedFundedAccountDetailUnderAccounts = Annotated[
    FundedAccountDetail, Depends(_funded_account_detail_under_accounts)
]


# The simulated broker ------------------------------------------------------------------


async def _simulated_broker(ledger: LedgerDep) -> SimulatedBroker:
    if not isinstance(ledger.broker, SimulatedBroker):
        raise ApiError(404, "simulated_market_unavailable", "the broker is not the simulated one")
    return ledger.broker


# Routes that drive the simulated broker (demo and tests); 404 when a real one
# is wired. Declared after the role alias, like the ownership aliases.
SimulatedBrokerDep = Annotated[SimulatedBroker, Depends(_simulated_broker)]
