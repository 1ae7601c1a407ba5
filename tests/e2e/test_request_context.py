"""Request ids: accepted or made, returned on every answer, bound to every log line."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.api.middleware.request_context import RequestContextMiddleware
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error
from tests.support.logs import captured_logs, events_named

log = structlog.get_logger("tests.request_context")


@pytest.fixture
def app(ledger: Ledger) -> FastAPI:
    """The real app, with two routes of the test's own: one logs, one fails."""
    application = create_app(ledger=ledger)

    def logs_inside() -> dict[str, str]:
        # A plain def route runs in a worker thread, like the ledger's routes.
        log.info("inside_the_route")
        structlog.contextvars.bind_contextvars(left_behind="by the last request")
        return {"status": "ok"}

    def fails() -> None:
        raise RuntimeError("a bug")

    application.add_api_route("/test/logs-inside", logs_inside)
    application.add_api_route("/test/fails", fails)
    return application


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_request_without_an_id_is_given_a_new_one(anonymous: TestClient) -> None:
    first = anonymous.get("/healthz").headers["X-Request-ID"]
    second = anonymous.get("/healthz").headers["X-Request-ID"]
    assert uuid.UUID(first) and uuid.UUID(second)
    assert first != second


@pytest.mark.parametrize(
    "request_id", ["abc", "req-2026.01_01", "A" * 128, "0f6c1c9e-5d1b-4a57-9a55-2f0c4f0f5c0e"]
)
def test_a_well_formed_client_request_id_is_returned_as_sent(
    anonymous: TestClient, request_id: str
) -> None:
    response = anonymous.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    "request_id", ["", "A" * 129, "has space", "semi;colon", 'quote"d', "{json}", "é"]
)
def test_a_malformed_client_request_id_is_replaced_by_a_new_one(
    anonymous: TestClient, request_id: str
) -> None:
    response = anonymous.get("/healthz", headers={"X-Request-ID": request_id.encode()})
    returned = response.headers["X-Request-ID"]
    assert returned != request_id
    assert uuid.UUID(returned)


def test_every_error_answer_carries_the_request_id(ledger: Ledger, anonymous: TestClient) -> None:
    _, user_key = ledger.api_keys.create(Role.USER, owner_id="owner-1")
    answers = {
        401: anonymous.get(f"/v1/accounts/{uuid.uuid4()}", headers={"X-Request-ID": "r-401"}),
        403: anonymous.post(
            "/v1/transfers/batch",
            json={"transfers": []},
            headers={**bearer(user_key), "X-Request-ID": "r-403"},
        ),
        404: anonymous.get("/no-such-route", headers={"X-Request-ID": "r-404"}),
        422: anonymous.post(
            "/v1/transfers",
            json={"amount": 1},
            headers={**bearer(user_key), "X-Request-ID": "r-422"},
        ),
        500: anonymous.get("/test/fails", headers={"X-Request-ID": "r-500"}),
    }
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        assert response.headers["X-Request-ID"] == f"r-{status}"
    body = assert_error(answers[500], 500, "internal_error")
    assert body["error"]["details"] == {"request_id": "r-500"}
    assert "a bug" not in answers[500].text


def test_every_log_line_of_a_request_carries_its_id(anonymous: TestClient) -> None:
    with captured_logs() as output:
        anonymous.get("/test/logs-inside", headers={"X-Request-ID": "first-request"})
        anonymous.get("/healthz", headers={"X-Request-ID": "second-request"})

    (inside,) = events_named(output, "inside_the_route")
    assert inside["request_id"] == "first-request"
    first, second = events_named(output, "http_request")
    assert first["request_id"] == "first-request"
    assert first["route"] == "/test/logs-inside"
    assert second["request_id"] == "second-request"


def test_nothing_bound_by_one_request_reaches_the_next_one_in_the_same_task() -> None:
    """A server may run several requests in one task (HTTP/1.1 keep-alive):
    the context is cleared at the start of each."""
    seen_by_the_second: list[dict[str, object]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/first":
            structlog.contextvars.bind_contextvars(left_behind="by the first request")
        else:
            seen_by_the_second.append(structlog.contextvars.get_contextvars())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = RequestContextMiddleware(app)

    async def two_requests_in_one_task() -> None:
        for path in ("/first", "/second"):
            scope = {
                "type": "http",
                "method": "GET",
                "path": path,
                "headers": [(b"x-request-id", path[1:].encode())],
            }
            await middleware(scope, _no_body, _discard)

    with captured_logs() as output:
        asyncio.run(two_requests_in_one_task())
    assert seen_by_the_second == [{"request_id": "second"}]
    first, second = events_named(output, "http_request")
    assert first["left_behind"] == "by the first request"
    assert "left_behind" not in second
    assert (second["request_id"], second["route"], second["status"]) == ("second", "unmatched", 204)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(_: Message) -> None:
    return None


def test_the_request_id_of_a_failed_request_is_on_its_error_log_line(
    anonymous: TestClient,
) -> None:
    with captured_logs() as output:
        anonymous.get("/test/fails", headers={"X-Request-ID": "failing-request"})

    (error,) = events_named(output, "unhandled_error")
    assert error["request_id"] == "failing-request"
    (access,) = events_named(output, "http_request")
    assert access["status"] == 500
    assert access["request_id"] == "failing-request"
