"""The funded account aggregate: activation, positions, figures, bands, states, replay."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, Mapper, UUIDAsHex

from application.transcoder import OrjsonTranscoder
from domain.funded_account import (
    FundedAccount,
    FundedAccountRefusal,
    FundedRefusalReason,
    funded_account_id_for,
)
from domain.funded_account_states import ALLOWED_TRANSITIONS, FundedAccountState
from domain.funded_rules import WITHDRAWAL_MINIMUM_MINOR, RuleBand
from domain.positions import PositionSide, position_pnl_minor
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIERS, TierName

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LEDGER_ACCOUNT_ID = UUID("7a1d2c3b-4e5f-4a6b-9c8d-0e1f2a3b4c5d")
STATES = list(FundedAccountState)
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
GEN_START = TIERS[TierName.GEN].minimum_capital_minor  # $10,000


def later(minutes: int) -> datetime:
    return AT + timedelta(minutes=minutes)


def activated(
    tier: TierName = TierName.GEN,
    split: Fraction = Fraction(4, 5),
    assessment_id: str = "assessment-1",
    starting_balance_minor: int | None = None,
) -> FundedAccount:
    return FundedAccount.activate(
        assessment_id=assessment_id,
        owner_id="trader-1",
        tier=tier,
        profit_split=split,
        completed_at=AT - timedelta(days=1),
        ledger_account_id=LEDGER_ACCOUNT_ID,
        activated_at=AT,
        actor="system:activation",
        starting_balance_minor=starting_balance_minor,
    )


def account_in(state: FundedAccountState) -> FundedAccount:
    """Every state is one allowed step from ACTIVE, where an account starts."""
    account = activated()
    if state is not FundedAccountState.ACTIVE:
        account.change_state(state, reason=f"test: to {state}", actor="admin-1", at=later(1))
    return account


def event_names(account: FundedAccount) -> list[str]:
    return [type(domain_event).__name__ for domain_event in account.collect_events()]


def plain_state(account: FundedAccount) -> dict[str, Any]:
    return {key: value for key, value in vars(account).items() if key != "_pending_events"}


def replayed(events: Sequence[Any]) -> FundedAccount:
    aggregate: Any = None
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    assert isinstance(aggregate, FundedAccount)
    return aggregate


def trade(
    account: FundedAccount,
    position_id: str,
    side: PositionSide,
    quantity: int,
    entry_minor: int,
    exit_minor: int,
    minute: int,
) -> None:
    account.open_position(position_id, "ACME", side, quantity, entry_minor, later(minute))
    pnl = position_pnl_minor(side, entry_minor, exit_minor, quantity)
    account.close_position(position_id, exit_minor, pnl, later(minute + 1))


# Activation ------------------------------------------------------------------------


def test_the_id_is_derived_from_the_assessment_so_an_assessment_funds_one_account() -> None:
    first, again = activated(), activated()
    assert first.id == again.id == funded_account_id_for("assessment-1")
    assert activated(assessment_id="assessment-2").id != first.id


def test_an_activated_account_starts_active_with_the_tiers_minimum_capital() -> None:
    account = activated()
    assert account.state is FundedAccountState.ACTIVE
    assert account.band is RuleBand.SAFE
    assert account.tier is TIERS[TierName.GEN]
    assert account.profit_split == Fraction(4, 5)
    assert account.ledger_account_id == LEDGER_ACCOUNT_ID
    assert account.starting_balance_minor == GEN_START
    assert account.current_balance_minor == account.peak_balance_minor == GEN_START
    assert account.equity_minor == GEN_START
    assert (account.realized_pnl_minor, account.unrealized_pnl_minor) == (0, 0)
    assert account.total_withdrawn_minor == 0
    assert account.positions == ()
    assert account.withdrawable_minor() == 0
    [created] = account.collect_events()
    assert type(created).__name__ == "Activated"
    assert created.profit_split == "4/5"  # type: ignore[attr-defined]
    assert created.actor == "system:activation"  # type: ignore[attr-defined]


def test_a_starting_balance_below_the_tiers_minimum_is_refused() -> None:
    assert activated(starting_balance_minor=GEN_START + 1).starting_balance_minor == GEN_START + 1
    with pytest.raises(FundedAccountRefusal) as refused:
        activated(starting_balance_minor=GEN_START - 1)
    assert refused.value.reason is FundedRefusalReason.STARTING_BALANCE_BELOW_TIER_MINIMUM


@pytest.mark.parametrize("split", [Fraction(0), Fraction(11, 10), Fraction(-1, 2), 0.8])
def test_a_profit_split_outside_zero_to_one_or_inexact_is_an_error(split: Any) -> None:
    with pytest.raises(ValueError, match="profit_split"):
        activated(split=split)


def test_a_time_without_a_zone_is_an_error() -> None:
    account = activated()
    with pytest.raises(ValueError, match="time zone"):
        account.open_position("p1", "ACME", LONG, 1, 100, datetime(2026, 1, 5))


# The scenario: profits, then a drawdown through every band to a violation ----------------


def test_profitable_trades_then_a_drawdown_through_every_band_ends_in_closure() -> None:
    account = activated()
    trade(account, "win-1", LONG, 10, 3_000, 8_000, minute=1)  # +$500, a 3 % position
    trade(account, "win-2", SHORT, 10, 8_000, 3_000, minute=3)  # +$500
    assert account.current_balance_minor == account.peak_balance_minor == 1_100_000
    assert account.realized_pnl_minor == 100_000
    assert account.withdrawable_minor() == 80_000  # 4/5 of $1,000 profit
    assert account.record_rule_status(later(5)).band is RuleBand.SAFE
    assert event_names(account)[-1] == "PositionClosed"  # SAFE to SAFE records nothing

    for number in range(4):  # four longs of $350 (3.2 % of $11,000 each)
        account.open_position(f"p{number}", "ACME", LONG, 1, 35_000, later(10 + number))
    account.collect_events()
    # Each mark moves drawdown (against the $11,000 peak) into the next band.
    for minute, price, drawdown, band in [
        (20, 11_625, Fraction(85, 1000), RuleBand.WARNING),  # 85 % of the 10 % limit
        (21, 8_875, Fraction(95, 1000), RuleBand.DANGER),
        (22, 6_125, Fraction(105, 1000), RuleBand.VIOLATION),
    ]:
        account.mark_to_market({"ACME": price}, later(minute))
        status = account.record_rule_status(later(minute))
        assert status.drawdown.value == drawdown
        assert status.band is account.band is band
    assert event_names(account) == ["MarkedToMarket", "BandChanged"] * 3
    assert account.peak_balance_minor == 1_100_000
    assert account.unrealized_pnl_minor == -115_500
    assert account.equity_minor == 984_500

    for number in range(4):  # the monitor liquidates, then closes the account
        account.close_position(f"p{number}", 6_125, 6_125 - 35_000, later(30))
    assert account.record_rule_status(later(31)).band is RuleBand.VIOLATION
    reason = "drawdown 10.5 % over the 10 % limit"
    account.change_state(FundedAccountState.CLOSED, reason=reason, actor="monitor", at=later(31))
    assert account.state is FundedAccountState.CLOSED
    assert account.state_reason == reason
    assert account.current_balance_minor == account.equity_minor == 984_500
    assert account.realized_pnl_minor == -15_500
    assert account.withdrawable_minor() == 0
    closed: Any = account.collect_events()[-1]
    assert type(closed).__name__ == "StateChanged"
    recorded = (closed.from_state, closed.to_state, closed.reason, closed.actor, closed.at)
    assert recorded == ("active", "closed", reason, "monitor", later(31))


def test_a_band_that_recovers_is_recorded_on_the_way_back_too() -> None:
    account = activated()
    account.open_position("p1", "ACME", LONG, 1, 42_000, later(3))  # 4.2 % of 5 %: WARNING
    assert account.record_rule_status(later(3)).band is RuleBand.WARNING
    account.close_position("p1", 42_000, 0, later(4))
    assert account.record_rule_status(later(4)).band is RuleBand.SAFE
    bands = [
        (e.from_band, e.to_band)  # type: ignore[attr-defined]
        for e in account.collect_events()
        if type(e).__name__ == "BandChanged"
    ]
    assert bands == [("safe", "warning"), ("warning", "safe")]


# States ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_state", "to_state"),
    [(a, b) for a, b in itertools.product(STATES, STATES) if b in ALLOWED_TRANSITIONS[a]],
    ids=str,
)
def test_an_allowed_transition_is_recorded_with_who_why_and_when(
    from_state: FundedAccountState, to_state: FundedAccountState
) -> None:
    account = account_in(from_state)
    account.collect_events()
    account.change_state(to_state, reason="because", actor="admin-2", at=later(5))
    assert account.state is to_state
    assert (account.state_reason, account.state_changed_by) == ("because", "admin-2")
    assert account.state_changed_at == later(5)
    [changed] = account.collect_events()
    assert type(changed).__name__ == "StateChanged"
    recorded = {
        key: getattr(changed, key) for key in ("from_state", "to_state", "reason", "actor", "at")
    }
    assert recorded == {
        "from_state": from_state.value,
        "to_state": to_state.value,
        "reason": "because",
        "actor": "admin-2",
        "at": later(5),
    }


@pytest.mark.parametrize(
    ("from_state", "to_state"),
    [(a, b) for a, b in itertools.product(STATES, STATES) if b not in ALLOWED_TRANSITIONS[a]],
    ids=str,
)
def test_a_transition_not_in_the_table_is_refused_naming_both_states(
    from_state: FundedAccountState, to_state: FundedAccountState
) -> None:
    account = account_in(from_state)
    account.collect_events()
    with pytest.raises(LedgerRefusal) as refused:
        account.change_state(to_state, reason="because", actor="admin-2", at=later(5))
    assert refused.value.code is ResultCode.INVALID_STATE_TRANSITION
    assert refused.value.details == {"from_state": from_state.value, "to_state": to_state.value}
    assert account.state is from_state
    assert account.collect_events() == []


def test_the_table_covers_every_state_and_closed_is_final() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(FundedAccountState)
    assert ALLOWED_TRANSITIONS[FundedAccountState.CLOSED] == frozenset()
    assert all(state not in ALLOWED_TRANSITIONS[state] for state in FundedAccountState)


def test_an_account_with_open_positions_cannot_be_closed() -> None:
    account = activated()
    account.open_position("p1", "ACME", LONG, 1, 10_000, later(1))
    with pytest.raises(FundedAccountRefusal) as refused:
        account.change_state(FundedAccountState.CLOSED, "violation", "monitor", later(2))
    assert refused.value.reason is FundedRefusalReason.OPEN_POSITIONS_REMAIN
    assert account.state is FundedAccountState.ACTIVE


@pytest.mark.parametrize("state", [s for s in STATES if s is not FundedAccountState.ACTIVE])
def test_only_an_active_account_opens_positions(state: FundedAccountState) -> None:
    account = account_in(state)
    with pytest.raises(LedgerRefusal) as refused:
        account.open_position("p1", "ACME", LONG, 1, 10_000, later(2))
    assert refused.value.code is ResultCode.ACCOUNT_NOT_ACTIVE
    assert account.positions == ()


def test_a_suspended_account_still_closes_and_marks_its_positions() -> None:
    account = activated()
    account.open_position("p1", "ACME", SHORT, 2, 10_000, later(1))
    account.change_state(FundedAccountState.SUSPENDED, "review", "admin-1", later(2))
    account.mark_to_market({"ACME": 9_000}, later(3))
    assert account.unrealized_pnl_minor == 2_000
    account.close_position("p1", 9_500, 1_000, later(4))
    assert (account.realized_pnl_minor, account.unrealized_pnl_minor) == (1_000, 0)


# Tier limits at their edges ---------------------------------------------------------------


@pytest.mark.parametrize("tier_name", list(TierName))
def test_a_position_of_exactly_the_tier_share_is_allowed_and_one_minor_unit_more_is_not(
    tier_name: TierName,
) -> None:
    tier = TIERS[tier_name]
    account = activated(tier=tier_name)
    share = tier.max_position_share
    largest = account.current_balance_minor * share.numerator // share.denominator
    assert Fraction(largest, account.current_balance_minor) == share  # exact for every tier
    with pytest.raises(FundedAccountRefusal) as refused:
        account.open_position("over", "ACME", LONG, 1, largest + 1, later(1))
    assert refused.value.reason is FundedRefusalReason.POSITION_EXCEEDS_TIER_SHARE
    assert refused.value.reason.value == "position_exceeds_tier_share"
    account.open_position("at-the-share", "ACME", LONG, 1, largest, later(2))
    assert [p.position_id for p in account.positions] == ["at-the-share"]


@pytest.mark.parametrize("tier_name", list(TierName))
def test_the_tiers_maximum_of_open_positions_is_allowed_and_one_more_is_not(
    tier_name: TierName,
) -> None:
    tier = TIERS[tier_name]
    account = activated(tier=tier_name)
    for number in range(tier.max_open_positions):
        account.open_position(f"p{number}", "ACME", LONG, 1, 100, later(1))
    with pytest.raises(FundedAccountRefusal) as refused:
        account.open_position("one-more", "ACME", LONG, 1, 100, later(2))
    assert refused.value.reason is FundedRefusalReason.TOO_MANY_OPEN_POSITIONS
    assert refused.value.details["max_open_positions"] == tier.max_open_positions
    account.close_position("p0", 100, 0, later(3))
    account.open_position("one-more", "ACME", LONG, 1, 100, later(4))
    assert len(account.positions) == tier.max_open_positions


def test_the_share_is_measured_against_the_current_balance() -> None:
    account = activated()
    trade(account, "loss", SHORT, 1, 10_000, 110_000, minute=1)  # -$1,000
    assert account.current_balance_minor == 900_000
    with pytest.raises(FundedAccountRefusal):
        account.open_position("p1", "ACME", LONG, 1, 180_001, later(5))
    account.open_position("p1", "ACME", LONG, 1, 180_000, later(5))  # 20 % of $9,000


def test_an_account_without_positive_capital_opens_nothing() -> None:
    account = activated()
    trade(account, "wipe-out", SHORT, 1, 10_000, 10_000 + GEN_START, minute=1)
    assert account.current_balance_minor == 0
    with pytest.raises(FundedAccountRefusal) as refused:
        account.open_position("p1", "ACME", LONG, 1, 1, later(5))
    assert refused.value.reason is FundedRefusalReason.CAPITAL_NOT_POSITIVE


# Positions ---------------------------------------------------------------------------------


def test_a_position_id_already_open_is_refused() -> None:
    account = activated()
    account.open_position("p1", "ACME", LONG, 1, 100, later(1))
    with pytest.raises(FundedAccountRefusal) as refused:
        account.open_position("p1", "ACME", SHORT, 1, 100, later(2))
    assert refused.value.reason is FundedRefusalReason.POSITION_ALREADY_OPEN


def test_closing_an_unknown_position_is_refused() -> None:
    with pytest.raises(FundedAccountRefusal) as refused:
        activated().close_position("nope", 100, 0, later(1))
    assert refused.value.reason is FundedRefusalReason.POSITION_NOT_FOUND


@pytest.mark.parametrize(
    ("side", "exit_minor", "pnl"), [(LONG, 120, 200), (SHORT, 120, -200), (SHORT, 80, 200)]
)
def test_the_realized_pnl_must_follow_the_long_short_rule(
    side: PositionSide, exit_minor: int, pnl: int
) -> None:
    account = activated()
    account.open_position("p1", "ACME", side, 10, 100, later(1))
    with pytest.raises(FundedAccountRefusal) as refused:
        account.close_position("p1", exit_minor, -pnl, later(2))
    assert refused.value.reason is FundedRefusalReason.REALIZED_PNL_MISMATCH
    assert refused.value.details["expected_pnl_minor"] == pnl
    account.close_position("p1", exit_minor, pnl, later(3))
    assert account.realized_pnl_minor == account.current_balance_minor - GEN_START == pnl


@pytest.mark.parametrize("bad", [1.5, True, "100"])
def test_a_price_or_quantity_that_is_not_an_int_is_an_error(bad: Any) -> None:
    account = activated()
    with pytest.raises(TypeError):
        account.open_position("p1", "ACME", LONG, bad, 100, later(1))
    with pytest.raises(TypeError):
        account.open_position("p1", "ACME", LONG, 1, bad, later(1))


def test_marks_move_unrealized_pnl_and_the_peak_follows_equity_up_only() -> None:
    account = activated()
    account.open_position("long", "ACME", LONG, 10, 1_000, later(1))
    account.open_position("short", "BOLT", SHORT, 5, 2_000, later(1))
    account.collect_events()
    account.mark_to_market({"ACME": 1_500, "BOLT": 1_800, "UNHELD": 7}, later(2))
    assert account.unrealized_pnl_minor == 5_000 + 1_000
    assert account.peak_balance_minor == account.equity_minor == GEN_START + 6_000
    account.mark_to_market({"ACME": 900}, later(3))
    assert account.unrealized_pnl_minor == -1_000 + 1_000
    assert account.peak_balance_minor == GEN_START + 6_000
    account.mark_to_market({"ACME": 900, "UNHELD": 8}, later(4))  # nothing changes
    [first, second] = account.collect_events()
    assert first.prices == {"ACME": 1_500, "BOLT": 1_800}  # type: ignore[attr-defined]
    assert second.prices == {"ACME": 900}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="positive"):
        account.mark_to_market({"ACME": 0}, later(5))


def test_a_close_away_from_the_last_mark_moves_the_peak() -> None:
    account = activated()
    account.open_position("p1", "ACME", LONG, 10, 1_000, later(1))
    account.close_position("p1", 3_000, 20_000, later(2))
    assert account.peak_balance_minor == account.current_balance_minor == GEN_START + 20_000


# Withdrawals -------------------------------------------------------------------------------


def profitable(profit_minor: int = 100_000) -> FundedAccount:
    account = activated()
    trade(account, "win", LONG, 1, 100_000, 100_000 + profit_minor, minute=1)
    return account


def test_a_withdrawal_lowers_balance_equity_and_peak_alike() -> None:
    account = profitable()
    assert account.withdrawable_minor() == 80_000
    account.record_withdrawal(30_000, "w1", later(10))
    assert account.total_withdrawn_minor == 30_000
    assert account.current_balance_minor == account.equity_minor == GEN_START + 70_000
    assert account.peak_balance_minor == GEN_START + 70_000
    assert account.rule_status().drawdown.value == 0
    # The share of the profit made ($1,000 at 4/5) less what was taken: counted once.
    assert account.withdrawable_minor() == 100_000 * 4 // 5 - 30_000


def test_more_than_the_withdrawable_amount_is_refused() -> None:
    account = profitable()
    with pytest.raises(LedgerRefusal) as refused:
        account.record_withdrawal(80_001, "w1", later(10))
    assert refused.value.code is ResultCode.EXCEEDS_WITHDRAWABLE
    assert refused.value.details["withdrawable_minor"] == 80_000
    account.record_withdrawal(80_000, "w1", later(11))


def test_the_same_withdrawal_twice_is_recorded_once() -> None:
    account = profitable()
    account.record_withdrawal(10_000, "w1", later(10))
    account.record_withdrawal(10_000, "w1", later(11))
    assert account.total_withdrawn_minor == 10_000
    with pytest.raises(LedgerRefusal) as refused:
        account.record_withdrawal(20_000, "w1", later(12))
    assert refused.value.code is ResultCode.IDEMPOTENCY_KEY_REUSED


@pytest.mark.parametrize("amount", [0, -1])
def test_a_withdrawal_must_be_positive(amount: int) -> None:
    with pytest.raises(LedgerRefusal) as refused:
        profitable().record_withdrawal(amount, "w1", later(10))
    assert refused.value.code is ResultCode.AMOUNT_MUST_BE_POSITIVE


def test_a_suspended_account_pays_out_nothing() -> None:
    account = profitable()
    account.change_state(FundedAccountState.SUSPENDED, "review", "admin-1", later(5))
    with pytest.raises(LedgerRefusal) as refused:
        account.record_withdrawal(10_000, "w1", later(10))
    assert refused.value.code is ResultCode.ACCOUNT_NOT_ACTIVE


def test_a_reservation_holds_its_amount_until_paid_or_released() -> None:
    account = profitable()
    account.reserve_withdrawal(50_000, "w1", later(10))
    assert account.reserved_withdrawals_minor == 50_000
    assert account.withdrawable_minor() == 30_000
    with pytest.raises(LedgerRefusal) as refused:
        account.reserve_withdrawal(30_001, "w2", later(11))
    assert refused.value.code is ResultCode.EXCEEDS_WITHDRAWABLE
    account.reserve_withdrawal(30_000, "w2", later(11))
    assert account.withdrawable_minor() == 0
    # Paid: the reservation becomes part of what was withdrawn, the total stays.
    account.record_withdrawal(50_000, "w1", later(12))
    assert (account.total_withdrawn_minor, account.reserved_withdrawals_minor) == (50_000, 30_000)
    assert account.withdrawable_minor() == 0
    # Given back: the amount is withdrawable again.
    account.release_withdrawal("w2", later(13))
    account.release_withdrawal("w2", later(14))
    assert account.withdrawable_minor() == 30_000
    assert [type(e).__name__ for e in account.collect_events()][-5:] == [
        "WithdrawalReserved",
        "WithdrawalReserved",
        "WithdrawalReleased",
        "WithdrawalRecorded",
        "WithdrawalReleased",
    ]


def test_reserving_the_same_withdrawal_twice_holds_it_once() -> None:
    account = profitable()
    account.reserve_withdrawal(20_000, "w1", later(10))
    account.reserve_withdrawal(20_000, "w1", later(11))
    assert account.reserved_withdrawals_minor == 20_000
    with pytest.raises(LedgerRefusal) as refused:
        account.reserve_withdrawal(30_000, "w1", later(12))
    assert refused.value.code is ResultCode.IDEMPOTENCY_KEY_REUSED


def test_a_request_is_refused_in_the_order_the_source_gives() -> None:
    account = profitable()
    account.open_position("p1", "ACME", LONG, 1, 10_000, later(5))
    with pytest.raises(LedgerRefusal) as refused:
        account.reserve_withdrawal(1, "w1", later(10))
    assert refused.value.code is ResultCode.OPEN_POSITIONS
    account.close_position("p1", 10_000, 0, later(6))
    with pytest.raises(LedgerRefusal) as refused:
        account.reserve_withdrawal(WITHDRAWAL_MINIMUM_MINOR - 1, "w1", later(10))
    assert refused.value.code is ResultCode.BELOW_MINIMUM
    account.reserve_withdrawal(WITHDRAWAL_MINIMUM_MINOR, "w1", later(10))
    account.change_state(FundedAccountState.SUSPENDED, "review", "admin-1", later(11))
    with pytest.raises(LedgerRefusal) as refused:
        account.reserve_withdrawal(WITHDRAWAL_MINIMUM_MINOR, "w2", later(12))
    assert refused.value.code is ResultCode.ACCOUNT_NOT_ACTIVE
    # A reserved withdrawal paid out is a fact, whatever the state now.
    account.record_withdrawal(WITHDRAWAL_MINIMUM_MINOR, "w1", later(13))
    assert account.total_withdrawn_minor == WITHDRAWAL_MINIMUM_MINOR


# Replay ------------------------------------------------------------------------------------


def busy_account() -> FundedAccount:
    account = profitable()
    account.reserve_withdrawal(10_000, "w2", later(19))
    account.reserve_withdrawal(10_000, "w3", later(19))
    account.release_withdrawal("w3", later(19))
    account.open_position("p1", "ACME", LONG, 3, 10_000, later(20))
    account.open_position("p2", "BOLT", SHORT, 2, 20_000, later(21))
    account.mark_to_market({"ACME": 9_000, "BOLT": 25_000}, later(22))
    account.record_rule_status(later(22))
    account.close_position("p2", 26_000, -12_000, later(23))
    account.record_withdrawal(1_000, "w1", later(24))
    account.change_state(FundedAccountState.SAFE, "market guard", "guard", later(25))
    return account


def test_replaying_the_events_gives_the_same_account() -> None:
    account = busy_account()
    events = account.collect_events()
    assert plain_state(replayed(events)) == plain_state(account)


def transcoding_mapper() -> Mapper[UUID]:
    transcoder = OrjsonTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def test_events_and_a_snapshot_survive_the_stored_json_round_trip() -> None:
    account = busy_account()
    mapper = transcoding_mapper()
    stored = [mapper.to_stored_event(e) for e in account.collect_events()]
    assert plain_state(replayed([mapper.to_domain_event(s) for s in stored])) == plain_state(
        account
    )

    snapshot = Snapshot.take(account)
    account.mark_to_market({"ACME": 9_500}, later(30))  # after the snapshot
    from_snapshot = replayed([mapper.to_domain_event(mapper.to_stored_event(snapshot))])
    assert from_snapshot.positions[0].mark_price_minor == 9_000  # the snapshot shared nothing
    rebuilt = replayed(
        [mapper.to_domain_event(mapper.to_stored_event(snapshot)), *account.collect_events()]
    )
    assert plain_state(rebuilt) == plain_state(account)
    assert rebuilt.state is FundedAccountState.SAFE
    assert rebuilt.positions == account.positions
