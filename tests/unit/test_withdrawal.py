"""The withdrawal process aggregate: its states, timers and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.result_codes import LedgerRefusal, ResultCode
from domain.withdrawal import (
    PAYOUT_RETRY_MAX_DELAY,
    PAYOUT_RETRY_WINDOW,
    SERVICE_ACTOR,
    Withdrawal,
    WithdrawalStatus,
    payout_idempotency_key,
    payout_retry_delay,
    withdrawal_id_for,
)

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def requested(*, approval_required: bool) -> Withdrawal:
    return Withdrawal.request(
        withdrawal_id=uuid4(),
        funded_account_id=uuid4(),
        owner_id="trader-1",
        ledger_account_id=uuid4(),
        amount_minor=1_500_00,
        currency="USD",
        hold_transfer_id=uuid4(),
        approval_required=approval_required,
        requested_at=AT,
        actor="user:key-1",
    )


def status_of(withdrawal: Withdrawal) -> WithdrawalStatus:
    """Read afresh: mypy would keep a property narrowed across the commands."""
    return withdrawal.status


def test_a_request_under_the_threshold_is_approved_by_the_service_at_once() -> None:
    withdrawal = requested(approval_required=False)
    assert withdrawal.status is WithdrawalStatus.APPROVED
    assert (withdrawal.approved_by, withdrawal.decided_automatically) == (SERVICE_ACTOR, True)
    assert withdrawal.payout_due(AT)
    assert [type(e).__name__ for e in withdrawal.collect_events()] == ["Requested", "Approved"]


def test_a_large_request_waits_and_is_never_due_until_approved() -> None:
    withdrawal = requested(approval_required=True)
    assert withdrawal.status is WithdrawalStatus.PENDING
    assert not withdrawal.payout_due(AT + timedelta(days=30))
    withdrawal.approve("admin:1", AT + timedelta(hours=1))
    assert status_of(withdrawal) is WithdrawalStatus.APPROVED
    assert (withdrawal.approved_by, withdrawal.decided_automatically) == ("admin:1", False)
    with pytest.raises(LedgerRefusal) as refused:
        withdrawal.approve("admin:2", AT + timedelta(hours=2))
    assert refused.value.code is ResultCode.WITHDRAWAL_NOT_PENDING
    with pytest.raises(LedgerRefusal) as refused:
        withdrawal.reject("late", "admin:2", AT + timedelta(hours=2))
    assert refused.value.code is ResultCode.WITHDRAWAL_NOT_PENDING


def test_a_rejection_is_final_with_its_reason() -> None:
    withdrawal = requested(approval_required=True)
    withdrawal.reject("documents missing", "admin:1", AT)
    assert withdrawal.status is WithdrawalStatus.REJECTED and withdrawal.is_final
    assert withdrawal.rejected_reason == "documents missing"
    assert (withdrawal.settled_by, withdrawal.settled_at) == ("admin:1", AT)
    with pytest.raises(LedgerRefusal):
        withdrawal.complete("po_1", "stripe", AT)


def test_backoff_doubles_from_five_seconds_to_a_cap() -> None:
    delays = [payout_retry_delay(attempt) for attempt in range(1, 12)]
    assert delays[:4] == [timedelta(seconds=s) for s in (5, 10, 20, 40)]
    assert max(delays) == PAYOUT_RETRY_MAX_DELAY
    assert delays == sorted(delays)
    assert payout_retry_delay(10**9) == PAYOUT_RETRY_MAX_DELAY
    with pytest.raises(ValueError, match="starts at 1"):
        payout_retry_delay(0)


def test_transient_failures_set_the_next_attempt_until_the_window_closes() -> None:
    withdrawal = requested(approval_required=False)
    now = AT
    withdrawal.payout_attempt_failed("timeout", now)
    assert withdrawal.next_payout_attempt_at == now + timedelta(seconds=5)
    assert not withdrawal.payout_due(now) and withdrawal.payout_due(now + timedelta(seconds=5))
    while not withdrawal.needs_attention:
        assert withdrawal.next_payout_attempt_at is not None
        now = withdrawal.next_payout_attempt_at
        withdrawal.payout_attempt_failed("timeout", now)
    assert now <= AT + PAYOUT_RETRY_WINDOW
    assert withdrawal.next_payout_attempt_at is None
    assert not withdrawal.payout_due(now + timedelta(days=2))
    resumed_at = now + timedelta(days=2)
    withdrawal.retry_payouts("admin:1", resumed_at)
    assert withdrawal.payout_due(resumed_at) and withdrawal.payout_failed_attempts == 0
    # A new run of attempts: its own backoff and its own window.
    withdrawal.payout_attempt_failed("timeout", resumed_at)
    assert withdrawal.next_payout_attempt_at == resumed_at + timedelta(seconds=5)
    assert not withdrawal.needs_attention
    with pytest.raises(LedgerRefusal) as refused:
        withdrawal.retry_payouts("admin:1", resumed_at)
    assert refused.value.code is ResultCode.INVALID_STATE_TRANSITION


def test_a_payout_is_recorded_once_and_settles_once() -> None:
    withdrawal = requested(approval_required=False)
    withdrawal.paid_out("po_1", "stripe", AT)
    withdrawal.paid_out("po_1", "stripe", AT)
    assert withdrawal.status is WithdrawalStatus.PAID_OUT and not withdrawal.payout_due(AT)
    with pytest.raises(LedgerRefusal) as refused:
        withdrawal.complete("po_2", "stripe-webhook:evt_1", AT)
    assert refused.value.code is ResultCode.INVALID_STATE_TRANSITION
    withdrawal.complete("po_1", "stripe-webhook:evt_1", AT)
    assert status_of(withdrawal) is WithdrawalStatus.COMPLETED
    with pytest.raises(LedgerRefusal):
        withdrawal.fail("payout_failed", "returned", "stripe-webhook:evt_2", AT)


def test_a_paid_webhook_may_come_before_the_payout_was_recorded() -> None:
    withdrawal = requested(approval_required=False)
    withdrawal.complete("po_9", "stripe-webhook:evt_1", AT)
    assert (withdrawal.status, withdrawal.payout_id) == (WithdrawalStatus.COMPLETED, "po_9")
    # The worker's late recording of the same payout changes nothing.
    withdrawal.paid_out("po_9", "stripe", AT)
    assert withdrawal.status is WithdrawalStatus.COMPLETED


def test_ids_and_payout_keys_come_from_the_request_alone() -> None:
    account = uuid4()
    assert withdrawal_id_for(account, "key-1") == withdrawal_id_for(account, "key-1")
    assert withdrawal_id_for(account, "key-1") != withdrawal_id_for(uuid4(), "key-1")
    withdrawal_id = withdrawal_id_for(account, "key-1")
    assert payout_idempotency_key(withdrawal_id) == f"withdrawal-{withdrawal_id}"
    with pytest.raises(LedgerRefusal) as refused:
        withdrawal_id_for(account, " padded ")
    assert refused.value.code is ResultCode.INVALID_IDEMPOTENCY_KEY
