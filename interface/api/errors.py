"""Every error leaves the API in one envelope, with a stable code and a 4xx.

`{"error": {"code", "message", "field", "details", "request_id", "doc_url"}}`,
built by `error_body` alone: the exception handlers here and the middlewares
that answer before any handler (authentication, rate limits, body size,
idempotency, database faults) all call it (docs/api.md#request-ids-rate-limits-errors).
The mapping from result code to HTTP status lives here and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Send

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


# Every code has its row, and its anchor, in the error table of docs/api.md:
# `doc_url` is this page and the code as the fragment, a path from the
# repository's root (the docs ship with the service, not on a host of ours).
ERROR_DOC_PAGE: Final[str] = "docs/api.md"


def doc_url_of(code: str) -> str:
    return f"{ERROR_DOC_PAGE}#{code}"


def error_body(
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    scope: Mapping[str, Any] | None,
    field: str | None = None,
) -> dict[str, Any]:
    """The one error body. `scope` is the request's (its id is quoted, for the
    client to give when it asks about this answer); `field` names the input
    at fault, or is taken from `details.field` when a check put it there."""
    details = details or {}
    if field is None and isinstance(details.get("field"), str):
        field = details["field"]
    return {
        "error": {
            "code": code,
            "message": message,
            "field": field,
            "details": details,
            "request_id": request_id_of(scope) if scope is not None else None,
            "doc_url": doc_url_of(code),
        }
    }


def error_response(
    scope: Mapping[str, Any],
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details, scope=scope, field=field),
        status_code=status,
        headers=dict(headers) if headers else None,
    )


async def send_error(
    scope: Mapping[str, Any],
    send: Send,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """For the pure ASGI middlewares, which answer with `send` alone."""
    body = json.dumps(error_body(code, message, details, scope=scope)).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


# The database did not answer (see database_faults.py): the same request may
# succeed after Retry-After. A write answered so was not acknowledged; sent
# again with the same idempotency key it lands once.
DATABASE_UNAVAILABLE: Final[str] = "database_unavailable"


async def send_database_unavailable(
    scope: Mapping[str, Any], send: Send, fault: DatabaseFault
) -> None:
    await send_error(
        scope,
        send,
        503,
        DATABASE_UNAVAILABLE,
        f"the database is unavailable ({fault.reason.value}); retry after "
        f"{fault.retry_after_s} s with the same idempotency key",
        {"reason": fault.reason.value},
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
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers
        self.field = field


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


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: int
    code: str
    retry_after_s: int


# The writer's own refusals (application/writer.py), each with its answer:
# none says anything about the request, so each is a 503 with Retry-After.
WRITER_ERRORS: Final[dict[type[Exception], ErrorAnswer]] = {
    # The writer's queue is full.
    WriterOverloaded: ErrorAnswer(503, "overloaded", 1),
    # The writer is stopped (the service is shutting down).
    WriterStopped: ErrorAnswer(503, "unavailable", 5),
    # The writer did not decide in time: the database is slow or away.
    WriterTimeout: ErrorAnswer(503, "writer_timeout", 5),
    # A batch decided under the log's write lock still met a version conflict.
    WriterConflict: ErrorAnswer(503, "contention", 1),
}


async def _writer_error(request: Request, error: Exception) -> JSONResponse:
    answer = WRITER_ERRORS[type(error)]
    if isinstance(error, WriterTimeout | WriterStopped):
        # The database is slow or away, or the writer process is (restarting,
        # or its lease is being taken back): one line for the request, which
        # carries its id, named by the answer's code.
        log.warning(answer.code)
    return error_response(
        request.scope,
        answer.status,
        answer.code,
        str(error),
        headers={"Retry-After": str(answer.retry_after_s)},
    )


# What the framework reports when the body is not JSON at all: a 400, not a
# problem with one field (docs/api.md#malformed_body).
_JSON_INVALID: Final[str] = "json_invalid"
MALFORMED_BODY: Final[str] = "malformed_body"


def _malformed_body(request: Request, error: dict[str, Any]) -> JSONResponse:
    location = error.get("loc", ())
    position = location[-1] if location and isinstance(location[-1], int) else None
    reason = str((error.get("ctx") or {}).get("error", "not JSON"))
    return error_response(
        request.scope,
        400,
        MALFORMED_BODY,
        f"the body is not valid JSON: {reason}"
        + (f" at character {position}" if position is not None else ""),
        {"reason": reason, "position": position},
        field="body",
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerRefusal)
    async def ledger_refusal(request: Request, refusal: LedgerRefusal) -> JSONResponse:
        status = status_for(refusal.code)
        return error_response(
            request.scope,
            status,
            refusal.code.value,
            refusal.message,
            refusal.details,
            headers={"Retry-After": "5"} if status == 503 else None,
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(
            request.scope,
            error.status,
            error.code,
            error.message,
            error.details,
            field=error.field,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # A parameter read by the route and by one of its dependencies (the
        # ownership aliases read the id and `min_position`) is validated by
        # each: name each problem once.
        distinct = {(tuple(found["loc"]), found["type"]): found for found in error.errors()}
        errors = list(distinct.values())
        for found in errors:
            if found.get("type") == _JSON_INVALID:
                return _malformed_body(request, found)
        message, problems = _describe_validation(errors)
        return error_response(
            request.scope,
            422,
            _validation_code(errors),
            message,
            {"problems": problems},
            field=problems[0]["field"] or "body" if problems else None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {400: MALFORMED_BODY, 404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "http_error"
        )
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            # Starlette names only the first matching route's methods; a path
            # served by several routes (GET and POST /v1/accounts) has them all.
            headers["Allow"] = ", ".join(_methods_for_path(request))
        return error_response(
            request.scope, error.status_code, code, str(error.detail), headers=headers
        )

    for exception_type in WRITER_ERRORS:
        app.add_exception_handler(exception_type, _writer_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # A 500 is a bug: log everything, tell the client nothing internal.
        log.exception("unhandled_error", error_type=type(error).__name__)
        # This answer is sent outside the request context middleware: it
        # carries the request id itself, for the client to quote.
        request_id = request_id_of(request.scope)
        return error_response(
            request.scope,
            500,
            "internal_error",
            "an unexpected error occurred; it has been logged",
            {"request_id": request_id} if request_id else None,
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )
