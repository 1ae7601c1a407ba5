"""Funded account figures hold together over any sequence of trades, marks and payouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from uuid import UUID

from hypothesis import event, given
from hypothesis import strategies as st

from domain.funded_account import (
    FundedAccount,
    FundedAccountRefusal,
    FundedRefusalReason,
)
from domain.positions import PositionSide, position_pnl_minor
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TierName

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SYMBOLS = ("ACME", "BOLT", "CORE")
TIER_REFUSALS = {
    FundedRefusalReason.TOO_MANY_OPEN_POSITIONS,
    FundedRefusalReason.POSITION_EXCEEDS_TIER_SHARE,
    FundedRefusalReason.CAPITAL_NOT_POSITIVE,
}

symbols = st.sampled_from(SYMBOLS)
prices = st.integers(min_value=1, max_value=50_000)
sides = st.sampled_from(list(PositionSide))
operations = st.one_of(
    st.tuples(st.just("open"), symbols, sides, st.integers(1, 2_000), prices),
    st.tuples(st.just("close"), st.integers(0, 60), prices),
    st.tuples(st.just("mark"), st.dictionaries(symbols, prices, max_size=len(SYMBOLS))),
    # A share of what is withdrawable, in percent; over 100 must be refused.
    st.tuples(st.just("withdraw"), st.integers(1, 120)),
)


def _expected_pnl_minor(side: PositionSide, entry: int, exit_price: int, quantity: int) -> int:
    """The P&L the figures must show, written apart from the domain's: a long
    gains what the price rose, a short what it fell."""
    direction = 1 if side is PositionSide.LONG else -1
    return direction * (exit_price - entry) * quantity


@dataclass
class Model:
    """What the figures must be, kept apart from the aggregate."""

    starting_minor: int
    realized_minor: int = 0
    withdrawn_minor: int = 0
    # position id -> (symbol, side, quantity, entry, mark)
    positions: dict[str, tuple[str, PositionSide, int, int, int]] = field(default_factory=dict)
    # The highest equity seen, counted with what had been withdrawn by then.
    highest_equity_plus_withdrawn_minor: int = 0

    def unrealized_minor(self) -> int:
        return sum(
            _expected_pnl_minor(side, entry, mark, quantity)
            for _symbol, side, quantity, entry, mark in self.positions.values()
        )


def apply(account: FundedAccount, model: Model, operation: tuple[Any, ...], at: datetime) -> None:
    kind = operation[0]
    if kind == "open":
        _, symbol, side, quantity, price = operation
        position_id = f"p-{int(at.timestamp())}"
        try:
            account.open_position(position_id, symbol, side, quantity, price, at)
        except FundedAccountRefusal as refusal:
            assert refusal.reason in TIER_REFUSALS
            event(f"open refused: {refusal.reason}")
            return
        event("opened")
        model.positions[position_id] = (symbol, side, quantity, price, price)
    elif kind == "close" and model.positions:
        _, index, price = operation
        position_id = sorted(model.positions)[index % len(model.positions)]
        _symbol, side, quantity, entry, _mark = model.positions.pop(position_id)
        pnl = _expected_pnl_minor(side, entry, price, quantity)
        account.close_position(position_id, price, pnl, at)
        model.realized_minor += pnl
        event("closed")
    elif kind == "mark":
        _, marks = operation
        account.mark_to_market(marks, at)
        model.positions = {
            position_id: (symbol, side, quantity, entry, marks.get(symbol, mark))
            for position_id, (symbol, side, quantity, entry, mark) in model.positions.items()
        }
    elif kind == "withdraw":
        _, percent = operation
        withdrawable = account.withdrawable_minor()
        amount = withdrawable * percent // 100
        if amount <= 0:
            return
        try:
            account.record_withdrawal(amount, f"w-{int(at.timestamp())}", at)
        except LedgerRefusal as refusal:
            assert refusal.code is ResultCode.EXCEEDS_WITHDRAWABLE
            assert amount > withdrawable
            event("withdrawal refused")
            return
        event("withdrew")
        assert amount <= withdrawable
        model.withdrawn_minor += amount


def check_figures(account: FundedAccount, model: Model) -> None:
    assert account.starting_balance_minor == model.starting_minor
    assert account.realized_pnl_minor == model.realized_minor
    assert account.total_withdrawn_minor == model.withdrawn_minor
    assert account.current_balance_minor == (
        account.starting_balance_minor + account.realized_pnl_minor - account.total_withdrawn_minor
    )
    assert account.unrealized_pnl_minor == model.unrealized_minor()
    assert account.equity_minor == account.current_balance_minor + account.unrealized_pnl_minor
    assert {p.position_id for p in account.positions} == set(model.positions)
    model.highest_equity_plus_withdrawn_minor = max(
        model.highest_equity_plus_withdrawn_minor, account.equity_minor + model.withdrawn_minor
    )
    # The peak is the highest equity seen, lowered by each withdrawal since; so
    # with no withdrawal it is at least every equity seen, and never below now.
    assert (
        account.peak_balance_minor + account.total_withdrawn_minor
        == model.highest_equity_plus_withdrawn_minor
    )
    assert account.peak_balance_minor >= account.equity_minor
    assert account.withdrawable_minor() >= 0


@given(
    tier=st.sampled_from(list(TierName)),
    split=st.fractions(min_value=Fraction(1, 100), max_value=1, max_denominator=100),
    steps=st.lists(operations, max_size=40),
)
def test_the_figures_hold_together_over_any_trades_marks_and_withdrawals(
    tier: TierName, split: Fraction, steps: list[tuple[Any, ...]]
) -> None:
    account = FundedAccount.activate(
        assessment_id="assessment-1",
        owner_id="trader-1",
        tier=tier,
        profit_split=split,
        completed_at=AT,
        ledger_account_id=UUID(int=1),
        activated_at=AT,
        actor="system",
    )
    model = Model(starting_minor=account.starting_balance_minor)
    events: list[Any] = list(account.collect_events())
    check_figures(account, model)
    for number, operation in enumerate(steps, start=1):
        apply(account, model, operation, AT + timedelta(seconds=number))
        events.extend(account.collect_events())
        check_figures(account, model)

    replayed: Any = None
    for domain_event in events:
        replayed = domain_event.mutate(replayed)
    assert isinstance(replayed, FundedAccount)
    assert vars(replayed) | {"_pending_events": []} == vars(account) | {"_pending_events": []}


@given(
    side=st.sampled_from(list(PositionSide)),
    entry=st.integers(1, 10**9),
    exit_price=st.integers(1, 10**9),
    quantity=st.integers(1, 10**6),
)
def test_the_pnl_rule_gains_a_long_the_rise_and_a_short_the_fall(
    side: PositionSide, entry: int, exit_price: int, quantity: int
) -> None:
    assert position_pnl_minor(side, entry, exit_price, quantity) == _expected_pnl_minor(
        side, entry, exit_price, quantity
    )
