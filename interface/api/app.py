"""The FastAPI application, built by a factory with a lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from interface.api import routes_accounts, routes_health, routes_transfers
from interface.api.errors import install_error_handlers
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings

DESCRIPTION = """
Event-sourced double-entry ledger. Amounts are decimal strings in major units
("1234.56"); every error is `{"error": {"code", "message", "details"}}` with a
stable code.
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
        app.state.ledger = ledger or build_ledger(settings or Settings())
        try:
            yield
        finally:
            if closes:
                app.state.ledger.close()

    app = FastAPI(title="Ledger", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(routes_health.router)
    app.include_router(routes_accounts.router)
    app.include_router(routes_transfers.router)
    return app
