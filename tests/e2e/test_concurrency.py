"""Many clients at once against the real service: the limit holds exactly."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.audit import audit, first_broken_link
from tests.support.http_api import (
    assert_error,
    balances,
    open_account,
    post_transfer,
    transfer_body,
)
from tests.support.service_process import ServiceProcess

CLIENTS = 200
FUNDED_FOR = 100


@pytest.mark.timeout(180)
def test_200_concurrent_transfers_from_an_account_funded_for_100_give_exactly_100_successes(
    service: ServiceProcess, database_url: str
) -> None:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    with httpx.Client(
        base_url=service.base_url, headers=service.headers, timeout=60.0, limits=limits
    ) as client:
        cash = open_account(client, kind="cash", owner_id="platform")["id"]
        payer = open_account(client, flagged=True)["id"]
        payee = open_account(client, flagged=True)["id"]
        post_transfer(client, transfer_body(cash, payer, f"{FUNDED_FOR}.00"))

        start = threading.Barrier(CLIENTS)

        def send(_: int) -> httpx.Response:
            body = transfer_body(payer, payee, "1.00", key=f"concurrent-{uuid.uuid4()}")
            start.wait(timeout=60)
            return client.post("/v1/transfers", json=body)

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            responses = list(pool.map(send, range(CLIENTS)))

        statuses = Counter(response.status_code for response in responses)
        assert statuses == {201: FUNDED_FOR, 409: CLIENTS - FUNDED_FOR}, statuses
        for response in responses:
            if response.status_code == 409:
                assert_error(response, 409, "insufficient_funds")

        payer_balances = balances(client, payer)
        assert payer_balances["debits_posted"] == f"{FUNDED_FOR}.00"
        assert payer_balances["credits_posted"] == f"{FUNDED_FOR}.00"
        assert payer_balances["posted"] == "0.00"
        assert balances(client, payee)["credits_posted"] == f"{FUNDED_FOR}.00"
        everyone = [balances(client, account) for account in (cash, payer, payee)]
        assert sum(Decimal(b["debits_posted"]) for b in everyone) == sum(
            Decimal(b["credits_posted"]) for b in everyone
        )

    rows, replayed = audit(database_url)
    assert replayed.problems() == []
    assert first_broken_link(rows) is None
    assert len(replayed.transfers) == 1 + FUNDED_FOR


def _all_at_once(
    client: httpx.Client, requests: Sequence[tuple[str, dict[str, Any] | None]]
) -> list[httpx.Response]:
    start = threading.Barrier(len(requests))

    def send(request: tuple[str, dict[str, Any] | None]) -> httpx.Response:
        path, body = request
        start.wait(timeout=60)
        return client.post(path, json=body)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


@pytest.mark.timeout(120)
def test_concurrent_requests_with_one_key_make_one_transfer(
    service: ServiceProcess, database_url: str
) -> None:
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=60.0) as client:
        cash = open_account(client, kind="cash", owner_id="platform")["id"]
        payee = open_account(client, flagged=True)["id"]

        same = transfer_body(cash, payee, "3.00", key="one-key")
        responses = _all_at_once(client, [("/v1/transfers", same)] * 40)
        assert Counter(r.status_code for r in responses) == {201: 1, 200: 39}
        assert len({r.json()["id"] for r in responses}) == 1

        # The same key with other details: one is made, the rest are told the key is taken.
        varied = [
            ("/v1/transfers", transfer_body(cash, payee, f"{1 + i}.00", key="contested-key"))
            for i in range(20)
        ]
        responses = _all_at_once(client, varied)
        assert Counter(r.status_code for r in responses) == {201: 1, 422: 19}
        for response in responses:
            if response.status_code == 422:
                assert_error(response, 422, "idempotency_key_reused")
        made = next(r.json() for r in responses if r.status_code == 201)
        assert balances(client, payee)["posted"] == str(
            Decimal("3.00") + Decimal(made["postings"][0]["amount"])
        )

    _, replayed = audit(database_url)
    assert replayed.problems() == []
    assert len(replayed.transfers) == 2


@pytest.mark.timeout(120)
def test_concurrent_post_void_and_reverse_resolve_a_transfer_exactly_once(
    service: ServiceProcess, database_url: str
) -> None:
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=60.0) as client:
        cash = open_account(client, kind="cash", owner_id="platform")["id"]
        payer = open_account(client, flagged=True)["id"]
        payee = open_account(client, flagged=True)["id"]
        post_transfer(client, transfer_body(cash, payer, "50.00"))
        hold = post_transfer(client, transfer_body(payer, payee, "20.00", pending=True))

        actions = [
            (f"/v1/transfers/{hold['id']}/{action}", None) for action in ["post", "void"] * 10
        ]
        responses = _all_at_once(client, actions)
        winners = [r for r in responses if r.status_code == 200]
        assert len(winners) == 1, Counter(r.status_code for r in responses)
        outcome = winners[0].json()["status"]
        assert outcome in {"posted", "voided"}
        losing_code = f"pending_transfer_already_{outcome}"
        for response in responses:
            if response.status_code != 200:
                assert_error(response, 409, losing_code)
        payee_posted = "20.00" if outcome == "posted" else "0.00"
        assert balances(client, payee)["posted"] == payee_posted
        assert balances(client, payer)["debits_pending"] == "0.00"

        original = post_transfer(client, transfer_body(payer, payee, "5.00"))
        responses = _all_at_once(client, [(f"/v1/transfers/{original['id']}/reverse", None)] * 20)
        assert Counter(r.status_code for r in responses) == {201: 1, 200: 19}
        assert len({r.json()["id"] for r in responses}) == 1

    _, replayed = audit(database_url)
    assert replayed.problems() == []
