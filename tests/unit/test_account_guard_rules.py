"""The guards' pure rules at each edge, and the AccountGuard aggregate's
decisions, each recorded with its inputs
(docs/rules.md#position-sync-and-guards)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Final
from uuid import uuid4

import pytest

from domain.account_guard import (
    DRAWDOWN_LIQUIDATE_FROM,
    DRAWDOWN_WARN_FROM,
    AccountGuard,
    DrawdownLevel,
    MarketFailure,
    drawdown_from_peak,
    drawdown_level,
    guard_id_for,
    market_failures,
    minimum_equity_minor,
)

AT: Final = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
GRACE: Final = timedelta(minutes=15)
PEAK_MINOR: Final[int] = 1_000_000
# 80 % of a $10,000 starting balance.
MINIMUM_MINOR: Final[int] = 800_000
POSITIONS: Final[list[str]] = ["position-1", "position-2"]
QUOTE: Final[dict[str, Any]] = {"symbol": "GAP", "open_minor": 10_501, "last_close_minor": 10_000}


def _market(
    *,
    open_minor: int = 10_000,
    last_close_minor: int = 10_000,
    bid_minor: int = 10_000,
    ask_minor: int = 10_000,
    volume: int = 1_000,
    quantity: int = 10,
) -> list[MarketFailure]:
    return market_failures(
        open_minor=open_minor,
        last_close_minor=last_close_minor,
        bid_minor=bid_minor,
        ask_minor=ask_minor,
        volume=volume,
        quantity=quantity,
    )


def _guard() -> AccountGuard:
    return AccountGuard.start(funded_account_id=uuid4(), peak_equity_minor=PEAK_MINOR, at=AT)


def _decide(guard: AccountGuard, equity_minor: int, at: datetime = AT) -> DrawdownLevel:
    return guard.decide_drawdown(
        equity_minor=equity_minor,
        minimum_minor=MINIMUM_MINOR,
        positions=POSITIONS,
        grace=GRACE,
        at=at,
    )


def _names(guard: AccountGuard) -> list[str]:
    return [type(event).__name__ for event in guard.pending_events]


# Drawdown rules ----------------------------------------------------------------------


def test_drawdown_is_exact_and_never_negative() -> None:
    assert drawdown_from_peak(1_000_000, 850_000) == Fraction(3, 20)
    assert drawdown_from_peak(1_000_000, 1_200_000) == 0
    # No peak yet: nothing to fall from.
    assert drawdown_from_peak(0, -5) == 0


def test_fifteen_percent_exactly_warns_and_just_below_does_not() -> None:
    assert drawdown_from_peak(PEAK_MINOR, 850_000) == DRAWDOWN_WARN_FROM
    assert drawdown_level(PEAK_MINOR, 850_000, MINIMUM_MINOR) is DrawdownLevel.WARN
    assert drawdown_level(PEAK_MINOR, 850_001, MINIMUM_MINOR) is DrawdownLevel.OK


def test_twenty_percent_exactly_liquidates_and_just_below_only_warns() -> None:
    assert drawdown_from_peak(PEAK_MINOR, 800_000) == DRAWDOWN_LIQUIDATE_FROM
    assert drawdown_level(PEAK_MINOR, 800_000, MINIMUM_MINOR) is DrawdownLevel.LIQUIDATE
    assert drawdown_level(PEAK_MINOR, 800_001, MINIMUM_MINOR) is DrawdownLevel.WARN


def test_one_minor_unit_below_the_minimum_equity_liquidates_whatever_the_drawdown() -> None:
    # A low peak: 799,999 is only ~5.9 % below it, far from any drawdown edge.
    peak_minor = 850_000
    assert drawdown_level(peak_minor, MINIMUM_MINOR - 1, MINIMUM_MINOR) is DrawdownLevel.LIQUIDATE
    assert drawdown_level(peak_minor, MINIMUM_MINOR, MINIMUM_MINOR) is DrawdownLevel.OK


def test_the_minimum_equity_is_eighty_percent_of_the_start_rounded_up() -> None:
    assert minimum_equity_minor(1_000_000) == MINIMUM_MINOR
    # 800,000.8 rounds up: equity of 800,000 is below 80 % of 1,000,001.
    assert minimum_equity_minor(1_000_001) == 800_001


# Market rules ------------------------------------------------------------------------


def test_a_gap_of_five_percent_exactly_passes_and_one_unit_more_fails() -> None:
    assert _market(open_minor=10_500) == []
    assert _market(open_minor=10_501) == [MarketFailure.GAP]
    # Down as well as up.
    assert _market(open_minor=9_500) == []
    assert _market(open_minor=9_499) == [MarketFailure.GAP]


def test_a_spread_of_half_a_percent_of_the_bid_exactly_passes_and_more_fails() -> None:
    assert _market(bid_minor=10_000, ask_minor=10_050) == []
    assert _market(bid_minor=10_000, ask_minor=10_051) == [MarketFailure.SPREAD]


def test_volume_equal_to_the_quantity_passes_and_one_unit_less_fails() -> None:
    assert _market(volume=10, quantity=10) == []
    assert _market(volume=9, quantity=10) == [MarketFailure.VOLUME]


def test_every_failure_is_named() -> None:
    failures = _market(open_minor=11_000, bid_minor=10_000, ask_minor=10_100, volume=0)
    assert failures == [MarketFailure.GAP, MarketFailure.SPREAD, MarketFailure.VOLUME]


# The aggregate: peak -----------------------------------------------------------------


def test_the_guard_of_an_account_has_one_id() -> None:
    funded_account_id = uuid4()
    guard = AccountGuard.start(funded_account_id=funded_account_id, peak_equity_minor=1, at=AT)
    assert guard.id == guard_id_for(funded_account_id)
    assert guard.funded_account_id == funded_account_id


def test_a_new_peak_is_recorded_from_one_tenth_of_a_percent_above_the_last() -> None:
    guard = _guard()
    guard.observe_equity(1_000_999, AT)
    assert guard.peak_equity_minor == PEAK_MINOR
    guard.observe_equity(1_001_000, AT)
    assert guard.peak_equity_minor == 1_001_000
    assert _names(guard)[-1] == "PeakEquityRaised"


# The aggregate: drawdown decisions ---------------------------------------------------


def test_a_warning_is_recorded_with_its_inputs_once_per_level() -> None:
    guard = _guard()
    assert _decide(guard, 850_000) is DrawdownLevel.WARN
    warned = guard.pending_events[-1]
    assert type(warned).__name__ == "DrawdownWarned"
    fields = vars(warned)
    assert fields["equity_minor"] == 850_000
    assert fields["peak_equity_minor"] == PEAK_MINOR
    assert fields["drawdown"] == "3/20"
    assert fields["minimum_equity_minor"] == MINIMUM_MINOR
    assert (fields["warn_from"], fields["liquidate_from"]) == ("3/20", "1/5")
    assert fields["positions"] == POSITIONS
    # The same level again records nothing.
    events = len(guard.pending_events)
    assert _decide(guard, 840_000) is DrawdownLevel.WARN
    assert len(guard.pending_events) == events


def test_a_liquidation_is_scheduled_the_grace_period_ahead_and_due_at_its_edge() -> None:
    guard = _guard()
    assert _decide(guard, 800_000) is DrawdownLevel.LIQUIDATE
    scheduled = vars(guard.pending_events[-1])
    assert scheduled["due_at"] == AT + GRACE
    assert scheduled["positions"] == POSITIONS and scheduled["drawdown"] == "1/5"
    assert guard.liquidation_due_at == AT + GRACE
    assert not guard.liquidation_due(AT + GRACE - timedelta(microseconds=1))
    assert guard.liquidation_due(AT + GRACE)


def test_a_recovery_cancels_the_scheduled_liquidation() -> None:
    guard = _guard()
    _decide(guard, 790_000)
    assert _decide(guard, 900_000, AT + timedelta(minutes=5)) is DrawdownLevel.OK
    recovered = vars(guard.pending_events[-1])
    assert type(guard.pending_events[-1]).__name__ == "DrawdownRecovered"
    assert recovered["equity_minor"] == 900_000 and recovered["drawdown"] == "1/10"
    assert guard.liquidation_due_at is None
    assert not guard.liquidation_due(AT + GRACE)


def test_falling_back_to_a_warning_cancels_the_liquidation_too() -> None:
    guard = _guard()
    _decide(guard, 790_000)
    assert _decide(guard, 820_000) is DrawdownLevel.WARN
    assert guard.liquidation_due_at is None


def test_a_liquidation_with_a_failure_stays_due_and_a_complete_one_starts_afresh() -> None:
    guard = _guard()
    _decide(guard, 780_000)
    due = AT + GRACE
    guard.record_liquidation(
        equity_minor=780_000,
        minimum_minor=MINIMUM_MINOR,
        closed=["position-1"],
        failed={"position-2": "broker_unavailable: down"},
        at=due,
    )
    liquidated = vars(guard.pending_events[-1])
    assert liquidated["closed"] == ["position-1"]
    assert liquidated["failed"] == {"position-2": "broker_unavailable: down"}
    # A tuple, so the type checker does not narrow the level for the assertion below.
    assert (guard.level, guard.liquidation_due(due)) == (DrawdownLevel.LIQUIDATE, True)
    guard.record_liquidation(
        equity_minor=779_000,
        minimum_minor=MINIMUM_MINOR,
        closed=["position-2"],
        failed={},
        at=due + timedelta(seconds=10),
    )
    assert guard.level is DrawdownLevel.OK and guard.liquidation_due_at is None
    # What is left is the new peak: the drawdown that caused it is behind.
    assert guard.peak_equity_minor == 779_000


# The aggregate: market marks and closes ----------------------------------------------


def test_a_mark_records_its_reasons_quote_and_quantity_once() -> None:
    guard = _guard()
    guard.mark_for_closing("position-1", [MarketFailure.GAP], QUOTE, 4, AT)
    marked = vars(guard.pending_events[-1])
    assert marked["reasons"] == ["gap"] and marked["quote"] == QUOTE
    assert marked["quantity"] == 4
    assert marked["thresholds"] == {"gap_above": "1/20", "spread_above": "1/200"}
    events = len(guard.pending_events)
    guard.mark_for_closing("position-1", [MarketFailure.SPREAD], QUOTE, 4, AT)
    guard.mark_for_closing("position-2", [], QUOTE, 4, AT)
    assert len(guard.pending_events) == events
    assert guard.marked_for_closing == {"position-1": "gap"}


def test_a_failed_close_keeps_the_mark_and_a_done_one_clears_it() -> None:
    guard = _guard()
    guard.mark_for_closing("position-1", [MarketFailure.VOLUME], QUOTE, 4, AT)
    guard.record_close(
        "position-1",
        reason="market guard: volume",
        actor="guards",
        price_minor=None,
        realized_pnl_minor=None,
        error="broker_unavailable: down",
        at=AT,
    )
    assert guard.marked_for_closing == {"position-1": "volume"}
    guard.record_close(
        "position-1",
        reason="market guard: volume",
        actor="guards",
        price_minor=9_990,
        realized_pnl_minor=-40,
        error=None,
        at=AT,
    )
    closed = vars(guard.pending_events[-1])
    assert (closed["price_minor"], closed["realized_pnl_minor"], closed["actor"]) == (
        9_990,
        -40,
        "guards",
    )
    assert guard.marked_for_closing == {}


def test_the_same_close_error_again_is_not_recorded_again_but_a_new_one_is() -> None:
    guard = _guard()

    def failed(error: str) -> None:
        guard.record_close(
            "position-1",
            reason="liquidation",
            actor="guards",
            price_minor=None,
            realized_pnl_minor=None,
            error=error,
            at=AT,
        )

    failed("broker_unavailable: down")
    recorded = len(guard.pending_events)
    # A broker down for many passes is one event.
    failed("broker_unavailable: down")
    assert len(guard.pending_events) == recorded
    failed("broker_rejected: halted")
    assert len(guard.pending_events) == recorded + 1
    # After a success, the same error is news again.
    guard.record_close(
        "position-1",
        reason="liquidation",
        actor="guards",
        price_minor=1,
        realized_pnl_minor=0,
        error=None,
        at=AT,
    )
    failed("broker_rejected: halted")
    assert len(guard.pending_events) == recorded + 3


def test_a_close_without_a_reason_or_an_actor_is_refused() -> None:
    guard = _guard()
    with pytest.raises(ValueError, match="reason"):
        guard.record_close(
            "position-1",
            reason="",
            actor="guards",
            price_minor=1,
            realized_pnl_minor=0,
            error=None,
            at=AT,
        )
    with pytest.raises(ValueError, match="actor"):
        guard.record_close(
            "position-1",
            reason="manual",
            actor=" padded ",
            price_minor=1,
            realized_pnl_minor=0,
            error=None,
            at=AT,
        )


def test_replaying_the_events_gives_the_same_guard() -> None:
    guard = _guard()
    _decide(guard, 850_000)
    _decide(guard, 790_000, AT + timedelta(minutes=1))
    guard.mark_for_closing("position-1", [MarketFailure.GAP], QUOTE, 4, AT)
    replayed: Any = None
    for event in guard.collect_events():
        replayed = event.mutate(replayed)
    assert isinstance(replayed, AccountGuard)
    assert replayed.level is DrawdownLevel.LIQUIDATE
    assert replayed.liquidation_due_at == AT + timedelta(minutes=1) + GRACE
    assert replayed.marked_for_closing == {"position-1": "gap"}
    assert replayed.peak_equity_minor == PEAK_MINOR
