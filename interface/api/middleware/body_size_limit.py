"""A request body over its limit answers 413 before any of it is parsed.

Pure ASGI, just inside the request context: the declared Content-Length is
refused at once, and the body that actually arrives is counted too (a chunked
body declares no length, a lying client declares a short one). The body is
read whole here, never more than the limit, and handed on as one message:
nothing further in ever sees a byte past the limit.

The limits are the settings `request_body_bytes_max`, and
`batch_request_body_bytes_max` for the batch route, whose 8190 transfers need
more. Code: `request_too_large`, the same as the Idempotency-Key middleware's
(whose own bound is the ceiling of these settings).
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interface.api.errors import send_error
from interface.api.input_checks import limits_in_force

REQUEST_TOO_LARGE: Final[str] = "request_too_large"
BATCH_PATH: Final[str] = "/v1/transfers/batch"


def body_bytes_max(scope: Scope) -> int:
    limits = limits_in_force(scope["app"])
    if scope["path"] == BATCH_PATH:
        return limits.batch_request_body_bytes_max
    return limits.request_body_bytes_max


# What `_framing` says of an HTTP/1 request that declares no body: neither a
# length nor a transfer encoding means none follows (RFC 9112, section 6.3).
# HTTP/2 and later frame bodies without either, so the rule is HTTP/1's only.
NO_BODY: Final[int] = 0
_FRAMED_BY_HEADERS: Final = frozenset({"1.0", "1.1"})


def _framing(scope: Scope) -> int | None:
    """The declared Content-Length; NO_BODY when an HTTP/1 request declares
    no body at all; None when the length is unknown (a transfer encoding, a
    later HTTP, or a length that is not one, which the server refuses itself)."""
    length_unknown = scope.get("http_version") not in _FRAMED_BY_HEADERS
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
        if name == b"transfer-encoding":
            length_unknown = True
    return None if length_unknown else NO_BODY


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _framing(scope)
        if declared == NO_BODY:
            # Most reads: no body can come, so none to count or hold.
            await self.app(scope, receive, send)
            return
        bytes_max = body_bytes_max(scope)
        if declared is not None and declared > bytes_max:
            await _refuse(scope, send, bytes_max)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left before sending it all: nothing to answer.
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > bytes_max:
                await _refuse(scope, send, bytes_max)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replaying(b"".join(chunks), receive), send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The whole body in one message, then whatever the client sends next
    (its disconnect, which a streaming answer waits for)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(scope: Scope, send: Send, bytes_max: int) -> None:
    await send_error(
        scope,
        send,
        413,
        REQUEST_TOO_LARGE,
        f"the body is longer than {bytes_max} bytes",
        {"bytes_max": bytes_max},
        # The rest of the body is never read: the exchange cannot go on.
        headers={"Connection": "close"},
    )
