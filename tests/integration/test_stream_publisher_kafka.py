"""The Kafka publisher: every integration event produced once, in order, with
the ledger position as the resume point kept in the database.

A producer that stands in for the broker (it implements the publisher's
Producer port: produce, poll, flush) checks what is sent and what happens
when the broker does not acknowledge; the real confluent-kafka client is
checked against a broker that is not there (a page fails, the resume point
stays); and with LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS set, against a real
broker.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from application.clock import SettableClock
from interface.adapters.persistence.advisory_locks import KAFKA_PUBLISHER_LOCK_KEY
from interface.adapters.persistence.stream_positions import StreamPositions
from interface.adapters.streams.kafka_topic import (
    KafkaPublishFailed,
    KafkaTopicPublisher,
    kafka_producer,
)
from interface.bootstrap import Ledger, build_ledger
from interface.integration import KAFKA_PUBLISHER_NAME
from interface.settings import Settings
from interface.workers.stream_publisher import StreamPublisherWorker
from projections.integration_event_reads import START, EventFilter, integration_event_page
from projections.integration_events import NAME
from tests.support.ledgers import platform_account, transfer, user_account

WAIT_S = 10.0
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS")


@dataclass
class Message:
    topic: str
    value: bytes
    key: bytes
    headers: dict[str, bytes]


@dataclass
class BrokerStandIn:
    """Acknowledges what it is sent on flush, or fails the next `failing` messages."""

    sent: list[Message] = field(default_factory=list)
    failing: int = 0
    _waiting: list[tuple[Message, Callable[[Any, Any], None]]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes,
        headers: list[tuple[str, str | bytes | None]],
        on_delivery: Callable[[Any, Any], None],
    ) -> None:
        plain = {name: content for name, content in headers if isinstance(content, bytes)}
        self._waiting.append((Message(topic, value, key, plain), on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for message, on_delivery in self._waiting:
            if self.failing:
                self.failing -= 1
                on_delivery("Broker: not enough in-sync replicas", message)
            else:
                self.sent.append(message)
                on_delivery(None, message)
        self._waiting.clear()
        return 0


@pytest.fixture
def ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    running = build_ledger(settings, clock=clock)
    try:
        yield running
    finally:
        running.close()


def _caught_up(ledger: Ledger) -> None:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [NAME], WAIT_S)


def _worker(ledger: Ledger, publisher: KafkaTopicPublisher) -> StreamPublisherWorker:
    _caught_up(ledger)
    return StreamPublisherWorker(
        name=KAFKA_PUBLISHER_NAME,
        database_url=ledger.database_url,
        publisher=publisher,
        lock_key=KAFKA_PUBLISHER_LOCK_KEY,
        interval_s=60.0,
    )


def _write_some(ledger: Ledger) -> None:
    cash, alice = platform_account(), user_account(owner_id="alice")
    ledger.service.execute([cash, alice])
    for amount in (500, 700, 900):
        ledger.service.execute([transfer(cash.account_id, alice.account_id, amount)])


def _stored_documents(ledger: Ledger) -> list[dict[str, Any]]:
    _caught_up(ledger)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        stored = integration_event_page(cursor, EventFilter(), START, 1_000)
    return [json.loads(json.dumps(event.document())) for event in stored]


def test_every_event_is_produced_once_in_order_with_its_key_and_headers(ledger: Ledger) -> None:
    _write_some(ledger)
    broker = BrokerStandIn()
    positions = StreamPositions(ledger.pool, f"test:{uuid.uuid4()}")
    worker = _worker(ledger, KafkaTopicPublisher(broker, "ledger.events", positions))

    assert worker.run_once() == 5
    assert worker.run_once() == 0

    documents = _stored_documents(ledger)
    assert [json.loads(message.value) for message in broker.sent] == documents
    assert {message.topic for message in broker.sent} == {"ledger.events"}
    for message, document in zip(broker.sent, documents, strict=True):
        assert message.headers["id"].decode() == document["id"]
        assert message.headers["type"].decode() == document["type"]
        assert int(message.headers["position"]) == document["position"]
        assert int(message.headers["sequence"]) == document["sequence"]
        assert message.key.decode() == document["account_ids"][0]
    last = documents[-1]
    assert positions.last() == (last["position"], last["sequence"])


def test_a_page_the_broker_refuses_is_produced_again_and_nothing_is_skipped(
    ledger: Ledger,
) -> None:
    _write_some(ledger)
    broker = BrokerStandIn(failing=1)
    positions = StreamPositions(ledger.pool, f"test:{uuid.uuid4()}")
    publisher = KafkaTopicPublisher(broker, "ledger.events", positions)
    documents = _stored_documents(ledger)

    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        events = integration_event_page(cursor, EventFilter(), START, 1_000)
    assert len(events) == 5
    with pytest.raises(KafkaPublishFailed, match="not enough in-sync replicas"):
        publisher.publish(events)
    # The four acknowledged were kept by the broker, but the point did not move.
    assert positions.last() == START
    assert _worker(ledger, publisher).run_once() == 5

    ids = [message.headers["id"].decode() for message in broker.sent]
    # Repeated at most the refused page, with the same ids: consumers deduplicate.
    assert sorted(set(ids)) == sorted(document["id"] for document in documents)
    assert ids[-5:] == [document["id"] for document in documents]


def test_the_resume_point_never_moves_back(ledger: Ledger) -> None:
    positions = StreamPositions(ledger.pool, f"test:{uuid.uuid4()}")
    positions.record(START._replace(position=9, ordinal=2))
    positions.record(START._replace(position=7, ordinal=0))
    assert positions.last() == (9, 2)
    positions.record(START._replace(position=9, ordinal=3))
    assert positions.last() == (9, 3)


def test_the_real_client_fails_a_page_when_no_broker_answers(ledger: Ledger) -> None:
    _write_some(ledger)
    # Port 9 (discard) on loopback: nothing speaks Kafka there.
    producer = kafka_producer("127.0.0.1:9", {"message.timeout.ms": 1_000})
    positions = StreamPositions(ledger.pool, f"test:{uuid.uuid4()}")
    publisher = KafkaTopicPublisher(producer, "ledger.events", positions, flush_timeout_s=10.0)
    _caught_up(ledger)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        events = integration_event_page(cursor, EventFilter(), START, 1_000)

    with pytest.raises(KafkaPublishFailed, match="did not acknowledge 5 of 5"):
        publisher.publish(events)
    assert positions.last() == START


def test_client_settings_that_would_break_the_resume_point_are_refused() -> None:
    with pytest.raises(ValueError, match=r"may not set acks, enable\.idempotence"):
        kafka_producer("127.0.0.1:9", {"acks": "1", "enable.idempotence": False})


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"a": {"nested": 1}}'])
def test_client_settings_must_be_a_json_object_of_plain_values(text: str) -> None:
    with pytest.raises(ValidationError, match="LEDGER_KAFKA_CLIENT_SETTINGS must be a JSON"):
        Settings(kafka_client_settings=SecretStr(text))


@pytest.mark.skipif(
    KAFKA_BOOTSTRAP_SERVERS is None, reason="LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS is not set"
)
def test_a_real_broker_receives_every_event_once(settings: Settings, clock: SettableClock) -> None:
    from confluent_kafka import Consumer

    topic = f"ledger-test-{uuid.uuid4()}"
    running = build_ledger(
        settings.model_copy(
            update={"kafka_bootstrap_servers": KAFKA_BOOTSTRAP_SERVERS, "kafka_topic": topic}
        ),
        clock=clock,
    )
    try:
        _write_some(running)
        worker = running.integration.kafka_publisher
        assert worker is not None
        assert running.projections is not None
        assert running.projections.wait_for(running.writer.last_position, [NAME], WAIT_S)
        assert worker.run_once() == 5
        documents = _stored_documents(running)
    finally:
        running.close()
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA_BOOTSTRAP_SERVERS,
            "group.id": topic,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received: list[dict[str, Any]] = []
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            value = None if message is None or message.error() else message.value()
            if value is not None:
                received.append(json.loads(value))
            if len(received) == len(documents):
                break
    finally:
        consumer.close()
    assert sorted(received, key=lambda d: (d["position"], d["sequence"])) == documents
