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

from typing import Annotated
from uuid import uuid4, uuid5

from fastapi import APIRouter, Depends, Header, Path

from application.funded_accounts import FundedAccountsService
from domain.money import parse_amount
from domain.positions import PositionSide
from domain.tiers import TIER_CURRENCY
from interface.api.deps import (
    Admin,
    LedgerDep,
    Mover,
    OwnedFundedAccount,
    Reader,
    SimulatedBrokerDep,
)
from interface.api.errors import ApiError
from interface.api.query_types import PositionId
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.common import IdempotencyKey
from interface.api.schemas.trading import (
    SYMBOL_PATTERN,
    OpenPositionRequest,
    PositionResponse,
    QuoteResponse,
    SimulatedPriceRequest,
)

router = APIRouter(tags=["trading"])


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
    position_id: PositionId,
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
    return QuoteResponse.of(quote)


@router.put(
    "/v1/admin/simulated-market/{symbol}",
    response_model=QuoteResponse,
    responses=ERROR_RESPONSES,
)
def set_simulated_price_route(
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN)],
    body: SimulatedPriceRequest,
    _: Admin,
    broker: SimulatedBrokerDep,
) -> QuoteResponse:
    """Fix a symbol's quote on the simulated broker (demo and tests). 404 when a
    real broker is wired."""
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
    return QuoteResponse.of(quote)


def _optional_amount(text: str | None) -> int | None:
    return None if text is None else parse_amount(text, TIER_CURRENCY)
