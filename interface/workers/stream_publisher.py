"""The stream publisher: integration events copied to a Redis stream.

A leased loop (one process at a time, interface/workers/leased_worker.py):
each pass asks the stream for its last id and adds the events after it from
the integration events view, a page at a time
(interface/adapters/streams/redis_streams.py). The stream itself is the
resume point, so nothing is kept here and a crash repeats nothing. A Redis
that is down fails the pass; the next pass starts where the stream ends.
"""

from __future__ import annotations

import threading
from typing import Final

import structlog

from interface.adapters.persistence.advisory_locks import STREAM_PUBLISHER_LOCK_KEY
from interface.adapters.streams.redis_streams import RedisStreamPublisher
from interface.workers.leased_worker import Connection, LeasedLoop, OnLeasedLoop
from projections.integration_event_reads import EventFilter, integration_event_page

log = structlog.get_logger(__name__)

PAGE_SIZE: Final[int] = 1_000
# Pages one pass publishes at most before it lets the lease go.
PAGES_PER_PASS_MAX: Final[int] = 50


class StreamPublisherWorker(OnLeasedLoop[int]):
    def __init__(
        self, *, database_url: str, publisher: RedisStreamPublisher, interval_s: float
    ) -> None:
        self._publisher = publisher
        self._loop = LeasedLoop(
            name="stream-publisher",
            database_url=database_url,
            lock_key=STREAM_PUBLISHER_LOCK_KEY,
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
