"""Small helpers for driving the HTTP API, in-process (TestClient) or over a socket.

TestClient is an httpx.Client, so every helper takes an httpx.Client.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code; returns its body."""
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "field", "details", "request_id", "doc_url"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["field"] is None or isinstance(error["field"], str), error
    assert isinstance(error["details"], dict), error
    assert error["request_id"] == response.headers["X-Request-ID"], error
    assert error["doc_url"] == f"docs/api.md#{code}", error
    return body


def open_account(
    client: httpx.Client,
    *,
    key: str | None = None,
    kind: str = "user",
    currency: str = "USD",
    flagged: bool = False,
    owner_id: str = "owner-1",
) -> dict[str, Any]:
    response = client.post(
        "/v1/accounts",
        json={
            "idempotency_key": key or f"acct-{uuid.uuid4()}",
            "currency": currency,
            "owner_id": owner_id,
            "kind": kind,
            "flags": {"debits_must_not_exceed_credits": flagged},
        },
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def transfer_body(
    debit_account_id: str,
    credit_account_id: str,
    amount: str,
    *,
    key: str | None = None,
    currency: str = "USD",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "idempotency_key": f"tr-{uuid.uuid4()}" if key is None else key,
        "debit_account_id": debit_account_id,
        "credit_account_id": credit_account_id,
        "amount": amount,
        "currency": currency,
        **extra,
    }


def post_transfer(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """POST a transfer that must be made (201); returns it."""
    response = client.post("/v1/transfers", json=body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def balances(client: httpx.Client, account_id: str) -> dict[str, str]:
    response = client.get(f"/v1/accounts/{account_id}")
    assert response.status_code == 200, response.text
    found: dict[str, str] = response.json()["balances"]
    return found
