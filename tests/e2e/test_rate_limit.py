"""Rate limits through the API: per key (per address without one), 429 with
Retry-After in the error envelope, decided before authentication, never a 5xx.

With REDIS_URL set these run on Redis (each test under a key prefix of its
own); without it, on the in-process limiter.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger
from interface.settings import Settings
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error
from tests.support.logs import captured_logs, events_named

BURST = 3
# One request every 100 s once the burst is spent: no test here waits for a
# refill, and on a loaded machine a test's requests may be seconds apart, so a
# faster refill would hand a token back mid-test.
PER_S = 0.01


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The ledger's settings for these tests: a tiny limit, a bucket namespace of their own."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        rate_limit_per_s=PER_S,
        rate_limit_burst=BURST,
        rate_limit_key_prefix=f"test:rate_limit:{uuid.uuid4().hex}:",
    )


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    with TestClient(create_app(ledger=ledger)) as test_client:
        yield test_client


def test_a_key_past_its_burst_gets_429_with_retry_after_and_other_keys_do_not(
    ledger: Ledger, client: TestClient
) -> None:
    _, busy_key = ledger.api_keys.create(Role.SERVICE)
    _, other_key = ledger.api_keys.create(Role.SERVICE)

    answers = [client.get("/metrics", headers=bearer(busy_key)) for _ in range(BURST + 2)]

    assert [answer.status_code for answer in answers] == [200] * BURST + [429, 429]
    refused = answers[BURST]
    body = assert_error(refused, 429, "rate_limited")
    retry_after = int(refused.headers["Retry-After"])
    # A whole token's wait, less what refilled while the burst was spent
    # (seconds, on a loaded machine).
    assert math.ceil(1 / PER_S) - 10 <= retry_after <= math.ceil(1 / PER_S)
    assert body["error"]["details"] == {"retry_after_s": retry_after}
    assert refused.headers["X-Request-ID"]
    assert client.get("/metrics", headers=bearer(other_key)).status_code == 200


def test_callers_without_a_key_are_limited_by_address(client: TestClient) -> None:
    statuses = [client.get(f"/v1/accounts/{uuid.uuid4()}").status_code for _ in range(BURST + 1)]
    assert statuses == [401] * BURST + [429]
    assert client.get("/healthz").status_code == 429


def test_a_flood_with_an_unknown_key_is_throttled_before_any_database_lookup(
    ledger: Ledger, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    authenticate = ledger.api_keys.authenticate

    def counted(raw_key: str) -> object:
        lookups.append(raw_key)
        return authenticate(raw_key)

    monkeypatch.setattr(ledger.api_keys, "authenticate", counted)
    flood_key = f"ldg_{uuid.uuid4().hex}"
    statuses = [
        client.get(f"/v1/accounts/{uuid.uuid4()}", headers=bearer(flood_key)).status_code
        for _ in range(20)
    ]
    assert statuses == [401] * BURST + [429] * (20 - BURST)
    # At most one lookup per request let through (a refused key is cached too).
    assert 1 <= len(lookups) <= BURST


def test_refusals_are_audited_as_denied(ledger: Ledger, client: TestClient) -> None:
    _, key = ledger.api_keys.create(Role.AUDITOR)
    with captured_logs() as output:
        for _ in range(BURST + 1):
            client.get("/metrics", headers=bearer(key))
    (audit,) = events_named(output, "audit")
    assert audit["reason"] == "denied"
    assert audit["action"] == "GET /metrics"
    assert audit["result"] == {"status": 429, "code": "rate_limited"}
    # Decided before authentication: the key is known by its digest, never itself.
    assert audit["actor_key_id"] == "anonymous"
    assert audit["rate_limited_caller"] == f"key:{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    assert key not in output.getvalue()


def test_a_refused_caller_without_a_key_is_not_named_by_address(client: TestClient) -> None:
    with captured_logs() as output:
        for _ in range(BURST + 1):
            client.get("/healthz")
    (audit,) = events_named(output, "audit")
    assert audit["rate_limited_caller"] == "address"
    assert "testclient" not in output.getvalue()


def test_an_unreachable_redis_never_turns_into_a_5xx(ledger: Ledger, settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    _, key = ledger.api_keys.create(Role.SERVICE)
    with (
        captured_logs() as output,
        TestClient(create_app(broken, ledger=ledger)) as client,
    ):
        statuses = [client.get("/metrics", headers=bearer(key)).status_code for _ in range(5)]
    # Served, and still limited: by the in-process fallback.
    assert statuses == [200] * BURST + [429, 429]
    (warning,) = events_named(output, "rate_limiter_redis_unavailable")
    assert warning["level"] == "warning"
