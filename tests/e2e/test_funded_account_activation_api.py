"""Activating funded accounts over HTTP: once per assessment, the capital in
the ledger, each refusal with its code, the service role only."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error, balances


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "assessment_id": f"assessment-{uuid.uuid4()}",
        "assessment_status": "passed",
        "owner_id": "trader-9",
        "tier": "Gen",
        "profit_split": "4/5",
        "completed_at": "2025-12-31T18:00:00Z",
    }
    body.update(changes)
    return body


def test_activation_funds_the_account_once(client: TestClient) -> None:
    body = _body(tier="Rev", profit_split="0.9", starting_balance="150000.00")
    created = client.post("/v1/funded-accounts", json=body)
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["state"] == "active" and account["tier"] == "Rev"
    assert account["profit_split"] == "0.9"
    assert account["balances"]["starting_balance"] == "150000.00"
    assert account["balances"]["current_balance"] == "150000.00"
    assert account["withdrawable"] == "0.00"
    assert balances(client, account["ledger_account_id"])["posted"] == "150000.00"

    again = client.post("/v1/funded-accounts", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == account["id"]
    assert balances(client, account["ledger_account_id"])["posted"] == "150000.00"

    other_tier = client.post("/v1/funded-accounts", json=body | {"tier": "Com"})
    assert_error(other_tier, 409, "assessment_already_funded")


def test_each_bad_request_is_refused_with_its_code(client: TestClient) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        (_body(assessment_status="failed"), 422, "assessment_not_passed"),
        (_body(completed_at="2999-01-01T00:00:00Z"), 422, "invalid_request"),
        (_body(profit_split="3/2"), 422, "invalid_request"),
        (_body(profit_split="0"), 422, "invalid_request"),
        (_body(profit_split="1/0"), 422, "invalid_request"),
        (_body(starting_balance="9999.99"), 422, "starting_balance_below_tier_minimum"),
        (_body(starting_balance="-5"), 422, "amount_must_be_positive"),
        (_body(tier="Gold"), 422, "invalid_request"),
        (_body(current_balance="1.00"), 422, "invalid_request"),
        (_body(completed_at="2025-12-31T18:00:00"), 422, "invalid_request"),
    ]
    for body, status, code in cases:
        assert_error(client.post("/v1/funded-accounts", json=body), status, code)


def test_only_the_service_role_activates(ledger: Ledger, client: TestClient) -> None:
    for role, owner in ((Role.ADMIN, None), (Role.AUDITOR, None), (Role.USER, "trader-9")):
        headers = bearer(ledger.api_keys.create(role, owner_id=owner)[1])
        response = client.post("/v1/funded-accounts", json=_body(), headers=headers)
        assert_error(response, 403, "forbidden")
    anonymous = client.post("/v1/funded-accounts", json=_body(), headers={"Authorization": ""})
    assert anonymous.status_code == 401
