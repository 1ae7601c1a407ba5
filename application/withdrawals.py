"""Withdrawals' use cases: request, approve, reject, pay out, settle.

See docs/rules.md#funded-accounts-and-withdrawals.

Each step writes the withdrawal's event together with the money and the funded
account's figures it changes, in one transaction through the writer
(`write_with_aggregates`):

    request    Withdrawal.Requested (+ Approved under $1,000)
               FundedAccount.WithdrawalReserved
               a pending transfer (hold): trader's account -> payouts clearing
    complete   Withdrawal.Completed, FundedAccount.WithdrawalRecorded, hold posted
    reject     Withdrawal.Rejected,  FundedAccount.WithdrawalReleased, hold voided
    fail       Withdrawal.Failed,    FundedAccount.WithdrawalReleased, hold voided

The reservation is what makes concurrent requests safe: every request
changes the funded account, the writer checks the version each was decided
on, and a request decided on a stale account is decided again (and refused
once nothing is left to withdraw). So fifty requests at once can never
together pass the withdrawable amount.

Paying out calls the PayoutGateway outside any transaction, then records
what it answered. The payout's idempotency key comes from the withdrawal, so
a call repeated after a crash between the payout and its recording (or after
a timeout) gets the same payout back: never a second one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

import structlog

from application.aggregate_locks import AggregateLocks
from application.aggregate_writes import (
    change_alone,
    require_funded_account,
    retry_while_stale,
    write_with_aggregates,
)
from application.event_log import LedgerApplication
from application.funded_accounts import platform_account
from application.ports.clock import Clock
from application.ports.payout_gateway import (
    WITHDRAWAL_ID_METADATA_KEY,
    Payout,
    PayoutGateway,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    PayoutUnavailable,
)
from application.ports.writer import Writer
from domain.account import AccountKind
from domain.commands import PostPendingTransfer, VoidPendingTransfer, create_transfer
from domain.funded_account import FundedAccount
from domain.funded_rules import WITHDRAWAL_APPROVAL_THRESHOLD_MINOR
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY
from domain.transfer import Posting, Side
from domain.withdrawal import (
    Withdrawal,
    WithdrawalStatus,
    payout_idempotency_key,
    withdrawal_id_for,
)

log = structlog.get_logger(__name__)

WITHDRAWAL_SCOPE: Final[str] = "withdrawal"
# The processor's statuses that settle a payout, and how.
_PAID: Final = frozenset({PayoutStatus.PAID})
_NOT_PAID: Final = frozenset({PayoutStatus.FAILED, PayoutStatus.CANCELED})


@dataclass(frozen=True, slots=True)
class WithdrawalRequest:
    funded_account_id: UUID
    amount_minor: int
    # The client's key for this request: the same key finds the same withdrawal.
    request_key: str
    actor: str
    # A closure's tranche: from an account pending closure, no minimum, and
    # approved at once whatever the amount (the closure is the approval).
    closure_tranche: bool = False


@dataclass(frozen=True, slots=True)
class WithdrawalOutcome:
    withdrawal: Withdrawal
    # False: an earlier identical request made it.
    created: bool
    # Log position of the write (None when nothing was written).
    position: int | None


@dataclass(frozen=True, slots=True)
class PayoutUpdate:
    """What became of a payout: what the processor reported, from where."""

    payout: Payout
    # Who reported it, for the event's actor: "stripe-webhook:evt_...".
    reported_by: str


class WithdrawalsService:
    def __init__(
        self, app: LedgerApplication, writer: Writer, gateway: PayoutGateway, clock: Clock
    ) -> None:
        self._app = app
        self._writer = writer
        self._gateway = gateway
        self._clock = clock
        # Requests on one funded account queue here rather than race (see
        # application/aggregate_locks.py).
        self._account_locks = AggregateLocks()

    # Reading ------------------------------------------------------------------------

    def withdrawal(self, withdrawal_id: UUID) -> Withdrawal | None:
        return self._app.load_withdrawal(withdrawal_id)

    def require_withdrawal(self, withdrawal_id: UUID) -> Withdrawal:
        withdrawal = self.withdrawal(withdrawal_id)
        if withdrawal is None:
            raise LedgerRefusal(
                ResultCode.WITHDRAWAL_NOT_FOUND,
                f"no withdrawal {withdrawal_id}",
                withdrawal_id=str(withdrawal_id),
            )
        return withdrawal

    # Request ------------------------------------------------------------------------

    def request(self, request: WithdrawalRequest) -> WithdrawalOutcome:
        """Reserve the amount and hold it on the trader's ledger account, in one
        write. Refused (nothing written) unless the account is active, holds no
        position, and the amount is from the minimum to the withdrawable."""
        withdrawal_id = withdrawal_id_for(request.funded_account_id, request.request_key)
        with self._account_locks.hold(request.funded_account_id):
            return self._request(request, withdrawal_id)

    def _request(self, request: WithdrawalRequest, withdrawal_id: UUID) -> WithdrawalOutcome:
        def attempt() -> WithdrawalOutcome | None:
            existing = self.withdrawal(withdrawal_id)
            if existing is not None:
                _require_same_request(existing, request)
                return WithdrawalOutcome(existing, created=False, position=None)
            account = self._require_funded_account(request.funded_account_id)
            now = self._clock.now()
            account.reserve_withdrawal(
                request.amount_minor, str(withdrawal_id), now, closing=request.closure_tranche
            )
            clearing = platform_account(AccountKind.PAYOUTS_CLEARING)
            hold = create_transfer(
                idempotency_key=f"hold-{withdrawal_id}",
                scope=WITHDRAWAL_SCOPE,
                postings=(
                    Posting(
                        account.ledger_account_id, Side.DEBIT, request.amount_minor, TIER_CURRENCY
                    ),
                    Posting(clearing.account_id, Side.CREDIT, request.amount_minor, TIER_CURRENCY),
                ),
                pending=True,
                metadata={
                    "withdrawal_id": str(withdrawal_id),
                    "funded_account_id": str(account.id),
                    "purpose": "withdrawal",
                },
            )
            withdrawal = Withdrawal.request(
                withdrawal_id=withdrawal_id,
                funded_account_id=account.id,
                owner_id=account.owner_id,
                ledger_account_id=account.ledger_account_id,
                amount_minor=request.amount_minor,
                currency=TIER_CURRENCY,
                hold_transfer_id=hold.transfer_id,
                approval_required=not request.closure_tranche
                and request.amount_minor >= WITHDRAWAL_APPROVAL_THRESHOLD_MINOR,
                requested_at=now,
                actor=request.actor,
            )
            receipt = write_with_aggregates(self._writer, [clearing, hold], account, withdrawal)
            if receipt is None:
                return None
            log.info(
                "withdrawal_requested",
                withdrawal_id=str(withdrawal_id),
                funded_account_id=str(account.id),
                amount_minor=request.amount_minor,
                status=withdrawal.status.value,
                actor=request.actor,
            )
            return WithdrawalOutcome(withdrawal, created=True, position=receipt.position)

        return retry_while_stale(attempt, lambda: _contended(withdrawal_id))

    # Admin decisions ----------------------------------------------------------------

    def approve(self, withdrawal_id: UUID, actor: str) -> Withdrawal:
        """An admin's approval; the payout worker pays it out next."""

        def decide(withdrawal: Withdrawal) -> None:
            withdrawal.approve(actor, self._clock.now())

        withdrawal = self._change(withdrawal_id, decide)
        log.info("withdrawal_approved", withdrawal_id=str(withdrawal_id), actor=actor)
        return withdrawal

    def reject(self, withdrawal_id: UUID, reason: str, actor: str) -> Withdrawal:
        """An admin's rejection: the hold is voided and the amount is
        withdrawable again, in the same write."""

        def decide(withdrawal: Withdrawal) -> bool:
            withdrawal.reject(reason, actor, self._clock.now())
            return True

        withdrawal = self._settle(withdrawal_id, decide, paid=False)
        log.info("withdrawal_rejected", withdrawal_id=str(withdrawal_id), actor=actor)
        return withdrawal

    def resume_payouts(self, withdrawal_id: UUID, actor: str) -> Withdrawal:
        """Start payout attempts again for a withdrawal that gave up retrying."""

        def decide(withdrawal: Withdrawal) -> None:
            withdrawal.retry_payouts(actor, self._clock.now())

        return self._change(withdrawal_id, decide)

    # Payout -------------------------------------------------------------------------

    def pay_out(self, withdrawal_id: UUID) -> Withdrawal:
        """One payout attempt for an approved withdrawal whose time has come:
        ask the processor (same key every time), record what it answered. A
        transient failure is recorded with the time of the next attempt; a
        refusal fails the withdrawal and gives the amount back."""
        withdrawal = self.require_withdrawal(withdrawal_id)
        if not withdrawal.payout_due(self._clock.now()):
            return withdrawal
        request = PayoutRequest(
            idempotency_key=payout_idempotency_key(withdrawal.id),
            amount_minor=withdrawal.amount_minor,
            currency=withdrawal.currency,
            metadata={
                WITHDRAWAL_ID_METADATA_KEY: str(withdrawal.id),
                "funded_account_id": str(withdrawal.funded_account_id),
            },
            description=f"Funded account withdrawal {withdrawal.id}",
        )
        try:
            payout = self._gateway.create_payout(request)
        except PayoutUnavailable as error:
            log.warning(
                "withdrawal_payout_unavailable", withdrawal_id=str(withdrawal_id), error=str(error)
            )
            return self._payout_attempt_failed(withdrawal_id, str(error))
        except PayoutRejected as error:
            log.warning(
                "withdrawal_payout_rejected", withdrawal_id=str(withdrawal_id), code=error.code
            )
            return self._settle_not_paid(
                withdrawal_id, error.code, error.detail, f"payout:{self._gateway.name}", None
            )
        withdrawal = self._record_paid_out(withdrawal_id, payout)
        # A processor that settles at once (the sandbox) needs no webhook.
        return self.apply_payout_update(PayoutUpdate(payout, f"payout:{self._gateway.name}"))

    def apply_payout_update(self, update: PayoutUpdate) -> Withdrawal:
        """Settle a withdrawal by what the processor says of its payout: paid
        completes it (the hold is posted), failed or canceled fails it (the
        hold is voided). Pending and in-transit change nothing, and neither
        does anything said of a withdrawal already settled: each message is
        applied once however often and in whatever order it comes."""
        payout = update.payout
        withdrawal_id = _withdrawal_id_of(payout)
        withdrawal = self.require_withdrawal(withdrawal_id)
        if withdrawal.is_final:
            if _contradicts(withdrawal, payout):
                # A paid payout returned later by the bank, say: for a person,
                # and for reconciliation, which compares both records.
                log.warning(
                    "withdrawal_payout_changed_after_settling",
                    withdrawal_id=str(withdrawal_id),
                    status=withdrawal.status.value,
                    payout_status=payout.status.value,
                    payout_id=payout.payout_id,
                )
            return withdrawal
        if payout.status in _PAID:
            return self._complete(withdrawal_id, payout, update.reported_by)
        if payout.status in _NOT_PAID:
            return self._settle_not_paid(
                withdrawal_id,
                payout.failure_code or f"payout_{payout.status.value}",
                payout.failure_message or f"the payout was {payout.status.value}",
                update.reported_by,
                payout.payout_id,
            )
        return withdrawal

    # Inside -------------------------------------------------------------------------

    def _record_paid_out(self, withdrawal_id: UUID, payout: Payout) -> Withdrawal:
        def decide(withdrawal: Withdrawal) -> None:
            if withdrawal.status is WithdrawalStatus.APPROVED:
                withdrawal.paid_out(payout.payout_id, self._gateway.name, self._clock.now())

        withdrawal = self._change(withdrawal_id, decide)
        log.info(
            "withdrawal_paid_out",
            withdrawal_id=str(withdrawal_id),
            payout_id=payout.payout_id,
            gateway=self._gateway.name,
        )
        return withdrawal

    def _payout_attempt_failed(self, withdrawal_id: UUID, error: str) -> Withdrawal:
        def decide(withdrawal: Withdrawal) -> None:
            if withdrawal.status is WithdrawalStatus.APPROVED:
                withdrawal.payout_attempt_failed(error, self._clock.now())

        return self._change(withdrawal_id, decide)

    def _complete(self, withdrawal_id: UUID, payout: Payout, actor: str) -> Withdrawal:
        def decide(withdrawal: Withdrawal) -> bool:
            if withdrawal.is_final:
                return False
            withdrawal.complete(payout.payout_id, actor, self._clock.now())
            return True

        withdrawal = self._settle(withdrawal_id, decide, paid=True)
        log.info(
            "withdrawal_completed",
            withdrawal_id=str(withdrawal_id),
            payout_id=payout.payout_id,
            status=withdrawal.status.value,
            actor=actor,
        )
        return withdrawal

    def _settle_not_paid(
        self, withdrawal_id: UUID, code: str, message: str, actor: str, payout_id: str | None
    ) -> Withdrawal:
        def decide(withdrawal: Withdrawal) -> bool:
            if withdrawal.is_final:
                return False
            withdrawal.fail(code, message, actor, self._clock.now(), payout_id)
            return True

        withdrawal = self._settle(withdrawal_id, decide, paid=False)
        log.warning(
            "withdrawal_failed",
            withdrawal_id=str(withdrawal_id),
            code=code,
            status=withdrawal.status.value,
            actor=actor,
        )
        return withdrawal

    def _settle(
        self, withdrawal_id: UUID, decide: Callable[[Withdrawal], bool], *, paid: bool
    ) -> Withdrawal:
        """Record a final step with its money in one write: paid posts the hold
        and counts the amount as withdrawn; not paid voids the hold and gives
        the reservation back. `decide` records the step, or answers False when
        there is nothing left to do."""

        def attempt() -> Withdrawal | None:
            withdrawal = self.require_withdrawal(withdrawal_id)
            if not decide(withdrawal):
                return withdrawal
            account = self._require_funded_account(withdrawal.funded_account_id)
            now = self._clock.now()
            hold = withdrawal.hold_transfer_id
            if paid:
                account.record_withdrawal(withdrawal.amount_minor, str(withdrawal.id), now)
                receipt = write_with_aggregates(
                    self._writer, [PostPendingTransfer(hold)], withdrawal, account
                )
            else:
                account.release_withdrawal(str(withdrawal.id), now)
                receipt = write_with_aggregates(
                    self._writer, [VoidPendingTransfer(hold)], withdrawal, account
                )
            if receipt is None:
                return None
            return withdrawal

        return retry_while_stale(attempt, lambda: _contended(withdrawal_id))

    def _change(self, withdrawal_id: UUID, decide: Callable[[Withdrawal], None]) -> Withdrawal:
        """Read, decide, record the withdrawal alone; again if another request
        recorded first. A decision that records nothing writes nothing."""
        return change_alone(
            self._writer,
            lambda: self.require_withdrawal(withdrawal_id),
            decide,
            lambda: _contended(withdrawal_id),
        )

    def _require_funded_account(self, funded_account_id: UUID) -> FundedAccount:
        return require_funded_account(self._app, funded_account_id)


def _require_same_request(existing: Withdrawal, request: WithdrawalRequest) -> None:
    if (
        existing.funded_account_id != request.funded_account_id
        or existing.amount_minor != request.amount_minor
    ):
        raise LedgerRefusal(
            ResultCode.IDEMPOTENCY_KEY_REUSED,
            "this request key made another withdrawal; use a new key for a new request",
            withdrawal_id=str(existing.id),
        )


def _withdrawal_id_of(payout: Payout) -> UUID:
    text = payout.metadata.get(WITHDRAWAL_ID_METADATA_KEY, "")
    try:
        return UUID(text)
    except ValueError as error:
        raise LedgerRefusal(
            ResultCode.WITHDRAWAL_NOT_FOUND,
            f"payout {payout.payout_id} names no withdrawal",
            payout_id=payout.payout_id,
        ) from error


def _contradicts(withdrawal: Withdrawal, payout: Payout) -> bool:
    if withdrawal.status is WithdrawalStatus.COMPLETED:
        return payout.status in _NOT_PAID
    if withdrawal.status is WithdrawalStatus.FAILED:
        return payout.status in _PAID
    return False


def _contended(withdrawal_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.CONCURRENT_CHANGE,
        "the withdrawal kept changing under this request; send it again",
        withdrawal_id=str(withdrawal_id),
    )
