"""Funded accounts' use cases: activation, positions through the broker, marks, rules.

See docs/rules.md#funded-accounts-and-withdrawals and
docs/rules.md#tiers-forks-and-merges.

Every change of a funded account goes through the writer together with the
money it moves, as `AggregateChanges` beside a linked chain of ledger commands:
activation opens the trader's ledger account, funds it from the platform's
funding account and records `Activated` in one transaction; a close records
`PositionClosed` and its realized P&L transfer against the platform's trading
P&L account in one transaction. A failure half-way leaves neither the account
nor the money.

Concurrency: an aggregate is read, changed and submitted with the version it
was read at. If another request recorded first, the writer answers STALE and
the use case reads the aggregate again and decides again (the broker is not
called again: its fill is kept, and a repeated order carries the same client
order id, which the broker answers with the first fill).

Rules: every change ends with `decide_rules` on the newest mark of every open
position, asked of the broker after the change (never the entry price, nor a
mark older than `mark_age_max`: then no decision is taken and the band stays
as last decided), so a band change is recorded with the event that caused it
and the marks it was read on. A VIOLATION suspends trading, closes
every position and closes the account with the reason
(docs/rules.md#funded-accounts-and-withdrawals); if the broker fails half-way
the account stays SUSPENDED with the violation as its reason and
`enforce_rules` (the rules monitor calls it) carries on from there.

Risk per trade: the tier allows a position of up to 20 % of capital (Gen) but
the risk rule's limit is 5 % and a violation closes the account, so an order
that would put the account over the risk limit at once is refused before it
reaches the broker (`position_exceeds_risk_limit`): the stricter rule binds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Final, TypeVar
from uuid import UUID, uuid4, uuid5

import structlog

from application.aggregate_writes import (
    require_funded_account,
    retry_while_stale,
    write_with_aggregates,
)
from application.event_log import LedgerApplication
from application.ports.broker import (
    Broker,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    Fill,
    PositionNotFound,
    Quote,
    UnknownAccount,
    UnknownSymbol,
    entry_price_for,
    exit_price_for,
)
from application.ports.clock import Clock
from application.ports.writer import Writer
from application.writer import WriteReceipt
from domain.account import AccountKind
from domain.commands import Command, OpenAccount, create_transfer, open_account
from domain.funded_account import (
    FundedAccount,
    FundedAccountRefusal,
    FundedRefusalReason,
    OpenPosition,
    RuleDecision,
    funded_account_id_for,
    funding_transfer_key,
)
from domain.funded_account_states import ALLOWED_TRANSITIONS, FundedAccountState
from domain.funded_rules import RISK_PER_TRADE_LIMIT, AccountRuleStatus, RuleBand
from domain.marks import MARK_AGE_MAX_DEFAULT, Mark
from domain.money import describe_money, format_amount
from domain.positions import PositionSide
from domain.ratios import format_percent
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY, TierName, position_decision
from domain.transfer import Posting, Side

log = structlog.get_logger(__name__)

PLATFORM_OWNER: Final[str] = "platform"
PLATFORM_SCOPE: Final[str] = "platform"
FUNDED_SCOPE: Final[str] = "funded"
# The actor of what the service decides by itself (rule enforcement).
RULES_ACTOR: Final[str] = "rules-monitor"

T = TypeVar("T")


def platform_account(kind: AccountKind, currency: str = TIER_CURRENCY) -> OpenAccount:
    """The platform's account of a kind and currency. Opening it again finds it
    (same key, same details), so every use case that needs it opens it in its
    own chain and never depends on a set-up step having run."""
    return open_account(
        idempotency_key=f"platform-{kind.value}-{currency}",
        scope=PLATFORM_SCOPE,
        currency=currency,
        owner_id=PLATFORM_OWNER,
        kind=kind,
    )


@dataclass(frozen=True, slots=True)
class ActivationRequest:
    assessment_id: str
    owner_id: str
    tier: TierName
    profit_split: Fraction
    completed_at: datetime
    # None: the tier's minimum capital.
    starting_balance_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    account: FundedAccount
    # False: the assessment had funded this account already (same details).
    created: bool
    # The log position of the write (None when nothing was written).
    position: int | None


@dataclass(frozen=True, slots=True)
class PositionChange:
    account: FundedAccount
    position_id: str
    fill: Fill
    # The rule status after the change, and whether it closed the account.
    rule_status: AccountRuleStatus
    position: int | None


@dataclass(frozen=True, slots=True)
class RuleCheck:
    account: FundedAccount
    rule_status: AccountRuleStatus
    # True when this check found a violation and closed the account.
    enforced: bool
    position: int | None


class FundedAccountsService:
    def __init__(
        self,
        app: LedgerApplication,
        writer: Writer,
        broker: Broker,
        clock: Clock,
        mark_age_max: timedelta = MARK_AGE_MAX_DEFAULT,
    ) -> None:
        self._app = app
        self._writer = writer
        self._broker = broker
        self._clock = clock
        # The oldest mark a rule decision is taken on (LEDGER_MARK_AGE_MAX_S).
        self._mark_age_max = mark_age_max

    # Reading ------------------------------------------------------------------------

    def funded_account(self, funded_account_id: UUID) -> FundedAccount | None:
        return self._app.load_funded_account(funded_account_id)

    def require_funded_account(self, funded_account_id: UUID) -> FundedAccount:
        return require_funded_account(self._app, funded_account_id)

    # Activation ---------------------------------------------------------------------

    def activate(self, request: ActivationRequest, actor: str) -> Activation:
        """Fund the account of a passed assessment, once; the same request again
        finds it. Ledger account, funding transfer and `Activated` are one write."""
        funded_account_id = funded_account_id_for(request.assessment_id)

        def attempt() -> Activation | None:
            existing = self.funded_account(funded_account_id)
            if existing is not None:
                _require_same_activation(existing, request)
                return Activation(existing, created=False, position=None)
            funding = platform_account(AccountKind.FUNDING)
            # No overdraft check on the trader's account: a realized loss is a
            # fact from the broker and always posts; the rules close the
            # account long before its balance nears zero.
            trader = open_account(
                idempotency_key=f"account-{funded_account_id}",
                scope=FUNDED_SCOPE,
                currency=TIER_CURRENCY,
                owner_id=request.owner_id,
                metadata={"funded_account_id": str(funded_account_id), "tier": request.tier},
            )
            account = FundedAccount.activate(
                assessment_id=request.assessment_id,
                owner_id=request.owner_id,
                tier=request.tier,
                profit_split=request.profit_split,
                completed_at=request.completed_at,
                ledger_account_id=trader.account_id,
                activated_at=self._clock.now(),
                actor=actor,
                starting_balance_minor=request.starting_balance_minor,
            )
            capital = create_transfer(
                idempotency_key=funding_transfer_key(funded_account_id),
                scope=FUNDED_SCOPE,
                postings=(
                    Posting(
                        funding.account_id,
                        Side.DEBIT,
                        account.starting_balance_minor,
                        TIER_CURRENCY,
                    ),
                    Posting(
                        trader.account_id,
                        Side.CREDIT,
                        account.starting_balance_minor,
                        TIER_CURRENCY,
                    ),
                ),
                metadata={"funded_account_id": str(funded_account_id), "purpose": "funding"},
            )
            receipt = self._write([funding, trader, capital], account)
            if receipt is None:
                return None
            log.info(
                "funded_account_activated",
                funded_account_id=str(funded_account_id),
                tier=request.tier,
                actor=actor,
            )
            return Activation(account, created=True, position=receipt.position)

        return retry_while_stale(attempt, lambda: _contended(funded_account_id))

    # Positions ----------------------------------------------------------------------

    def open_position(
        self,
        funded_account_id: UUID,
        symbol: str,
        side: PositionSide,
        quantity: int,
        client_order_id: str | None = None,
    ) -> PositionChange:
        """Check the tier's limits and the risk rule at the quoted price, trade,
        then record the position at its fill price."""
        account = self.require_funded_account(funded_account_id)
        if account.state is not FundedAccountState.ACTIVE:
            raise LedgerRefusal(
                ResultCode.ACCOUNT_NOT_ACTIVE,
                f"the funded account is {account.state.value}: it opens no positions",
                state=account.state.value,
            )
        position_side = PositionSide(side)
        quote = self.quote(symbol)
        _require_position_allowed(account, quantity * entry_price_for(position_side, quote))
        order_id = client_order_id or f"open-{uuid4()}"
        fill = self._call_broker(
            lambda: self._broker.open_position(
                funded_account_id, symbol, position_side, quantity, order_id
            ),
            account,
        )
        # Quotes asked after the fill, once per symbol whatever the retries.
        quotes: dict[str, Mark | None] = {}

        def attempt() -> PositionChange | None:
            # The account as read before the broker's fill, then again after each stale write.
            nonlocal account
            if any(held.position_id == fill.position_id for held in account.positions):
                # A retry of an order already recorded: the broker replayed its fill.
                return PositionChange(account, fill.position_id, fill, account.rule_status(), None)
            try:
                account.open_position(
                    fill.position_id,
                    symbol,
                    position_side,
                    quantity,
                    fill.price_minor,
                    fill.at,
                )
            except LedgerRefusal:
                # The fill moved past a limit the quote was within: undo the trade.
                self._undo_open(fill)
                raise
            status = self._decide(account, quotes).rule_status
            receipt = self._write([], account)
            if receipt is None:
                account = self.require_funded_account(funded_account_id)
                return None
            log.info(
                "position_opened",
                funded_account_id=str(funded_account_id),
                position_id=fill.position_id,
                symbol=symbol,
                side=position_side.value,
                quantity=quantity,
                price_minor=fill.price_minor,
            )
            return PositionChange(account, fill.position_id, fill, status, receipt.position)

        return retry_while_stale(attempt, lambda: _contended(funded_account_id))

    def close_position(
        self, funded_account_id: UUID, position_id: str, *, enforce: bool = True
    ) -> PositionChange:
        """Close at the market; the realized P&L moves between the trader's ledger
        account and the platform's trading P&L account in the same write."""
        account = self.require_funded_account(funded_account_id)
        if _open_position(account, position_id) is None:
            raise _position_not_found(position_id)
        order_id = f"close-{uuid5(funded_account_id, position_id)}"
        fill = self._call_broker(
            lambda: self._broker.close_position(position_id, order_id), account
        )
        quotes: dict[str, Mark | None] = {}

        def attempt() -> PositionChange | None:
            # The account as read before the broker's fill, then again after each stale write.
            nonlocal account
            if _open_position(account, position_id) is None:
                # Another request recorded this close first (same fill: same order id).
                return PositionChange(account, position_id, fill, account.rule_status(), None)
            account.close_position(position_id, fill.price_minor, fill.realized_pnl_minor, fill.at)
            # The other positions at their newest marks, never at a mark the
            # account held from before the market moved (their entry price, say).
            decision = self._decide(account, quotes)
            status = decision.rule_status
            receipt = self._write(_realized_pnl_commands(account, position_id, fill), account)
            if receipt is None:
                account = self.require_funded_account(funded_account_id)
                return None
            log.info(
                "position_closed",
                funded_account_id=str(funded_account_id),
                position_id=position_id,
                price_minor=fill.price_minor,
                realized_pnl_minor=fill.realized_pnl_minor,
            )
            if enforce and decision.taken and status.band is RuleBand.VIOLATION:
                # The account as the enforcement left it, at its last write.
                check = self.enforce_rules(funded_account_id)
                return PositionChange(
                    check.account, position_id, fill, status, check.position or receipt.position
                )
            return PositionChange(account, position_id, fill, status, receipt.position)

        return retry_while_stale(attempt, lambda: _contended(funded_account_id))

    # Marks and rules ----------------------------------------------------------------

    def mark_to_market(self, funded_account_id: UUID) -> RuleCheck:
        """Mark open positions at the broker's prices now (a long at the bid, a
        short at the ask), record the band if it moved, enforce a violation.
        Without a fresh mark for every position nothing is decided."""
        quotes: dict[str, Mark | None] = {}

        def attempt() -> RuleCheck | None:
            account = self.require_funded_account(funded_account_id)
            if account.state is FundedAccountState.CLOSED:
                return RuleCheck(account, account.rule_status(), enforced=False, position=None)
            decision = self._decide(account, quotes)
            status = decision.rule_status
            if not decision.taken and account.band is not RuleBand.VIOLATION:
                return RuleCheck(account, status, enforced=False, position=None)
            position: int | None = None
            if account.pending_events:
                receipt = self._write([], account)
                if receipt is None:
                    return None
                position = receipt.position
            if account.band is RuleBand.VIOLATION:
                return self.enforce_rules(funded_account_id)
            return RuleCheck(account, status, enforced=False, position=position)

        return retry_while_stale(attempt, lambda: _contended(funded_account_id))

    def enforce_rules(self, funded_account_id: UUID) -> RuleCheck:
        """On a VIOLATION, as last decided on fresh marks (`decide_rules`):
        suspend trading, close every position, close the account with the
        reason. Safe to run again after a failure half-way."""
        account = self.require_funded_account(funded_account_id)
        status = account.rule_status()
        if account.band is not RuleBand.VIOLATION or account.state is FundedAccountState.CLOSED:
            return RuleCheck(account, status, enforced=False, position=None)
        if FundedAccountState.CLOSED not in ALLOWED_TRANSITIONS[account.state]:
            # A fork or merge in progress finishes (or rolls back) first.
            log.warning(
                "funded_account_violation_waits",
                funded_account_id=str(funded_account_id),
                state=account.state.value,
            )
            return RuleCheck(account, status, enforced=False, position=None)
        reason = _violation_reason(status)
        if FundedAccountState.SUSPENDED in ALLOWED_TRANSITIONS[account.state]:
            self.change_state(funded_account_id, FundedAccountState.SUSPENDED, reason, RULES_ACTOR)
        for held in self.require_funded_account(funded_account_id).positions:
            self.close_position(funded_account_id, held.position_id, enforce=False)
        closed = self.change_state(
            funded_account_id, FundedAccountState.CLOSED, reason, RULES_ACTOR
        )
        log.warning(
            "funded_account_closed_by_rule",
            funded_account_id=str(funded_account_id),
            reason=reason,
        )
        return RuleCheck(closed, status, enforced=True, position=self._writer.last_position)

    def change_state(
        self, funded_account_id: UUID, new_state: FundedAccountState, reason: str, actor: str
    ) -> FundedAccount:
        def attempt() -> FundedAccount | None:
            account = self.require_funded_account(funded_account_id)
            if account.state is new_state:
                return account
            account.change_state(new_state, reason, actor, self._clock.now())
            if self._write([], account) is None:
                return None
            log.info(
                "funded_account_state_changed",
                funded_account_id=str(funded_account_id),
                to_state=new_state.value,
                reason=reason,
                actor=actor,
            )
            return account

        return retry_while_stale(attempt, lambda: _contended(funded_account_id))

    # Inside -------------------------------------------------------------------------

    def _write(self, commands: list[Command], account: FundedAccount) -> WriteReceipt | None:
        """Record the account's new events with the commands; None: read again."""
        return write_with_aggregates(self._writer, commands, account)

    def _decide(self, account: FundedAccount, quotes: dict[str, Mark | None]) -> RuleDecision:
        """The account's rules decided on the broker's marks now; logged when a
        missing or stale mark keeps the decision from being taken."""
        decision = account.decide_rules(
            self._marks(account, quotes), self._clock.now(), self._mark_age_max
        )
        if not decision.taken:
            log.warning(
                "rule_decision_not_taken",
                funded_account_id=str(account.id),
                marks=dict(decision.stale),
            )
        return decision

    def _marks(self, account: FundedAccount, quotes: dict[str, Mark | None]) -> dict[str, Mark]:
        """One mark per symbol held, asked of the broker once per symbol (kept in
        `quotes` across retries): the first open position's side decides bid or
        ask. A symbol the broker gives no price for now has no mark."""
        for held in account.positions:
            if held.symbol in quotes:
                continue
            try:
                quote = self.quote(held.symbol)
            except LedgerRefusal as refusal:
                log.warning("mark_unavailable", symbol=held.symbol, code=refusal.code.value)
                quotes[held.symbol] = None
                continue
            quotes[held.symbol] = Mark(held.symbol, exit_price_for(held.side, quote), quote.at)
        return {symbol: mark for symbol, mark in quotes.items() if mark is not None}

    def quote(self, symbol: str) -> Quote:
        """The broker's prices for a symbol now."""
        return self._call_broker(lambda: self._broker.quote(symbol))

    def _call_broker(self, call: Callable[[], T], account: FundedAccount | None = None) -> T:
        """The broker's answer, or its error as a refusal with a stable code. An
        account the broker does not hold yet is opened there with its balance."""
        try:
            try:
                return call()
            except UnknownAccount:
                if account is None:
                    raise
                self._broker.register_account(account.id, account.current_balance_minor)
                return call()
        except BrokerUnavailable as error:
            raise LedgerRefusal(
                ResultCode.BROKER_UNAVAILABLE, f"the broker did not answer: {error}"
            ) from error
        except UnknownSymbol as error:
            raise LedgerRefusal(
                ResultCode.UNKNOWN_SYMBOL,
                f"the broker has no price for {error.symbol}",
                symbol=error.symbol,
            ) from error
        except PositionNotFound as error:
            raise _position_not_found(error.position_id) from error
        except BrokerRejected as error:
            raise LedgerRefusal(
                ResultCode.BROKER_REJECTED,
                f"the broker refused the order: {error.detail}",
                reason=error.reason.value,
            ) from error
        except BrokerError as error:
            raise LedgerRefusal(
                ResultCode.BROKER_REJECTED, f"the broker refused the order: {error}"
            ) from error

    def _undo_open(self, fill: Fill) -> None:
        try:
            self._broker.close_position(fill.position_id, f"undo-{fill.client_order_id}"[:128])
        except BrokerError:
            # Reconciliation finds a position the broker holds and the ledger does not.
            log.exception("position_undo_failed", position_id=fill.position_id)


def _require_same_activation(existing: FundedAccount, request: ActivationRequest) -> None:
    starting = request.starting_balance_minor
    same = (
        existing.owner_id == request.owner_id
        and existing.tier.name == request.tier
        and existing.profit_split == request.profit_split
        and existing.completed_at == request.completed_at
        and (starting is None or starting == existing.starting_balance_minor)
    )
    if not same:
        raise LedgerRefusal(
            ResultCode.ASSESSMENT_ALREADY_FUNDED,
            f"assessment {request.assessment_id} already funded account {existing.id} "
            "with other details",
            funded_account_id=str(existing.id),
        )


def _require_position_allowed(account: FundedAccount, value_minor: int) -> None:
    """The tier's count and share limits, then the risk rule, at the quoted price."""
    decision = position_decision(
        account.tier, len(account.positions), value_minor, account.current_balance_minor
    )
    if decision.refusal is not None:
        raise FundedAccountRefusal(
            FundedRefusalReason(decision.refusal.value), decision.message, **decision.details
        )
    largest = max([value_minor, *(held.market_value_minor for held in account.positions)])
    if Fraction(largest, account.current_balance_minor) > RISK_PER_TRADE_LIMIT:
        raise LedgerRefusal(
            ResultCode.POSITION_EXCEEDS_RISK_LIMIT,
            f"a position of {describe_money(value_minor, TIER_CURRENCY)} would put risk per "
            f"trade over {format_percent(RISK_PER_TRADE_LIMIT)} of the balance, "
            f"{describe_money(account.current_balance_minor, TIER_CURRENCY)}, which closes "
            "the account",
            currency=TIER_CURRENCY,
            value=format_amount(value_minor, TIER_CURRENCY),
            balance=format_amount(account.current_balance_minor, TIER_CURRENCY),
            value_minor=value_minor,
            balance_minor=account.current_balance_minor,
        )


def _open_position(account: FundedAccount, position_id: str) -> OpenPosition | None:
    return next((held for held in account.positions if held.position_id == position_id), None)


def _position_not_found(position_id: str) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.POSITION_NOT_FOUND, f"no open position {position_id}", position_id=position_id
    )


def _realized_pnl_commands(account: FundedAccount, position_id: str, fill: Fill) -> list[Command]:
    """A profit moves from the platform's trading P&L account to the trader's; a loss back."""
    pnl = fill.realized_pnl_minor
    if pnl == 0:
        return []
    trading_pnl = platform_account(AccountKind.TRADING_PNL)
    payer, payee = (
        (trading_pnl.account_id, account.ledger_account_id)
        if pnl > 0
        else (account.ledger_account_id, trading_pnl.account_id)
    )
    return [
        trading_pnl,
        create_transfer(
            idempotency_key=f"pnl-{uuid5(account.id, position_id)}",
            scope=FUNDED_SCOPE,
            postings=(
                Posting(payer, Side.DEBIT, abs(pnl), TIER_CURRENCY),
                Posting(payee, Side.CREDIT, abs(pnl), TIER_CURRENCY),
            ),
            metadata={
                "funded_account_id": str(account.id),
                "position_id": position_id,
                "purpose": "realized_pnl",
            },
        ),
    ]


def _violation_reason(status: AccountRuleStatus) -> str:
    broken = [
        f"{rule.rule.value} "
        + ("unbounded" if rule.value is None else f"{float(rule.value) * 100:.2f}%")
        + f" over its {float(rule.limit) * 100:.2f}% limit"
        for rule in status.rules
        if rule.band is RuleBand.VIOLATION
    ]
    return "rule violation: " + ("; ".join(broken) or "as last decided on fresh marks")


def _contended(funded_account_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.CONCURRENT_CHANGE,
        f"funded account {funded_account_id} kept changing under this request; retry",
        funded_account_id=str(funded_account_id),
    )
