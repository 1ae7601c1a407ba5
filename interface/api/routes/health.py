"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

from typing import Any, Final

import psycopg
import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from interface.adapters.persistence import database
from interface.api.deps import LedgerDep
from interface.bootstrap import Ledger
from projections.registry import view_names
from projections.view_health import ViewState, view_states

router = APIRouter(tags=["health"])

# How long /readyz waits for Redis to answer a PING.
REDIS_PING_TIMEOUT_S: Final[float] = 1.0
# What each check answers when it passes.
_PASSING: Final = frozenset({"ok", "current", "running", "elsewhere", "not configured"})


_ALIVE: Final[dict[str, str]] = {"status": "ok"}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and answering."""
    # `async`: nothing to wait for, so no hand-off to the thread pool and
    # back (twice for a plain `def`: the route, then its answer's check).
    return _ALIVE


@router.get("/readyz")
def readyz(ledger: LedgerDep) -> JSONResponse:
    """Ready when every part answers: the database is reachable and its
    schema current; Redis answers (when REDIS_URL is set); the writer's
    thread runs, and so does the projection runner's (unless it runs as a
    process of its own); no view has stopped on an event it cannot apply,
    and none is further behind the log than LEDGER_READINESS_VIEW_LAG_S_MAX.
    503 otherwise, naming each failing part under `failing` (and the views
    at fault under `views`)."""
    checks: dict[str, str] = {}
    body: dict[str, Any] = {}
    reachable = database.is_reachable(ledger.database_url)
    checks["database"] = "ok" if reachable else "unreachable"
    if reachable:
        pending = database.pending_migrations(ledger.database_url)
        checks["migrations"] = "current" if not pending else f"pending: {', '.join(pending)}"
    checks["redis"] = _redis_check(ledger.settings.redis_url)
    checks["writer"] = "running" if ledger.writer.is_running else "stopped"
    runner = ledger.projections
    if not ledger.settings.projections_in_process:
        checks["projections"] = "elsewhere"
    else:
        checks["projections"] = "running" if runner and runner.is_running else "stopped"
    if reachable and checks["migrations"] == "current":
        checks["views"], at_fault = _views_check(ledger)
        if at_fault:
            body["views"] = at_fault
    failing = [part for part, state in checks.items() if state not in _PASSING]
    return JSONResponse(
        {"status": "not_ready" if failing else "ready", "checks": checks, "failing": failing}
        | body,
        status_code=503 if failing else 200,
    )


def _redis_check(redis_url: str | None) -> str:
    if not redis_url:
        return "not configured"
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=REDIS_PING_TIMEOUT_S,
        socket_connect_timeout=REDIS_PING_TIMEOUT_S,
    )
    try:
        client.ping()
    except RedisError as error:
        return f"unreachable: {type(error).__name__}"
    finally:
        client.close()
    return "ok"


def _views_check(ledger: Ledger) -> tuple[str, dict[str, dict[str, Any]]]:
    """ "ok", or what is wrong, and the views at fault: stopped, or further
    behind the log than the bound (as the tracking table says, whichever
    process runs them)."""
    try:
        with ledger.pool.connection() as connection, connection.cursor() as cursor:
            states = view_states(cursor, _view_names(ledger))
    except psycopg.Error as error:
        return f"unreadable: {type(error).__name__}", {}
    lag_s_max = ledger.settings.readiness_view_lag_s_max
    failed = {name: state for name, state in states.items() if state.failure is not None}
    lagging = {
        name: state
        for name, state in states.items()
        if state.failure is None and state.lag_s > lag_s_max
    }
    problems = []
    if failed:
        problems.append(f"failed: {', '.join(sorted(failed))}")
    if lagging:
        problems.append(f"over {lag_s_max:g} s behind: {', '.join(sorted(lagging))}")
    at_fault = {name: _described(state) for name, state in sorted((failed | lagging).items())}
    return "; ".join(problems) or "ok", at_fault


def _view_names(ledger: Ledger) -> list[str]:
    """The views this service reads: its runner's (built even when it runs
    elsewhere), else every registered one."""
    if ledger.projections is not None:
        return [view.name for view in ledger.projections.views]
    return view_names()


def _described(state: ViewState) -> dict[str, Any]:
    described: dict[str, Any] = {
        "position": state.position,
        "lag_events": state.lag_events,
        "lag_s": round(state.lag_s, 3),
    }
    if state.failure is not None:
        described["failed"] = {
            "position": state.failure.position,
            "reason": state.failure.reason,
            "failed_at": state.failure.failed_at.isoformat(),
        }
    return described
