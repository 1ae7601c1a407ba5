"""Broker sync and guards: an account's reconciliation with the broker, its live
positions with equity and drawdown, the guards' status, and a manual close.

See docs/rules.md#position-sync-and-guards.

The last sync is the broker sync's own record (`broker_sync_status`,
overwritten by every sync); divergences, alerts and the guards' levels come
from the `guards` view, caught up to the caller's writes first as every view
read is. Live positions are asked of the broker now: when it does not answer,
503 `broker_unavailable`, never stale figures passed off as live.

A user reads only their own funded accounts (another owner's answers 404,
like an unknown id); the guards' status is for operators; closing a
position by hand is for the platform (admins and services), with a reason
recorded on the account's guard, and asking again never closes twice.

Money is a decimal string in major units of the tier currency; ratios are
exact fractions as text ("3/20" is 15 %), the drawdown also as a decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from fastapi import APIRouter, Response

from application.ports.broker import BrokerError, BrokerPosition, UnknownAccount
from domain.account_guard import (
    VOLUME_TOLERANCE,
    DrawdownLevel,
    GuardThresholds,
    drawdown_from_peak,
    drawdown_level,
)
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY
from interface.adapters.persistence.broker_sync_status import read_sync_status
from interface.api.consistency import MinPosition, tell_position, views_caught_up
from interface.api.deps import (
    LedgerDep,
    Operator,
    OwnedFundedAccountDetailUnderAccounts,
    Platform,
    Reader,
)
from interface.api.query_types import PositionId
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.common import money, ratio_text
from interface.api.schemas.guards import (
    DIVERGENCES_LISTED_MAX,
    MARKED_LISTED_MAX,
    PENDING_ALERTS_LISTED_MAX,
    AccountReconciliationResponse,
    AlertResponse,
    ClosedPositionResponse,
    ClosePositionRequest,
    DivergenceResponse,
    GuardsStatusResponse,
    LastSyncResponse,
    LivePositionResponse,
    LivePositionsResponse,
    MarkedPositionResponse,
    ThresholdsResponse,
    decimal_text,
)
from interface.bootstrap import Ledger
from projections import funded_accounts, guards
from projections.funded_accounts import FundedAccountRow
from projections.guards import AlertRow, GuardRow
from projections.view import Cursor

router = APIRouter(tags=["guards"])

VIEWS: Final = (funded_accounts.NAME, guards.NAME)


def _sync_totals(cursor: Cursor) -> tuple[datetime | None, int, int]:
    """(the latest sync, accounts synced, accounts failing) over every account."""
    cursor.execute(
        "SELECT max(synced_at), count(synced_at), count(*) FILTER (WHERE failed_attempts > 0)"
        " FROM broker_sync_status"
    )
    found = cursor.fetchone()
    assert found is not None
    return found[0], int(found[1]), int(found[2])


@dataclass(frozen=True, slots=True)
class _Live:
    """An account's figures and open positions as the broker gave them."""

    source: Literal["broker", "ledger"]
    equity_minor: int
    cash_minor: int
    unrealized_pnl_minor: int
    at: datetime
    positions: tuple[BrokerPosition, ...]


def _live(ledger: Ledger, account: FundedAccountRow) -> _Live:
    account_id = account.funded_account_id
    try:
        equity = ledger.broker.equity(account_id)
        positions = ledger.broker.open_positions(account_id)
    except UnknownAccount:
        # The broker opens an account for a funded account at its first trade.
        return _Live(
            "ledger",
            account.equity_minor,
            account.current_balance_minor,
            account.unrealized_pnl_minor,
            ledger.clock.now(),
            (),
        )
    except BrokerError as error:
        raise LedgerRefusal(
            ResultCode.BROKER_UNAVAILABLE,
            f"the broker did not answer for funded account {account_id}: {error}",
            funded_account_id=str(account_id),
        ) from error
    return _Live(
        "broker",
        equity.equity_minor,
        equity.cash_minor,
        equity.unrealized_pnl_minor,
        equity.at,
        positions,
    )


# Routes ----------------------------------------------------------------------------


@router.get(
    "/v1/accounts/{account_id}/reconciliation",
    response_model=AccountReconciliationResponse,
    responses=ERROR_RESPONSES,
)
def account_reconciliation_route(
    ledger: LedgerDep,
    principal: Reader,
    detail: OwnedFundedAccountDetailUnderAccounts,
    min_position: MinPosition = None,
) -> AccountReconciliationResponse:
    """A funded account against the broker: the last sync (null when never
    synced) and the divergences it found that are still open."""
    account_id = detail.account.funded_account_id
    views_caught_up(ledger, (guards.NAME,), min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        status = read_sync_status(reading, account_id)
        divergences = guards.open_divergences(reading, account_id, DIVERGENCES_LISTED_MAX)
        divergences_open = guards.open_divergence_count(reading, account_id)
    return AccountReconciliationResponse(
        funded_account_id=account_id,
        last_sync=None if status is None else LastSyncResponse.of(status),
        divergences=[DivergenceResponse.of(row) for row in divergences],
        divergences_open=divergences_open,
        in_agreement=status is not None
        and status.synced_at is not None
        and not status.failing
        and divergences_open == 0,
    )


@router.get(
    "/v1/accounts/{account_id}/positions",
    response_model=LivePositionsResponse,
    responses=ERROR_RESPONSES,
)
def live_positions_route(
    ledger: LedgerDep,
    principal: Reader,
    detail: OwnedFundedAccountDetailUnderAccounts,
    min_position: MinPosition = None,
) -> LivePositionsResponse:
    """A funded account's open positions as the broker holds them now, with its
    equity and drawdown from the guard's peak. The broker down: 503
    `broker_unavailable`."""
    account = detail.account
    views_caught_up(ledger, (guards.NAME,), min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        guard = guards.guard_of(reading, account.funded_account_id)
        marked = guards.marked_for_closing(reading, account.funded_account_id, MARKED_LISTED_MAX)
    return _positions_response(
        account, guard, marked, _live(ledger, account), ledger.guards.thresholds
    )


def _positions_response(
    account: FundedAccountRow,
    guard: GuardRow | None,
    marked: list[AlertRow],
    live: _Live,
    thresholds: GuardThresholds,
) -> LivePositionsResponse:
    equity = live.equity_minor
    # Before the guard's first decision its peak would start from the equity.
    peak = account.equity_minor if guard is None else guard.peak_equity_minor
    minimum = thresholds.minimum_equity_minor
    drawdown = drawdown_from_peak(peak, equity)
    marked_ids = {row.position_id for row in marked if row.position_id is not None}
    return LivePositionsResponse(
        funded_account_id=account.funded_account_id,
        currency=TIER_CURRENCY,
        at=live.at,
        equity_source=live.source,
        equity=money(equity),
        cash=money(live.cash_minor),
        unrealized_pnl=money(live.unrealized_pnl_minor),
        peak_equity=money(peak),
        drawdown=decimal_text(drawdown),
        drawdown_ratio=ratio_text(drawdown),
        minimum_equity=money(minimum),
        level=DrawdownLevel.OK if guard is None else DrawdownLevel(guard.level),
        level_now=drawdown_level(peak, equity, thresholds),
        liquidation_due_at=None if guard is None else guard.liquidation_due_at,
        positions=[LivePositionResponse.of(held, marked_ids) for held in live.positions],
        marked_for_closing=[MarkedPositionResponse.of(row) for row in marked],
    )


@router.get("/v1/guards", response_model=GuardsStatusResponse, responses=ERROR_RESPONSES)
def guards_status_route(
    ledger: LedgerDep, _: Operator, min_position: MinPosition = None
) -> GuardsStatusResponse:
    """The guards at a glance: whether this server runs them, the last sync and
    decision, how many accounts sync or fail, the thresholds, and the alerts
    waiting (drawdown warnings, liquidations scheduled, positions marked)."""
    views_caught_up(ledger, (guards.NAME,), min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        last_synced_at, synced, failing = _sync_totals(reading)
        last_decision_at = guards.last_decision_time(reading)
        alerts = guards.pending_alerts(reading, PENDING_ALERTS_LISTED_MAX)
        alerts_total = guards.pending_alert_count(reading)
    # The worker is wired by bootstrap; a ledger built without one runs none.
    worker = getattr(ledger, "guard_worker", None)
    settings = ledger.settings
    thresholds = ledger.guards.thresholds
    return GuardsStatusResponse(
        worker_running=bool(getattr(worker, "is_running", False)),
        last_synced_at=last_synced_at,
        last_decision_at=last_decision_at,
        accounts_synced=synced,
        accounts_failing=failing,
        thresholds=ThresholdsResponse(
            drawdown_warn_from=ratio_text(thresholds.drawdown_warn_from),
            drawdown_liquidate_above=ratio_text(thresholds.drawdown_liquidate_above),
            minimum_equity=money(thresholds.minimum_equity_minor),
            gap_above=ratio_text(thresholds.gap_above),
            spread_above=ratio_text(thresholds.spread_above),
            liquidity_check_enabled=thresholds.liquidity_check_enabled,
            liquidity_volume_lots_min=thresholds.liquidity_volume_lots_min,
            volume_tolerance=ratio_text(VOLUME_TOLERANCE),
            pre_liquidation_warning_s=settings.pre_liquidation_warning_s,
            sync_interval_s=settings.broker_sync_interval_s,
        ),
        pending_alerts=[AlertResponse.of(pending) for pending in alerts],
        pending_alerts_total=alerts_total,
    )


@router.post(
    "/v1/positions/{position_id}/close",
    response_model=ClosedPositionResponse,
    responses=ERROR_RESPONSES,
)
def close_position_route(
    position_id: PositionId,
    body: ClosePositionRequest,
    ledger: LedgerDep,
    principal: Platform,
    response: Response,
) -> ClosedPositionResponse:
    """Close a position by hand, whichever account holds it, at the market; its
    price and realized P&L are recorded through the ledger and on the
    account's guard with the reason. Asked again, it answers with the first
    close (`closed_now` false) and closes nothing. Unknown: 404
    `position_not_found`."""
    funded_account_id = _account_of_position(ledger, position_id)
    outcome = ledger.guards.close_position(
        funded_account_id, position_id, reason=body.reason, actor=principal.actor
    )
    tell_position(response, ledger.writer.last_position)
    return ClosedPositionResponse(
        funded_account_id=outcome.funded_account_id,
        position_id=outcome.position_id,
        price=money(outcome.price_minor),
        realized_pnl=money(outcome.realized_pnl_minor),
        currency=TIER_CURRENCY,
        closed_now=outcome.closed_now,
    )


def _account_of_position(ledger: Ledger, position_id: str) -> UUID:
    """The account holding the position open, or that closed it through a guard."""
    views_caught_up(ledger, VIEWS, None)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        holder = funded_accounts.account_of_open_position(reading, position_id)
        if holder is None:
            closed = guards.close_of(reading, position_id)
            holder = None if closed is None else closed[0]
    if holder is None:
        raise LedgerRefusal(
            ResultCode.POSITION_NOT_FOUND,
            f"no position {position_id} is open or was closed through a guard",
            position_id=position_id,
        )
    return holder
