"""The ClosureProgress port: one contract, held by the Redis publisher (on a
real Redis when REDIS_URL is set, and on one that is down) and by the no-op
used without Redis.

The port's promise is to the closure, not to a listener: being told of a
change is quick and never raises, whatever the phase, however often, and
whether or not anyone can be reached; the change is recorded already. What
a listener hears is the Redis adapter's own business, tested on its subclass.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final

import pytest
import redis

from application.ports.closure_progress import ClosureProgress, NoClosureProgress
from domain.closure import Closure, ClosurePhase
from interface.adapters.notifications.closure_progress import (
    RedisClosureProgress,
    closure_channel,
)
from tests.support.logs import captured_logs, events_named

REDIS_URL: Final = os.environ.get("REDIS_URL")
# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_REDIS_URL: Final = "redis://127.0.0.1:1/0"
AT: Final = datetime(2026, 1, 1, 12, tzinfo=UTC)
# A bound on waiting for a message that must come, not a measure of speed.
MESSAGE_WAIT_S: Final = 5.0
PHASES_IN_ORDER: Final = (
    ClosurePhase.LIQUIDATING,
    ClosurePhase.SETTLING,
    ClosurePhase.WITHDRAWING,
    ClosurePhase.CLOSING,
    ClosurePhase.COMPLETED,
)


def initiated_closure() -> Closure:
    return Closure.initiate(
        funded_account_id=uuid.uuid4(),
        owner_id="trader-1",
        ledger_account_id=uuid.uuid4(),
        recipient_name="Ada Lovelace",
        recipient_address="ada@example.com",
        reason="done trading",
        at=AT,
        actor="user:1",
    )


class ClosureProgressContract:
    """Every ClosureProgress must pass these; subclasses give `progress`."""

    @pytest.fixture
    def progress(self) -> ClosureProgress:
        raise NotImplementedError

    def test_every_change_of_a_closure_is_taken_without_an_answer_or_an_error(
        self, progress: ClosureProgress
    ) -> None:
        closure = initiated_closure()
        progress.closure_changed(closure)
        for number, phase in enumerate(PHASES_IN_ORDER, start=1):
            closure.enter(phase, AT + timedelta(hours=number))
            progress.closure_changed(closure)

    def test_being_told_of_one_change_again_is_harmless(self, progress: ClosureProgress) -> None:
        closure = initiated_closure()
        progress.closure_changed(closure)
        progress.closure_changed(closure)


class TestNoClosureProgress(ClosureProgressContract):
    @pytest.fixture
    def progress(self) -> ClosureProgress:
        return NoClosureProgress()


@pytest.mark.skipif(REDIS_URL is None, reason="REDIS_URL is not set")
class TestRedisClosureProgress(ClosureProgressContract):
    @pytest.fixture
    def prefix(self) -> str:
        # A channel prefix of its own: parallel runs never hear each other.
        return f"test:{uuid.uuid4().hex}:"

    @pytest.fixture
    def progress(self, prefix: str) -> Iterator[RedisClosureProgress]:
        assert REDIS_URL is not None
        publisher = RedisClosureProgress(REDIS_URL, prefix)
        try:
            yield publisher
        finally:
            publisher.close()

    def test_each_change_is_published_on_the_closures_channel_in_order(
        self, progress: RedisClosureProgress, prefix: str
    ) -> None:
        assert REDIS_URL is not None
        closure = initiated_closure()
        client = redis.Redis.from_url(REDIS_URL)
        subscriber = client.pubsub()
        try:
            subscriber.subscribe(closure_channel(prefix, closure.id))
            confirmed = subscriber.get_message(timeout=MESSAGE_WAIT_S)
            assert confirmed is not None and confirmed["type"] == "subscribe"
            progress.closure_changed(closure)
            closure.enter(ClosurePhase.LIQUIDATING, AT + timedelta(hours=1))
            progress.closure_changed(closure)
            heard = [
                json.loads(message["data"])
                for message in (
                    subscriber.get_message(ignore_subscribe_messages=True, timeout=MESSAGE_WAIT_S)
                    for _ in range(2)
                )
                if message is not None
            ]
        finally:
            subscriber.close()
            client.close()
        assert heard == [
            {"closure_id": str(closure.id), "phase": "initiated", "version": 1},
            {"closure_id": str(closure.id), "phase": "liquidating", "version": 2},
        ]


class TestRedisClosureProgressWithRedisDown(ClosureProgressContract):
    """A Redis that is down must not fail a closure step: the change is
    recorded, the listener falls back to polling, and a warning is logged."""

    @pytest.fixture
    def progress(self) -> Iterator[RedisClosureProgress]:
        publisher = RedisClosureProgress(UNREACHABLE_REDIS_URL)
        try:
            yield publisher
        finally:
            publisher.close()

    def test_a_change_not_published_is_logged_as_a_warning(
        self, progress: RedisClosureProgress
    ) -> None:
        closure = initiated_closure()
        with captured_logs() as output:
            progress.closure_changed(closure)
        (warning,) = events_named(output, "closure_progress_not_published")
        assert warning["level"] == "warning"
        assert warning["closure_id"] == str(closure.id)
