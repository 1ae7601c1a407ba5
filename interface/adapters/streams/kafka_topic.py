"""Integration events to a Kafka topic, behind the optional `kafka` extra.

Each event is one message: the value is the whole document as JSON (as the
events API, webhooks and the Redis stream give it), the headers carry `id`,
`type`, `version`, `position` and `sequence`, and the key is the event's
first account id (its type when it names no account), so with several
partitions one account's events as first account stay in one partition, in
order. A topic of one partition keeps the total order webhooks give.

Kafka has no single "last message" across partitions to resume after, so
the resume point is kept in the database (`stream_publisher_positions`,
migrations/0014): a page is produced, flushed until the broker acknowledges
every message (idempotent producer, `acks=all`), and only then is its last
key recorded. A crash between the two repeats at most that page; consumers
deduplicate by the stable event id (docs/events.md#kafka).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson

from interface.adapters.persistence.stream_positions import StreamPositions
from projections.integration_event_reads import EventKey, IntegrationEvent

# How long a page may wait for the broker's acknowledgements before the pass
# fails (and the next pass produces the page again).
FLUSH_TIMEOUT_S: Final[float] = 30.0
# Settings every producer gets; the operator's client settings come on top
# but cannot turn these off, since the resume point relies on them.
PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
}
REQUIRED_SETTINGS: Final[frozenset[str]] = frozenset({"enable.idempotence", "acks"})


class KafkaPublishFailed(Exception):
    """The broker did not acknowledge a page; nothing after it was recorded."""


class Producer(Protocol):
    """The part of confluent_kafka.Producer the publisher uses."""

    def produce(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes,
        headers: list[tuple[str, str | bytes | None]],
        on_delivery: Callable[[Any, Any], None],
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


def kafka_producer(bootstrap_servers: str, client_settings: Mapping[str, Any]) -> Producer:
    """A confluent_kafka producer (the `kafka` extra): the operator's client
    settings (TLS, SASL...), then the ones the resume point relies on."""
    try:
        from confluent_kafka import Producer as ConfluentProducer
    except ImportError as missing:
        raise RuntimeError(
            "LEDGER_KAFKA_BOOTSTRAP_SERVERS is set but confluent-kafka is not installed: "
            "pip install 'ledger[kafka]'"
        ) from missing
    overridden = REQUIRED_SETTINGS & set(client_settings)
    if overridden:
        raise ValueError(
            f"LEDGER_KAFKA_CLIENT_SETTINGS may not set {', '.join(sorted(overridden))}: "
            "the publisher's resume point relies on them"
        )
    config = {**PRODUCER_DEFAULTS, **client_settings, "bootstrap.servers": bootstrap_servers}
    producer: Producer = ConfluentProducer(config)
    return producer


def message_key(event: IntegrationEvent) -> bytes:
    return str(event.account_ids[0]).encode() if event.account_ids else event.type.encode()


def message_headers(event: IntegrationEvent) -> list[tuple[str, str | bytes | None]]:
    return [
        ("id", str(event.event_id).encode()),
        ("type", event.type.encode()),
        ("version", str(event.version).encode()),
        ("position", str(event.position).encode()),
        ("sequence", str(event.ordinal).encode()),
    ]


class KafkaTopicPublisher:
    def __init__(
        self,
        producer: Producer,
        topic: str,
        positions: StreamPositions,
        *,
        flush_timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._positions = positions
        self._flush_timeout_s = flush_timeout_s

    def last_published(self) -> EventKey:
        return self._positions.last()

    def publish(self, events: Sequence[IntegrationEvent]) -> None:
        """Produce the events in order and wait for every acknowledgement;
        record the last key only when all of them were acknowledged."""
        if not events:
            return
        failures: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        for event in events:
            self._produce(event, delivered)
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining or failures:
            reason = failures[0] if failures else f"{remaining} not acknowledged in time"
            raise KafkaPublishFailed(
                f"Kafka did not acknowledge {len(failures) or remaining} of {len(events)} "
                f"events on {self.topic!r} ({reason}); the page will be produced again"
            )
        self._positions.record(events[-1].key)

    def _produce(self, event: IntegrationEvent, delivered: Callable[[Any, Any], None]) -> None:
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=orjson.dumps(event.document()),
                    key=message_key(event),
                    headers=message_headers(event),
                    on_delivery=delivered,
                )
                return
            except BufferError:
                # The producer's local queue is full: let it send, then retry.
                self._producer.poll(1.0)

    def close(self) -> None:
        self._producer.flush(self._flush_timeout_s)
        self._positions.close()
