"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from interface.adapters.persistence import database
from interface.api.deps import LedgerDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ledger: LedgerDep) -> JSONResponse:
    """The database answers, the schema is current, the writer runs, and so
    does the projection runner (unless it runs as a process of its own)."""
    checks: dict[str, str] = {}
    reachable = database.is_reachable(ledger.database_url)
    checks["database"] = "ok" if reachable else "unreachable"
    if reachable:
        pending = database.pending_migrations(ledger.database_url)
        checks["migrations"] = "current" if not pending else f"pending: {', '.join(pending)}"
    checks["writer"] = "running" if ledger.writer.is_running else "stopped"
    runner = ledger.projections
    if not ledger.settings.projections_in_process:
        checks["projections"] = "elsewhere"
    else:
        checks["projections"] = "running" if runner and runner.is_running else "stopped"
    ready = (
        reachable
        and checks.get("migrations") == "current"
        and checks["writer"] == "running"
        and checks["projections"] != "stopped"
    )
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
