"""Guards of a funded account: broker sync, drawdown from peak equity, market.

See docs/rules.md#position-sync-and-guards.

Pure rules first (each threshold exact, edges documented), then the aggregate
that records every guard decision with its inputs, so an auditor can replay why
a warning was sent or a position closed.

Numbers: money is integer minor units; ratios are exact Fractions.

Drawdown from peak equity = (peak - equity) / peak = 1 - equity / peak, peak
the highest equity seen (raised whenever equity passes it). Levels, edges
exact, with the defaults of `GuardThresholds` (each a setting):

    OK          drawdown <  15 %            and equity >= minimum
    WARN        15 % <= drawdown <= 20 %    and equity >= minimum
    LIQUIDATE   drawdown >  20 %            or  equity <  minimum

so exactly 20 % warns and does not liquidate ("over 20 %"). The minimum is an
absolute equity, 100.00 in the account's currency by default.

Market guard, for an open position and its symbol's quote now; a position
fails when any holds:

    gap      |open - last close| / last close  >  5 %   (up or down)
    spread   (ask - bid) / bid                 >  0.5 %
    volume   the session's volume < 10 lots, or < the position's quantity
             (a lot is one unit of quantity; switched off by a setting)

Sync: the broker's positions against the ledger's, by position id, with a
5 % volume tolerance: |broker - ledger| / ledger <= 5 % is a match. Beyond
it, less at the broker is a partial fill and more is an extra (volume);
another entry price (same volume) is slippage; a position only one side
holds is missing (at the broker) or extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.field_checks import require_aware, require_text

GUARD_NAMESPACE: Final = UUID("3c8e1f4a-7b2d-4e90-a6c5-9d1f0b7e2a43")

DRAWDOWN_WARN_FROM: Final[Fraction] = Fraction(15, 100)
# Liquidate when the drawdown is over this (exactly 20 % does not).
DRAWDOWN_LIQUIDATE_ABOVE: Final[Fraction] = Fraction(20, 100)
# Below this equity the account is liquidated whatever its drawdown: 100.00
# in the account's currency (USD cents for funded accounts).
MINIMUM_EQUITY_MINOR_DEFAULT: Final[int] = 100_00
# The owner is warned this long before a liquidation closes the positions.
PRE_LIQUIDATION_WARNING_DEFAULT: Final[timedelta] = timedelta(seconds=10)
GAP_ABOVE: Final[Fraction] = Fraction(5, 100)
SPREAD_ABOVE: Final[Fraction] = Fraction(5, 1000)
# A session volume under this many lots (units of quantity) is illiquid.
LIQUIDITY_VOLUME_LOTS_MIN_DEFAULT: Final[int] = 10
VOLUME_TOLERANCE: Final[Fraction] = Fraction(5, 100)
ACTOR_LENGTH_MAX: Final[int] = 128
REASON_LENGTH_MAX: Final[int] = 500


def guard_id_for(funded_account_id: UUID) -> UUID:
    return uuid5(GUARD_NAMESPACE, str(funded_account_id))


# Drawdown --------------------------------------------------------------------------


class DrawdownLevel(StrEnum):
    OK = "ok"
    WARN = "warn"
    LIQUIDATE = "liquidate"


def drawdown_from_peak(peak_equity_minor: int, equity_minor: int) -> Fraction:
    """(peak - equity) / peak, never below 0; a peak of 0 or less is no peak."""
    if peak_equity_minor <= 0:
        return Fraction(0)
    return max(Fraction(peak_equity_minor - equity_minor, peak_equity_minor), Fraction(0))


@dataclass(frozen=True, slots=True)
class GuardThresholds:
    """The guards' figures, each a setting (docs/rules.md#position-sync-and-guards;
    interface/settings.py names them). The defaults are the specification's."""

    drawdown_warn_from: Fraction = DRAWDOWN_WARN_FROM
    drawdown_liquidate_above: Fraction = DRAWDOWN_LIQUIDATE_ABOVE
    minimum_equity_minor: int = MINIMUM_EQUITY_MINOR_DEFAULT
    pre_liquidation_warning: timedelta = PRE_LIQUIDATION_WARNING_DEFAULT
    gap_above: Fraction = GAP_ABOVE
    spread_above: Fraction = SPREAD_ABOVE
    liquidity_volume_lots_min: int = LIQUIDITY_VOLUME_LOTS_MIN_DEFAULT
    liquidity_check_enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("drawdown_warn_from", "drawdown_liquidate_above", "gap_above", "spread_above"):
            if not isinstance(getattr(self, name), Fraction):
                raise TypeError(f"{name} must be an exact Fraction")
        if not 0 < self.drawdown_warn_from <= self.drawdown_liquidate_above < 1:
            raise ValueError("need 0 < drawdown_warn_from <= drawdown_liquidate_above < 1")
        if self.minimum_equity_minor < 0 or self.liquidity_volume_lots_min < 0:
            raise ValueError("minimum equity and minimum lots must not be negative")
        if self.pre_liquidation_warning < timedelta(0):
            raise ValueError("the pre-liquidation warning must not be negative")


DEFAULT_THRESHOLDS: Final[GuardThresholds] = GuardThresholds()


def drawdown_level(
    peak_equity_minor: int,
    equity_minor: int,
    thresholds: GuardThresholds = DEFAULT_THRESHOLDS,
) -> DrawdownLevel:
    """LIQUIDATE over the maximum drawdown or under the minimum equity, WARN from
    the alert threshold, OK below it."""
    drawdown = drawdown_from_peak(peak_equity_minor, equity_minor)
    if (
        drawdown > thresholds.drawdown_liquidate_above
        or equity_minor < thresholds.minimum_equity_minor
    ):
        return DrawdownLevel.LIQUIDATE
    if drawdown >= thresholds.drawdown_warn_from:
        return DrawdownLevel.WARN
    return DrawdownLevel.OK


# Market ------------------------------------------------------------------------------


class MarketFailure(StrEnum):
    GAP = "gap"
    SPREAD = "spread"
    VOLUME = "volume"


def price_gap(open_minor: int, last_close_minor: int) -> Fraction:
    """|open - last close| / last close, exact; 0 without a last close."""
    if last_close_minor <= 0:
        return Fraction(0)
    return Fraction(abs(open_minor - last_close_minor), last_close_minor)


def market_failures(
    *,
    open_minor: int,
    last_close_minor: int,
    bid_minor: int,
    ask_minor: int,
    volume: int,
    quantity: int,
    thresholds: GuardThresholds = DEFAULT_THRESHOLDS,
) -> list[MarketFailure]:
    """The market guard's failures for a position of `quantity` (none: it passes)."""
    failures: list[MarketFailure] = []
    if price_gap(open_minor, last_close_minor) > thresholds.gap_above:
        failures.append(MarketFailure.GAP)
    if bid_minor > 0 and Fraction(ask_minor - bid_minor, bid_minor) > thresholds.spread_above:
        failures.append(MarketFailure.SPREAD)
    if thresholds.liquidity_check_enabled and (
        volume < thresholds.liquidity_volume_lots_min or volume < quantity
    ):
        failures.append(MarketFailure.VOLUME)
    return failures


# Sync ----------------------------------------------------------------------------------


class DivergenceKind(StrEnum):
    SLIPPAGE = "slippage"
    PARTIAL_FILL = "partial_fill"
    MISSING = "missing"
    EXTRA = "extra"


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A position as one side holds it."""

    position_id: str
    symbol: str
    side: str
    quantity: int
    entry_price_minor: int


@dataclass(frozen=True, slots=True)
class Divergence:
    kind: DivergenceKind
    position_id: str
    symbol: str
    ledger_quantity: int | None
    broker_quantity: int | None
    ledger_entry_minor: int | None
    broker_entry_minor: int | None

    @property
    def fingerprint(self) -> str:
        return f"{self.kind.value}:{self.position_id}"

    @property
    def amount_minor(self) -> int:
        """The money the divergence is about: the value that differs."""
        ledger = (self.ledger_quantity or 0) * (self.ledger_entry_minor or 0)
        broker = (self.broker_quantity or 0) * (self.broker_entry_minor or 0)
        return abs(broker - ledger)


def within_volume_tolerance(ledger_quantity: int, broker_quantity: int) -> bool:
    return Fraction(abs(broker_quantity - ledger_quantity), ledger_quantity) <= VOLUME_TOLERANCE


def match_positions(
    ledger: Sequence[HeldPosition], broker: Sequence[HeldPosition]
) -> list[Divergence]:
    """What differs between the two sides, in ledger order then broker order."""
    at_broker = {held.position_id: held for held in broker}
    in_ledger = {held.position_id for held in ledger}
    found: list[Divergence] = []
    for mine in ledger:
        theirs = at_broker.get(mine.position_id)
        if theirs is None:
            found.append(_divergence(DivergenceKind.MISSING, mine, None))
        elif not within_volume_tolerance(mine.quantity, theirs.quantity):
            kind = (
                DivergenceKind.PARTIAL_FILL
                if theirs.quantity < mine.quantity
                else DivergenceKind.EXTRA
            )
            found.append(_divergence(kind, mine, theirs))
        elif theirs.entry_price_minor != mine.entry_price_minor or theirs.side != mine.side:
            found.append(_divergence(DivergenceKind.SLIPPAGE, mine, theirs))
    for theirs in broker:
        if theirs.position_id not in in_ledger:
            found.append(_divergence(DivergenceKind.EXTRA, None, theirs))
    return found


def _divergence(
    kind: DivergenceKind, mine: HeldPosition | None, theirs: HeldPosition | None
) -> Divergence:
    either = mine or theirs
    assert either is not None
    return Divergence(
        kind=kind,
        position_id=either.position_id,
        symbol=either.symbol,
        ledger_quantity=None if mine is None else mine.quantity,
        broker_quantity=None if theirs is None else theirs.quantity,
        ledger_entry_minor=None if mine is None else mine.entry_price_minor,
        broker_entry_minor=None if theirs is None else theirs.entry_price_minor,
    )


# The aggregate -------------------------------------------------------------------------


class AccountGuard(Aggregate):
    """One per funded account (`guard_id_for`): what the guards decided, with
    the inputs of each decision, and the state the next decision starts from
    (the recorded peak, an alert under way, open divergences)."""

    @classmethod
    def start(
        cls, *, funded_account_id: UUID, peak_equity_minor: int, at: datetime
    ) -> AccountGuard:
        return cls(
            id=guard_id_for(funded_account_id),
            funded_account_id=str(funded_account_id),
            peak_equity_minor=peak_equity_minor,
            at=require_aware("at", at),
        )

    @event("Started")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        funded_account_id: str,
        peak_equity_minor: int,
        at: datetime,
    ) -> None:
        self._funded_account_id = funded_account_id
        self.peak_equity_minor = peak_equity_minor
        # "ok", "warn" or "liquidate": the level the last decision recorded.
        self._level = DrawdownLevel.OK.value
        # When a scheduled liquidation is due (None: none is).
        self.liquidation_due_at: datetime | None = None
        # fingerprint -> divergence fields, open until a sync no longer sees it.
        self._divergences: dict[str, dict[str, Any]] = {}
        # position id -> reason, marked for closing and not closed yet.
        self._marked: dict[str, str] = {}
        # position id -> the error its last close attempt recorded.
        self._close_errors: dict[str, str] = {}

    @property
    def funded_account_id(self) -> UUID:
        return UUID(self._funded_account_id)

    @property
    def level(self) -> DrawdownLevel:
        return DrawdownLevel(self._level)

    @property
    def open_divergences(self) -> dict[str, dict[str, Any]]:
        return dict(self._divergences)

    @property
    def marked_for_closing(self) -> dict[str, str]:
        return dict(self._marked)

    # Peak ------------------------------------------------------------------------------

    def observe_equity(self, equity_minor: int, at: datetime) -> None:
        """Record a new peak whenever equity passes the recorded one."""
        if equity_minor > self.peak_equity_minor:
            self._peak_raised(equity_minor=equity_minor, at=require_aware("at", at))

    @event("PeakEquityRaised")
    def _peak_raised(self, equity_minor: int, at: datetime) -> None:
        self.peak_equity_minor = equity_minor

    # Drawdown decisions ----------------------------------------------------------------

    def decide_drawdown(
        self,
        *,
        equity_minor: int,
        thresholds: GuardThresholds,
        positions: Sequence[str],
        at: datetime,
    ) -> DrawdownLevel:
        """Record the drawdown guard's decision when the level moves: a warning
        at WARN, a liquidation scheduled the pre-liquidation warning from now
        at LIQUIDATE (both with the positions to be closed), a recovery back
        to OK. Each event carries the inputs: equity, peak, drawdown, minimum,
        thresholds."""
        at = require_aware("at", at)
        level = drawdown_level(self.peak_equity_minor, equity_minor, thresholds)
        if level is self.level:
            return level
        inputs = self._inputs(equity_minor, thresholds)
        if level is DrawdownLevel.LIQUIDATE:
            self._liquidation_scheduled(
                **inputs,
                positions=list(positions),
                due_at=at + thresholds.pre_liquidation_warning,
                at=at,
            )
        elif level is DrawdownLevel.WARN:
            self._drawdown_warned(**inputs, positions=list(positions), at=at)
        else:
            self._drawdown_recovered(**inputs, at=at)
        return level

    def _inputs(self, equity_minor: int, thresholds: GuardThresholds) -> dict[str, Any]:
        return {
            "equity_minor": equity_minor,
            "peak_equity_minor": self.peak_equity_minor,
            "drawdown": str(drawdown_from_peak(self.peak_equity_minor, equity_minor)),
            "minimum_equity_minor": thresholds.minimum_equity_minor,
            "warn_from": str(thresholds.drawdown_warn_from),
            "liquidate_above": str(thresholds.drawdown_liquidate_above),
        }

    @event("DrawdownWarned")
    def _drawdown_warned(
        self,
        equity_minor: int,
        peak_equity_minor: int,
        drawdown: str,
        minimum_equity_minor: int,
        warn_from: str,
        positions: list[str],
        at: datetime,
        # Events recorded before the drawdown had to be over the figure (not
        # at it) to liquidate carry `liquidate_from`; later ones `liquidate_above`.
        liquidate_from: str | None = None,
        liquidate_above: str | None = None,
    ) -> None:
        self._level = DrawdownLevel.WARN.value
        self.liquidation_due_at = None

    @event("LiquidationScheduled")
    def _liquidation_scheduled(
        self,
        equity_minor: int,
        peak_equity_minor: int,
        drawdown: str,
        minimum_equity_minor: int,
        warn_from: str,
        positions: list[str],
        due_at: datetime,
        at: datetime,
        # Events recorded before the drawdown had to be over the figure (not
        # at it) to liquidate carry `liquidate_from`; later ones `liquidate_above`.
        liquidate_from: str | None = None,
        liquidate_above: str | None = None,
    ) -> None:
        self._level = DrawdownLevel.LIQUIDATE.value
        self.liquidation_due_at = due_at

    @event("DrawdownRecovered")
    def _drawdown_recovered(
        self,
        equity_minor: int,
        peak_equity_minor: int,
        drawdown: str,
        minimum_equity_minor: int,
        warn_from: str,
        at: datetime,
        # Events recorded before the drawdown had to be over the figure (not
        # at it) to liquidate carry `liquidate_from`; later ones `liquidate_above`.
        liquidate_from: str | None = None,
        liquidate_above: str | None = None,
    ) -> None:
        self._level = DrawdownLevel.OK.value
        self.liquidation_due_at = None

    def liquidation_due(self, now: datetime) -> bool:
        return self.liquidation_due_at is not None and now >= self.liquidation_due_at

    def record_liquidation(
        self,
        *,
        equity_minor: int,
        thresholds: GuardThresholds,
        closed: Sequence[str],
        failed: dict[str, str],
        at: datetime,
    ) -> None:
        """The pre-liquidation warning has passed: what was closed and what failed (each failure
        isolated; a failed position is tried again by the next pass). Closed
        entirely: the liquidation is done and the account starts a new episode."""
        self._liquidated(
            **self._inputs(equity_minor, thresholds),
            closed=list(closed),
            failed=dict(failed),
            at=require_aware("at", at),
        )

    @event("Liquidated")
    def _liquidated(
        self,
        equity_minor: int,
        peak_equity_minor: int,
        drawdown: str,
        minimum_equity_minor: int,
        warn_from: str,
        closed: list[str],
        failed: dict[str, str],
        at: datetime,
        # Events recorded before the drawdown had to be over the figure (not
        # at it) to liquidate carry `liquidate_from`; later ones `liquidate_above`.
        liquidate_from: str | None = None,
        liquidate_above: str | None = None,
    ) -> None:
        if not failed:
            self._level = DrawdownLevel.OK.value
            self.liquidation_due_at = None
            # What is left after liquidation is the new peak: the drawdown that
            # caused it is behind the account.
            self.peak_equity_minor = equity_minor

    # Market guard ----------------------------------------------------------------------

    def mark_for_closing(
        self,
        position_id: str,
        failures: Sequence[MarketFailure],
        quote: dict[str, Any],
        quantity: int,
        at: datetime,
        thresholds: GuardThresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        """A position failed the market guard: marked with the reasons and the
        quote they were read from. Marking it again changes nothing."""
        if position_id in self._marked or not failures:
            return
        self._position_marked(
            position_id=position_id,
            reasons=[failure.value for failure in failures],
            quote=dict(quote),
            quantity=quantity,
            thresholds={
                "gap_above": str(thresholds.gap_above),
                "spread_above": str(thresholds.spread_above),
                "liquidity_volume_lots_min": str(thresholds.liquidity_volume_lots_min),
                "liquidity_check_enabled": str(thresholds.liquidity_check_enabled).lower(),
            },
            at=require_aware("at", at),
        )

    @event("PositionMarkedForClosing")
    def _position_marked(
        self,
        position_id: str,
        reasons: list[str],
        quote: dict[str, Any],
        quantity: int,
        thresholds: dict[str, str],
        at: datetime,
    ) -> None:
        self._marked = {**self._marked, position_id: ",".join(reasons)}

    def record_close(
        self,
        position_id: str,
        *,
        reason: str,
        actor: str,
        price_minor: int | None,
        realized_pnl_minor: int | None,
        error: str | None,
        at: datetime,
    ) -> None:
        """A guard's (or a person's) close of a position: its price and P&L, or
        the error that stopped it (tried again by the next pass). The same
        error as the last attempt's is not recorded again: a broker down for
        an hour is one event, not one every sync."""
        if error is not None and self._close_errors.get(position_id) == error:
            return
        self._close_recorded(
            position_id=position_id,
            reason=require_text("reason", reason, REASON_LENGTH_MAX),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            price_minor=price_minor,
            realized_pnl_minor=realized_pnl_minor,
            error=error,
            at=require_aware("at", at),
        )

    @event("CloseRecorded")
    def _close_recorded(
        self,
        position_id: str,
        reason: str,
        actor: str,
        price_minor: int | None,
        realized_pnl_minor: int | None,
        error: str | None,
        at: datetime,
    ) -> None:
        errors = self._close_errors
        if error is None:
            self._marked = {key: value for key, value in self._marked.items() if key != position_id}
            self._close_errors = {key: value for key, value in errors.items() if key != position_id}
        else:
            self._close_errors = {**errors, position_id: error}

    # Sync ------------------------------------------------------------------------------

    def record_sync(self, divergences: Sequence[Divergence], at: datetime) -> None:
        """Record each divergence a sync found that is not open yet, and clear
        each open one the sync no longer finds."""
        at = require_aware("at", at)
        seen = {divergence.fingerprint: divergence for divergence in divergences}
        for fingerprint, divergence in seen.items():
            if fingerprint not in self._divergences:
                self._divergence_found(
                    fingerprint=fingerprint,
                    kind=divergence.kind.value,
                    position_id=divergence.position_id,
                    symbol=divergence.symbol,
                    ledger_quantity=divergence.ledger_quantity,
                    broker_quantity=divergence.broker_quantity,
                    ledger_entry_minor=divergence.ledger_entry_minor,
                    broker_entry_minor=divergence.broker_entry_minor,
                    amount_minor=divergence.amount_minor,
                    at=at,
                )
        for fingerprint in list(self._divergences):
            if fingerprint not in seen:
                self._divergence_cleared(fingerprint=fingerprint, at=at)

    @event("DivergenceFound")
    def _divergence_found(
        self,
        fingerprint: str,
        kind: str,
        position_id: str,
        symbol: str,
        ledger_quantity: int | None,
        broker_quantity: int | None,
        ledger_entry_minor: int | None,
        broker_entry_minor: int | None,
        amount_minor: int,
        at: datetime,
    ) -> None:
        self._divergences = {
            **self._divergences,
            fingerprint: {
                "kind": kind,
                "position_id": position_id,
                "symbol": symbol,
                "amount_minor": amount_minor,
                "found_at": at.isoformat(),
            },
        }

    @event("DivergenceCleared")
    def _divergence_cleared(self, fingerprint: str, at: datetime) -> None:
        self._divergences = {
            key: value for key, value in self._divergences.items() if key != fingerprint
        }
