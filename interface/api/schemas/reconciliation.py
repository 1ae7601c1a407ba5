"""Bodies of the reconciliation routes: reports with their checks, exceptions,
starting a run and resolving an exception."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from domain.money import format_amount
from domain.reconciliation import (
    ACTOR_LENGTH_MAX,
    NOTE_LENGTH_MAX,
    CheckStatus,
    DiscrepancyKind,
    ExceptionStatus,
    RunStatus,
    RunType,
    Severity,
    measure_currency,
)
from domain.result_codes import LedgerRefusal
from interface.api.pagination import HasMore, NextCursor
from interface.api.schemas.common import PLAIN_TEXT_PATTERN, Money, RequestModel
from projections.reconciliation import CheckRow, ExceptionRow, RunRow


def _amount(minor: int, currency: str | None) -> str | None:
    """Minor units as money, when the figure is money in a known currency."""
    if currency is None:
        return None
    try:
        return format_amount(minor, currency)
    except LedgerRefusal:
        # A currency the ledger no longer accepts, on an old record: its count stands.
        return None


class CheckResponse(BaseModel):
    name: str
    status: CheckStatus
    passed: bool
    measure: str = Field(
        description="What expected and actual count: minor units of one currency "
        '("paid out, USD minor units"), or rows. Money of two currencies is never added up.'
    )
    expected: int = Field(description="The ledger's side, in the measure's unit.")
    actual: int = Field(description="The other record's side, in the measure's unit.")
    difference: int = Field(description="actual - expected, in the measure's unit.")
    currency: str | None = Field(
        description="The currency of a money measure; null when the check counts rows."
    )
    expected_amount: Money | None = Field(description="`expected` as money; null for rows.")
    actual_amount: Money | None = Field(description="`actual` as money; null for rows.")
    difference_amount: Money | None = Field(description="`difference` as money; null for rows.")
    discrepancies_found: int
    already_open: dict[str, UUID] = Field(
        description="Discrepancies an earlier run raised and nobody has closed: "
        "fingerprint -> the open exception (not raised again)."
    )
    reason: str | None = Field(description="Why the check errored or was skipped.")
    elapsed_ms: int
    recorded_at: datetime

    @classmethod
    def of(cls, row: CheckRow) -> CheckResponse:
        currency = measure_currency(row.measure)
        return cls(
            currency=currency,
            expected_amount=_amount(row.expected, currency),
            actual_amount=_amount(row.actual, currency),
            difference_amount=_amount(row.difference, currency),
            name=row.name,
            status=CheckStatus(row.status),
            passed=row.status == CheckStatus.PASSED.value,
            measure=row.measure,
            expected=row.expected,
            actual=row.actual,
            difference=row.difference,
            discrepancies_found=row.discrepancies_found,
            already_open={key: UUID(value) for key, value in row.already_open.items()},
            reason=row.reason,
            elapsed_ms=row.elapsed_ms,
            recorded_at=row.recorded_at,
        )


class ExceptionResponse(BaseModel):
    id: UUID
    run_id: UUID
    check: str
    kind: DiscrepancyKind
    severity: Severity
    subject: str
    message: str
    amount: Money | None = Field(
        description="The money involved, in `currency`; null when none or no currency."
    )
    amount_minor: int = Field(description="The money involved, in minor units; 0 when none.")
    currency: str | None
    expected: str | None
    actual: str | None
    fingerprint: str = Field(description="kind:subject; the same fault in a later run.")
    correction: str | None = Field(description="The safe fix the service may apply itself.")
    status: ExceptionStatus
    resolved: bool
    raised_at: datetime
    closed_at: datetime | None
    closed_by: str | None = Field(description="The person who resolved it, or the service.")
    closing_note: str | None = Field(description="Their note, or the correction made.")
    position: int = Field(description="The log position of its last change.")

    @classmethod
    def of(cls, row: ExceptionRow) -> ExceptionResponse:
        return cls(
            id=row.exception_id,
            run_id=row.run_id,
            check=row.check_name,
            kind=DiscrepancyKind(row.kind),
            severity=Severity(row.severity),
            subject=row.subject,
            message=row.message,
            amount=_amount(row.amount_minor, row.currency) if row.amount_minor else None,
            amount_minor=row.amount_minor,
            currency=row.currency,
            expected=row.expected,
            actual=row.actual,
            fingerprint=row.fingerprint,
            correction=row.correction,
            status=ExceptionStatus(row.status),
            resolved=row.status != ExceptionStatus.OPEN.value,
            raised_at=row.raised_at,
            closed_at=row.closed_at,
            closed_by=row.closed_by,
            closing_note=row.closing_note,
            position=row.position,
        )


class ReportSummaryResponse(BaseModel):
    id: UUID
    type: RunType
    status: RunStatus
    started_at: datetime
    started_by: str
    completed_at: datetime | None
    checks_passed: int
    checks_failed: int
    exceptions_raised: int

    @classmethod
    def of(cls, row: RunRow) -> ReportSummaryResponse:
        return cls(
            id=row.run_id,
            type=RunType(row.run_type),
            status=RunStatus(row.status),
            started_at=row.started_at,
            started_by=row.started_by,
            completed_at=row.completed_at,
            checks_passed=row.checks_passed,
            checks_failed=row.checks_failed,
            exceptions_raised=row.exceptions_raised,
        )


class ReportResponse(ReportSummaryResponse):
    checks: list[CheckResponse]
    exceptions: list[ExceptionResponse]


class ReportPageResponse(BaseModel):
    items: list[ReportSummaryResponse]
    has_more: HasMore
    next_cursor: NextCursor


class ExceptionPageResponse(BaseModel):
    items: list[ExceptionResponse]
    has_more: HasMore
    next_cursor: NextCursor


class StartRunRequest(RequestModel):
    type: RunType = Field(
        default=RunType.MANUAL,
        description="manual (the default); hourly or daily to run a scheduled kind by hand.",
    )


class ResolveExceptionRequest(RequestModel):
    resolved_by: Annotated[str, Strict()] = Field(
        min_length=1,
        max_length=ACTOR_LENGTH_MAX,
        pattern=PLAIN_TEXT_PATTERN,
        description="The name of the person who looked into it.",
    )
    note: Annotated[str, Strict()] = Field(
        min_length=1,
        max_length=NOTE_LENGTH_MAX,
        pattern=PLAIN_TEXT_PATTERN,
        description="What they found and what they did.",
    )
