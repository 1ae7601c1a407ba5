"""Shared response helpers: the error shapes in OpenAPI, refusals from results."""

from __future__ import annotations

from typing import Any

from domain.ledger_batch import CommandResult
from domain.result_codes import LedgerRefusal
from interface.api.schemas.common import ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not decodable JSON"},
    401: {"model": ErrorResponse, "description": "No API key, or an unknown or revoked one"},
    403: {"model": ErrorResponse, "description": "The key's role may not use this route"},
    404: {"model": ErrorResponse, "description": "Not found"},
    409: {"model": ErrorResponse, "description": "Refused by the ledger's current state"},
    422: {"model": ErrorResponse, "description": "The request is not valid"},
    429: {"model": ErrorResponse, "description": "Rate limited: retry after `Retry-After` seconds"},
    503: {"model": ErrorResponse, "description": "Busy or unavailable: retry after a pause"},
}


def refusal_of(result: CommandResult) -> LedgerRefusal:
    return LedgerRefusal(
        result.code, result.message or result.code.value.replace("_", " "), **result.details
    )
