"""Rate limits per caller: the port, and its in-process and Redis adapters."""

from interface.rate_limits.in_memory import InMemoryRateLimiter
from interface.rate_limits.port import RateDecision, RateLimit, RateLimiter
from interface.rate_limits.redis_limiter import RedisRateLimiter

__all__ = ["InMemoryRateLimiter", "RateDecision", "RateLimit", "RateLimiter", "RedisRateLimiter"]
