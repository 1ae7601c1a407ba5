"""Funded accounts on real PostgreSQL: activation, positions through the
simulated broker, realized P&L in the ledger, the rules and their bands."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from uuid import UUID, uuid4

import pytest

from application.clock import SettableClock
from application.funded_accounts import (
    ActivationRequest,
    FundedAccountsService,
    platform_account,
)
from domain.account import AccountKind
from domain.commands import open_account
from domain.funded_account import FundedAccount, funded_account_id_for
from domain.funded_account_states import FundedAccountState
from domain.funded_rules import RuleBand
from domain.positions import PositionSide
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIERS, TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger

COMPLETED_AT = datetime(2025, 12, 20, tzinfo=UTC)
GEN_START = TIERS[TierName.GEN].minimum_capital_minor  # $10,000


def _request(assessment_id: str | None = None, **changes: object) -> ActivationRequest:
    fields: dict[str, object] = {
        "assessment_id": assessment_id or f"assessment-{uuid4()}",
        "owner_id": "trader-1",
        "tier": TierName.GEN,
        "profit_split": Fraction(4, 5),
        "completed_at": COMPLETED_AT,
    }
    fields.update(changes)
    return ActivationRequest(**fields)  # type: ignore[arg-type]


def _service(ledger: Ledger) -> FundedAccountsService:
    return ledger.funded_accounts


def _broker(ledger: Ledger) -> SimulatedBroker:
    assert isinstance(ledger.broker, SimulatedBroker)
    return ledger.broker


def _posted_balance(ledger: Ledger, account_id: UUID) -> int:
    account = ledger.service.account(account_id)
    assert account is not None
    return account.totals.credits_posted - account.totals.debits_posted


def _activated(ledger: Ledger, **changes: object) -> FundedAccount:
    return _service(ledger).activate(_request(None, **changes), actor="service-key").account


# Activation -------------------------------------------------------------------------


def test_activation_funds_a_ledger_account_from_the_platform(ledger: Ledger) -> None:
    activation = _service(ledger).activate(_request(), actor="service-key")
    account = activation.account
    assert activation.created and activation.position is not None
    assert account.state is FundedAccountState.ACTIVE
    assert account.starting_balance_minor == account.current_balance_minor == GEN_START
    assert _posted_balance(ledger, account.ledger_account_id) == GEN_START
    funding = platform_account(AccountKind.FUNDING)
    assert _posted_balance(ledger, funding.account_id) == -GEN_START
    stored = _service(ledger).funded_account(account.id)
    assert stored is not None and stored.activated_by == "service-key"


def test_activating_an_assessment_again_finds_the_same_account(ledger: Ledger) -> None:
    request = _request()
    first = _service(ledger).activate(request, actor="service-key")
    again = _service(ledger).activate(request, actor="service-key")
    assert not again.created and again.account.id == first.account.id
    assert _posted_balance(ledger, first.account.ledger_account_id) == GEN_START

    with pytest.raises(LedgerRefusal) as refused:
        _service(ledger).activate(
            _request(request.assessment_id, tier=TierName.REV), actor="service-key"
        )
    assert refused.value.code is ResultCode.ASSESSMENT_ALREADY_FUNDED


def test_fifty_activations_of_one_assessment_at_once_make_one_account(ledger: Ledger) -> None:
    request = _request()
    with ThreadPoolExecutor(50) as pool:
        activations = list(
            pool.map(lambda _: _service(ledger).activate(request, "service-key"), range(50))
        )
    assert len({activation.account.id for activation in activations}) == 1
    assert sum(activation.created for activation in activations) == 1
    account = activations[0].account
    assert _posted_balance(ledger, account.ledger_account_id) == GEN_START
    assert _posted_balance(ledger, platform_account(AccountKind.FUNDING).account_id) == -GEN_START


def test_an_activation_that_fails_half_way_leaves_no_account_and_no_money(
    ledger: Ledger,
) -> None:
    request = _request()
    funded_account_id = funded_account_id_for(request.assessment_id)
    # Someone holds the trader account's id with other details: opening it is
    # refused after the platform account was opened in the same chain.
    squatter = open_account(
        idempotency_key=f"account-{funded_account_id}",
        scope="funded",
        currency="USD",
        owner_id="someone-else",
    )
    assert ledger.service.execute([squatter]).results[0].succeeded
    with pytest.raises(LedgerRefusal) as refused:
        _service(ledger).activate(request, actor="service-key")
    assert refused.value.code is ResultCode.IDEMPOTENCY_KEY_REUSED
    assert _service(ledger).funded_account(funded_account_id) is None
    assert _posted_balance(ledger, squatter.account_id) == 0
    assert ledger.service.account(platform_account(AccountKind.FUNDING).account_id) is None


def test_a_starting_balance_below_the_tier_minimum_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerRefusal) as refused:
        _activated(ledger, starting_balance_minor=GEN_START - 1)
    assert refused.value.code is ResultCode.STARTING_BALANCE_BELOW_TIER_MINIMUM


# Positions and P&L ------------------------------------------------------------------


def test_a_profitable_close_moves_realized_pnl_into_the_ledger(
    ledger: Ledger, clock: SettableClock
) -> None:
    account = _activated(ledger)
    _broker(ledger).set_price("ACME", bid_minor=9_990, ask_minor=10_000)
    opened = _service(ledger).open_position(account.id, "ACME", PositionSide.LONG, 4)
    assert opened.fill.price_minor == 10_000
    clock.advance(timedelta(minutes=5))
    _broker(ledger).set_price("ACME", bid_minor=10_500, ask_minor=10_510)
    marked = _service(ledger).mark_to_market(account.id)
    assert marked.account.unrealized_pnl_minor == 2_000
    assert marked.account.peak_balance_minor == GEN_START + 2_000

    closed = _service(ledger).close_position(account.id, opened.position_id)
    assert closed.fill.realized_pnl_minor == 2_000
    after = closed.account
    assert after.realized_pnl_minor == 2_000 and after.unrealized_pnl_minor == 0
    assert after.current_balance_minor == GEN_START + 2_000
    assert after.positions == ()
    assert _posted_balance(ledger, account.ledger_account_id) == GEN_START + 2_000
    trading_pnl = platform_account(AccountKind.TRADING_PNL).account_id
    assert _posted_balance(ledger, trading_pnl) == -2_000
    # Closing again: the position is gone, nothing moves twice.
    with pytest.raises(LedgerRefusal) as refused:
        _service(ledger).close_position(account.id, opened.position_id)
    assert refused.value.code is ResultCode.POSITION_NOT_FOUND
    assert _posted_balance(ledger, account.ledger_account_id) == GEN_START + 2_000


def test_a_losing_short_moves_the_loss_to_the_platform(ledger: Ledger) -> None:
    account = _activated(ledger)
    _broker(ledger).set_price("ACME", bid_minor=10_000, ask_minor=10_010)
    opened = _service(ledger).open_position(account.id, "ACME", PositionSide.SHORT, 3)
    _broker(ledger).set_price("ACME", bid_minor=10_090, ask_minor=10_100)
    closed = _service(ledger).close_position(account.id, opened.position_id)
    assert closed.fill.realized_pnl_minor == -300
    assert _posted_balance(ledger, account.ledger_account_id) == GEN_START - 300
    assert closed.account.current_balance_minor == GEN_START - 300


def test_limits_are_checked_before_the_broker_trades(ledger: Ledger) -> None:
    account = _activated(ledger)
    broker = _broker(ledger)
    broker.set_price("ACME", bid_minor=100, ask_minor=100)
    # 5 % of $10,000 is $500 = 50,000 minor units: 501 units at 100 is over it.
    with pytest.raises(LedgerRefusal) as refused:
        _service(ledger).open_position(account.id, "ACME", PositionSide.LONG, 501)
    assert refused.value.code is ResultCode.POSITION_EXCEEDS_RISK_LIMIT
    broker.register_account(account.id, GEN_START)
    assert broker.open_positions(account.id) == ()

    for _ in range(TIERS[TierName.GEN].max_open_positions):
        _service(ledger).open_position(account.id, "ACME", PositionSide.LONG, 10)
    with pytest.raises(LedgerRefusal) as refused:
        _service(ledger).open_position(account.id, "ACME", PositionSide.LONG, 10)
    assert refused.value.code is ResultCode.TOO_MANY_OPEN_POSITIONS
    assert len(broker.open_positions(account.id)) == TIERS[TierName.GEN].max_open_positions


def test_broker_failures_are_refusals_that_record_nothing(ledger: Ledger) -> None:
    account = _activated(ledger)
    broker = _broker(ledger)
    broker.set_price("ACME", bid_minor=100, ask_minor=100)
    broker.register_account(account.id, GEN_START)
    broker.set_unavailable(account.id)
    with pytest.raises(LedgerRefusal) as refused:
        _service(ledger).open_position(account.id, "ACME", PositionSide.LONG, 1)
    assert refused.value.code is ResultCode.BROKER_UNAVAILABLE
    with pytest.raises(LedgerRefusal) as unknown:
        _service(ledger).open_position(account.id, "NOPE", PositionSide.LONG, 1)
    assert unknown.value.code is ResultCode.UNKNOWN_SYMBOL
    stored = _service(ledger).funded_account(account.id)
    assert stored is not None and stored.positions == ()


def test_a_retried_open_with_the_same_client_order_id_records_one_position(
    ledger: Ledger,
) -> None:
    account = _activated(ledger)
    _broker(ledger).set_price("ACME", bid_minor=100, ask_minor=100)
    first = _service(ledger).open_position(account.id, "ACME", PositionSide.LONG, 2, "order-1")
    again = _service(ledger).open_position(account.id, "ACME", PositionSide.LONG, 2, "order-1")
    assert again.position_id == first.position_id
    stored = _service(ledger).funded_account(account.id)
    assert stored is not None and len(stored.positions) == 1


# Rules ------------------------------------------------------------------------------


def _lose(ledger: Ledger, account_id: UUID, drop_minor: int) -> None:
    """Open a long of 400 units at 100 and close it `drop_minor` lower."""
    broker = _broker(ledger)
    broker.set_price("ACME", bid_minor=100, ask_minor=100)
    opened = _service(ledger).open_position(account_id, "ACME", PositionSide.LONG, 400)
    broker.set_price("ACME", bid_minor=100 - drop_minor, ask_minor=100)
    _service(ledger).close_position(account_id, opened.position_id)


def test_a_drawdown_walks_the_bands_and_a_violation_closes_the_account(
    ledger: Ledger,
) -> None:
    """Gen: drawdown limit 10 % of the peak. A profitable trade lifts the peak
    to 1,004,000; then WARNING from 80 % of the limit (80,320 lost), DANGER
    from 90 % (90,360), and past 100,400 lost, VIOLATION."""
    account = _activated(ledger)
    service = _service(ledger)
    broker = _broker(ledger)
    broker.set_price("ACME", bid_minor=100, ask_minor=100)
    won = service.open_position(account.id, "ACME", PositionSide.LONG, 400)
    broker.set_price("ACME", bid_minor=110, ask_minor=110)
    service.close_position(account.id, won.position_id)
    assert service.require_funded_account(account.id).peak_balance_minor == GEN_START + 4_000

    bands: list[RuleBand] = []
    # Losses of 39,600, 39,600, 1,200 and 10,000 of the 1,004,000 peak:
    # 3.94 %, 7.89 %, 8.01 %, 9.00 %.
    for drop in (99, 99, 3, 25):
        _lose(ledger, account.id, drop)
        bands.append(service.require_funded_account(account.id).band)
    assert bands == [RuleBand.SAFE, RuleBand.SAFE, RuleBand.WARNING, RuleBand.DANGER]
    assert service.require_funded_account(account.id).current_balance_minor == (
        GEN_START + 4_000 - 90_400
    )

    # An open long marked 10,400 lower: 100,800 lost, 10.04 % of the peak,
    # over the limit. The mark finds the violation, closes the position,
    # then the account.
    broker.set_price("ACME", bid_minor=100, ask_minor=100)
    service.open_position(account.id, "ACME", PositionSide.LONG, 400)
    broker.set_price("ACME", bid_minor=74, ask_minor=100)
    check = service.mark_to_market(account.id)
    assert check.enforced and check.rule_status.band is RuleBand.VIOLATION
    closed = check.account
    assert closed.state is FundedAccountState.CLOSED
    assert closed.state_reason.startswith("rule violation: drawdown 10.04%")
    assert closed.positions == ()
    assert broker.open_positions(account.id) == ()
    assert closed.realized_pnl_minor == 4_000 - 100_800
    assert _posted_balance(ledger, account.ledger_account_id) == GEN_START + 4_000 - 100_800
    with pytest.raises(LedgerRefusal) as refused:
        service.open_position(account.id, "ACME", PositionSide.LONG, 1)
    assert refused.value.code is ResultCode.ACCOUNT_NOT_ACTIVE
    # Marking a closed account again changes nothing.
    assert not service.mark_to_market(account.id).enforced
