"""Every error leaves the API in one envelope, with a stable code and a 4xx.

`{"error": {"code": ..., "message": ..., "details": {...}}}`. The mapping from
result code to HTTP status lives here and nowhere else.
"""

from __future__ import annotations

from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from application.writer import WriterConflict, WriterOverloaded, WriterStopped, WriterTimeout
from domain.result_codes import LedgerRefusal, ResultCode
from interface.adapters.persistence.database_faults import DatabaseFault
from interface.api.request_ids import REQUEST_ID_HEADER, request_id_of

log = structlog.get_logger(__name__)

_NOT_FOUND: Final = frozenset(
    {
        ResultCode.ACCOUNT_NOT_FOUND,
        ResultCode.TRANSFER_NOT_FOUND,
        ResultCode.PENDING_TRANSFER_NOT_FOUND,
        ResultCode.FUNDED_ACCOUNT_NOT_FOUND,
        ResultCode.POSITION_NOT_FOUND,
        ResultCode.WITHDRAWAL_NOT_FOUND,
        ResultCode.CLOSURE_NOT_FOUND,
        ResultCode.FORK_NOT_FOUND,
        ResultCode.MERGE_NOT_FOUND,
        ResultCode.RECONCILIATION_RUN_NOT_FOUND,
        ResultCode.RECONCILIATION_EXCEPTION_NOT_FOUND,
    }
)

# Refusals that depend on the ledger's current state rather than on the
# request itself: the same request may succeed later.
_CONFLICT: Final = frozenset(
    {
        ResultCode.INSUFFICIENT_FUNDS,
        ResultCode.EXCEEDS_DEBITS,
        ResultCode.OVERFLOW,
        ResultCode.ACCOUNT_NOT_ACTIVE,
        ResultCode.ACCOUNT_HAS_PENDING_TRANSFERS,
        ResultCode.ACCOUNT_BALANCE_NOT_ZERO,
        ResultCode.INVALID_STATE_TRANSITION,
        ResultCode.TRANSFER_NOT_POSTED,
        ResultCode.TRANSFER_ALREADY_REVERSED,
        ResultCode.PENDING_TRANSFER_NOT_PENDING,
        ResultCode.PENDING_TRANSFER_ALREADY_POSTED,
        ResultCode.PENDING_TRANSFER_ALREADY_VOIDED,
        ResultCode.PENDING_TRANSFER_EXPIRED,
        ResultCode.PENDING_TRANSFER_NOT_EXPIRED,
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.ASSESSMENT_ALREADY_FUNDED,
        ResultCode.TOO_MANY_OPEN_POSITIONS,
        ResultCode.POSITION_EXCEEDS_TIER_SHARE,
        ResultCode.POSITION_EXCEEDS_RISK_LIMIT,
        ResultCode.CAPITAL_NOT_POSITIVE,
        ResultCode.POSITION_ALREADY_OPEN,
        ResultCode.OPEN_POSITIONS_REMAIN,
        ResultCode.BROKER_REJECTED,
        ResultCode.CONCURRENT_CHANGE,
        ResultCode.OPEN_POSITIONS,
        ResultCode.EXCEEDS_WITHDRAWABLE,
        ResultCode.WITHDRAWAL_NOT_PENDING,
        ResultCode.FORK_COOLDOWN,
        ResultCode.FORK_CAPACITY_REACHED,
        ResultCode.INSUFFICIENT_CAPITAL,
        ResultCode.RECONCILIATION_EXCEPTION_CLOSED,
        ResultCode.RECONCILIATION_RUNNING,
    }
)

# Refusals that say nothing about the request: the same request may succeed
# once a dependency answers again.
_UNAVAILABLE: Final = frozenset({ResultCode.BROKER_UNAVAILABLE, ResultCode.PAYOUT_UNAVAILABLE})


def status_for(code: ResultCode) -> int:
    if code is ResultCode.OK:
        return 201
    if code is ResultCode.EXISTS:
        return 200
    if code in _NOT_FOUND:
        return 404
    if code in _CONFLICT:
        return 409
    if code in _UNAVAILABLE:
        return 503
    return 422


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# The database did not answer (see database_faults.py): the same request may
# succeed after Retry-After. A write answered so was not acknowledged; sent
# again with the same idempotency key it lands once.
DATABASE_UNAVAILABLE: Final[str] = "database_unavailable"


def database_unavailable_response(fault: DatabaseFault) -> JSONResponse:
    return JSONResponse(
        error_body(
            DATABASE_UNAVAILABLE,
            f"the database is unavailable ({fault.reason.value}); retry after "
            f"{fault.retry_after_s} s with the same idempotency key",
            {"reason": fault.reason.value},
        ),
        status_code=503,
        headers={"Retry-After": str(fault.retry_after_s)},
    )


class ApiError(Exception):
    """An error the API answers with directly (not a ledger refusal)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


# Fields that hold money: their problems get the one message that helps.
_AMOUNT_FIELDS: Final = frozenset({"amount"})
_AMOUNT_PROBLEM: Final = 'must be a decimal string such as "12.34"; JSON numbers are refused'


def _validation_code(errors: list[dict[str, Any]]) -> str:
    for error in errors:
        location = error.get("loc", ())
        if location and location[-1] in _AMOUNT_FIELDS:
            return ResultCode.INVALID_AMOUNT.value
    return "invalid_request"


def _describe_validation(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    problems = [
        {
            "field": ".".join(str(part) for part in error.get("loc", ()) if part != "body"),
            "problem": _AMOUNT_PROBLEM
            if error.get("loc", ()) and error["loc"][-1] in _AMOUNT_FIELDS
            else str(error.get("msg", "invalid")),
        }
        for error in errors
    ]
    summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems[:5])
    return f"the request is not valid: {summary}", problems


def _methods_for_path(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerRefusal)
    async def ledger_refusal(_: Request, refusal: LedgerRefusal) -> JSONResponse:
        status = status_for(refusal.code)
        return JSONResponse(
            error_body(refusal.code.value, refusal.message, refusal.details),
            status_code=status,
            headers={"Retry-After": "5"} if status == 503 else None,
        )

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(error.code, error.message, error.details),
            status_code=error.status,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        # A parameter read by the route and by one of its dependencies (the
        # ownership aliases read the id and `min_position`) is validated by
        # each: name each problem once.
        distinct = {(tuple(found["loc"]), found["type"]): found for found in error.errors()}
        errors = list(distinct.values())
        message, problems = _describe_validation(errors)
        return JSONResponse(
            error_body(_validation_code(errors), message, {"problems": problems}),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "http_error"
        )
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            # Starlette names only the first matching route's methods; a path
            # served by several routes (GET and POST /v1/accounts) has them all.
            headers["Allow"] = ", ".join(_methods_for_path(request))
        return JSONResponse(
            error_body(code, str(error.detail)), status_code=error.status_code, headers=headers
        )

    @app.exception_handler(WriterOverloaded)
    async def overloaded(_: Request, error: WriterOverloaded) -> JSONResponse:
        return JSONResponse(
            error_body("overloaded", str(error)), status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(WriterStopped)
    async def stopped(_: Request, error: WriterStopped) -> JSONResponse:
        return JSONResponse(
            error_body("unavailable", str(error)), status_code=503, headers={"Retry-After": "5"}
        )

    @app.exception_handler(WriterTimeout)
    async def timed_out(_: Request, error: WriterTimeout) -> JSONResponse:
        # The database is slow or away (its faults are logged as they come):
        # one line for the request, which carries its id.
        log.warning("writer_timeout")
        return JSONResponse(
            error_body("writer_timeout", str(error)),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(WriterConflict)
    async def conflicted(_: Request, error: WriterConflict) -> JSONResponse:
        return JSONResponse(
            error_body("contention", str(error)), status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # A 500 is a bug: log everything, tell the client nothing internal.
        log.exception("unhandled_error", error_type=type(error).__name__)
        # This answer is sent outside the request context middleware: it
        # carries the request id itself, for the client to quote.
        request_id = request_id_of(request.scope)
        return JSONResponse(
            error_body(
                "internal_error",
                "an unexpected error occurred; it has been logged",
                {"request_id": request_id} if request_id else None,
            ),
            status_code=500,
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )
