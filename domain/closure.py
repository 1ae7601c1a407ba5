"""Account closure: a durable, multi-day process kept as an aggregate.

See docs/rules.md#account-closure. Phases in order:

    INITIATED -> LIQUIDATING -> SETTLING -> WITHDRAWING -> CLOSING -> COMPLETED

Every change is an event with its time; every timer is a fact in those
events (`next_action_at`: "nothing to do before T"; `deadline_at`: "stuck if
the phase is not done by T"; a tranche's `next_tranche_not_before`). A worker
that restarts reads the aggregate and carries on exactly where it was: the
steps themselves are safe to repeat (a position closed twice is closed once,
a tranche asked for twice is one withdrawal, an email sent twice is sent
once), so a crash between a step and its recording costs a repeat, never a
second payout.

A phase that cannot finish retries with exponential backoff; past its
deadline it is marked stuck with the reason, visibly ("needs attention"),
never dropped. An operator resumes a stuck closure: the phase gets a new
deadline and is tried again at once.

Timings (docs/rules.md#account-closure):
    liquidating   positions must clear within 15 minutes
    settling      T+1 (the next business day), checked every 2 hours,
                  stuck after 3 business days
    withdrawing   at most $50,000 per tranche, the next not before exactly
                  24 hours after the last, monitored every 2 hours, until
                  nothing is withdrawable
    closing       final checks, the rest returned to the platform, closed;
                  the completion email with the total paid out
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.field_checks import exponential_backoff, require_aware, require_text
from domain.result_codes import LedgerRefusal, ResultCode

# uuid5 namespace of closure ids: one closure per funded account, ever.
CLOSURE_NAMESPACE: Final = UUID("9c4e2a71-3b8d-4f6e-a1c5-7d2e8b9f0a36")
CONFIRMATION_PREFIX: Final[str] = "CLA"
# Crockford's base32: no I, L, O or U, so a number read out loud is not misheard.
_CONFIRMATION_ALPHABET: Final[str] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFIRMATION_GROUP: Final[int] = 5

LIQUIDATION_TIMEOUT: Final = timedelta(minutes=15)
SETTLEMENT_CHECK_INTERVAL: Final = timedelta(hours=2)
SETTLEMENT_TIMEOUT_BUSINESS_DAYS: Final[int] = 3
SETTLEMENT_BUSINESS_DAYS: Final[int] = 1
TRANCHE_MAX_MINOR: Final[int] = 50_000_00
TRANCHE_INTERVAL: Final = timedelta(hours=24)
TRANSFER_CHECK_INTERVAL: Final = timedelta(hours=2)
# A tranche whose payout has not settled by then needs a person.
TRANCHE_TIMEOUT: Final = timedelta(days=3)
CLOSING_TIMEOUT: Final = timedelta(hours=1)
# Sending the first email and starting liquidation.
INITIATION_TIMEOUT: Final = timedelta(hours=1)
# Failed attempts of a phase step are retried after 30 s, 60 s, ... at most
# 30 minutes apart (until the phase's deadline).
RETRY_BASE: Final = timedelta(seconds=30)
RETRY_MAX_DELAY: Final = timedelta(minutes=30)
TEXT_LENGTH_MAX: Final[int] = 500
NAME_LENGTH_MAX: Final[int] = 200
ADDRESS_LENGTH_MAX: Final[int] = 254
SERVICE_ACTOR: Final[str] = "closure-worker"


class ClosurePhase(StrEnum):
    INITIATED = "initiated"
    LIQUIDATING = "liquidating"
    SETTLING = "settling"
    WITHDRAWING = "withdrawing"
    CLOSING = "closing"
    COMPLETED = "completed"


class TrancheStatus(StrEnum):
    # Requested: the withdrawal is held and being paid out.
    REQUESTED = "requested"
    COMPLETED = "completed"
    FAILED = "failed"


# Each phase's next, in order.
NEXT_PHASE: Final[dict[ClosurePhase, ClosurePhase]] = {
    ClosurePhase.INITIATED: ClosurePhase.LIQUIDATING,
    ClosurePhase.LIQUIDATING: ClosurePhase.SETTLING,
    ClosurePhase.SETTLING: ClosurePhase.WITHDRAWING,
    ClosurePhase.WITHDRAWING: ClosurePhase.CLOSING,
    ClosurePhase.CLOSING: ClosurePhase.COMPLETED,
}


def closure_id_for(funded_account_id: UUID) -> UUID:
    """The one closure of a funded account: initiating again finds it."""
    return uuid5(CLOSURE_NAMESPACE, str(funded_account_id))


def confirmation_number_for(closure_id: UUID) -> str:
    """CLA-XXXXX-XXXXX, from the closure id: 50 bits of its hash in base32."""
    digest = int.from_bytes(hashlib.sha256(closure_id.bytes).digest()[:8], "big")
    characters = []
    for _ in range(2 * _CONFIRMATION_GROUP):
        digest, index = divmod(digest, len(_CONFIRMATION_ALPHABET))
        characters.append(_CONFIRMATION_ALPHABET[index])
    text = "".join(characters)
    return f"{CONFIRMATION_PREFIX}-{text[:_CONFIRMATION_GROUP]}-{text[_CONFIRMATION_GROUP:]}"


def add_business_days(moment: datetime, days: int) -> datetime:
    """`days` weekdays after `moment`, at the same time of day (weekends skipped;
    public holidays are not modelled)."""
    result = moment
    added = 0
    while added < days:
        result += timedelta(days=1)
        if result.weekday() < 5:
            added += 1
    return result


def retry_delay(failed_attempts: int) -> timedelta:
    return exponential_backoff(failed_attempts, RETRY_BASE, RETRY_MAX_DELAY)


def tranche_withdrawal_key(closure_id: UUID, number: int, attempt: int) -> str:
    """The withdrawal request key of a tranche attempt: asking again (after a
    crash) finds the same withdrawal; a retry after a failure is a new one."""
    return f"closure-{closure_id.hex}-tranche-{number}-attempt-{attempt}"


class Closure(Aggregate):
    @classmethod
    def initiate(
        cls,
        *,
        funded_account_id: UUID,
        owner_id: str,
        ledger_account_id: UUID,
        recipient_name: str,
        recipient_address: str,
        reason: str,
        at: datetime,
        actor: str,
    ) -> Closure:
        closure_id = closure_id_for(funded_account_id)
        return cls(
            id=closure_id,
            funded_account_id=str(funded_account_id),
            owner_id=require_text("owner_id", owner_id, NAME_LENGTH_MAX),
            ledger_account_id=str(ledger_account_id),
            confirmation_number=confirmation_number_for(closure_id),
            recipient_name=require_text("recipient_name", recipient_name, NAME_LENGTH_MAX),
            recipient_address=require_text(
                "recipient_address", recipient_address, ADDRESS_LENGTH_MAX
            ),
            reason=require_text("reason", reason, TEXT_LENGTH_MAX),
            at=require_aware("at", at),
            actor=require_text("actor", actor, NAME_LENGTH_MAX),
        )

    @event("Initiated")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        funded_account_id: str,
        owner_id: str,
        ledger_account_id: str,
        confirmation_number: str,
        recipient_name: str,
        recipient_address: str,
        reason: str,
        at: datetime,
        actor: str,
    ) -> None:
        self._funded_account_id = funded_account_id
        self.owner_id = owner_id
        self._ledger_account_id = ledger_account_id
        self.confirmation_number = confirmation_number
        self.recipient_name = recipient_name
        self.recipient_address = recipient_address
        self.reason = reason
        self.initiated_at = at
        self.initiated_by = actor
        self._phase = ClosurePhase.INITIATED.value
        self.phase_entered_at = at
        # phase name -> when it was entered, for the progress report
        self.phase_history: dict[str, str] = {ClosurePhase.INITIATED.value: at.isoformat()}
        self.next_action_at: datetime | None = at
        self.deadline_at: datetime | None = at + INITIATION_TIMEOUT
        self.failed_attempts = 0
        self.last_error: str | None = None
        self.stuck = False
        self.stuck_reason: str | None = None
        self.resumed_at: datetime | None = None
        self.settles_at: datetime | None = None
        # One dict per tranche attempt, in order: number, attempt, withdrawal
        # id, amount, requested_at, status, payout_id, settled_at.
        self.tranches: list[dict[str, Any]] = []
        self.next_tranche_not_before: datetime | None = None
        self.emails_sent: dict[str, str] = {}
        self.total_paid_minor = 0
        self.capital_returned_minor: int | None = None
        self.completed_at: datetime | None = None
        self.updated_at = at

    # Reading -------------------------------------------------------------------------

    @property
    def phase(self) -> ClosurePhase:
        return ClosurePhase(self._phase)

    @property
    def funded_account_id(self) -> UUID:
        return UUID(self._funded_account_id)

    @property
    def ledger_account_id(self) -> UUID:
        return UUID(self._ledger_account_id)

    @property
    def is_completed(self) -> bool:
        return self.phase is ClosurePhase.COMPLETED

    def due(self, now: datetime) -> bool:
        """Work to do now: not completed, not stuck, its timer has run."""
        return (
            not self.is_completed
            and not self.stuck
            and self.next_action_at is not None
            and self.next_action_at <= now
        )

    @property
    def tranche_in_flight(self) -> dict[str, Any] | None:
        last = self.tranches[-1] if self.tranches else None
        return last if last is not None and last["status"] == TrancheStatus.REQUESTED else None

    @property
    def tranches_completed(self) -> int:
        return sum(1 for tranche in self.tranches if tranche["status"] == TrancheStatus.COMPLETED)

    # Phases --------------------------------------------------------------------------

    def enter(
        self,
        phase: ClosurePhase,
        at: datetime,
        *,
        deadline_at: datetime | None = None,
        next_action_at: datetime | None = None,
        settles_at: datetime | None = None,
    ) -> None:
        """Move on to the next phase (only the next one: phases never skip)."""
        if NEXT_PHASE.get(self.phase) is not phase:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                f"a closure in {self.phase.value} does not go to {phase.value}",
                from_state=self.phase.value,
                to_state=phase.value,
            )
        at = require_aware("at", at)
        self._phase_entered(
            phase=phase.value,
            at=at,
            deadline_at=deadline_at,
            next_action_at=next_action_at or at,
            settles_at=settles_at,
        )

    @event("PhaseEntered")
    def _phase_entered(
        self,
        phase: str,
        at: datetime,
        deadline_at: datetime | None,
        next_action_at: datetime | None,
        settles_at: datetime | None,
    ) -> None:
        self._phase = phase
        self.phase_entered_at = at
        self.phase_history = {**self.phase_history, phase: at.isoformat()}
        self.deadline_at = deadline_at
        self.next_action_at = None if phase == ClosurePhase.COMPLETED else next_action_at
        self.failed_attempts = 0
        self.last_error = None
        if settles_at is not None:
            self.settles_at = settles_at
        if phase == ClosurePhase.COMPLETED:
            self.completed_at = at
        self.updated_at = at

    def wait(self, until: datetime, at: datetime, note: str) -> None:
        """Nothing to do before `until` (a periodic check, a tranche's 24 hours)."""
        self._waiting(
            until=require_aware("until", until),
            at=require_aware("at", at),
            note=note[:TEXT_LENGTH_MAX],
        )

    @event("Waiting")
    def _waiting(self, until: datetime, at: datetime, note: str) -> None:
        self.next_action_at = until
        self.updated_at = at

    def attempt_failed(self, error: str, at: datetime) -> None:
        """A step failed: try again after the backoff, or, past the phase's
        deadline, mark the closure stuck with the reason."""
        at = require_aware("at", at)
        attempts = self.failed_attempts + 1
        retry_at = at + retry_delay(attempts)
        if self.deadline_at is not None and retry_at > self.deadline_at:
            self._attempt_failed(
                at=at, attempt=attempts, error=error[:TEXT_LENGTH_MAX], retry_at=None
            )
            self.mark_stuck(f"{self.phase.value} did not finish in time: {error}", at)
            return
        self._attempt_failed(
            at=at, attempt=attempts, error=error[:TEXT_LENGTH_MAX], retry_at=retry_at
        )

    @event("AttemptFailed")
    def _attempt_failed(
        self, at: datetime, attempt: int, error: str, retry_at: datetime | None
    ) -> None:
        self.failed_attempts = attempt
        self.last_error = error
        self.next_action_at = retry_at
        self.updated_at = at

    def mark_stuck(self, reason: str, at: datetime) -> None:
        if self.stuck:
            return
        self._marked_stuck(reason=reason[:TEXT_LENGTH_MAX], at=require_aware("at", at))

    @event("MarkedStuck")
    def _marked_stuck(self, reason: str, at: datetime) -> None:
        self.stuck = True
        self.stuck_reason = reason
        self.next_action_at = None
        self.updated_at = at

    def resume(self, actor: str, at: datetime, deadline_at: datetime | None) -> None:
        """An operator's go-ahead: try the phase again now, with a new deadline."""
        if not self.stuck:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                "the closure is not stuck: nothing to resume",
                from_state=self.phase.value,
                to_state=self.phase.value,
            )
        self._resumed(
            actor=require_text("actor", actor, NAME_LENGTH_MAX),
            at=require_aware("at", at),
            deadline_at=deadline_at,
        )

    @event("Resumed")
    def _resumed(self, actor: str, at: datetime, deadline_at: datetime | None) -> None:
        self.resumed_at = at
        self.stuck = False
        self.stuck_reason = None
        self.failed_attempts = 0
        self.next_action_at = at
        self.deadline_at = deadline_at
        self.updated_at = at

    # Tranches ------------------------------------------------------------------------

    def tranche_requested(self, withdrawal_id: UUID, amount_minor: int, at: datetime) -> None:
        """A tranche asked for (held and being paid out): the next may not
        start before exactly 24 hours from now."""
        if self.phase is not ClosurePhase.WITHDRAWING or self.tranche_in_flight is not None:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                "a tranche starts in the withdrawing phase, one at a time",
                from_state=self.phase.value,
                to_state=ClosurePhase.WITHDRAWING.value,
            )
        if type(amount_minor) is not int or not 0 < amount_minor <= TRANCHE_MAX_MINOR:
            raise ValueError(f"a tranche is 1 to {TRANCHE_MAX_MINOR} minor units")
        at = require_aware("at", at)
        self._tranche_requested(
            number=self.tranches_completed + 1,
            attempt=sum(1 for t in self.tranches if t["number"] == self.tranches_completed + 1) + 1,
            withdrawal_id=str(withdrawal_id),
            amount_minor=amount_minor,
            at=at,
            next_tranche_not_before=at + TRANCHE_INTERVAL,
        )

    def next_tranche_key(self) -> str:
        number = self.tranches_completed + 1
        attempt = sum(1 for t in self.tranches if t["number"] == number) + 1
        return tranche_withdrawal_key(self.id, number, attempt)

    @event("TrancheRequested")
    def _tranche_requested(
        self,
        number: int,
        attempt: int,
        withdrawal_id: str,
        amount_minor: int,
        at: datetime,
        next_tranche_not_before: datetime,
    ) -> None:
        self.tranches = [
            *self.tranches,
            {
                "number": number,
                "attempt": attempt,
                "withdrawal_id": withdrawal_id,
                "amount_minor": amount_minor,
                "requested_at": at.isoformat(),
                "status": TrancheStatus.REQUESTED.value,
                "payout_id": None,
                "settled_at": None,
            },
        ]
        self.next_tranche_not_before = next_tranche_not_before
        # Its payout is looked at straight away (the sandbox pays at once);
        # after that every TRANSFER_CHECK_INTERVAL until it settles.
        self.next_action_at = at
        self.failed_attempts = 0
        self.updated_at = at

    def tranche_settled(
        self, status: TrancheStatus, payout_id: str | None, at: datetime, error: str | None = None
    ) -> None:
        """The tranche's withdrawal completed or failed. A failed one is asked
        for again after the backoff (a new withdrawal, a new key)."""
        if self.tranche_in_flight is None or status is TrancheStatus.REQUESTED:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                "no tranche is in flight",
                from_state=self.phase.value,
                to_state=self.phase.value,
            )
        at = require_aware("at", at)
        failed = status is TrancheStatus.FAILED
        attempts = self.failed_attempts + 1 if failed else 0
        self._tranche_settled(
            status=status.value,
            payout_id=payout_id,
            at=at,
            error=(error or "")[:TEXT_LENGTH_MAX] or None,
            retry_at=at + retry_delay(attempts) if failed else None,
        )

    @event("TrancheSettled")
    def _tranche_settled(
        self,
        status: str,
        payout_id: str | None,
        at: datetime,
        error: str | None,
        retry_at: datetime | None,
    ) -> None:
        last = {**self.tranches[-1], "status": status, "payout_id": payout_id}
        last["settled_at"] = at.isoformat()
        self.tranches = [*self.tranches[:-1], last]
        if status == TrancheStatus.COMPLETED:
            self.total_paid_minor += last["amount_minor"]
            # Look again now: nothing left goes on to closing at once; what is
            # left waits for the 24 hours recorded at the request.
            self.next_action_at = at
            self.failed_attempts = 0
        else:
            self.failed_attempts += 1
            self.last_error = error
            # A failed tranche does not use up the day: it is asked for again soon.
            self.next_tranche_not_before = retry_at
            self.next_action_at = retry_at
        self.updated_at = at

    # Closing -------------------------------------------------------------------------

    def closed_out(self, capital_returned_minor: int, at: datetime) -> None:
        """The account closed: the rest returned to the platform, zero left."""
        if self.phase is not ClosurePhase.CLOSING:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                "an account is closed out in the closing phase",
                from_state=self.phase.value,
                to_state=ClosurePhase.CLOSING.value,
            )
        self._closed_out(capital_returned_minor=capital_returned_minor, at=require_aware("at", at))

    @event("ClosedOut")
    def _closed_out(self, capital_returned_minor: int, at: datetime) -> None:
        self.capital_returned_minor = capital_returned_minor
        self.next_action_at = at
        self.updated_at = at

    def email_sent(self, kind: str, message_id: str, at: datetime) -> None:
        if kind in self.emails_sent:
            return
        self._email_sent(kind=kind, message_id=message_id, at=require_aware("at", at))

    @event("EmailSent")
    def _email_sent(self, kind: str, message_id: str, at: datetime) -> None:
        self.emails_sent = {**self.emails_sent, kind: message_id}
        self.updated_at = at
