"""The HTTP benchmark's floor: a bare FastAPI app with one `async` route that
returns a constant, run under the same ASGI server and process count as the
service. What the framework and server cost per request with nothing of the
ledger in the way; the service's figures are given as shares of it.

    python -m uvicorn benchmarks.http_floor:create_floor_app --factory --workers 2
"""

from __future__ import annotations

from fastapi import FastAPI

FLOOR_BODY = {"status": "ok"}


def create_floor_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/")
    async def constant() -> dict[str, str]:
        return FLOOR_BODY

    return app
