"""The Idempotency-Key header, end to end on real PostgreSQL: a retried POST
gets the first response again, byte for byte, and never a second effect."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from application.writer import WriterOverloaded
from interface.adapters.persistence.api_keys import Role
from interface.adapters.persistence.idempotency_records import Claim, IdempotencyStore
from interface.api.app import create_app
from interface.api.middleware import idempotency
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import (
    assert_error,
    balances,
    open_account,
    post_transfer,
    transfer_body,
)
from tests.support.service_process import ServiceProcess

REPLAYED = "Idempotent-Replayed"


def _key() -> str:
    return f"idem-{uuid.uuid4()}"


def _with_key(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def _account_body(owner_id: str = "owner-idem") -> dict[str, Any]:
    # No body idempotency_key: without the header, every POST opens a new account.
    return {"currency": "USD", "owner_id": owner_id}


def _accounts_of(client: httpx.Client, owner_id: str) -> list[str]:
    response = client.get("/v1/accounts", params={"owner_id": owner_id})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _records(database_url: str, key: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM idempotency_records WHERE idempotency_key = %s", (key,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def funded(client: TestClient) -> dict[str, str]:
    """A cash account, a flagged payer holding 100.00 and a flagged payee."""
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    payer = open_account(client, flagged=True)["id"]
    payee = open_account(client, flagged=True)["id"]
    post_transfer(client, transfer_body(cash, payer, "100.00"))
    return {"cash": cash, "payer": payer, "payee": payee}


@pytest.fixture
def unguarded_client(ledger: Ledger) -> Iterator[TestClient]:
    """A client that gets the 500 a server error makes, as a real client would."""
    _, service_key = ledger.api_keys.create(Role.SERVICE, label="e2e-500")
    with TestClient(
        create_app(ledger=ledger), headers=bearer(service_key), raise_server_exceptions=False
    ) as test_client:
        yield test_client


def test_a_retry_with_the_same_key_and_body_gets_the_first_response_and_no_second_account(
    client: TestClient,
) -> None:
    key = _key()
    first = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    again = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))

    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers[REPLAYED] == "true"
    assert _accounts_of(client, "owner-idem") == [first.json()["id"]]


def test_a_retried_transfer_is_replayed_as_made_not_as_found(
    client: TestClient, funded: dict[str, str]
) -> None:
    key = _key()
    body = transfer_body(funded["payer"], funded["payee"], "10.00")
    first = client.post("/v1/transfers", json=body, headers=_with_key(key))
    again = client.post("/v1/transfers", json=body, headers=_with_key(key))

    assert first.status_code == 201, first.text
    # Without the header the ledger would answer 200 `exists`; the header replays the 201.
    assert (again.status_code, again.content, again.headers[REPLAYED]) == (
        201,
        first.content,
        "true",
    )
    assert balances(client, funded["payee"])["credits_posted"] == "10.00"


def test_requests_without_the_header_are_not_deduplicated(client: TestClient) -> None:
    first = client.post("/v1/accounts", json=_account_body("owner-plain"))
    second = client.post("/v1/accounts", json=_account_body("owner-plain"))

    assert (first.status_code, second.status_code) == (201, 201)
    assert REPLAYED not in second.headers
    assert len(_accounts_of(client, "owner-plain")) == 2


def test_the_same_key_with_another_body_is_refused_and_nothing_is_written(
    client: TestClient, funded: dict[str, str]
) -> None:
    key = _key()
    first = client.post(
        "/v1/transfers",
        json=transfer_body(funded["payer"], funded["payee"], "10.00"),
        headers=_with_key(key),
    )
    assert first.status_code == 201, first.text

    other_amount = client.post(
        "/v1/transfers",
        json=transfer_body(funded["payer"], funded["payee"], "20.00"),
        headers=_with_key(key),
    )
    other_route = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))

    assert_error(other_amount, 422, "idempotency_key_reused")
    assert_error(other_route, 422, "idempotency_key_reused")
    assert balances(client, funded["payee"])["credits_posted"] == "10.00"
    assert _accounts_of(client, "owner-idem") == []


def test_two_api_keys_sending_the_same_header_value_do_not_collide(
    client: TestClient, ledger: Ledger
) -> None:
    _, other_key = ledger.api_keys.create(Role.SERVICE, label="other-client")
    key = "order-42"
    mine = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    theirs = client.post(
        "/v1/accounts", json=_account_body(), headers={**_with_key(key), **bearer(other_key)}
    )

    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
    assert REPLAYED not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert len(_accounts_of(client, "owner-idem")) == 2


def test_a_refusal_is_replayed_identically_even_after_the_state_changed(
    client: TestClient, funded: dict[str, str]
) -> None:
    key = _key()
    body = transfer_body(funded["payee"], funded["payer"], "5.00")
    refused = client.post("/v1/transfers", json=body, headers=_with_key(key))
    assert_error(refused, 409, "insufficient_funds")

    post_transfer(client, transfer_body(funded["cash"], funded["payee"], "50.00"))
    again = client.post("/v1/transfers", json=body, headers=_with_key(key))

    assert (again.status_code, again.content, again.headers[REPLAYED]) == (
        409,
        refused.content,
        "true",
    )
    assert balances(client, funded["payee"])["debits_posted"] == "0.00"


@pytest.mark.parametrize(
    "value",
    [b"", b"k" * 256, "naïve".encode(), b"tab\there", b"bell\x07"],
    ids=["empty", "too-long", "not-ascii", "tab", "control"],
)
def test_a_malformed_key_is_refused_before_anything_runs(client: TestClient, value: bytes) -> None:
    response = client.post(
        "/v1/accounts", json=_account_body("owner-malformed"), headers={"Idempotency-Key": value}
    )

    assert_error(response, 422, "invalid_idempotency_key")
    assert _accounts_of(client, "owner-malformed") == []


def test_a_key_sent_twice_in_one_request_is_refused(client: TestClient) -> None:
    response = client.post(
        "/v1/accounts",
        json=_account_body("owner-twice"),
        headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    )

    assert_error(response, 422, "invalid_idempotency_key")
    assert _accounts_of(client, "owner-twice") == []


def test_the_longest_allowed_key_with_spaces_and_punctuation_is_accepted(
    client: TestClient,
) -> None:
    key = ("order 42/retry~" * 20)[:255]
    first = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    again = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))

    assert first.status_code == 201, first.text
    assert (again.content, again.headers[REPLAYED]) == (first.content, "true")


def test_a_body_over_the_limit_is_refused_before_anything_runs(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "REQUEST_BODY_SIZE_MAX", 16)
    response = client.post(
        "/v1/accounts", json=_account_body("owner-large"), headers=_with_key(_key())
    )

    assert_error(response, 413, "request_too_large")
    assert _accounts_of(client, "owner-large") == []


def test_a_503_is_not_stored_so_the_retry_runs(
    client: TestClient, ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _key()
    execute = ledger.service.execute

    def overloaded(*_: Any) -> Any:
        raise WriterOverloaded("the queue is full")

    monkeypatch.setattr(ledger.service, "execute", overloaded)
    busy = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    assert_error(busy, 503, "overloaded")
    assert _records(database_url, key) == 0

    monkeypatch.setattr(ledger.service, "execute", execute)
    retried = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    assert retried.status_code == 201, retried.text
    assert REPLAYED not in retried.headers


def test_an_unexpected_error_releases_the_key_so_the_retry_runs(
    unguarded_client: TestClient, ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _key()
    execute = ledger.service.execute

    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ledger.service, "execute", broken)
    failed = unguarded_client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    assert failed.status_code == 500
    assert _records(database_url, key) == 0

    monkeypatch.setattr(ledger.service, "execute", execute)
    retried = unguarded_client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    assert retried.status_code == 201, retried.text


def test_a_request_meeting_a_running_claim_waits_then_answers_409(
    client: TestClient, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "WAIT_TIMEOUT_S", 0.3)
    key = _key()
    running = _claim_as_if_running(client, ledger, key, _account_body())

    response = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))

    assert_error(response, 409, "idempotency_key_in_progress")
    assert response.headers["retry-after"] == "1"
    assert _accounts_of(client, "owner-idem") == []
    IdempotencyStore(ledger.pool).release(running)


def test_a_claim_left_by_a_dead_process_is_taken_over_after_its_lease(
    client: TestClient, ledger: Ledger, database_url: str
) -> None:
    key = _key()
    _claim_as_if_running(client, ledger, key, _account_body())
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE idempotency_records SET claimed_at = now() - interval '10 minutes' "
            "WHERE idempotency_key = %s",
            (key,),
        )

    response = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))

    assert response.status_code == 201, response.text
    assert len(_accounts_of(client, "owner-idem")) == 1


def test_a_key_past_its_retention_starts_afresh(client: TestClient, database_url: str) -> None:
    key = _key()
    first = client.post("/v1/accounts", json=_account_body(), headers=_with_key(key))
    assert first.status_code == 201, first.text
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE idempotency_records SET created_at = now() - interval '25 hours' "
            "WHERE idempotency_key = %s",
            (key,),
        )

    other = client.post("/v1/accounts", json=_account_body("owner-later"), headers=_with_key(key))

    assert other.status_code == 201, other.text
    assert REPLAYED not in other.headers


def _claim_as_if_running(
    client: TestClient, ledger: Ledger, key: str, body: dict[str, Any]
) -> Claim:
    """Claim the key the way a request with this body would, without running it."""
    principal = ledger.api_keys.authenticate(
        client.headers["authorization"].removeprefix("Bearer ")
    )
    assert principal is not None
    request = client.build_request("POST", "/v1/accounts", json=body)
    scope = {"method": "POST", "path": "/v1/accounts", "query_string": b""}
    claim = IdempotencyStore(ledger.pool).claim(
        principal.key_id, key, idempotency.request_digest(scope, request.read())
    )
    assert isinstance(claim, Claim)
    return claim


# Concurrency, against the real service ---------------------------------------

CLIENTS = 50


def _fifty_at_once(
    service: ServiceProcess, path: str, body: dict[str, Any], key: str
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    start = threading.Barrier(CLIENTS)
    with httpx.Client(
        base_url=service.base_url, headers=service.headers, timeout=60.0, limits=limits
    ) as client:

        def send(_: int) -> httpx.Response:
            start.wait(timeout=60)
            return client.post(path, json=body, headers=_with_key(key))

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            return list(pool.map(send, range(CLIENTS)))


def _assert_one_answer_fifty_times(responses: list[httpx.Response], status: int) -> None:
    assert [response.status_code for response in responses] == [status] * CLIENTS, [
        response.text for response in responses if response.status_code != status
    ]
    assert {response.content for response in responses} == {responses[0].content}
    replayed = [response.headers.get(REPLAYED) for response in responses]
    assert replayed.count(None) == 1, replayed
    assert replayed.count("true") == CLIENTS - 1, replayed


@pytest.mark.timeout(180)
def test_fifty_identical_transfers_at_once_make_one_transfer_and_fifty_identical_answers(
    service: ServiceProcess, database_url: str
) -> None:
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=60.0) as client:
        cash = open_account(client, kind="cash", owner_id="platform")["id"]
        payer = open_account(client, flagged=True)["id"]
        payee = open_account(client, flagged=True)["id"]
        post_transfer(client, transfer_body(cash, payer, "100.00"))
        key = _key()

        responses = _fifty_at_once(
            service, "/v1/transfers", transfer_body(payer, payee, "7.00"), key
        )

        _assert_one_answer_fifty_times(responses, 201)
        assert balances(client, payer)["debits_posted"] == "7.00"
        assert balances(client, payee)["credits_posted"] == "7.00"
    assert _records(database_url, key) == 1


@pytest.mark.timeout(180)
def test_fifty_identical_account_openings_at_once_open_exactly_one_account(
    service: ServiceProcess,
) -> None:
    """Opening an account without a body key has no idempotency of its own:
    only the header stands between fifty requests and fifty accounts."""
    responses = _fifty_at_once(service, "/v1/accounts", _account_body("owner-fifty"), _key())

    _assert_one_answer_fifty_times(responses, 201)
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=60.0) as client:
        assert _accounts_of(client, "owner-fifty") == [responses[0].json()["id"]]


def test_the_served_schema_documents_the_header_and_the_replay_marker(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    create = document["paths"]["/v1/transfers"]["post"]
    assert idempotency.HEADER_NAME in [parameter["name"] for parameter in create["parameters"]]
    assert idempotency.REPLAYED_HEADER_NAME in create["responses"]["201"]["headers"]
    # Reads take no key.
    read = document["paths"]["/v1/accounts/{account_id}"]["get"]
    assert idempotency.HEADER_NAME not in [p["name"] for p in read.get("parameters", [])]
