"""The FastAPI application, built by a factory with a lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from interface.api.errors import install_error_handlers
from interface.api.middleware.authentication import AuthenticationMiddleware
from interface.api.middleware.body_size_limit import BodySizeLimitMiddleware
from interface.api.middleware.database_faults import DatabaseFaultMiddleware
from interface.api.middleware.idempotency import install_idempotency
from interface.api.middleware.rate_limiting import RATE_LIMITER_STATE_KEY, RateLimitMiddleware
from interface.api.middleware.request_context import RequestContextMiddleware
from interface.api.openapi import install_openapi
from interface.api.request_checks import check_request
from interface.api.routes import accounts as routes_accounts
from interface.api.routes import audit as routes_audit
from interface.api.routes import closures as routes_closures
from interface.api.routes import events as routes_events
from interface.api.routes import forks as routes_forks
from interface.api.routes import funded_accounts as routes_funded_accounts
from interface.api.routes import guards as routes_guards
from interface.api.routes import health as routes_health
from interface.api.routes import hierarchy as routes_hierarchy
from interface.api.routes import journal as routes_journal
from interface.api.routes import metrics as routes_metrics
from interface.api.routes import reconciliation as routes_reconciliation
from interface.api.routes import simulation as routes_simulation
from interface.api.routes import trading as routes_trading
from interface.api.routes import transfers as routes_transfers
from interface.api.routes import webhook_endpoints as routes_webhook_endpoints
from interface.api.routes import withdrawals as routes_withdrawals
from interface.bootstrap import Ledger, build_ledger_with_workers, build_rate_limiter
from interface.observability import tracing
from interface.observability.metrics import HttpMetrics
from interface.settings import Settings

DESCRIPTION = """
Event-sourced double-entry ledger. Amounts are decimal strings in major units
("1234.56"); every error is `{"error": {"code", "message", "field", "details",
"request_id", "doc_url"}}` with a stable code, explained at `doc_url`.
"""


def create_app(
    settings: Settings | None = None, ledger: Ledger | None = None, *, owns_ledger: bool = False
) -> FastAPI:
    """Without `ledger` the app builds its own at startup and closes it at
    shutdown. Given one, it closes it at shutdown only if `owns_ledger`: the
    server's graceful shutdown (SIGTERM) then stops the writer cleanly."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        closes = ledger is None or owns_ledger
        app.state.ledger = ledger or build_ledger_with_workers(settings or Settings())
        rate_limiter = build_rate_limiter(settings or app.state.ledger.settings)
        setattr(app.state, RATE_LIMITER_STATE_KEY, rate_limiter)
        try:
            yield
        finally:
            try:
                await rate_limiter.close()
            finally:
                if closes:
                    app.state.ledger.close()

    # The docs pages load Swagger UI and ReDoc from the package's files,
    # served under /static-offline-docs, not from a CDN: /docs works offline.
    app = FastAPIOffline(
        title="Ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Every route's first dependency: refuse at the edge what may not
        # be stored (request_checks.py), before the route reads or writes.
        dependencies=[Depends(check_request)],
    )
    install_error_handlers(app)
    # Idempotency-Key: inside authentication, whose principal scopes the keys.
    install_idempotency(app)
    # Middleware added later runs earlier: request context (id, logs, metrics),
    # then database faults (503, whoever met them), then rate limiting (no
    # database), then authentication (401 before the body is read), then the
    # body's size limit (413 before it is parsed), then the rest.
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(AuthenticationMiddleware)
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(DatabaseFaultMiddleware)
    http_metrics = HttpMetrics()
    setattr(app.state, routes_metrics.HTTP_METRICS_STATE_KEY, http_metrics)
    app.add_middleware(RequestContextMiddleware, metrics=http_metrics)
    app.include_router(routes_health.router)
    app.include_router(routes_accounts.router)
    app.include_router(routes_transfers.router)
    app.include_router(routes_journal.router)
    app.include_router(routes_funded_accounts.router)
    app.include_router(routes_trading.router)
    app.include_router(routes_simulation.router)
    app.include_router(routes_withdrawals.router)
    app.include_router(routes_closures.router)
    app.include_router(routes_forks.router)
    app.include_router(routes_hierarchy.router)
    app.include_router(routes_reconciliation.router)
    app.include_router(routes_guards.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_events.router)
    app.include_router(routes_webhook_endpoints.router)
    app.include_router(routes_metrics.router)
    install_openapi(app)
    # A server span per request when OTEL_* variables turn tracing on
    # (docs/operations.md#tracing); nothing otherwise.
    tracing.configure_from_environment()
    tracing.instrument_app(app)
    return app
