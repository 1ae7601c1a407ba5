"""The simulator's own features: price paths over a clock, faults per account, limits.

What every Broker must do is in test_broker_contract.py; this is what only the
simulator offers, for tests and the demo to drive.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from fractions import Fraction
from uuid import UUID, uuid4

import pytest

from application.clock import SettableClock
from application.ports.broker import (
    BrokerRejected,
    BrokerTimeout,
    BrokerUnavailable,
    RejectionReason,
    UnknownSymbol,
)
from domain.positions import PositionSide
from interface.adapters.broker.price_path import (
    PRICE_MINOR_MAX,
    VOLUME_DEFAULT,
    PricePath,
    PriceStep,
)
from interface.adapters.broker.simulated_broker import (
    FAULTS_QUEUED_MAX,
    QUANTITY_MAX,
    SimulatedBroker,
)
from tests.support.ledgers import EPOCH

MINUTE = timedelta(minutes=1)
CASH_MINOR = 10_000_000


def funded(broker: SimulatedBroker, cash_minor: int = CASH_MINOR) -> UUID:
    account_id = uuid4()
    broker.fund(account_id, cash_minor)
    return account_id


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(EPOCH)


@pytest.fixture
def broker(clock: SettableClock) -> SimulatedBroker:
    simulated = SimulatedBroker(clock)
    simulated.set_price("ACME", 10_000, 10_010)
    return simulated


# Prices over time -----------------------------------------------------------------


def test_a_crash_path_moves_the_quote_as_the_clock_moves(
    broker: SimulatedBroker, clock: SettableClock
) -> None:
    broker.load_path("ACME", PricePath.ramp(EPOCH, MINUTE, 10_000, 5_000, 6, spread_minor=10))
    bids = []
    for _ in range(6):
        bids.append(broker.quote("ACME").bid_minor)
        clock.advance(MINUTE)
    assert bids == [9_995, 8_995, 7_995, 6_995, 5_995, 4_995]
    # Past the last step the last quote stands.
    clock.advance(timedelta(days=1))
    assert broker.quote("ACME").bid_minor == 4_995


def test_a_position_is_filled_and_marked_at_the_step_in_force(
    broker: SimulatedBroker, clock: SettableClock
) -> None:
    account_id = funded(broker)
    broker.load_path("ACME", PricePath.ramp(EPOCH, MINUTE, 10_000, 8_000, 3, spread_minor=20))
    clock.advance(timedelta(seconds=30))
    fill = broker.open_position(account_id, "ACME", PositionSide.LONG, 10, "order-1")
    assert (fill.price_minor, fill.at) == (10_010, EPOCH + timedelta(seconds=30))
    clock.advance(MINUTE)
    assert broker.equity(account_id).unrealized_pnl_minor == (8_990 - 10_010) * 10
    clock.advance(MINUTE)
    closed = broker.close_position(fill.position_id, "close-1")
    assert (closed.price_minor, closed.realized_pnl_minor) == (7_990, (7_990 - 10_010) * 10)
    assert closed.at == EPOCH + timedelta(seconds=150)


def test_before_a_paths_first_step_the_symbol_has_no_price(broker: SimulatedBroker) -> None:
    broker.load_path("LATE", PricePath.ramp(EPOCH + MINUTE, MINUTE, 100, 200, 2, spread_minor=2))
    with pytest.raises(UnknownSymbol, match="not priced before"):
        broker.quote("LATE")


def test_a_gap_path_opens_away_from_the_last_close(
    broker: SimulatedBroker, clock: SettableClock
) -> None:
    opens_at = EPOCH + timedelta(hours=15)
    broker.load_path(
        "GAP",
        PricePath.gap(EPOCH, opens_at, last_close_minor=10_000, open_minor=9_300, spread_minor=4),
    )
    before = broker.quote("GAP")
    assert (before.last_close_minor, before.open_minor, before.bid_minor) == (10_000, 10_000, 9_998)
    clock.set(opens_at)
    after = broker.quote("GAP")
    assert (after.last_close_minor, after.open_minor, after.ask_minor) == (10_000, 9_300, 9_302)
    assert Fraction(after.last_close_minor - after.open_minor, after.last_close_minor) == Fraction(
        7, 100
    )


def test_a_widening_spread_path_holds_the_mid_and_widens(
    broker: SimulatedBroker, clock: SettableClock
) -> None:
    broker.load_path("WIDE", PricePath.widening_spread(EPOCH, MINUTE, 10_000, [2, 20, 200]))
    spreads = []
    for _ in range(3):
        quote = broker.quote("WIDE")
        spreads.append((quote.bid_minor, quote.ask_minor, quote.last_minor))
        clock.advance(MINUTE)
    assert spreads == [(9_999, 10_001, 10_000), (9_990, 10_010, 10_000), (9_900, 10_100, 10_000)]


def test_a_fixed_price_replaces_a_path_and_a_path_replaces_a_fixed_price(
    broker: SimulatedBroker,
) -> None:
    broker.load_path("ACME", PricePath.ramp(EPOCH, MINUTE, 500, 600, 2, spread_minor=0))
    assert broker.quote("ACME").bid_minor == 500
    quote = broker.set_price("ACME", 700, 702, volume=3)
    assert broker.quote("ACME") == quote
    assert (quote.last_minor, quote.open_minor, quote.last_close_minor, quote.volume) == (
        701,
        701,
        701,
        3,
    )
    assert quote.at == EPOCH


def test_a_step_without_volume_has_the_default_volume(broker: SimulatedBroker) -> None:
    assert broker.quote("ACME").volume == VOLUME_DEFAULT


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((), "1 to"),
        ((PriceStep(EPOCH, 10, 11), PriceStep(EPOCH, 10, 11)), "increasing time"),
        ((PriceStep(EPOCH.replace(tzinfo=None), 10, 11),), "time zone"),
        ((PriceStep(EPOCH, 12, 11),), "crossed"),
        ((PriceStep(EPOCH, 0, 11),), "positive"),
        ((PriceStep(EPOCH, 10, PRICE_MINOR_MAX + 1),), "at most"),
    ],
    ids=["empty", "same-time", "naive-time", "crossed", "zero-bid", "too-high"],
)
def test_a_malformed_price_path_is_refused(steps: tuple[PriceStep, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PricePath(steps)


def test_a_float_price_is_a_type_error(broker: SimulatedBroker) -> None:
    with pytest.raises(TypeError):
        broker.set_price("ACME", 100.5, 101)  # type: ignore[arg-type]


# Faults per account ---------------------------------------------------------------


def test_a_failure_for_one_account_leaves_the_others_answering(broker: SimulatedBroker) -> None:
    failing, healthy = funded(broker), funded(broker)
    broker.fail_next(failing, BrokerUnavailable("maintenance"))
    with pytest.raises(BrokerUnavailable, match="maintenance"):
        broker.equity(failing)
    assert broker.equity(healthy).equity_minor == CASH_MINOR
    # Only the next call failed.
    assert broker.equity(failing).equity_minor == CASH_MINOR


def test_queued_failures_come_in_order_and_a_failed_open_opens_nothing(
    broker: SimulatedBroker,
) -> None:
    account_id = funded(broker)
    broker.fail_next(account_id, BrokerUnavailable("first"), times=2)
    broker.fail_next(account_id, BrokerRejected(RejectionReason.BROKER_POLICY, "halted"))
    for _ in range(2):
        with pytest.raises(BrokerUnavailable, match="first"):
            broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1")
    with pytest.raises(BrokerRejected) as refused:
        broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1")
    assert refused.value.reason is RejectionReason.BROKER_POLICY
    assert broker.open_positions(account_id) == ()
    fill = broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1")
    assert [p.position_id for p in broker.open_positions(account_id)] == [fill.position_id]


def test_an_outage_lasts_until_lifted(broker: SimulatedBroker) -> None:
    down, up = funded(broker), funded(broker)
    broker.set_unavailable(down)
    for _ in range(3):
        with pytest.raises(BrokerUnavailable):
            broker.open_positions(down)
        assert broker.open_positions(up) == ()
    broker.set_unavailable(down, unavailable=False)
    assert broker.open_positions(down) == ()


def test_a_lost_reply_is_resolved_by_retrying_the_same_client_order_id(
    broker: SimulatedBroker,
) -> None:
    account_id = funded(broker)
    broker.lose_next_reply(account_id)
    with pytest.raises(BrokerTimeout):
        broker.open_position(account_id, "ACME", PositionSide.LONG, 5, "order-1")
    # The order went through although its answer did not.
    assert len(broker.open_positions(account_id)) == 1
    fill = broker.open_position(account_id, "ACME", PositionSide.LONG, 5, "order-1")
    assert [p.position_id for p in broker.open_positions(account_id)] == [fill.position_id]

    broker.set_price("ACME", 10_500, 10_510)
    broker.lose_next_reply(account_id)
    with pytest.raises(BrokerTimeout):
        broker.close_position(fill.position_id, "close-1")
    closed = broker.close_position(fill.position_id, "close-1")
    assert closed.realized_pnl_minor == (10_500 - 10_010) * 5
    assert broker.equity(account_id).cash_minor == CASH_MINOR + closed.realized_pnl_minor


def test_latency_delays_an_answer_and_past_the_time_out_does_nothing(clock: SettableClock) -> None:
    slept: list[float] = []
    broker = SimulatedBroker(clock, reply_timeout_s=5.0, sleep=slept.append)
    broker.set_price("ACME", 100, 101)
    account_id = funded(broker)
    broker.set_latency(account_id, 0.25)
    broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1")
    assert slept == [0.25]
    broker.set_latency(account_id, 5.0)
    with pytest.raises(BrokerTimeout):
        broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-2")
    assert slept == [0.25, 5.0]
    broker.set_latency(account_id, 0)
    assert len(broker.open_positions(account_id)) == 1


def test_a_slow_account_does_not_hold_up_the_others(clock: SettableClock) -> None:
    waiting, release = threading.Event(), threading.Event()

    def sleep(_seconds: float) -> None:
        waiting.set()
        assert release.wait(timeout=10)

    broker = SimulatedBroker(clock, sleep=sleep)
    slow, fast = funded(broker), funded(broker)
    broker.set_latency(slow, 1.0)
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.append(broker.equity(slow).equity_minor))
    thread.start()
    try:
        assert waiting.wait(timeout=10)
        assert broker.equity(fast).equity_minor == CASH_MINOR
        assert answers == []
    finally:
        release.set()
        thread.join(timeout=10)
    assert answers == [CASH_MINOR]


def test_too_many_queued_faults_are_refused(broker: SimulatedBroker) -> None:
    account_id = funded(broker)
    with pytest.raises(ValueError, match="faults queued"):
        broker.fail_next(account_id, BrokerUnavailable("x"), times=FAULTS_QUEUED_MAX + 1)


# Limits ---------------------------------------------------------------------------


def test_a_full_account_takes_no_more_positions_until_one_closes(clock: SettableClock) -> None:
    broker = SimulatedBroker(clock, positions_per_account_max=2)
    broker.set_price("ACME", 100, 101)
    account_id = funded(broker)
    first = broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1")
    broker.open_position(account_id, "ACME", PositionSide.SHORT, 1, "order-2")
    with pytest.raises(BrokerRejected) as refused:
        broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-3")
    assert refused.value.reason is RejectionReason.POSITIONS_LIMIT_REACHED
    broker.close_position(first.position_id, "close-1")
    broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-3")


def test_past_its_order_limit_an_account_still_gets_its_earlier_fills(
    clock: SettableClock,
) -> None:
    broker = SimulatedBroker(clock, orders_per_account_max=1)
    broker.set_price("ACME", 100, 101)
    account_id = funded(broker)
    fill = broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1")
    with pytest.raises(BrokerRejected) as refused:
        broker.close_position(fill.position_id, "close-1")
    assert refused.value.reason is RejectionReason.ORDERS_LIMIT_REACHED
    assert broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1") == fill


def test_a_quantity_above_the_maximum_is_refused(broker: SimulatedBroker) -> None:
    account_id = funded(broker)
    with pytest.raises(BrokerRejected) as refused:
        broker.open_position(account_id, "ACME", PositionSide.LONG, QUANTITY_MAX + 1, "order-1")
    assert refused.value.reason is RejectionReason.INVALID_ORDER


def test_symbols_and_accounts_are_bounded(clock: SettableClock) -> None:
    broker = SimulatedBroker(clock, symbols_max=1, accounts_max=1)
    broker.set_price("ACME", 100, 101)
    broker.set_price("ACME", 102, 103)
    with pytest.raises(ValueError, match="symbols"):
        broker.set_price("BETA", 100, 101)
    account_id = funded(broker)
    broker.fund(account_id, 1)
    assert broker.equity(account_id).cash_minor == CASH_MINOR + 1
    with pytest.raises(ValueError, match="accounts"):
        broker.fund(uuid4(), 1)


@pytest.mark.parametrize("cash_minor", [0, -5])
def test_funding_takes_only_positive_cash(broker: SimulatedBroker, cash_minor: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        broker.fund(uuid4(), cash_minor)


# Determinism and threads ----------------------------------------------------------


def test_the_same_script_gives_the_same_fills() -> None:
    def run() -> list[object]:
        clock = SettableClock(EPOCH)
        broker = SimulatedBroker(clock)
        broker.load_path("ACME", PricePath.ramp(EPOCH, MINUTE, 1_000, 1_300, 4, spread_minor=3))
        account_id = UUID(int=7)
        broker.fund(account_id, CASH_MINOR)
        opened = broker.open_position(account_id, "ACME", PositionSide.SHORT, 9, "order-1")
        clock.advance(3 * MINUTE)
        return [opened, broker.close_position(opened.position_id, "close-1")]

    assert run() == run()


def test_threads_racing_with_the_same_client_order_ids_open_each_position_once(
    broker: SimulatedBroker,
) -> None:
    account_id = funded(broker)
    fills: list[str] = []
    lock = threading.Lock()

    def open_all() -> None:
        for number in range(40):
            fill = broker.open_position(account_id, "ACME", PositionSide.LONG, 1, f"order-{number}")
            with lock:
                fills.append(fill.position_id)

    threads = [threading.Thread(target=open_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fills) == 320
    assert len(set(fills)) == 40
    assert len(broker.open_positions(account_id)) == 40
