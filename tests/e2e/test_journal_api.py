"""Listing transfers and reading statements over HTTP: filters, pages,
ownership, and refusals in the error envelope."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import (
    assert_error,
    balances,
    open_account,
    post_transfer,
    transfer_body,
)

OWNER = "owner-1"


class Books:
    """A cash account, two users of OWNER's, and a history on them."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.cash = open_account(client, kind="cash", owner_id="platform")["id"]
        self.alice = open_account(client, flagged=True, owner_id=OWNER)["id"]
        self.bob = open_account(client, flagged=True, owner_id="owner-2")["id"]
        self.funding = post_transfer(
            client, transfer_body(self.cash, self.alice, "100.00", metadata={"kind": "funding"})
        )["id"]
        self.payments = [
            post_transfer(
                client,
                transfer_body(
                    self.alice,
                    self.bob,
                    f"{number}.00",
                    metadata={"kind": "payment", "order": str(number)},
                ),
            )["id"]
            for number in (1, 2, 3)
        ]
        self.hold = post_transfer(
            client, transfer_body(self.alice, self.cash, "10.00", pending=True, timeout_s=600)
        )["id"]
        posted = client.post(f"/v1/transfers/{self.hold}/post", json={"amount": "4.00"})
        assert posted.status_code == 200, posted.text


@pytest.fixture
def books(client: TestClient) -> Books:
    return Books(client)


def listed(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/transfers", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def test_transfers_are_listed_in_order_and_filtered_by_account_and_metadata(
    client: TestClient, books: Books
) -> None:
    everything = listed(client)
    assert ids(everything) == [books.funding, *books.payments, books.hold]
    assert ids(listed(client, account_id=books.bob)) == books.payments
    assert ids(listed(client, metadata="kind:payment")) == books.payments
    both = listed(client, metadata=["kind:payment", "order:2"])
    assert ids(both) == [books.payments[1]]
    assert listed(client, metadata="order:9") == []
    assert ids(listed(client, account_id=books.cash, metadata="kind:funding")) == [books.funding]

    hold = everything[-1]
    assert hold["status"] == "posted"
    assert hold["pending"] is True
    assert [p["amount"] for p in hold["postings"]] == ["10.00", "10.00"]
    assert [p["amount"] for p in hold["posted_postings"]] == ["4.00", "4.00"]
    assert hold == {**hold, "id": books.hold, "metadata": {}, "reversed_by_transfer_id": None}


def test_transfers_are_filtered_by_log_time(client: TestClient, books: Books) -> None:
    everything = listed(client)
    third = datetime.fromisoformat(everything[2]["logged_at"])
    earlier = listed(client, to=third.isoformat())
    later = listed(client, **{"from": third.isoformat()})
    assert ids(earlier) + ids(later) == ids(everything)
    assert ids(later)[0] == everything[2]["id"]
    future = (third + timedelta(days=1)).isoformat()
    assert listed(client, **{"from": future}) == []


def test_transfers_are_read_a_page_at_a_time(client: TestClient, books: Books) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = client.get("/v1/transfers", params=params).json()
        seen.extend(ids(page["items"]))
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ids(listed(client))


def test_a_statement_shows_every_movement_with_the_running_balance(
    client: TestClient, books: Books
) -> None:
    response = client.get(f"/v1/accounts/{books.alice}/statement")
    assert response.status_code == 200, response.text
    statement = response.json()
    assert statement["currency"] == "USD"
    assert statement["opening"] == {
        "posted": "0.00",
        "debits_pending": "0.00",
        "credits_pending": "0.00",
        "available": "0.00",
    }
    lines = [
        (entry["entry_type"], entry["side"], entry["amount"], entry["after"]["posted"])
        for entry in statement["entries"]
    ]
    assert lines == [
        ("posted", "credit", "100.00", "100.00"),
        ("posted", "debit", "1.00", "99.00"),
        ("posted", "debit", "2.00", "97.00"),
        ("posted", "debit", "3.00", "94.00"),
        ("pending", "debit", "10.00", "94.00"),
        ("pending_posted", "debit", "4.00", "90.00"),
    ]
    assert statement["entries"][4]["after"]["available"] == "84.00"
    last = statement["entries"][-1]["after"]
    account = balances(client, books.alice)
    assert (last["posted"], last["available"]) == (account["posted"], account["available"])
    assert statement["next_cursor"] is None


def test_a_statement_is_read_a_page_at_a_time_each_opening_where_the_last_ended(
    client: TestClient, books: Books
) -> None:
    whole = client.get(f"/v1/accounts/{books.alice}/statement").json()["entries"]
    read: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 4}
    opening = whole[0]["after"] | {"posted": "0.00", "available": "0.00"}
    while True:
        page = client.get(f"/v1/accounts/{books.alice}/statement", params=params).json()
        assert page["opening"] == opening
        read.extend(page["entries"])
        if page["next_cursor"] is None:
            break
        opening = page["entries"][-1]["after"]
        params["cursor"] = page["next_cursor"]
    assert read == whole
    since = client.get(
        f"/v1/accounts/{books.alice}/statement", params={"from": whole[2]["logged_at"]}
    ).json()
    assert since["entries"] == whole[2:]
    assert since["opening"] == whole[1]["after"]


def test_a_user_reads_only_their_own_accounts(
    ledger: Ledger, client: TestClient, books: Books
) -> None:
    _, owner_key = ledger.api_keys.create(Role.USER, owner_id=OWNER)
    as_owner = bearer(owner_key)
    own = client.get("/v1/transfers", params={"account_id": books.alice}, headers=as_owner)
    assert own.status_code == 200
    assert ids(own.json()["items"]) == [books.funding, *books.payments, books.hold]
    statement = client.get(f"/v1/accounts/{books.alice}/statement", headers=as_owner)
    assert statement.status_code == 200

    for response in (
        client.get("/v1/transfers", params={"account_id": books.bob}, headers=as_owner),
        client.get("/v1/transfers", params={"account_id": str(uuid.uuid4())}, headers=as_owner),
        client.get(f"/v1/accounts/{books.bob}/statement", headers=as_owner),
        client.get(f"/v1/accounts/{uuid.uuid4()}/statement", headers=as_owner),
    ):
        assert_error(response, 404, "account_not_found")
    assert_error(client.get("/v1/transfers", headers=as_owner), 403, "forbidden")


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/v1/transfers", {"cursor": "not-a-cursor"}, "invalid_cursor"),
        ("/v1/transfers", {"cursor": "czE6MTox"}, "invalid_cursor"),
        ("/v1/transfers", {"metadata": "no-colon"}, "invalid_request"),
        ("/v1/transfers", {"metadata": ["a:1", "a:2"]}, "invalid_request"),
        ("/v1/transfers", {"from": "2026-01-01T00:00:00"}, "invalid_request"),
        ("/v1/transfers", {"to": "0.5"}, "invalid_request"),
        ("/v1/transfers", {"limit": 0}, "invalid_request"),
        ("/v1/transfers", {"limit": 201}, "invalid_request"),
        ("/v1/transfers", {"account_id": "nope"}, "invalid_request"),
        ("statement", {"cursor": "not-a-cursor"}, "invalid_cursor"),
        # A transfers cursor is not a statement cursor.
        ("statement", {"cursor": "cDE6Mw"}, "invalid_cursor"),
        ("statement", {"to": "yesterday"}, "invalid_request"),
    ],
)
def test_bad_input_is_refused_with_422(
    client: TestClient, books: Books, path: str, params: dict[str, Any], code: str
) -> None:
    if path == "statement":
        path = f"/v1/accounts/{books.alice}/statement"
    assert_error(client.get(path, params=params), 422, code)


def test_a_client_reads_its_own_write_at_once(client: TestClient, books: Books) -> None:
    made = post_transfer(client, transfer_body(books.cash, books.alice, "5.00"))
    assert ids(listed(client, account_id=books.alice))[-1] == made["id"]
    entries = client.get(f"/v1/accounts/{books.alice}/statement").json()["entries"]
    assert entries[-1]["transfer_id"] == made["id"]
