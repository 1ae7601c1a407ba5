"""The rate limiter port: one contract, held by the in-process adapter, the
Redis adapter, and the Redis adapter with its Redis down (its fallback decides).

A subclass gives `make_limiter`. The Redis adapter is tested for real when
REDIS_URL is set (.ci/run sets it when a Redis answers locally), under a key
prefix of its own per test so parallel runs never share a bucket.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio

from interface.adapters.rate_limits import (
    InMemoryRateLimiter,
    RateDecision,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
)
from tests.support.logs import captured_logs, events_named

REDIS_URL = os.environ.get("REDIS_URL")
# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"

Scenario = Callable[[RateLimiter], Awaitable[None]]
MakeLimiter = Callable[[RateLimit], RateLimiter]
Run = Callable[[RateLimit, Scenario], None]


class RateLimiterContract:
    """Every adapter must pass these; subclasses give `make_limiter`."""

    @pytest.fixture
    def make_limiter(self) -> MakeLimiter:
        raise NotImplementedError

    @pytest.fixture
    def run(self, make_limiter: MakeLimiter) -> Callable[[RateLimit, Scenario], None]:
        """Runs a scenario against a new limiter with this limit, closed after."""

        def run_scenario(limit: RateLimit, scenario: Scenario) -> None:
            async def with_limiter() -> None:
                limiter = make_limiter(limit)
                try:
                    await scenario(limiter)
                finally:
                    await limiter.close()

            asyncio.run(with_limiter())

        return run_scenario

    def test_a_limiter_keeps_the_limit_it_was_made_with(self, run: Run) -> None:
        limit = RateLimit(per_s=2.0, burst=7)

        async def scenario(limiter: RateLimiter) -> None:
            assert limiter.limit == limit

        run(limit, scenario)

    def test_a_caller_gets_its_burst_then_is_refused_with_a_time_to_retry(self, run: Run) -> None:
        async def scenario(limiter: RateLimiter) -> None:
            decisions = [await limiter.acquire("caller") for _ in range(4)]
            assert [decision.allowed for decision in decisions] == [True, True, True, False]
            refused = decisions[-1]
            # One token comes back every 10 s; the last one was just taken.
            assert 9.0 < refused.retry_after_s <= 10.0
            assert refused.retry_after_header == "10"

        run(RateLimit(per_s=0.1, burst=3), scenario)

    def test_callers_have_buckets_of_their_own(self, run: Run) -> None:
        async def scenario(limiter: RateLimiter) -> None:
            assert (await limiter.acquire("first")).allowed
            assert not (await limiter.acquire("first")).allowed
            assert (await limiter.acquire("second")).allowed

        run(RateLimit(per_s=0.1, burst=1), scenario)

    def test_the_bucket_refills_at_the_rate(self, run: Run) -> None:
        async def scenario(limiter: RateLimiter) -> None:
            assert (await limiter.acquire("caller")).allowed
            assert (await limiter.acquire("caller")).allowed
            refused = await limiter.acquire("caller")
            assert not refused.allowed
            assert 0 < refused.retry_after_s <= 0.05
            # Under a second to wait still tells the client one whole second.
            assert refused.retry_after_header == "1"
            await asyncio.sleep(0.06)
            assert (await limiter.acquire("caller")).allowed
            assert not (await limiter.acquire("caller")).allowed

        run(RateLimit(per_s=20.0, burst=2), scenario)

    def test_a_full_bucket_holds_no_more_than_the_burst(self, run: Run) -> None:
        async def scenario(limiter: RateLimiter) -> None:
            await asyncio.sleep(0.05)
            allowed = [(await limiter.acquire("caller")).allowed for _ in range(3)]
            assert allowed == [True, True, False]

        run(RateLimit(per_s=1.0, burst=2), scenario)

    def test_concurrent_requests_never_take_more_than_the_burst(self, run: Run) -> None:
        async def scenario(limiter: RateLimiter) -> None:
            decisions = await asyncio.gather(*(limiter.acquire("caller") for _ in range(50)))
            assert sum(decision.allowed for decision in decisions) == 10

        run(RateLimit(per_s=0.01, burst=10), scenario)


class TestInMemoryRateLimiter(RateLimiterContract):
    @pytest.fixture
    def make_limiter(self) -> MakeLimiter:
        return InMemoryRateLimiter

    def test_threads_sharing_it_never_take_more_than_the_burst(self) -> None:
        limiter = InMemoryRateLimiter(RateLimit(per_s=0.01, burst=100))
        allowed: list[bool] = []
        lock = threading.Lock()

        def hammer() -> None:
            for _ in range(50):
                decision = limiter.take("caller")
                with lock:
                    allowed.append(decision.allowed)

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(allowed) == 400
        assert sum(allowed) == 100

    def test_it_keeps_at_most_its_bound_of_callers(self) -> None:
        limiter = InMemoryRateLimiter(RateLimit(per_s=1.0, burst=1), identities_max=3)
        for caller in ("a", "b", "c", "d"):
            assert limiter.take(caller).allowed
        assert len(limiter) == 3
        # The least recently seen was forgotten, and comes back with a full bucket.
        assert limiter.take("a").allowed
        assert not limiter.take("d").allowed


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")
class TestRedisRateLimiter(RateLimiterContract):
    @pytest.fixture
    def make_limiter(self) -> MakeLimiter:
        assert REDIS_URL is not None
        redis_url = REDIS_URL
        prefix = f"test:rate_limit:{uuid.uuid4().hex}:"

        def make(limit: RateLimit) -> RateLimiter:
            return RedisRateLimiter.from_url(
                redis_url,
                limit,
                # A fallback that refuses everything: a test passing through it fails.
                fallback=InMemoryRateLimiter(RateLimit(per_s=1e-9, burst=1)),
                key_prefix=prefix,
            )

        return make

    def test_two_limiters_on_one_redis_share_the_bucket(self) -> None:
        """What makes Redis worth having: several processes, one limit."""
        assert REDIS_URL is not None
        prefix = f"test:rate_limit:{uuid.uuid4().hex}:"
        limit = RateLimit(per_s=0.1, burst=3)

        async def scenario() -> None:
            limiters = [
                RedisRateLimiter.from_url(
                    REDIS_URL,
                    limit,
                    fallback=InMemoryRateLimiter(limit),
                    key_prefix=prefix,
                )
                for _ in range(2)
            ]
            try:
                allowed = [(await limiters[i % 2].acquire("caller")).allowed for i in range(5)]
                assert allowed == [True, True, True, False, False]
            finally:
                for limiter in limiters:
                    await limiter.close()

        asyncio.run(scenario())

    def test_buckets_expire_once_they_would_be_full_again(self) -> None:
        assert REDIS_URL is not None
        prefix = f"test:rate_limit:{uuid.uuid4().hex}:"

        async def scenario() -> None:
            limiter = RedisRateLimiter.from_url(
                REDIS_URL,
                RateLimit(per_s=10.0, burst=5),
                fallback=InMemoryRateLimiter(RateLimit(per_s=10.0, burst=5)),
                key_prefix=prefix,
            )
            client = redis.asyncio.Redis.from_url(REDIS_URL)
            try:
                await limiter.acquire("caller")
                ttl_ms = await client.pttl(f"{prefix}caller")
                # Full again after 0.5 s; kept a second longer, then gone.
                assert 0 < ttl_ms <= 1500
            finally:
                await client.aclose()
                await limiter.close()

        asyncio.run(scenario())


class TestRedisUnavailable(RateLimiterContract):
    """A Redis that is down must not take the ledger down: requests are limited
    by the in-process fallback, a warning is logged once, and nothing raises."""

    @pytest.fixture
    def make_limiter(self) -> MakeLimiter:
        return self.make

    def make(self, limit: RateLimit) -> RedisRateLimiter:
        return RedisRateLimiter.from_url(
            UNREACHABLE_REDIS_URL,
            limit,
            fallback=InMemoryRateLimiter(limit),
            key_prefix="test:unreachable:",
        )

    def test_requests_are_limited_in_process_and_one_warning_is_logged(self) -> None:
        async def scenario() -> list[RateDecision]:
            limiter = self.make(RateLimit(per_s=0.1, burst=3))
            try:
                return [await limiter.acquire("caller") for _ in range(5)]
            finally:
                await limiter.close()

        with captured_logs() as output:
            decisions = asyncio.run(scenario())

        assert [decision.allowed for decision in decisions] == [True, True, True, False, False]
        (warning,) = events_named(output, "rate_limiter_redis_unavailable")
        assert warning["level"] == "warning"
        assert warning["fallback"] == "in_process"
        assert "127.0.0.1:1" not in output.getvalue()
