"""A deterministic broker: prices from a script, time from a Clock, faults on demand.

It implements `application.ports.broker.Broker` exactly as the port documents it
(fills at the ask for buys and the bid for sells, margin cash, idempotent
client order ids) and adds what tests and the demo need to drive it:

- Prices: `set_price` fixes a symbol's quote until changed; `load_path`
  scripts it as a `PricePath`, steps in time, read against the Clock, so a
  test moves a `SettableClock` and the market moves with it (a gap, a
  widening spread, a crash). Before a path's first step the symbol has no
  price and calls that need one raise `UnknownSymbol`.
- Money: `fund(account_id, cash_minor)` opens or tops up an account.
- Faults, per account, so one account's broker can fail while the others
  answer: `fail_next` queues errors for the next calls, `set_unavailable` is
  an outage until lifted, `lose_next_reply` carries out the next order and
  then times out (the case only an idempotent retry resolves), `set_latency`
  delays answers through an injected `sleep`, and a latency at or above
  `reply_timeout_s` times out without doing anything. Delays happen outside
  the lock, so a slow account never holds up the others.

Position ids are derived from the account and client order id, so the same
script gives the same ids whatever the threads' interleaving.

Given a `store`, the simulator starts from the state kept there and writes
every change to it before answering (accounts, positions, orders, prices; not
faults), so it remembers its accounts across a restart as a broker would
(simulated_broker_store.py). Without one it lives in memory only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final
from uuid import UUID, uuid5

from application.ports.broker import (
    AccountEquity,
    BrokerError,
    BrokerPosition,
    BrokerRejected,
    BrokerTimeout,
    BrokerUnavailable,
    Fill,
    FillKind,
    PositionNotFound,
    Quote,
    RejectionReason,
    UnknownAccount,
    UnknownSymbol,
    entry_price_for,
    exit_price_for,
    require_client_order_id,
)
from application.ports.clock import Clock
from domain.positions import PositionSide, position_pnl_minor
from interface.adapters.broker.price_path import (
    VOLUME_DEFAULT,
    PricePath,
    PriceStep,
)
from interface.adapters.broker.simulated_broker_store import (
    SimulatedBrokerStore,
    StoredAccount,
    StoredMarket,
    StoredOrder,
    StoredPosition,
    StoredState,
)

SYMBOLS_MAX: Final[int] = 1_000
SYMBOL_LENGTH_MAX: Final[int] = 32
ACCOUNTS_MAX: Final[int] = 10_000
# The Com tier allows 50 open positions (docs/rules.md#tiers-forks-and-merges);
# the broker allows more, so the ledger's own limit is the one that refuses
# first.
POSITIONS_PER_ACCOUNT_MAX: Final[int] = 100
# Orders are remembered for idempotency; past this an account takes no more.
ORDERS_PER_ACCOUNT_MAX: Final[int] = 10_000
FAULTS_QUEUED_MAX: Final[int] = 100
QUANTITY_MAX: Final[int] = 10**9
REPLY_TIMEOUT_S: Final[float] = 10.0

_POSITION_NAMESPACE: Final = UUID("3d6a1f0e-5b7c-4e2a-9f81-6c0d2b4a7e93")


# State ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Order:
    # What was asked: ("open", symbol, side, quantity) or ("close", position_id).
    request: tuple[object, ...]
    fill: Fill


@dataclass(slots=True)
class _Position:
    position_id: str
    account_id: UUID
    symbol: str
    side: PositionSide
    quantity: int
    entry_price_minor: int
    opened_at: datetime
    closed_by: str | None = None


@dataclass(slots=True)
class _Account:
    cash_minor: int
    # Realized since the account was opened here; cash = funded + this.
    realized_pnl_minor: int = 0
    open_position_ids: dict[str, None] = field(default_factory=dict)  # insertion-ordered
    orders: dict[str, _Order] = field(default_factory=dict)


@dataclass(slots=True)
class _Faults:
    queued: deque[BrokerError] = field(default_factory=deque)
    unavailable: bool = False
    replies_to_lose: int = 0
    latency_s: float = 0.0


# The simulator --------------------------------------------------------------------


class SimulatedBroker:
    def __init__(
        self,
        clock: Clock,
        *,
        currency: str = "USD",
        symbols_max: int = SYMBOLS_MAX,
        accounts_max: int = ACCOUNTS_MAX,
        positions_per_account_max: int = POSITIONS_PER_ACCOUNT_MAX,
        orders_per_account_max: int = ORDERS_PER_ACCOUNT_MAX,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        store: SimulatedBrokerStore | None = None,
    ) -> None:
        self._clock = clock
        self.currency = currency
        self._symbols_max = symbols_max
        self._accounts_max = accounts_max
        self._positions_per_account_max = positions_per_account_max
        self._orders_per_account_max = orders_per_account_max
        self._reply_timeout_s = reply_timeout_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._markets: dict[str, Quote | PricePath] = {}
        # Symbols whose quote is read as of now (a market still quoting);
        # the others keep the time they were quoted at (a stopped feed).
        self._live: set[str] = set()
        self._accounts: dict[UUID, _Account] = {}
        self._positions: dict[str, _Position] = {}
        self._faults: dict[UUID, _Faults] = {}
        self._store = store
        if store is not None:
            self._restore(store.load())

    @property
    def keeps_state(self) -> bool:
        """Whether its state is in the database, where another process reads it."""
        return self._store is not None

    def _restore(self, state: StoredState) -> None:
        for stored in state.accounts:
            self._accounts[stored.account_id] = _Account(
                cash_minor=stored.cash_minor, realized_pnl_minor=stored.realized_pnl_minor
            )
        for held in state.positions:
            self._positions[held.position_id] = _Position(
                held.position_id,
                held.account_id,
                held.symbol,
                held.side,
                held.quantity,
                held.entry_price_minor,
                held.opened_at,
                held.closed_by,
            )
            if held.closed_by is None:
                self._accounts[held.account_id].open_position_ids[held.position_id] = None
        for account_id, order in state.orders:
            self._accounts[account_id].orders[order.client_order_id] = _Order(
                order.request, order.fill
            )
        for market in state.markets:
            self._markets[market.symbol] = (
                PricePath(market.steps) if market.is_path else market.steps[0].quote(market.symbol)
            )
            if market.live:
                self._live.add(market.symbol)

    # Scripting the market and the accounts ----------------------------------------

    def set_price(
        self,
        symbol: str,
        bid_minor: int,
        ask_minor: int,
        *,
        last_minor: int | None = None,
        open_minor: int | None = None,
        last_close_minor: int | None = None,
        volume: int = VOLUME_DEFAULT,
        quoted_at: datetime | None = None,
    ) -> Quote:
        """Fix the symbol's quote from now until changed (replaces any path).

        The market keeps quoting it: each read is stamped with the time of the
        read. `quoted_at` instead freezes the quote's time, a feed that stopped
        then (a stale mark, which no rule decision is taken on)."""
        _require_symbol(symbol)
        with self._lock:
            step = PriceStep(
                quoted_at or self._clock.now(),
                bid_minor,
                ask_minor,
                last_minor=last_minor,
                open_minor=open_minor,
                last_close_minor=last_close_minor,
                volume=volume,
            )
            quote = step.quote(symbol)
            self._set_market(symbol, quote, live=quoted_at is None)
            return quote

    def load_path(self, symbol: str, path: PricePath) -> None:
        """Script the symbol's quotes against the clock (replaces any fixed price)."""
        _require_symbol(symbol)
        with self._lock:
            self._set_market(symbol, path, live=True)

    def fund(self, account_id: UUID, cash_minor: int) -> None:
        """Open the account with this cash, or add it to an open one."""
        _require_cash(cash_minor)
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                self._add_account(account_id, cash_minor)
            else:
                self._save_account(account_id, account.cash_minor + cash_minor, account)
                account.cash_minor += cash_minor

    def _add_account(self, account_id: UUID, cash_minor: int) -> None:
        if len(self._accounts) >= self._accounts_max:
            raise ValueError(f"the simulator holds at most {self._accounts_max} accounts")
        account = _Account(cash_minor=cash_minor)
        self._save_account(account_id, cash_minor, account)
        self._accounts[account_id] = account

    def _save_account(self, account_id: UUID, cash_minor: int, account: _Account) -> None:
        if self._store is not None:
            self._store.save_account(
                StoredAccount(account_id, cash_minor, account.realized_pnl_minor)
            )

    def register_account(self, account_id: UUID, cash_minor: int) -> None:
        _require_cash(cash_minor)
        with self._lock:
            if account_id not in self._accounts:
                self._add_account(account_id, cash_minor)

    # Faults -------------------------------------------------------------------------

    def fail_next(self, account_id: UUID, error: BrokerError, times: int = 1) -> None:
        """The account's next `times` calls raise `error` and do nothing."""
        with self._lock:
            faults = self._faults_of(account_id)
            if len(faults.queued) + times > FAULTS_QUEUED_MAX:
                raise ValueError(f"at most {FAULTS_QUEUED_MAX} faults queued per account")
            faults.queued.extend([error] * times)

    def set_unavailable(self, account_id: UUID, unavailable: bool = True) -> None:
        """Until lifted, every call for the account raises `BrokerUnavailable`."""
        with self._lock:
            self._faults_of(account_id).unavailable = unavailable

    def lose_next_reply(self, account_id: UUID, times: int = 1) -> None:
        """The account's next `times` orders are carried out, then time out."""
        with self._lock:
            self._faults_of(account_id).replies_to_lose += times

    def set_latency(self, account_id: UUID, latency_s: float) -> None:
        """Every call for the account waits this long first; at or above the
        reply time-out it waits the time-out and raises `BrokerTimeout`."""
        if latency_s < 0:
            raise ValueError("latency_s must not be negative")
        with self._lock:
            self._faults_of(account_id).latency_s = latency_s

    # The port -----------------------------------------------------------------------

    def open_position(
        self,
        account_id: UUID,
        symbol: str,
        side: PositionSide,
        quantity: int,
        client_order_id: str,
    ) -> Fill:
        side = PositionSide(side)
        if type(quantity) is not int:
            raise TypeError(f"quantity must be an int of units, not {type(quantity).__name__}")
        self._answer_after_faults(account_id)
        with self._lock:
            account = self._account(account_id)
            require_client_order_id(client_order_id)
            if not 1 <= quantity <= QUANTITY_MAX:
                raise BrokerRejected(
                    RejectionReason.INVALID_ORDER,
                    f"quantity must be from 1 to {QUANTITY_MAX}, not {quantity}",
                )
            request: tuple[object, ...] = ("open", symbol, side, quantity)
            replayed = self._replay(account, client_order_id, request)
            if replayed is None:
                replayed = self._open(account_id, account, symbol, side, quantity, client_order_id)
            self._lose_reply_if_scripted(account_id)
            return replayed

    def close_position(self, position_id: str, client_order_id: str) -> Fill:
        with self._lock:
            position = self._positions.get(position_id)
            if position is None:
                raise PositionNotFound(position_id)
            account_id = position.account_id
        self._answer_after_faults(account_id)
        with self._lock:
            account = self._account(account_id)
            require_client_order_id(client_order_id)
            replayed = self._replay(account, client_order_id, ("close", position_id))
            if replayed is None:
                replayed = self._close(account, position, client_order_id)
            self._lose_reply_if_scripted(account_id)
            return replayed

    def open_positions(self, account_id: UUID) -> tuple[BrokerPosition, ...]:
        self._answer_after_faults(account_id)
        with self._lock:
            account = self._account(account_id)
            return tuple(self._priced(self._positions[pid]) for pid in account.open_position_ids)

    def cancel_open_orders(self, account_id: UUID) -> int:
        """Orders fill at once here, so none ever rests: nothing to cancel."""
        self._answer_after_faults(account_id)
        with self._lock:
            self._account(account_id)
        return 0

    def equity(self, account_id: UUID) -> AccountEquity:
        self._answer_after_faults(account_id)
        with self._lock:
            account = self._account(account_id)
            positions = [self._priced(self._positions[pid]) for pid in account.open_position_ids]
            unrealized = sum(position.unrealized_pnl_minor for position in positions)
            return AccountEquity(
                account_id=account_id,
                currency=self.currency,
                cash_minor=account.cash_minor,
                realized_pnl_minor=account.realized_pnl_minor,
                unrealized_pnl_minor=unrealized,
                equity_minor=account.cash_minor + unrealized,
                open_positions=len(positions),
                at=self._clock.now(),
            )

    def quote(self, symbol: str) -> Quote:
        with self._lock:
            return self._quote_now(symbol)

    # Inside the lock ----------------------------------------------------------------

    def _open(
        self,
        account_id: UUID,
        account: _Account,
        symbol: str,
        side: PositionSide,
        quantity: int,
        client_order_id: str,
    ) -> Fill:
        quote = self._quote_now(symbol)
        if len(account.open_position_ids) >= self._positions_per_account_max:
            raise BrokerRejected(
                RejectionReason.POSITIONS_LIMIT_REACHED,
                f"at most {self._positions_per_account_max} open positions per account",
            )
        self._require_order_room(account)
        position_id = str(uuid5(_POSITION_NAMESPACE, f"{account_id}\x1f{client_order_id}"))
        price = entry_price_for(side, quote)
        now = self._clock.now()
        position = _Position(position_id, account_id, symbol, side, quantity, price, now)
        fill = Fill(
            client_order_id=client_order_id,
            kind=FillKind.OPEN,
            position_id=position_id,
            account_id=account_id,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price_minor=price,
            entry_price_minor=price,
            realized_pnl_minor=0,
            at=now,
        )
        order = _Order(("open", symbol, side, quantity), fill)
        if self._store is not None:
            self._store.record_open(
                StoredPosition(
                    position_id, account_id, symbol, side, quantity, price, now, closed_by=None
                ),
                StoredOrder(client_order_id, order.request, fill),
            )
        self._positions[position_id] = position
        account.open_position_ids[position_id] = None
        account.orders[client_order_id] = order
        return fill

    def _close(self, account: _Account, position: _Position, client_order_id: str) -> Fill:
        if position.closed_by is not None:
            raise PositionNotFound(
                position.position_id, f"already closed by order {position.closed_by}"
            )
        quote = self._quote_now(position.symbol)
        self._require_order_room(account)
        price = exit_price_for(position.side, quote)
        pnl = position_pnl_minor(
            position.side, position.entry_price_minor, price, position.quantity
        )
        fill = Fill(
            client_order_id=client_order_id,
            kind=FillKind.CLOSE,
            position_id=position.position_id,
            account_id=position.account_id,
            symbol=position.symbol,
            side=position.side,
            quantity=position.quantity,
            price_minor=price,
            entry_price_minor=position.entry_price_minor,
            realized_pnl_minor=pnl,
            at=self._clock.now(),
        )
        order = _Order(("close", position.position_id), fill)
        if self._store is not None:
            self._store.record_close(
                StoredAccount(
                    position.account_id,
                    account.cash_minor + pnl,
                    account.realized_pnl_minor + pnl,
                ),
                position.position_id,
                StoredOrder(client_order_id, order.request, fill),
            )
        account.cash_minor += pnl
        account.realized_pnl_minor += pnl
        del account.open_position_ids[position.position_id]
        position.closed_by = client_order_id
        account.orders[client_order_id] = order
        return fill

    def _replay(
        self, account: _Account, client_order_id: str, request: tuple[object, ...]
    ) -> Fill | None:
        order = account.orders.get(client_order_id)
        if order is None:
            return None
        if order.request != request:
            raise BrokerRejected(
                RejectionReason.CLIENT_ORDER_ID_REUSED,
                f"client order id {client_order_id!r} was used for {order.request}",
            )
        return order.fill

    def _require_order_room(self, account: _Account) -> None:
        if len(account.orders) >= self._orders_per_account_max:
            raise BrokerRejected(
                RejectionReason.ORDERS_LIMIT_REACHED,
                f"at most {self._orders_per_account_max} orders per account",
            )

    def _priced(self, position: _Position) -> BrokerPosition:
        mark = exit_price_for(position.side, self._quote_now(position.symbol))
        return BrokerPosition(
            position_id=position.position_id,
            account_id=position.account_id,
            symbol=position.symbol,
            side=position.side,
            quantity=position.quantity,
            entry_price_minor=position.entry_price_minor,
            opened_at=position.opened_at,
            current_price_minor=mark,
            market_value_minor=mark * position.quantity,
            unrealized_pnl_minor=position_pnl_minor(
                position.side, position.entry_price_minor, mark, position.quantity
            ),
        )

    def _quote_now(self, symbol: str) -> Quote:
        market = self._markets.get(symbol)
        if market is None:
            raise UnknownSymbol(symbol)
        now = self._clock.now()
        if isinstance(market, Quote):
            return replace(market, at=now) if symbol in self._live else market
        step = market.step_at(now)
        if step is None:
            raise UnknownSymbol(symbol, f"not priced before {market.steps[0].at.isoformat()}")
        return replace(step.quote(symbol), at=now)

    def _set_market(self, symbol: str, market: Quote | PricePath, *, live: bool) -> None:
        if symbol not in self._markets and len(self._markets) >= self._symbols_max:
            raise ValueError(f"the simulator prices at most {self._symbols_max} symbols")
        if self._store is not None:
            self._store.save_market(_stored_market(symbol, market, live))
        self._markets[symbol] = market
        if live:
            self._live.add(symbol)
        else:
            self._live.discard(symbol)

    def _account(self, account_id: UUID) -> _Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise UnknownAccount(account_id)
        return account

    def _faults_of(self, account_id: UUID) -> _Faults:
        faults = self._faults.get(account_id)
        if faults is None:
            if len(self._faults) >= self._accounts_max:
                raise ValueError(f"faults for at most {self._accounts_max} accounts")
            faults = self._faults[account_id] = _Faults()
        return faults

    def _lose_reply_if_scripted(self, account_id: UUID) -> None:
        faults = self._faults.get(account_id)
        if faults is not None and faults.replies_to_lose > 0:
            faults.replies_to_lose -= 1
            raise BrokerTimeout(f"the reply for account {account_id} was lost")

    # Outside the lock ---------------------------------------------------------------

    def _answer_after_faults(self, account_id: UUID) -> None:
        """Wait out the account's latency and raise its scripted fault, if any.
        The wait is outside the lock: other accounts are answered meanwhile."""
        with self._lock:
            faults = self._faults.get(account_id)
            if faults is None:
                return
            latency_s = faults.latency_s
            error: BrokerError | None = faults.queued.popleft() if faults.queued else None
            if error is None and faults.unavailable:
                error = BrokerUnavailable(f"the broker is unavailable for account {account_id}")
        if latency_s >= self._reply_timeout_s:
            self._sleep(self._reply_timeout_s)
            raise BrokerTimeout(f"no reply for account {account_id} in {self._reply_timeout_s} s")
        if latency_s > 0:
            self._sleep(latency_s)
        if error is not None:
            raise error


def _stored_market(symbol: str, market: Quote | PricePath, live: bool) -> StoredMarket:
    if isinstance(market, PricePath):
        return StoredMarket(symbol, market.steps, is_path=True, live=live)
    # Every price set, so the step gives back this very quote.
    step = PriceStep(
        market.at,
        market.bid_minor,
        market.ask_minor,
        last_minor=market.last_minor,
        open_minor=market.open_minor,
        last_close_minor=market.last_close_minor,
        volume=market.volume,
    )
    return StoredMarket(symbol, (step,), is_path=False, live=live)


def _require_cash(cash_minor: object) -> None:
    if type(cash_minor) is not int or cash_minor <= 0:
        raise ValueError(f"cash_minor must be a positive int, not {cash_minor!r}")


def _require_symbol(symbol: object) -> None:
    if not isinstance(symbol, str) or not 1 <= len(symbol) <= SYMBOL_LENGTH_MAX:
        raise ValueError(f"a symbol is 1 to {SYMBOL_LENGTH_MAX} characters, not {symbol!r}")
