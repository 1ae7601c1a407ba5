"""Trading over HTTP: positions open and close on the simulated broker, prices
set by an admin, ownership and refusals as the API promises."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from application.funded_accounts import ActivationRequest
from domain.tiers import TierName
from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error

OWNER = "trader-7"


def _funded_account_id(ledger: Ledger) -> str:
    activation = ledger.funded_accounts.activate(
        ActivationRequest(
            assessment_id=f"assessment-{uuid4()}",
            owner_id=OWNER,
            tier=TierName.GEN,
            profit_split=Fraction(4, 5),
            completed_at=datetime(2026, 1, 2, tzinfo=UTC),
        ),
        actor="e2e",
    )
    return str(activation.account.id)


def _as(
    ledger: Ledger, client: TestClient, role: Role, owner_id: str | None = None
) -> dict[str, str]:
    _, key = ledger.api_keys.create(role, owner_id=owner_id, label="e2e")
    return bearer(key)


@pytest.fixture
def admin(ledger: Ledger, client: TestClient) -> dict[str, str]:
    return _as(ledger, client, Role.ADMIN)


@pytest.fixture
def owner(ledger: Ledger, client: TestClient) -> dict[str, str]:
    return _as(ledger, client, Role.USER, OWNER)


def _set_price(client: TestClient, admin: dict[str, str], bid: str, ask: str) -> None:
    response = client.put(
        "/v1/admin/simulated-market/ACME", json={"bid": bid, "ask": ask}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["bid"] == bid


def test_an_owner_opens_and_closes_a_position_and_the_pnl_is_posted(
    ledger: Ledger, client: TestClient, admin: dict[str, str], owner: dict[str, str]
) -> None:
    funded_id = _funded_account_id(ledger)
    _set_price(client, admin, "99.90", "100.00")
    opened = client.post(
        f"/v1/funded-accounts/{funded_id}/positions",
        json={"symbol": "ACME", "side": "long", "quantity": 3},
        headers={**owner, "Idempotency-Key": "open-1"},
    )
    assert opened.status_code == 201, opened.text
    position = opened.json()
    assert position["price"] == "100.00" and position["realized_pnl"] == "0.00"
    assert position["band"] == "safe" and position["account_state"] == "active"

    _set_price(client, admin, "101.50", "101.60")
    closed = client.post(
        f"/v1/funded-accounts/{funded_id}/positions/{position['position_id']}/close",
        headers=owner,
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["realized_pnl"] == "4.50"
    account = ledger.funded_accounts.require_funded_account(UUID(funded_id))
    ledger_account = ledger.service.account(account.ledger_account_id)
    assert ledger_account is not None
    totals = ledger_account.totals
    assert totals.credits_posted - totals.debits_posted == 1_000_000 + 450

    quote = client.get("/v1/market/quotes/ACME", headers=owner)
    assert quote.status_code == 200 and quote.json()["ask"] == "101.60"


def test_refusals_have_their_codes(
    ledger: Ledger, client: TestClient, admin: dict[str, str], owner: dict[str, str]
) -> None:
    funded_id = _funded_account_id(ledger)
    _set_price(client, admin, "100.00", "100.00")
    path = f"/v1/funded-accounts/{funded_id}/positions"
    too_big = client.post(
        path, json={"symbol": "ACME", "side": "long", "quantity": 6}, headers=owner
    )
    assert_error(too_big, 409, "position_exceeds_risk_limit")
    unknown = client.post(
        path, json={"symbol": "NOPE", "side": "long", "quantity": 1}, headers=owner
    )
    assert_error(unknown, 422, "unknown_symbol")
    float_quantity = client.post(
        path, json={"symbol": "ACME", "side": "long", "quantity": 1.5}, headers=owner
    )
    assert float_quantity.status_code == 422
    extra = client.post(
        path, json={"symbol": "ACME", "side": "long", "quantity": 1, "price": "1.00"}, headers=owner
    )
    assert extra.status_code == 422
    missing = client.post(f"{path}/no-such-position/close", headers=owner)
    assert_error(missing, 404, "position_not_found")
    crossed = client.put(
        "/v1/admin/simulated-market/ACME", json={"bid": "2.00", "ask": "1.00"}, headers=admin
    )
    assert crossed.status_code == 422


def test_another_owner_sees_no_account_and_only_an_admin_sets_prices(
    ledger: Ledger, client: TestClient
) -> None:
    funded_id = _funded_account_id(ledger)
    stranger = _as(ledger, client, Role.USER, "someone-else")
    response = client.post(
        f"/v1/funded-accounts/{funded_id}/positions",
        json={"symbol": "ACME", "side": "long", "quantity": 1},
        headers=stranger,
    )
    assert_error(response, 404, "funded_account_not_found")
    for role in (Role.SERVICE, Role.AUDITOR):
        denied = client.put(
            "/v1/admin/simulated-market/ACME",
            json={"bid": "1.00", "ask": "1.00"},
            headers=_as(ledger, client, role),
        )
        assert denied.status_code == 403
    auditor_trade = client.post(
        f"/v1/funded-accounts/{funded_id}/positions",
        json={"symbol": "ACME", "side": "long", "quantity": 1},
        headers=_as(ledger, client, Role.AUDITOR),
    )
    assert auditor_trade.status_code == 403


def test_a_retried_open_with_one_idempotency_key_trades_once(
    ledger: Ledger, client: TestClient, admin: dict[str, str], owner: dict[str, str]
) -> None:
    funded_id = _funded_account_id(ledger)
    _set_price(client, admin, "100.00", "100.00")
    request = {"symbol": "ACME", "side": "short", "quantity": 2}
    headers = {**owner, "Idempotency-Key": "short-once"}
    first = client.post(f"/v1/funded-accounts/{funded_id}/positions", json=request, headers=headers)
    again = client.post(f"/v1/funded-accounts/{funded_id}/positions", json=request, headers=headers)
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["position_id"] == first.json()["position_id"]
    account = ledger.funded_accounts.require_funded_account(UUID(funded_id))
    assert len(account.positions) == 1
