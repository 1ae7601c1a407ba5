"""The HTTP API end to end, in-process, on real PostgreSQL: every route, every
form, and every refusal in the error envelope with its stable code."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from domain.account import AccountState
from domain.commands import change_account_state
from domain.result_codes import ResultCode
from interface.bootstrap import Ledger
from tests.support.http_api import (
    assert_error,
    balances,
    open_account,
    post_transfer,
    transfer_body,
)

Accounts = dict[str, str]


@pytest.fixture
def accounts(client: TestClient) -> Accounts:
    """A platform cash account, a funded flagged user (100.00) and an empty flagged user."""
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    alice = open_account(client, flagged=True)["id"]
    bob = open_account(client, flagged=True)["id"]
    post_transfer(client, transfer_body(cash, alice, "100.00"))
    return {"cash": cash, "alice": alice, "bob": bob}


# Accounts --------------------------------------------------------------------


def test_opening_an_account_answers_201_and_it_reads_back_with_zero_balances(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/accounts",
        json={
            "idempotency_key": "open-1",
            "currency": "EUR",
            "owner_id": "owner-7",
            "flags": {"debits_must_not_exceed_credits": True},
            "metadata": {"ref": "abc"},
        },
    )
    assert response.status_code == 201, response.text
    opened = response.json()
    assert opened["currency"] == "EUR"
    assert opened["kind"] == "user"
    assert opened["state"] == "active"
    assert opened["flags"] == {
        "debits_must_not_exceed_credits": True,
        "credits_must_not_exceed_debits": False,
    }
    assert opened["metadata"] == {"ref": "abc"}
    read = client.get(f"/v1/accounts/{opened['id']}")
    assert read.status_code == 200
    assert read.json() == opened
    assert read.json()["balances"] == {
        "debits_posted": "0.00",
        "credits_posted": "0.00",
        "debits_pending": "0.00",
        "credits_pending": "0.00",
        "posted": "0.00",
        "available": "0.00",
    }


def test_opening_an_account_again_with_the_same_key_answers_200_with_the_same_account(
    client: TestClient,
) -> None:
    body = {"idempotency_key": "open-twice", "currency": "USD", "owner_id": "o"}
    first = client.post("/v1/accounts", json=body)
    second = client.post("/v1/accounts", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["version"] == first.json()["version"]


def test_opening_an_account_with_a_used_key_and_other_details_is_refused(
    client: TestClient,
) -> None:
    body = {"idempotency_key": "open-reused", "currency": "USD", "owner_id": "o"}
    assert client.post("/v1/accounts", json=body).status_code == 201
    refused = client.post("/v1/accounts", json={**body, "currency": "EUR"})
    assert_error(refused, 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"currency": "XXX", "owner_id": "o"}, "unknown_currency"),
        ({"currency": "USD", "owner_id": "o", "balance": "100.00"}, "invalid_request"),
        ({"currency": "USD"}, "invalid_request"),
        (
            {
                "currency": "USD",
                "owner_id": "o",
                "flags": {
                    "debits_must_not_exceed_credits": True,
                    "credits_must_not_exceed_debits": True,
                },
            },
            "invalid_account_flags",
        ),
    ],
)
def test_an_invalid_account_is_refused_with_422_and_a_code(
    client: TestClient, body: dict[str, Any], code: str
) -> None:
    assert_error(client.post("/v1/accounts", json=body), 422, code)


def test_reading_an_unknown_account_is_404_account_not_found(client: TestClient) -> None:
    assert_error(client.get(f"/v1/accounts/{uuid.uuid4()}"), 404, "account_not_found")
    # Ids are typed in the path: a string that is no id names no resource.
    assert_error(client.get("/v1/accounts/not-a-uuid"), 404, "not_found")


def test_a_transfers_id_does_not_name_an_account(client: TestClient, accounts: Accounts) -> None:
    made = post_transfer(client, transfer_body(accounts["alice"], accounts["bob"], "1.00"))
    assert_error(client.get(f"/v1/accounts/{made['id']}"), 404, "account_not_found")
    body = transfer_body(accounts["alice"], made["id"], "1.00")
    assert_error(client.post("/v1/transfers", json=body), 404, "account_not_found")


# Creating transfers -------------------------------------------------------------


def test_a_simple_transfer_answers_201_and_moves_the_money(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "12.34", metadata={"note": "rent"})
    response = client.post("/v1/transfers", json=body)
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["status"] == "posted"
    assert made["pending"] is False
    assert made["metadata"] == {"note": "rent"}
    assert made["postings"] == [
        {"account_id": accounts["alice"], "side": "debit", "amount": "12.34", "currency": "USD"},
        {"account_id": accounts["bob"], "side": "credit", "amount": "12.34", "currency": "USD"},
    ]
    assert made["posted_postings"] == made["postings"]
    assert client.get(f"/v1/transfers/{made['id']}").json() == made
    assert balances(client, accounts["alice"])["posted"] == "87.66"
    assert balances(client, accounts["bob"])["posted"] == "12.34"


def test_a_multi_leg_transfer_with_postings_answers_201_and_moves_every_leg(
    client: TestClient, accounts: Accounts
) -> None:
    carol = open_account(client)["id"]
    body = {
        "idempotency_key": "split-1",
        "postings": [
            {
                "account_id": accounts["alice"],
                "side": "debit",
                "amount": "10.00",
                "currency": "USD",
            },
            {"account_id": accounts["bob"], "side": "credit", "amount": "7.50", "currency": "USD"},
            {"account_id": carol, "side": "credit", "amount": "2.50", "currency": "USD"},
        ],
    }
    response = client.post("/v1/transfers", json=body)
    assert response.status_code == 201, response.text
    assert len(response.json()["postings"]) == 3
    assert balances(client, accounts["alice"])["posted"] == "90.00"
    assert balances(client, accounts["bob"])["posted"] == "7.50"
    assert balances(client, carol)["posted"] == "2.50"


def test_unbalanced_postings_are_refused_with_unbalanced_postings(
    client: TestClient, accounts: Accounts
) -> None:
    body = {
        "idempotency_key": "unbalanced-1",
        "postings": [
            {
                "account_id": accounts["alice"],
                "side": "debit",
                "amount": "10.00",
                "currency": "USD",
            },
            {"account_id": accounts["bob"], "side": "credit", "amount": "9.99", "currency": "USD"},
        ],
    }
    assert_error(client.post("/v1/transfers", json=body), 422, "unbalanced_postings")
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_repeating_a_transfer_with_the_same_key_and_details_answers_200_with_the_first(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "5.00")
    first = client.post("/v1/transfers", json=body)
    second = client.post("/v1/transfers", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    assert balances(client, accounts["bob"])["posted"] == "5.00"


def test_reusing_a_transfer_key_with_other_details_is_refused_as_key_reused(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "5.00")
    original = post_transfer(client, body)
    refused = client.post("/v1/transfers", json={**body, "amount": "6.00"})
    error = assert_error(refused, 422, "idempotency_key_reused")["error"]
    assert error["details"]["existing_id"] == original["id"]
    assert balances(client, accounts["bob"])["posted"] == "5.00"


def test_a_transfer_beyond_a_flagged_accounts_funds_is_409_insufficient_funds(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "100.01")
    assert_error(client.post("/v1/transfers", json=body), 409, "insufficient_funds")
    assert balances(client, accounts["alice"])["posted"] == "100.00"
    assert balances(client, accounts["bob"])["posted"] == "0.00"
    # Exactly what it holds is fine.
    post_transfer(client, transfer_body(accounts["alice"], accounts["bob"], "100.00"))
    assert balances(client, accounts["alice"])["posted"] == "0.00"


@pytest.mark.parametrize("amount", [1.5, 1, 100.0, True, None])
def test_an_amount_that_is_not_a_decimal_string_is_refused_with_invalid_amount(
    client: TestClient, accounts: Accounts, amount: object
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00")
    body["amount"] = amount
    if amount is None:
        body.pop("amount")
        assert_error(client.post("/v1/transfers", json=body), 422, "invalid_request")
    else:
        assert_error(client.post("/v1/transfers", json=body), 422, "invalid_amount")
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_a_json_number_amount_in_a_posting_is_refused_with_invalid_amount(
    client: TestClient, accounts: Accounts
) -> None:
    body = {
        "idempotency_key": "float-posting",
        "postings": [
            {"account_id": accounts["alice"], "side": "debit", "amount": 0.1, "currency": "USD"},
            {"account_id": accounts["bob"], "side": "credit", "amount": "0.10", "currency": "USD"},
        ],
    }
    assert_error(client.post("/v1/transfers", json=body), 422, "invalid_amount")


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("1.001", "USD", "amount_has_too_many_decimals"),
        ("1.000", "USD", "amount_has_too_many_decimals"),
        ("1.5", "JPY", "amount_has_too_many_decimals"),
        ("0", "USD", "amount_must_be_positive"),
        ("0.00", "USD", "amount_must_be_positive"),
        ("-1.00", "USD", "amount_must_be_positive"),
        ("abc", "USD", "invalid_amount"),
        ("1e3", "USD", "invalid_amount"),
        ("1,000.00", "USD", "invalid_amount"),
        (" 1.00", "USD", "invalid_amount"),
        ("", "USD", "invalid_amount"),
        ("1.00", "XYZ", "unknown_currency"),
    ],
)
def test_a_malformed_amount_is_refused_with_its_own_code(
    client: TestClient, accounts: Accounts, amount: str, currency: str, code: str
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], amount, currency=currency)
    assert_error(client.post("/v1/transfers", json=body), 422, code)
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_a_transfer_in_another_currency_than_the_accounts_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00", currency="EUR")
    assert_error(client.post("/v1/transfers", json=body), 422, "currency_mismatch")


def test_a_transfer_naming_an_unknown_account_is_404_account_not_found(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], str(uuid.uuid4()), "1.00")
    assert_error(client.post("/v1/transfers", json=body), 404, "account_not_found")
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_a_transfer_between_one_account_and_itself_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["alice"], "1.00")
    assert_error(client.post("/v1/transfers", json=body), 422, "accounts_must_be_different")


def test_unknown_fields_are_refused_and_change_nothing(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00", fee="0.50")
    refused = assert_error(client.post("/v1/transfers", json=body), 422, "invalid_request")
    assert "fee" in refused["error"]["message"]
    assert balances(client, accounts["alice"])["posted"] == "100.00"
    # The key was not used: the same key with valid details makes the transfer now.
    body.pop("fee")
    assert client.post("/v1/transfers", json=body).status_code == 201


def test_a_body_with_both_the_simple_form_and_postings_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00")
    body["postings"] = [
        {"account_id": accounts["alice"], "side": "debit", "amount": "1.00", "currency": "USD"},
        {"account_id": accounts["bob"], "side": "credit", "amount": "1.00", "currency": "USD"},
    ]
    assert_error(client.post("/v1/transfers", json=body), 422, "invalid_request")
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_a_body_with_neither_form_is_refused(client: TestClient) -> None:
    body = {"idempotency_key": "nothing", "amount": "1.00", "currency": "USD"}
    assert_error(client.post("/v1/transfers", json=body), 422, "invalid_request")


def test_linked_is_refused_outside_a_batch(client: TestClient, accounts: Accounts) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00", linked=True)
    assert_error(client.post("/v1/transfers", json=body), 422, "linked_event_chain_open")


def test_a_malformed_json_body_is_refused_in_the_envelope(client: TestClient) -> None:
    response = client.post(
        "/v1/transfers", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert assert_error(response, 400, "malformed_body")["error"]["field"] == "body"


# Batches --------------------------------------------------------------------------


def test_a_batch_with_a_failing_linked_chain_fails_the_chain_and_keeps_independent_items(
    client: TestClient, accounts: Accounts
) -> None:
    alice, bob, cash = accounts["alice"], accounts["bob"], accounts["cash"]
    items = [
        transfer_body(alice, bob, "1.00"),  # 0: independent, ok
        transfer_body(alice, bob, "2.00", linked=True),  # 1: chain, would succeed
        transfer_body(bob, cash, "0.50", linked=True),  # 2: chain, would succeed
        transfer_body(alice, bob, "500.00"),  # 3: chain end, insufficient funds
        transfer_body(alice, bob, "4.00"),  # 4: independent, ok
        transfer_body(alice, str(uuid.uuid4()), "1.00"),  # 5: independent, no account
        transfer_body(alice, bob, "8.00", linked=True),  # 6: chain with an invalid member
        transfer_body(alice, bob, "1.001"),  # 7: invalid amount, ends the chain
        transfer_body(cash, bob, "16.00"),  # 8: independent, ok
    ]
    response = client.post("/v1/transfers/batch", json={"transfers": items})
    assert response.status_code == 200, response.text
    body = response.json()
    codes = [result["code"] for result in body["results"]]
    assert codes == [
        "ok",
        "linked_event_failed",
        "linked_event_failed",
        "insufficient_funds",
        "ok",
        "account_not_found",
        "linked_event_failed",
        "amount_has_too_many_decimals",
        "ok",
    ]
    assert [result["index"] for result in body["results"]] == list(range(len(items)))
    assert (body["succeeded"], body["failed"]) == (3, 6)
    for index, result in enumerate(body["results"]):
        if result["code"] == "ok":
            assert client.get(f"/v1/transfers/{result['id']}").status_code == 200
        else:
            assert result.get("id") is None, (index, result)
    # Only the three independent successes moved money.
    assert balances(client, alice)["posted"] == "95.00"
    assert balances(client, bob)["posted"] == "21.00"


def test_a_batch_of_linked_items_that_all_succeed_is_applied_whole(
    client: TestClient, accounts: Accounts
) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    items = [
        transfer_body(alice, bob, "60.00", linked=True),
        transfer_body(bob, alice, "30.00", linked=True),
        transfer_body(alice, bob, "70.00"),
    ]
    body = client.post("/v1/transfers/batch", json={"transfers": items}).json()
    assert [result["code"] for result in body["results"]] == ["ok", "ok", "ok"]
    assert balances(client, alice)["posted"] == "0.00"
    assert balances(client, bob)["posted"] == "100.00"


def test_a_batch_whose_last_item_is_linked_fails_its_chain(
    client: TestClient, accounts: Accounts
) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    items = [
        transfer_body(alice, bob, "1.00"),
        transfer_body(alice, bob, "2.00", linked=True),
        transfer_body(alice, bob, "3.00", linked=True),
    ]
    body = client.post("/v1/transfers/batch", json={"transfers": items}).json()
    codes = [result["code"] for result in body["results"]]
    assert codes == ["ok", "linked_event_failed", "linked_event_chain_open"]
    assert balances(client, bob)["posted"] == "1.00"


def test_a_batch_repeats_earlier_items_as_exists(client: TestClient, accounts: Accounts) -> None:
    first = transfer_body(accounts["alice"], accounts["bob"], "1.00")
    post_transfer(client, first)
    items = [first, {**first, "amount": "2.00"}]
    body = client.post("/v1/transfers/batch", json={"transfers": items}).json()
    assert [result["code"] for result in body["results"]] == ["exists", "idempotency_key_reused"]
    assert balances(client, accounts["bob"])["posted"] == "1.00"


def test_an_empty_batch_is_refused(client: TestClient) -> None:
    assert_error(client.post("/v1/transfers/batch", json={"transfers": []}), 422, "invalid_request")


# Pending transfers: post, partial post, void, expiry -------------------------------


def _hold(client: TestClient, accounts: Accounts, amount: str, **extra: Any) -> dict[str, Any]:
    body = transfer_body(accounts["alice"], accounts["bob"], amount, pending=True, **extra)
    made = post_transfer(client, body)
    assert made["status"] == "pending"
    assert made["pending"] is True
    assert made["posted_postings"] == []
    return made


def test_a_pending_transfer_holds_funds_until_posted_in_full(
    client: TestClient, accounts: Accounts
) -> None:
    hold = _hold(client, accounts, "10.00", timeout_s=3600)
    assert hold["expires_at"] is not None
    alice = balances(client, accounts["alice"])
    assert (alice["debits_pending"], alice["available"], alice["posted"]) == (
        "10.00",
        "90.00",
        "100.00",
    )
    # The held money cannot be spent twice.
    too_much = transfer_body(accounts["alice"], accounts["bob"], "90.01")
    assert_error(client.post("/v1/transfers", json=too_much), 409, "insufficient_funds")

    posted = client.post(f"/v1/transfers/{hold['id']}/post")
    assert posted.status_code == 200, posted.text
    assert posted.json()["status"] == "posted"
    assert posted.json()["posted_postings"] == hold["postings"]
    alice = balances(client, accounts["alice"])
    assert (alice["debits_pending"], alice["posted"]) == ("0.00", "90.00")
    assert balances(client, accounts["bob"])["posted"] == "10.00"

    assert_error(
        client.post(f"/v1/transfers/{hold['id']}/post"), 409, "pending_transfer_already_posted"
    )
    assert_error(
        client.post(f"/v1/transfers/{hold['id']}/void"), 409, "pending_transfer_already_posted"
    )


def test_a_pending_transfer_can_be_posted_for_a_smaller_amount(
    client: TestClient, accounts: Accounts
) -> None:
    hold = _hold(client, accounts, "10.00")
    assert_error(
        client.post(f"/v1/transfers/{hold['id']}/post", json={"amount": "10.01"}),
        422,
        "exceeds_pending_transfer_amount",
    )
    assert_error(
        client.post(f"/v1/transfers/{hold['id']}/post", json={"amount": 4.0}), 422, "invalid_amount"
    )
    posted = client.post(f"/v1/transfers/{hold['id']}/post", json={"amount": "4.00"})
    assert posted.status_code == 200, posted.text
    assert [p["amount"] for p in posted.json()["posted_postings"]] == ["4.00", "4.00"]
    assert [p["amount"] for p in posted.json()["postings"]] == ["10.00", "10.00"]
    alice = balances(client, accounts["alice"])
    assert (alice["debits_pending"], alice["debits_posted"], alice["posted"]) == (
        "0.00",
        "4.00",
        "96.00",
    )
    assert balances(client, accounts["bob"])["posted"] == "4.00"


def test_a_voided_pending_transfer_releases_its_funds(
    client: TestClient, accounts: Accounts
) -> None:
    hold = _hold(client, accounts, "25.00")
    voided = client.post(f"/v1/transfers/{hold['id']}/void")
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    alice = balances(client, accounts["alice"])
    assert (alice["debits_pending"], alice["available"]) == ("0.00", "100.00")
    bob = balances(client, accounts["bob"])
    assert (bob["credits_pending"], bob["posted"]) == ("0.00", "0.00")
    assert_error(
        client.post(f"/v1/transfers/{hold['id']}/void"), 409, "pending_transfer_already_voided"
    )
    assert_error(
        client.post(f"/v1/transfers/{hold['id']}/post"), 409, "pending_transfer_already_voided"
    )


def test_a_pending_transfer_past_its_deadline_cannot_be_posted(
    client: TestClient, accounts: Accounts, clock: SettableClock
) -> None:
    hold = _hold(client, accounts, "5.00", timeout_s=60)
    clock.advance(timedelta(seconds=61))
    assert_error(client.post(f"/v1/transfers/{hold['id']}/post"), 409, "pending_transfer_expired")
    assert balances(client, accounts["bob"])["posted"] == "0.00"


def test_posting_or_voiding_what_is_not_a_pending_transfer_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    unknown = uuid.uuid4()
    assert_error(client.post(f"/v1/transfers/{unknown}/post"), 404, "pending_transfer_not_found")
    assert_error(client.post(f"/v1/transfers/{unknown}/void"), 404, "pending_transfer_not_found")
    assert_error(
        client.post(f"/v1/transfers/{unknown}/post", json={"amount": "1.00"}),
        404,
        "pending_transfer_not_found",
    )
    posted = post_transfer(client, transfer_body(accounts["alice"], accounts["bob"], "1.00"))
    assert_error(
        client.post(f"/v1/transfers/{posted['id']}/post"), 409, "pending_transfer_not_pending"
    )
    assert_error(
        client.post(f"/v1/transfers/{posted['id']}/void"), 409, "pending_transfer_not_pending"
    )


def test_a_pending_transfer_rejects_unknown_fields_when_posted(
    client: TestClient, accounts: Accounts
) -> None:
    hold = _hold(client, accounts, "3.00")
    response = client.post(f"/v1/transfers/{hold['id']}/post", json={"amount": "1.00", "x": 1})
    assert_error(response, 422, "invalid_request")
    assert client.get(f"/v1/transfers/{hold['id']}").json()["status"] == "pending"


# Reversals ---------------------------------------------------------------------------


def test_reversing_a_posted_transfer_makes_one_reversal_and_asking_again_finds_it(
    client: TestClient, accounts: Accounts
) -> None:
    original = post_transfer(client, transfer_body(accounts["alice"], accounts["bob"], "30.00"))
    first = client.post(f"/v1/transfers/{original['id']}/reverse", json={"metadata": {"r": "1"}})
    assert first.status_code == 201, first.text
    reversal = first.json()
    assert reversal["id"] != original["id"]
    assert reversal["reverses_transfer_id"] == original["id"]
    assert reversal["status"] == "posted"
    assert reversal["metadata"] == {"r": "1"}
    assert [(p["account_id"], p["side"], p["amount"]) for p in reversal["postings"]] == [
        (accounts["alice"], "credit", "30.00"),
        (accounts["bob"], "debit", "30.00"),
    ]
    again = client.post(f"/v1/transfers/{original['id']}/reverse", json={"metadata": {"r": "1"}})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == reversal["id"]
    assert (
        client.get(f"/v1/transfers/{original['id']}").json()["reversed_by_transfer_id"]
        == (reversal["id"])
    )
    assert balances(client, accounts["alice"])["posted"] == "100.00"
    assert balances(client, accounts["bob"])["posted"] == "0.00"
    assert balances(client, accounts["bob"])["credits_posted"] == "30.00"


def test_only_a_posted_transfer_can_be_reversed(client: TestClient, accounts: Accounts) -> None:
    hold = _hold(client, accounts, "2.00")
    assert_error(client.post(f"/v1/transfers/{hold['id']}/reverse"), 409, "transfer_not_posted")
    assert_error(client.post(f"/v1/transfers/{uuid.uuid4()}/reverse"), 404, "transfer_not_found")


def test_a_reversal_that_would_overdraw_the_credited_account_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    original = post_transfer(client, transfer_body(accounts["alice"], accounts["bob"], "30.00"))
    post_transfer(client, transfer_body(accounts["bob"], accounts["cash"], "20.00"))
    refused = client.post(f"/v1/transfers/{original['id']}/reverse")
    assert_error(refused, 409, "insufficient_funds")
    assert client.get(f"/v1/transfers/{original['id']}").json()["reversed_by_transfer_id"] is None


# Reading, health, documentation ---------------------------------------------------------


def test_reading_an_unknown_transfer_is_404_transfer_not_found(
    client: TestClient, accounts: Accounts
) -> None:
    assert_error(client.get(f"/v1/transfers/{uuid.uuid4()}"), 404, "transfer_not_found")
    # An account's id is not a transfer's.
    assert_error(client.get(f"/v1/transfers/{accounts['alice']}"), 404, "transfer_not_found")


def test_health_and_readiness_answer_200(client: TestClient, ledger: Ledger) -> None:
    health = client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {
        "database": "ok",
        "migrations": "current",
        # CI exports REDIS_URL (a real Redis on the machine); a plain run has none.
        "redis": "ok" if ledger.settings.redis_url else "not configured",
        "writer": "running",
        "projections": "running",
        "views": "ok",
    }


def test_readiness_fails_while_the_projection_runner_is_stopped(
    client: TestClient, ledger: Ledger
) -> None:
    assert ledger.projections is not None
    ledger.projections.stop()
    ready = client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["projections"] == "stopped"
    ledger.projections.start()
    assert client.get("/readyz").status_code == 200


def test_the_openapi_document_and_the_docs_page_are_served(client: TestClient) -> None:
    document = client.get("/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert {
        "/v1/accounts",
        "/v1/accounts/{account_id}",
        "/v1/transfers",
        "/v1/transfers/batch",
        "/v1/transfers/{transfer_id}",
        "/v1/transfers/{transfer_id}/post",
        "/v1/transfers/{transfer_id}/void",
        "/v1/transfers/{transfer_id}/reverse",
        "/healthz",
        "/readyz",
    } <= set(paths)
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert "openapi.json" in docs.text


def test_unknown_routes_and_methods_answer_in_the_envelope(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.delete("/v1/transfers/batch"), 405, "method_not_allowed")


# More refusals, limits and edges ------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("has space", "invalid_idempotency_key"),
        ("x" * 129, "invalid_request"),
        ("", "invalid_request"),
    ],
)
def test_a_malformed_idempotency_key_is_refused(
    client: TestClient, accounts: Accounts, key: str, code: str
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00", key=key)
    assert_error(client.post("/v1/transfers", json=body), 422, code)


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"timeout_s": 60}, "invalid_timeout"),
        ({"pending": True, "timeout_s": 0}, "invalid_request"),
        ({"metadata": {"k": "v" * 513}}, "invalid_metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "invalid_metadata"),
        ({"metadata": {"k": 1}}, "invalid_request"),
        ({"pending": "true"}, "invalid_request"),
    ],
)
def test_invalid_transfer_options_are_refused(
    client: TestClient, accounts: Accounts, extra: dict[str, Any], code: str
) -> None:
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00", **extra)
    assert_error(client.post("/v1/transfers", json=body), 422, code)
    assert balances(client, accounts["alice"])["debits_pending"] == "0.00"
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_an_amount_beyond_64_bits_of_minor_units_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    body = transfer_body(accounts["cash"], accounts["bob"], "92233720368547758.08")
    assert_error(client.post("/v1/transfers", json=body), 422, "amount_too_large")


def test_a_transfer_that_would_overflow_an_accounts_totals_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    # Alice already holds 100.00; the largest amount on top would overflow her credits.
    body = transfer_body(accounts["cash"], accounts["alice"], "92233720368547758.07")
    assert_error(client.post("/v1/transfers", json=body), 409, "overflow")
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_a_multi_leg_transfer_balances_in_each_currency_separately(
    client: TestClient, accounts: Accounts
) -> None:
    euro_cash = open_account(client, kind="cash", currency="EUR", owner_id="platform")["id"]
    euro_user = open_account(client, currency="EUR")["id"]
    legs = [
        (accounts["alice"], "debit", "10.00", "USD"),
        (accounts["bob"], "credit", "10.00", "USD"),
        (euro_cash, "debit", "9.00", "EUR"),
        (euro_user, "credit", "9.00", "EUR"),
    ]
    postings = [
        {"account_id": a, "side": side, "amount": amount, "currency": currency}
        for a, side, amount, currency in legs
    ]
    made = client.post("/v1/transfers", json={"idempotency_key": "fx-1", "postings": postings})
    assert made.status_code == 201, made.text
    assert balances(client, euro_user)["posted"] == "9.00"
    # Balanced in total but not per currency: refused.
    postings[3]["amount"] = "8.00"
    postings[1]["amount"] = "11.00"
    refused = client.post("/v1/transfers", json={"idempotency_key": "fx-2", "postings": postings})
    assert_error(refused, 422, "unbalanced_postings")


def test_a_partly_posted_transfer_is_reversed_for_the_posted_amount(
    client: TestClient, accounts: Accounts
) -> None:
    hold = _hold(client, accounts, "10.00")
    client.post(f"/v1/transfers/{hold['id']}/post", json={"amount": "4.00"})
    reversal = client.post(f"/v1/transfers/{hold['id']}/reverse")
    assert reversal.status_code == 201, reversal.text
    assert [p["amount"] for p in reversal.json()["postings"]] == ["4.00", "4.00"]
    assert balances(client, accounts["alice"])["posted"] == "100.00"
    assert balances(client, accounts["bob"])["posted"] == "0.00"


def test_a_multi_leg_pending_transfer_can_only_be_posted_in_full(
    client: TestClient, accounts: Accounts
) -> None:
    carol = open_account(client)["id"]
    postings = [
        {"account_id": accounts["alice"], "side": "debit", "amount": "6.00", "currency": "USD"},
        {"account_id": accounts["bob"], "side": "credit", "amount": "4.00", "currency": "USD"},
        {"account_id": carol, "side": "credit", "amount": "2.00", "currency": "USD"},
    ]
    hold = post_transfer(
        client, {"idempotency_key": "multi-hold", "postings": postings, "pending": True}
    )
    assert_error(
        client.post(f"/v1/transfers/{hold['id']}/post", json={"amount": "1.00"}),
        422,
        "partial_post_needs_two_postings",
    )
    posted = client.post(f"/v1/transfers/{hold['id']}/post")
    assert posted.status_code == 200, posted.text
    assert balances(client, carol)["posted"] == "2.00"


def test_a_pending_transfer_past_its_deadline_is_expired_by_the_service(
    client: TestClient, accounts: Accounts, clock: SettableClock
) -> None:
    hold = _hold(client, accounts, "5.00", timeout_s=30)
    clock.advance(timedelta(seconds=31))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if client.get(f"/v1/transfers/{hold['id']}").json()["status"] == "expired":
            break
        time.sleep(0.1)
    assert client.get(f"/v1/transfers/{hold['id']}").json()["status"] == "expired"
    alice = balances(client, accounts["alice"])
    assert (alice["debits_pending"], alice["available"]) == ("0.00", "100.00")
    assert_error(client.post(f"/v1/transfers/{hold['id']}/void"), 409, "pending_transfer_expired")


def test_a_batch_may_hold_8190_transfers_and_not_one_more(
    client: TestClient, accounts: Accounts
) -> None:
    items = [
        transfer_body(accounts["cash"], accounts["bob"], "0.01", key=f"big-{index}")
        for index in range(8190)
    ]
    response = client.post("/v1/transfers/batch", json={"transfers": items})
    assert response.status_code == 200, response.text[:500]
    assert (response.json()["succeeded"], response.json()["failed"]) == (8190, 0)
    assert balances(client, accounts["bob"])["posted"] == "81.90"
    items.append(transfer_body(accounts["cash"], accounts["bob"], "0.01", key="big-one-more"))
    too_many = client.post("/v1/transfers/batch", json={"transfers": items})
    assert_error(too_many, 422, "invalid_request")
    assert balances(client, accounts["bob"])["posted"] == "81.90"


def test_with_the_writer_stopped_the_service_is_not_ready_and_writes_answer_503(
    client: TestClient, accounts: Accounts, ledger: Ledger
) -> None:
    ledger.writer.stop()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["writer"] == "stopped"
    body = transfer_body(accounts["alice"], accounts["bob"], "1.00")
    refused = assert_error(client.post("/v1/transfers", json=body), 503, "unavailable")
    assert refused["error"]["message"]
    # Reads still work.
    assert balances(client, accounts["alice"])["posted"] == "100.00"


def test_a_suspended_account_refuses_new_transfers_but_its_holds_can_be_voided(
    client: TestClient, accounts: Accounts, ledger: Ledger
) -> None:
    hold = _hold(client, accounts, "10.00")
    suspend = change_account_state(
        account_id=uuid.UUID(accounts["alice"]),
        new_state=AccountState.SUSPENDED,
        reason="fraud review",
        actor="ops",
    )
    assert ledger.service.execute([suspend]).results[0].code is ResultCode.OK
    assert client.get(f"/v1/accounts/{accounts['alice']}").json()["state"] == "suspended"

    body = transfer_body(accounts["alice"], accounts["bob"], "1.00")
    assert_error(client.post("/v1/transfers", json=body), 409, "account_not_active")
    incoming = transfer_body(accounts["cash"], accounts["alice"], "1.00")
    assert_error(client.post("/v1/transfers", json=incoming), 409, "account_not_active")
    assert_error(client.post(f"/v1/transfers/{hold['id']}/post"), 409, "account_not_active")
    voided = client.post(f"/v1/transfers/{hold['id']}/void")
    assert voided.status_code == 200, voided.text
    assert balances(client, accounts["alice"])["debits_pending"] == "0.00"
