"""The rate limiter port: a token bucket per caller identity.

Each identity has a bucket of `burst` tokens that refills at `per_s` tokens a
second; a request takes one token or is refused with the time until the next
one. Adapters must agree on this arithmetic (the contract tests hold them to
it): `take_token` is its reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Protocol

# One request's cost, in tokens.
TOKEN_COST: Final[float] = 1.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_s > 0:
            raise ValueError("a rate limit needs per_s > 0")
        if self.burst < 1:
            raise ValueError("a rate limit needs a burst of at least 1")

    @property
    def refill_from_empty_s(self) -> float:
        """After this long untouched, a bucket is full and may be forgotten."""
        return self.burst / self.per_s


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    # When refused: seconds until one more request would be allowed.
    retry_after_s: float = 0.0

    def __post_init__(self) -> None:
        assert self.retry_after_s >= 0
        assert self.allowed or self.retry_after_s > 0, "a refusal says when to retry"

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` in whole seconds, never 0: a client told 0 retries at once."""
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter(Protocol):
    limit: RateLimit

    async def acquire(self, identity: str) -> RateDecision:
        """Take one token from the identity's bucket, or say when to retry.

        Never raises for an unavailable backend: a limiter must not take the
        ledger down (adapters fall back, see RedisRateLimiter)."""
        ...

    async def close(self) -> None: ...


def take_token(
    tokens: float, updated_s: float, now_s: float, limit: RateLimit
) -> tuple[float, RateDecision]:
    """The bucket's tokens after this request, and the decision."""
    tokens = min(float(limit.burst), tokens + max(0.0, now_s - updated_s) * limit.per_s)
    if tokens >= TOKEN_COST:
        return tokens - TOKEN_COST, RateDecision(allowed=True)
    return tokens, RateDecision(allowed=False, retry_after_s=(TOKEN_COST - tokens) / limit.per_s)
