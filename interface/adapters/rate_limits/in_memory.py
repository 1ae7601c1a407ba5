"""Rate limits kept in this process: the default without Redis, and Redis' fallback."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from application.ports.rate_limiter import RateDecision, RateLimit, take_token

# Buckets kept at most. Past it the least recently used goes; a forgotten
# bucket comes back full, so the bound trades a little leniency for memory
# an attacker cannot grow without limit by inventing identities.
IDENTITIES_MAX_DEFAULT: Final[int] = 100_000


class InMemoryRateLimiter:
    def __init__(
        self,
        limit: RateLimit,
        *,
        identities_max: int = IDENTITIES_MAX_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if identities_max < 1:
            raise ValueError("need room for at least one identity")
        self.limit = limit
        self._identities_max = identities_max
        self._clock = clock
        # identity -> (tokens, updated_s)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # Several event loops or threads may share one limiter (the server's
        # loop, a test's portal, a sync caller): the lock keeps each take atomic.
        self._lock = threading.Lock()

    def take(self, identity: str) -> RateDecision:
        with self._lock:
            now = self._clock()
            tokens, updated = self._buckets.get(identity, (float(self.limit.burst), now))
            tokens, decision = take_token(tokens, updated, now, self.limit)
            self._buckets[identity] = (tokens, now)
            self._buckets.move_to_end(identity)
            while len(self._buckets) > self._identities_max:
                self._buckets.popitem(last=False)
        return decision

    async def acquire(self, identity: str) -> RateDecision:
        return self.take(identity)

    async def close(self) -> None:
        with self._lock:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)
