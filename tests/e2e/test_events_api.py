"""GET /v1/events (scoping, filters, cursor, long polling) and the admins'
webhook endpoint routes (secret once, address refusal, log, redelivery)."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.ledgers import platform_account, transfer, user_account

PUBLIC_URL = "https://93.184.216.34/hooks"


def _accounts(ledger: Ledger) -> tuple[str, str, str]:
    cash, alice, bob = (
        platform_account(),
        user_account(owner_id="alice"),
        user_account(owner_id="bob"),
    )
    ledger.service.execute([cash, alice, bob])
    ledger.service.execute([transfer(cash.account_id, alice.account_id, 1_000)])
    ledger.service.execute([transfer(cash.account_id, bob.account_id, 2_000)])
    return str(cash.account_id), str(alice.account_id), str(bob.account_id)


def test_a_user_reads_only_the_events_of_their_own_accounts(
    client: TestClient, ledger: Ledger
) -> None:
    cash, alice, bob = _accounts(ledger)
    _, alice_key = ledger.api_keys.create(Role.USER, owner_id="alice")

    everything = client.get("/v1/events").json()["items"]
    assert [event["type"] for event in everything] == ["account.created"] * 3 + [
        "transfer.posted"
    ] * 2
    own = client.get("/v1/events", headers=bearer(alice_key)).json()["items"]
    assert [event["type"] for event in own] == ["account.created", "transfer.posted"]
    assert all(alice in event["account_ids"] for event in own)
    assert own[1]["data"]["postings"][1] == {
        "account_id": alice,
        "side": "credit",
        "amount": "10.00",
        "currency": "USD",
    }
    # Another owner's account: nothing, as if it had no events.
    assert (
        client.get("/v1/events", params={"account": bob}, headers=bearer(alice_key)).json()["items"]
        == []
    )
    by_account = client.get("/v1/events", params={"account": bob}).json()["items"]
    assert [event["type"] for event in by_account] == ["account.created", "transfer.posted"]
    posted = client.get("/v1/events", params={"type": "transfer.posted"}).json()["items"]
    assert {cash} <= set(posted[0]["account_ids"])
    assert len(posted) == 2


def test_pages_follow_a_cursor_and_an_empty_page_waits_for_the_next_event(
    client: TestClient, ledger: Ledger
) -> None:
    _accounts(ledger)
    first = client.get("/v1/events", params={"limit": 3}).json()
    assert first["has_more"] is True
    rest = client.get("/v1/events", params={"cursor": first["next_cursor"]}).json()
    assert rest["has_more"] is False
    assert len(first["items"]) + len(rest["items"]) == 5
    assert rest["items"][0]["position"] > first["items"][-1]["position"]

    later = platform_account()
    writer = threading.Timer(0.5, lambda: ledger.service.execute([later]))
    writer.start()
    started = time.monotonic()
    waited = client.get("/v1/events", params={"cursor": rest["next_cursor"], "wait_s": 10})
    writer.join()
    assert waited.status_code == 200
    assert [event["data"]["account_id"] for event in waited.json()["items"]] == [
        str(later.account_id)
    ]
    assert time.monotonic() - started < 10
    unknown = client.get("/v1/events", params={"type": "transfer.exploded"})
    assert unknown.status_code == 422
    assert client.get("/v1/events", params={"cursor": "nonsense"}).json()["error"]["code"] == (
        "invalid_cursor"
    )


def test_admins_manage_webhook_endpoints_and_see_the_secret_once(
    client: TestClient, ledger: Ledger
) -> None:
    _, admin_key = ledger.api_keys.create(Role.ADMIN)
    admin = bearer(admin_key)
    created = client.post(
        "/v1/webhook-endpoints",
        json={"url": PUBLIC_URL, "event_types": ["transfer.posted"], "description": "risk"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    fetched = client.get(path, headers=admin).json()
    assert "secret" not in fetched
    assert fetched["event_types"] == ["transfer.posted"]
    assert [
        item["id"] for item in client.get("/v1/webhook-endpoints", headers=admin).json()["items"]
    ] == [endpoint["id"]]

    changed = client.patch(path, json={"enabled": False, "event_types": []}, headers=admin)
    assert changed.json()["enabled"] is False
    assert changed.json()["event_types"] == []
    assert client.get(f"{path}/deliveries", headers=admin).json() == {
        "items": [],
        "has_more": False,
        "next_cursor": None,
    }
    assert client.delete(path, headers=admin).status_code == 204
    assert client.get(path, headers=admin).json()["error"]["code"] == ("webhook_endpoint_not_found")


def test_a_url_to_a_private_address_or_an_unknown_type_is_refused(
    client: TestClient, ledger: Ledger
) -> None:
    _, admin_key = ledger.api_keys.create(Role.ADMIN)
    admin = bearer(admin_key)
    for url in ("http://127.0.0.1:9/hooks", "http://10.0.0.7/", "http://169.254.169.254/"):
        refused = client.post("/v1/webhook-endpoints", json={"url": url}, headers=admin)
        assert refused.status_code == 422, url
        assert refused.json()["error"]["code"] == "webhook_url_refused"
    assert (
        client.post(
            "/v1/webhook-endpoints", json={"url": "ftp://93.184.216.34/"}, headers=admin
        ).json()["error"]["code"]
        == "webhook_url_refused"
    )
    unknown = client.post(
        "/v1/webhook-endpoints",
        json={"url": PUBLIC_URL, "event_types": ["Transfer.Recorded"]},
        headers=admin,
    )
    assert unknown.status_code == 422
