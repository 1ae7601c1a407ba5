"""The demo's closure: initiated once, found again on a reload."""

from __future__ import annotations

from domain.closure import ClosurePhase
from domain.funded_account_states import FundedAccountState
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.closures import load_closure_demo


def test_the_demo_starts_one_closure_and_loads_again_unchanged(ledger: Ledger) -> None:
    assert isinstance(ledger.broker, SimulatedBroker)
    summary = load_closure_demo(ledger.funded_accounts, ledger.closures, ledger.broker)
    assert summary.phase == ClosurePhase.INITIATED.value
    account = ledger.funded_accounts.require_funded_account(summary.funded_account_id)
    assert account.state is FundedAccountState.PENDING_CLOSURE
    assert account.withdrawable_minor() == 1_600_00
    # The worker takes it from here: liquidated, settling for T+1.
    assert ledger.closures.advance(summary.closure_id).phase is ClosurePhase.SETTLING

    position = ledger.writer.last_position
    again = load_closure_demo(ledger.funded_accounts, ledger.closures, ledger.broker)
    assert (again.closure_id, again.confirmation_number) == (
        summary.closure_id,
        summary.confirmation_number,
    )
    assert ledger.writer.last_position == position
