"""Admin routes that drive the simulations of a test or demo service: its
clock, and trades the ledger never hears of at the simulated broker.

With LEDGER_CLOCK_SETTABLE (refused in production) the service's one clock,
which every timer reads (closures, payouts, guards), moves only when an admin
moves it here: a test drives a served closure past its three-business-day
settlement timeout in one call, and the closure worker does the rest. 404
`settable_clock_unavailable` on a service on the system clock.

A stray position opened here is a trade at the broker the ledger never
recorded (a broker that will not settle, say): what leaves a closure stuck
in settling until it is closed here and an admin resumes the closure. 404
`simulated_market_unavailable` when a real broker is wired.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from fastapi import APIRouter

from application.clock import SettableClock
from application.ports.broker import BrokerError
from domain.positions import PositionSide
from interface.api.deps import Admin, LedgerDep, SimulatedBrokerDep
from interface.api.errors import ApiError
from interface.api.query_types import PositionId
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.simulation import (
    ClockAdvanceRequest,
    ClockResponse,
    StrayCloseRequest,
    StrayFillResponse,
    StrayPositionRequest,
)

router = APIRouter(tags=["simulation"])


@router.get("/v1/admin/clock", response_model=ClockResponse, responses=ERROR_RESPONSES)
def clock_route(ledger: LedgerDep, _: Admin) -> ClockResponse:
    """The service's time, and whether an admin can move it."""
    return ClockResponse(now=ledger.clock.now(), settable=isinstance(ledger.clock, SettableClock))


@router.post("/v1/admin/clock/advance", response_model=ClockResponse, responses=ERROR_RESPONSES)
def advance_clock_route(body: ClockAdvanceRequest, ledger: LedgerDep, _: Admin) -> ClockResponse:
    """Move the service's settable clock forward; the workers act on their
    next pass as of the new time."""
    clock = ledger.clock
    if not isinstance(clock, SettableClock):
        raise ApiError(404, "settable_clock_unavailable", "the service runs on the system clock")
    clock.advance(timedelta(seconds=body.seconds))
    return ClockResponse(now=clock.now(), settable=True)


@router.post(
    "/v1/admin/simulated-broker/accounts/{account_id}/stray-positions",
    response_model=StrayFillResponse,
    responses=ERROR_RESPONSES,
)
def open_stray_position_route(
    account_id: UUID, body: StrayPositionRequest, _: Admin, broker: SimulatedBrokerDep
) -> StrayFillResponse:
    """Open a position at the simulated broker that the ledger never records."""
    try:
        fill = broker.open_position(
            account_id, body.symbol, PositionSide(body.side), body.quantity, body.client_order_id
        )
    except BrokerError as error:
        raise ApiError(409, "broker_refused", str(error)) from error
    return StrayFillResponse.of(fill)


@router.post(
    "/v1/admin/simulated-broker/stray-positions/{position_id}/close",
    response_model=StrayFillResponse,
    responses=ERROR_RESPONSES,
)
def close_stray_position_route(
    position_id: PositionId,
    body: StrayCloseRequest,
    _: Admin,
    broker: SimulatedBrokerDep,
) -> StrayFillResponse:
    """Close a position at the simulated broker without the ledger hearing of it."""
    try:
        fill = broker.close_position(position_id, body.client_order_id)
    except BrokerError as error:
        raise ApiError(409, "broker_refused", str(error)) from error
    return StrayFillResponse.of(fill)
