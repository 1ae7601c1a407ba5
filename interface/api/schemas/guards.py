"""The guards API's request and response bodies (interface/api/routes/guards.py)."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from application.ports.broker import BrokerPosition
from domain.account_guard import (
    REASON_LENGTH_MAX,
    DivergenceKind,
    DrawdownLevel,
)
from domain.tiers import TIER_CURRENCY
from interface.adapters.persistence.broker_sync_status import SyncStatus
from interface.api.schemas.common import (
    PLAIN_TEXT_PATTERN,
    Money,
    Ratio,
    RequestModel,
    money,
    ratio_text,
)
from projections.guards import AlertKind, AlertRow, DivergenceRow, PendingAlert

# Rows listed in one answer; the totals say how many there are.
DIVERGENCES_LISTED_MAX: Final[int] = 200
MARKED_LISTED_MAX: Final[int] = 200
PENDING_ALERTS_LISTED_MAX: Final[int] = 200
# Digits after the point of the drawdown's decimal form (cut, never rounded
# up: a drawdown just under a threshold never reads as at it).
DRAWDOWN_DECIMAL_PLACES: Final[int] = 6


def money_text(minor: int | None) -> str | None:
    return None if minor is None else money(minor)


def decimal_text(ratio: Fraction, places: int = DRAWDOWN_DECIMAL_PLACES) -> str:
    """A non-negative ratio as a decimal string, cut after `places` digits."""
    if ratio < 0:
        raise ValueError("a drawdown is never negative")
    scaled = ratio.numerator * 10**places // ratio.denominator
    whole, fraction = divmod(scaled, 10**places)
    return f"{whole}.{fraction:0{places}d}"


# Bodies ----------------------------------------------------------------------------


class LastSyncResponse(BaseModel):
    synced_at: datetime | None = Field(description="The last sync the broker answered; null: none.")
    equity: Money | None
    cash: Money | None
    unrealized_pnl: Money | None
    currency: str
    attempted_at: datetime = Field(description="The last attempt, answered or not.")
    failed_attempts: int = Field(description="Failures since the last answered sync.")
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="While failing: the next retry.")

    @classmethod
    def of(cls, status: SyncStatus) -> LastSyncResponse:
        return cls(
            synced_at=status.synced_at,
            equity=money_text(status.equity_minor),
            cash=money_text(status.cash_minor),
            unrealized_pnl=money_text(status.unrealized_pnl_minor),
            currency=TIER_CURRENCY,
            attempted_at=status.attempted_at,
            failed_attempts=status.failed_attempts,
            last_error=status.last_error,
            next_attempt_at=status.next_attempt_at,
        )


class DivergenceResponse(BaseModel):
    fingerprint: str = Field(description="kind:position_id; the same divergence in a later sync.")
    kind: DivergenceKind
    position_id: str
    symbol: str
    ledger_quantity: int | None = Field(description="null: the ledger holds no such position.")
    broker_quantity: int | None = Field(description="null: the broker holds no such position.")
    ledger_entry_price: Money | None
    broker_entry_price: Money | None
    amount: Money = Field(description="The value that differs: |broker - ledger| at entry.")
    found_at: datetime

    @classmethod
    def of(cls, row: DivergenceRow) -> DivergenceResponse:
        return cls(
            fingerprint=row.fingerprint,
            kind=DivergenceKind(row.kind),
            position_id=row.position_id,
            symbol=row.symbol,
            ledger_quantity=row.ledger_quantity,
            broker_quantity=row.broker_quantity,
            ledger_entry_price=money_text(row.ledger_entry_minor),
            broker_entry_price=money_text(row.broker_entry_minor),
            amount=money(row.amount_minor),
            found_at=row.found_at,
        )


class AccountReconciliationResponse(BaseModel):
    funded_account_id: UUID
    last_sync: LastSyncResponse | None = Field(description="null: never synced.")
    divergences: list[DivergenceResponse] = Field(
        description=f"Open divergences, oldest first (at most {DIVERGENCES_LISTED_MAX})."
    )
    divergences_open: int
    in_agreement: bool = Field(
        description="Synced, the last sync answered, and no divergence is open."
    )


class MarkedPositionResponse(BaseModel):
    position_id: str
    reasons: list[str] = Field(description="The market guard's failures: gap, spread, volume.")
    marked_at: datetime

    @classmethod
    def of(cls, row: AlertRow) -> MarkedPositionResponse:
        return cls(
            position_id=row.position_id or "",
            reasons=(row.reasons or "").split(",") if row.reasons else [],
            marked_at=row.raised_at,
        )


class LivePositionResponse(BaseModel):
    position_id: str
    symbol: str
    side: str
    quantity: int
    entry_price: Money
    current_price: Money = Field(description="Its mark: the bid for a long, the ask for a short.")
    market_value: Money
    unrealized_pnl: Money
    opened_at: datetime
    marked_for_closing: bool

    @classmethod
    def of(cls, held: BrokerPosition, marked: set[str]) -> LivePositionResponse:
        return cls(
            position_id=held.position_id,
            symbol=held.symbol,
            side=held.side.value,
            quantity=held.quantity,
            entry_price=money(held.entry_price_minor),
            current_price=money(held.current_price_minor),
            market_value=money(held.market_value_minor),
            unrealized_pnl=money(held.unrealized_pnl_minor),
            opened_at=held.opened_at,
            marked_for_closing=held.position_id in marked,
        )


class LivePositionsResponse(BaseModel):
    funded_account_id: UUID
    currency: str
    at: datetime = Field(description="When the broker gave these figures.")
    equity_source: Literal["broker", "ledger"] = Field(
        description="broker: live; ledger: the broker holds no account for it yet "
        "(it never traded), so the ledger's figures."
    )
    equity: Money
    cash: Money
    unrealized_pnl: Money
    peak_equity: Money = Field(
        description="The guard's recorded peak; before its first decision, the account's equity."
    )
    drawdown: str = Field(
        description=f"(peak - equity) / peak as a decimal, cut after "
        f"{DRAWDOWN_DECIMAL_PLACES} digits.",
        examples=["0.153000"],
    )
    drawdown_ratio: Ratio
    minimum_equity: Money = Field(description="Below it the account is liquidated.")
    level: DrawdownLevel = Field(description="The level the guard last recorded.")
    level_now: DrawdownLevel = Field(description="The level these figures are at.")
    liquidation_due_at: datetime | None
    positions: list[LivePositionResponse]
    marked_for_closing: list[MarkedPositionResponse] = Field(
        description="Positions the market guard marked and nobody has closed yet."
    )


class ThresholdsResponse(BaseModel):
    drawdown_warn_from: Ratio
    drawdown_liquidate_above: Ratio = Field(description="Liquidated over it, not at it.")
    minimum_equity: Money = Field(description="Liquidated below it, whatever the drawdown.")
    gap_above: Ratio
    spread_above: Ratio
    liquidity_check_enabled: bool
    liquidity_volume_lots_min: int = Field(description="A session volume under it is illiquid.")
    volume_tolerance: Ratio = Field(description="Of the sync's matching of positions.")
    pre_liquidation_warning_s: float = Field(
        description="The owner is warned this long before the positions are closed."
    )
    sync_interval_s: float


class AlertResponse(BaseModel):
    funded_account_id: UUID
    kind: AlertKind
    position_id: str | None
    reasons: list[str]
    equity: Money | None
    peak_equity: Money | None
    drawdown_ratio: Ratio | None
    positions: list[str] = Field(description="The positions the alert would close.")
    due_at: datetime | None = Field(
        description="A liquidation's time, after the pre-liquidation warning."
    )
    raised_at: datetime

    @classmethod
    def of(cls, pending: PendingAlert) -> AlertResponse:
        alert = pending.alert
        return cls(
            funded_account_id=pending.funded_account_id,
            kind=AlertKind(alert.kind),
            position_id=alert.position_id,
            reasons=alert.reasons.split(",") if alert.reasons else [],
            equity=money_text(alert.equity_minor),
            peak_equity=money_text(alert.peak_equity_minor),
            drawdown_ratio=None if alert.drawdown is None else ratio_text(Fraction(alert.drawdown)),
            positions=list(alert.positions),
            due_at=alert.due_at,
            raised_at=alert.raised_at,
        )


class GuardsStatusResponse(BaseModel):
    worker_running: bool = Field(description="Whether this server syncs and guards accounts.")
    last_synced_at: datetime | None = Field(description="The latest sync of any account.")
    last_decision_at: datetime | None = Field(description="The latest guard decision.")
    accounts_synced: int = Field(description="Accounts the broker has answered a sync for.")
    accounts_failing: int = Field(description="Accounts whose last sync attempt failed.")
    thresholds: ThresholdsResponse
    pending_alerts: list[AlertResponse] = Field(
        description=f"Newest first (at most {PENDING_ALERTS_LISTED_MAX})."
    )
    pending_alerts_total: int


class ClosePositionRequest(RequestModel):
    reason: Annotated[str, Strict()] = Field(
        min_length=1,
        max_length=REASON_LENGTH_MAX,
        pattern=PLAIN_TEXT_PATTERN,
        description="Why it is closed by hand; recorded on the account's guard.",
    )


class ClosedPositionResponse(BaseModel):
    funded_account_id: UUID
    position_id: str
    price: Money = Field(description="The close's fill price.")
    realized_pnl: Money
    currency: str
    closed_now: bool = Field(description="false: it was closed before; this is that close.")


# Reading ---------------------------------------------------------------------------
