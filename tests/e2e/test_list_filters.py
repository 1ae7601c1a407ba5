"""Lists as a client uses them: filters per list, `has_more` with a cursor,
a bounded page size, a stable order, and 422 for a parameter a list does not
take (docs/api.md#pagination)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.api.openapi import JSON, operations
from interface.bootstrap import Ledger
from projections.account_listing import PAGE_SIZE_MAX
from projections.integration_events import NAME as INTEGRATION_EVENTS
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error, open_account, post_transfer, transfer_body
from tests.support.withdrawals import profitable_funded_account

# A public address (not resolved): endpoints may not name private ones.
PUBLIC_URL: Final[str] = "https://93.184.216.34/hooks"
# Port 9 (discard) on this machine: nothing listens, a connection is refused.
REFUSING_URL: Final[str] = "http://127.0.0.1:9/hooks"

# How long a reconciliation run of an empty ledger may take, at most.
RUN_WAIT_S: Final[float] = 120.0

# Every list a client pages through, with a path that needs no id.
LISTS: Final[tuple[str, ...]] = (
    "/v1/accounts",
    "/v1/transfers",
    "/v1/funded-accounts",
    "/v1/admin/withdrawals",
    "/v1/closures",
    "/v1/forks",
    "/v1/events",
    "/v1/reconciliation/reports",
    "/v1/reconciliation/exceptions",
    "/v1/webhook-endpoints",
)


def _page(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _every_page(client: TestClient, path: str, **params: Any) -> list[str]:
    """The ids on every page, in order, following has_more and next_cursor."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = _page(client, path, **params, **({"cursor": cursor} if cursor else {}))
        ids += [item["id"] for item in page["items"]]
        assert page["has_more"] is (page["next_cursor"] is not None), page
        if not page["has_more"]:
            return ids
        cursor = page["next_cursor"]


@pytest.fixture
def admin(ledger: Ledger) -> dict[str, str]:
    """An admin's key: every list answers it."""
    return bearer(ledger.api_keys.create(Role.ADMIN, label="e2e")[1])


@pytest.mark.parametrize("path", LISTS)
def test_a_parameter_a_list_does_not_take_is_refused(
    client: TestClient, admin: dict[str, str], path: str
) -> None:
    body = assert_error(
        client.get(path, params={"statuss": "pending"}, headers=admin),
        422,
        "unknown_query_parameter",
    )
    assert body["error"]["details"]["parameters"] == ["statuss"]


@pytest.mark.parametrize("limit", [0, PAGE_SIZE_MAX + 1])
@pytest.mark.parametrize("path", LISTS)
def test_a_page_size_out_of_bounds_is_refused(
    client: TestClient, admin: dict[str, str], path: str, limit: int
) -> None:
    assert client.get(path, params={"limit": limit}, headers=admin).status_code == 422


def test_every_paged_list_says_has_more_in_its_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    components = document["components"]["schemas"]
    paged = []
    for method, path, operation in operations(document):
        schema = operation["responses"].get("200", {}).get("content", {}).get(JSON, {})
        reference = schema.get("schema", {}).get("$ref", "")
        properties = components.get(reference.rsplit("/", 1)[-1], {}).get("properties", {})
        if method == "get" and "next_cursor" in properties:
            paged.append(path)
            assert "has_more" in properties, path
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            assert {"cursor", "limit"} <= names, path
    assert set(LISTS) <= set(paged)


def test_accounts_filter_by_kind_currency_owner_and_opening_time(
    client: TestClient, clock: SettableClock
) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    alice_usd = open_account(client, owner_id="alice")["id"]
    opened_before = clock.now() + timedelta(seconds=1)
    clock.advance(timedelta(minutes=5))
    alice_eur = open_account(client, owner_id="alice", currency="EUR")["id"]

    assert _every_page(client, "/v1/accounts", kind="cash") == [cash]
    assert _every_page(client, "/v1/accounts", owner_id="alice") == [alice_usd, alice_eur]
    assert _every_page(client, "/v1/accounts", owner_id="alice", currency="EUR") == [alice_eur]
    assert _every_page(client, "/v1/accounts", **{"from": opened_before.isoformat()}) == [alice_eur]
    assert _every_page(client, "/v1/accounts", to=opened_before.isoformat()) == [cash, alice_usd]
    assert _every_page(client, "/v1/accounts", state="active", limit=1) == [
        cash,
        alice_usd,
        alice_eur,
    ]
    assert client.get("/v1/accounts", params={"kind": "savings"}).status_code == 422


def test_open_holds_are_the_pending_transfers_and_leave_the_list_when_resolved(
    client: TestClient,
) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    alice = open_account(client, owner_id="alice")["id"]
    posted = post_transfer(client, transfer_body(cash, alice, "10.00"))["id"]
    first_hold = post_transfer(client, transfer_body(cash, alice, "5.00", pending=True))["id"]
    second_hold = post_transfer(client, transfer_body(cash, alice, "6.00", pending=True))["id"]

    assert _every_page(client, "/v1/transfers", status="pending", limit=1) == [
        first_hold,
        second_hold,
    ]
    assert _every_page(client, "/v1/transfers", status="posted") == [posted]
    voided = client.post(f"/v1/transfers/{first_hold}/void")
    assert voided.status_code == 200, voided.text
    assert _every_page(client, "/v1/transfers", status="pending", account_id=alice) == [second_hold]
    assert _every_page(client, "/v1/transfers", status="voided") == [first_hold]


def test_transfers_filter_by_currency(client: TestClient) -> None:
    cash_usd = open_account(client, kind="cash", owner_id="platform")["id"]
    cash_eur = open_account(client, kind="cash", owner_id="platform", currency="EUR")["id"]
    alice_usd = open_account(client, owner_id="alice")["id"]
    alice_eur = open_account(client, owner_id="alice", currency="EUR")["id"]
    in_usd = post_transfer(client, transfer_body(cash_usd, alice_usd, "1.00"))["id"]
    in_eur = post_transfer(client, transfer_body(cash_eur, alice_eur, "2.00", currency="EUR"))["id"]

    assert _every_page(client, "/v1/transfers", currency="USD") == [in_usd]
    assert _every_page(client, "/v1/transfers", currency="EUR") == [in_eur]
    assert client.get("/v1/transfers", params={"currency": "usd"}).status_code == 422


def test_pending_withdrawals_are_listed_by_status_owner_and_account(
    client: TestClient, ledger: Ledger, admin: dict[str, str]
) -> None:
    account = str(profitable_funded_account(ledger, "trader-l1", 1000_00))
    other = str(profitable_funded_account(ledger, "trader-l2", 1000_00))
    made = []
    for funded_account in (account, other):
        response = client.post(
            f"/v1/funded-accounts/{funded_account}/withdrawals",
            json={"amount": "100.00"},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        made.append(response.json())
    status = made[0]["status"]

    def listed(path: str, **params: Any) -> list[str]:
        response = client.get(path, params=params, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["has_more"] is False
        return [item["id"] for item in page["items"]]

    everyone = "/v1/admin/withdrawals"
    assert listed(everyone, status=status) == [made[0]["id"], made[1]["id"]]
    assert listed(everyone, status=status, owner_id="trader-l2") == [made[1]["id"]]
    assert listed(everyone, funded_account_id=account) == [made[0]["id"]]
    assert listed(everyone, status="rejected") == []
    own = f"/v1/funded-accounts/{account}/withdrawals"
    assert listed(own, status=status) == [made[0]["id"]]
    assert listed(own, status="completed") == []


def test_a_user_lists_only_their_own_closures_and_forks(client: TestClient, ledger: Ledger) -> None:
    user = bearer(ledger.api_keys.create(Role.USER, owner_id="alice", label="e2e")[1])
    for path in ("/v1/closures", "/v1/forks"):
        refused = client.get(path, params={"owner_id": "bob"}, headers=user)
        assert_error(refused, 403, "forbidden")
        own = client.get(path, headers=user)
        assert own.status_code == 200, own.text
        assert own.json() == {"items": [], "has_more": False, "next_cursor": None}


def test_forks_are_filtered_by_a_status_they_can_have(client: TestClient) -> None:
    assert _page(client, "/v1/forks", status="proposed")["items"] == []
    assert client.get("/v1/forks", params={"status": "lost"}).status_code == 422


def test_webhook_endpoints_and_their_deliveries_come_a_page_at_a_time(
    client: TestClient, ledger: Ledger, admin: dict[str, str]
) -> None:
    made = []
    for number in range(3):
        response = client.post(
            "/v1/webhook-endpoints",
            json={"url": f"{PUBLIC_URL}/{number}", "event_types": ["account.created"]},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    client.headers.update(admin)
    # In the order made; made at one time (the test's clock stands): by id.
    paged = _every_page(client, "/v1/webhook-endpoints", limit=2)
    assert paged == _every_page(client, "/v1/webhook-endpoints", limit=PAGE_SIZE_MAX)
    assert sorted(paged) == sorted(made)

    # An endpoint nothing listens on (refused at once): its deliveries are
    # owed and logged whatever their attempts find.
    refusing, _ = ledger.integration.webhook_endpoints.create(
        REFUSING_URL, ["account.created"], "refuses", ledger.clock.now()
    )
    for _ in range(3):
        open_account(client, owner_id="alice")
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [INTEGRATION_EVENTS], 30)
    while ledger.integration.webhook_worker.run_once().fanned_out:
        pass
    deliveries = f"/v1/webhook-endpoints/{refusing.endpoint_id}/deliveries"
    newest_first = _every_page(client, deliveries, limit=2)
    assert len(newest_first) == len(set(newest_first)) == 3
    assert _page(client, deliveries, limit=3)["has_more"] is False
    assert _every_page(client, deliveries, status="delivered") == []
    assert_error(client.get(deliveries, params={"cursor": "nonsense"}), 422, "invalid_cursor")


def test_reconciliation_reports_filter_by_type_and_status(client: TestClient) -> None:
    started = client.post("/v1/reconciliation/runs", json={"type": "manual"})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    deadline = time.monotonic() + RUN_WAIT_S
    while _page(client, "/v1/reconciliation/reports", status="running")["items"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    reports = "/v1/reconciliation/reports"
    [finished] = _page(client, reports, type="manual")["items"]
    assert finished["id"] == run_id
    assert _every_page(client, reports, status=finished["status"]) == [run_id]
    assert _every_page(client, reports, type="hourly") == []
    assert client.get(reports, params={"type": "weekly"}).status_code == 422
