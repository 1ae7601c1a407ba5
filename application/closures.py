"""Account closure's use cases: initiate, advance through the phases, resume.

See docs/rules.md#account-closure; the process and its timers are in
domain/closure.py.

This module does each phase's work against the outside world (the broker, the
withdrawals, the mailer) and records what happened:

    initiated     the starting email; then liquidating
    liquidating   cancel open orders, close every position through the
                  broker (each close posts its P&L); cleared -> settling
    settling      T+1: settled when the next business day has come and the
                  broker holds nothing; checked every 2 hours; stuck after 3
                  business days
    withdrawing   a tranche of at most $50,000 as a withdrawal (held, then
                  paid out through the PayoutGateway with its own key); the
                  next not before exactly 24 hours later; monitored every 2
                  hours; a failed tranche is asked for again after a backoff
    closing       the rest (the platform's capital and share) returned to
                  the platform's funding account, the ledger account and the
                  funded account closed, in one write (the ledger refuses to
                  close an account whose balance is not zero: the final
                  check); then the completion email with the total paid out

`advance` runs every step that is due now, one after another, and records
each before the next: a process killed between two steps repeats at most the
step it was in, and every step is safe to repeat. A step that raises is
recorded as a failed attempt with its backoff; past the phase's deadline the
closure is marked stuck, for a person.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar
from uuid import UUID

import structlog

from application.aggregate_writes import change_alone, retry_while_stale, write_with_aggregates
from application.event_log import LedgerApplication
from application.funded_accounts import FundedAccountsService, platform_account
from application.ports.broker import Broker, BrokerError, UnknownAccount
from application.ports.clock import Clock
from application.ports.closure_mailer import (
    ClosureEmail,
    ClosureEmailKind,
    Mailer,
    closure_email_message_id,
)
from application.ports.closure_progress import ClosureProgress, NoClosureProgress
from application.ports.writer import Writer
from application.withdrawals import WithdrawalRequest, WithdrawalsService
from domain.account import AccountKind, AccountState
from domain.closure import (
    CLOSING_TIMEOUT,
    LIQUIDATION_TIMEOUT,
    SETTLEMENT_BUSINESS_DAYS,
    SETTLEMENT_CHECK_INTERVAL,
    SETTLEMENT_TIMEOUT_BUSINESS_DAYS,
    TRANCHE_MAX_MINOR,
    TRANCHE_TIMEOUT,
    TRANSFER_CHECK_INTERVAL,
    Closure,
    ClosurePhase,
    TrancheStatus,
    add_business_days,
    closure_id_for,
)
from domain.commands import Command, change_account_state, create_transfer
from domain.funded_account import FundedAccount
from domain.funded_account_states import ALLOWED_TRANSITIONS, FundedAccountState
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY
from domain.transfer import Posting, Side
from domain.withdrawal import WithdrawalStatus, withdrawal_id_for

log = structlog.get_logger(__name__)

CLOSURE_SCOPE: Final[str] = "closure"
_T = TypeVar("_T")

# Steps one `advance` runs at most: every phase's step, and a few repeats,
# but never a loop that does not end.
STEPS_PER_ADVANCE_MAX: Final[int] = 24


@dataclass(frozen=True, slots=True)
class ClosureRequest:
    funded_account_id: UUID
    recipient_name: str
    recipient_address: str
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class ClosureOutcome:
    closure: Closure
    # False: the account's closure existed already (initiating again finds it).
    created: bool
    position: int | None


@dataclass(frozen=True, slots=True)
class ResumePlan:
    closure: Closure
    # What resuming does, for a dry run and for the log.
    phase: ClosurePhase
    deadline_at: datetime | None


class ClosuresService:
    def __init__(
        self,
        app: LedgerApplication,
        writer: Writer,
        funded_accounts: FundedAccountsService,
        withdrawals: WithdrawalsService,
        broker: Broker,
        mailer: Mailer,
        clock: Clock,
        progress: ClosureProgress | None = None,
    ) -> None:
        self._progress = progress or NoClosureProgress()
        self._app = app
        self._writer = writer
        self._funded_accounts = funded_accounts
        self._withdrawals = withdrawals
        self._broker = broker
        self._mailer = mailer
        self._clock = clock

    # Reading ------------------------------------------------------------------------

    def closure(self, closure_id: UUID) -> Closure | None:
        return self._app.load_closure(closure_id)

    def closure_of(self, funded_account_id: UUID) -> Closure | None:
        return self.closure(closure_id_for(funded_account_id))

    def require_closure(self, closure_id: UUID) -> Closure:
        closure = self.closure(closure_id)
        if closure is None:
            raise LedgerRefusal(
                ResultCode.CLOSURE_NOT_FOUND,
                f"no closure {closure_id}",
                closure_id=str(closure_id),
            )
        return closure

    # Initiation ---------------------------------------------------------------------

    def initiate(self, request: ClosureRequest) -> ClosureOutcome:
        """Start closing the account: PENDING_CLOSURE and `Initiated` in one
        write, answered at once; the worker does the rest. Again: the same
        closure."""

        def attempt() -> ClosureOutcome | None:
            existing = self.closure_of(request.funded_account_id)
            if existing is not None:
                return ClosureOutcome(existing, created=False, position=None)
            account = self._funded_accounts.require_funded_account(request.funded_account_id)
            if FundedAccountState.PENDING_CLOSURE not in ALLOWED_TRANSITIONS[account.state]:
                raise LedgerRefusal(
                    ResultCode.ACCOUNT_NOT_ACTIVE,
                    f"a {account.state.value} funded account cannot be closed now",
                    state=account.state.value,
                )
            now = self._clock.now()
            closure = Closure.initiate(
                funded_account_id=account.id,
                owner_id=account.owner_id,
                ledger_account_id=account.ledger_account_id,
                recipient_name=request.recipient_name,
                recipient_address=request.recipient_address,
                reason=request.reason,
                at=now,
                actor=request.actor,
            )
            account.change_state(
                FundedAccountState.PENDING_CLOSURE,
                f"closure {closure.confirmation_number}: {request.reason}"[:500],
                request.actor,
                now,
            )
            receipt = write_with_aggregates(self._writer, [], account, closure)
            if receipt is None:
                return None
            self._progress.closure_changed(closure)
            log.info(
                "closure_initiated",
                closure_id=str(closure.id),
                funded_account_id=str(account.id),
                confirmation_number=closure.confirmation_number,
                actor=request.actor,
            )
            return ClosureOutcome(closure, created=True, position=receipt.position)

        return retry_while_stale(
            attempt, lambda: _contended(closure_id_for(request.funded_account_id))
        )

    # Advancing ----------------------------------------------------------------------

    def advance(self, closure_id: UUID) -> Closure:
        """Run every step that is due now, recording each; the closure after."""
        closure = self.require_closure(closure_id)
        for _ in range(STEPS_PER_ADVANCE_MAX):
            now = self._clock.now()
            if not closure.due(now):
                break
            version = closure.version
            closure = self._step(closure, now)
            if closure.version == version:
                # A step that recorded nothing would only repeat itself.
                break
        return closure

    def _step(self, closure: Closure, now: datetime) -> Closure:
        step = self._steps()[closure.phase]
        try:
            return step(closure, now)
        except Exception as error:  # noqa: BLE001 - every failure of a step is retried
            # Any failure of a step (the broker, the mailer, the payout, a
            # refusal): the phase's backoff, then stuck past its deadline.
            described = f"{type(error).__name__}: {error}"
            log.warning(
                "closure_step_failed",
                closure_id=str(closure.id),
                phase=closure.phase.value,
                error=described,
            )
            return self._change(closure.id, lambda fresh: fresh.attempt_failed(described, now))

    def _steps(self) -> dict[ClosurePhase, Callable[[Closure, datetime], Closure]]:
        return {
            ClosurePhase.INITIATED: self._initiated,
            ClosurePhase.LIQUIDATING: self._liquidating,
            ClosurePhase.SETTLING: self._settling,
            ClosurePhase.WITHDRAWING: self._withdrawing,
            ClosurePhase.CLOSING: self._closing,
        }

    def _initiated(self, closure: Closure, now: datetime) -> Closure:
        self._send_email(closure, ClosureEmailKind.STARTED, closure.initiated_at)

        def decide(fresh: Closure) -> None:
            fresh.email_sent(
                ClosureEmailKind.STARTED.value,
                closure_email_message_id(fresh.id, ClosureEmailKind.STARTED),
                now,
            )
            fresh.enter(ClosurePhase.LIQUIDATING, now, deadline_at=now + LIQUIDATION_TIMEOUT)

        return self._change(closure.id, decide)

    def _liquidating(self, closure: Closure, now: datetime) -> Closure:
        funded_account_id = closure.funded_account_id
        # The broker may never have held the account: no order can rest there.
        with contextlib.suppress(UnknownAccount):
            self._broker_call(lambda: self._broker.cancel_open_orders(funded_account_id))
        for held in self._funded_accounts.require_funded_account(funded_account_id).positions:
            self._funded_accounts.close_position(funded_account_id, held.position_id, enforce=False)
        at_broker = self._broker_positions(funded_account_id)
        in_ledger = len(self._funded_accounts.require_funded_account(funded_account_id).positions)
        if at_broker or in_ledger:
            raise _NotYet(
                f"positions have not cleared yet ({at_broker} at the broker, {in_ledger} in "
                "the ledger)"
            )

        def decide(fresh: Closure) -> None:
            fresh.enter(
                ClosurePhase.SETTLING,
                now,
                settles_at=add_business_days(now, SETTLEMENT_BUSINESS_DAYS),
                deadline_at=add_business_days(now, SETTLEMENT_TIMEOUT_BUSINESS_DAYS),
                next_action_at=now + SETTLEMENT_CHECK_INTERVAL,
            )

        return self._change(closure.id, decide)

    def _settling(self, closure: Closure, now: datetime) -> Closure:
        settled = (
            closure.settles_at is not None
            and now >= closure.settles_at
            and self._broker_positions(closure.funded_account_id) == 0
        )

        def decide(fresh: Closure) -> None:
            if settled:
                fresh.enter(ClosurePhase.WITHDRAWING, now)
            elif fresh.deadline_at is not None and now >= fresh.deadline_at:
                fresh.mark_stuck(
                    f"settlement timed out after {SETTLEMENT_TIMEOUT_BUSINESS_DAYS} business "
                    "days: the broker still reports open positions or unsettled trades",
                    now,
                )
            else:
                check_at = now + SETTLEMENT_CHECK_INTERVAL
                if fresh.deadline_at is not None:
                    check_at = min(check_at, fresh.deadline_at)
                fresh.wait(check_at, now, "settlement checked: not yet")

        return self._change(closure.id, decide)

    def _withdrawing(self, closure: Closure, now: datetime) -> Closure:
        in_flight = closure.tranche_in_flight
        if in_flight is not None:
            return self._monitor_tranche(closure, in_flight, now)
        account = self._funded_accounts.require_funded_account(closure.funded_account_id)
        withdrawable = account.withdrawable_minor()
        if withdrawable == 0:
            return self._change(
                closure.id,
                lambda fresh: fresh.enter(
                    ClosurePhase.CLOSING, now, deadline_at=now + CLOSING_TIMEOUT
                ),
            )
        not_before = closure.next_tranche_not_before
        if not_before is not None and now < not_before:
            return self._change(
                closure.id, lambda fresh: fresh.wait(not_before, now, "next tranche not before")
            )
        return self._request_tranche(closure, account, withdrawable, now)

    def _request_tranche(
        self, closure: Closure, account: FundedAccount, withdrawable: int, now: datetime
    ) -> Closure:
        key = closure.next_tranche_key()
        # Asked for before a crash but not recorded: take that one, as it is.
        earlier = self._withdrawals.withdrawal(withdrawal_id_for(account.id, key))
        if earlier is not None:
            withdrawal, requested_at = earlier, earlier.requested_at
        else:
            withdrawal = self._withdrawals.request(
                WithdrawalRequest(
                    funded_account_id=account.id,
                    amount_minor=min(TRANCHE_MAX_MINOR, withdrawable),
                    request_key=key,
                    actor=f"closure:{closure.confirmation_number}",
                    closure_tranche=True,
                )
            ).withdrawal
            requested_at = now
        log.info(
            "closure_tranche_requested",
            closure_id=str(closure.id),
            withdrawal_id=str(withdrawal.id),
            amount_minor=withdrawal.amount_minor,
        )
        return self._change(
            closure.id,
            lambda fresh: fresh.tranche_requested(
                withdrawal.id, withdrawal.amount_minor, requested_at
            ),
        )

    def _monitor_tranche(
        self, closure: Closure, tranche: dict[str, object], now: datetime
    ) -> Closure:
        withdrawal_id = UUID(str(tranche["withdrawal_id"]))
        # Pays it out if it is due (the payout worker may have already): the
        # same idempotency key every time, one payout.
        withdrawal = self._withdrawals.pay_out(withdrawal_id)
        if withdrawal.status is WithdrawalStatus.COMPLETED:
            return self._change(
                closure.id,
                lambda fresh: fresh.tranche_settled(
                    TrancheStatus.COMPLETED, withdrawal.payout_id, now
                ),
            )
        if withdrawal.status in (WithdrawalStatus.FAILED, WithdrawalStatus.REJECTED):
            error = withdrawal.failure_code or withdrawal.rejected_reason or "failed"
            return self._change(
                closure.id,
                lambda fresh: fresh.tranche_settled(
                    TrancheStatus.FAILED, withdrawal.payout_id, now, error
                ),
            )
        requested_at = datetime.fromisoformat(str(tranche["requested_at"]))
        # Waited for since its request, or since an operator resumed it.
        waited_from = max(requested_at, closure.resumed_at or requested_at)

        def decide(fresh: Closure) -> None:
            if now >= waited_from + TRANCHE_TIMEOUT:
                fresh.mark_stuck(
                    f"tranche {tranche['number']} has not been paid after "
                    f"{TRANCHE_TIMEOUT.days} days (withdrawal {withdrawal.status.value})",
                    now,
                )
            else:
                fresh.wait(now + TRANSFER_CHECK_INTERVAL, now, "tranche payout checked")

        return self._change(closure.id, decide)

    def _closing(self, closure: Closure, now: datetime) -> Closure:
        if closure.capital_returned_minor is None:
            return self._close_out(closure, now)
        self._send_email(closure, ClosureEmailKind.COMPLETED, now, closure.total_paid_minor)

        def decide(fresh: Closure) -> None:
            fresh.email_sent(
                ClosureEmailKind.COMPLETED.value,
                closure_email_message_id(fresh.id, ClosureEmailKind.COMPLETED),
                now,
            )
            fresh.enter(ClosurePhase.COMPLETED, now)

        closed = self._change(closure.id, decide)
        log.info(
            "closure_completed",
            closure_id=str(closure.id),
            total_paid_minor=closed.total_paid_minor,
        )
        return closed

    def _close_out(self, closure: Closure, now: datetime) -> Closure:
        """Final checks, the rest back to the platform, both accounts closed:
        one write, or nothing."""
        if self._broker_positions(closure.funded_account_id):
            raise _NotYet("the broker still reports open positions")

        def attempt() -> Closure | None:
            fresh = self.require_closure(closure.id)
            account = self._funded_accounts.require_funded_account(closure.funded_account_id)
            if account.positions or account.reserved_withdrawals_minor:
                raise _NotYet("positions or withdrawals are still open on the account")
            ledger_account = self._app.load_account(closure.ledger_account_id)
            if ledger_account is None:
                raise LookupError(f"no ledger account {closure.ledger_account_id}")
            totals = ledger_account.totals
            if totals.debits_pending or totals.credits_pending:
                raise _NotYet("the ledger account still holds pending transfers")
            balance = totals.credits_posted - totals.debits_posted
            commands: list[Command] = []
            if balance:
                funding = platform_account(AccountKind.FUNDING)
                source, target = (
                    (closure.ledger_account_id, funding.account_id)
                    if balance > 0
                    else (funding.account_id, closure.ledger_account_id)
                )
                commands += [
                    funding,
                    create_transfer(
                        idempotency_key=f"capital-return-{closure.id}",
                        scope=CLOSURE_SCOPE,
                        postings=(
                            Posting(source, Side.DEBIT, abs(balance), TIER_CURRENCY),
                            Posting(target, Side.CREDIT, abs(balance), TIER_CURRENCY),
                        ),
                        metadata={
                            "closure_id": str(closure.id),
                            "funded_account_id": str(account.id),
                            "purpose": "capital_return",
                        },
                    ),
                ]
            reason = f"closure {closure.confirmation_number}"
            commands.append(
                change_account_state(
                    account_id=closure.ledger_account_id,
                    new_state=AccountState.CLOSED,
                    reason=reason,
                    actor=f"closure:{closure.confirmation_number}",
                )
            )
            account.change_state(
                FundedAccountState.CLOSED, reason, f"closure:{closure.confirmation_number}", now
            )
            fresh.closed_out(balance, now)
            if write_with_aggregates(self._writer, commands, account, fresh) is None:
                return None
            self._progress.closure_changed(fresh)
            log.info(
                "closure_closed_out",
                closure_id=str(closure.id),
                capital_returned_minor=balance,
            )
            return fresh

        return retry_while_stale(attempt, lambda: _contended(closure.id))

    # Operators ----------------------------------------------------------------------

    def resume_plan(self, closure_id: UUID) -> ResumePlan:
        """What resuming would do (a dry run): the phase tried again, now, with
        a new deadline."""
        closure = self.require_closure(closure_id)
        if not closure.stuck:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                "the closure is not stuck: nothing to resume",
                from_state=closure.phase.value,
                to_state=closure.phase.value,
            )
        return ResumePlan(closure, closure.phase, _phase_deadline(closure, self._clock.now()))

    def resume(self, closure_id: UUID, actor: str) -> Closure:
        plan = self.resume_plan(closure_id)
        now = self._clock.now()
        self._change(closure_id, lambda fresh: fresh.resume(actor, now, plan.deadline_at))
        log.info("closure_resumed", closure_id=str(closure_id), phase=plan.phase.value, actor=actor)
        return self.advance(closure_id)

    # Inside -------------------------------------------------------------------------

    def _send_email(
        self,
        closure: Closure,
        kind: ClosureEmailKind,
        at: datetime,
        amount_paid_minor: int | None = None,
    ) -> None:
        self._mailer.send(
            ClosureEmail(
                message_id=closure_email_message_id(closure.id, kind),
                kind=kind,
                recipient_name=closure.recipient_name,
                recipient_address=closure.recipient_address,
                funded_account_id=closure.funded_account_id,
                confirmation_number=closure.confirmation_number,
                at=at,
                amount_paid_minor=amount_paid_minor,
                currency=TIER_CURRENCY,
            )
        )

    def _broker_positions(self, funded_account_id: UUID) -> int:
        try:
            return len(self._broker_call(lambda: self._broker.open_positions(funded_account_id)))
        except UnknownAccount:
            # The broker never held the account: nothing is open there.
            return 0

    def _broker_call(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except UnknownAccount:
            raise
        except BrokerError as error:
            raise _NotYet(f"the broker: {error}") from error

    def _change(self, closure_id: UUID, decide: Callable[[Closure], None]) -> Closure:
        """Read, decide, record the closure alone; again if another process
        recorded first."""
        version = -1

        def load() -> Closure:
            nonlocal version
            closure = self.require_closure(closure_id)
            version = closure.version
            return closure

        closure = change_alone(self._writer, load, decide, lambda: _contended(closure_id))
        if closure.version != version:
            self._progress.closure_changed(closure)
        return closure


class _NotYet(Exception):
    """A step that cannot finish yet: retried after the phase's backoff."""


def _phase_deadline(closure: Closure, now: datetime) -> datetime | None:
    timeouts = {
        ClosurePhase.INITIATED: CLOSING_TIMEOUT,
        ClosurePhase.LIQUIDATING: LIQUIDATION_TIMEOUT,
        ClosurePhase.CLOSING: CLOSING_TIMEOUT,
    }
    if closure.phase is ClosurePhase.SETTLING:
        return add_business_days(now, SETTLEMENT_TIMEOUT_BUSINESS_DAYS)
    if closure.phase in timeouts:
        return now + timeouts[closure.phase]
    return None


def _contended(closure_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.CONCURRENT_CHANGE,
        "the closure kept changing under this request; send it again",
        closure_id=str(closure_id),
    )
