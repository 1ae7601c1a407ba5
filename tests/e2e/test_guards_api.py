"""The guards' routes: an account's reconciliation with the broker, its live
positions with drawdown, the guards' status, and a manual close."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID, uuid4

from fastapi.testclient import TestClient

from domain.positions import PositionSide
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from interface.demo.guards import CRASH_ASSESSMENT_ID, GUARDS_OWNER_ID, load_guards_demo
from tests.support.api_keys import bearer
from tests.support.funded_accounts import activate_funded_account
from tests.support.http_api import assert_error

OWNER: Final[str] = "trader-guards"
SYMBOL: Final[str] = "GRDS"
# Four units at $100.00: 4 % of a Gen account's $10,000, inside the risk rule.
QUANTITY: Final[int] = 4
ENTRY_MINOR: Final[int] = 100_00
EXIT_MINOR: Final[int] = 101_00


def _key(ledger: Ledger, role: Role, owner_id: str | None = None) -> dict[str, str]:
    return bearer(ledger.api_keys.create(role, owner_id=owner_id)[1])


def _broker(ledger: Ledger) -> SimulatedBroker:
    assert isinstance(ledger.broker, SimulatedBroker)
    return ledger.broker


def _account_with_a_position(client: TestClient, ledger: Ledger) -> tuple[UUID, str]:
    account_id = activate_funded_account(ledger, owner_id=OWNER, tier=TierName.GEN)
    _broker(ledger).set_price(SYMBOL, bid_minor=ENTRY_MINOR, ask_minor=ENTRY_MINOR)
    opened = client.post(
        f"/v1/funded-accounts/{account_id}/positions",
        json={"symbol": SYMBOL, "side": "long", "quantity": QUANTITY},
    )
    assert opened.status_code == 201, opened.text
    position_id: str = opened.json()["position_id"]
    return account_id, position_id


def _crash_account(ledger: Ledger) -> UUID:
    demo = load_guards_demo(ledger.funded_accounts, ledger.guards, _broker(ledger), ledger.clock)
    return demo.account_ids[CRASH_ASSESSMENT_ID]


def test_an_account_never_synced_has_no_last_sync_and_no_divergence(
    client: TestClient, ledger: Ledger
) -> None:
    account_id, _ = _account_with_a_position(client, ledger)
    owner = _key(ledger, Role.USER, OWNER)
    body = client.get(f"/v1/accounts/{account_id}/reconciliation", headers=owner).json()
    assert body == {
        "funded_account_id": str(account_id),
        "last_sync": None,
        "divergences": [],
        "divergences_open": 0,
        "in_agreement": False,
    }


def test_a_sync_shows_its_figures_and_the_divergences_it_found(
    client: TestClient, ledger: Ledger
) -> None:
    account_id, _ = _account_with_a_position(client, ledger)
    ledger.broker_sync.sync_account(account_id)
    path = f"/v1/accounts/{account_id}/reconciliation"
    agreed = client.get(path).json()
    assert agreed["in_agreement"] is True
    assert agreed["last_sync"]["equity"] == "10000.00"
    assert agreed["last_sync"]["failed_attempts"] == 0
    # The broker holds a position the ledger never recorded: an extra one.
    extra = _broker(ledger).open_position(
        account_id, SYMBOL, PositionSide.LONG, 2, "around-the-ledger"
    )
    ledger.broker_sync.sync_account(account_id)
    body = client.get(path).json()
    assert body["in_agreement"] is False
    assert body["divergences_open"] == 1
    (divergence,) = body["divergences"]
    assert {key: divergence[key] for key in ("kind", "position_id", "symbol", "amount")} == {
        "kind": "extra",
        "position_id": extra.position_id,
        "symbol": SYMBOL,
        "amount": "200.00",
    }
    assert (divergence["ledger_quantity"], divergence["broker_quantity"]) == (None, 2)


def test_another_owners_account_answers_404_and_a_bad_id_422(
    client: TestClient, ledger: Ledger
) -> None:
    account_id, _ = _account_with_a_position(client, ledger)
    other = _key(ledger, Role.USER, "someone-else")
    for route in ("reconciliation", "positions"):
        response = client.get(f"/v1/accounts/{account_id}/{route}", headers=other)
        assert_error(response, 404, "funded_account_not_found")
        assert_error(client.get(f"/v1/accounts/{uuid4()}/{route}"), 404, "funded_account_not_found")
        assert_error(client.get(f"/v1/accounts/not-an-id/{route}"), 422, "invalid_request")


def test_live_positions_show_equity_drawdown_and_the_guards_level(
    client: TestClient, ledger: Ledger
) -> None:
    crash = _crash_account(ledger)
    owner = _key(ledger, Role.USER, GUARDS_OWNER_ID)
    body: dict[str, Any] = client.get(f"/v1/accounts/{crash}/positions", headers=owner).json()
    # Ten longs of 98 bought at $5.00, marked at $2.90: $2,058.00 down from $10,000.
    assert body["equity_source"] == "broker"
    assert (body["equity"], body["peak_equity"]) == ("7942.00", "10000.00")
    assert (body["drawdown"], body["drawdown_ratio"]) == ("0.205800", "0.2058")
    # MIN_EQUITY's default: 100 in the account's currency.
    assert body["minimum_equity"] == "100.00"
    assert (body["level"], body["level_now"]) == ("liquidate", "liquidate")
    assert body["liquidation_due_at"] is not None
    assert len(body["positions"]) == 10
    assert body["positions"][0]["current_price"] == "2.90"
    assert body["marked_for_closing"] == []


def test_live_positions_answer_503_while_the_broker_is_down(
    client: TestClient, ledger: Ledger
) -> None:
    account_id, _ = _account_with_a_position(client, ledger)
    _broker(ledger).set_unavailable(account_id)
    response = client.get(f"/v1/accounts/{account_id}/positions")
    assert_error(response, 503, "broker_unavailable")
    _broker(ledger).set_unavailable(account_id, unavailable=False)
    assert client.get(f"/v1/accounts/{account_id}/positions").status_code == 200


def test_the_guards_status_lists_thresholds_syncs_and_pending_alerts(
    client: TestClient, ledger: Ledger
) -> None:
    crash = _crash_account(ledger)
    ledger.broker_sync.sync_account(crash)
    body = client.get("/v1/guards", headers=_key(ledger, Role.AUDITOR)).json()
    assert body["worker_running"] is False
    # The specification's defaults: DRAWDOWN_ALERT_THRESHOLD_PERCENT 15,
    # MAX_DRAWDOWN_PERCENT 20, MIN_EQUITY 100, PRE_LIQUIDATION_WARNING_SECONDS
    # 10, PRICE_GAP_ALERT_PERCENT 5, BID_ASK_SPREAD_MAX_PERCENT 0.5,
    # MIN_LIQUIDITY_VOLUME_LOTS 10, LIQUIDITY_CHECK_ENABLED on.
    assert body["thresholds"] | {"sync_interval_s": 0} == {
        "drawdown_warn_from": "0.15",
        "drawdown_liquidate_above": "0.2",
        "minimum_equity": "100.00",
        "gap_above": "0.05",
        "spread_above": "0.005",
        "liquidity_check_enabled": True,
        "liquidity_volume_lots_min": 10,
        "volume_tolerance": "0.05",
        "pre_liquidation_warning_s": 10.0,
        "sync_interval_s": 0,
    }
    assert (body["accounts_synced"], body["accounts_failing"]) == (1, 0)
    assert body["last_synced_at"] is not None
    assert body["last_decision_at"] is not None
    assert body["pending_alerts_total"] == 1
    (alert,) = body["pending_alerts"]
    assert (alert["funded_account_id"], alert["kind"]) == (str(crash), "liquidation_scheduled")
    assert alert["drawdown_ratio"] == "0.2058"
    assert len(alert["positions"]) == 10
    users = client.get("/v1/guards", headers=_key(ledger, Role.USER, GUARDS_OWNER_ID))
    assert_error(users, 403, "forbidden")


def test_a_manual_close_records_price_and_pnl_and_closing_again_closes_nothing(
    client: TestClient, ledger: Ledger
) -> None:
    account_id, position_id = _account_with_a_position(client, ledger)
    _broker(ledger).set_price(SYMBOL, bid_minor=EXIT_MINOR, ask_minor=EXIT_MINOR)
    path = f"/v1/positions/{position_id}/close"
    admin = _key(ledger, Role.ADMIN)
    first = client.post(path, json={"reason": "the desk asked"}, headers=admin)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "funded_account_id": str(account_id),
        "position_id": position_id,
        "price": "101.00",
        "realized_pnl": "4.00",
        "currency": "USD",
        "closed_now": True,
    }
    # The price moved on: a retry answers with the first close, trading nothing.
    _broker(ledger).set_price(SYMBOL, bid_minor=EXIT_MINOR * 2, ask_minor=EXIT_MINOR * 2)
    again = client.post(path, json={"reason": "the desk asked"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json() | {"closed_now": False}
    assert _broker(ledger).equity(account_id).realized_pnl_minor == QUANTITY * 100
    detail = client.get(f"/v1/funded-accounts/{account_id}").json()
    assert detail["positions"] == []


def test_a_manual_close_needs_a_plain_reason_and_a_known_position(
    client: TestClient, ledger: Ledger
) -> None:
    _, position_id = _account_with_a_position(client, ledger)
    path = f"/v1/positions/{position_id}/close"
    for body in ({}, {"reason": ""}, {"reason": " padded"}, {"reason": "x" * 501}, {"reason": 7}):
        assert_error(client.post(path, json=body), 422, "invalid_request")
    assert_error(client.post(path, json={"reason": "ok", "extra": True}), 422, "invalid_request")
    unknown = client.post("/v1/positions/no-such-position/close", json={"reason": "ok"})
    assert_error(unknown, 404, "position_not_found")
    user = client.post(path, json={"reason": "ok"}, headers=_key(ledger, Role.USER, OWNER))
    assert_error(user, 403, "forbidden")
