"""The `Idempotency-Key` header: every state-changing POST can be retried safely.

The first request with a key claims it: one row per (API key, header value),
inserted before the request runs, so of any number of requests sent at once
exactly one runs. Its response, if definitive (2xx, or 4xx other than 429), is
stored and sent back to every later request with the same key and the same
request (method, path, query and body), byte for byte, with
`Idempotent-Replayed: true`. The same key with another request answers 422
`idempotency_key_reused`. Requests that arrive while the first still runs wait
for its answer. A 5xx, a 429 or an exception releases the claim, so a retry
runs afresh; a claim left by a process that died is taken over after a lease.

This is not the domain's idempotency (a transfer's id derives from the body's
`idempotency_key`): that one makes the ledger's effect happen once; this one
makes the whole HTTP exchange repeatable, for every POST.

The writer's fast path: on `POST /v1/transfers` whose header equals the
body's `idempotency_key`, the writer already answers a retry (it finds the
transfer the first request made, and refuses the same key with other
details), so no request owns the key and no response is stored after a 201.
One statement (`IdempotencyStore.mark`) still runs first: it records that
the header value was used, for this request (the same key with another
request is 422, whichever path either took), and brings back a kept answer.
Then the request runs; a copy sent meanwhile runs too, and the writer applies
the transfer once. A 201 is sent as it is; a 200 (the writer found this
transfer, same key and details, made before) is sent as the first answer
was, 201 with `Idempotent-Replayed: true`. Any other definitive answer (a
refusal, `idempotency_key_reused`) is kept on the record, as a claim's would
be, and replayed to every retry (docs/api.md#idempotency).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, Final
from uuid import UUID

import anyio
import orjson
import psycopg
import structlog
from fastapi import FastAPI
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interface.adapters.persistence.api_keys import Principal
from interface.adapters.persistence.database_faults import database_fault_of
from interface.adapters.persistence.idempotency_records import (
    Claim,
    IdempotencyStore,
    Marked,
    MarkOutcome,
    Outcome,
    Pending,
    StoredResponse,
)
from interface.api.errors import send_error
from interface.api.middleware.authentication import (
    PRINCIPAL_STATE_KEY,
    PROTECTED_PREFIX,
    bearer_token,
)

log = structlog.get_logger(__name__)

HEADER_NAME: Final[str] = "Idempotency-Key"
REPLAYED_HEADER_NAME: Final[str] = "Idempotent-Replayed"
KEY_LENGTH_MAX: Final[int] = 255
# Printable ASCII, as many payment APIs accept: a UUID fits, so does "order-42/retry".
_VALID_KEY: Final = re.compile(rb"[\x20-\x7e]{1,%d}" % KEY_LENGTH_MAX)
IDEMPOTENT_METHODS: Final = frozenset({"POST"})
# The route whose effect the writer deduplicates by the body's key, and whose
# repeated answer it gives: one transfer. (A batch's answer lists `exists`
# for items made before, not what the first answer said: it keeps its claim.)
WRITER_ANSWERED_PATH: Final[str] = "/v1/transfers"
MADE_STATUS: Final[int] = 201
FOUND_STATUS: Final[int] = 200

WAIT_TIMEOUT_S: Final[float] = 30.0
POLL_INTERVAL_INITIAL_S: Final[float] = 0.005
POLL_INTERVAL_MAX_S: Final[float] = 0.1
# A batch of 8,190 transfers is a few megabytes; the body is held to digest it.
REQUEST_BODY_SIZE_MAX: Final[int] = 16 * 1024 * 1024

# Headers that describe one exchange, not the response: never stored, never replayed.
_PER_EXCHANGE_HEADERS: Final = frozenset(
    {b"content-length", b"date", b"server", b"x-request-id", b"idempotent-replayed"}
)
_PER_EXCHANGE_PREFIXES: Final = (b"ratelimit", b"x-ratelimit")


def is_definitive(status: int) -> bool:
    """A 429 or 5xx says "not now", not "no": a retry must run again."""
    return 200 <= status < 500 and status != 429


def request_digest(scope: Scope, body: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body):
        # Length-prefixed, so no two different requests run together into one.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def parse_key(values: list[bytes]) -> str | None:
    """The key, or None if it is not 1-255 printable ASCII characters (or sent twice)."""
    if len(values) != 1 or _VALID_KEY.fullmatch(values[0]) is None:
        return None
    return values[0].decode("ascii")


class IdempotencyMiddleware:
    """Pure ASGI, inside the authentication middleware: it sees the principal
    and the raw body, and holds the response until it is stored."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._store: IdempotencyStore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        values = _header_values(scope) if _applies_to(scope) else []
        if not values:
            await self.app(scope, receive, send)
            return
        idempotency_key = parse_key(values)
        if idempotency_key is None:
            await send_error(
                scope,
                send,
                422,
                "invalid_idempotency_key",
                f"the {HEADER_NAME} header must be 1 to {KEY_LENGTH_MAX} printable ASCII "
                "characters, sent once",
            )
            return
        principal = await _principal(scope)
        if principal is None:
            # Not authenticated: the request is refused further in, nothing to keep.
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is _Unread.DISCONNECTED:
            # Half a request claims nothing: its digest is not the request's.
            return
        if body is _Unread.TOO_LARGE:
            await send_error(
                scope,
                send,
                413,
                "request_too_large",
                f"the body is longer than {REQUEST_BODY_SIZE_MAX} bytes",
            )
            return
        store = self._store_for(scope)
        digest = request_digest(scope, body)
        try:
            outcome = await _look_up(
                store,
                principal.key_id,
                idempotency_key,
                digest,
                writer_answers=_writer_answers(scope, idempotency_key, body),
            )
        except psycopg.Error as error:
            if database_fault_of(error) is not None:
                # The database is away: answered as everywhere else, 503
                # `database_unavailable` (DatabaseFaultMiddleware, further out).
                raise
            log.warning("idempotency_store_unavailable", error_type=type(error).__name__)
            await send_error(
                scope, send, 503, "unavailable", "try again shortly", headers={"Retry-After": "1"}
            )
            return
        if isinstance(outcome, Marked):
            await self._run_writer_answered(scope, body, receive, send, store, outcome)
        elif isinstance(outcome, Claim):
            await self._run_as_owner(scope, body, receive, send, store, outcome)
        elif isinstance(outcome, StoredResponse):
            await _answer(send, outcome, replayed=True)
        else:
            await _answer_pending(scope, send, outcome)

    def _store_for(self, scope: Scope) -> IdempotencyStore:
        pool: ConnectionPool = scope["app"].state.ledger.pool
        if self._store is None or self._store.pool is not pool:
            self._store = IdempotencyStore(pool)
        return self._store

    async def _run_as_owner(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        store: IdempotencyStore,
        claim: Claim,
    ) -> None:
        capture = _ResponseCapture()
        try:
            await self.app(scope, _replaying(body, receive), capture)
            response = capture.response()
        except BaseException:
            # No response: nothing to replay, so a retry must be free to run.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_quietly, store.release, claim)
            raise
        if is_definitive(response.status):
            kept = StoredResponse(
                response.status,
                tuple((n, v) for n, v in response.headers if not _per_exchange(n)),
                response.body,
            )
            stored = await run_in_threadpool(_quietly, store.complete, claim, kept)
            if stored is False:
                log.warning("idempotency_claim_lost", status=response.status)
        else:
            await run_in_threadpool(_quietly, store.release, claim)
        await _answer(send, response, replayed=False)
        await run_in_threadpool(_quietly, store.sweep_if_due)

    async def _run_writer_answered(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        store: IdempotencyStore,
        marked: Marked,
    ) -> None:
        capture = _ResponseCapture()
        try:
            await self.app(scope, _replaying(body, receive), capture)
            response = capture.response()
        except BaseException:
            if marked.first:
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(_quietly, store.unmark, marked)
            raise
        if response.status == MADE_STATUS:
            # Made now: the writer's record of it answers every retry.
            await _answer(send, response, replayed=False)
        elif response.status == FOUND_STATUS:
            # The writer found the transfer this request describes (its key
            # and details) made before: by an earlier copy of it, or a copy
            # sent at the same time, or the same body sent without this
            # header. Every such answer is the same: made, replayed. (Telling
            # a copy from an earlier request would need the record to say
            # when the first finished: the round trip this path saves.)
            await _answer(send, _as_made(response), replayed=True)
        elif is_definitive(response.status):
            kept = StoredResponse(
                response.status,
                tuple((n, v) for n, v in response.headers if not _per_exchange(n)),
                response.body,
            )
            answer = await run_in_threadpool(_quietly, store.settle_marked, marked, kept)
            if answer is None or answer is kept:
                await _answer(send, response, replayed=False)
            else:
                await _answer(send, answer, replayed=True)
        else:
            if marked.first:
                await run_in_threadpool(_quietly, store.unmark, marked)
            await _answer(send, response, replayed=False)
        await run_in_threadpool(_quietly, store.sweep_if_due)


def _writer_answers(scope: Scope, idempotency_key: str, body: bytes) -> bool:
    """The writer's fast path: one transfer whose body names the same key."""
    if scope["path"] != WRITER_ANSWERED_PATH or scope["query_string"]:
        return False
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and parsed.get("idempotency_key") == idempotency_key


def _as_made(found: StoredResponse) -> StoredResponse:
    """The transfer found, answered as the first request's answer: made."""
    return StoredResponse(MADE_STATUS, found.headers, found.body)


def _applies_to(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] in IDEMPOTENT_METHODS
        and scope["path"].startswith(PROTECTED_PREFIX)
    )


def _header_values(scope: Scope) -> list[bytes]:
    return [value for name, value in scope.get("headers", ()) if name == b"idempotency-key"]


def _per_exchange(name: bytes) -> bool:
    lowered = name.lower()
    return lowered in _PER_EXCHANGE_HEADERS or lowered.startswith(_PER_EXCHANGE_PREFIXES)


async def _principal(scope: Scope) -> Principal | None:
    principal: Principal | None = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
    if principal is not None:
        return principal
    # Should the authentication middleware ever run after this one.
    token = bearer_token(scope)
    if token is None:
        return None
    api_keys = scope["app"].state.ledger.api_keys
    authenticated: Principal | None = await run_in_threadpool(api_keys.authenticate, token)
    return authenticated


class _Unread(Enum):
    TOO_LARGE = "too_large"
    DISCONNECTED = "disconnected"


async def _read_body(receive: Receive) -> bytes | _Unread:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return _Unread.DISCONNECTED
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > REQUEST_BODY_SIZE_MAX:
            return _Unread.TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def receive_again() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


async def _look_up(
    store: IdempotencyStore,
    key_id: UUID,
    idempotency_key: str,
    digest: bytes,
    *,
    writer_answers: bool,
) -> Outcome | MarkOutcome:
    if writer_answers:
        marked = await run_in_threadpool(store.mark, key_id, idempotency_key, digest)
        # In progress: a request that owns the key runs (the claiming path).
        if marked is not Pending.IN_PROGRESS:
            return marked
    return await _claim_or_wait(store, key_id, idempotency_key, digest)


async def _claim_or_wait(
    store: IdempotencyStore, key_id: UUID, idempotency_key: str, digest: bytes
) -> Outcome:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    interval_s = POLL_INTERVAL_INITIAL_S
    while True:
        outcome = await run_in_threadpool(store.claim, key_id, idempotency_key, digest)
        if outcome is not Pending.IN_PROGRESS or time.monotonic() >= deadline:
            return outcome
        await anyio.sleep(interval_s)
        interval_s = min(interval_s * 2, POLL_INTERVAL_MAX_S)


def _quietly(operation: Callable[..., Any], *arguments: Any) -> Any:
    """Bookkeeping after the fact must not turn an answered request into a 500:
    an unstored claim only delays a retry until its lease runs out."""
    try:
        return operation(*arguments)
    except psycopg.Error as error:
        log.warning(
            "idempotency_bookkeeping_failed",
            operation=getattr(operation, "__name__", "?"),
            error_type=type(error).__name__,
        )
        return None


class _ResponseCapture:
    def __init__(self) -> None:
        self._status: int | None = None
        self._headers: tuple[tuple[bytes, bytes], ...] = ()
        self._chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
            self._headers = tuple(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self._chunks.append(message.get("body", b""))

    def response(self) -> StoredResponse:
        if self._status is None:
            raise RuntimeError("the application returned without starting a response")
        return StoredResponse(self._status, self._headers, b"".join(self._chunks))


async def _answer(send: Send, response: StoredResponse, *, replayed: bool) -> None:
    headers = [(n, v) for n, v in response.headers if n.lower() != b"content-length"]
    headers.append((b"content-length", str(len(response.body)).encode()))
    if replayed:
        headers.append((REPLAYED_HEADER_NAME.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _answer_pending(scope: Scope, send: Send, pending: Pending) -> None:
    if pending is Pending.REUSED:
        await send_error(
            scope,
            send,
            422,
            "idempotency_key_reused",
            f"this {HEADER_NAME} was first used for another request (method, path, query "
            "or body); use a new key for a new request",
        )
    else:
        await send_error(
            scope,
            send,
            409,
            "idempotency_key_in_progress",
            f"a request with this {HEADER_NAME} is still running; retry shortly",
            headers={"Retry-After": "1"},
        )


_HEADER_PARAMETER: Final[dict[str, Any]] = {
    "name": HEADER_NAME,
    "in": "header",
    "required": False,
    "description": (
        "Makes this POST safe to retry: the same key with the same request returns the "
        "first response again (with `Idempotent-Replayed: true`); the same key with "
        "another request answers 422 `idempotency_key_reused`. Keys are scoped to the "
        "API key and kept at least 24 hours."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_LENGTH_MAX,
        "pattern": "^[ -~]+$",
    },
}
_REPLAYED_HEADER: Final[dict[str, Any]] = {
    "description": "Present, `true`, when this is the stored response to an earlier request",
    "schema": {"type": "string", "enum": ["true"]},
}


def document_idempotency(schema: dict[str, Any]) -> dict[str, Any]:
    """The header on every POST under /v1, and the replay marker on its answers."""
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(PROTECTED_PREFIX):
            continue
        for method, operation in operations.items():
            if method.upper() not in IDEMPOTENT_METHODS:
                continue
            parameters = operation.setdefault("parameters", [])
            if not any(parameter.get("name") == HEADER_NAME for parameter in parameters):
                parameters.append(dict(_HEADER_PARAMETER))
            for status, response in operation.get("responses", {}).items():
                if str(status)[:1] in {"2", "4"}:
                    response.setdefault("headers", {})[REPLAYED_HEADER_NAME] = _REPLAYED_HEADER
    return schema


def install_idempotency(app: FastAPI) -> None:
    """Call before adding the authentication middleware, so this one runs inside it.
    The OpenAPI builder (interface/api/openapi.py) documents the header."""
    app.add_middleware(IdempotencyMiddleware)
