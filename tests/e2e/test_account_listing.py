"""GET /v1/accounts: pages in opening order, bounded, each caller seeing what is theirs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error, open_account


def _all_pages(client: TestClient, limit: int, **params: str) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = client.get("/v1/accounts", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_pages_cover_every_account_once_in_opening_order(client: TestClient) -> None:
    opened = [open_account(client, owner_id=f"owner-{n % 2}")["id"] for n in range(7)]
    pages = _all_pages(client, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [account_id for page in pages for account_id in page] == opened


def test_a_platform_key_can_list_one_owners_accounts(client: TestClient) -> None:
    opened = [open_account(client, owner_id=f"owner-{n % 2}")["id"] for n in range(6)]
    listed = [a for page in _all_pages(client, limit=2, owner_id="owner-1") for a in page]
    assert listed == opened[1::2]


def test_a_user_lists_only_their_own_accounts(client: TestClient, ledger: Ledger) -> None:
    mine = [open_account(client, owner_id="alice")["id"] for _ in range(2)]
    open_account(client, owner_id="bob")
    _, alice_key = ledger.api_keys.create(Role.USER, owner_id="alice")
    response = client.get("/v1/accounts", headers=bearer(alice_key))
    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["items"]] == mine
    other = client.get("/v1/accounts", params={"owner_id": "bob"}, headers=bearer(alice_key))
    assert_error(other, 403, "forbidden")


def test_a_cursor_the_api_did_not_give_is_refused(client: TestClient) -> None:
    for cursor in ("not-a-cursor", "cDE6LTE", "eDoxMg"):
        assert_error(client.get("/v1/accounts", params={"cursor": cursor}), 422, "invalid_cursor")


def test_the_page_size_is_bounded(client: TestClient) -> None:
    assert_error(client.get("/v1/accounts", params={"limit": 201}), 422, "invalid_request")
    assert_error(client.get("/v1/accounts", params={"limit": 0}), 422, "invalid_request")
