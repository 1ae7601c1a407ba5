"""Reading one's own writes from the views.

The views follow the log a few milliseconds behind. A read from a view first
waits until the views it uses have reached a position: the `min_position`
the client passes (the `position` of a write it made, from any server), or
else the last position this process's writer committed, so a client of one
server always sees its own writes. The wait is bounded; past it the answer is
503 `projection_lagging` with Retry-After, never a stale answer. A view that
has stopped on an event it cannot apply (`projections.view_health`) answers
503 `projection_failed` at once, naming it; reads of other views go on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Final

from fastapi import Query, Response

from interface.api.errors import ApiError
from interface.api.query_types import POSITION_MAX
from interface.bootstrap import Ledger
from projections.runner import log_head
from projections.view_health import ViewFailure, failed_views

# How often a reader polls the tracking table when no runner is in process.
POLL_INTERVAL_S: Final[float] = 0.01

MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=POSITION_MAX,
        description="Wait until the views include the log up to this position "
        "(a write's `position`). Omitted: this server's last write.",
    ),
]


# The log position of a write, on its response: pass it as `min_position`
# to read it from any server.
POSITION_HEADER: Final[str] = "Ledger-Position"


def tell_position(response: Response, position: int | None) -> None:
    if position is not None:
        response.headers[POSITION_HEADER] = str(position)


def views_caught_up(ledger: Ledger, names: Sequence[str], min_position: int | None) -> int:
    """Wait for the named views to reach the position; the position waited for."""
    target = ledger.writer.last_position if min_position is None else min_position
    if target <= 0:
        return 0
    timeout_s = ledger.settings.read_wait_s_max
    runner = ledger.projections
    if _reached(ledger, names, target):
        return target
    if min_position is not None:
        _require_written(ledger, target)
    if runner is not None and runner.is_running:
        reached = runner.wait_for(target, names, timeout_s)
    else:
        reached = _poll_tracking(ledger, names, target, timeout_s)
    if not reached:
        _refuse_failed(ledger, names, target)
        raise ApiError(
            503,
            "projection_lagging",
            f"the views have not yet reached position {target}; retry shortly",
            details={"position": target, "views": list(names)},
            headers={"Retry-After": "1"},
        )
    return target


def _reached(ledger: Ledger, names: Sequence[str], target: int) -> bool:
    runner = ledger.projections
    if runner is not None and runner.is_running:
        positions = runner.positions()
    else:
        positions = ledger.seen_view_positions
    return all(positions.get(name, 0) >= target for name in names)


def _failures(ledger: Ledger, names: Sequence[str]) -> dict[str, ViewFailure]:
    runner = ledger.projections
    if runner is not None and runner.is_running:
        return {name: failure for name, failure in runner.failures().items() if name in names}
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        return failed_views(cursor, names)


def _refuse_failed(ledger: Ledger, names: Sequence[str], target: int) -> None:
    failures = _failures(ledger, names)
    if not failures:
        return
    described = "; ".join(
        f"view {name} stopped at the event at position {failure.position}: {failure.reason}"
        for name, failure in sorted(failures.items())
    )
    raise ApiError(
        503,
        "projection_failed",
        f"{described}; an operator must fix it (see /readyz)",
        details={
            "position": target,
            "failed_views": {
                name: {"position": failure.position, "reason": failure.reason}
                for name, failure in sorted(failures.items())
            },
        },
    )


def _require_written(ledger: Ledger, target: int) -> None:
    """A position past the log's end was never a write's: waiting cannot help."""
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        head = log_head(cursor)
    if target > head:
        raise ApiError(
            409,
            "position_not_reached",
            f"position {target} is beyond the log's last position {head}; "
            "pass the position a write answered with",
            details={"position": target, "log_position": head},
        )


def _poll_tracking(ledger: Ledger, names: Sequence[str], target: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        with ledger.pool.connection() as connection:
            rows = connection.execute(
                "SELECT name, position, failed_position IS NOT NULL"
                " FROM projection_tracking WHERE name = ANY(%s)",
                (list(names),),
            ).fetchall()
        seen = ledger.seen_view_positions
        for name, position, _ in rows:
            # Positions only grow (a rebuild's reset aside, which a reader may
            # then miss for a moment: it reads a view still being refilled).
            seen[name] = max(seen.get(name, 0), int(position))
        if _reached(ledger, names, target):
            return True
        if any(failed for _, _, failed in rows) or time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
