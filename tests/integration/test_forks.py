"""Forks on real PostgreSQL: a Gen account over $100,000 hands $100,000 to a
Rev child in one write; cooldown, capacity, low confidence, rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from uuid import UUID

import pytest

from application.clock import SettableClock
from application.forks import ForksService
from domain.fork import (
    AUTO_APPROVAL_CONFIDENCE,
    FORK_COOLDOWN,
    FORKS_EXECUTING_MAX,
    ForkStatus,
    child_assessment_id,
)
from domain.funded_account import funded_account_id_for
from domain.funded_account_states import FundedAccountState
from domain.positions import PositionSide
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from tests.support.withdrawals import profitable_funded_account

GEN_START = 10_000_00


class FixedLoad:
    def __init__(self, executing: int) -> None:
        self.executing = executing

    def forks_executing(self) -> int:
        return self.executing


def _posted(ledger: Ledger, account_id: UUID) -> tuple[int, int]:
    account = ledger.service.account(account_id)
    assert account is not None
    totals = account.totals
    return (
        totals.credits_posted - totals.debits_posted,
        totals.credits_pending - totals.debits_pending,
    )


def _account_with_balance(ledger: Ledger, balance_minor: int) -> UUID:
    return profitable_funded_account(ledger, "trader-1", balance_minor - GEN_START)


def test_a_gen_account_past_the_threshold_forks_a_rev_child_conserving_capital(
    ledger: Ledger,
) -> None:
    parent_id = _account_with_balance(ledger, 120_000_00)
    parent = ledger.funded_accounts.require_funded_account(parent_id)
    before = _posted(ledger, parent.ledger_account_id)
    assert before == (120_000_00, 0)

    outcome = ledger.forks.propose(parent_id, "service:platform")
    fork, child = outcome.fork, outcome.child
    assert fork.status is ForkStatus.COMPLETED and fork.approved_automatically
    assert fork.confidence >= AUTO_APPROVAL_CONFIDENCE
    assert [factor["name"] for factor in fork.factors] == [
        "market_conditions",
        "account_performance",
        "system_load",
        "timing",
    ]
    assert child is not None
    assert (child.tier.name, child.parent_id, child.starting_balance_minor) == (
        TierName.REV,
        parent_id,
        100_000_00,
    )
    after_parent = ledger.funded_accounts.require_funded_account(parent_id)
    assert after_parent.state is FundedAccountState.ACTIVE
    # Conservation, to the cent: parent before = parent after + child.
    parent_after = _posted(ledger, after_parent.ledger_account_id)
    child_after = _posted(ledger, child.ledger_account_id)
    assert parent_after[0] + child_after[0] == before[0]
    assert (parent_after, child_after) == ((20_000_00, 0), (100_000_00, 0))
    assert after_parent.current_balance_minor == 20_000_00
    # Capital moved out is not a drawdown.
    assert after_parent.rule_status().drawdown.value == 0


def test_one_fork_attempt_per_account_per_day(ledger: Ledger, clock: SettableClock) -> None:
    parent_id = _account_with_balance(ledger, 105_000_00)
    # Over the threshold, not enough to keep the Gen minimum: rolled back.
    first = ledger.forks.propose(parent_id, "service:platform").fork
    assert first.status is ForkStatus.ROLLED_BACK
    assert first.rollback_reason is not None and "minimum" in first.rollback_reason
    with pytest.raises(LedgerRefusal) as refused:
        ledger.forks.propose(parent_id, "service:platform")
    assert refused.value.code is ResultCode.FORK_COOLDOWN
    assert refused.value.details["ends_at"] == (clock.now() + FORK_COOLDOWN).isoformat()
    clock.advance(FORK_COOLDOWN)
    assert ledger.forks.propose(parent_id, "service:platform").fork.id != first.id


def test_a_failed_fork_rolls_back_completely(ledger: Ledger) -> None:
    parent_id = _account_with_balance(ledger, 105_000_00)
    parent = ledger.funded_accounts.require_funded_account(parent_id)
    fork = ledger.forks.propose(parent_id, "service:platform").fork
    assert fork.status is ForkStatus.ROLLED_BACK and fork.child_id is None
    after = ledger.funded_accounts.require_funded_account(parent_id)
    assert after.state is FundedAccountState.ACTIVE
    assert after.current_balance_minor == 105_000_00
    assert _posted(ledger, parent.ledger_account_id) == (105_000_00, 0)
    # No child was made, not even half.
    child_id = funded_account_id_for(child_assessment_id(fork.id))
    assert ledger.app.load_funded_account(child_id) is None


def test_below_the_confidence_bar_an_admin_approves(ledger: Ledger, clock: SettableClock) -> None:
    parent_id = _account_with_balance(ledger, 120_000_00)
    # Monday 14:45 UTC: the volatile first half hour of the session.
    clock.set(datetime(2026, 1, 5, 14, 45, tzinfo=UTC))
    # A $2,000 loss from the $120,000 peak: drawdown 1/60 of a 10 % limit.
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_price("DIP", bid_minor=1_000_00, ask_minor=1_000_00)
    opened = ledger.funded_accounts.open_position(parent_id, "DIP", PositionSide.LONG, 4)
    broker.set_price("DIP", bid_minor=500_00, ask_minor=500_00)
    ledger.funded_accounts.close_position(parent_id, opened.position_id)
    # Four of five forks executing elsewhere.
    service = ForksService(ledger.app, ledger.writer, ledger.clock, FixedLoad(4))
    fork = service.propose(parent_id, "service:platform").fork
    # Returns full (20 % past the threshold), band safe, risk 1 - (1/60) / (1/10).
    performance = (1 + 1 + (1 - Fraction(2_000, 120_000) / Fraction(10, 100))) / 3
    # No position: no gap, no spread; the session scores 0 in its first half hour.
    market = Fraction(1 + 1 + 0, 3)
    assert fork.confidence == (
        Fraction(3, 10) * market
        + Fraction(4, 10) * performance
        + Fraction(2, 10) * Fraction(1, 5)
        + Fraction(1, 10) * 0
    )
    assert fork.confidence < AUTO_APPROVAL_CONFIDENCE
    assert fork.status is ForkStatus.PROPOSED
    done = service.approve(fork.id, "admin:ops")
    assert done.fork.status is ForkStatus.COMPLETED and done.fork.approved_by == "admin:ops"
    assert done.child is not None and done.child.starting_balance_minor == 100_000_00


def test_at_most_five_forks_execute_at_once(ledger: Ledger) -> None:
    parent_id = _account_with_balance(ledger, 120_000_00)
    busy = ForksService(ledger.app, ledger.writer, ledger.clock, FixedLoad(FORKS_EXECUTING_MAX))
    waiting = busy.propose(parent_id, "service:platform").fork
    # Approved by its confidence, but five are executing: it waits, approved.
    assert waiting.status is ForkStatus.APPROVED
    with pytest.raises(LedgerRefusal) as refused:
        busy.execute(waiting.id)
    assert refused.value.code is ResultCode.FORK_CAPACITY_REACHED
    assert ledger.funded_accounts.require_funded_account(parent_id).current_balance_minor == (
        120_000_00
    )
    # A slot frees: executed.
    assert ledger.forks.execute(waiting.id).fork.status is ForkStatus.COMPLETED


def test_a_top_tier_or_a_small_account_does_not_fork(ledger: Ledger) -> None:
    small = _account_with_balance(ledger, 50_000_00)
    with pytest.raises(LedgerRefusal) as refused:
        ledger.forks.propose(small, "service:platform")
    assert refused.value.code is ResultCode.FORK_NOT_ALLOWED


def test_the_rev_child_later_forks_a_com_child(ledger: Ledger, clock: SettableClock) -> None:
    parent_id = _account_with_balance(ledger, 120_000_00)
    child = ledger.forks.propose(parent_id, "service:platform").child
    assert child is not None
    clock.advance(timedelta(days=2))
    # The Rev child trades up to $630,000 (40 units at $100, 4 % of its capital).
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_price("GROW", bid_minor=100_00, ask_minor=100_00)
    opened = ledger.funded_accounts.open_position(child.id, "GROW", PositionSide.LONG, 40)
    exit_minor = 100_00 + 530_000_00 // 40
    broker.set_price("GROW", bid_minor=exit_minor, ask_minor=exit_minor + 1)
    ledger.funded_accounts.close_position(child.id, opened.position_id)
    grown = ledger.funded_accounts.require_funded_account(child.id)
    assert grown.current_balance_minor == 630_000_00
    grandchild = ledger.forks.propose(child.id, "service:platform").child
    assert grandchild is not None
    assert (grandchild.tier.name, grandchild.parent_id) == (TierName.COM, child.id)
    assert grandchild.starting_balance_minor == 500_000_00


def test_the_scanner_proposes_for_accounts_past_the_threshold(ledger: Ledger) -> None:
    ready = _account_with_balance(ledger, 120_000_00)
    _account_with_balance(ledger, 50_000_00)
    assert ledger.projections is not None
    assert ledger.projections.wait_for(
        ledger.writer.last_position, ["funded_accounts", "forks"], 10
    )
    done = ledger.fork_scanner.run_once()
    assert done is not None
    assert [(act.action, act.item_id, act.outcome) for act in done.actions] == [
        ("propose", ready, "completed")
    ]
    assert ledger.funded_accounts.require_funded_account(ready).current_balance_minor == 20_000_00
