"""The demo's withdrawals: one paid out through the sandbox, one waiting for an
admin, and a reload that changes nothing."""

from __future__ import annotations

from domain.withdrawal import WithdrawalStatus
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.withdrawals import LARGE_MINOR, SMALL_MINOR, load_withdrawals_demo


def test_the_demo_pays_one_withdrawal_and_leaves_one_for_an_admin(ledger: Ledger) -> None:
    assert isinstance(ledger.broker, SimulatedBroker)
    summary = load_withdrawals_demo(ledger.funded_accounts, ledger.withdrawals, ledger.broker)
    paid = ledger.withdrawals.require_withdrawal(summary.paid_withdrawal_id)
    pending = ledger.withdrawals.require_withdrawal(summary.pending_withdrawal_id)
    assert (paid.status, paid.amount_minor) == (WithdrawalStatus.COMPLETED, SMALL_MINOR)
    assert (pending.status, pending.amount_minor) == (WithdrawalStatus.PENDING, LARGE_MINOR)
    account = ledger.funded_accounts.require_funded_account(summary.funded_account_id)
    assert account.total_withdrawn_minor == SMALL_MINOR
    assert account.reserved_withdrawals_minor == LARGE_MINOR

    position = ledger.writer.last_position
    again = load_withdrawals_demo(ledger.funded_accounts, ledger.withdrawals, ledger.broker)
    assert again == summary
    assert ledger.writer.last_position == position
