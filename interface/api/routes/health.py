"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from interface.adapters.persistence import database
from interface.api.deps import LedgerDep
from interface.bootstrap import Ledger
from projections.view_health import failed_views

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ledger: LedgerDep) -> JSONResponse:
    """The database answers, the schema is current, the writer runs, so does
    the projection runner (unless it runs as a process of its own), and no
    view has stopped on an event it cannot apply. 503 otherwise, naming
    each failing part under `failing`."""
    checks: dict[str, str] = {}
    body: dict[str, Any] = {}
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
    if reachable and checks["migrations"] == "current":
        failed = _failed_views(ledger)
        checks["views"] = "ok" if not failed else f"failed: {', '.join(sorted(failed))}"
        if failed:
            body["failed_views"] = failed
    failing = [
        part
        for part, state in checks.items()
        if state not in {"ok", "current", "running", "elsewhere"}
    ]
    return JSONResponse(
        {"status": "not_ready" if failing else "ready", "checks": checks, "failing": failing}
        | body,
        status_code=503 if failing else 200,
    )


def _failed_views(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Views stopped on an event they cannot apply, as the tracking table
    says (whichever process runs them)."""
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        failures = failed_views(cursor)
    return {
        name: {
            "position": failure.position,
            "reason": failure.reason,
            "failed_at": failure.failed_at.isoformat(),
        }
        for name, failure in sorted(failures.items())
    }
