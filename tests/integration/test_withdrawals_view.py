"""The withdrawals view against the aggregates it is made from.

Generated histories of withdrawals (every step, in any order the process
allows, refusals included) are recorded in the log; the view, caught up by
a runner that remembers and by a fresh one that reads back, must show each
withdrawal exactly as the aggregate holds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Final
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.clock import SettableClock
from domain.result_codes import LedgerRefusal
from domain.withdrawal import Withdrawal
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.runner import ProjectionRunner
from projections.withdrawals import WithdrawalsView, payouts_due, withdrawal_row
from tests.support.ledgers import EPOCH

STEPS: Final = (
    "approve",
    "reject",
    "attempt_failed",
    "resume",
    "paid_out",
    "complete",
    "fail",
    "project",
)
_payouts = itertools.count(1)


@pytest.fixture
def idle_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    running = build_ledger(settings, clock=clock, start_writer=False, start_projections=False)
    try:
        yield running
    finally:
        running.close()


def _new(approval_required: bool) -> Withdrawal:
    return Withdrawal.request(
        withdrawal_id=uuid4(),
        funded_account_id=uuid4(),
        owner_id="trader-1",
        ledger_account_id=uuid4(),
        amount_minor=1_234_00,
        currency="USD",
        hold_transfer_id=uuid4(),
        approval_required=approval_required,
        requested_at=EPOCH,
        actor="user:key",
    )


def _step(withdrawal: Withdrawal, kind: str, minute: int) -> None:
    at = EPOCH + timedelta(minutes=minute)
    if kind == "approve":
        withdrawal.approve("admin:1", at)
    elif kind == "reject":
        withdrawal.reject("no documents", "admin:1", at)
    elif kind == "attempt_failed":
        withdrawal.payout_attempt_failed("timeout", at)
    elif kind == "resume":
        withdrawal.retry_payouts("admin:1", at)
    elif kind == "paid_out":
        withdrawal.paid_out(f"po_{next(_payouts)}", "stripe", at)
    elif kind == "complete":
        withdrawal.complete(withdrawal.payout_id or "po_early", "stripe-webhook:evt", at)
    elif kind == "fail":
        withdrawal.fail("account_closed", "closed", "stripe-webhook:evt", at)


def _expected(withdrawal: Withdrawal) -> dict[str, Any]:
    return {
        "status": withdrawal.status.value,
        "approved_at": withdrawal.approved_at,
        "approved_by": withdrawal.approved_by,
        "decided_automatically": withdrawal.decided_automatically,
        "rejected_reason": withdrawal.rejected_reason,
        "payout_id": withdrawal.payout_id,
        "payout_gateway": withdrawal.payout_gateway,
        "payout_failed_attempts": withdrawal.payout_failed_attempts,
        "last_payout_error": withdrawal.last_payout_error,
        "next_payout_attempt_at": withdrawal.next_payout_attempt_at,
        "needs_attention": withdrawal.needs_attention,
        "failure_code": withdrawal.failure_code,
        "failure_message": withdrawal.failure_message,
        "settled_at": withdrawal.settled_at,
        "settled_by": withdrawal.settled_by,
        "updated_at": withdrawal.updated_at,
        "amount_minor": withdrawal.amount_minor,
        "funded_account_id": withdrawal.funded_account_id,
        "hold_transfer_id": withdrawal.hold_transfer_id,
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    approvals=st.lists(st.booleans(), min_size=1, max_size=4),
    story=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(STEPS)), min_size=1, max_size=30),
    page_size=st.sampled_from([1, 3, 500]),
)
def test_the_view_shows_each_withdrawal_as_the_aggregate_holds_it(
    idle_ledger: Ledger,
    approvals: list[bool],
    story: list[tuple[int, str]],
    page_size: int,
) -> None:
    ledger = idle_ledger
    withdrawals = [_new(approval_required) for approval_required in approvals]
    ledger.app.save(*withdrawals)
    runner = ProjectionRunner(ledger.database_url, [WithdrawalsView()], page_size=page_size)
    try:
        for minute, (index, kind) in enumerate(story, start=1):
            withdrawal = withdrawals[index % len(withdrawals)]
            if kind == "project":
                runner.catch_up()
                continue
            try:
                _step(withdrawal, kind, minute)
            except LedgerRefusal:
                continue
            ledger.app.save(withdrawal)
        runner.catch_up()
    finally:
        runner.stop()
    fresh = ProjectionRunner(ledger.database_url, [WithdrawalsView()], page_size=page_size)
    try:
        fresh.catch_up()
    finally:
        fresh.stop()
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        for withdrawal in withdrawals:
            row = withdrawal_row(cursor, withdrawal.id)
            assert row is not None
            shown = {name: getattr(row, name) for name in _expected(withdrawal)}
            assert shown == _expected(withdrawal)
        far = EPOCH + timedelta(days=365)
        due = set(payouts_due(cursor, far, limit=10_000))
    # The database outlives an example: only this example's withdrawals count.
    ours = {withdrawal.id for withdrawal in withdrawals}
    assert due & ours == {withdrawal.id for withdrawal in withdrawals if withdrawal.payout_due(far)}
