"""The drawdown and market guards, and closing positions
(docs/rules.md#position-sync-and-guards).

One pass of `guard_account` runs after each broker sync of an account, with
the equity the broker reported, in this order:

1. Drawdown guard: the guard's peak is raised if equity beat it, then the
   level is decided (`AccountGuard.decide_drawdown`). A move to WARN or to
   LIQUIDATE is recorded with its inputs and the positions a liquidation
   would close, and only then is the owner told (`GuardNotifier`): a
   notification that fails is logged and the decision stands. A move back to
   OK (or from LIQUIDATE to WARN) cancels a scheduled liquidation.
2. Market guard: each open position is checked against its symbol's quote
   now; a failing one is marked for closing with the reasons and the quote
   they were read from, then closed. A mark whose close failed is closed
   again by the next pass.
3. Due liquidation: when the pre-liquidation warning (10 s by default: the
   owner was told which positions will close) has passed and the level (decided
   in step 1 on this pass's equity) is still LIQUIDATE, every open position
   is closed, each failure isolated, and the liquidation is recorded with
   what closed and what failed. A failed position keeps the liquidation due,
   so the next pass closes it.

What a liquidation does to the account: it closes positions, nothing more. Each
close records `PositionClosed`, its realized P&L transfer and the account's
rule band (FundedAccountsService), without enforcing the rules inline
(`enforce=False`, as closures do): enforcement would close the other positions
in one loop that stops at the first broker error, which is the isolation this
service promises. A band the realized losses push into VIOLATION is enforced by
the rules monitor, which watches violating accounts that are not closed yet, on
its next pass (a violation closes the account:
docs/rules.md#funded-accounts-and-withdrawals). A closed account is not
guarded: it holds nothing.

Closing is idempotent: the broker order carries a client order id derived
from the position, and a position found closed already is answered with the
price and P&L its close recorded, without closing anything again.

Every write of the guard aggregate reads it, decides and records with the
version it read; when another request recorded first it reads and decides
again (`change_alone`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import structlog

from application.aggregate_writes import change_alone, require_funded_account
from application.event_log import LedgerApplication
from application.funded_accounts import FundedAccountsService
from application.ports.broker import AccountEquity, Broker, Quote
from application.ports.clock import Clock
from application.ports.guard_notifier import (
    GuardNotificationFailed,
    GuardNotifier,
    notification_for,
)
from application.ports.writer import Writer
from domain.account_guard import (
    ACTOR_LENGTH_MAX,
    REASON_LENGTH_MAX,
    AccountGuard,
    DrawdownLevel,
    GuardThresholds,
    MarketFailure,
    guard_id_for,
    market_failures,
)
from domain.field_checks import require_text
from domain.funded_account import FundedAccount, OpenPosition
from domain.funded_account_states import FundedAccountState
from domain.result_codes import LedgerRefusal, ResultCode

log = structlog.get_logger(__name__)

# The actor of what the guards decide by themselves.
GUARDS_ACTOR: Final[str] = "guards"
# A failed close's error as kept on the guard and in the outcome.
CLOSE_ERROR_LENGTH_MAX: Final[int] = 500
# Looking up the recorded close of a position closed before: the account's
# events, newest first, a page at a time, never more than the maximum (an
# account marked to market every few seconds has a long history).
CLOSE_LOOKUP_PAGE_SIZE: Final[int] = 500
CLOSE_LOOKUP_EVENTS_MAX: Final[int] = 100_000

# The events' classes, made by the @event decorators (mypy does not see them).
_WARNED: Final[Any] = AccountGuard.DrawdownWarned  # type: ignore[attr-defined]
_SCHEDULED: Final[Any] = AccountGuard.LiquidationScheduled  # type: ignore[attr-defined]
_MARKED: Final[Any] = AccountGuard.PositionMarkedForClosing  # type: ignore[attr-defined]
_CLOSE_RECORDED: Final[Any] = AccountGuard.CloseRecorded  # type: ignore[attr-defined]
_POSITION_CLOSED: Final[Any] = FundedAccount.PositionClosed  # type: ignore[attr-defined]


@dataclass
class GuardOutcome:
    funded_account_id: UUID
    level: DrawdownLevel
    # Position ids marked for closing by the market guard in this pass.
    marked: list[str] = field(default_factory=list)
    # Position ids closed in this pass (liquidation or market guard).
    closed: list[str] = field(default_factory=list)
    # Position id -> error, for closes that failed (tried again next pass).
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CloseOutcome:
    funded_account_id: UUID
    position_id: str
    price_minor: int
    realized_pnl_minor: int
    # False: it was closed before (the same close asked again).
    closed_now: bool


class GuardsService:
    def __init__(
        self,
        app: LedgerApplication,
        writer: Writer,
        funded_accounts: FundedAccountsService,
        broker: Broker,
        clock: Clock,
        thresholds: GuardThresholds,
        notifier: GuardNotifier | None = None,
    ) -> None:
        self._app = app
        self._writer = writer
        self._funded_accounts = funded_accounts
        # Quotes and closes go through the funded accounts service, which maps
        # the broker's errors to refusals with stable codes; kept for adapters
        # that need the port itself.
        self._broker = broker
        self._clock = clock
        self.thresholds = thresholds
        # None: decisions are logged, nobody is told (a deployment without a channel).
        self._notifier = notifier

    # A pass --------------------------------------------------------------------------

    def guard_account(self, funded_account_id: UUID, equity: AccountEquity) -> GuardOutcome:
        """After a sync: the drawdown guard on `equity`, the market guard on each
        open position, and a due liquidation; every decision recorded."""
        if equity.account_id != funded_account_id:
            raise ValueError(f"equity of {equity.account_id} given for {funded_account_id}")
        account = require_funded_account(self._app, funded_account_id)
        if account.state is FundedAccountState.CLOSED:
            existing = self._app.load_account_guard(guard_id_for(funded_account_id))
            return GuardOutcome(
                funded_account_id, DrawdownLevel.OK if existing is None else existing.level
            )
        now = self._clock.now()
        guard, decided = self._decide_drawdown(account, equity.equity_minor, now)
        self._notify_events(account, decided, _positions_by_id(account.positions))
        outcome = GuardOutcome(funded_account_id, guard.level)
        guard = self._market_guard(account, guard, outcome, now)
        if guard.liquidation_due(now):
            guard = self._liquidate(funded_account_id, equity.equity_minor, outcome)
        outcome.level = guard.level
        return outcome

    def _decide_drawdown(
        self, account: FundedAccount, equity_minor: int, now: datetime
    ) -> tuple[AccountGuard, list[Any]]:
        positions = [held.position_id for held in account.positions]
        decided: list[Any] = []

        def decide(guard: AccountGuard) -> None:
            guard.observe_equity(equity_minor, now)
            guard.decide_drawdown(
                equity_minor=equity_minor,
                thresholds=self.thresholds,
                positions=positions,
                at=now,
            )
            # Kept from the attempt that is recorded (each attempt starts afresh).
            decided[:] = list(guard.pending_events)

        # A guard started late measures from the highest equity the ledger saw.
        start_peak_minor = max(account.peak_balance_minor, equity_minor)
        guard = self._change_guard(account.id, decide, start_peak_minor)
        for event in decided:
            if isinstance(event, (_WARNED, _SCHEDULED)):
                log.warning(
                    "drawdown_guard_decided",
                    funded_account_id=str(account.id),
                    decision=type(event).__name__,
                    equity_minor=equity_minor,
                    peak_equity_minor=event.peak_equity_minor,
                    drawdown=event.drawdown,
                )
        return guard, decided

    def _market_guard(
        self, account: FundedAccount, guard: AccountGuard, outcome: GuardOutcome, now: datetime
    ) -> AccountGuard:
        """Mark each open position that fails its quote now, then close every
        marked position (those marked by earlier passes whose close failed too)."""
        quotes: dict[str, Quote | None] = {}
        failing: dict[str, tuple[list[MarketFailure], Quote, int]] = {}
        for held in account.positions:
            quote = self._quote(held.symbol, quotes)
            if quote is None:
                continue
            failures = market_failures(
                open_minor=quote.open_minor,
                last_close_minor=quote.last_close_minor,
                bid_minor=quote.bid_minor,
                ask_minor=quote.ask_minor,
                volume=quote.volume,
                quantity=held.quantity,
                thresholds=self.thresholds,
            )
            if failures:
                failing[held.position_id] = (failures, quote, held.quantity)
        if failing:
            newly_marked: list[str] = []

            def decide(current: AccountGuard) -> None:
                for position_id, (failures, quote, quantity) in failing.items():
                    current.mark_for_closing(
                        position_id,
                        failures,
                        _quote_fields(quote),
                        quantity,
                        now,
                        thresholds=self.thresholds,
                    )
                newly_marked[:] = [
                    event.position_id
                    for event in current.pending_events
                    if isinstance(event, _MARKED)
                ]

            guard = self._change_guard(account.id, decide, account.peak_balance_minor)
            outcome.marked.extend(newly_marked)
            for position_id in newly_marked:
                log.warning(
                    "position_marked_for_closing",
                    funded_account_id=str(account.id),
                    position_id=position_id,
                    reasons=[failure.value for failure in failing[position_id][0]],
                )
        for position_id, reasons in guard.marked_for_closing.items():
            self._close_isolated(
                account.id, position_id, f"market guard: {reasons}", GUARDS_ACTOR, outcome
            )
        if guard.marked_for_closing:
            reloaded = self._app.load_account_guard(guard.id)
            assert reloaded is not None, "the guard was recorded by this pass"
            guard = reloaded
        return guard

    def _liquidate(
        self,
        funded_account_id: UUID,
        equity_minor: int,
        outcome: GuardOutcome,
    ) -> AccountGuard:
        """Close every open position, each failure isolated, and record the
        liquidation. A position whose close already failed in this pass (the
        market guard's) is not tried again now: the next pass tries it."""
        account = require_funded_account(self._app, funded_account_id)
        positions = _positions_by_id(account.positions)
        closed: list[str] = []
        failed: dict[str, str] = {}
        reason = "drawdown liquidation after the pre-liquidation warning"
        for position_id in positions:
            if position_id in outcome.failed:
                failed[position_id] = outcome.failed[position_id]
            elif self._close_isolated(
                funded_account_id, position_id, reason, GUARDS_ACTOR, outcome
            ):
                # Closed now, or found closed by another request: either way
                # no longer open.
                closed.append(position_id)
            else:
                failed[position_id] = outcome.failed[position_id]
        now = self._clock.now()
        recorded: list[Any] = []

        def decide(guard: AccountGuard) -> None:
            # Another pass may have recorded the liquidation meanwhile.
            if guard.liquidation_due(now):
                guard.record_liquidation(
                    equity_minor=equity_minor,
                    thresholds=self.thresholds,
                    closed=closed,
                    failed=failed,
                    at=now,
                )
            recorded[:] = list(guard.pending_events)

        guard = self._change_guard(funded_account_id, decide, account.peak_balance_minor)
        log.warning(
            "account_liquidated",
            funded_account_id=str(funded_account_id),
            closed=closed,
            failed=failed,
        )
        if closed or failed:
            self._notify_events(account, recorded, positions)
        return guard

    # Closing -------------------------------------------------------------------------

    def close_position(
        self, funded_account_id: UUID, position_id: str, *, reason: str, actor: str
    ) -> CloseOutcome:
        """Close one position (a person's or a guard's), recorded with its price
        and P&L; asking again never closes twice."""
        # Checked before the broker is asked: a close must not happen that the
        # guard then cannot record.
        require_text("reason", reason, REASON_LENGTH_MAX)
        require_text("actor", actor, ACTOR_LENGTH_MAX)
        account = require_funded_account(self._app, funded_account_id)
        if position_id not in _positions_by_id(account.positions):
            return self._closed_before(account, position_id, reason, actor)
        try:
            change = self._funded_accounts.close_position(
                funded_account_id, position_id, enforce=False
            )
        except LedgerRefusal as refusal:
            if refusal.code is ResultCode.POSITION_NOT_FOUND:
                # Closed by another request between the read above and the order.
                return self._closed_before(account, position_id, reason, actor)
            self._record_close(account, position_id, reason, actor, None, None, _describe(refusal))
            raise
        fill = change.fill
        if change.position is None:
            # Another request recorded this close first, with the same fill.
            return self._closed_before(account, position_id, reason, actor)
        self._record_close(
            account, position_id, reason, actor, fill.price_minor, fill.realized_pnl_minor, None
        )
        log.info(
            "guarded_position_closed",
            funded_account_id=str(funded_account_id),
            position_id=position_id,
            price_minor=fill.price_minor,
            realized_pnl_minor=fill.realized_pnl_minor,
            reason=reason,
            actor=actor,
        )
        return CloseOutcome(
            funded_account_id,
            position_id,
            fill.price_minor,
            fill.realized_pnl_minor,
            closed_now=True,
        )

    def _close_isolated(
        self,
        funded_account_id: UUID,
        position_id: str,
        reason: str,
        actor: str,
        outcome: GuardOutcome,
    ) -> CloseOutcome | None:
        """Close one position of a pass; a refusal is kept in the outcome, not
        raised, so the pass goes on to the next position (None)."""
        try:
            closing = self.close_position(
                funded_account_id,
                position_id,
                reason=reason[:REASON_LENGTH_MAX],
                actor=actor,
            )
        except LedgerRefusal as refusal:
            outcome.failed[position_id] = _describe(refusal)
            log.warning(
                "guarded_close_failed",
                funded_account_id=str(funded_account_id),
                position_id=position_id,
                code=refusal.code.value,
                error=refusal.message,
            )
            return None
        outcome.failed.pop(position_id, None)
        if closing.closed_now:
            outcome.closed.append(position_id)
        return closing

    def _closed_before(
        self, account: FundedAccount, position_id: str, reason: str, actor: str
    ) -> CloseOutcome:
        """The position is no longer open: answer with its recorded close, and
        record it on the guard if the guard has no record of it yet (the first
        request stopped between the close and the guard's record)."""
        found = self._recorded_close(account.id, position_id)
        if found is None:
            raise LedgerRefusal(
                ResultCode.POSITION_NOT_FOUND,
                f"no open position {position_id}, and no close of it is recorded for "
                f"funded account {account.id}",
                position_id=position_id,
                funded_account_id=str(account.id),
            )
        price_minor, realized_pnl_minor = found
        if not self._guard_recorded_close(account.id, position_id):
            self._record_close(
                account, position_id, reason, actor, price_minor, realized_pnl_minor, None
            )
        return CloseOutcome(
            account.id, position_id, price_minor, realized_pnl_minor, closed_now=False
        )

    def _record_close(
        self,
        account: FundedAccount,
        position_id: str,
        reason: str,
        actor: str,
        price_minor: int | None,
        realized_pnl_minor: int | None,
        error: str | None,
    ) -> None:
        now = self._clock.now()

        def decide(guard: AccountGuard) -> None:
            guard.record_close(
                position_id,
                reason=reason,
                actor=actor,
                price_minor=price_minor,
                realized_pnl_minor=realized_pnl_minor,
                error=error,
                at=now,
            )

        self._change_guard(account.id, decide, account.peak_balance_minor)

    def _recorded_close(self, funded_account_id: UUID, position_id: str) -> tuple[int, int] | None:
        """The exit price and realized P&L the account's `PositionClosed` for
        this position recorded, newest events first; None if none is found."""
        below_version: int | None = None
        read = 0
        while read < CLOSE_LOOKUP_EVENTS_MAX:
            page: list[Any] = list(
                self._app.events.get(
                    funded_account_id, lte=below_version, desc=True, limit=CLOSE_LOOKUP_PAGE_SIZE
                )
            )
            for event in page:
                if isinstance(event, _POSITION_CLOSED) and event.position_id == position_id:
                    return int(event.exit_price_minor), int(event.realized_pnl_minor)
            if len(page) < CLOSE_LOOKUP_PAGE_SIZE:
                return None
            read += len(page)
            below_version = int(page[-1].originator_version) - 1
        log.warning(
            "recorded_close_lookup_gave_up",
            funded_account_id=str(funded_account_id),
            position_id=position_id,
            events_read=read,
        )
        return None

    def _guard_recorded_close(self, funded_account_id: UUID, position_id: str) -> bool:
        """Whether the guard recorded a close of the position that succeeded."""
        events: list[Any] = list(self._app.events.get(guard_id_for(funded_account_id)))
        return any(
            isinstance(event, _CLOSE_RECORDED)
            and event.position_id == position_id
            and event.error is None
            for event in events
        )

    # Inside --------------------------------------------------------------------------

    def _change_guard(
        self,
        funded_account_id: UUID,
        decide: Callable[[AccountGuard], None],
        start_peak_minor: int,
    ) -> AccountGuard:
        """Read the account's guard (started with this peak if it has none yet),
        decide, record; again if another request recorded first."""
        guard_id = guard_id_for(funded_account_id)

        def load() -> AccountGuard:
            existing = self._app.load_account_guard(guard_id)
            if existing is not None:
                return existing
            return AccountGuard.start(
                funded_account_id=funded_account_id,
                peak_equity_minor=start_peak_minor,
                at=self._clock.now(),
            )

        return change_alone(
            self._writer,
            load,
            decide,
            lambda: _contended(funded_account_id),
        )

    def _quote(self, symbol: str, quotes: dict[str, Quote | None]) -> Quote | None:
        """The symbol's quote, once per pass; None when the broker gave none (the
        position cannot be judged now and is judged by the next pass)."""
        if symbol not in quotes:
            try:
                quotes[symbol] = self._funded_accounts.quote(symbol)
            except LedgerRefusal as refusal:
                log.warning(
                    "market_guard_quote_failed",
                    symbol=symbol,
                    code=refusal.code.value,
                    error=refusal.message,
                )
                quotes[symbol] = None
        return quotes[symbol]

    def _notify_events(
        self,
        account: FundedAccount,
        events: Sequence[Any],
        positions: Mapping[str, OpenPosition],
    ) -> None:
        """Tell the owner of each recorded decision that is news to them. Called
        after the events are recorded; a failure is logged and the decision stands."""
        for event in events:
            notification = notification_for(account, event, positions)
            if notification is None:
                continue
            if self._notifier is None:
                log.info(
                    "guard_notification_not_sent",
                    notification_id=notification.notification_id,
                    kind=notification.kind.value,
                    reason="no notifier is wired",
                )
                continue
            try:
                self._notifier.notify(notification)
            except GuardNotificationFailed as failure:
                log.error(
                    "guard_notification_failed",
                    notification_id=notification.notification_id,
                    kind=notification.kind.value,
                    funded_account_id=str(account.id),
                    reason=failure.reason,
                )


def _positions_by_id(positions: Sequence[OpenPosition]) -> dict[str, OpenPosition]:
    return {held.position_id: held for held in positions}


def _quote_fields(quote: Quote) -> dict[str, Any]:
    """The quote as the guard's event keeps it: plain JSON values."""
    return {
        "symbol": quote.symbol,
        "bid_minor": quote.bid_minor,
        "ask_minor": quote.ask_minor,
        "last_minor": quote.last_minor,
        "open_minor": quote.open_minor,
        "last_close_minor": quote.last_close_minor,
        "volume": quote.volume,
        "at": quote.at.isoformat(),
    }


def _describe(refusal: LedgerRefusal) -> str:
    return f"{refusal.code.value}: {refusal.message}"[:CLOSE_ERROR_LENGTH_MAX]


def _contended(funded_account_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.CONCURRENT_CHANGE,
        f"the guard of funded account {funded_account_id} kept changing under this pass; retry",
        funded_account_id=str(funded_account_id),
    )
