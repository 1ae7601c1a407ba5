"""Every error body: its code, message, field, request id and doc_url; money as money.

One envelope (docs/api.md#request-ids-rate-limits-errors), built in one place
whoever answers: a route, the framework's validation, or a middleware that
answers before any route. Each error answered here is also one of the codes
its operation lists in the OpenAPI document (interface/api/openapi_errors.py).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi.testclient import TestClient
from httpx import Response

from interface.api.openapi_errors import codes_of_operation
from interface.bootstrap import Ledger
from tests.support.http_api import assert_error, open_account, post_transfer, transfer_body

REQUEST_ID: Final[str] = "error-bodies-1"
SHORT_POOL_WAIT_S: Final[float] = 0.2


def _listed_for(response: Response, method: str, path: str) -> None:
    """The error answered is one of the codes the operation's enum lists."""
    error = response.json()["error"]
    listed = codes_of_operation(path, method)
    assert error["code"] in listed.get(response.status_code, frozenset()), (
        method,
        path,
        response.status_code,
        error["code"],
    )


def _error(response: Response, status: int, code: str) -> dict[str, Any]:
    error: dict[str, Any] = assert_error(response, status, code)["error"]
    return error


def test_a_body_that_is_not_json_answers_400_naming_the_body(client: TestClient) -> None:
    refused = client.post(
        "/v1/transfers",
        content=b'{"amount": "1.00",',
        headers={"content-type": "application/json", "X-Request-ID": REQUEST_ID},
    )
    error = _error(refused, 400, "malformed_body")
    assert error["field"] == "body"
    assert error["request_id"] == REQUEST_ID
    assert error["doc_url"] == "docs/api.md#malformed_body"
    assert error["details"]["position"] == len('{"amount": "1.00",')
    assert "not valid JSON" in error["message"]
    _listed_for(refused, "POST", "/v1/transfers")


def test_insufficient_funds_says_what_was_available_and_what_was_asked(
    client: TestClient,
) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    alice = open_account(client, flagged=True)["id"]
    bob = open_account(client)["id"]
    post_transfer(client, transfer_body(cash, alice, "40.00"))
    held = transfer_body(alice, bob, "15.50", pending=True, timeout_s=3600)
    post_transfer(client, held)

    refused = client.post("/v1/transfers", json=transfer_body(alice, bob, "1000.00"))

    error = _error(refused, 409, "insufficient_funds")
    # 40.00 credited, 15.50 held: 24.50 left to move.
    assert error["details"] == {
        "account_id": alice,
        "currency": "USD",
        "available": "24.50",
        "requested": "1000.00",
        "available_minor_units": 2450,
        "requested_minor_units": 100000,
    }
    assert "24.50 USD available" in error["message"]
    assert "1000.00 USD" in error["message"]
    assert "minor units" not in error["message"]
    assert error["field"] is None
    _listed_for(refused, "POST", "/v1/transfers")


def test_a_validation_error_names_the_field_at_fault(client: TestClient) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    bob = open_account(client)["id"]
    as_number: dict[str, Any] = {**transfer_body(cash, bob, "1.00"), "amount": 1.0}
    refused = client.post("/v1/transfers", json=as_number)
    error = _error(refused, 422, "invalid_amount")
    assert error["field"] == "amount"
    assert error["details"]["problems"][0]["field"] == "amount"
    _listed_for(refused, "POST", "/v1/transfers")

    not_a_boolean = {**transfer_body(cash, bob, "1.00"), "pending": "yes"}
    refused = client.post("/v1/transfers", json=not_a_boolean)
    assert _error(refused, 422, "invalid_request")["field"] == "pending"

    refused = client.get("/v1/accounts", params={"limit": "many"})
    assert _error(refused, 422, "invalid_request")["field"] == "query.limit"
    _listed_for(refused, "GET", "/v1/accounts")


def test_a_check_at_the_edge_names_its_field_at_the_top(client: TestClient) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    bob = open_account(client)["id"]
    body = transfer_body(cash, bob, "1.00", metadata={"note": "a\u0000b"})
    refused = client.post("/v1/transfers", json=body)
    error = _error(refused, 422, "invalid_string")
    assert error["field"] == error["details"]["field"] == "metadata.note"


def test_the_middlewares_answer_in_the_same_envelope(client: TestClient) -> None:
    anonymous = client.get(
        "/v1/accounts", headers={"Authorization": "", "X-Request-ID": REQUEST_ID}
    )
    error = _error(anonymous, 401, "unauthenticated")
    assert (error["request_id"], error["field"]) == (REQUEST_ID, None)
    _listed_for(anonymous, "GET", "/v1/accounts")

    bad_key = client.post(
        "/v1/accounts",
        json={"currency": "USD", "owner_id": "o"},
        headers={"Idempotency-Key": "k" * 256},
    )
    _error(bad_key, 422, "invalid_idempotency_key")
    _listed_for(bad_key, "POST", "/v1/accounts")

    too_large = client.post(
        "/v1/accounts",
        content=b"x" * (2 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    _error(too_large, 413, "request_too_large")
    _listed_for(too_large, "POST", "/v1/accounts")


def test_a_database_fault_under_an_idempotency_key_is_database_unavailable(
    client: TestClient, ledger: Ledger
) -> None:
    """As everywhere else: not the idempotency store's own `unavailable`."""
    pool = ledger.pool
    held = [pool.getconn() for _ in range(pool.max_size)]
    wait_s = pool.timeout
    pool.timeout = SHORT_POOL_WAIT_S
    try:
        refused = client.post(
            "/v1/accounts",
            json={"currency": "USD", "owner_id": "o"},
            headers={"Idempotency-Key": "fault-1"},
        )
    finally:
        pool.timeout = wait_s
        for connection in held:
            pool.putconn(connection)
    error = _error(refused, 503, "database_unavailable")
    assert error["details"] == {"reason": "pool_exhausted"}
    assert refused.headers["Retry-After"] == "1"
    _listed_for(refused, "POST", "/v1/accounts")
    # The claim was never made: the same key runs afresh.
    answered = client.post(
        "/v1/accounts",
        json={"currency": "USD", "owner_id": "o"},
        headers={"Idempotency-Key": "fault-1"},
    )
    assert answered.status_code == 201, answered.text
