"""Reconciliation runs: run every check, record what it found, fix what is safe.

See docs/rules.md#reconciliation.

The checks themselves live in the interface (they read the event store, the
payment processor and the broker); here is the order of a run and what is
recorded, through the `ReconciliationCheck` port:

1. The run starts (`Started`) and is recorded before any check runs, so a
   run that dies half-way is still seen (it stays `running`).
2. Each check runs in turn, isolated: one that raises is recorded as
   `errored` with a `check_error` exception, and the next check still runs.
   Its result is recorded as soon as it finishes, with an exception per new
   discrepancy (one already open from an earlier run is named, not raised
   again: `OpenExceptions`).
3. A new low-severity exception whose check names a safe correction (a
   stale view: rebuild it) is corrected at once and the correction recorded;
   a correction that fails leaves the exception open for a person.
4. The run completes: passed when every check that ran passed.

Every record is written through the writer like any other aggregate change;
a person resolving an exception meanwhile makes the run's next record read
the run again and decide again (`change_alone`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final
from uuid import UUID, uuid4

import structlog

from application.aggregate_writes import change_alone, write_with_aggregates
from application.event_log import LedgerApplication
from application.ports.clock import Clock
from application.ports.reconciliation_checks import OpenExceptions, ReconciliationCheck
from application.ports.writer import Writer
from domain.reconciliation import (
    CheckResult,
    CheckStatus,
    Discrepancy,
    DiscrepancyKind,
    ReconciliationRun,
    RunType,
    Severity,
)
from domain.result_codes import LedgerRefusal, ResultCode

log = structlog.get_logger(__name__)

# Told (check name, checks done, checks in all) as each check starts.
CheckProgress = Callable[[str, int, int], None]
# The measure an errored check reports (it compared nothing).
NOTHING_COMPARED: Final[str] = "nothing compared"


class ReconciliationService:
    def __init__(
        self,
        app: LedgerApplication,
        writer: Writer,
        clock: Clock,
        checks: Sequence[ReconciliationCheck],
        open_exceptions: OpenExceptions,
    ) -> None:
        self._app = app
        self._writer = writer
        self._clock = clock
        self._checks = tuple(checks)
        self._open_exceptions = open_exceptions

    @property
    def check_names(self) -> tuple[str, ...]:
        return tuple(check.name for check in self._checks)

    def run_of(self, run_id: UUID) -> ReconciliationRun | None:
        return self._app.load_reconciliation_run(run_id)

    def run(
        self,
        run_type: RunType,
        actor: str,
        *,
        run_id: UUID | None = None,
        skipped: dict[str, str] | None = None,
        progress: CheckProgress | None = None,
    ) -> ReconciliationRun:
        """Run every check once and record the run; the completed run."""
        started = self.start(run_type, actor, run_id=run_id)
        return self.carry_out(started.id, skipped=skipped, progress=progress)

    def start(
        self, run_type: RunType, actor: str, *, run_id: UUID | None = None
    ) -> ReconciliationRun:
        """Record a run's start (`carry_out` runs its checks). A run id that
        was started already is refused: a scheduled slot runs once."""
        run = ReconciliationRun.start(
            run_id=run_id or uuid4(), run_type=run_type, at=self._clock.now(), actor=actor
        )
        if self.run_of(run.id) is not None or write_with_aggregates(self._writer, [], run) is None:
            raise LedgerRefusal(
                ResultCode.RECONCILIATION_RUNNING,
                f"run {run.id} was started already",
                run_id=str(run.id),
            )
        log.info("reconciliation_started", run_id=str(run.id), run_type=run_type.value)
        return run

    def carry_out(
        self,
        run_id: UUID,
        *,
        skipped: dict[str, str] | None = None,
        progress: CheckProgress | None = None,
    ) -> ReconciliationRun:
        """Run every check of a started run, record each result, complete it.
        `skipped`: check name -> why it is not run here (recorded as such);
        `progress` hears of each check as it starts (a command's progress bar)."""
        skipped = skipped or {}
        already_open = self._open_exceptions.open_by_fingerprint()
        for done, check in enumerate(self._checks):
            if progress is not None:
                progress(check.name, done, len(self._checks))
            if check.name in skipped:
                result = CheckResult(
                    check.name,
                    CheckStatus.SKIPPED,
                    NOTHING_COMPARED,
                    0,
                    0,
                    reason=skipped[check.name],
                )
            else:
                result = _run_isolated(check)
            raised = self._record(run_id, result, already_open)
            self._correct(run_id, check, raised)
            log.info(
                "reconciliation_check",
                run_id=str(run_id),
                check=check.name,
                status=result.status.value,
                discrepancies=len(result.discrepancies),
                elapsed_s=round(result.elapsed_s, 3),
            )
        completed = self._change(run_id, lambda run: run.complete(self._clock.now()))
        log.info("reconciliation_completed", run_id=str(run_id), status=completed.status.value)
        return completed

    def resolve(self, exception_id: UUID, resolved_by: str, note: str) -> ReconciliationRun:
        """A person closes an open exception with their name and a note."""
        run_id = self._open_exceptions.run_of(exception_id)
        if run_id is None:
            raise LedgerRefusal(
                ResultCode.RECONCILIATION_EXCEPTION_NOT_FOUND,
                f"no reconciliation exception {exception_id}",
                exception_id=str(exception_id),
            )
        return self._change(
            run_id, lambda run: run.resolve(exception_id, resolved_by, note, self._clock.now())
        )

    # Inside -------------------------------------------------------------------------

    def _correct(
        self, run_id: UUID, check: ReconciliationCheck, raised: list[tuple[UUID, Discrepancy]]
    ) -> None:
        for exception_id, discrepancy in raised:
            if discrepancy.severity is not Severity.LOW or discrepancy.correction is None:
                continue
            try:
                action = check.correct(discrepancy)
            except Exception:  # a failed fix waits for a person
                log.exception(
                    "reconciliation_correction_failed",
                    run_id=str(run_id),
                    exception_id=str(exception_id),
                    correction=discrepancy.correction,
                )
                continue
            self._change(run_id, partial(_record_correction, exception_id, action, self._clock))
            log.info(
                "reconciliation_corrected",
                run_id=str(run_id),
                exception_id=str(exception_id),
                action=action,
            )

    def _record(
        self, run_id: UUID, result: CheckResult, already_open: dict[str, UUID]
    ) -> list[tuple[UUID, Discrepancy]]:
        """Record a check's result; the exceptions it raised (as last decided,
        should the run have been read again)."""
        decided: list[list[tuple[UUID, Discrepancy]]] = []

        def record(run: ReconciliationRun) -> None:
            decided.append(run.record_check(result, already_open, self._clock.now()))

        self._change(run_id, record)
        return decided[-1]

    def _change(
        self, run_id: UUID, decide: Callable[[ReconciliationRun], None]
    ) -> ReconciliationRun:
        def load() -> ReconciliationRun:
            run = self.run_of(run_id)
            if run is None:
                raise LedgerRefusal(
                    ResultCode.RECONCILIATION_RUN_NOT_FOUND,
                    f"no reconciliation run {run_id}",
                    run_id=str(run_id),
                )
            return run

        return change_alone(
            self._writer,
            load,
            decide,
            lambda: LedgerRefusal(
                ResultCode.CONCURRENT_CHANGE,
                "the reconciliation run kept changing under this request; send it again",
                run_id=str(run_id),
            ),
        )


def _record_correction(
    exception_id: UUID, action: str, clock: Clock, run: ReconciliationRun
) -> None:
    run.correct(exception_id, action, clock.now())


def _run_isolated(check: ReconciliationCheck) -> CheckResult:
    started = time.perf_counter()
    try:
        result = check.run()
    except Exception as error:  # one check's failure is its result
        log.exception("reconciliation_check_errored", check=check.name)
        reason = f"{type(error).__name__}: {error}"
        return CheckResult(
            check.name,
            CheckStatus.ERRORED,
            NOTHING_COMPARED,
            0,
            0,
            (
                Discrepancy(
                    DiscrepancyKind.CHECK_ERROR,
                    f"check {check.name}",
                    f"the check could not run: {reason}",
                ),
            ),
            reason=reason,
            elapsed_s=time.perf_counter() - started,
        )
    if result.elapsed_s == 0.0:
        return CheckResult(
            result.name,
            result.status,
            result.measure,
            result.expected,
            result.actual,
            result.discrepancies,
            result.reason,
            elapsed_s=time.perf_counter() - started,
        )
    return result
