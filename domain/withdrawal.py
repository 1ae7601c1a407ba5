"""The withdrawal process: one request for money out of a funded account.

See docs/rules.md#funded-accounts-and-withdrawals.

A Withdrawal is a process kept as an aggregate: each step is an event with its
time and actor, and its timers ("next payout attempt not before T") are facts
in those events, so a worker that restarts carries on exactly where the process
was.

    PENDING ──approve──> APPROVED ──payout accepted──> PAID_OUT ──paid──> COMPLETED
       │                    │  ▲                           │
       └──reject──> REJECTED│  └─ transient failure,       └──failed──> FAILED
                            │     retried with backoff
                            └──payout refused──> FAILED

Under $1,000 the request is approved at once, by the service; from $1,000 it
waits for an admin. The money side (the hold on the trader's ledger account,
the funded account's reservation) is written with each step by the
application, in one transaction; this aggregate keeps the process's facts.

Payouts carry an idempotency key derived from the withdrawal alone
(`payout_idempotency_key`), so every retry, after a timeout or a restart,
asks the processor for the same payout and can never pay twice. Retries stop
after `PAYOUT_RETRY_WINDOW`, well inside the 24 hours Stripe keeps an
idempotency key: past it a retry could pay a second time, so the withdrawal
waits for a person instead (`needs_attention`).

Settling after payout: a completed payout (the processor's "paid") or a
failed one is final. A later processor message about a settled withdrawal
changes nothing; the application logs it, reconciliation compares the two
records.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.field_checks import exponential_backoff, require_aware, require_text
from domain.identifiers import require_idempotency_key
from domain.result_codes import LedgerRefusal, ResultCode

# uuid5 namespace of withdrawal ids; never change it, or every id changes.
WITHDRAWAL_NAMESPACE: Final = UUID("0b9f4d3e-6a51-4c7e-9d2a-5e8f1c3b7a64")
REASON_LENGTH_MAX: Final[int] = 500
ACTOR_LENGTH_MAX: Final[int] = 128
# Transient payout failures are retried after 5 s, 10 s, 20 s ... at most
# 15 minutes apart, for at most 12 hours after approval.
PAYOUT_RETRY_BASE: Final = timedelta(seconds=5)
PAYOUT_RETRY_MAX_DELAY: Final = timedelta(minutes=15)
PAYOUT_RETRY_WINDOW: Final = timedelta(hours=12)
# What the service records as the actor of its own steps.
SERVICE_ACTOR: Final[str] = "withdrawal-service"


class WithdrawalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PAID_OUT = "paid_out"
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"


FINAL_STATUSES: Final = frozenset(
    {WithdrawalStatus.COMPLETED, WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED}
)


def withdrawal_id_for(funded_account_id: UUID, request_key: str) -> UUID:
    """The one withdrawal a client's request key makes on an account: the same
    request sent again finds it. The key follows the transfers' rule
    (`invalid_idempotency_key` otherwise)."""
    key = require_idempotency_key(request_key)
    return uuid5(WITHDRAWAL_NAMESPACE, f"{funded_account_id}/{key}")


def payout_idempotency_key(withdrawal_id: UUID) -> str:
    """The processor's idempotency key: one payout per withdrawal, ever."""
    return f"withdrawal-{withdrawal_id}"


def payout_retry_delay(failed_attempts: int) -> timedelta:
    """Exponential backoff: 5 s after the first failure, doubling, capped."""
    return exponential_backoff(failed_attempts, PAYOUT_RETRY_BASE, PAYOUT_RETRY_MAX_DELAY)


class Withdrawal(Aggregate):
    @classmethod
    def request(
        cls,
        *,
        withdrawal_id: UUID,
        funded_account_id: UUID,
        owner_id: str,
        ledger_account_id: UUID,
        amount_minor: int,
        currency: str,
        hold_transfer_id: UUID,
        approval_required: bool,
        requested_at: datetime,
        actor: str,
    ) -> Withdrawal:
        """A request the funded account has accepted (and reserved the amount
        for). One that needs no approval is approved at once, by the service."""
        if type(amount_minor) is not int or amount_minor <= 0:
            raise ValueError("amount_minor must be a positive int")
        withdrawal = cls(
            id=withdrawal_id,
            funded_account_id=str(funded_account_id),
            owner_id=require_text("owner_id", owner_id, ACTOR_LENGTH_MAX),
            ledger_account_id=str(ledger_account_id),
            amount_minor=amount_minor,
            currency=currency,
            hold_transfer_id=str(hold_transfer_id),
            approval_required=approval_required,
            requested_at=require_aware("requested_at", requested_at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
        )
        if not approval_required:
            withdrawal._approved(at=requested_at, actor=SERVICE_ACTOR, automatic=True)
        return withdrawal

    @event("Requested")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        funded_account_id: str,
        owner_id: str,
        ledger_account_id: str,
        amount_minor: int,
        currency: str,
        hold_transfer_id: str,
        approval_required: bool,
        requested_at: datetime,
        actor: str,
    ) -> None:
        # Plain values (str, int, bool, datetime): a snapshot's JSON round trip
        # gives back exactly what was there; the properties type them.
        self._funded_account_id = funded_account_id
        self.owner_id = owner_id
        self._ledger_account_id = ledger_account_id
        self.amount_minor = amount_minor
        self.currency = currency
        self._hold_transfer_id = hold_transfer_id
        self.approval_required = approval_required
        self.requested_at = requested_at
        self.requested_by = actor
        self._status = WithdrawalStatus.PENDING.value
        self.approved_at: datetime | None = None
        self.approved_by: str | None = None
        self.decided_automatically = False
        self.rejected_reason: str | None = None
        self.payout_id: str | None = None
        self.payout_gateway: str | None = None
        self.payout_failed_attempts = 0
        self.last_payout_error: str | None = None
        self.next_payout_attempt_at: datetime | None = None
        self.needs_attention = False
        self.retries_resumed_at: datetime | None = None
        self.failure_code: str | None = None
        self.failure_message: str | None = None
        self.settled_at: datetime | None = None
        self.settled_by: str | None = None
        self.updated_at = requested_at

    # Reading -------------------------------------------------------------------------

    @property
    def status(self) -> WithdrawalStatus:
        return WithdrawalStatus(self._status)

    @property
    def funded_account_id(self) -> UUID:
        return UUID(self._funded_account_id)

    @property
    def ledger_account_id(self) -> UUID:
        return UUID(self._ledger_account_id)

    @property
    def hold_transfer_id(self) -> UUID:
        return UUID(self._hold_transfer_id)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def payout_due(self, now: datetime) -> bool:
        """Approved, not yet accepted by the processor, and its timer has run."""
        return (
            self.status is WithdrawalStatus.APPROVED
            and not self.needs_attention
            and (self.next_payout_attempt_at is None or self.next_payout_attempt_at <= now)
        )

    # Decisions -----------------------------------------------------------------------

    def approve(self, actor: str, at: datetime) -> None:
        self._require_pending("approve")
        self._approved(
            at=require_aware("at", at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            automatic=False,
        )

    @event("Approved")
    def _approved(self, at: datetime, actor: str, automatic: bool) -> None:
        self._status = WithdrawalStatus.APPROVED.value
        self.approved_at = at
        self.approved_by = actor
        self.decided_automatically = automatic
        self.next_payout_attempt_at = at
        self.updated_at = at

    def reject(self, reason: str, actor: str, at: datetime) -> None:
        self._require_pending("reject")
        self._rejected(
            at=require_aware("at", at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            reason=require_text("reason", reason, REASON_LENGTH_MAX),
        )

    @event("Rejected")
    def _rejected(self, at: datetime, actor: str, reason: str) -> None:
        self._status = WithdrawalStatus.REJECTED.value
        self.rejected_reason = reason
        self._settle(at, actor)

    # Payout --------------------------------------------------------------------------

    def payout_attempt_failed(self, error: str, at: datetime) -> None:
        """A transient failure (the processor unreachable, timed out, busy):
        the next attempt is due after the backoff, or, past the retry window,
        a person looks at it."""
        self._require_status(WithdrawalStatus.APPROVED, "retry its payout")
        at = require_aware("at", at)
        attempts = self.payout_failed_attempts + 1
        next_at = at + payout_retry_delay(attempts)
        gives_up = next_at > self._retries_from(at) + PAYOUT_RETRY_WINDOW
        self._payout_attempt_failed(
            at=at,
            attempt=attempts,
            error=error[:REASON_LENGTH_MAX],
            next_attempt_at=None if gives_up else next_at,
            needs_attention=gives_up,
        )

    @event("PayoutAttemptFailed")
    def _payout_attempt_failed(
        self,
        at: datetime,
        attempt: int,
        error: str,
        next_attempt_at: datetime | None,
        needs_attention: bool,
    ) -> None:
        self.payout_failed_attempts = attempt
        self.last_payout_error = error
        self.next_payout_attempt_at = next_attempt_at
        self.needs_attention = needs_attention
        self.updated_at = at

    def retry_payouts(self, actor: str, at: datetime) -> None:
        """An operator's go-ahead for a withdrawal that needs attention, after
        checking at the processor that no payout was made (or its key is
        still live): attempts start again now, with a new window and backoff."""
        self._require_status(WithdrawalStatus.APPROVED, "resume its payout")
        if not self.needs_attention:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                "the withdrawal's payout is still being retried: nothing to resume",
                from_state=self.status.value,
                to_state=self.status.value,
            )
        self._payout_retries_resumed(
            at=require_aware("at", at), actor=require_text("actor", actor, ACTOR_LENGTH_MAX)
        )

    @event("PayoutRetriesResumed")
    def _payout_retries_resumed(self, at: datetime, actor: str) -> None:
        self.needs_attention = False
        self.next_payout_attempt_at = at
        self.payout_failed_attempts = 0
        self.retries_resumed_at = at
        self.updated_at = at

    def _retries_from(self, at: datetime) -> datetime:
        """When the current run of attempts began: the approval, or the last
        resumption (a snapshot taken before resumptions existed has none)."""
        resumed: datetime | None = self.__dict__.get("retries_resumed_at")
        return resumed or self.approved_at or at

    def paid_out(self, payout_id: str, gateway: str, at: datetime) -> None:
        """The processor accepted the payout. Nothing changes if it was already
        recorded, or if the payout settled first (its webhook came quicker)."""
        if self.status is not WithdrawalStatus.APPROVED:
            if self.payout_id == payout_id:
                return
            self._require_status(WithdrawalStatus.APPROVED, "record a payout")
        self._paid_out(
            at=require_aware("at", at),
            payout_id=require_text("payout_id", payout_id, ACTOR_LENGTH_MAX),
            gateway=require_text("gateway", gateway, ACTOR_LENGTH_MAX),
        )

    @event("PaidOut")
    def _paid_out(self, at: datetime, payout_id: str, gateway: str) -> None:
        self._status = WithdrawalStatus.PAID_OUT.value
        self.payout_id = payout_id
        self.payout_gateway = gateway
        self.next_payout_attempt_at = None
        self.needs_attention = False
        self.updated_at = at

    def complete(self, payout_id: str, actor: str, at: datetime) -> None:
        """The payout was paid. From APPROVED too: the processor's message may
        arrive before the service recorded the payout it accepted."""
        if self.status not in (WithdrawalStatus.APPROVED, WithdrawalStatus.PAID_OUT):
            self._require_status(WithdrawalStatus.PAID_OUT, "complete")
        self._require_same_payout(payout_id)
        self._completed(
            at=require_aware("at", at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            payout_id=payout_id,
        )

    @event("Completed")
    def _completed(self, at: datetime, actor: str, payout_id: str) -> None:
        self._status = WithdrawalStatus.COMPLETED.value
        self.payout_id = payout_id
        self._settle(at, actor)

    def fail(
        self, code: str, message: str, actor: str, at: datetime, payout_id: str | None = None
    ) -> None:
        """The processor refused the payout, or reported it failed."""
        if self.status not in (WithdrawalStatus.APPROVED, WithdrawalStatus.PAID_OUT):
            self._require_status(WithdrawalStatus.PAID_OUT, "fail")
        if payout_id is not None:
            self._require_same_payout(payout_id)
        self._failed(
            at=require_aware("at", at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            code=require_text("code", code, ACTOR_LENGTH_MAX),
            message=(message or code)[:REASON_LENGTH_MAX],
            payout_id=payout_id or self.payout_id,
        )

    @event("Failed")
    def _failed(
        self, at: datetime, actor: str, code: str, message: str, payout_id: str | None
    ) -> None:
        self._status = WithdrawalStatus.FAILED.value
        self.failure_code = code
        self.failure_message = message
        self.payout_id = payout_id
        self._settle(at, actor)

    # Inside --------------------------------------------------------------------------

    def _settle(self, at: datetime, actor: str) -> None:
        self.settled_at = at
        self.settled_by = actor
        self.next_payout_attempt_at = None
        self.needs_attention = False
        self.updated_at = at

    def _require_pending(self, action: str) -> None:
        if self.status is not WithdrawalStatus.PENDING:
            raise LedgerRefusal(
                ResultCode.WITHDRAWAL_NOT_PENDING,
                f"only a pending withdrawal can be told to {action}; this one is "
                f"{self.status.value}",
                status=self.status.value,
            )

    def _require_status(self, required: WithdrawalStatus, action: str) -> None:
        if self.status is not required:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                f"a {self.status.value} withdrawal cannot {action}",
                from_state=self.status.value,
                to_state=required.value,
            )

    def _require_same_payout(self, payout_id: str) -> None:
        if self.payout_id is not None and self.payout_id != payout_id:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                f"the withdrawal was paid out as {self.payout_id}, not {payout_id}",
                payout_id=self.payout_id,
            )
