"""ASGI middleware of the HTTP API: request context, authentication, rate limits, idempotency."""
