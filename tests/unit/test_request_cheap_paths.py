"""The shortcuts a request takes when it has nothing to check: they answer as the long way does.

No database: a bare app with the middleware or dependency under test, driven
in process (the end-to-end tests cover them inside the service).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from interface.api.errors import install_error_handlers
from interface.api.middleware.body_size_limit import BodySizeLimitMiddleware
from interface.api.middleware.request_context import new_request_id
from interface.api.request_checks import check_request

# Enough ids to meet every value of the random digits around the fixed ones.
REQUEST_IDS_CHECKED = 2_000


def test_a_new_request_id_is_a_version_4_uuid_in_its_usual_form() -> None:
    ids = [new_request_id() for _ in range(REQUEST_IDS_CHECKED)]
    for request_id in ids:
        parsed = uuid.UUID(request_id)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == request_id
    assert len(set(ids)) == len(ids)


def _checked_app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(check_request)])
    install_error_handlers(app)

    @app.get("/items/{name}")
    async def item(name: str, colour: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        return {"name": name, "colour": colour}

    return app


def test_the_declared_parameters_are_read_alike_on_every_request() -> None:
    with TestClient(_checked_app()) as client:
        for _ in range(3):
            assert client.get("/items/a", params={"colour": "red"}).json() == {
                "name": "a",
                "colour": "red",
            }
            refused = client.get("/items/a", params={"colur": "red"})
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "unknown_query_parameter"
            assert refused.json()["error"]["details"]["accepted"] == ["colour"]


def test_a_request_without_a_query_string_still_has_its_path_checked() -> None:
    with TestClient(_checked_app()) as client:
        plain = client.get("/items/plain")
        refused = client.get("/items/tab%09in")
    assert plain.json() == {"name": "plain", "colour": None}
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_string"


def test_an_unknown_parameter_is_refused_before_a_bad_path_value() -> None:
    with TestClient(_checked_app()) as client:
        refused = client.get("/items/tab%09in", params={"colur": "red"})
    assert refused.json()["error"]["code"] == "unknown_query_parameter"


class _Recorder:
    """An app that reads the whole body and says what it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _call(
    recorder: _Recorder, http_version: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> int:
    class _State:
        pass

    class _App:
        state = _State()

    scope: dict[str, Any] = {
        "type": "http",
        "http_version": http_version,
        "method": "POST",
        "path": "/v1/things",
        "headers": headers,
        "app": _App(),
    }
    pending = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await BodySizeLimitMiddleware(recorder)(scope, receive, send)
    return statuses[0]


@pytest.mark.parametrize("http_version", ["1.0", "1.1"])
def test_an_http_1_request_that_declares_no_body_goes_through_untouched(
    http_version: str,
) -> None:
    recorder = _Recorder()
    assert asyncio.run(_call(recorder, http_version, [], [b""])) == 200
    assert recorder.bodies == [b""]


@pytest.mark.parametrize(
    ("http_version", "headers"),
    [
        ("1.1", [(b"transfer-encoding", b"chunked")]),
        # HTTP/2 frames a body without declaring it in a header.
        ("2", []),
    ],
)
def test_a_body_of_undeclared_length_is_still_counted(
    http_version: str, headers: list[tuple[bytes, bytes]]
) -> None:
    too_long = [b"x" * 1_000_000] * 20
    recorder = _Recorder()
    assert asyncio.run(_call(recorder, http_version, headers, too_long)) == 413
    assert recorder.bodies == []
    assert asyncio.run(_call(recorder, http_version, headers, [b"a", b"b"])) == 200
    assert recorder.bodies == [b"ab"]
