"""Reconciliation runs: each check's result and the exceptions it raised.

See docs/rules.md#reconciliation.

A run is a process kept as an aggregate: it starts (hourly, daily or manual),
records one result per check as the check finishes, raises an exception per
discrepancy, and completes. Exceptions are corrected by the service (low
severity only, when a safe fix exists: a stale view is rebuilt) or resolved by
a person, with their name and a note.

Severity is decided here, by one documented rule (`severity_of`): every kind
of discrepancy has a base severity, and the amount involved can only raise
it. A discrepancy that was already raised by an earlier run and is still
open is not raised again: the check's result names the open exception
(`already_open`), so one fault is one exception however many runs see it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.field_checks import require_aware, require_text
from domain.result_codes import LedgerRefusal, ResultCode

RECONCILIATION_NAMESPACE: Final = UUID("0b7f4e52-6d1c-4a8e-9f37-5c2d8a1e6b94")
ACTOR_LENGTH_MAX: Final[int] = 128
NOTE_LENGTH_MAX: Final[int] = 2_000
SUBJECT_LENGTH_MAX: Final[int] = 200
MESSAGE_LENGTH_MAX: Final[int] = 1_000
# Exceptions one check raises in a run; past this one more exception says how
# many discrepancies it left out (the check's result still counts them all).
EXCEPTIONS_PER_CHECK_MAX: Final[int] = 100
# Who corrects what the service fixes by itself.
SERVICE_ACTOR: Final[str] = "reconciliation"


class RunType(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    MANUAL = "manual"


class RunStatus(StrEnum):
    RUNNING = "running"
    # Every check ran and found nothing.
    PASSED = "passed"
    # A check found a discrepancy or could not run.
    FAILED = "failed"


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # The check could not run (its source did not answer); raises `check_error`.
    ERRORED = "errored"
    # Not run here, with the reason (a source this process cannot see).
    SKIPPED = "skipped"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANKS[self]


_SEVERITY_RANKS: Final[dict[Severity, int]] = {
    Severity.LOW: 0,
    Severity.MEDIUM: 1,
    Severity.HIGH: 2,
    Severity.CRITICAL: 3,
}


class ExceptionStatus(StrEnum):
    OPEN = "open"
    # Fixed by the service (low severity only); the correction is recorded.
    CORRECTED = "corrected"
    # Closed by a person with a note.
    RESOLVED = "resolved"


class DiscrepancyKind(StrEnum):
    # Ledger consistency (from the events).
    HASH_CHAIN = "hash_chain"
    EVENT_ORDER = "event_order"
    UNBALANCED_TRANSFER = "unbalanced_transfer"
    UNBALANCED_TOTALS = "unbalanced_totals"
    ACCOUNT_TOTALS = "account_totals"
    # Projections against a replay.
    VIEW_DIFFERS = "view_differs"
    VIEW_NOT_BUILT = "view_not_built"
    # Payouts at the processor against withdrawals.
    PAYOUT_UNKNOWN_TO_LEDGER = "payout_unknown_to_ledger"
    PAYOUT_MISSING = "payout_missing"
    PAYOUT_AMOUNT_DIFFERS = "payout_amount_differs"
    PAYOUT_STATUS_DIFFERS = "payout_status_differs"
    # The broker against the ledger.
    BROKER_ACCOUNT_MISSING = "broker_account_missing"
    POSITION_MISSING_AT_BROKER = "position_missing_at_broker"
    POSITION_UNKNOWN_TO_LEDGER = "position_unknown_to_ledger"
    POSITION_DIFFERS = "position_differs"
    REALIZED_PNL_DIFFERS = "realized_pnl_differs"
    # Deposits (capital funded accounts were given) against ledger transfers.
    DEPOSIT_TRANSFER_MISSING = "deposit_transfer_missing"
    DEPOSIT_UNKNOWN_TO_FUNDING = "deposit_unknown_to_funding"
    DEPOSIT_AMOUNT_DIFFERS = "deposit_amount_differs"
    # Withdrawals against ledger holds and transfers.
    WITHDRAWAL_TRANSFER_MISSING = "withdrawal_transfer_missing"
    WITHDRAWAL_AMOUNT_DIFFERS = "withdrawal_amount_differs"
    HOLD_NOT_RELEASED = "hold_not_released"
    ORPHAN_HOLD = "orphan_hold"
    # The broker sync's divergences still open (slippage, partial fill,
    # missing, extra), fed from the account guards' events.
    SYNC_DIVERGENCE = "sync_divergence"
    # A check that could not run, and the count of exceptions left out.
    CHECK_ERROR = "check_error"
    MORE_DISCREPANCIES = "more_discrepancies"


# The rule, part one: what each kind is worth before its amount is weighed.
# Critical: the ledger's own arithmetic or history is broken, or money moved
# outside it. High: money the ledger and another party disagree about, or a
# control that could not run. Medium: records that disagree on a detail
# while the money agrees. Low: derived data the service can rebuild.
BASE_SEVERITIES: Final[dict[DiscrepancyKind, Severity]] = {
    DiscrepancyKind.HASH_CHAIN: Severity.CRITICAL,
    DiscrepancyKind.EVENT_ORDER: Severity.CRITICAL,
    DiscrepancyKind.UNBALANCED_TRANSFER: Severity.CRITICAL,
    DiscrepancyKind.UNBALANCED_TOTALS: Severity.CRITICAL,
    DiscrepancyKind.ACCOUNT_TOTALS: Severity.CRITICAL,
    DiscrepancyKind.VIEW_DIFFERS: Severity.LOW,
    DiscrepancyKind.VIEW_NOT_BUILT: Severity.LOW,
    DiscrepancyKind.PAYOUT_UNKNOWN_TO_LEDGER: Severity.CRITICAL,
    DiscrepancyKind.PAYOUT_MISSING: Severity.HIGH,
    DiscrepancyKind.PAYOUT_AMOUNT_DIFFERS: Severity.HIGH,
    DiscrepancyKind.PAYOUT_STATUS_DIFFERS: Severity.MEDIUM,
    DiscrepancyKind.BROKER_ACCOUNT_MISSING: Severity.HIGH,
    DiscrepancyKind.POSITION_MISSING_AT_BROKER: Severity.HIGH,
    DiscrepancyKind.POSITION_UNKNOWN_TO_LEDGER: Severity.HIGH,
    DiscrepancyKind.POSITION_DIFFERS: Severity.MEDIUM,
    DiscrepancyKind.REALIZED_PNL_DIFFERS: Severity.MEDIUM,
    DiscrepancyKind.DEPOSIT_TRANSFER_MISSING: Severity.HIGH,
    DiscrepancyKind.DEPOSIT_UNKNOWN_TO_FUNDING: Severity.CRITICAL,
    DiscrepancyKind.DEPOSIT_AMOUNT_DIFFERS: Severity.HIGH,
    DiscrepancyKind.WITHDRAWAL_TRANSFER_MISSING: Severity.HIGH,
    DiscrepancyKind.WITHDRAWAL_AMOUNT_DIFFERS: Severity.HIGH,
    DiscrepancyKind.HOLD_NOT_RELEASED: Severity.MEDIUM,
    DiscrepancyKind.ORPHAN_HOLD: Severity.MEDIUM,
    DiscrepancyKind.SYNC_DIVERGENCE: Severity.MEDIUM,
    DiscrepancyKind.CHECK_ERROR: Severity.HIGH,
    DiscrepancyKind.MORE_DISCREPANCIES: Severity.HIGH,
}

# The rule, part two: an amount (minor units, USD cents for every tier) at or
# above a step raises the severity to that step's. Below 100 (a dollar) an
# amount raises nothing: rounding, not money lost.
AMOUNT_SEVERITY_STEPS: Final[tuple[tuple[int, Severity], ...]] = (
    (1_000_000, Severity.CRITICAL),
    (100_000, Severity.HIGH),
    (100, Severity.MEDIUM),
)


def severity_of(kind: DiscrepancyKind, amount_minor: int) -> Severity:
    """The kind's base severity, raised to the amount's step if that is higher."""
    severity = BASE_SEVERITIES[kind]
    for threshold, stepped in AMOUNT_SEVERITY_STEPS:
        if abs(amount_minor) >= threshold:
            return stepped if stepped.rank > severity.rank else severity
    return severity


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One thing two records disagree about, as a check found it.

    `subject` names what it is about ("withdrawal <id>", "view balances"), and
    with the kind makes the fingerprint that recognises the same fault in a
    later run. `amount_minor` is the money involved (0 when none is);
    `correction` names the safe fix the check can apply (a view to rebuild),
    None when only a person can decide.
    """

    kind: DiscrepancyKind
    subject: str
    message: str
    amount_minor: int = 0
    currency: str | None = None
    expected: str | None = None
    actual: str | None = None
    correction: str | None = None

    @property
    def fingerprint(self) -> str:
        return f"{self.kind.value}:{self.subject}"

    @property
    def severity(self) -> Severity:
        return severity_of(self.kind, self.amount_minor)


# A check that measures money measures it in one currency and says which:
# "paid out, USD minor units". Minor units of two currencies never add up.
_MONEY_MEASURE: Final = re.compile(r".*, (?P<currency>[A-Z]{3}) minor units")


def money_measure(what: str, currency: str) -> str:
    return f"{what}, {currency} minor units"


def measure_currency(measure: str) -> str | None:
    """The currency a money measure counts in; None for rows (or a run
    recorded before measures named their currency)."""
    match = _MONEY_MEASURE.fullmatch(measure)
    return match["currency"] if match else None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check compared: `measure` says what the figures count (money
    in minor units of one currency, `money_measure`, or rows); `expected` is
    the record the check takes as its reference and `actual` the one compared with it (each check's
    docstring says which is which)."""

    name: str
    status: CheckStatus
    measure: str
    expected: int
    actual: int
    discrepancies: Sequence[Discrepancy] = ()
    # Why the check errored or was skipped.
    reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def difference(self) -> int:
        return self.actual - self.expected

    @classmethod
    def compared(
        cls,
        name: str,
        measure: str,
        *,
        expected: int,
        actual: int,
        discrepancies: Sequence[Discrepancy],
        elapsed_s: float = 0.0,
    ) -> CheckResult:
        """A check that ran: failed when it found a discrepancy, else passed."""
        return cls(
            name,
            CheckStatus.FAILED if discrepancies else CheckStatus.PASSED,
            measure,
            expected,
            actual,
            tuple(discrepancies),
            elapsed_s=elapsed_s,
        )


def exception_id_for(run_id: UUID, check: str, index: int) -> UUID:
    return uuid5(RECONCILIATION_NAMESPACE, f"{run_id}/{check}/{index}")


def _exception_refusal(code: ResultCode, message: str, exception_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(code, message, exception_id=str(exception_id))


class ReconciliationRun(Aggregate):
    @classmethod
    def start(
        cls, *, run_id: UUID, run_type: RunType, at: datetime, actor: str
    ) -> ReconciliationRun:
        return cls(
            id=run_id,
            run_type=RunType(run_type).value,
            at=require_aware("at", at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
        )

    @event("Started")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        run_type: str,
        at: datetime,
        actor: str,
    ) -> None:
        # Plain values only, so a snapshot's JSON round trip gives back the same.
        self._run_type = run_type
        self.started_at = at
        self.started_by = actor
        self._status = RunStatus.RUNNING.value
        self.completed_at: datetime | None = None
        # check name -> its status
        self._checks: dict[str, str] = {}
        # exception id -> {"status", "severity", "check"}
        self._exceptions: dict[str, dict[str, str]] = {}

    @property
    def run_type(self) -> RunType:
        return RunType(self._run_type)

    @property
    def status(self) -> RunStatus:
        return RunStatus(self._status)

    @property
    def check_statuses(self) -> dict[str, CheckStatus]:
        return {name: CheckStatus(status) for name, status in self._checks.items()}

    def exception_status(self, exception_id: UUID) -> ExceptionStatus | None:
        found = self._exceptions.get(str(exception_id))
        return None if found is None else ExceptionStatus(found["status"])

    def exception_severity(self, exception_id: UUID) -> Severity | None:
        found = self._exceptions.get(str(exception_id))
        return None if found is None else Severity(found["severity"])

    # Checks -------------------------------------------------------------------------

    def record_check(
        self, result: CheckResult, already_open: dict[str, UUID], at: datetime
    ) -> list[tuple[UUID, Discrepancy]]:
        """Record a check's result and raise an exception per discrepancy that
        is not already open (`already_open`: fingerprint -> open exception).
        The exceptions raised, with their discrepancies."""
        if self.status is not RunStatus.RUNNING:
            raise ValueError("the run has completed")
        if result.name in self._checks:
            raise ValueError(f"check {result.name} is recorded already")
        at = require_aware("at", at)
        raised: list[tuple[UUID, Discrepancy]] = []
        carried: dict[str, str] = {}
        fresh: list[Discrepancy] = []
        for discrepancy in result.discrepancies:
            open_id = already_open.get(discrepancy.fingerprint)
            if open_id is not None:
                carried[discrepancy.fingerprint] = str(open_id)
            elif discrepancy.fingerprint not in {d.fingerprint for d in fresh}:
                fresh.append(discrepancy)
        if len(fresh) > EXCEPTIONS_PER_CHECK_MAX:
            left_out = len(fresh) - EXCEPTIONS_PER_CHECK_MAX
            fresh = [
                *fresh[:EXCEPTIONS_PER_CHECK_MAX],
                Discrepancy(
                    DiscrepancyKind.MORE_DISCREPANCIES,
                    f"check {result.name}",
                    f"{left_out} more discrepancies than the {EXCEPTIONS_PER_CHECK_MAX} "
                    "raised as exceptions; fix these and run again to see the rest",
                ),
            ]
        self._check_recorded(
            name=result.name,
            status=result.status.value,
            measure=result.measure,
            expected=result.expected,
            actual=result.actual,
            discrepancies_found=len(result.discrepancies),
            already_open=carried,
            reason=result.reason,
            elapsed_ms=round(result.elapsed_s * 1000),
            at=at,
        )
        for index, discrepancy in enumerate(fresh):
            exception_id = exception_id_for(self.id, result.name, index)
            self._exception_raised(
                exception_id=str(exception_id),
                check=result.name,
                kind=discrepancy.kind.value,
                severity=discrepancy.severity.value,
                subject=discrepancy.subject[:SUBJECT_LENGTH_MAX],
                message=discrepancy.message[:MESSAGE_LENGTH_MAX],
                amount_minor=discrepancy.amount_minor,
                currency=discrepancy.currency,
                expected=discrepancy.expected,
                actual=discrepancy.actual,
                fingerprint=discrepancy.fingerprint,
                correction=discrepancy.correction,
                at=at,
            )
            raised.append((exception_id, discrepancy))
        return raised

    @event("CheckRecorded")
    def _check_recorded(
        self,
        name: str,
        status: str,
        measure: str,
        expected: int,
        actual: int,
        discrepancies_found: int,
        already_open: dict[str, str],
        reason: str | None,
        elapsed_ms: int,
        at: datetime,
    ) -> None:
        self._checks = {**self._checks, name: status}

    @event("ExceptionRaised")
    def _exception_raised(
        self,
        exception_id: str,
        check: str,
        kind: str,
        severity: str,
        subject: str,
        message: str,
        amount_minor: int,
        currency: str | None,
        expected: str | None,
        actual: str | None,
        fingerprint: str,
        correction: str | None,
        at: datetime,
    ) -> None:
        self._exceptions = {
            **self._exceptions,
            exception_id: {
                "status": ExceptionStatus.OPEN.value,
                "severity": severity,
                "check": check,
            },
        }

    # Exceptions ---------------------------------------------------------------------

    def correct(self, exception_id: UUID, action: str, at: datetime) -> None:
        """The service fixed a low-severity exception; `action` says how."""
        self._require_open(exception_id)
        if self.exception_severity(exception_id) is not Severity.LOW:
            raise ValueError("only low-severity exceptions are corrected by the service")
        self._exception_corrected(
            exception_id=str(exception_id),
            action=require_text("action", action, NOTE_LENGTH_MAX),
            at=require_aware("at", at),
        )

    @event("ExceptionCorrected")
    def _exception_corrected(self, exception_id: str, action: str, at: datetime) -> None:
        self._set_exception_status(exception_id, ExceptionStatus.CORRECTED)

    def resolve(self, exception_id: UUID, resolved_by: str, note: str, at: datetime) -> None:
        """A person closes an open exception with their name and a note."""
        self._require_open(exception_id)
        self._exception_resolved(
            exception_id=str(exception_id),
            resolved_by=require_text("resolved_by", resolved_by, ACTOR_LENGTH_MAX),
            note=require_text("note", note, NOTE_LENGTH_MAX),
            at=require_aware("at", at),
        )

    @event("ExceptionResolved")
    def _exception_resolved(
        self, exception_id: str, resolved_by: str, note: str, at: datetime
    ) -> None:
        self._set_exception_status(exception_id, ExceptionStatus.RESOLVED)

    def _set_exception_status(self, exception_id: str, status: ExceptionStatus) -> None:
        self._exceptions = {
            **self._exceptions,
            exception_id: {**self._exceptions[exception_id], "status": status.value},
        }

    def _require_open(self, exception_id: UUID) -> None:
        status = self.exception_status(exception_id)
        if status is None:
            raise _exception_refusal(
                ResultCode.RECONCILIATION_EXCEPTION_NOT_FOUND,
                f"run {self.id} raised no exception {exception_id}",
                exception_id,
            )
        if status is not ExceptionStatus.OPEN:
            raise _exception_refusal(
                ResultCode.RECONCILIATION_EXCEPTION_CLOSED,
                f"exception {exception_id} is {status.value} already",
                exception_id,
            )

    # Completion ---------------------------------------------------------------------

    def complete(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING:
            raise ValueError("the run has completed")
        passed = all(
            status in (CheckStatus.PASSED, CheckStatus.SKIPPED)
            for status in self.check_statuses.values()
        )
        self._completed(
            status=(RunStatus.PASSED if passed else RunStatus.FAILED).value,
            at=require_aware("at", at),
        )

    @event("Completed")
    def _completed(self, status: str, at: datetime) -> None:
        self._status = status
        self.completed_at = at


def plain_details(discrepancy: Discrepancy) -> dict[str, Any]:
    """A discrepancy as plain values (logs, reports)."""
    return {
        "kind": discrepancy.kind.value,
        "subject": discrepancy.subject,
        "severity": discrepancy.severity.value,
        "amount_minor": discrepancy.amount_minor,
        "message": discrepancy.message,
    }
