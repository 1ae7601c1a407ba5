"""Authentication before anything else on `/v1`: no key, no parsing.

A pure ASGI middleware, so an anonymous or revoked caller gets its 401
before the body is read or validated: a bad request from someone unknown
learns nothing about what a good one looks like. Routes then read the
principal it leaves in the request's state (see deps.current_principal).
"""

from __future__ import annotations

from typing import Final

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from interface.adapters.persistence.api_keys import Principal
from interface.api.errors import send_error

PROTECTED_PREFIX: Final[str] = "/v1/"
# Under the prefix but not for API keys: the payment processor's webhooks
# carry its signature instead, which the route verifies before anything else.
SIGNED_BY_SENDER_PATHS: Final[frozenset[str]] = frozenset({"/v1/webhooks/stripe"})
PRINCIPAL_STATE_KEY: Final[str] = "principal"


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith(PROTECTED_PREFIX)
            or scope["path"] in SIGNED_BY_SENDER_PATHS
        ):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        principal: Principal | None = None
        if token is not None:
            api_keys = scope["app"].state.ledger.api_keys
            found, principal = api_keys.cached(token)
            if not found:
                principal = await run_in_threadpool(api_keys.authenticate, token)
        if principal is None:
            code, message = (
                ("unauthenticated", "send an API key as the header Authorization: Bearer <key>")
                if token is None
                else ("invalid_api_key", "the API key is unknown, revoked or malformed")
            )
            await send_error(
                scope, send, 401, code, message, headers={"WWW-Authenticate": "Bearer"}
            )
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
        # Bound here, in the request's own context: every later log line of
        # the request (routes run in threads with a copy of it) carries it.
        structlog.contextvars.bind_contextvars(
            actor_key_id=str(principal.key_id), actor_role=principal.role.value
        )
        await self.app(scope, receive, send)
