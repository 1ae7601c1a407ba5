"""The demo's withdrawals: one in every status an admin filters by, and a
reload that changes nothing."""

from __future__ import annotations

from domain.withdrawal import WithdrawalStatus
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.withdrawals import (
    APPROVED_MINOR,
    FAILED_MINOR,
    LARGE_MINOR,
    REJECTED_MINOR,
    SMALL_MINOR,
    load_withdrawals_demo,
)


def test_the_demo_has_a_withdrawal_in_every_status(ledger: Ledger) -> None:
    assert isinstance(ledger.broker, SimulatedBroker)
    summary = load_withdrawals_demo(
        ledger.funded_accounts, ledger.withdrawals, ledger.broker, ledger.payout_gateway
    )
    withdrawals = [ledger.withdrawals.require_withdrawal(key) for key in summary.statuses]
    assert sorted((item.status, item.amount_minor) for item in withdrawals) == sorted(
        [
            (WithdrawalStatus.COMPLETED, SMALL_MINOR),
            (WithdrawalStatus.PENDING, LARGE_MINOR),
            (WithdrawalStatus.REJECTED, REJECTED_MINOR),
            (WithdrawalStatus.APPROVED, APPROVED_MINOR),
            (WithdrawalStatus.FAILED, FAILED_MINOR),
        ]
    )
    account = ledger.funded_accounts.require_funded_account(summary.funded_account_id)
    assert account.total_withdrawn_minor == SMALL_MINOR
    # Rejected and failed amounts are withdrawable again.
    assert account.reserved_withdrawals_minor == LARGE_MINOR + APPROVED_MINOR

    position = ledger.writer.last_position
    again = load_withdrawals_demo(
        ledger.funded_accounts, ledger.withdrawals, ledger.broker, ledger.payout_gateway
    )
    assert again == summary
    assert ledger.writer.last_position == position
