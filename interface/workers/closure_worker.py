"""The closure worker: advances every account closure whose work is due.

A `DueWorker` (interface/workers/leased_worker.py): one runs at a time, under a
lease. Each pass finds the closures with work due now in the closures view
and asks the service to advance each; the service reads the aggregate and
does what its recorded timers say, so a view a moment behind costs nothing,
and a worker restarted after kill -9 carries on where the events say it was.

`ledger closures tick --now ISO` runs one pass as of a given time, on a clock
set to it: tests walk three days of a closure in a few calls, and an operator
catches up after an outage.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

from application.closures import ClosuresService
from application.ports.clock import Clock
from interface.adapters.persistence.advisory_locks import CLOSURE_WORKER_LOCK_KEY
from interface.workers.leased_worker import Connection, DueWorker
from projections.closures import closures_due

CLOSURES_PER_QUERY: Final[int] = 100
CLOSURES_PER_PASS_MAX: Final[int] = 1_000


def closure_worker(
    database_url: str, service: ClosuresService, clock: Clock, interval_s: float
) -> DueWorker:
    def find_due(connection: Connection, limit: int) -> list[UUID]:
        with connection.cursor() as cursor:
            return closures_due(cursor, clock.now(), limit)

    def advance(closure_id: UUID) -> str:
        closure = service.advance(closure_id)
        return "stuck" if closure.stuck else closure.phase.value

    return DueWorker(
        name="closure-worker",
        database_url=database_url,
        lock_key=CLOSURE_WORKER_LOCK_KEY,
        interval_s=interval_s,
        find_due=find_due,
        handle=advance,
        per_query=CLOSURES_PER_QUERY,
        per_pass_max=CLOSURES_PER_PASS_MAX,
    )
