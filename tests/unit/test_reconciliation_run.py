"""The reconciliation run aggregate and the severity rule (domain/reconciliation.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.reconciliation import (
    AMOUNT_SEVERITY_STEPS,
    BASE_SEVERITIES,
    EXCEPTIONS_PER_CHECK_MAX,
    CheckResult,
    CheckStatus,
    Discrepancy,
    DiscrepancyKind,
    ExceptionStatus,
    ReconciliationRun,
    RunStatus,
    RunType,
    Severity,
    severity_of,
)
from domain.result_codes import LedgerRefusal, ResultCode

AT = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def _run() -> ReconciliationRun:
    return ReconciliationRun.start(run_id=uuid4(), run_type=RunType.MANUAL, at=AT, actor="tester")


def _failed(name: str, *discrepancies: Discrepancy) -> CheckResult:
    return CheckResult(name, CheckStatus.FAILED, "minor units", 100, 90, discrepancies)


def _passed(name: str) -> CheckResult:
    return CheckResult(name, CheckStatus.PASSED, "minor units", 100, 100)


# The rule ---------------------------------------------------------------------------


@given(st.sampled_from(list(DiscrepancyKind)), st.integers(-(10**12), 10**12))
def test_an_amount_only_ever_raises_a_kinds_base_severity(
    kind: DiscrepancyKind, amount: int
) -> None:
    severity = severity_of(kind, amount)
    assert severity.rank >= BASE_SEVERITIES[kind].rank
    # The sign of a difference does not matter, only its size.
    assert severity_of(kind, -amount) is severity


@given(st.sampled_from(list(DiscrepancyKind)), st.integers(0, 10**12), st.integers(0, 10**12))
def test_a_larger_amount_is_never_less_severe(
    kind: DiscrepancyKind, smaller: int, larger: int
) -> None:
    smaller, larger = sorted((smaller, larger))
    assert severity_of(kind, smaller).rank <= severity_of(kind, larger).rank


def test_each_amount_step_takes_effect_at_its_threshold_and_not_a_unit_below() -> None:
    kind = DiscrepancyKind.VIEW_DIFFERS  # base low: every step shows
    for threshold, severity in AMOUNT_SEVERITY_STEPS:
        assert severity_of(kind, threshold) is severity
        assert severity_of(kind, threshold - 1).rank < severity.rank
    assert severity_of(kind, 99) is Severity.LOW


def test_the_documented_examples() -> None:
    # A stale view costs nothing: low, and the service rebuilds it.
    assert severity_of(DiscrepancyKind.VIEW_DIFFERS, 0) is Severity.LOW
    # Money out of the processor the ledger does not know of: critical at once.
    assert severity_of(DiscrepancyKind.PAYOUT_UNKNOWN_TO_LEDGER, 1) is Severity.CRITICAL
    # A position that disagrees on $5.00 is medium; on $20,000.00 critical.
    assert severity_of(DiscrepancyKind.POSITION_DIFFERS, 500) is Severity.MEDIUM
    assert severity_of(DiscrepancyKind.POSITION_DIFFERS, 2_000_000) is Severity.CRITICAL


# The run ------------------------------------------------------------------------------


def test_a_run_whose_checks_all_pass_completes_passed_with_no_exception() -> None:
    run = _run()
    for name in ("ledger", "payouts"):
        assert run.record_check(_passed(name), {}, AT) == []
    run.complete(AT)
    assert run.status is RunStatus.PASSED
    assert run.check_statuses == {"ledger": CheckStatus.PASSED, "payouts": CheckStatus.PASSED}


def test_each_new_discrepancy_raises_one_exception_with_the_rules_severity() -> None:
    run = _run()
    missing = Discrepancy(DiscrepancyKind.PAYOUT_MISSING, "withdrawal w-1", "lost", 50_000)
    extra = Discrepancy(DiscrepancyKind.PAYOUT_UNKNOWN_TO_LEDGER, "payout po_1", "extra", 10)
    raised = run.record_check(_failed("payouts", missing, extra, missing), {}, AT)
    # The same fault listed twice is one exception.
    assert [discrepancy for _, discrepancy in raised] == [missing, extra]
    assert [run.exception_severity(exception_id) for exception_id, _ in raised] == [
        Severity.HIGH,
        Severity.CRITICAL,
    ]
    run.complete(AT)
    assert run.status is RunStatus.FAILED


def test_a_fault_still_open_from_an_earlier_run_is_named_not_raised_again() -> None:
    earlier = _run()
    stale = Discrepancy(DiscrepancyKind.VIEW_DIFFERS, "view balances", "a row is missing")
    ((open_id, _),) = earlier.record_check(_failed("projections", stale), {}, AT)
    later = _run()
    raised = later.record_check(_failed("projections", stale), {stale.fingerprint: open_id}, AT)
    assert raised == []
    recorded = later.collect_events()[-1]
    assert recorded.already_open == {stale.fingerprint: str(open_id)}  # type: ignore[attr-defined]


def test_past_the_bound_one_more_exception_counts_the_discrepancies_left_out() -> None:
    run = _run()
    many = [
        Discrepancy(DiscrepancyKind.ORPHAN_HOLD, f"transfer {index}", "no withdrawal", 10)
        for index in range(EXCEPTIONS_PER_CHECK_MAX + 7)
    ]
    raised = run.record_check(_failed("withdrawals", *many), {}, AT)
    assert len(raised) == EXCEPTIONS_PER_CHECK_MAX + 1
    summary = raised[-1][1]
    assert summary.kind is DiscrepancyKind.MORE_DISCREPANCIES
    assert "7 more" in summary.message


def test_an_exception_is_resolved_once_with_a_name_and_a_note() -> None:
    run = _run()
    discrepancy = Discrepancy(DiscrepancyKind.PAYOUT_MISSING, "withdrawal w-2", "lost", 100)
    ((exception_id, _),) = run.record_check(_failed("payouts", discrepancy), {}, AT)
    with pytest.raises(ValueError, match="note"):
        run.resolve(exception_id, "Ada Admin", " ", AT)
    run.resolve(exception_id, "Ada Admin", "the bank confirmed the payout", AT)
    assert run.exception_status(exception_id) is ExceptionStatus.RESOLVED
    with pytest.raises(LedgerRefusal) as again:
        run.resolve(exception_id, "Ada Admin", "again", AT)
    assert again.value.code is ResultCode.RECONCILIATION_EXCEPTION_CLOSED
    with pytest.raises(LedgerRefusal) as unknown:
        run.resolve(uuid4(), "Ada Admin", "which one?", AT)
    assert unknown.value.code is ResultCode.RECONCILIATION_EXCEPTION_NOT_FOUND


def test_the_service_corrects_only_low_severity_exceptions() -> None:
    run = _run()
    low = Discrepancy(DiscrepancyKind.VIEW_DIFFERS, "view journal", "stale", correction="rebuild")
    high = Discrepancy(DiscrepancyKind.PAYOUT_MISSING, "withdrawal w-3", "lost", 100)
    raised = run.record_check(_failed("mixed", low, high), {}, AT)
    (low_id, _), (high_id, _) = raised
    run.correct(low_id, "rebuilt view journal", AT)
    assert run.exception_status(low_id) is ExceptionStatus.CORRECTED
    with pytest.raises(ValueError, match="low-severity"):
        run.correct(high_id, "rebuilt something", AT)
    assert run.exception_status(high_id) is ExceptionStatus.OPEN


def test_a_completed_run_takes_no_more_results_and_a_check_is_recorded_once() -> None:
    run = _run()
    run.record_check(_passed("ledger"), {}, AT)
    with pytest.raises(ValueError, match="recorded already"):
        run.record_check(_passed("ledger"), {}, AT)
    run.complete(AT)
    with pytest.raises(ValueError, match="completed"):
        run.record_check(_passed("payouts"), {}, AT)
