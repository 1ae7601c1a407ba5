"""The Broker port: open and close positions, read positions, equity and quotes.

See docs/rules.md#position-sync-and-guards (position sync, guards, closing) and
docs/rules.md#funded-accounts-and-withdrawals (realized and unrealized P&L).

An adapter for a real broker lives in interface/;
`interface.adapters.broker.simulated_broker.SimulatedBroker` is the
deterministic one that tests and the demo drive.

Numbers. Nothing here is a float.
- A quantity is a positive `int`: whole units of the instrument (shares,
  contracts, lots). An instrument traded in fractions is listed in its
  smallest tradable unit, so the count stays whole.
- A price is an `int` of minor units of the account's currency per one unit
  of quantity (cents per share for USD).
- So every amount, price x quantity, is an exact integer of minor units.

P&L, in minor units (`domain.positions.position_pnl_minor`):
    long:  (exit - entry) x quantity
    short: (entry - exit) x quantity
A long position opens at the ask and closes at the bid; a short opens at the
bid and closes at the ask. The same rule marks open positions: a long is
valued at the bid and a short at the ask, so unrealized P&L is exactly what
closing at that moment would realize.

Rounding: none. Whole prices times whole quantities need none, so the port
never rounds. An adapter whose broker quotes finer than a minor unit rounds
each fill price once, at its edge, against the account: a buy (long open,
short close) up and a sell (long close, short open) down, so the ledger never
books a profit the broker did not pay; reconciliation reports the difference.

Cash. The broker account is a margin account, as a funded account is: opening
a position moves no cash, closing one adds its realized P&L (a loss takes it
away). Hence cash = funded + realized P&L, equity = cash + unrealized P&L.

Idempotency. Every order (open or close) carries a client order id, unique
within its account. The same id with the same details returns the first fill
again and never trades twice; the same id with other details is refused
(`BrokerRejected`, `CLIENT_ORDER_ID_REUSED`). After a `BrokerUnavailable`, and
above all after a `BrokerTimeout` (the order may or may not have been carried
out), retry with the same client order id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Final, Protocol
from uuid import UUID

from domain.positions import PositionSide, position_pnl_minor

CLIENT_ORDER_ID_LENGTH_MAX: Final[int] = 128
_CLIENT_ORDER_ID_PATTERN: Final = re.compile(r"[\x21-\x7e]+")


class FillKind(StrEnum):
    OPEN = "open"
    CLOSE = "close"


# Errors ---------------------------------------------------------------------------


class BrokerError(Exception):
    """Anything the broker answers instead of a result."""

    # True when the same call (same client order id) may succeed if retried later.
    transient: ClassVar[bool] = False


class BrokerUnavailable(BrokerError):
    """The broker could not be reached or did not answer; nothing is known to
    have happened. Retry later with the same client order id."""

    transient = True


class BrokerTimeout(BrokerUnavailable):
    """No answer in time: the order may have been carried out or not. Only a
    retry with the same client order id tells which, without trading twice."""


class RejectionReason(StrEnum):
    INVALID_ORDER = "invalid_order"
    CLIENT_ORDER_ID_REUSED = "client_order_id_reused"
    POSITIONS_LIMIT_REACHED = "positions_limit_reached"
    ORDERS_LIMIT_REACHED = "orders_limit_reached"
    # The broker refused for a reason of its own; `detail` says which.
    BROKER_POLICY = "broker_policy"


class BrokerRejected(BrokerError):
    """The broker refused the order; retrying it unchanged will not help."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownSymbol(BrokerError):
    """The broker has no price for the symbol (unknown, or not priced yet)."""

    def __init__(self, symbol: str, detail: str = "no such symbol") -> None:
        super().__init__(f"{symbol}: {detail}")
        self.symbol = symbol


class UnknownAccount(BrokerError):
    """The broker holds no account with this id."""

    def __init__(self, account_id: UUID) -> None:
        super().__init__(f"no broker account {account_id}")
        self.account_id = account_id


class PositionNotFound(BrokerError):
    """No open position with this id: never opened, or already closed."""

    def __init__(self, position_id: str, detail: str = "no such position") -> None:
        super().__init__(f"{position_id}: {detail}")
        self.position_id = position_id


# Values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quote:
    """A symbol's prices at `at`, all in minor units per unit of quantity.

    `last_close_minor` is the previous session's close and `open_minor` this
    session's open (the market guard's gap); `volume` is this session's, in
    units.
    """

    symbol: str
    bid_minor: int
    ask_minor: int
    last_minor: int
    open_minor: int
    last_close_minor: int
    volume: int
    at: datetime

    def __post_init__(self) -> None:
        for name in ("bid_minor", "ask_minor", "last_minor", "open_minor", "last_close_minor"):
            _require_positive_int(name, getattr(self, name))
        if type(self.volume) is not int or self.volume < 0:
            raise ValueError(f"volume must be a non-negative int, not {self.volume!r}")
        if self.bid_minor > self.ask_minor:
            raise ValueError(f"crossed quote for {self.symbol}: bid {self.bid_minor} > ask")
        if self.at.tzinfo is None:
            raise ValueError("a quote's time must carry a time zone")


@dataclass(frozen=True, slots=True)
class Fill:
    """One executed order. `price_minor` is this fill's price (entry for an
    open, exit for a close); `realized_pnl_minor` is 0 for an open, which
    realizes nothing, and the P&L formula above for a close."""

    client_order_id: str
    kind: FillKind
    position_id: str
    account_id: UUID
    symbol: str
    side: PositionSide
    quantity: int
    price_minor: int
    entry_price_minor: int
    realized_pnl_minor: int
    at: datetime

    def __post_init__(self) -> None:
        if self.kind is FillKind.OPEN:
            assert self.entry_price_minor == self.price_minor
            assert self.realized_pnl_minor == 0
        else:
            assert self.realized_pnl_minor == position_pnl_minor(
                self.side, self.entry_price_minor, self.price_minor, self.quantity
            )


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    """An open position priced now. `current_price_minor` is its mark (bid for
    a long, ask for a short); `market_value_minor` is mark x quantity, the
    position's size whichever its side, so never negative."""

    position_id: str
    account_id: UUID
    symbol: str
    side: PositionSide
    quantity: int
    entry_price_minor: int
    opened_at: datetime
    current_price_minor: int
    market_value_minor: int
    unrealized_pnl_minor: int

    def __post_init__(self) -> None:
        assert self.market_value_minor == self.current_price_minor * self.quantity
        assert self.unrealized_pnl_minor == position_pnl_minor(
            self.side, self.entry_price_minor, self.current_price_minor, self.quantity
        )


@dataclass(frozen=True, slots=True)
class AccountEquity:
    """The account as the broker sees it at `at`: cash (funded + realized P&L),
    the open positions' unrealized P&L, and their sum.

    `realized_pnl_minor` is the P&L realized since the account was opened at
    the broker, as brokers report it: reconciliation compares it with the
    realized P&L the ledger booked for the account's closes."""

    account_id: UUID
    currency: str
    cash_minor: int
    realized_pnl_minor: int
    unrealized_pnl_minor: int
    equity_minor: int
    open_positions: int
    at: datetime

    def __post_init__(self) -> None:
        assert self.equity_minor == self.cash_minor + self.unrealized_pnl_minor


# The rules every Broker follows -------------------------------------------------------


def entry_price_for(side: PositionSide, quote: Quote) -> int:
    """A long buys at the ask; a short sells at the bid."""
    return quote.ask_minor if side is PositionSide.LONG else quote.bid_minor


def exit_price_for(side: PositionSide, quote: Quote) -> int:
    """A long sells at the bid; a short buys back at the ask. Also the mark."""
    return quote.bid_minor if side is PositionSide.LONG else quote.ask_minor


def require_client_order_id(client_order_id: object) -> str:
    if (
        not isinstance(client_order_id, str)
        or not 1 <= len(client_order_id) <= CLIENT_ORDER_ID_LENGTH_MAX
        or _CLIENT_ORDER_ID_PATTERN.fullmatch(client_order_id) is None
    ):
        raise BrokerRejected(
            RejectionReason.INVALID_ORDER,
            f"client order id must be 1 to {CLIENT_ORDER_ID_LENGTH_MAX} printable ASCII "
            "characters without spaces",
        )
    return client_order_id


def _require_positive_int(name: str, value: object) -> None:
    # bool is an int subclass and a float may look whole: neither is a price.
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")


# The port -------------------------------------------------------------------------


class Broker(Protocol):
    """What the ledger needs of a broker. Every call may raise `BrokerUnavailable`
    (or its `BrokerTimeout`); the other errors are named on each call."""

    def register_account(self, account_id: UUID, cash_minor: int) -> None:
        """Hold an account for a funded account, with this cash, if none is held
        yet; an account already held is left as it is. A positive int."""
        ...

    def open_position(
        self,
        account_id: UUID,
        symbol: str,
        side: PositionSide,
        quantity: int,
        client_order_id: str,
    ) -> Fill:
        """Open a position at the market (ask for a long, bid for a short).

        Raises `UnknownAccount`, `UnknownSymbol`, `BrokerRejected` (invalid
        order, client order id reused with other details, a broker limit).
        A quantity that is not an int raises TypeError.
        """
        ...

    def close_position(self, position_id: str, client_order_id: str) -> Fill:
        """Close the whole position at the market; the fill carries realized P&L.

        Raises `PositionNotFound` (unknown or already closed by another order),
        `UnknownSymbol` (no price to close at), `BrokerRejected`.
        """
        ...

    def open_positions(self, account_id: UUID) -> tuple[BrokerPosition, ...]:
        """The account's open positions, oldest first, priced now. `UnknownAccount`."""
        ...

    def cancel_open_orders(self, account_id: UUID) -> int:
        """Cancel every order of the account not yet filled; how many were
        cancelled (0 when none rest). `UnknownAccount`."""
        ...

    def equity(self, account_id: UUID) -> AccountEquity:
        """Cash, unrealized P&L and equity now. `UnknownAccount`."""
        ...

    def quote(self, symbol: str) -> Quote:
        """The symbol's prices now. `UnknownSymbol`."""
        ...
