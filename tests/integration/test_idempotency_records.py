"""Idempotency records on real PostgreSQL: claims, answers, and the retention sweep."""

from __future__ import annotations

import hashlib
import uuid

import psycopg
import pytest

from interface.adapters.persistence.api_keys import Role
from interface.adapters.persistence.idempotency_records import (
    SWEEP_BATCH_SIZE_MAX,
    Claim,
    IdempotencyStore,
    Pending,
    StoredResponse,
)
from interface.bootstrap import Ledger

ANSWER = StoredResponse(201, ((b"content-type", b"application/json"),), b'{"id":"1"}')


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.fixture
def store(ledger: Ledger) -> IdempotencyStore:
    return IdempotencyStore(ledger.pool)


@pytest.fixture
def key_id(ledger: Ledger) -> uuid.UUID:
    made, _ = ledger.api_keys.create(Role.SERVICE, label="records")
    return made


def _age(database_url: str, interval: str, keys: list[str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE idempotency_records SET created_at = now() - %s::interval "
            "WHERE idempotency_key = ANY(%s)",
            (interval, keys),
        )


def _keys_left(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT idempotency_key FROM idempotency_records").fetchall()
    return {str(row[0]) for row in rows}


def test_the_first_claim_wins_and_the_next_sees_it_running(
    store: IdempotencyStore, key_id: uuid.UUID
) -> None:
    first = store.claim(key_id, "k", _digest("a"))

    assert isinstance(first, Claim)
    assert store.claim(key_id, "k", _digest("a")) is Pending.IN_PROGRESS
    assert store.claim(key_id, "k", _digest("b")) is Pending.REUSED


def test_a_completed_claim_answers_with_its_stored_response(
    store: IdempotencyStore, key_id: uuid.UUID
) -> None:
    claim = store.claim(key_id, "k", _digest("a"))
    assert isinstance(claim, Claim)

    assert store.complete(claim, ANSWER) is True
    assert store.claim(key_id, "k", _digest("a")) == ANSWER
    assert store.claim(key_id, "k", _digest("b")) is Pending.REUSED


def test_a_released_claim_can_be_claimed_again(store: IdempotencyStore, key_id: uuid.UUID) -> None:
    claim = store.claim(key_id, "k", _digest("a"))
    assert isinstance(claim, Claim)

    store.release(claim)

    assert isinstance(store.claim(key_id, "k", _digest("b")), Claim)


def test_a_claim_taken_over_can_no_longer_store_its_answer(
    store: IdempotencyStore, key_id: uuid.UUID, database_url: str
) -> None:
    lost = store.claim(key_id, "k", _digest("a"))
    assert isinstance(lost, Claim)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE idempotency_records SET claimed_at = now() - interval '1 hour'")
    taken = store.claim(key_id, "k", _digest("a"))
    assert isinstance(taken, Claim)

    assert store.complete(lost, ANSWER) is False
    store.release(lost)
    assert store.claim(key_id, "k", _digest("a")) is Pending.IN_PROGRESS


def test_records_older_than_the_retention_are_deleted_and_newer_ones_kept(
    store: IdempotencyStore, key_id: uuid.UUID, database_url: str
) -> None:
    for key in ("old-done", "old-running", "day-old", "fresh"):
        claim = store.claim(key_id, key, _digest(key))
        assert isinstance(claim, Claim)
        if key != "old-running":
            store.complete(claim, ANSWER)
    _age(database_url, "25 hours", ["old-done", "old-running"])
    _age(database_url, "23 hours", ["day-old"])

    assert store.sweep_if_due() == 2

    assert _keys_left(database_url) == {"day-old", "fresh"}


def test_the_sweep_runs_at_most_once_a_minute_unless_it_found_a_full_batch(
    store: IdempotencyStore, key_id: uuid.UUID, database_url: str
) -> None:
    assert store.sweep_if_due() == 0
    claim = store.claim(key_id, "old", _digest("old"))
    assert isinstance(claim, Claim)
    _age(database_url, "25 hours", ["old"])

    assert store.sweep_if_due() == 0
    assert store.delete_expired() == 1


def test_a_sweep_is_bounded_and_the_next_request_continues_it(
    store: IdempotencyStore, key_id: uuid.UUID, database_url: str
) -> None:
    expired = SWEEP_BATCH_SIZE_MAX + 5
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO idempotency_records (key_id, idempotency_key, request_digest, "
            "claim_token, created_at) SELECT %s, 'k-' || n, %s, gen_random_uuid(), "
            "now() - interval '2 days' FROM generate_series(1, %s) AS n",
            (key_id, _digest("x"), expired),
        )

    assert store.sweep_if_due() == SWEEP_BATCH_SIZE_MAX
    assert store.sweep_if_due() == 5
    assert store.sweep_if_due() == 0
    assert _keys_left(database_url) == set()


def test_deleting_an_api_key_deletes_its_records(
    store: IdempotencyStore, key_id: uuid.UUID, database_url: str
) -> None:
    assert isinstance(store.claim(key_id, "k", _digest("a")), Claim)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DELETE FROM api_keys WHERE key_id = %s", (key_id,))

    assert _keys_left(database_url) == set()
