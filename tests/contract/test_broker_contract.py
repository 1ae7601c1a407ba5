"""The Broker port: one contract, held by every broker (today the simulator,
in memory, kept in PostgreSQL, and kept in PostgreSQL and restarted before
every call, so that nothing it answers lives only in memory).

A subclass gives `make_broker`, which makes a broker and the `Market` that
funds its accounts and sets its prices; everything else is the same for
every implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.clock import SettableClock
from application.ports.broker import (
    AccountEquity,
    Broker,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    Fill,
    FillKind,
    PositionNotFound,
    RejectionReason,
    UnknownAccount,
    UnknownSymbol,
)
from domain.positions import PositionSide
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.broker.simulated_broker_store import PostgresSimulatedBrokerStore
from tests.support.ledgers import EPOCH
from tests.support.simulator_state import empty_simulator_tables, simulator_pool

START_CASH_MINOR = 10_000_000  # $100,000.00


class Market(Protocol):
    """What a contract test needs besides the port: money in, prices set."""

    def fund(self, account_id: UUID, cash_minor: int) -> None: ...

    def set_price(self, symbol: str, bid_minor: int, ask_minor: int) -> object: ...


@dataclass
class Setup:
    broker: Broker
    market: Market
    account_id: UUID


def fresh_setup(make_broker: MakeBroker) -> Setup:
    """A broker with one funded account and ACME priced at 100.00 / 100.10."""
    broker, market = make_broker()
    account_id = uuid4()
    market.fund(account_id, START_CASH_MINOR)
    market.set_price("ACME", 10_000, 10_010)
    return Setup(broker, market, account_id)


# Makes a broker and its market, fresh on every call: a property test makes
# one per example.
MakeBroker = Callable[[], tuple[Broker, Market]]


class BrokerContract:
    """Every Broker must pass these; subclasses give `make_broker`."""

    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        raise NotImplementedError

    @pytest.fixture
    def s(self, make_broker: MakeBroker) -> Setup:
        return fresh_setup(make_broker)

    # Accounts -----------------------------------------------------------------------

    def test_a_registered_account_holds_its_cash_and_registering_again_changes_nothing(
        self, s: Setup
    ) -> None:
        account_id = uuid4()
        s.broker.register_account(account_id, 5_000_00)
        s.broker.open_position(account_id, "ACME", PositionSide.LONG, 1, "order-1")
        s.market.set_price("ACME", 10_500, 10_510)
        s.broker.close_position(s.broker.open_positions(account_id)[0].position_id, "close-1")
        s.broker.register_account(account_id, 9_000_00)
        equity = s.broker.equity(account_id)
        assert equity.cash_minor == 5_000_00 + (10_500 - 10_010)
        assert equity.realized_pnl_minor == 10_500 - 10_010

    def test_cancelling_when_no_order_rests_cancels_none(self, s: Setup) -> None:
        s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 1, "order-1")
        assert s.broker.cancel_open_orders(s.account_id) == 0
        # Cancelling orders closes no position.
        assert len(s.broker.open_positions(s.account_id)) == 1

    # Opening ------------------------------------------------------------------------

    def test_a_long_opens_at_the_ask_and_a_short_at_the_bid(self, s: Setup) -> None:
        long = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 7, "order-1")
        short = s.broker.open_position(s.account_id, "ACME", PositionSide.SHORT, 3, "order-2")
        assert (long.kind, long.side, long.price_minor, long.quantity) == (
            FillKind.OPEN,
            PositionSide.LONG,
            10_010,
            7,
        )
        assert (short.kind, short.side, short.price_minor, short.quantity) == (
            FillKind.OPEN,
            PositionSide.SHORT,
            10_000,
            3,
        )
        assert long.realized_pnl_minor == short.realized_pnl_minor == 0
        assert long.position_id != short.position_id
        assert long.at.tzinfo is not None

    def test_opening_moves_no_cash(self, s: Setup) -> None:
        s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 100, "order-1")
        assert s.broker.equity(s.account_id).cash_minor == START_CASH_MINOR

    def test_the_same_client_order_id_returns_the_same_fill_and_one_position(
        self, s: Setup
    ) -> None:
        first = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 5, "order-1")
        s.market.set_price("ACME", 20_000, 20_010)
        again = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 5, "order-1")
        assert again == first
        assert [p.position_id for p in s.broker.open_positions(s.account_id)] == [first.position_id]

    def test_a_client_order_id_reused_with_other_details_is_refused(self, s: Setup) -> None:
        s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 5, "order-1")
        with pytest.raises(BrokerRejected) as refused:
            s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 6, "order-1")
        assert refused.value.reason is RejectionReason.CLIENT_ORDER_ID_REUSED
        assert len(s.broker.open_positions(s.account_id)) == 1

    def test_client_order_ids_belong_to_their_account(self, s: Setup) -> None:
        other = uuid4()
        s.market.fund(other, START_CASH_MINOR)
        mine = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 5, "order-1")
        theirs = s.broker.open_position(other, "ACME", PositionSide.LONG, 5, "order-1")
        assert mine.position_id != theirs.position_id
        assert len(s.broker.open_positions(other)) == 1

    @pytest.mark.parametrize("quantity", [0, -1])
    def test_a_quantity_below_one_is_refused_as_invalid(self, s: Setup, quantity: int) -> None:
        with pytest.raises(BrokerRejected) as refused:
            s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, quantity, "order-1")
        assert refused.value.reason is RejectionReason.INVALID_ORDER

    def test_a_float_quantity_is_a_type_error(self, s: Setup) -> None:
        with pytest.raises(TypeError):
            s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 1.5, "order-1")  # type: ignore[arg-type]

    @pytest.mark.parametrize("client_order_id", ["", "has space", "x" * 129])
    def test_a_malformed_client_order_id_is_refused(self, s: Setup, client_order_id: str) -> None:
        with pytest.raises(BrokerRejected) as refused:
            s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 1, client_order_id)
        assert refused.value.reason is RejectionReason.INVALID_ORDER

    # Closing ------------------------------------------------------------------------

    def test_closing_a_long_realizes_exit_minus_entry_times_quantity(self, s: Setup) -> None:
        opened = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 7, "order-1")
        s.market.set_price("ACME", 10_333, 10_340)
        closed = s.broker.close_position(opened.position_id, "close-1")
        assert (closed.kind, closed.price_minor, closed.entry_price_minor) == (
            FillKind.CLOSE,
            10_333,
            10_010,
        )
        assert closed.realized_pnl_minor == (10_333 - 10_010) * 7 == 2_261
        assert s.broker.equity(s.account_id).cash_minor == START_CASH_MINOR + 2_261
        assert s.broker.open_positions(s.account_id) == ()

    def test_closing_a_short_realizes_entry_minus_exit_times_quantity(self, s: Setup) -> None:
        opened = s.broker.open_position(s.account_id, "ACME", PositionSide.SHORT, 3, "order-1")
        s.market.set_price("ACME", 10_100, 10_123)
        closed = s.broker.close_position(opened.position_id, "close-1")
        assert closed.price_minor == 10_123
        assert closed.realized_pnl_minor == (10_000 - 10_123) * 3 == -369
        assert s.broker.equity(s.account_id).cash_minor == START_CASH_MINOR - 369

    def test_closing_again_with_the_same_id_returns_the_same_fill_and_realizes_once(
        self, s: Setup
    ) -> None:
        opened = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 2, "order-1")
        s.market.set_price("ACME", 11_000, 11_010)
        first = s.broker.close_position(opened.position_id, "close-1")
        s.market.set_price("ACME", 5_000, 5_010)
        assert s.broker.close_position(opened.position_id, "close-1") == first
        assert s.broker.equity(s.account_id).cash_minor == START_CASH_MINOR + (
            (11_000 - 10_010) * 2
        )

    def test_closing_a_closed_position_with_another_id_finds_no_position(self, s: Setup) -> None:
        opened = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 2, "order-1")
        s.broker.close_position(opened.position_id, "close-1")
        with pytest.raises(PositionNotFound) as missing:
            s.broker.close_position(opened.position_id, "close-2")
        assert missing.value.position_id == opened.position_id

    def test_a_close_may_not_reuse_an_open_orders_id(self, s: Setup) -> None:
        opened = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 2, "order-1")
        with pytest.raises(BrokerRejected) as refused:
            s.broker.close_position(opened.position_id, "order-1")
        assert refused.value.reason is RejectionReason.CLIENT_ORDER_ID_REUSED

    def test_closing_an_unknown_position_finds_no_position(self, s: Setup) -> None:
        with pytest.raises(PositionNotFound):
            s.broker.close_position("no-such-position", "close-1")

    # Reading ------------------------------------------------------------------------

    def test_open_positions_are_marked_at_the_price_that_would_close_them(self, s: Setup) -> None:
        long = s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 4, "order-1")
        short = s.broker.open_position(s.account_id, "ACME", PositionSide.SHORT, 6, "order-2")
        s.market.set_price("ACME", 10_200, 10_250)
        held = {p.position_id: p for p in s.broker.open_positions(s.account_id)}
        assert (held[long.position_id].current_price_minor, held[long.position_id].side) == (
            10_200,
            PositionSide.LONG,
        )
        assert held[long.position_id].market_value_minor == 10_200 * 4
        assert held[long.position_id].unrealized_pnl_minor == (10_200 - 10_010) * 4
        assert held[short.position_id].current_price_minor == 10_250
        assert held[short.position_id].market_value_minor == 10_250 * 6
        assert held[short.position_id].unrealized_pnl_minor == (10_000 - 10_250) * 6

    def test_open_positions_come_oldest_first(self, s: Setup) -> None:
        opened = [
            s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 1, f"order-{number}")
            for number in range(5)
        ]
        s.broker.close_position(opened[2].position_id, "close-2")
        assert [p.position_id for p in s.broker.open_positions(s.account_id)] == [
            fill.position_id for index, fill in enumerate(opened) if index != 2
        ]

    def test_equity_is_cash_plus_unrealized_pnl(self, s: Setup) -> None:
        s.broker.open_position(s.account_id, "ACME", PositionSide.LONG, 10, "order-1")
        s.market.set_price("ACME", 9_500, 9_510)
        equity = s.broker.equity(s.account_id)
        assert equity == AccountEquity(
            account_id=s.account_id,
            currency=equity.currency,
            cash_minor=START_CASH_MINOR,
            realized_pnl_minor=0,
            unrealized_pnl_minor=(9_500 - 10_010) * 10,
            equity_minor=START_CASH_MINOR - 5_100,
            open_positions=1,
            at=equity.at,
        )

    def test_a_quote_has_bid_ask_last_open_and_last_close(self, s: Setup) -> None:
        quote = s.broker.quote("ACME")
        assert (quote.symbol, quote.bid_minor, quote.ask_minor) == ("ACME", 10_000, 10_010)
        assert min(quote.last_minor, quote.open_minor, quote.last_close_minor) > 0

    # Errors -------------------------------------------------------------------------

    def test_an_unknown_symbol_is_named(self, s: Setup) -> None:
        with pytest.raises(UnknownSymbol) as unknown:
            s.broker.quote("NOPE")
        assert unknown.value.symbol == "NOPE"
        with pytest.raises(UnknownSymbol):
            s.broker.open_position(s.account_id, "NOPE", PositionSide.LONG, 1, "order-1")
        assert s.broker.open_positions(s.account_id) == ()

    @pytest.mark.parametrize(
        "call",
        [
            lambda broker, account_id: broker.equity(account_id),
            lambda broker, account_id: broker.open_positions(account_id),
            lambda broker, account_id: broker.cancel_open_orders(account_id),
            lambda broker, account_id: broker.open_position(
                account_id, "ACME", PositionSide.LONG, 1, "order-1"
            ),
        ],
        ids=["equity", "open_positions", "cancel_open_orders", "open_position"],
    )
    def test_an_unknown_account_is_named(
        self, s: Setup, call: Callable[[Broker, UUID], object]
    ) -> None:
        stranger = uuid4()
        with pytest.raises(UnknownAccount) as unknown:
            call(s.broker, stranger)
        assert unknown.value.account_id == stranger

    def test_only_unavailability_is_worth_retrying(self) -> None:
        assert BrokerUnavailable.transient
        for error in (BrokerRejected, UnknownSymbol, UnknownAccount, PositionNotFound):
            assert issubclass(error, BrokerError)
            assert not error.transient

    # Conservation -------------------------------------------------------------------

    # The fixture is a factory: each example makes a broker of its own. Every
    # subclass runs this same method, each with its own broker (the differing
    # executors are those subclasses).
    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.data())
    def test_cash_and_unrealized_pnl_conserve_money_exactly(
        self, make_broker: MakeBroker, data: st.DataObject
    ) -> None:
        """Whatever is opened and closed at whatever prices, the money adds up to
        the minor unit, counted two ways: as start + realized + unrealized, and
        as the cash every trade would have moved (sells in, buys out) plus what
        the open positions are worth."""
        s = fresh_setup(make_broker)
        s.market.set_price("BETA", 50, 52)
        symbols = ("ACME", "BETA")
        fills: list[Fill] = []
        opens: dict[str, Fill] = {}
        for number in range(data.draw(st.integers(0, 30), label="steps")):
            action = data.draw(st.integers(0, 3), label="action")
            if action == 0:
                bid = data.draw(st.integers(1, 10**7), label="bid")
                spread = data.draw(st.integers(0, 10**4), label="spread")
                s.market.set_price(data.draw(st.sampled_from(symbols)), bid, bid + spread)
            elif action == 1:
                fill = s.broker.open_position(
                    s.account_id,
                    data.draw(st.sampled_from(symbols)),
                    data.draw(st.sampled_from(PositionSide)),
                    data.draw(st.integers(1, 10**5), label="quantity"),
                    f"open-{number}",
                )
                fills.append(fill)
                opens[fill.position_id] = fill
            elif action == 2 and opens:
                position_id = data.draw(st.sampled_from(sorted(opens)))
                fill = s.broker.close_position(position_id, f"close-{number}")
                entry = opens.pop(position_id)
                assert fill.entry_price_minor == entry.price_minor
                sign = 1 if entry.side is PositionSide.LONG else -1
                assert fill.realized_pnl_minor == sign * (
                    (fill.price_minor - entry.price_minor) * entry.quantity
                )
                fills.append(fill)
            elif action == 3 and fills:
                # A retry of any earlier order changes nothing.
                earlier = data.draw(st.sampled_from(fills))
                if earlier.kind is FillKind.OPEN:
                    again = s.broker.open_position(
                        s.account_id,
                        earlier.symbol,
                        earlier.side,
                        earlier.quantity,
                        earlier.client_order_id,
                    )
                else:
                    again = s.broker.close_position(earlier.position_id, earlier.client_order_id)
                assert again == earlier
            self.assert_money_adds_up(s, fills, opens)

    def assert_money_adds_up(self, s: Setup, fills: list[Fill], opens: dict[str, Fill]) -> None:
        equity = s.broker.equity(s.account_id)
        realized = sum(fill.realized_pnl_minor for fill in fills)
        unrealized = 0
        traded_cash = START_CASH_MINOR
        worth = 0
        for fill in fills:
            buys = (fill.side is PositionSide.LONG) == (fill.kind is FillKind.OPEN)
            traded_cash += (
                -fill.price_minor * fill.quantity if buys else fill.price_minor * fill.quantity
            )
        for entry in opens.values():
            quote = s.broker.quote(entry.symbol)
            if entry.side is PositionSide.LONG:
                unrealized += (quote.bid_minor - entry.price_minor) * entry.quantity
                worth += quote.bid_minor * entry.quantity
            else:
                unrealized += (entry.price_minor - quote.ask_minor) * entry.quantity
                worth -= quote.ask_minor * entry.quantity
        assert equity.cash_minor == START_CASH_MINOR + realized
        assert equity.unrealized_pnl_minor == unrealized
        assert equity.equity_minor == START_CASH_MINOR + realized + unrealized
        assert equity.equity_minor == traded_cash + worth
        held = s.broker.open_positions(s.account_id)
        assert sorted(p.position_id for p in held) == sorted(opens)
        assert sum(p.unrealized_pnl_minor for p in held) == unrealized


class TestSimulatedBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        def make() -> tuple[Broker, Market]:
            broker = SimulatedBroker(SettableClock(EPOCH))
            return broker, broker

        return make


# Each example of the conservation property starts from emptied tables, and
# the restarting broker reads them back before every call: fewer examples
# keep these runs to seconds; the in-memory run explores the space.
DURABLE_CONSERVATION_EXAMPLES_MAX = 20


class DurableContract(BrokerContract):
    @settings(
        max_examples=DURABLE_CONSERVATION_EXAMPLES_MAX,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.data())
    def test_cash_and_unrealized_pnl_conserve_money_exactly(
        self, make_broker: MakeBroker, data: st.DataObject
    ) -> None:
        conservation = BrokerContract.test_cash_and_unrealized_pnl_conserve_money_exactly
        conservation.hypothesis.inner_test(self, make_broker, data)  # type: ignore[attr-defined]


class TestDurableSimulatedBroker(DurableContract):
    """The simulator as `build_ledger` wires it: its state in its own tables."""

    @pytest.fixture
    def make_broker(self, database_url: str) -> Iterator[MakeBroker]:
        with simulator_pool(database_url) as pool:

            def make() -> tuple[Broker, Market]:
                empty_simulator_tables(pool)
                store = PostgresSimulatedBrokerStore(pool)
                broker = SimulatedBroker(SettableClock(EPOCH), store=store)
                return broker, broker

            yield make


class RestartingBroker:
    """A simulator read back from its store before every call: whatever the
    contract sees has survived a restart."""

    def __init__(self, clock: SettableClock, store: PostgresSimulatedBrokerStore) -> None:
        self._clock = clock
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(SimulatedBroker(self._clock, store=self._store), name)


class TestSimulatedBrokerRestartedBeforeEveryCall(DurableContract):
    @pytest.fixture
    def make_broker(self, database_url: str) -> Iterator[MakeBroker]:
        with simulator_pool(database_url) as pool:

            def make() -> tuple[Broker, Market]:
                empty_simulator_tables(pool)
                restarting = RestartingBroker(
                    SettableClock(EPOCH), PostgresSimulatedBrokerStore(pool)
                )
                return restarting, restarting  # type: ignore[return-value]

            yield make
