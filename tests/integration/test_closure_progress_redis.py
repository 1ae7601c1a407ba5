"""Live closure progress through a real Redis (when REDIS_URL is set; .ci/run
sets it when a Redis listens): every recorded change of a closure is
published on its channel, and the event stream wakes on it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from application.clock import SettableClock
from application.closures import ClosureRequest
from domain.closure import closure_id_for
from interface.adapters.notifications.closure_progress import (
    CHANNEL_PREFIX_DEFAULT,
    closure_channel,
)
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from tests.support.withdrawals import profitable_funded_account

REDIS_URL = os.environ.get("REDIS_URL")
MESSAGE_WAIT_S = 5.0

pytestmark = pytest.mark.skipif(REDIS_URL is None, reason="REDIS_URL is not set")


@pytest.fixture
def redis_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    running = build_ledger(settings.model_copy(update={"redis_url": REDIS_URL}), clock=clock)
    try:
        yield running
    finally:
        running.close()


def test_each_recorded_change_is_published_on_the_closures_channel(
    redis_ledger: Ledger,
) -> None:
    assert REDIS_URL is not None
    ledger = redis_ledger
    funded_id = profitable_funded_account(ledger, f"trader-{uuid.uuid4()}", 2_000_00)
    client = redis.Redis.from_url(REDIS_URL)
    subscriber = client.pubsub()
    assert ledger.closures.closure_of(funded_id) is None
    channel = closure_channel(CHANNEL_PREFIX_DEFAULT, closure_id_for(funded_id))
    subscriber.subscribe(channel)
    confirmed = subscriber.get_message(timeout=MESSAGE_WAIT_S)
    assert confirmed is not None and confirmed["type"] == "subscribe"

    closure = ledger.closures.initiate(
        ClosureRequest(funded_id, "Ada Lovelace", "ada@example.com", "done", "user:1")
    ).closure
    advanced = ledger.closures.advance(closure.id)

    phases = []
    while True:
        message = subscriber.get_message(ignore_subscribe_messages=True, timeout=MESSAGE_WAIT_S)
        if message is None:
            break
        body = json.loads(message["data"])
        assert body["closure_id"] == str(closure.id)
        phases.append((body["phase"], body["version"]))
    subscriber.close()
    client.close()
    # Initiated, then each step the advance recorded, the last at its version.
    assert phases[0] == ("initiated", 1)
    assert phases[-1] == (advanced.phase.value, advanced.version)
    assert [version for _, version in phases] == sorted({version for _, version in phases})
