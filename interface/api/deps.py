"""Route dependencies, as `Annotated` aliases, in one place.

Every route names who may call it with one of the role aliases below;
ownership (a user sees only their own accounts) is checked in the route,
where the account is known, and answers 404, never the other owner's data.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from application.ledger_use_cases import LedgerService
from interface.adapters.persistence.api_keys import ApiKeyStore, Principal, Role
from interface.api.errors import ApiError
from interface.api.middleware.authentication import PRINCIPAL_STATE_KEY
from interface.bootstrap import Ledger

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
