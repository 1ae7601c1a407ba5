"""Webhook delivery to a real HTTP receiver: every event once (by id), each
account's in order, signed; a receiver down for a while gets everything
once back; redelivery; disabling after the retry window, told as an event;
addresses refused without LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import psycopg
import pytest

from application.clock import SettableClock
from domain.commands import PostPendingTransfer, VoidPendingTransfer
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from interface.workers.webhook_delivery import WebhookWorker
from projections.integration_event_reads import START, EventFilter, integration_event_page
from projections.integration_events import NAME
from tests.support.ledgers import platform_account, transfer, user_account
from tests.support.webhook_receiver import WebhookReceiver, running_receiver

WAIT_S = 10.0
OWNERS = ("ada", "bob", "cy", "dee")
OPERATIONS = 60
# Passes a test runs at most to drain the outbox (each pass sends up to 500).
PASSES_MAX = 50


@pytest.fixture
def webhook_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    running = build_ledger(
        settings.model_copy(
            update={"webhooks_allow_private_urls": True, "webhook_retry_window_s": 3_600.0}
        ),
        clock=clock,
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def receiver(clock: SettableClock) -> Iterator[WebhookReceiver]:
    with running_receiver(lambda: int(clock.now().timestamp())) as running:
        yield running


def _subscribe(ledger: Ledger, receiver: WebhookReceiver, *types: str) -> UUID:
    endpoint, secret = ledger.integration.webhook_endpoints.create(
        receiver.url, list(types), "test", ledger.clock.now()
    )
    receiver.secret = secret
    return endpoint.endpoint_id


def _drain(ledger: Ledger) -> WebhookWorker:
    """Views caught up, then passes until nothing is left to do now."""
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [NAME], WAIT_S)
    worker = ledger.integration.webhook_worker
    for _ in range(PASSES_MAX):
        done = worker.run_once()
        if not done.attempted and not done.fanned_out:
            return worker
    raise AssertionError("the outbox did not drain")


def _random_workload(ledger: Ledger, seed: int) -> Counter[str]:
    """Accounts, transfers and holds (posted or voided) at random; the
    public event types they must produce, counted."""
    rng = random.Random(seed)
    cash = platform_account()
    users = [user_account(owner_id=owner) for owner in OWNERS]
    ledger.service.execute([cash, *users])
    expected: Counter[str] = Counter({"account.created": 1 + len(users)})
    for user in users:
        ledger.service.execute([transfer(cash.account_id, user.account_id, 100_000)])
        expected["transfer.posted"] += 1
    holds: list[UUID] = []
    for _ in range(OPERATIONS):
        source, target = rng.sample(users, 2)
        choice = rng.random()
        if holds and choice < 0.3:
            hold = holds.pop(rng.randrange(len(holds)))
            if rng.random() < 0.5:
                ledger.service.execute([PostPendingTransfer(hold)])
                expected["hold.posted"] += 1
            else:
                ledger.service.execute([VoidPendingTransfer(hold)])
                expected["hold.voided"] += 1
        elif choice < 0.5:
            command = transfer(source.account_id, target.account_id, 10, pending=True)
            ledger.service.execute([command])
            holds.append(command.transfer_id)
            expected["hold.created"] += 1
        else:
            amount = rng.randint(1, 500)
            ledger.service.execute([transfer(source.account_id, target.account_id, amount)])
            expected["transfer.posted"] += 1
    return expected


def _assert_each_account_in_order(received: list[dict[str, object]]) -> None:
    last_by_account: dict[str, tuple[int, int]] = {}
    for event in received:
        key = (int(event["position"]), int(event["sequence"]))  # type: ignore[call-overload]
        for account_id in event["account_ids"]:  # type: ignore[attr-defined]
            assert last_by_account.get(account_id, (0, -1)) < key
            last_by_account[account_id] = key


def test_every_event_of_a_random_workload_arrives_once_signed_in_account_order(
    webhook_ledger: Ledger, receiver: WebhookReceiver
) -> None:
    _subscribe(webhook_ledger, receiver)
    expected = _random_workload(webhook_ledger, seed=24)
    _drain(webhook_ledger)

    received = [item.event for item in receiver.received]
    assert Counter(event["type"] for event in received) == expected
    assert receiver.bad_signatures == 0
    with webhook_ledger.pool.connection() as connection, connection.cursor() as cursor:
        stored = integration_event_page(cursor, EventFilter(), START, 10_000)
    # Each once; events of different accounts may overtake each other.
    assert sorted(event["id"] for event in received) == sorted(
        str(event.event_id) for event in stored
    )
    payloads = {str(event.event_id): event.payload for event in stored}
    assert all(event["data"] == payloads[event["id"]] for event in received)
    _assert_each_account_in_order(received)


def test_a_receiver_down_for_a_while_gets_everything_once_back(
    webhook_ledger: Ledger, receiver: WebhookReceiver, clock: SettableClock
) -> None:
    _subscribe(webhook_ledger, receiver, "transfer.posted", "hold.created")
    receiver.stop()
    expected = _random_workload(webhook_ledger, seed=7)
    worker = _drain(webhook_ledger)
    for _ in range(3):
        # Down: each pass gives up on the endpoint after a few refusals.
        clock.advance(timedelta(minutes=5))
        worker.run_once()
    receiver.failing = True
    receiver.start()
    clock.advance(timedelta(minutes=5))
    worker.run_once()
    assert receiver.refused > 0
    receiver.failing = False
    for _ in range(PASSES_MAX):
        clock.advance(timedelta(minutes=5))
        if not worker.run_once().attempted:
            break

    received = [item.event for item in receiver.received]
    assert Counter(event["type"] for event in received) == {
        "transfer.posted": expected["transfer.posted"],
        "hold.created": expected["hold.created"],
    }
    assert len(set(receiver.event_ids())) == len(received)
    _assert_each_account_in_order(received)


def test_a_redelivery_sends_the_same_event_again(
    webhook_ledger: Ledger, receiver: WebhookReceiver
) -> None:
    endpoint_id = _subscribe(webhook_ledger, receiver)
    webhook_ledger.service.execute([platform_account()])
    _drain(webhook_ledger)
    store = webhook_ledger.integration.webhook_endpoints
    [delivery] = store.deliveries(endpoint_id, status=None, before=None, limit=10)
    assert delivery.status == "delivered"
    assert [attempt.status_code for attempt in delivery.attempt_log] == [204]

    assert store.redeliver(endpoint_id, delivery.delivery_id, webhook_ledger.clock.now())
    _drain(webhook_ledger)
    assert receiver.event_ids() == [str(delivery.event_id)] * 2
    [again] = store.deliveries(endpoint_id, status=None, before=None, limit=10)
    assert again.status == "delivered"
    assert again.attempts == 2


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_that_is_told(
    webhook_ledger: Ledger, receiver: WebhookReceiver, clock: SettableClock
) -> None:
    failing_id = _subscribe(webhook_ledger, receiver)
    watcher = WebhookReceiver(now=receiver.now)
    watcher.start()
    try:
        _subscribe(webhook_ledger, watcher, "webhook_endpoint.disabled")
        receiver.failing = True
        webhook_ledger.service.execute([platform_account()])
        worker = _drain(webhook_ledger)
        clock.advance(timedelta(hours=2))
        worker.run_once()
        store = webhook_ledger.integration.webhook_endpoints
        endpoint = store.endpoint(failing_id)
        assert endpoint is not None
        assert not endpoint.enabled
        assert endpoint.disabled_reason == "deliveries failed for 1 hours"
        [delivery] = store.deliveries(failing_id, status=None, before=None, limit=10)
        assert delivery.status == "failed"
        _drain(webhook_ledger)
        [told] = [item.event for item in watcher.received]
        assert told["type"] == "webhook_endpoint.disabled"
        assert told["data"]["endpoint_id"] == str(failing_id)
    finally:
        watcher.stop()


def test_a_private_address_is_refused_unless_allowed(
    ledger: Ledger, receiver: WebhookReceiver
) -> None:
    """The default settings: the receiver on 127.0.0.1 is never called."""
    endpoint_id = _subscribe(ledger, receiver)
    ledger.service.execute([platform_account()])
    _drain(ledger)
    assert receiver.received == []
    [delivery] = ledger.integration.webhook_endpoints.deliveries(
        endpoint_id, status=None, before=None, limit=10
    )
    assert delivery.status == "pending"
    assert delivery.last_error is not None
    assert "not a public address" in delivery.last_error


def test_a_new_endpoint_is_owed_only_what_comes_after_it(
    webhook_ledger: Ledger, receiver: WebhookReceiver
) -> None:
    webhook_ledger.service.execute([platform_account()])
    _drain(webhook_ledger)
    _subscribe(webhook_ledger, receiver)
    webhook_ledger.service.execute([platform_account()])
    _drain(webhook_ledger)
    assert len(receiver.received) == 1
    with psycopg.connect(webhook_ledger.database_url) as connection:
        row = connection.execute("SELECT count(*) FROM webhook_deliveries").fetchone()
    assert row == (1,)
