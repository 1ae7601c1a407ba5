"""The stream publishers: integration events copied to a Redis stream or a
Kafka topic.

A leased loop per publisher (one process at a time,
interface/workers/leased_worker.py): each pass asks the publisher where it
stopped and adds the events after it from the integration events view, a
page at a time. The Redis stream is its own resume point
(interface/adapters/streams/redis_streams.py), so a crash repeats nothing;
the Kafka publisher records its point after each acknowledged page
(interface/adapters/streams/kafka_topic.py), so a crash repeats at most a
page. A broker that is down fails the pass; the next pass starts where the
publisher stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final, Protocol

import structlog

from interface.workers.leased_worker import Connection, LeasedLoop, OnLeasedLoop
from projections.integration_event_reads import (
    EventFilter,
    EventKey,
    IntegrationEvent,
    integration_event_page,
)

log = structlog.get_logger(__name__)

PAGE_SIZE: Final[int] = 1_000
# Pages one pass publishes at most before it lets the lease go.
PAGES_PER_PASS_MAX: Final[int] = 50


class EventStreamPublisher(Protocol):
    def last_published(self) -> EventKey:
        """The key of the last event published, START for none."""
        ...

    def publish(self, events: Sequence[IntegrationEvent]) -> None:
        """Add the events, in order, after the last published; raise if the
        broker did not take all of them."""
        ...

    def close(self) -> None: ...


class StreamPublisherWorker(OnLeasedLoop[int]):
    def __init__(
        self,
        *,
        name: str,
        database_url: str,
        publisher: EventStreamPublisher,
        lock_key: int,
        interval_s: float,
    ) -> None:
        self._publisher = publisher
        self._loop = LeasedLoop(
            name=name,
            database_url=database_url,
            lock_key=lock_key,
            interval_s=interval_s,
            work=self._pass,
            report=self._report,
        )

    def run_once(self) -> int:
        """Publish what the stream lacks; how many events (0 without the lease)."""
        return self._loop.run_once() or 0

    def stop(self, timeout_s: float = 30.0) -> None:
        super().stop(timeout_s)
        self._publisher.close()

    def _pass(self, connection: Connection, stopping: threading.Event) -> int:
        published = 0
        after = self._publisher.last_published()
        for _ in range(PAGES_PER_PASS_MAX):
            if stopping.is_set():
                break
            with connection.cursor() as cursor:
                events = integration_event_page(cursor, EventFilter(), after, PAGE_SIZE)
            if not events:
                break
            self._publisher.publish(events)
            published += len(events)
            after = events[-1].key
            if len(events) < PAGE_SIZE:
                break
        return published

    def _report(self, published: int) -> None:
        if published >= PAGE_SIZE * PAGES_PER_PASS_MAX:
            self._loop.wake()
