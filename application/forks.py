"""Forks' use cases: propose, approve, execute (or roll back).

See docs/rules.md#tiers-forks-and-merges; the rules, the confidence score and
the amounts are in domain/fork.py.

Execution is two writes through the writer:

    start      Fork.Executing, the parent FORKING
    execute    the child funded account (Activated, LinkedToParent), its
               ledger account opened, the capital moved from the parent's
               ledger account in one balanced transfer, the parent's
               CapitalMovedOut and its return to ACTIVE, Fork.Completed

The second is all or nothing, so a failure leaves no child and moves no
money; the fork is then rolled back (the parent ACTIVE again, the reason
recorded). A process killed between the two finds the fork EXECUTING and
executes it again: the child's ids come from the fork's, so a second try
finds what the first made instead of making it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import structlog

from application.aggregate_writes import (
    change_alone,
    require_funded_account,
    retry_while_stale,
    write_with_aggregates,
)
from application.event_log import LedgerApplication
from application.funded_accounts import FUNDED_SCOPE
from application.ports.broker import Broker, BrokerError, Quote
from application.ports.clock import Clock
from application.ports.fork_load import ForkLoad
from application.ports.writer import Writer
from domain.commands import create_transfer, open_account
from domain.fork import (
    FORK_COOLDOWN,
    FORKS_EXECUTING_MAX,
    Confidence,
    Fork,
    ForkDecision,
    ForkInputs,
    ForkStatus,
    SymbolMarket,
    child_assessment_id,
    fork_confidence,
    fork_plan,
)
from domain.funded_account import FundedAccount, fork_capital_transfer_key, funded_account_id_for
from domain.funded_account_states import FundedAccountState
from domain.funded_rules import drawdown
from domain.money import describe_money, format_amount
from domain.ratios import format_ratio
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY, TIERS
from domain.transfer import Posting, Side

log = structlog.get_logger(__name__)

FORK_ACTOR_PREFIX: Final[str] = "fork"
# The actor of a proposal a dry run tries and throws away.
SCAN_DRY_RUN_ACTOR: Final[str] = "forks-scan-dry-run"


@dataclass(frozen=True, slots=True)
class ForkOutcome:
    fork: Fork
    child: FundedAccount | None = None


class ForksService:
    def __init__(
        self,
        app: LedgerApplication,
        writer: Writer,
        clock: Clock,
        load: ForkLoad,
        broker: Broker | None = None,
    ) -> None:
        self._app = app
        self._writer = writer
        self._clock = clock
        self._load = load
        # Quotes of the symbols an account holds, for the market factor; None:
        # no market is known, and every held symbol counts as unquoted.
        self._broker = broker

    def fork(self, fork_id: UUID) -> Fork | None:
        return self._app.load_fork(fork_id)

    def require_fork(self, fork_id: UUID) -> Fork:
        fork = self.fork(fork_id)
        if fork is None:
            raise LedgerRefusal(
                ResultCode.FORK_NOT_FOUND, f"no fork {fork_id}", fork_id=str(fork_id)
            )
        return fork

    def require_forks(self, fork_ids: Sequence[UUID]) -> list[Fork]:
        """The forks, in the order given, read in one query (a page of a list:
        its ids come from the forks view, so each is stored)."""
        found = self._app.load_forks(fork_ids)
        missing = [fork_id for fork_id in fork_ids if fork_id not in found]
        if missing:
            raise LedgerRefusal(
                ResultCode.FORK_NOT_FOUND, f"no fork {missing[0]}", fork_id=str(missing[0])
            )
        return [found[fork_id] for fork_id in fork_ids]

    def forks_executing(self) -> int:
        return self._load.forks_executing()

    def assess(self, funded_account_id: UUID) -> Confidence:
        """The confidence a fork of the account would be proposed with now."""
        return self._confidence(self._require_account(funded_account_id), self._clock.now())

    def check_proposal(self, funded_account_id: UUID) -> LedgerRefusal | None:
        """Why a fork of the account would be refused now (not active, in its
        cooldown, under its threshold), or None: what a dry run asks."""
        account = self._require_account(funded_account_id)
        now = self._clock.now()
        try:
            _require_active(account)
            last = account.last_fork_attempt_at
            if last is not None and now < last + FORK_COOLDOWN:
                # The same refusal the proposal would meet.
                account.record_fork_attempt(funded_account_id, now, FORK_COOLDOWN)
            Fork.propose(
                parent_id=account.id,
                parent_tier=account.tier.name,
                balance_minor=account.current_balance_minor,
                confidence=Confidence(()),
                at=now,
                actor=SCAN_DRY_RUN_ACTOR,
            )
        except LedgerRefusal as refusal:
            return refusal
        return None

    def propose(self, funded_account_id: UUID, actor: str) -> ForkOutcome:
        """Propose a fork of an account over its tier's threshold (once per 24
        hours). Its confidence decides: from 80 % approved and executed at
        once; from 70 % approved, executed at its execution step (the next
        scan, or `execute`); under 70 % it waits for an admin."""

        def attempt() -> ForkOutcome | None:
            account = self._require_account(funded_account_id)
            _require_active(account)
            now = self._clock.now()
            confidence = self._confidence(account, now)
            fork = Fork.propose(
                parent_id=account.id,
                parent_tier=account.tier.name,
                balance_minor=account.current_balance_minor,
                confidence=confidence,
                at=now,
                actor=actor,
            )
            account.record_fork_attempt(fork.id, now, FORK_COOLDOWN)
            if write_with_aggregates(self._writer, [], account, fork) is None:
                return None
            log.info(
                "fork_proposed",
                fork_id=str(fork.id),
                parent_id=str(account.id),
                confidence=format_ratio(confidence.score),
                decision=confidence.decision.value,
                status=fork.status.value,
                actor=actor,
            )
            if confidence.decision is ForkDecision.EXECUTE_AT_ONCE:
                try:
                    return self.execute(fork.id)
                except LedgerRefusal as refusal:
                    if refusal.code is not ResultCode.FORK_CAPACITY_REACHED:
                        raise
                    # Approved; the next scan executes it once a slot is free.
            return ForkOutcome(fork)

        return retry_while_stale(attempt, lambda: _contended(funded_account_id))

    def approve(self, fork_id: UUID, actor: str) -> ForkOutcome:
        """An admin's approval of a fork below the confidence bar; executed at once."""
        self._change(fork_id, lambda fork: fork.approve(actor, self._clock.now()))
        return self.execute(fork_id)

    def execute(self, fork_id: UUID) -> ForkOutcome:
        fork = self.require_fork(fork_id)
        if fork.status is ForkStatus.APPROVED and (
            self._load.forks_executing() >= FORKS_EXECUTING_MAX
        ):
            raise LedgerRefusal(
                ResultCode.FORK_CAPACITY_REACHED,
                f"{FORKS_EXECUTING_MAX} forks are executing; this one stays approved "
                "and is executed by the next scan",
                fork_id=str(fork_id),
            )
        try:
            if fork.status is ForkStatus.APPROVED:
                fork = self._start(fork_id)
            if fork.status is not ForkStatus.EXECUTING:
                child = (
                    self._app.load_funded_account(UUID(fork.child_id)) if fork.child_id else None
                )
                return ForkOutcome(fork, child)
            return self._move_capital(fork_id)
        except LedgerRefusal as refusal:
            if refusal.code is ResultCode.CONCURRENT_CHANGE:
                raise
            # The parent cannot fork now (it is no longer active, it would
            # keep too little): rolled back, nothing moved.
            return ForkOutcome(self._roll_back(fork.id, refusal.message))

    # Inside -------------------------------------------------------------------------

    def _confidence(self, account: FundedAccount, now: datetime) -> Confidence:
        limits = TIERS[account.tier.name]
        markets: list[SymbolMarket] = []
        unquoted: list[str] = []
        for symbol in sorted({held.symbol for held in account.positions}):
            quote = self._quote(symbol)
            if quote is None:
                unquoted.append(symbol)
                continue
            markets.append(
                SymbolMarket(
                    symbol,
                    quote.open_minor,
                    quote.last_close_minor,
                    quote.bid_minor,
                    quote.ask_minor,
                )
            )
        return fork_confidence(
            ForkInputs(
                balance_minor=account.current_balance_minor,
                threshold_minor=limits.fork_threshold_minor or 0,
                drawdown=drawdown(account.peak_balance_minor, account.equity_minor),
                drawdown_limit=limits.drawdown_limit,
                band=account.rule_status().band.value,
                forks_executing=self._load.forks_executing(),
                markets=tuple(markets),
                unquoted=tuple(unquoted),
                at=now,
            )
        )

    def _quote(self, symbol: str) -> Quote | None:
        if self._broker is None:
            return None
        try:
            return self._broker.quote(symbol)
        except BrokerError as error:
            log.warning("fork_market_quote_failed", symbol=symbol, error=str(error))
            return None

    def _start(self, fork_id: UUID) -> Fork:
        def attempt() -> Fork | None:
            fork = self.require_fork(fork_id)
            if fork.status is not ForkStatus.APPROVED:
                return fork
            parent = self._require_account(fork.parent_id)
            now = self._clock.now()
            fork.start(now)
            parent.change_state(FundedAccountState.FORKING, f"fork {fork.id}", _actor(fork.id), now)
            if write_with_aggregates(self._writer, [], parent, fork) is None:
                return None
            return fork

        return retry_while_stale(attempt, lambda: _contended(fork_id))

    def _move_capital(self, fork_id: UUID) -> ForkOutcome:
        def attempt() -> ForkOutcome | None:
            fork = self.require_fork(fork_id)
            plan = fork_plan(fork.parent_tier)
            assert plan is not None, "a fork was proposed for a tier that forks"
            if fork.status is not ForkStatus.EXECUTING:
                return ForkOutcome(fork)
            parent = self._require_account(fork.parent_id)
            available = parent.current_balance_minor - parent.reserved_withdrawals_minor
            if available < plan.executable_from_minor:
                raise LedgerRefusal(
                    ResultCode.INSUFFICIENT_CAPITAL,
                    f"the parent would keep less than its tier's minimum: it holds "
                    f"{describe_money(available, TIER_CURRENCY)}, a fork needs "
                    f"{describe_money(plan.executable_from_minor, TIER_CURRENCY)}",
                    currency=TIER_CURRENCY,
                    available=format_amount(available, TIER_CURRENCY),
                    needed=format_amount(plan.executable_from_minor, TIER_CURRENCY),
                    available_minor=available,
                    needed_minor=plan.executable_from_minor,
                )
            now = self._clock.now()
            assessment = child_assessment_id(fork.id)
            child_id = funded_account_id_for(assessment)
            child_ledger = open_account(
                idempotency_key=f"account-{child_id}",
                scope=FUNDED_SCOPE,
                currency=TIER_CURRENCY,
                owner_id=parent.owner_id,
                metadata={"funded_account_id": str(child_id), "tier": fork.child_tier.value},
            )
            child = FundedAccount.activate(
                assessment_id=assessment,
                owner_id=parent.owner_id,
                tier=fork.child_tier,
                profit_split=parent.profit_split,
                completed_at=now,
                ledger_account_id=child_ledger.account_id,
                activated_at=now,
                actor=_actor(fork.id),
                starting_balance_minor=fork.amount_minor,
            )
            child.link_to_parent(parent.id, fork.id, now)
            capital = create_transfer(
                idempotency_key=fork_capital_transfer_key(fork.id),
                scope=FUNDED_SCOPE,
                postings=(
                    Posting(parent.ledger_account_id, Side.DEBIT, fork.amount_minor, TIER_CURRENCY),
                    Posting(child_ledger.account_id, Side.CREDIT, fork.amount_minor, TIER_CURRENCY),
                ),
                metadata={
                    "fork_id": str(fork.id),
                    "parent_funded_account_id": str(parent.id),
                    "child_funded_account_id": str(child_id),
                    "purpose": "fork",
                },
            )
            parent.move_capital_out(fork.amount_minor, child_id, fork.id, now)
            parent.change_state(
                FundedAccountState.ACTIVE, f"fork {fork.id} completed", _actor(fork.id), now
            )
            fork.complete(child_id, now)
            receipt = write_with_aggregates(
                self._writer, [child_ledger, capital], parent, child, fork
            )
            if receipt is None:
                return None
            log.info(
                "fork_completed",
                fork_id=str(fork.id),
                parent_id=str(parent.id),
                child_id=str(child_id),
                amount_minor=fork.amount_minor,
            )
            return ForkOutcome(fork, child)

        return retry_while_stale(attempt, lambda: _contended(fork_id))

    def _roll_back(self, fork_id: UUID, reason: str) -> Fork:
        def attempt() -> Fork | None:
            fork = self.require_fork(fork_id)
            if fork.status not in (ForkStatus.APPROVED, ForkStatus.EXECUTING):
                return fork
            parent = self._require_account(fork.parent_id)
            now = self._clock.now()
            fork.roll_back(reason, now)
            if parent.state is FundedAccountState.FORKING:
                parent.change_state(
                    FundedAccountState.ACTIVE, f"fork {fork.id} rolled back", _actor(fork.id), now
                )
            if write_with_aggregates(self._writer, [], parent, fork) is None:
                return None
            log.warning("fork_rolled_back", fork_id=str(fork.id), reason=reason)
            return fork

        return retry_while_stale(attempt, lambda: _contended(fork_id))

    def _change(self, fork_id: UUID, decide: Callable[[Fork], None]) -> Fork:
        return change_alone(
            self._writer,
            lambda: self.require_fork(fork_id),
            decide,
            lambda: _contended(fork_id),
        )

    def _require_account(self, funded_account_id: UUID) -> FundedAccount:
        return require_funded_account(self._app, funded_account_id)


def _require_active(account: FundedAccount) -> None:
    if account.state is not FundedAccountState.ACTIVE:
        raise LedgerRefusal(
            ResultCode.ACCOUNT_NOT_ACTIVE,
            f"a {account.state.value} funded account does not fork",
            state=account.state.value,
        )


def _actor(fork_id: UUID) -> str:
    return f"{FORK_ACTOR_PREFIX}:{fork_id}"


def _contended(aggregate_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.CONCURRENT_CHANGE,
        "the fork kept changing under this request; send it again",
        id=str(aggregate_id),
    )
