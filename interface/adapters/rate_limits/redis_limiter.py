"""Rate limits shared by every process through Redis: one atomic script per request.

The bucket lives in a Redis hash and is updated by a Lua script, so the read,
refill, take and write are one atomic step however many processes share it.
Time is Redis' own clock (TIME), so processes on hosts with skewed clocks
still agree.

When Redis fails (down, slow, refusing), requests are limited by the
in-process fallback for a while and a warning is logged once per outage:
the limiter must never take the ledger down, and a per-process limit is
still a limit. The choice is fail *open* as far as Redis is concerned, not
fail unlimited.
"""

from __future__ import annotations

import time
from typing import Any, Final

import redis.asyncio
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from application.ports.rate_limiter import RateDecision, RateLimit, RateLimiter

log = structlog.get_logger(__name__)

# A healthy Redis answers in well under a millisecond; past this a request
# stops waiting for it and the fallback decides.
REDIS_TIMEOUT_S: Final[float] = 0.25
# After a failure, Redis is not asked again for this long: an outage costs
# one timeout per interval, not one per request.
REDIS_RETRY_INTERVAL_S: Final[float] = 5.0
KEY_PREFIX_DEFAULT: Final[str] = "ledger:rate_limit:"

# KEYS[1] the bucket; ARGV[1] tokens per second, ARGV[2] burst.
# Returns {allowed (0 or 1), seconds until the next token (a string)}.
BUCKET_SCRIPT_LUA: Final[str] = """
local per_s = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now_s = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated_s')
local tokens = tonumber(state[1])
local updated_s = tonumber(state[2])
if tokens == nil or updated_s == nil then
    tokens = burst
    updated_s = now_s
end
tokens = math.min(burst, tokens + math.max(0, now_s - updated_s) * per_s)
local allowed = 0
local retry_after_s = 0
if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
else
    retry_after_s = (1 - tokens) / per_s
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated_s', tostring(now_s))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_s * 1000) + 1000)
return {allowed, tostring(retry_after_s)}
"""


class RedisRateLimiter:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        limit: RateLimit,
        *,
        fallback: RateLimiter,
        key_prefix: str = KEY_PREFIX_DEFAULT,
        retry_interval_s: float = REDIS_RETRY_INTERVAL_S,
    ) -> None:
        self.limit = limit
        self._client = client
        self._script: Any = client.register_script(BUCKET_SCRIPT_LUA)
        self._fallback = fallback
        self._key_prefix = key_prefix
        self._retry_interval_s = retry_interval_s
        self._unavailable_until: float | None = None

    @classmethod
    def from_url(
        cls, url: str, limit: RateLimit, *, fallback: RateLimiter, key_prefix: str
    ) -> RedisRateLimiter:
        client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            # One attempt: the fallback, not a retry loop, handles a failure.
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, limit, fallback=fallback, key_prefix=key_prefix)

    async def acquire(self, identity: str) -> RateDecision:
        if self._unavailable_until is not None and time.monotonic() < self._unavailable_until:
            return await self._fallback.acquire(identity)
        try:
            allowed, retry_after_s = await self._script(
                keys=[self._key_prefix + identity],
                args=[repr(self.limit.per_s), self.limit.burst],
            )
        except (RedisError, OSError, TimeoutError) as error:
            if self._unavailable_until is None:
                # Neither the URL (it may hold a password) nor the message.
                log.warning(
                    "rate_limiter_redis_unavailable",
                    error_type=type(error).__name__,
                    fallback="in_process",
                    retry_interval_s=self._retry_interval_s,
                )
            self._unavailable_until = time.monotonic() + self._retry_interval_s
            return await self._fallback.acquire(identity)
        if self._unavailable_until is not None:
            self._unavailable_until = None
            log.info("rate_limiter_redis_recovered")
        if allowed == 1:
            return RateDecision(allowed=True)
        return RateDecision(allowed=False, retry_after_s=max(float(retry_after_s), 1e-6))

    async def close(self) -> None:
        await self._fallback.close()
        await self._client.aclose()
