"""Bodies of the simulation routes: the service's clock, and trades at the
simulated broker that the ledger never hears of."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from application.ports.broker import Fill
from interface.api.schemas.common import RequestModel
from interface.api.schemas.trading import QUANTITY_MAX, Symbol

# A year at most per call: enough for any timer (the longest is days), and an
# operator's slip of a digit is refused rather than jumping decades.
CLOCK_ADVANCE_MAX_S: Final[int] = 366 * 24 * 3600


CLIENT_ORDER_ID_LENGTH_MAX: Final[int] = 128


ClientOrderId = Annotated[
    str, Strict(), Field(min_length=1, max_length=CLIENT_ORDER_ID_LENGTH_MAX, pattern=r"^[!-~]+$")
]


class ClockResponse(BaseModel):
    now: datetime
    settable: bool


class ClockAdvanceRequest(RequestModel):
    # Forward only: timers already recorded never see time run back.
    seconds: Annotated[int, Strict(), Field(ge=1, le=CLOCK_ADVANCE_MAX_S)]


class StrayPositionRequest(RequestModel):
    symbol: Symbol
    side: Literal["long", "short"]
    quantity: Annotated[int, Strict(), Field(ge=1, le=QUANTITY_MAX)]
    client_order_id: ClientOrderId


class StrayCloseRequest(RequestModel):
    client_order_id: ClientOrderId


class StrayFillResponse(BaseModel):
    position_id: str
    account_id: UUID
    symbol: str
    side: str
    quantity: int
    kind: str
    at: datetime

    @classmethod
    def of(cls, fill: Fill) -> StrayFillResponse:
        return cls(
            position_id=fill.position_id,
            account_id=fill.account_id,
            symbol=fill.symbol,
            side=fill.side.value,
            quantity=fill.quantity,
            kind=fill.kind.value,
            at=fill.at,
        )
