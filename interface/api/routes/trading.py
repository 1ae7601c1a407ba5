"""Trading on a funded account: open and close positions through the broker,
read quotes, and (on the simulated broker only) set its prices.

Prices and P&L are decimal strings in major units of the tier currency, as
every amount in this API; a price is per one unit of quantity. Positions open
at the ask (long) or bid (short) and close at the other side; the broker's
fill is what the ledger records.

A retried open with the same `Idempotency-Key` reaches the broker with the
same client order id, so the broker answers with its first fill and never
trades twice, even if the first request's response was lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID, uuid4, uuid5

from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel, ConfigDict, Field, Strict

from application.funded_accounts import FundedAccountsService, PositionChange
from application.ports.broker import Quote
from domain.money import format_amount, parse_amount
from domain.positions import PositionSide
from domain.tiers import TIER_CURRENCY
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.api.deps import Admin, LedgerDep, Mover, OwnedFundedAccount, Reader
from interface.api.errors import ApiError
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.ledger import Amount, IdempotencyKey
from interface.bootstrap import Ledger

router = APIRouter(tags=["trading"])

SYMBOL_PATTERN: Final[str] = r"^[A-Z0-9.\-]{1,16}$"
QUANTITY_MAX: Final[int] = 1_000_000_000
POSITION_ID_LENGTH_MAX: Final[int] = 128
# A simulated market's session volume when none is given.
SIMULATED_VOLUME_DEFAULT: Final[int] = 1_000_000

Symbol = Annotated[
    str, Strict(), Field(pattern=SYMBOL_PATTERN, examples=["ACME"], description="Ticker")
]


class OpenPositionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
            price=format_amount(fill.price_minor, TIER_CURRENCY),
            currency=TIER_CURRENCY,
            realized_pnl=format_amount(fill.realized_pnl_minor, TIER_CURRENCY),
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


class SimulatedPriceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


def _funded_accounts(ledger: LedgerDep) -> FundedAccountsService:
    return ledger.funded_accounts


FundedAccountsDep = Annotated[FundedAccountsService, Depends(_funded_accounts)]


@router.post(
    "/v1/funded-accounts/{funded_account_id}/positions",
    response_model=PositionResponse,
    status_code=201,
    responses=ERROR_RESPONSES,
)
def open_position_route(
    body: OpenPositionRequest,
    service: FundedAccountsDep,
    principal: Mover,
    account: OwnedFundedAccount,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> PositionResponse:
    """Open a position at the market. Refused before the broker trades when it
    would pass the tier's position count or share, or the 5 % risk limit."""
    funded_account_id = account.id
    order_key = idempotency_key or str(uuid4())
    change = service.open_position(
        funded_account_id,
        body.symbol,
        PositionSide(body.side),
        body.quantity,
        client_order_id=f"open-{uuid5(funded_account_id, order_key)}",
    )
    return PositionResponse.of(change)


@router.post(
    "/v1/funded-accounts/{funded_account_id}/positions/{position_id}/close",
    response_model=PositionResponse,
    responses=ERROR_RESPONSES,
)
def close_position_route(
    position_id: Annotated[str, Path(min_length=1, max_length=POSITION_ID_LENGTH_MAX)],
    service: FundedAccountsDep,
    principal: Mover,
    account: OwnedFundedAccount,
) -> PositionResponse:
    """Close a whole position at the market; its realized P&L is posted to the
    account's ledger balance in the same write."""
    return PositionResponse.of(service.close_position(account.id, position_id))


@router.get("/v1/market/quotes/{symbol}", response_model=QuoteResponse, responses=ERROR_RESPONSES)
def quote_route(
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN)], ledger: LedgerDep, _: Reader
) -> QuoteResponse:
    """The broker's prices for a symbol now."""
    quote = ledger.funded_accounts.quote(symbol)
    return _quote_response(quote)


@router.put(
    "/v1/admin/simulated-market/{symbol}",
    response_model=QuoteResponse,
    responses=ERROR_RESPONSES,
)
def set_simulated_price_route(
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN)],
    body: SimulatedPriceRequest,
    ledger: LedgerDep,
    _: Admin,
) -> QuoteResponse:
    """Fix a symbol's quote on the simulated broker (demo and tests). 404 when a
    real broker is wired."""
    broker = _simulated(ledger)
    bid, ask = parse_amount(body.bid, TIER_CURRENCY), parse_amount(body.ask, TIER_CURRENCY)
    if bid > ask:
        raise ApiError(422, "invalid_request", "bid must not be above ask")
    if body.quoted_at is not None and body.quoted_at.tzinfo is None:
        raise ApiError(422, "invalid_request", "quoted_at must carry a time zone")
    quote = broker.set_price(
        symbol,
        bid_minor=bid,
        ask_minor=ask,
        open_minor=_optional_amount(body.open),
        last_close_minor=_optional_amount(body.last_close),
        volume=body.volume,
        quoted_at=body.quoted_at,
    )
    return _quote_response(quote)


def _optional_amount(text: str | None) -> int | None:
    return None if text is None else parse_amount(text, TIER_CURRENCY)


def _simulated(ledger: Ledger) -> SimulatedBroker:
    if not isinstance(ledger.broker, SimulatedBroker):
        raise ApiError(404, "simulated_market_unavailable", "the broker is not the simulated one")
    return ledger.broker


def _quote_response(quote: Quote) -> QuoteResponse:
    return QuoteResponse(
        symbol=quote.symbol,
        bid=format_amount(quote.bid_minor, TIER_CURRENCY),
        ask=format_amount(quote.ask_minor, TIER_CURRENCY),
        last=format_amount(quote.last_minor, TIER_CURRENCY),
        open=format_amount(quote.open_minor, TIER_CURRENCY),
        last_close=format_amount(quote.last_close_minor, TIER_CURRENCY),
        volume=quote.volume,
        currency=TIER_CURRENCY,
        at=quote.at,
    )
