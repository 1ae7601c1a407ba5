"""kill -9 the writer process (`ledger writer`) while an HTTP process sends it
transfers from many clients, and start it again, round after round: the HTTP
process answers 503 with Retry-After while the writer is away and carries on
when it is back; every transfer it acknowledged is stored once, a retry with
the same idempotency key finds it, and the books balance."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from domain.money import format_amount
from tests.support.audit import audit, first_broken_link
from tests.support.http_api import open_account, post_transfer, transfer_body
from tests.support.service_process import ServiceProcess
from tests.support.writer_service import (
    WriterProcess,
    start_http_process,
    start_writer,
    writer_endpoint,
)

ROUNDS = 5
CLIENT_THREADS = 4
BATCH_ITEMS = 20
BATCH_SHARE = 0.2
USERS = 6
USER_FUNDING = "1000000.00"
RETRY_BATCH_MAX = 8190
# How long a request waits for the HTTP process: the writer's own bound (30 s)
# and then some.
CLIENT_TIMEOUT_S = 60.0
RECOVERY_WAIT_S = 60.0


@dataclass
class Traffic:
    """What the clients saw."""

    acknowledged: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable_without_retry_after: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 503 and "Retry-After" not in response.headers:
                self.unavailable_without_retry_after += 1

    def acknowledge(self, body: dict[str, Any], transfer_id: str) -> None:
        with self.lock:
            self.acknowledged[body["idempotency_key"]] = (body, transfer_id)


@dataclass
class Topology:
    database_url: str
    tmp_path: Path
    endpoint: str
    writer: WriterProcess
    http: ServiceProcess

    def restart_writer(self, log_name: str) -> None:
        self.writer = start_writer(
            self.database_url, self.tmp_path, self.tmp_path / log_name, self.endpoint
        )
        self.writer.wait_serving()


@pytest.fixture
def topology(database_url: str, tmp_path: Path) -> Iterator[Topology]:
    endpoint = writer_endpoint()
    writer = start_writer(database_url, tmp_path, tmp_path / "writer-0.log", endpoint)
    writer.wait_serving()
    http = start_http_process(database_url, tmp_path, tmp_path / "http.log", endpoint)
    running = Topology(database_url, tmp_path, endpoint, writer, http)
    try:
        http.wait_ready()
        yield running
    finally:
        running.http.stop()
        running.writer.stop()


def _set_up_accounts(client: httpx.Client) -> tuple[str, list[str]]:
    cash = open_account(client, key="wp-cash", kind="cash", owner_id="platform")["id"]
    users = [open_account(client, key=f"wp-user-{index}")["id"] for index in range(USERS)]
    for index, user in enumerate(users):
        post_transfer(client, transfer_body(cash, user, USER_FUNDING, key=f"wp-funding-{index}"))
    return cash, users


def _body(rng: random.Random, key: str, users: list[str]) -> dict[str, Any]:
    debit, credit = rng.sample(users, 2)
    return transfer_body(debit, credit, f"{rng.randint(0, 9)}.{rng.randint(1, 99):02d}", key=key)


def _client_loop(
    http: ServiceProcess,
    name: str,
    users: list[str],
    traffic: Traffic,
    stop: threading.Event,
    seed: int,
) -> None:
    rng = random.Random(seed)
    sequence = 0
    with httpx.Client(
        base_url=http.base_url, headers=http.headers, timeout=CLIENT_TIMEOUT_S
    ) as client:
        while not stop.is_set():
            sequence += 1
            if rng.random() < BATCH_SHARE:
                items = [_body(rng, f"{name}-{sequence}-{index}", users) for index in range(10)]
                response = client.post("/v1/transfers/batch", json={"transfers": items})
                traffic.saw(response)
                if response.status_code == 200:
                    for item, result in zip(items, response.json()["results"], strict=True):
                        if result["code"] in ("ok", "exists"):
                            traffic.acknowledge(item, result["id"])
            else:
                body = _body(rng, f"{name}-{sequence}", users)
                response = client.post("/v1/transfers", json=body)
                traffic.saw(response)
                if response.status_code in (200, 201):
                    traffic.acknowledge(body, response.json()["id"])
            if response.status_code == 503:
                time.sleep(0.05)


def _wait_for_status(
    client: httpx.Client, body: dict[str, Any], wanted: set[int]
) -> httpx.Response:
    deadline = time.monotonic() + RECOVERY_WAIT_S
    while True:
        response = client.post("/v1/transfers", json=body)
        if response.status_code in wanted:
            return response
        assert time.monotonic() < deadline, (response.status_code, response.text)
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_writer_killed_under_load_loses_and_doubles_nothing(topology: Topology) -> None:
    http = topology.http
    traffic = Traffic()
    rng = random.Random(22)
    with httpx.Client(
        base_url=http.base_url, headers=http.headers, timeout=CLIENT_TIMEOUT_S
    ) as probe:
        cash, users = _set_up_accounts(probe)
        stop = threading.Event()
        clients = [
            threading.Thread(
                target=_client_loop,
                args=(http, f"c{index}", users, traffic, stop, rng.randrange(2**32)),
            )
            for index in range(CLIENT_THREADS)
        ]
        for client in clients:
            client.start()
        try:
            for round_number in range(1, ROUNDS + 1):
                time.sleep(rng.uniform(0.5, 1.5))
                topology.writer.kill_hard()
                # While the writer is away the HTTP process says so, and how long to wait.
                down = _wait_for_status(
                    probe, transfer_body(cash, users[0], "1.00", key=f"probe-{round_number}"), {503}
                )
                assert down.json()["error"]["code"] == "unavailable"
                assert int(down.headers["Retry-After"]) > 0
                topology.restart_writer(f"writer-{round_number}.log")
                # Back: the same key is answered (made now, or found).
                back = _wait_for_status(
                    probe,
                    transfer_body(cash, users[0], "1.00", key=f"probe-{round_number}"),
                    {200, 201},
                )
                traffic.acknowledge(
                    transfer_body(cash, users[0], "1.00", key=f"probe-{round_number}"),
                    back.json()["id"],
                )
            time.sleep(0.5)
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=CLIENT_TIMEOUT_S * 2)
        assert not any(client.is_alive() for client in clients)

        assert traffic.acknowledged
        assert traffic.statuses[503] > 0, traffic.statuses
        assert set(traffic.statuses) <= {200, 201, 503}, traffic.statuses
        assert traffic.unavailable_without_retry_after == 0

        # A client retrying finds what it was told was done, and nothing more is made.
        bodies = [body for body, _ in traffic.acknowledged.values()]
        for start in range(0, len(bodies), RETRY_BATCH_MAX):
            chunk = bodies[start : start + RETRY_BATCH_MAX]
            response = probe.post("/v1/transfers/batch", json={"transfers": chunk})
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert Counter(result["code"] for result in results) == {"exists": len(chunk)}
            for body, result in zip(chunk, results, strict=True):
                assert result["id"] == traffic.acknowledged[body["idempotency_key"]][1]

    # Straight from PostgreSQL: every acknowledged transfer once, balanced, chained.
    rows, replayed = audit(topology.database_url)
    assert replayed.problems() == []
    assert first_broken_link(rows) is None
    for key, (body, transfer_id) in traffic.acknowledged.items():
        stored = replayed.transfers.get(UUID(transfer_id))
        assert stored is not None, f"acknowledged transfer {key} is missing"
        assert [(str(posting.account_id), posting.side.value) for posting in stored.postings] == [
            (body["debit_account_id"], "debit"),
            (body["credit_account_id"], "credit"),
        ]
        assert format_amount(stored.postings[0].amount_minor, "USD") == body["amount"]
    # Each transfer's creation is one event: none recorded twice.
    created = Counter(row.originator_id for row in rows if row.originator_version == 1)
    assert max(created.values()) == 1
    total_debits = sum(account.totals.debits_posted for account in replayed.accounts.values())
    total_credits = sum(account.totals.credits_posted for account in replayed.accounts.values())
    assert total_debits == total_credits
