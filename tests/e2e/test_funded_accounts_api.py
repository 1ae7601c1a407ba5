"""Reading funded accounts and the tiers over HTTP: figures, positions, rule
status and withdrawable worked out by hand, ownership, pages, and refusals in
the error envelope."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.positions import PositionSide
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.funded_accounts import activate_funded_account
from tests.support.http_api import assert_error

OWNER, OTHER = "trader-1", "trader-2"


def _user(ledger: Ledger, owner_id: str) -> dict[str, str]:
    return bearer(ledger.api_keys.create(Role.USER, owner_id=owner_id)[1])


def _set_price(ledger: Ledger, symbol: str, price_minor: int) -> None:
    """Bid and ask alike, so every fill and mark is at exactly this price."""
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_price(symbol, bid_minor=price_minor, ask_minor=price_minor)


def _get(client: TestClient, path: str, **options: Any) -> dict[str, Any]:
    response = client.get(path, **options)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_tiers_are_the_configuration_for_any_caller(client: TestClient, ledger: Ledger) -> None:
    body = _get(client, "/v1/tiers", headers=_user(ledger, OWNER))
    assert body["currency"] == "USD"
    assert body["risk_per_trade_limit"] == "0.05"
    assert [tier["name"] for tier in body["tiers"]] == ["Gen", "Rev", "Com"]
    gen, _rev, com = body["tiers"]
    assert gen == {
        "name": "Gen",
        "minimum_capital": "10000.00",
        "fork_threshold": "100000.00",
        "next_tier": "Rev",
        "max_open_positions": 10,
        "max_position_share": "0.2",
        "risk_multiplier": "1",
        "drawdown_limit": "0.1",
    }
    assert (com["fork_threshold"], com["next_tier"], com["risk_multiplier"]) == (None, None, "1.5")


def test_an_account_shows_its_figures_positions_rule_status_and_withdrawable(
    client: TestClient, ledger: Ledger
) -> None:
    account_id = activate_funded_account(ledger, owner_id=OWNER, tier=TierName.GEN)
    trading = ledger.funded_accounts
    # Gen starts with $10,000. A $400 long (4 % of the balance) and a $200 one.
    _set_price(ledger, "ACME", 100_00)
    _set_price(ledger, "BOLT", 100_00)
    trading.open_position(account_id, "ACME", PositionSide.LONG, 4)
    bolt = trading.open_position(account_id, "BOLT", PositionSide.LONG, 2)
    # BOLT closes $50 up a share: $100 realized.
    _set_price(ledger, "BOLT", 150_00)
    trading.close_position(account_id, bolt.position_id)
    # ACME is marked $20 up a share: $80 unrealized.
    _set_price(ledger, "ACME", 120_00)
    trading.mark_to_market(account_id)

    body = _get(client, f"/v1/funded-accounts/{account_id}", headers=_user(ledger, OWNER))

    assert (body["id"], body["owner_id"], body["tier"], body["state"], body["currency"]) == (
        str(account_id),
        OWNER,
        "Gen",
        "active",
        "USD",
    )
    assert body["profit_split"] == "0.8"
    assert body["balances"] == {
        "starting_balance": "10000.00",
        "current_balance": "10100.00",
        # The highest equity yet: now.
        "peak_balance": "10180.00",
        "realized_pnl": "100.00",
        "unrealized_pnl": "80.00",
        "equity": "10180.00",
        "total_withdrawn": "0.00",
        "reserved_for_withdrawals": "0.00",
    }
    [acme] = body["positions"]
    assert {
        key: value for key, value in acme.items() if key not in ("position_id", "opened_at")
    } == {
        "symbol": "ACME",
        "side": "long",
        "quantity": 4,
        "entry_price": "100.00",
        "mark_price": "120.00",
        "market_value": "480.00",
        "unrealized_pnl": "80.00",
    }
    # Risk per trade: $480 of $10,100 = 24/505, which is 96/101 of the 5 % limit
    # (over 90 %: danger). No drawdown: equity is at its peak.
    assert body["rule_status"] == {
        "band": "danger",
        "rules": [
            {"rule": "drawdown", "value": "0", "limit": "0.1", "share_used": "0", "band": "safe"},
            {
                "rule": "risk_per_trade",
                "value": "0.047524",
                "limit": "0.05",
                "share_used": "0.950495",
                "band": "danger",
            },
        ],
    }
    # The band the service recorded with the mark.
    assert body["band"] == "danger"
    # 4/5 of the $100 profit.
    assert body["withdrawable"] == "80.00"


def test_a_user_lists_and_reads_only_their_own_accounts(client: TestClient, ledger: Ledger) -> None:
    mine = [activate_funded_account(ledger, owner_id=OWNER) for _ in range(2)]
    theirs = activate_funded_account(ledger, owner_id=OTHER, tier=TierName.REV)
    user = _user(ledger, OWNER)

    listed = _get(client, "/v1/funded-accounts", headers=user)
    assert [item["id"] for item in listed["items"]] == [str(account_id) for account_id in mine]
    assert listed["next_cursor"] is None
    assert_error(
        client.get("/v1/funded-accounts", params={"owner_id": OTHER}, headers=user),
        403,
        "forbidden",
    )
    for hidden in (theirs, uuid.uuid4()):
        body = assert_error(
            client.get(f"/v1/funded-accounts/{hidden}", headers=user),
            404,
            "funded_account_not_found",
        )
        assert body["error"]["details"] == {"funded_account_id": str(hidden)}
    assert_error(client.get("/v1/funded-accounts/not-a-uuid", headers=user), 422, "invalid_request")

    # Platform keys see everyone's, or one owner's.
    everyone = _get(client, "/v1/funded-accounts")
    assert [item["id"] for item in everyone["items"]] == [str(i) for i in [*mine, theirs]]
    only_theirs = _get(client, "/v1/funded-accounts", params={"owner_id": OTHER})
    assert [item["id"] for item in only_theirs["items"]] == [str(theirs)]
    assert only_theirs["items"][0]["balances"]["starting_balance"] == "100000.00"
    assert _get(client, f"/v1/funded-accounts/{theirs}")["owner_id"] == OTHER


def test_pages_list_every_account_once_in_activation_order(
    client: TestClient, ledger: Ledger
) -> None:
    activated = [str(activate_funded_account(ledger, owner_id=OWNER)) for _ in range(5)]
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = _get(client, "/v1/funded-accounts", params=params)
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (activated, 3)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "cDE6LTE", "cDE6OTIyMzM3MjAzNjg1NDc3NTgwOA"])
def test_a_cursor_the_api_did_not_give_is_refused(client: TestClient, cursor: str) -> None:
    # Garbage, "p1:-1", and "p1:" one past the largest log position.
    assert_error(
        client.get("/v1/funded-accounts", params={"cursor": cursor}), 422, "invalid_cursor"
    )
