"""The writer's fast path of the Idempotency-Key header, on real PostgreSQL:
on `POST /v1/transfers` whose header equals the body's `idempotency_key`, no
request owns the key and no response is stored after a 201; the writer's own
record of the transfer answers a retry. Every promise of the header holds
(docs/api.md#idempotency)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from interface.adapters.persistence.idempotency_records import (
    WRITER_ANSWERS_TOKEN,
    IdempotencyStore,
)
from tests.support.http_api import (
    assert_error,
    balances,
    open_account,
    post_transfer,
    transfer_body,
)
from tests.support.service_process import ServiceProcess

REPLAYED: Final[str] = "Idempotent-Replayed"
CLIENTS: Final[int] = 20


def _key() -> str:
    return f"fast-{uuid.uuid4()}"


def _with_key(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def _record(database_url: str, key: str) -> tuple[Any, ...] | None:
    """The record of a header value: its claim token and stored status."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT claim_token, response_status FROM idempotency_records "
            "WHERE idempotency_key = %s",
            (key,),
        ).fetchone()


@pytest.fixture
def funded(client: TestClient) -> dict[str, str]:
    """A cash account, a flagged payer holding 100.00 and a flagged payee."""
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    payer = open_account(client, flagged=True)["id"]
    payee = open_account(client, flagged=True)["id"]
    post_transfer(client, transfer_body(cash, payer, "100.00"))
    return {"cash": cash, "payer": payer, "payee": payee}


@pytest.fixture
def store_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The idempotency store's operations, in the order the requests ran them."""
    calls: list[str] = []
    for name in ("mark", "settle_marked", "unmark", "claim", "complete", "release"):
        original = getattr(IdempotencyStore, name)

        def recorded(self: IdempotencyStore, *args: Any, _n: str = name, _o: Any = original) -> Any:
            calls.append(_n)
            return _o(self, *args)

        monkeypatch.setattr(IdempotencyStore, name, recorded)
    return calls


def test_a_header_and_body_keyed_retry_is_replayed_and_no_response_is_stored(
    client: TestClient, funded: dict[str, str], database_url: str, store_calls: list[str]
) -> None:
    key = _key()
    body = transfer_body(funded["payer"], funded["payee"], "10.00", key=key)

    first = client.post("/v1/transfers", json=body, headers=_with_key(key))
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    # One statement for the key, before the request ran; none after it.
    assert store_calls == ["mark"]
    # No claim (no request owns it) and no stored response: the writer answers.
    assert _record(database_url, key) == (WRITER_ANSWERS_TOKEN, None)

    again = client.post("/v1/transfers", json=body, headers=_with_key(key))
    assert again.status_code == 201, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert store_calls == ["mark", "mark"]
    assert _record(database_url, key) == (WRITER_ANSWERS_TOKEN, None)
    assert balances(client, funded["payee"])["credits_posted"] == "10.00"


def test_the_same_key_with_another_body_is_refused_whichever_path_came_first(
    client: TestClient, funded: dict[str, str]
) -> None:
    payer, payee = funded["payer"], funded["payee"]
    # Fast path first: the writer refuses the body key with other details, and
    # the header value, sent with another body key, is found used.
    key = _key()
    made = client.post(
        "/v1/transfers",
        json=transfer_body(payer, payee, "10.00", key=key),
        headers=_with_key(key),
    )
    assert made.status_code == 201, made.text
    other_amount = client.post(
        "/v1/transfers",
        json=transfer_body(payer, payee, "20.00", key=key),
        headers=_with_key(key),
    )
    assert_error(other_amount, 422, "idempotency_key_reused")
    other_body_key = client.post(
        "/v1/transfers", json=transfer_body(payer, payee, "20.00"), headers=_with_key(key)
    )
    assert_error(other_body_key, 422, "idempotency_key_reused")
    # Asked again, the same: the record holds the first request's digest.
    again = client.post(
        "/v1/transfers",
        json=transfer_body(payer, payee, "20.00", key=key),
        headers=_with_key(key),
    )
    assert_error(again, 422, "idempotency_key_reused")

    # The claiming path first (header and body keys differ), then the fast path.
    header = _key()
    claimed = client.post(
        "/v1/transfers", json=transfer_body(payer, payee, "1.00"), headers=_with_key(header)
    )
    assert claimed.status_code == 201, claimed.text
    fast = client.post(
        "/v1/transfers",
        json=transfer_body(payer, payee, "1.00", key=header),
        headers=_with_key(header),
    )
    assert_error(fast, 422, "idempotency_key_reused")

    assert balances(client, payee)["credits_posted"] == "11.00"


def test_a_refusal_on_the_fast_path_is_kept_and_replayed_after_the_state_changed(
    client: TestClient, funded: dict[str, str], database_url: str
) -> None:
    key = _key()
    body = transfer_body(funded["payee"], funded["payer"], "5.00", key=key)
    refused = client.post("/v1/transfers", json=body, headers=_with_key(key))
    assert_error(refused, 409, "insufficient_funds")
    assert _record(database_url, key) == (WRITER_ANSWERS_TOKEN, 409)

    post_transfer(client, transfer_body(funded["cash"], funded["payee"], "50.00"))
    again = client.post("/v1/transfers", json=body, headers=_with_key(key))

    assert (again.status_code, again.content, again.headers[REPLAYED]) == (
        409,
        refused.content,
        "true",
    )
    assert balances(client, funded["payer"])["credits_posted"] == "100.00"


def test_a_transfer_made_without_the_header_is_answered_as_made_and_replayed(
    client: TestClient, funded: dict[str, str], database_url: str
) -> None:
    key = _key()
    body = transfer_body(funded["payer"], funded["payee"], "3.00", key=key)
    plain = client.post("/v1/transfers", json=body)
    assert plain.status_code == 201, plain.text

    keyed = client.post("/v1/transfers", json=body, headers=_with_key(key))

    assert (keyed.status_code, keyed.headers[REPLAYED]) == (201, "true")
    assert keyed.json()["id"] == plain.json()["id"]
    assert _record(database_url, key) == (WRITER_ANSWERS_TOKEN, None)


def test_a_server_error_forgets_the_record_so_the_retry_runs_as_the_first(
    client: TestClient,
    funded: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from application.ledger_use_cases import LedgerService
    from application.writer import WriterOverloaded

    key = _key()
    body = transfer_body(funded["payer"], funded["payee"], "4.00", key=key)

    async def overloaded(self: LedgerService, commands: Any) -> Any:
        raise WriterOverloaded("the writer's queue is full; retry shortly")

    with monkeypatch.context() as patched:
        patched.setattr(LedgerService, "execute_async", overloaded)
        busy = client.post("/v1/transfers", json=body, headers=_with_key(key))
    assert busy.status_code == 503, busy.text
    assert _record(database_url, key) is None

    made = client.post("/v1/transfers", json=body, headers=_with_key(key))
    assert made.status_code == 201, made.text
    assert REPLAYED not in made.headers


@pytest.mark.timeout(180)
def test_identical_requests_at_once_apply_once_and_all_answer_the_transfer_made(
    service: ServiceProcess, database_url: str
) -> None:
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=60.0) as client:
        cash = open_account(client, kind="cash", owner_id="platform")["id"]
        payer = open_account(client, flagged=True)["id"]
        payee = open_account(client, flagged=True)["id"]
        post_transfer(client, transfer_body(cash, payer, "100.00"))
        key = _key()
        body = transfer_body(payer, payee, "7.00", key=key)
        start = threading.Barrier(CLIENTS)
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        with httpx.Client(
            base_url=service.base_url, headers=service.headers, timeout=60.0, limits=limits
        ) as concurrent:

            def send(_: int) -> httpx.Response:
                start.wait(timeout=60)
                return concurrent.post("/v1/transfers", json=body, headers=_with_key(key))

            with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
                responses = list(pool.map(send, range(CLIENTS)))

        assert [response.status_code for response in responses] == [201] * CLIENTS, [
            response.text for response in responses if response.status_code != 201
        ]
        assert len({response.json()["id"] for response in responses}) == 1
        replayed = [response.headers.get(REPLAYED) for response in responses]
        # Exactly one made it; every other copy was answered as a replay of it.
        assert replayed.count(None) == 1, replayed
        assert balances(client, payer)["debits_posted"] == "7.00"
        assert balances(client, payee)["credits_posted"] == "7.00"
    assert _record(database_url, key) == (WRITER_ANSWERS_TOKEN, None)
