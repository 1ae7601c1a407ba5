"""The demo's funded accounts: every tier, every rule band, and a reload that
changes nothing."""

from __future__ import annotations

from domain.funded_account_states import FundedAccountState
from domain.funded_rules import RuleBand
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.funded_accounts import DEMO_FUNDED_ACCOUNTS, load_funded_demo


def test_the_demo_has_every_tier_and_every_band_and_loads_again_unchanged(
    ledger: Ledger,
) -> None:
    assert isinstance(ledger.broker, SimulatedBroker)
    summary = load_funded_demo(ledger.funded_accounts, ledger.broker)
    assert summary.created == len(DEMO_FUNDED_ACCOUNTS)
    accounts = [
        ledger.funded_accounts.require_funded_account(account_id)
        for account_id in summary.account_ids
    ]
    assert {account.tier.name for account in accounts} == set(TierName)
    assert {account.band for account in accounts} == set(RuleBand)
    violated = [account for account in accounts if account.band is RuleBand.VIOLATION]
    assert [account.state for account in violated] == [FundedAccountState.CLOSED]
    assert violated[0].state_reason.startswith("rule violation: drawdown")
    traded = [account for account in accounts if account.tier.name is not TierName.GEN]
    assert all(account.realized_pnl_minor > 0 and account.positions for account in traded)

    position_before = ledger.writer.last_position
    again = load_funded_demo(ledger.funded_accounts, ledger.broker)
    assert again.created == 0 and again.account_ids == summary.account_ids
    assert again.bands == summary.bands
    assert ledger.writer.last_position == position_before
