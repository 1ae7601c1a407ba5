"""A database fault answers 503, once, quietly; the connection stays open.

A pure ASGI middleware just inside the request context (which gives the
request its id): it sees what the routes raise and what the authentication
and idempotency middlewares raise, since they read the database before any
exception handler could. A fault (database_faults.py) becomes 503
`database_unavailable` with `Retry-After` and one warning line carrying the
request id, without a traceback: the fault is the database's, not a bug.
Anything else goes on to the catch-all 500 as before.
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interface.adapters.persistence.database_faults import database_fault_of
from interface.api.errors import DATABASE_UNAVAILABLE, send_database_unavailable

log = structlog.get_logger(__name__)


class DatabaseFaultMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def watching_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as error:
            fault = database_fault_of(error)
            # Half an answer cannot be taken back: the server ends the exchange.
            if fault is None or response_started:
                raise
            log.warning(
                DATABASE_UNAVAILABLE,
                reason=fault.reason.value,
                sqlstate=fault.sqlstate,
                error_type=type(error).__name__,
            )
            await send_database_unavailable(scope, send, fault)
