"""kill -9 of `ledger serve` while it delivers webhooks: after a restart the
receiver has every event, duplicates only ever with the same id, each
account's events still in order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from interface.adapters.persistence.api_keys import Role
from tests.support.api_keys import bearer, create_api_key
from tests.support.service_process import ServiceProcess, start_service
from tests.support.webhook_receiver import WebhookReceiver, running_receiver

ENVIRONMENT = {
    "LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
    "LEDGER_WEBHOOK_WORKER_INTERVAL_S": "0.1",
}
TRANSFERS = 120
BATCH_SIZE = 40
# Deliveries the receiver must have before the kill, so it lands mid-delivery.
RECEIVED_BEFORE_KILL = 20
WAIT_S = 120.0


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver(lambda: int(time.time())) as running:
        # Slow enough that the kill finds deliveries still owed.
        running.delay_s = 0.02
        yield running


def _serve(database_url: str, tmp_path: Path, name: str) -> ServiceProcess:
    service = start_service(
        database_url, tmp_path / "data", tmp_path / f"{name}.log", environment=ENVIRONMENT
    )
    service.wait_ready()
    return service


def _write_workload(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=30) as client:
        accounts = [
            client.post(
                "/v1/accounts",
                json={"currency": "USD", "owner_id": f"owner-{number}"}
                | ({"kind": "cash"} if number == 0 else {}),
            ).json()["id"]
            for number in range(4)
        ]
        for start in range(0, TRANSFERS, BATCH_SIZE):
            body = [
                {
                    "idempotency_key": f"crash-{uuid.uuid4()}",
                    "debit_account_id": accounts[0],
                    "credit_account_id": accounts[1 + number % 3],
                    "amount": "1.00",
                    "currency": "USD",
                }
                for number in range(start, start + BATCH_SIZE)
            ]
            answer = client.post("/v1/transfers/batch", json={"transfers": body})
            assert answer.status_code == 200, answer.text


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_kill_9_during_delivery_loses_nothing_and_repeats_only_ids(
    database_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    service = _serve(database_url, tmp_path, "first")
    try:
        admin = bearer(create_api_key(database_url, Role.ADMIN))
        created = httpx.post(
            f"{service.base_url}/v1/webhook-endpoints",
            json={"url": receiver.url},
            headers=admin,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        _write_workload(service)
        _wait(lambda: len(receiver.received) >= RECEIVED_BEFORE_KILL, "no delivery began")
    finally:
        service.kill_hard()
    received_at_kill = len(receiver.received)

    again = _serve(database_url, tmp_path, "second")
    try:
        with psycopg.connect(database_url) as connection:
            expected_count = 4 + TRANSFERS
            _wait(
                lambda: len(set(receiver.event_ids())) >= expected_count,
                f"only {len(set(receiver.event_ids()))} of {expected_count} events arrived",
            )
            expected = [
                str(row[0])
                for row in connection.execute(
                    "SELECT event_id FROM view_integration_events ORDER BY position, ordinal"
                )
            ]
    finally:
        again.stop()

    assert received_at_kill < expected_count
    assert receiver.bad_signatures == 0
    ids = receiver.event_ids()
    assert set(ids) == set(expected)
    first_arrivals = list(dict.fromkeys(ids))
    by_id = {item.event["id"]: item.event for item in receiver.received}
    last_by_account: dict[str, tuple[int, int]] = {}
    for event_id in first_arrivals:
        event = by_id[event_id]
        key = (event["position"], event["sequence"])
        for account_id in event["account_ids"]:
            assert last_by_account.get(account_id, (0, -1)) < key
            last_by_account[account_id] = key
