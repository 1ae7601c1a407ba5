"""Rate limiting per API key (per client address without one), before anything else.

A pure ASGI middleware outside authentication: the caller is identified by
the SHA-256 of its bearer token, not by a database lookup, so a throttled
flood costs one bucket update per request and never reaches PostgreSQL.
An unknown token is limited like a known one (it has its own bucket), then
refused by authentication.

The limiter comes from `app.state.rate_limiter` (built in the lifespan). If
it is missing or fails, the request goes through and a warning is logged: a
limiter must never turn into a 5xx.
"""

from __future__ import annotations

import hashlib
from typing import Final

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from interface.adapters.rate_limits import RateDecision, RateLimiter
from interface.api.errors import send_error
from interface.api.middleware.authentication import bearer_token

log = structlog.get_logger(__name__)

RATE_LIMITER_STATE_KEY: Final[str] = "rate_limiter"
# Set on a refused request: whom the audit record names (see loggable_caller).
RATE_LIMITED_CALLER_STATE_KEY: Final[str] = "rate_limited_caller"
# 128 bits of the token's digest name its bucket: unique enough, and what is
# stored (in Redis, possibly) is a digest, never the key.
_IDENTITY_DIGEST_HEX_CHARS: Final[int] = 32


def caller_identity(scope: Scope) -> str:
    """`key:<digest>` for a bearer token, `address:<client host>` otherwise.

    The client host is the one the server reports: behind a proxy, run
    uvicorn with the proxy's address in FORWARDED_ALLOW_IPS so it is the
    caller's, not the proxy's.
    """
    token = bearer_token(scope)
    if token is not None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        return f"key:{digest[:_IDENTITY_DIGEST_HEX_CHARS]}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def loggable_caller(identity: str) -> str:
    """A key's digest may be logged (it is not the key and cannot be turned
    back into it); a client address is personal data and is not."""
    return identity if identity.startswith("key:") else "address"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter | None = getattr(scope["app"].state, RATE_LIMITER_STATE_KEY, None)
        if limiter is not None:
            identity = caller_identity(scope)
            decision = await _decide(limiter, identity)
            if not decision.allowed:
                scope.setdefault("state", {})[RATE_LIMITED_CALLER_STATE_KEY] = loggable_caller(
                    identity
                )
                await _refuse(scope, send, decision)
                return
        await self.app(scope, receive, send)


async def _decide(limiter: RateLimiter, identity: str) -> RateDecision:
    try:
        return await limiter.acquire(identity)
    except Exception:
        # Adapters fall back on their own; this is the last line, for bugs.
        log.warning("rate_limiter_failed", exc_info=True)
        return RateDecision(allowed=True)


async def _refuse(scope: Scope, send: Send, decision: RateDecision) -> None:
    retry_after = decision.retry_after_header
    await send_error(
        scope,
        send,
        429,
        "rate_limited",
        f"too many requests from this caller; retry after {retry_after} s",
        {"retry_after_s": int(retry_after)},
        headers={"Retry-After": retry_after},
    )
