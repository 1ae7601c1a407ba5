"""Telling other systems what happened: webhooks and the streams, wired once.

The endpoints store (for the API and the CLI), the webhook worker, the
Redis stream publisher when REDIS_URL is set, and the Kafka publisher when
LEDGER_KAFKA_BOOTSTRAP_SERVERS is set (docs/events.md). Every worker runs
under a lease of its own, so any number of processes may start them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from application.ports.clock import Clock
from application.ports.writer import Writer
from interface.adapters.persistence.advisory_locks import (
    KAFKA_PUBLISHER_LOCK_KEY,
    STREAM_PUBLISHER_LOCK_KEY,
)
from interface.adapters.persistence.stream_positions import StreamPositions
from interface.adapters.streams.kafka_topic import KafkaTopicPublisher, kafka_producer
from interface.adapters.streams.redis_streams import RedisStreamPublisher
from interface.adapters.webhooks.endpoint_store import WebhookEndpointStore
from interface.settings import Settings
from interface.workers.stream_publisher import StreamPublisherWorker
from interface.workers.webhook_delivery import RetryPolicy, WebhookWorker

# The Kafka publisher's worker name; with the topic, its row in
# stream_publisher_positions.
KAFKA_PUBLISHER_NAME = "kafka-publisher"


@dataclass
class Integration:
    webhook_endpoints: WebhookEndpointStore
    webhook_worker: WebhookWorker
    stream_publisher: StreamPublisherWorker | None
    kafka_publisher: StreamPublisherWorker | None = field(default=None)

    def _publishers(self) -> list[StreamPublisherWorker]:
        return [p for p in (self.stream_publisher, self.kafka_publisher) if p is not None]

    def start(self) -> None:
        self.webhook_worker.start()
        for publisher in self._publishers():
            publisher.start()

    def stop(self) -> None:
        self.webhook_worker.stop()
        for publisher in self._publishers():
            publisher.stop()


def build_integration(
    settings: Settings,
    database_url: str,
    pool: ConnectionPool,
    writer: Writer,
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
            name="stream-publisher",
            database_url=database_url,
            lock_key=STREAM_PUBLISHER_LOCK_KEY,
            publisher=RedisStreamPublisher(
                settings.redis_url, settings.stream_key, settings.stream_length_max
            ),
            # As often as the webhook worker: both follow the same view.
            interval_s=settings.webhook_worker_interval_s,
        )
    kafka_publisher = None
    if settings.kafka_bootstrap_servers:
        client_settings = settings.kafka_client_settings
        kafka_publisher = StreamPublisherWorker(
            name=KAFKA_PUBLISHER_NAME,
            database_url=database_url,
            lock_key=KAFKA_PUBLISHER_LOCK_KEY,
            publisher=KafkaTopicPublisher(
                kafka_producer(
                    settings.kafka_bootstrap_servers,
                    json.loads(client_settings.get_secret_value()) if client_settings else {},
                ),
                settings.kafka_topic,
                StreamPositions(pool, f"{KAFKA_PUBLISHER_NAME}:{settings.kafka_topic}"),
            ),
            interval_s=settings.webhook_worker_interval_s,
        )
    integration = Integration(
        WebhookEndpointStore(pool), webhook_worker, stream_publisher, kafka_publisher
    )
    if start and settings.webhook_worker_in_process:
        integration.start()
    return integration
