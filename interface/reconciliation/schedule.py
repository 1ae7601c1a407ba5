"""When reconciliation runs by itself: every hour, and daily at 02:00 UTC.

See docs/rules.md#reconciliation.

A pass of the schedule (under a lease, interface/workers/leased_worker.py, so
one process at a time) runs the latest slot of each type that has no run yet. A
slot's run id is derived from the slot, so a slot runs once however many
processes look at it, and a process that was down runs the latest missed slot
of each type when it comes back (not every missed hour: the next run checks
everything the missed ones would have). The daily run stands in for the hourly
run of its own hour. The daily run checks everything; the hourly one is
incremental (`scope.incremental_runs`): it checks what changed since the last
clean run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID, uuid5

import structlog

from application.ports.clock import Clock
from application.reconciliation import ReconciliationService
from domain.reconciliation import ReconciliationRun, RunType
from domain.result_codes import LedgerRefusal, ResultCode
from interface.adapters.persistence.advisory_locks import RECONCILIATION_SCHEDULE_LOCK_KEY
from interface.reconciliation.scope import incremental_runs
from interface.workers.leased_worker import Connection, LeasedLoop

log = structlog.get_logger(__name__)

DAILY_RUN_HOUR_UTC: Final[int] = 2
SCHEDULE_NAMESPACE: Final = UUID("5d0c9a71-2e4b-4f86-b3a9-7c1e0f6d2b58")
SCHEDULE_ACTOR: Final[str] = "reconciliation-schedule"


@dataclass(frozen=True, slots=True)
class Slot:
    run_type: RunType
    starts_at: datetime

    @property
    def run_id(self) -> UUID:
        return uuid5(SCHEDULE_NAMESPACE, f"{self.run_type.value}/{self.starts_at.isoformat()}")


def due_slots(now: datetime) -> list[Slot]:
    """The latest daily slot (02:00 UTC today, or yesterday before 02:00) and
    the current hour's, unless the daily one is that hour."""
    now = now.astimezone(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    daily = hour.replace(hour=DAILY_RUN_HOUR_UTC)
    if daily > now:
        daily -= timedelta(days=1)
    slots = [Slot(RunType.DAILY, daily)]
    if hour != daily:
        slots.append(Slot(RunType.HOURLY, hour))
    return slots


@dataclass
class SchedulePass:
    runs: list[ReconciliationRun] = field(default_factory=list)


def run_due(
    service: ReconciliationService, clock: Clock, stopping: threading.Event | None = None
) -> SchedulePass:
    """Run every due slot that has no run yet."""
    done = SchedulePass()
    for slot in due_slots(clock.now()):
        if stopping is not None and stopping.is_set():
            break
        if service.run_of(slot.run_id) is not None:
            continue
        try:
            # The hourly run goes on from the last clean one; the daily one
            # checks everything (docs/operations.md#reconciliation).
            with incremental_runs(slot.run_type is RunType.HOURLY):
                done.runs.append(service.run(slot.run_type, SCHEDULE_ACTOR, run_id=slot.run_id))
        except LedgerRefusal as refusal:
            # Another process started this slot a moment ago.
            if refusal.code is not ResultCode.RECONCILIATION_RUNNING:
                raise
    return done


def reconciliation_schedule(
    database_url: str, service: ReconciliationService, clock: Clock, interval_s: float
) -> LeasedLoop[SchedulePass]:
    def work(connection: Connection, stopping: threading.Event) -> SchedulePass:
        return run_due(service, clock, stopping)

    def report(done: SchedulePass) -> None:
        for run in done.runs:
            log.info(
                "reconciliation_scheduled_run",
                run_id=str(run.id),
                run_type=run.run_type.value,
                status=run.status.value,
            )

    return LeasedLoop(
        name="reconciliation-schedule",
        database_url=database_url,
        lock_key=RECONCILIATION_SCHEDULE_LOCK_KEY,
        interval_s=interval_s,
        work=work,
        report=report,
    )
