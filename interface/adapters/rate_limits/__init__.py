"""Rate limits per caller: the port, and its in-process and Redis adapters."""

from application.ports.rate_limiter import RateDecision, RateLimit, RateLimiter
from interface.adapters.rate_limits.in_memory import InMemoryRateLimiter
from interface.adapters.rate_limits.redis_limiter import RedisRateLimiter

__all__ = ["InMemoryRateLimiter", "RateDecision", "RateLimit", "RateLimiter", "RedisRateLimiter"]
