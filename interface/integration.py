"""Telling other systems what happened: webhooks and the stream, wired once.

The endpoints store (for the API and the CLI), the webhook worker, and the
Redis stream publisher when REDIS_URL is set (docs/events.md). Both workers
run under leases, so any number of `ledger serve` processes may start them.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from application.ports.clock import Clock
from application.writer import LedgerWriter
from interface.adapters.streams.redis_streams import RedisStreamPublisher
from interface.adapters.webhooks.endpoint_store import WebhookEndpointStore
from interface.settings import Settings
from interface.workers.stream_publisher import StreamPublisherWorker
from interface.workers.webhook_delivery import RetryPolicy, WebhookWorker


@dataclass
class Integration:
    webhook_endpoints: WebhookEndpointStore
    webhook_worker: WebhookWorker
    stream_publisher: StreamPublisherWorker | None

    def start(self) -> None:
        self.webhook_worker.start()
        if self.stream_publisher is not None:
            self.stream_publisher.start()

    def stop(self) -> None:
        self.webhook_worker.stop()
        if self.stream_publisher is not None:
            self.stream_publisher.stop()


def build_integration(
    settings: Settings,
    database_url: str,
    pool: ConnectionPool,
    writer: LedgerWriter,
    clock: Clock,
    *,
    start: bool,
) -> Integration:
    """Started when `start` and LEDGER_WEBHOOK_WORKER_IN_PROCESS allow it."""
    webhook_worker = WebhookWorker(
        database_url=database_url,
        writer=writer,
        clock=clock,
        policy=RetryPolicy(
            first_delay_s=settings.webhook_retry_first_delay_s,
            delay_max_s=settings.webhook_retry_delay_max_s,
            window_s=settings.webhook_retry_window_s,
        ),
        timeout_s=settings.webhook_timeout_s,
        allow_private_urls=settings.webhooks_allow_private_urls,
        interval_s=settings.webhook_worker_interval_s,
    )
    stream_publisher = None
    if settings.redis_url:
        stream_publisher = StreamPublisherWorker(
            database_url=database_url,
            publisher=RedisStreamPublisher(
                settings.redis_url, settings.stream_key, settings.stream_length_max
            ),
            # As often as the webhook worker: both follow the same view.
            interval_s=settings.webhook_worker_interval_s,
        )
    integration = Integration(WebhookEndpointStore(pool), webhook_worker, stream_publisher)
    if start and settings.webhook_worker_in_process:
        integration.start()
    return integration
