"""kill -9 the service while it takes batches, again and again: whatever it
acknowledged is there afterwards, nothing is half-written, the books balance
and the hash chain holds."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from domain.money import format_amount
from domain.transfer import Side
from tests.support.audit import audit, first_broken_link
from tests.support.http_api import open_account, post_transfer, transfer_body
from tests.support.service_process import ServiceProcess, start_service

# Each round starts the whole topology (writer, HTTP processes, worker), which
# costs seconds; eight kills at random points cover the batch and single paths.
ROUNDS = 8
CLIENT_THREADS = 4
BATCH_ITEMS = 50
BATCH_SHARE = 0.25
USERS = 6
USER_FUNDING = "1000000.00"
RETRY_BATCH_MAX = 8190
API_SAMPLE = 500


@dataclass
class Traffic:
    """What the clients saw, across every round."""

    acknowledged: dict[str, tuple[dict[str, Any], str, bool]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    interrupted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledge(self, body: dict[str, Any], transfer_id: str, via_batch: bool) -> None:
        with self.lock:
            self.acknowledged[body["idempotency_key"]] = (body, transfer_id, via_batch)


def _random_body(rng: random.Random, key: str, cash: str, users: list[str]) -> dict[str, Any]:
    amount = f"{rng.randint(0, 4)}.{rng.randint(1, 99):02d}"
    if rng.random() < 0.1:
        return transfer_body(cash, rng.choice(users), amount, key=key)
    debit, credit = rng.sample(users, 2)
    return transfer_body(debit, credit, amount, key=key)


def _client_loop(
    base_url: str,
    headers: dict[str, str],
    name: str,
    accounts: dict[str, Any],
    traffic: Traffic,
    stop: threading.Event,
    seed: int,
) -> None:
    rng = random.Random(seed)
    cash, users = accounts["cash"], accounts["users"]
    sequence = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        while not stop.is_set():
            sequence += 1
            try:
                if rng.random() < BATCH_SHARE:
                    items = [
                        _random_body(rng, f"{name}-{sequence}-{index}", cash, users)
                        for index in range(BATCH_ITEMS)
                    ]
                    response = client.post("/v1/transfers/batch", json={"transfers": items})
                    with traffic.lock:
                        traffic.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        for item, result in zip(items, response.json()["results"], strict=True):
                            if result["code"] in ("ok", "exists"):
                                traffic.acknowledge(item, result["id"], via_batch=True)
                else:
                    body = _random_body(rng, f"{name}-{sequence}", cash, users)
                    response = client.post("/v1/transfers", json=body)
                    with traffic.lock:
                        traffic.statuses[response.status_code] += 1
                    if response.status_code in (200, 201):
                        traffic.acknowledge(body, response.json()["id"], via_batch=False)
            except httpx.TransportError:
                # The service died under us (or is not up): this request is unacknowledged.
                with traffic.lock:
                    traffic.interrupted += 1
                time.sleep(0.05)


def _set_up_accounts(base_url: str, headers: dict[str, str]) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        cash = open_account(client, key="crash-cash", kind="cash", owner_id="platform")["id"]
        users = [
            open_account(client, key=f"crash-user-{index}", flagged=True)["id"]
            for index in range(USERS)
        ]
        for index, user in enumerate(users):
            post_transfer(
                client, transfer_body(cash, user, USER_FUNDING, key=f"crash-funding-{index}")
            )
    return {"cash": cash, "users": users}


def _postings_of(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (body["debit_account_id"], "debit", body["amount"]),
        (body["credit_account_id"], "credit", body["amount"]),
    ]


def _crash_rounds(database_url: str, tmp_path: Path, traffic: Traffic) -> dict[str, Any]:
    rng = random.Random(97)
    accounts: dict[str, Any] = {}
    for round_number in range(ROUNDS):
        service = start_service(database_url, tmp_path / "data", tmp_path / "service.log")
        try:
            service.wait_ready()
            if not accounts:
                accounts = _set_up_accounts(service.base_url, service.headers)
            stop = threading.Event()
            clients = [
                threading.Thread(
                    target=_client_loop,
                    args=(
                        service.base_url,
                        service.headers,
                        f"r{round_number}-c{index}",
                        accounts,
                        traffic,
                        stop,
                        rng.randrange(2**32),
                    ),
                )
                for index in range(CLIENT_THREADS)
            ]
            for client in clients:
                client.start()
            time.sleep(rng.uniform(0.2, 1.5))
        finally:
            service.kill_hard()
        stop.set()
        for client in clients:
            client.join(timeout=60)
            assert not client.is_alive()
    return accounts


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_acknowledged_transfers_survive_repeated_kill_9_and_none_is_partial(
    database_url: str, tmp_path: Path
) -> None:
    traffic = Traffic()
    accounts = _crash_rounds(database_url, tmp_path, traffic)

    assert traffic.acknowledged, "the clients got nothing acknowledged"
    assert traffic.interrupted > 0, "no request was in flight when the service was killed"
    assert not [status for status in traffic.statuses if status >= 500], traffic.statuses

    # Straight from PostgreSQL: complete, balanced, untampered.
    rows, replayed = audit(database_url)
    assert replayed.problems() == []
    assert first_broken_link(rows) is None
    for key, (body, transfer_id, _) in traffic.acknowledged.items():
        stored = replayed.transfers.get(UUID(transfer_id))
        assert stored is not None, f"acknowledged transfer {key} is missing"
        assert [
            (str(p.account_id), p.side.value, format_amount(p.amount_minor, p.currency))
            for p in stored.postings
        ] == _postings_of(body)
        assert stored.postings[0].side is Side.DEBIT

    # And through the API of a restarted service.
    service = start_service(database_url, tmp_path / "data", tmp_path / "service.log")
    try:
        service.wait_ready()
        _verify_through_the_api(service, accounts, traffic, replayed.accounts)
    finally:
        service.stop()


def _verify_through_the_api(
    service: ServiceProcess,
    accounts: dict[str, Any],
    traffic: Traffic,
    stored_accounts: dict[UUID, Any],
) -> None:
    acknowledged = list(traffic.acknowledged.values())
    # Every transfer acknowledged alone, and a sample of those acknowledged in
    # batches (all of them are checked in the database, and retried below).
    singles = [entry for entry in acknowledged if not entry[2]]
    batched = [entry for entry in acknowledged if entry[2]]
    to_read = singles + random.Random(5).sample(batched, min(len(batched), API_SAMPLE))
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=60.0) as client:
        for body, transfer_id, _ in to_read:
            found = client.get(f"/v1/transfers/{transfer_id}")
            assert found.status_code == 200, (body["idempotency_key"], found.text)
            assert [
                (p["account_id"], p["side"], p["amount"]) for p in found.json()["postings"]
            ] == _postings_of(body)

        # A client retrying after the crash finds what it was told was done.
        for body, transfer_id, _ in singles[:100]:
            retried = client.post("/v1/transfers", json=body)
            assert retried.status_code == 200, retried.text
            assert retried.json()["id"] == transfer_id
        bodies = [body for body, _, _ in acknowledged]
        for start in range(0, len(bodies), RETRY_BATCH_MAX):
            chunk = bodies[start : start + RETRY_BATCH_MAX]
            response = client.post("/v1/transfers/batch", json={"transfers": chunk})
            assert response.status_code == 200, response.text
            codes = Counter(result["code"] for result in response.json()["results"])
            assert codes == {"exists": len(chunk)}, codes

        # The service reports the same totals the events add up to.
        for account_id in [accounts["cash"], *accounts["users"]]:
            shown = client.get(f"/v1/accounts/{account_id}").json()["balances"]
            totals = stored_accounts[UUID(account_id)].totals
            assert shown["debits_posted"] == format_amount(totals.debits_posted, "USD")
            assert shown["credits_posted"] == format_amount(totals.credits_posted, "USD")


@pytest.mark.timeout(120)
def test_a_sigterm_stops_the_service_promptly_and_keeps_what_it_acknowledged(
    service: ServiceProcess, database_url: str
) -> None:
    traffic = Traffic()
    accounts = _set_up_accounts(service.base_url, service.headers)
    stop = threading.Event()
    clients = [
        threading.Thread(
            target=_client_loop,
            args=(
                service.base_url,
                service.headers,
                f"term-c{index}",
                accounts,
                traffic,
                stop,
                index,
            ),
        )
        for index in range(CLIENT_THREADS)
    ]
    for client in clients:
        client.start()
    time.sleep(1.0)

    asked = time.monotonic()
    os.killpg(service.pid, signal.SIGTERM)
    service.process.wait(timeout=60)
    stopped_after = time.monotonic() - asked
    stop.set()
    for client in clients:
        client.join(timeout=60)

    assert stopped_after < 15
    assert traffic.acknowledged
    assert not [status for status in traffic.statuses if status >= 500], traffic.statuses
    rows, replayed = audit(database_url)
    assert replayed.problems() == []
    assert first_broken_link(rows) is None
    missing = [
        key
        for key, (_, transfer_id, _) in traffic.acknowledged.items()
        if UUID(transfer_id) not in replayed.transfers
    ]
    assert missing == []
