"""Integration events to a real Redis stream (when REDIS_URL is set): every
event once, in order, with the ledger position as the stream id; a
publisher that starts again resumes after the stream's last entry."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from application.clock import SettableClock
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from interface.workers.stream_publisher import StreamPublisherWorker
from projections.integration_event_reads import START, EventFilter, integration_event_page
from projections.integration_events import NAME
from tests.support.ledgers import platform_account, transfer, user_account

REDIS_URL = os.environ.get("REDIS_URL")
WAIT_S = 10.0

pytestmark = pytest.mark.skipif(REDIS_URL is None, reason="REDIS_URL is not set")


@pytest.fixture
def stream_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    # A key of its own: tests may share the Redis.
    key = f"test:ledger:events:{uuid.uuid4()}"
    running = build_ledger(
        settings.model_copy(update={"redis_url": REDIS_URL, "stream_key": key}), clock=clock
    )
    try:
        yield running
    finally:
        running.close()
        redis.Redis.from_url(str(REDIS_URL)).delete(key)


def _publisher(ledger: Ledger) -> StreamPublisherWorker:
    publisher = ledger.integration.stream_publisher
    assert publisher is not None
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [NAME], WAIT_S)
    return publisher


def test_every_event_goes_to_the_stream_once_with_its_position_as_id(
    stream_ledger: Ledger,
) -> None:
    cash, alice = platform_account(), user_account(owner_id="alice")
    stream_ledger.service.execute([cash, alice])
    stream_ledger.service.execute([transfer(cash.account_id, alice.account_id, 500)])
    assert _publisher(stream_ledger).run_once() == 3
    stream_ledger.service.execute([transfer(cash.account_id, alice.account_id, 700)])
    publisher = _publisher(stream_ledger)
    assert publisher.run_once() == 1
    assert publisher.run_once() == 0

    key = stream_ledger.settings.stream_key
    # Decoded: ids and fields as text.
    client = redis.Redis.from_url(str(REDIS_URL), decode_responses=True)
    entries: list[tuple[str, dict[str, str]]] = client.xrange(key)  # type: ignore[assignment]
    with stream_ledger.pool.connection() as connection, connection.cursor() as cursor:
        stored = integration_event_page(cursor, EventFilter(), START, 100)
    assert [entry_id for entry_id, _ in entries] == [
        f"{event.position}-{event.ordinal}" for event in stored
    ]
    documents = [json.loads(fields["event"]) for _, fields in entries]
    assert documents == [json.loads(json.dumps(event.document())) for event in stored]
    assert [fields["type"] for _, fields in entries] == [
        "account.created",
        "account.created",
        "transfer.posted",
        "transfer.posted",
    ]
