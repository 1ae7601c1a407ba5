"""Runs asked for through the API: started at once, carried out in the background.

A run reads the whole log (and replays every view), which takes longer than
an HTTP request should wait, so `POST /v1/reconciliation/runs` records the
run's start, answers 202 with its id, and one thread of this process carries
it out; the report shows its progress. One such run at a time per process:
a second request while one is under way is refused (409
`reconciliation_running`) with the running one's id.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from uuid import UUID

import structlog

from application.reconciliation import ReconciliationService
from domain.reconciliation import ReconciliationRun, RunType
from domain.result_codes import LedgerRefusal, ResultCode
from interface.observability import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Link

log = structlog.get_logger(__name__)


class BackgroundRuns:
    def __init__(self, service: ReconciliationService) -> None:
        self._service = service
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="reconciliation-run")
        self._lock = threading.Lock()
        self._running: UUID | None = None

    def start(self, run_type: RunType, actor: str) -> ReconciliationRun:
        with self._lock:
            if self._running is not None:
                raise LedgerRefusal(
                    ResultCode.RECONCILIATION_RUNNING,
                    f"run {self._running} is under way; read its report, or ask again "
                    "when it has completed",
                    run_id=str(self._running),
                )
            run = self._service.start(run_type, actor)
            self._running = run.id
        # The run's span links to the request that asked for it (when traced).
        self._executor.submit(self._carry_out, run.id, tracing.current_link())
        return run

    @property
    def running(self) -> UUID | None:
        return self._running

    def close(self) -> None:
        # A run under way ends with its next record (the writer has stopped);
        # it stays `running` in its report.
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _carry_out(self, run_id: UUID, link: Link | None = None) -> None:
        try:
            with tracing.job_span(
                "reconciliation run", {"ledger.reconciliation.run_id": str(run_id)}, link
            ):
                self._service.carry_out(run_id)
        except Exception:  # logged; the report shows the run as still running
            log.exception("reconciliation_run_failed", run_id=str(run_id))
        finally:
            with self._lock:
                self._running = None
