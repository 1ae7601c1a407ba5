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
    DRAWDOWN_LIQUIDATE_ABOVE,
    DRAWDOWN_WARN_FROM,
    AccountGuard,
    DrawdownLevel,
    GuardThresholds,
    MarketFailure,
    drawdown_from_peak,
    drawdown_level,
    guard_id_for,
    market_failures,
    price_gap,
)

AT: Final = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
# PRE_LIQUIDATION_WARNING_SECONDS' default: the owner is told 10 s before.
GRACE: Final = timedelta(seconds=10)
PEAK_MINOR: Final[int] = 1_000_000
# MIN_EQUITY's default: 100.00 in the account's currency (USD cents here).
MINIMUM_MINOR: Final[int] = 100_00
THRESHOLDS: Final = GuardThresholds()
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
    thresholds: GuardThresholds = THRESHOLDS,
) -> list[MarketFailure]:
    return market_failures(
        open_minor=open_minor,
        last_close_minor=last_close_minor,
        bid_minor=bid_minor,
        ask_minor=ask_minor,
        volume=volume,
        quantity=quantity,
        thresholds=thresholds,
    )


def _guard() -> AccountGuard:
    return AccountGuard.start(funded_account_id=uuid4(), peak_equity_minor=PEAK_MINOR, at=AT)


def _decide(guard: AccountGuard, equity_minor: int, at: datetime = AT) -> DrawdownLevel:
    return guard.decide_drawdown(
        equity_minor=equity_minor, thresholds=THRESHOLDS, positions=POSITIONS, at=at
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
    assert THRESHOLDS.drawdown_warn_from == DRAWDOWN_WARN_FROM == Fraction(15, 100)
    assert drawdown_from_peak(PEAK_MINOR, 850_000) == DRAWDOWN_WARN_FROM
    assert drawdown_level(PEAK_MINOR, 850_000) is DrawdownLevel.WARN
    assert drawdown_level(PEAK_MINOR, 850_001) is DrawdownLevel.OK


def test_max_drawdown_liquidates_over_twenty_percent_and_exactly_twenty_only_warns() -> None:
    assert THRESHOLDS.drawdown_liquidate_above == DRAWDOWN_LIQUIDATE_ABOVE == Fraction(20, 100)
    # $10,000.00 peak, $8,000.00 equity: exactly 20 %, not over it.
    assert drawdown_from_peak(PEAK_MINOR, 800_000) == Fraction(20, 100)
    assert drawdown_level(PEAK_MINOR, 800_000) is DrawdownLevel.WARN
    # One cent less is over 20 %.
    assert drawdown_level(PEAK_MINOR, 799_999) is DrawdownLevel.LIQUIDATE


def test_min_equity_under_100_forces_liquidation_whatever_the_drawdown() -> None:
    assert THRESHOLDS.minimum_equity_minor == MINIMUM_MINOR == 100_00
    # A peak of $110.00: $99.99 is only ~9 % below it, far from any drawdown edge.
    assert drawdown_level(110_00, 99_99) is DrawdownLevel.LIQUIDATE
    assert drawdown_level(110_00, 100_00) is DrawdownLevel.OK


def test_the_drawdown_figures_are_settings() -> None:
    tighter = GuardThresholds(
        drawdown_warn_from=Fraction(5, 100),
        drawdown_liquidate_above=Fraction(10, 100),
        minimum_equity_minor=500_000,
    )
    assert drawdown_level(PEAK_MINOR, 950_000, tighter) is DrawdownLevel.WARN
    assert drawdown_level(PEAK_MINOR, 899_999, tighter) is DrawdownLevel.LIQUIDATE
    assert drawdown_level(PEAK_MINOR, 499_999, tighter) is DrawdownLevel.LIQUIDATE
    with pytest.raises(ValueError, match="drawdown_warn_from"):
        GuardThresholds(drawdown_warn_from=Fraction(30, 100))


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
    assert _market(volume=20, quantity=20) == []
    assert _market(volume=19, quantity=20) == [MarketFailure.VOLUME]


def test_liquidity_volume_under_ten_lots_fails_and_the_check_can_be_switched_off() -> None:
    assert THRESHOLDS.liquidity_volume_lots_min == 10
    assert _market(volume=10, quantity=1) == []
    assert _market(volume=9, quantity=1) == [MarketFailure.VOLUME]
    switched_off = GuardThresholds(liquidity_check_enabled=False)
    assert _market(volume=0, quantity=50, thresholds=switched_off) == []


def test_price_gap_is_the_open_against_the_last_close_either_way() -> None:
    assert price_gap(10_600, 10_000) == Fraction(6, 100)
    assert price_gap(9_400, 10_000) == Fraction(6, 100)
    assert _market(open_minor=10_600) == [MarketFailure.GAP]
    assert _market(open_minor=9_400) == [MarketFailure.GAP]


def test_every_failure_is_named() -> None:
    failures = _market(open_minor=11_000, bid_minor=10_000, ask_minor=10_100, volume=0)
    assert failures == [MarketFailure.GAP, MarketFailure.SPREAD, MarketFailure.VOLUME]


# The aggregate: peak -----------------------------------------------------------------


def test_the_guard_of_an_account_has_one_id() -> None:
    funded_account_id = uuid4()
    guard = AccountGuard.start(funded_account_id=funded_account_id, peak_equity_minor=1, at=AT)
    assert guard.id == guard_id_for(funded_account_id)
    assert guard.funded_account_id == funded_account_id


def test_peak_equity_is_kept_and_raised_on_every_new_peak() -> None:
    guard = _guard()
    guard.observe_equity(PEAK_MINOR, AT)
    guard.observe_equity(PEAK_MINOR - 1, AT)
    assert guard.peak_equity_minor == PEAK_MINOR
    assert _names(guard) == ["Started"]
    guard.observe_equity(PEAK_MINOR + 1, AT)
    assert guard.peak_equity_minor == PEAK_MINOR + 1
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
    assert (fields["warn_from"], fields["liquidate_above"]) == ("3/20", "1/5")
    assert fields["positions"] == POSITIONS
    # The same level again records nothing.
    events = len(guard.pending_events)
    assert _decide(guard, 840_000) is DrawdownLevel.WARN
    assert len(guard.pending_events) == events


def test_pre_liquidation_warning_ten_seconds_ahead_names_the_positions_and_is_due_then() -> None:
    guard = _guard()
    assert _decide(guard, 790_000) is DrawdownLevel.LIQUIDATE
    scheduled = vars(guard.pending_events[-1])
    assert scheduled["due_at"] == AT + timedelta(seconds=10)
    assert scheduled["positions"] == POSITIONS and scheduled["drawdown"] == "21/100"
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
        thresholds=THRESHOLDS,
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
        thresholds=THRESHOLDS,
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
    assert marked["thresholds"] == {
        "gap_above": "1/20",
        "spread_above": "1/200",
        "liquidity_volume_lots_min": "10",
        "liquidity_check_enabled": "true",
    }
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


def test_a_liquidation_scheduled_before_liquidate_above_existed_still_replays() -> None:
    """Events stored with `liquidate_from` (when 20 % exactly liquidated) replay."""
    guard = _guard()
    scheduled_class: Any = AccountGuard.LiquidationScheduled  # type: ignore[attr-defined]
    # As the store's mapper rebuilds an event: its stored fields, nothing more.
    old = object.__new__(scheduled_class)
    object.__setattr__(
        old,
        "__dict__",
        {
            "originator_id": guard.id,
            "originator_version": guard.version + 1,
            "timestamp": AT,
            "equity_minor": 800_000,
            "peak_equity_minor": PEAK_MINOR,
            "drawdown": "1/5",
            "minimum_equity_minor": 800_000,
            "warn_from": "3/20",
            "liquidate_from": "1/5",
            "positions": POSITIONS,
            "due_at": AT + timedelta(minutes=15),
            "at": AT,
        },
    )
    replayed = old.mutate(guard)
    assert replayed.level is DrawdownLevel.LIQUIDATE
    assert replayed.liquidation_due_at == AT + timedelta(minutes=15)
