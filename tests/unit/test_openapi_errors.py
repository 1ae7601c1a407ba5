"""Each operation's error codes in the OpenAPI document (interface/api/openapi_errors.py).

The derivation is checked on routes whose codes are known from their code,
and every code it can name is checked against the error table of
docs/api.md, whose rows are the `doc_url` of every error body.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from domain.funded_account import FundedRefusalReason
from domain.result_codes import ResultCode
from domain.tiers import PositionRefusalReason
from interface.api import openapi_errors
from interface.api.openapi_errors import REFUSAL_ENUMS, add_error_responses, operation_error_codes

API_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ANCHOR: Final = re.compile(r'<a id="(?P<code>[a-z0-9_]+)"></a>')
DOCUMENTED_ROW: Final = re.compile(
    r'\| <a id="(?P<code>[a-z0-9_]+)"></a>`[a-z0-9_]+` \| (?P<status>\d{3}) \|'
)


def _codes(path: str, method: str) -> dict[int, frozenset[str]]:
    route = openapi_errors._routes_by_operation()[(path, method)]
    return operation_error_codes(route, method)


def _document() -> dict[str, Any]:
    app = FastAPI()
    for route in {id(r): r for r in openapi_errors._routes_by_operation().values()}.values():
        app.router.routes.append(route)
    return get_openapi(title="t", version="0", routes=app.routes)


def test_a_read_of_one_account_answers_its_own_refusals_and_none_of_a_write() -> None:
    codes = _codes("/v1/accounts/{account_id}", "GET")
    assert "account_not_found" in codes[404]
    # It reads the views with ?min_position: the consistency codes.
    assert "position_not_reached" in codes[409]
    assert {"projection_lagging", "projection_failed", "database_unavailable"} <= codes[503]
    assert codes[401] == {"unauthenticated", "invalid_api_key"}
    assert "forbidden" in codes[403]
    # No body: nothing about one (but its size, which is counted whatever
    # the route); no write: no ledger refusal, no writer error.
    assert 400 not in codes and codes[413] == {"request_too_large"}
    assert "insufficient_funds" not in codes.get(409, frozenset())
    assert "overloaded" not in codes[503]
    assert "idempotency_key_reused" not in codes[422]


def test_a_transfer_answers_the_ledgers_refusals_the_writers_errors_and_the_bodys() -> None:
    codes = _codes("/v1/transfers", "POST")
    assert {"insufficient_funds", "exceeds_debits", "account_not_active"} <= codes[409]
    assert "account_not_found" in codes[404]
    assert {"invalid_amount", "unbalanced_postings", "linked_event_chain_open"} <= codes[422]
    # The Idempotency-Key header's, on every POST under /v1.
    assert {"invalid_idempotency_key", "idempotency_key_reused"} <= codes[422]
    assert "idempotency_key_in_progress" in codes[409]
    assert codes[400] == {"malformed_body"} and codes[413] == {"request_too_large"}
    assert {"overloaded", "writer_timeout", "contention", "database_unavailable"} <= codes[503]


def test_a_public_route_answers_no_authentication_error() -> None:
    codes = _codes("/healthz", "GET")
    assert 401 not in codes and 403 not in codes
    assert codes[429] == {"rate_limited"} and codes[500] == {"internal_error"}


def test_every_code_an_operation_can_answer_has_its_row_with_that_status() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    anchors = {match["code"] for match in ANCHOR.finditer(text)}
    statuses = {match["code"]: int(match["status"]) for match in DOCUMENTED_ROW.finditer(text)}
    undocumented: set[str] = set()
    differing: dict[str, tuple[int, int]] = {}
    for (_path, method), route in openapi_errors._routes_by_operation().items():
        for status, codes in operation_error_codes(route, method).items():
            undocumented |= codes - anchors
            differing |= {
                code: (statuses[code], status)
                for code in codes
                if code in statuses and statuses[code] != status
            }
    assert undocumented == set(), f"{API_DOC.name} has no row (anchor) for these codes"
    assert differing == {}, "documented status, derived status"


def test_the_document_gets_one_response_per_status_with_its_codes_as_an_enum() -> None:
    document = _document()
    add_error_responses(document)
    read = document["paths"]["/v1/accounts/{account_id}"]["get"]["responses"]
    error_statuses = {status for status in read if status[0] in "45"}
    assert error_statuses == {str(status) for status in _codes("/v1/accounts/{account_id}", "GET")}
    schema = read["404"]["content"]["application/json"]["schema"]
    error = schema["properties"]["error"]
    assert "account_not_found" in error["properties"]["code"]["enum"]
    assert set(error["required"]) == {
        "code",
        "message",
        "field",
        "details",
        "request_id",
        "doc_url",
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    media = response["content"]["application/json"]
                    enum = media["schema"]["properties"]["error"]["properties"]["code"]["enum"]
                    assert enum, (method, path, status)


def test_an_operation_the_routes_do_not_have_is_refused() -> None:
    document: dict[str, Any] = {"paths": {"/v1/nowhere": {"get": {"responses": {}}}}}
    with pytest.raises(LookupError, match="/v1/nowhere"):
        add_error_responses(document)


def test_the_refusal_enums_followed_are_result_codes_by_the_same_names() -> None:
    enums = (ResultCode, FundedRefusalReason, PositionRefusalReason)
    assert {enum.__name__ for enum in enums} == REFUSAL_ENUMS
    for enum in enums:
        for member in enum:
            assert ResultCode[member.name].value == member.value, (enum.__name__, member)


def test_refusals_reached_through_callbacks_constructors_and_enums_are_found() -> None:
    # A fork's proposal runs in a thread (the method passed on), and a
    # funded account's refusal is a FundedRefusalReason.
    assert "funded_account_not_found" in _codes("/v1/forks", "POST")[404]
    assert "starting_balance_below_tier_minimum" in _codes("/v1/funded-accounts", "POST")[422]
    # `raise InvalidCursor`: a class whose constructor names the code.
    assert "invalid_cursor" in _codes("/v1/accounts", "GET")[422]
    # {transfer_id:uuid}: a value that is not one matches no route.
    assert "not_found" in _codes("/v1/transfers/{transfer_id}", "GET")[404]
