"""Reversals through the API: a transfer is reversed once, and a reversal is
never reversed; each refusal has its own stable code and changes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.http_api import (
    assert_error,
    balances,
    open_account,
    post_transfer,
    transfer_body,
)


def _payment(client: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    """Accounts (cash, alice, bob) and a posted payment of 30.00 from alice to bob."""
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    alice = open_account(client, flagged=True)["id"]
    bob = open_account(client, flagged=True)["id"]
    post_transfer(client, transfer_body(cash, alice, "100.00"))
    payment = post_transfer(client, transfer_body(alice, bob, "30.00"))
    return {"cash": cash, "alice": alice, "bob": bob}, payment


def test_a_reversal_cannot_be_reversed_and_nothing_moves(client: TestClient) -> None:
    accounts, payment = _payment(client)
    reversal = client.post(f"/v1/transfers/{payment['id']}/reverse")
    assert reversal.status_code == 201, reversal.text
    reversal_id = reversal.json()["id"]
    refused = client.post(f"/v1/transfers/{reversal_id}/reverse")
    body = assert_error(refused, 422, "reversal_not_reversible")
    assert body["error"]["details"] == {"reverses_transfer_id": payment["id"]}
    assert client.get(f"/v1/transfers/{reversal_id}").json()["reversed_by_transfer_id"] is None
    assert balances(client, accounts["alice"])["posted"] == "100.00"
    assert balances(client, accounts["bob"])["posted"] == "0.00"


def test_reversing_a_transfer_twice_is_refused_unless_it_is_the_same_request(
    client: TestClient,
) -> None:
    accounts, payment = _payment(client)
    path = f"/v1/transfers/{payment['id']}/reverse"
    first = client.post(path, json={"metadata": {"reason": "refund"}})
    assert first.status_code == 201, first.text
    # Other details ask for a second reversal: refused, naming the first.
    refused = client.post(path, json={"metadata": {"reason": "chargeback"}})
    body = assert_error(refused, 409, "transfer_already_reversed")
    assert body["error"]["details"] == {"reversal_transfer_id": first.json()["id"]}
    # The same request again is a retry: it finds the reversal it made.
    retried = client.post(path, json={"metadata": {"reason": "refund"}})
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == first.json()["id"]
    assert balances(client, accounts["alice"])["posted"] == "100.00"
    assert balances(client, accounts["bob"])["posted"] == "0.00"
