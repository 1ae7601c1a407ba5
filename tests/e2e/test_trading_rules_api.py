"""Trading rules through the API, with the specification's figures
(docs/rules.md): rule decisions on the newest marks, a stale mark decides
nothing, total return over every day including the first, the market gap
guard fed through the simulated market's open and last close.

Worker passes (the rules monitor's mark, the guards' pass after a sync) are
run by the test, as the other e2e tests run them; everything else goes
through the HTTP API on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Final
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer

OWNER: Final[str] = "trader-rules"
SYMBOL: Final[str] = "HALF"
# LEDGER_MARK_AGE_MAX_S's default.
MARK_AGE_MAX: Final = timedelta(seconds=60)

Headers = dict[str, str]


@pytest.fixture
def admin(ledger: Ledger) -> Headers:
    return bearer(ledger.api_keys.create(Role.ADMIN, label="e2e")[1])


def _json(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


def _activate(client: TestClient, starting_balance: str = "100000.00") -> str:
    body = {
        "assessment_id": f"assessment-{uuid.uuid4()}",
        "assessment_status": "passed",
        "owner_id": OWNER,
        "tier": "Gen",
        "profit_split": "4/5",
        "completed_at": "2025-12-31T18:00:00Z",
        "starting_balance": starting_balance,
    }
    account_id: str = _json(client.post("/v1/funded-accounts", json=body), 201)["id"]
    return account_id


def _price(client: TestClient, admin: Headers, price: str, **more: str) -> dict[str, Any]:
    body = {"bid": price, "ask": price} | more
    return _json(client.put(f"/v1/admin/simulated-market/{SYMBOL}", json=body, headers=admin))


def _open(client: TestClient, account_id: str, quantity: int) -> str:
    opened = _json(
        client.post(
            f"/v1/funded-accounts/{account_id}/positions",
            json={"symbol": SYMBOL, "side": "long", "quantity": quantity},
        ),
        201,
    )
    position_id: str = opened["position_id"]
    return position_id


def _close(client: TestClient, account_id: str, position_id: str) -> None:
    _json(client.post(f"/v1/funded-accounts/{account_id}/positions/{position_id}/close"))


def _account(client: TestClient, account_id: str) -> dict[str, Any]:
    return _json(client.get(f"/v1/funded-accounts/{account_id}"))


def _rule(account: dict[str, Any], name: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = account["rule_status"]["rules"]
    return next(rule for rule in rules if rule["rule"] == name)


def _band_changes(ledger: Ledger, account_id: str) -> list[dict[str, Any]]:
    events = ledger.app.events.get(UUID(account_id))
    return [vars(event) for event in events if type(event).__name__ == "BandChanged"]


def test_rules_decide_on_the_newest_mark_of_every_open_position(
    client: TestClient, ledger: Ledger, clock: SettableClock, admin: Headers
) -> None:
    """Two positions of 5 % each in one symbol; the price halves; one is closed.
    The other is 2.6 % of the balance at the new price and the drawdown half
    its limit: no violation (the defect closed the account on the entry price)."""
    account_id = _activate(client)
    _price(client, admin, "50.00")
    first = _open(client, account_id, 100)
    _open(client, account_id, 100)
    _price(client, admin, "25.00")
    _close(client, account_id, first)

    account = _account(client, account_id)
    assert account["state"] == "active"
    assert account["balances"]["current_balance"] == "97500.00"
    # 2,500.00 / 97,500.00 = 1/39, about 2.6 %, of a 5 % limit.
    risk = _rule(account, "risk_per_trade")
    assert (risk["value"], risk["limit"], risk["band"]) == ("0.025641", "0.05", "safe")
    # Equity 95,000.00 from a 100,000.00 peak: 5 %, half of Gen's 10 %.
    drawdown = _rule(account, "drawdown")
    assert (drawdown["value"], drawdown["share_used"]) == ("0.05", "0.5")
    # The decision names the mark it was read on, with its time.
    *_, latest = _band_changes(ledger, account_id)
    assert latest["to_band"] == "safe"
    assert latest["marks"] == {SYMBOL: {"price_minor": 25_00, "quoted_at": clock.now().isoformat()}}


def test_a_rule_decision_on_a_mark_older_than_the_bound_is_not_taken(
    client: TestClient, ledger: Ledger, clock: SettableClock, admin: Headers
) -> None:
    account_id = _activate(client)
    _price(client, admin, "50.00")
    _open(client, account_id, 100)
    # 100 x 60.00 would be 6 % of the balance, over the 5 % limit; but the
    # quote stopped 61 s ago, older than LEDGER_MARK_AGE_MAX_S (60 s).
    stale_at = clock.now() - MARK_AGE_MAX - timedelta(seconds=1)
    _price(client, admin, "60.00", quoted_at=stale_at.isoformat())
    decided_before = len(_band_changes(ledger, account_id))
    check = ledger.funded_accounts.mark_to_market(UUID(account_id))
    assert not check.enforced
    assert _account(client, account_id)["state"] == "active"
    assert len(_band_changes(ledger, account_id)) == decided_before

    # A fresh quote at the same price: the violation is decided and enforced.
    _price(client, admin, "60.00")
    assert ledger.funded_accounts.mark_to_market(UUID(account_id)).enforced
    closed = _account(client, account_id)
    assert closed["state"] == "closed" and "risk_per_trade" in closed["state_reason"]
    violation = next(
        change for change in _band_changes(ledger, account_id) if change["to_band"] == "violation"
    )
    assert violation["marks"][SYMBOL]["price_minor"] == 60_00


def test_total_return_is_time_weighted_over_every_day_including_the_first(
    client: TestClient, ledger: Ledger, clock: SettableClock, admin: Headers
) -> None:
    """100,000.00 funded, 105,000.00 at the end of the first day, 106,000.00 at
    the end of the second: 6.0 %. Without the first day it read 0.95 %."""
    account_id = _activate(client)
    for _ in range(2):
        _price(client, admin, "50.00")
        position = _open(client, account_id, 100)
        _price(client, admin, "75.00")
        _close(client, account_id, position)
    clock.advance(timedelta(days=1))
    _price(client, admin, "50.00")
    position = _open(client, account_id, 40)
    _price(client, admin, "75.00")
    _close(client, account_id, position)
    assert _account(client, account_id)["balances"]["current_balance"] == "106000.00"

    figures = _json(client.get(f"/v1/accounts/{account_id}/performance", params={"period": "all"}))[
        "account"
    ]
    assert figures["total_return"] == pytest.approx(0.06)
    assert figures["end_value"] == "106000.00"


def test_market_gap_guard_uses_the_open_and_last_close_set_through_the_api(
    client: TestClient, ledger: Ledger, admin: Headers
) -> None:
    account_id = _activate(client)
    _price(client, admin, "100.00")
    position = _open(client, account_id, 10)
    # The session opened 5.01 % under the last close: a gap over 5 %, down.
    quote = _price(client, admin, "94.99", open="94.99", last_close="100.00")
    assert (quote["open"], quote["last_close"]) == ("94.99", "100.00")
    read = _json(client.get(f"/v1/market/quotes/{SYMBOL}"))
    assert (read["open"], read["last_close"], read["volume"]) == ("94.99", "100.00", 1_000_000)

    ledger.broker_sync.sync_account(UUID(account_id))
    outcome = ledger.guards.guard_account(UUID(account_id), ledger.broker.equity(UUID(account_id)))
    assert (outcome.marked, outcome.closed) == ([position], [position])
    positions = _json(client.get(f"/v1/accounts/{account_id}/positions"))
    assert positions["positions"] == []


def test_market_gap_of_exactly_5_percent_passes_the_guard(
    client: TestClient, ledger: Ledger, admin: Headers
) -> None:
    account_id = _activate(client)
    _price(client, admin, "100.00")
    _open(client, account_id, 10)
    _price(client, admin, "105.00", open="105.00", last_close="100.00")
    outcome = ledger.guards.guard_account(UUID(account_id), ledger.broker.equity(UUID(account_id)))
    assert (outcome.marked, outcome.closed) == ([], [])
