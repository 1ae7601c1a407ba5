"""Reconciliation: reports, exceptions, starting a run, resolving an exception.

See docs/rules.md#reconciliation.

Reports and exceptions are read from the reconciliation view (caught up to the
caller's writes first, as every view read is); a run is started here and
carried out in the background (it reads the whole log), so the answer is 202
with the run's report as it stands, `running`. Reads are for operators (admins,
auditors, the platform's services); starting a run too; resolving an exception
is for admins, with the name of the person and a note saying what they found
and did.
"""

from __future__ import annotations

from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Query, Response

from domain.reconciliation import (
    RunStatus,
    RunType,
    Severity,
)
from domain.result_codes import LedgerRefusal, ResultCode
from interface.api.consistency import MinPosition, tell_position, views_caught_up
from interface.api.deps import Admin, LedgerDep, Operator
from interface.api.pagination import (
    CreatedFrom,
    CreatedTo,
    PageCursor,
    PageLimit,
    page_of,
    position_after,
)
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.reconciliation import (
    CheckResponse,
    ExceptionPageResponse,
    ExceptionResponse,
    ReportPageResponse,
    ReportResponse,
    ReportSummaryResponse,
    ResolveExceptionRequest,
    StartRunRequest,
)
from interface.bootstrap import Ledger
from projections import reconciliation
from projections.account_listing import (
    PAGE_SIZE_DEFAULT,
    encode_cursor,
)

router = APIRouter(tags=["reconciliation"])

VIEWS: Final = (reconciliation.NAME,)


def _report(ledger: Ledger, run_id: UUID, min_position: int | None) -> ReportResponse:
    views_caught_up(ledger, VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        row = reconciliation.run_by_id(reading, run_id)
        if row is None:
            raise LedgerRefusal(
                ResultCode.RECONCILIATION_RUN_NOT_FOUND,
                f"no reconciliation run {run_id}",
                run_id=str(run_id),
            )
        checks = reconciliation.checks_of(reading, run_id)
        exceptions = reconciliation.exceptions_of(reading, run_id)
    summary = ReportSummaryResponse.of(row)
    return ReportResponse(
        **summary.model_dump(),
        checks=[CheckResponse.of(check) for check in checks],
        exceptions=[ExceptionResponse.of(exception) for exception in exceptions],
    )


@router.get(
    "/v1/reconciliation/reports", response_model=ReportPageResponse, responses=ERROR_RESPONSES
)
def list_reports_route(
    ledger: LedgerDep,
    _: Operator,
    run_type: Annotated[RunType | None, Query(alias="type", description="Runs of this kind.")] = (
        None
    ),
    status: Annotated[RunStatus | None, Query(description="Runs in this status.")] = None,
    started_from: CreatedFrom = None,
    started_to: CreatedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> ReportPageResponse:
    """Reconciliation reports, newest first, of one `type` and `status` when
    given, started in [`from`, `to`)."""
    before = position_after(cursor) if cursor is not None else None
    views_caught_up(ledger, VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = reconciliation.run_page(
            reading,
            before_position=before,
            limit=limit + 1,
            run_type=None if run_type is None else run_type.value,
            status=None if status is None else status.value,
            started_from=started_from,
            started_to=started_to,
        )
    page = page_of(rows, limit, lambda row: encode_cursor(row.started_log_position))
    return ReportPageResponse(
        items=[ReportSummaryResponse.of(row) for row in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/v1/reconciliation/reports/{run_id}",
    response_model=ReportResponse,
    responses=ERROR_RESPONSES,
)
def get_report_route(
    run_id: UUID, ledger: LedgerDep, _: Operator, min_position: MinPosition = None
) -> ReportResponse:
    """One report: each check's result and the exceptions the run raised."""
    return _report(ledger, run_id, min_position)


@router.get(
    "/v1/reconciliation/exceptions",
    response_model=ExceptionPageResponse,
    responses=ERROR_RESPONSES,
)
def list_exceptions_route(
    ledger: LedgerDep,
    _: Operator,
    severity: Severity | None = None,
    resolved: bool | None = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    min_position: MinPosition = None,
) -> ExceptionPageResponse:
    """Exceptions of every run, oldest first: `resolved=false` is the queue
    waiting for a person (corrected ones count as resolved)."""
    after = position_after(cursor)
    views_caught_up(ledger, VIEWS, min_position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = reconciliation.exception_page(
            reading, severity=severity, resolved=resolved, after_position=after, limit=limit + 1
        )
    page = page_of(rows, limit, lambda row: encode_cursor(row.raised_log_position))
    return ExceptionPageResponse(
        items=[ExceptionResponse.of(row) for row in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.post(
    "/v1/reconciliation/runs",
    response_model=ReportResponse,
    status_code=202,
    responses=ERROR_RESPONSES,
)
def start_run_route(
    ledger: LedgerDep,
    principal: Operator,
    response: Response,
    request: StartRunRequest | None = None,
) -> ReportResponse:
    """Start a run; it is carried out in the background. Read its report
    (`Location`) until its status is passed or failed. One at a time per
    server: 409 `reconciliation_running` names the one under way."""
    run_type = RunType.MANUAL if request is None else request.type
    run = ledger.reconciliation_runs.start(run_type, principal.actor)
    response.headers["Location"] = f"/v1/reconciliation/reports/{run.id}"
    position = ledger.writer.last_position
    tell_position(response, position)
    return _report(ledger, run.id, position)


@router.post(
    "/v1/reconciliation/exceptions/{exception_id}/resolve",
    response_model=ExceptionResponse,
    responses=ERROR_RESPONSES,
)
def resolve_exception_route(
    exception_id: UUID,
    request: ResolveExceptionRequest,
    ledger: LedgerDep,
    _: Admin,
    response: Response,
) -> ExceptionResponse:
    """Close an open exception with the name of the person and a note.
    Closed already: 409 `reconciliation_exception_closed`."""
    ledger.reconciliation.resolve(exception_id, request.resolved_by, request.note)
    position = ledger.writer.last_position
    tell_position(response, position)
    views_caught_up(ledger, VIEWS, position)
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        row = reconciliation.exception_by_id(reading, exception_id)
    assert row is not None
    return ExceptionResponse.of(row)
