"""Bodies of the trading routes: opening a position, a position changed, a
quote, and a simulated price. Prices and P&L are decimal strings in major
units of the tier currency; a price is per one unit of quantity."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from application.funded_accounts import PositionChange
from application.ports.broker import Quote
from domain.tiers import TIER_CURRENCY
from interface.api.schemas.common import Amount, RequestModel, money

SYMBOL_PATTERN: Final[str] = r"^[A-Z0-9.\-]{1,16}$"


QUANTITY_MAX: Final[int] = 1_000_000_000


# A simulated market's session volume when none is given.
SIMULATED_VOLUME_DEFAULT: Final[int] = 1_000_000


Symbol = Annotated[
    str, Strict(), Field(pattern=SYMBOL_PATTERN, examples=["ACME"], description="Ticker")
]


class OpenPositionRequest(RequestModel):
    symbol: Symbol
    side: Literal["long", "short"]
    quantity: Annotated[int, Strict(), Field(ge=1, le=QUANTITY_MAX)]


class PositionResponse(BaseModel):
    funded_account_id: UUID
    position_id: str
    symbol: str
    side: str
    quantity: int
    # The fill: entry price for an open, exit price for a close.
    price: str
    currency: str
    realized_pnl: str
    filled_at: datetime
    # The account after the change: its rule band and state.
    band: str
    account_state: str

    @classmethod
    def of(cls, change: PositionChange) -> PositionResponse:
        fill = change.fill
        return cls(
            funded_account_id=change.account.id,
            position_id=change.position_id,
            symbol=fill.symbol,
            side=fill.side.value,
            quantity=fill.quantity,
            price=money(fill.price_minor),
            currency=TIER_CURRENCY,
            realized_pnl=money(fill.realized_pnl_minor),
            filled_at=fill.at,
            band=change.rule_status.band.value,
            account_state=change.account.state.value,
        )


class QuoteResponse(BaseModel):
    symbol: str
    bid: str
    ask: str
    last: str
    open: str = Field(description="This session's open (the market guard's gap).")
    last_close: str = Field(description="The previous session's close.")
    volume: int = Field(description="This session's volume, in units (lots).")
    currency: str
    at: datetime = Field(description="When the quote was quoted.")

    @classmethod
    def of(cls, quote: Quote) -> QuoteResponse:
        return cls(
            symbol=quote.symbol,
            bid=money(quote.bid_minor),
            ask=money(quote.ask_minor),
            last=money(quote.last_minor),
            open=money(quote.open_minor),
            last_close=money(quote.last_close_minor),
            volume=quote.volume,
            currency=TIER_CURRENCY,
            at=quote.at,
        )


class SimulatedPriceRequest(RequestModel):
    bid: Amount
    ask: Amount
    volume: Annotated[int, Strict(), Field(ge=0, le=QUANTITY_MAX)] = SIMULATED_VOLUME_DEFAULT
    open: Amount | None = Field(
        default=None, description="This session's open; unset: the last price."
    )
    last_close: Amount | None = Field(
        default=None, description="The previous session's close; unset: the last price."
    )
    quoted_at: datetime | None = Field(
        default=None,
        description="Freeze the quote at this time (a feed that stopped); unset: the "
        "market keeps quoting it, each read stamped now.",
    )
