"""A reconciliation run's order and records, through the real writer and view.

The checks here are small fakes of the `ReconciliationCheck` port (the real
checks have tests of their own, each breaking what it compares): what is
tested is the layer above them: isolation of a failing check, exceptions
and their severities, the automatic correction of low ones, exceptions
carried between runs, resolution, the schedule, the view and the metrics.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

import pytest

from application.clock import SettableClock
from application.ports.reconciliation_checks import ReconciliationCheck
from application.reconciliation import ReconciliationService
from domain.reconciliation import (
    CheckResult,
    CheckStatus,
    Discrepancy,
    DiscrepancyKind,
    ExceptionStatus,
    RunStatus,
    RunType,
)
from domain.result_codes import LedgerRefusal, ResultCode
from interface.bootstrap import Ledger
from interface.observability.metrics import render
from interface.reconciliation.background_runs import BackgroundRuns
from interface.reconciliation.open_exceptions import ViewedOpenExceptions
from interface.reconciliation.schedule import SCHEDULE_ACTOR, run_due
from projections import reconciliation
from projections.rebuild import rebuild_in_place
from projections.registry import view_named
from tests.support.ledgers import EPOCH

RUN_WAIT_S = 30.0
STALE_VIEW = Discrepancy(
    DiscrepancyKind.VIEW_DIFFERS, "view balances", "one row differs", correction="rebuild"
)
LOST_PAYOUT = Discrepancy(
    DiscrepancyKind.PAYOUT_MISSING, "withdrawal w-1", "the processor lists no payout", 250_000
)


@dataclass
class ScriptedCheck:
    """Answers what the test scripts: a result, or an error."""

    name: str
    discrepancies: list[Discrepancy] = field(default_factory=list)
    error: Exception | None = None
    corrections: list[str] = field(default_factory=list)
    correction_fails: bool = False

    def run(self) -> CheckResult:
        if self.error is not None:
            raise self.error
        status = CheckStatus.FAILED if self.discrepancies else CheckStatus.PASSED
        return CheckResult(
            self.name,
            status,
            "minor units",
            1_000,
            1_000 + 7 * len(self.discrepancies),
            tuple(self.discrepancies),
        )

    def correct(self, discrepancy: Discrepancy) -> str:
        if self.correction_fails:
            raise RuntimeError("the rebuild failed")
        self.corrections.append(discrepancy.subject)
        return f"rebuilt {discrepancy.subject}"


def _service(ledger: Ledger, *checks: ReconciliationCheck) -> ReconciliationService:
    return ReconciliationService(
        ledger.app,
        ledger.writer,
        ledger.clock,
        checks,
        ViewedOpenExceptions(ledger.pool, ledger.writer, ledger.projections),
    )


def _exceptions(ledger: Ledger, run_id: UUID) -> list[reconciliation.ExceptionRow]:
    assert ledger.projections is not None
    ledger.projections.wait_for(ledger.writer.last_position, [reconciliation.NAME], 10)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        return reconciliation.exceptions_of(cursor, run_id)


def _checks(ledger: Ledger, run_id: UUID) -> list[reconciliation.CheckRow]:
    assert ledger.projections is not None
    ledger.projections.wait_for(ledger.writer.last_position, [reconciliation.NAME], 10)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        return reconciliation.checks_of(cursor, run_id)


def test_a_check_that_raises_is_its_result_and_the_next_check_still_runs(ledger: Ledger) -> None:
    broken = ScriptedCheck("broker", error=ConnectionError("broker timed out"))
    after = ScriptedCheck("deposits")
    run = _service(ledger, broken, after).run(RunType.MANUAL, "tester")
    assert run.status is RunStatus.FAILED
    checks = {check.name: check for check in _checks(ledger, run.id)}
    assert checks["broker"].status == CheckStatus.ERRORED.value
    assert "broker timed out" in (checks["broker"].reason or "")
    assert checks["deposits"].status == CheckStatus.PASSED.value
    (raised,) = _exceptions(ledger, run.id)
    assert (raised.kind, raised.severity, raised.status) == ("check_error", "high", "open")


def test_a_low_exception_with_a_safe_fix_is_corrected_and_the_rest_wait(ledger: Ledger) -> None:
    views = ScriptedCheck("projections", [STALE_VIEW])
    payouts = ScriptedCheck("payouts", [LOST_PAYOUT])
    run = _service(ledger, views, payouts).run(RunType.MANUAL, "tester")
    assert views.corrections == ["view balances"]
    by_kind = {row.kind: row for row in _exceptions(ledger, run.id)}
    corrected = by_kind["view_differs"]
    assert (corrected.severity, corrected.status) == ("low", ExceptionStatus.CORRECTED.value)
    assert corrected.closed_by == "reconciliation"
    assert corrected.closing_note == "rebuilt view balances"
    waiting = by_kind["payout_missing"]
    # $2,500.00 raises a high kind no further (critical starts at $10,000.00).
    assert (waiting.severity, waiting.status) == ("high", "open")
    assert waiting.amount_minor == 250_000
    checks = {check.name: check for check in _checks(ledger, run.id)}
    assert (checks["payouts"].expected, checks["payouts"].actual) == (1_000, 1_007)
    assert checks["payouts"].difference == 7


def test_a_fix_that_fails_leaves_the_exception_open_for_a_person(ledger: Ledger) -> None:
    views = ScriptedCheck("projections", [STALE_VIEW], correction_fails=True)
    run = _service(ledger, views).run(RunType.MANUAL, "tester")
    (raised,) = _exceptions(ledger, run.id)
    assert (raised.severity, raised.status) == ("low", "open")


def test_a_fault_still_open_is_named_by_the_next_run_until_resolved(ledger: Ledger) -> None:
    payouts = ScriptedCheck("payouts", [LOST_PAYOUT])
    service = _service(ledger, payouts)
    first = service.run(RunType.HOURLY, "tester")
    (raised,) = _exceptions(ledger, first.id)

    second = service.run(RunType.HOURLY, "tester")
    assert _exceptions(ledger, second.id) == []
    (check,) = _checks(ledger, second.id)
    assert check.already_open == {LOST_PAYOUT.fingerprint: str(raised.exception_id)}

    service.resolve(raised.exception_id, "Ada Admin", "the payout was re-sent by hand")
    resolved = _exceptions(ledger, first.id)[0]
    assert (resolved.status, resolved.closed_by) == ("resolved", "Ada Admin")
    assert resolved.closing_note == "the payout was re-sent by hand"
    with pytest.raises(LedgerRefusal) as again:
        service.resolve(raised.exception_id, "Ada Admin", "twice")
    assert again.value.code is ResultCode.RECONCILIATION_EXCEPTION_CLOSED

    # Found again after it was resolved: a new exception.
    third = service.run(RunType.HOURLY, "tester")
    (fresh,) = _exceptions(ledger, third.id)
    assert fresh.fingerprint == LOST_PAYOUT.fingerprint
    assert fresh.exception_id != raised.exception_id


@dataclass
class BlockingCheck:
    """Runs until the test lets it finish."""

    name: str
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def run(self) -> CheckResult:
        self.started.set()
        assert self.release.wait(RUN_WAIT_S)
        return CheckResult(self.name, CheckStatus.PASSED, "rows", 0, 0)

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError("nothing to correct")


def test_one_background_run_at_a_time_and_the_next_once_it_completed(ledger: Ledger) -> None:
    blocking = BlockingCheck("ledger")
    runs = BackgroundRuns(_service(ledger, blocking))
    try:
        first = runs.start(RunType.MANUAL, "tester")
        assert first.status is RunStatus.RUNNING
        assert blocking.started.wait(RUN_WAIT_S)
        with pytest.raises(LedgerRefusal) as refused:
            runs.start(RunType.MANUAL, "tester")
        assert refused.value.code is ResultCode.RECONCILIATION_RUNNING
        assert refused.value.details["run_id"] == str(first.id)
        blocking.release.set()
        deadline = time.monotonic() + RUN_WAIT_S
        while runs.running is not None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert ledger.reconciliation.run_of(first.id).status is RunStatus.PASSED  # type: ignore[union-attr]
        blocking.started.clear()
        second = runs.start(RunType.MANUAL, "tester")
        assert second.id != first.id
        assert blocking.started.wait(RUN_WAIT_S)
    finally:
        blocking.release.set()
        runs.close()


def test_resolving_an_exception_no_run_raised_is_not_found(ledger: Ledger) -> None:
    with pytest.raises(LedgerRefusal) as refused:
        _service(ledger).resolve(UUID(int=7), "Ada Admin", "what is this?")
    assert refused.value.code is ResultCode.RECONCILIATION_EXCEPTION_NOT_FOUND


def test_the_schedule_runs_each_slot_once_and_the_daily_run_at_two(
    ledger: Ledger, clock: SettableClock
) -> None:
    service = _service(ledger, ScriptedCheck("ledger"))
    clock.set(EPOCH.replace(hour=1, minute=30))
    # Before 02:00 the latest daily slot is yesterday's: it runs, and this hour's.
    first = run_due(service, clock)
    assert [run.run_type for run in first.runs] == [RunType.DAILY, RunType.HOURLY]
    assert all(run.started_by == SCHEDULE_ACTOR for run in first.runs)
    assert run_due(service, clock).runs == []
    clock.set(EPOCH.replace(hour=2, minute=5))
    # Today's daily run stands in for the 02:00 hourly run.
    assert [run.run_type for run in run_due(service, clock).runs] == [RunType.DAILY]
    clock.advance(timedelta(hours=1))
    assert [run.run_type for run in run_due(service, clock).runs] == [RunType.HOURLY]
    assert run_due(service, clock).runs == []


def test_the_view_replays_to_what_it_kept_live(ledger: Ledger) -> None:
    views = ScriptedCheck("projections", [STALE_VIEW])
    payouts = ScriptedCheck("payouts", [LOST_PAYOUT])
    service = _service(ledger, views, payouts)
    first = service.run(RunType.MANUAL, "tester")
    service.run(RunType.MANUAL, "tester")
    (raised,) = [row for row in _exceptions(ledger, first.id) if row.status == "open"]
    service.resolve(raised.exception_id, "Ada Admin", "settled")
    before = _exceptions(ledger, first.id), _checks(ledger, first.id)
    rebuild_in_place(ledger.database_url, view_named(reconciliation.NAME))
    assert (_exceptions(ledger, first.id), _checks(ledger, first.id)) == before


def test_the_metrics_count_runs_checks_and_open_exceptions(ledger: Ledger) -> None:
    service = _service(ledger, ScriptedCheck("payouts", [LOST_PAYOUT]), ScriptedCheck("ledger"))
    service.run(RunType.MANUAL, "tester")
    _checks(ledger, UUID(int=0))  # the view caught up
    text = render(ledger.writer_metrics.registry).decode()
    assert 'ledger_reconciliation_runs{run_type="manual",status="failed"} 1.0' in text
    assert 'ledger_reconciliation_checks{check="payouts",status="failed"} 1.0' in text
    assert 'ledger_reconciliation_checks{check="ledger",status="passed"} 1.0' in text
    assert 'ledger_reconciliation_unresolved_exceptions{severity="high"} 1.0' in text
    assert 'ledger_reconciliation_unresolved_exceptions{severity="critical"} 0.0' in text
    assert 'ledger_reconciliation_discrepancy{check="payouts"} 7.0' in text
    assert 'ledger_reconciliation_run_duration_seconds{run_type="manual"}' in text
