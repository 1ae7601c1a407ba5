"""A small Stripe for tests: the payouts API over local HTTP, and signed webhooks.

It answers the official SDK as Stripe would, for the few calls the payout
gateway makes: form-encoded requests, Stripe-shaped JSON objects and errors,
list pages, and idempotency keys (the first answer under a key is replayed to
every retry with the same parameters; other parameters are refused). It is
stricter than Stripe where strictness catches an adapter mistake: a create
without an Idempotency-Key, or an unknown parameter, is refused.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import parse_qsl, urlsplit

API_KEY: Final[str] = "sk_test_fake_stripe"
LIST_LIMIT_DEFAULT: Final[int] = 10
LIST_LIMIT_MAX: Final[int] = 100
DELAY_S_MAX: Final[float] = 30.0
SHUTDOWN_TIMEOUT_S: Final[float] = 5.0
# How often the server looks for a shutdown: closing a fake waits up to this long.
POLL_INTERVAL_S: Final[float] = 0.01
# Stripe's test-mode payouts arrive "in two days".
ARRIVAL_DELAY_S: Final[int] = 2 * 24 * 3600
PAYOUT_STATUSES: Final = frozenset({"pending", "in_transit", "paid", "failed", "canceled"})
# The headers a test may want to see; the API key is left out on purpose.
RECORDED_HEADERS: Final = ("idempotency-key", "stripe-version", "content-type")
_CREATE_PARAMS: Final = frozenset({"amount", "currency", "description"})
_LIST_PARAMS: Final = frozenset({"limit", "starting_after", "created[gte]"})
_PAYOUTS_PATH: Final[str] = "/v1/payouts"


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    # Lower-case names, only those in RECORDED_HEADERS that were sent.
    headers: dict[str, str]
    form: dict[str, str]

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _ScriptedFailure:
    answer: _Answer
    remembered: bool


class _StripeFailure(Exception):
    def __init__(self, status: int, error_type: str, code: str | None, message: str) -> None:
        super().__init__(message)
        self.answer = stripe_error(status, error_type, code, message)


def stripe_error(status: int, error_type: str, code: str | None, message: str) -> _Answer:
    fields: dict[str, Any] = {"type": error_type, "message": message}
    if code is not None:
        fields["code"] = code
    return _Answer(status, {"error": fields})


def stripe_payout_object(
    payout_id: str,
    amount: int,
    currency: str,
    metadata: Mapping[str, str],
    created: int,
    status: str = "pending",
    failure_code: str | None = None,
    failure_message: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A payout as Stripe's API shows it."""
    return {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "arrival_date": created + ARRIVAL_DELAY_S,
        "automatic": False,
        "balance_transaction": f"txn_{secrets.token_hex(12)}",
        "created": created,
        "currency": currency.lower(),
        "description": description,
        "destination": "ba_fake_stripe",
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "livemode": False,
        "metadata": dict(metadata),
        "method": "standard",
        "source_type": "card",
        "statement_descriptor": None,
        "status": status,
        "type": "bank_account",
    }


class FakeStripe:
    """Use as a context manager; `base_url` is the SDK's api_base."""

    def __init__(self, api_key: str = API_KEY, now: Callable[[], int] | None = None) -> None:
        if not api_key.startswith("sk_test_"):
            raise ValueError("the fake takes test-mode keys only")
        self.api_key = api_key
        self._now = now or (lambda: int(time.time()))
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._payouts: dict[str, dict[str, Any]] = {}
        # Creation order, so that payouts of the same second list newest first.
        self._sequence: dict[str, int] = {}
        self._counter = itertools.count()
        self._remembered: dict[str, tuple[dict[str, str], _Answer]] = {}
        self._failures: deque[_ScriptedFailure] = deque()
        self._delays: deque[float] = deque()
        self._requests: list[ReceivedRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL_S,), daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Wakes delayed answers first, so that closing never waits them out.
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(SHUTDOWN_TIMEOUT_S)

    # What happened ----------------------------------------------------------------

    @property
    def payouts(self) -> list[dict[str, Any]]:
        """Every payout created, in creation order, as Stripe now shows it."""
        with self._lock:
            return copy.deepcopy(list(self._payouts.values()))

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    # Scripting ----------------------------------------------------------------------

    def fail_next_create(
        self,
        status_code: int,
        error_type: str,
        code: str | None,
        message: str,
        *,
        remembered: bool = False,
    ) -> None:
        """The next payout create (one that passes the idempotency check) fails.

        `remembered` saves the error under the request's idempotency key, as
        Stripe does once its endpoint has started (a 402, or a 500): retries
        with that key get the same error back. Otherwise the failure is one
        Stripe does not save (a rate limit, a lock conflict), and the retry
        reaches the endpoint afresh.
        """
        answer = stripe_error(status_code, error_type, code, message)
        with self._lock:
            self._failures.append(_ScriptedFailure(answer, remembered))

    def delay_after_create_next(self, seconds: float) -> None:
        """The next create stores its payout, then waits `seconds` before
        answering: a client with a shorter timeout gives up on a payout that exists."""
        if not 0 < seconds <= DELAY_S_MAX:
            raise ValueError(f"a delay is over 0 and at most {DELAY_S_MAX} s")
        with self._lock:
            self._delays.append(seconds)

    def set_status(
        self,
        payout_id: str,
        status: str,
        failure_code: str | None = None,
        failure_message: str | None = None,
    ) -> dict[str, Any]:
        if status not in PAYOUT_STATUSES:
            raise ValueError(f"not a payout status: {status}")
        with self._lock:
            payout = self._payouts[payout_id]
            payout.update(status=status, failure_code=failure_code, failure_message=failure_message)
            return copy.deepcopy(payout)

    # The API -------------------------------------------------------------------------

    def _answer(self, request: ReceivedRequest, authorization: str | None) -> tuple[_Answer, float]:
        """The answer, and how long to wait before giving it."""
        with self._lock:
            self._requests.append(request)
        if authorization != f"Bearer {self.api_key}":
            return stripe_error(401, "invalid_request_error", None, "Invalid API Key provided"), 0
        try:
            if request.method == "POST" and request.path == _PAYOUTS_PATH:
                return self._create(request)
            if request.method == "GET" and request.path == _PAYOUTS_PATH:
                return self._list(request.query), 0
            prefix = f"{_PAYOUTS_PATH}/"
            if request.method == "GET" and request.path.startswith(prefix):
                return self._retrieve(request.path.removeprefix(prefix)), 0
        except _StripeFailure as failure:
            return failure.answer, 0
        message = f"Unrecognized request URL ({request.method}: {request.path})."
        return stripe_error(404, "invalid_request_error", None, message), 0

    def _create(self, request: ReceivedRequest) -> tuple[_Answer, float]:
        key = request.idempotency_key
        if not key:
            raise _StripeFailure(
                400,
                "invalid_request_error",
                "idempotency_key_missing",
                "The fake requires an Idempotency-Key on every payout.",
            )
        with self._lock:
            remembered = self._remembered.get(key)
            if remembered is not None:
                first_params, answer = remembered
                if first_params != request.form:
                    raise _StripeFailure(
                        400,
                        "idempotency_error",
                        None,
                        "Keys for idempotent requests can only be used with the same "
                        f"parameters they were first used with. Try using a key other "
                        f"than '{key}' if you meant to execute a different request.",
                    )
                return answer, 0
            if self._failures:
                failure = self._failures.popleft()
                if failure.remembered:
                    self._remembered[key] = (dict(request.form), failure.answer)
                return failure.answer, 0
            payout = self._new_payout(request.form)
            answer = _Answer(200, copy.deepcopy(payout))
            self._remembered[key] = (dict(request.form), answer)
            delay = self._delays.popleft() if self._delays else 0
        return answer, delay

    def _new_payout(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Under the lock."""
        metadata = {
            name[len("metadata[") : -1]: value
            for name, value in form.items()
            if name.startswith("metadata[") and name.endswith("]")
        }
        unknown = set(form) - _CREATE_PARAMS - {f"metadata[{name}]" for name in metadata}
        if unknown:
            raise _StripeFailure(
                400,
                "invalid_request_error",
                "parameter_unknown",
                f"Received unknown parameter: {sorted(unknown)[0]}",
            )
        amount = _integer(form, "amount", minimum=1, code_if_small="amount_too_small")
        currency = form.get("currency")
        if not currency:
            raise _StripeFailure(
                400,
                "invalid_request_error",
                "parameter_missing",
                "Missing required param: currency.",
            )
        payout = stripe_payout_object(
            payout_id=f"po_{secrets.token_hex(12)}",
            amount=amount,
            currency=currency,
            metadata=metadata,
            created=self._now(),
            description=form.get("description"),
        )
        self._payouts[payout["id"]] = payout
        self._sequence[payout["id"]] = next(self._counter)
        return payout

    def _retrieve(self, payout_id: str) -> _Answer:
        with self._lock:
            payout = self._payouts.get(payout_id)
            if payout is None:
                raise _no_such_payout(payout_id)
            return _Answer(200, copy.deepcopy(payout))

    def _list(self, query: Mapping[str, str]) -> _Answer:
        unknown = set(query) - _LIST_PARAMS
        if unknown:
            raise _StripeFailure(
                400,
                "invalid_request_error",
                "parameter_unknown",
                f"Received unknown parameter: {sorted(unknown)[0]}",
            )
        limit = _integer(query, "limit", minimum=1, default=LIST_LIMIT_DEFAULT)
        if limit > LIST_LIMIT_MAX:
            raise _StripeFailure(
                400,
                "invalid_request_error",
                "parameter_invalid_integer",
                f"This value must be less than or equal to {LIST_LIMIT_MAX}.",
            )
        created_from = _integer(query, "created[gte]", minimum=0, default=0)
        with self._lock:
            newest_first = sorted(
                self._payouts.values(),
                key=lambda payout: (payout["created"], self._sequence[payout["id"]]),
                reverse=True,
            )
            selected = [payout for payout in newest_first if payout["created"] >= created_from]
            starting_after = query.get("starting_after")
            if starting_after is not None:
                ids = [payout["id"] for payout in selected]
                if starting_after not in ids:
                    raise _no_such_payout(starting_after)
                selected = selected[ids.index(starting_after) + 1 :]
            page = copy.deepcopy(selected[:limit])
        body = {
            "object": "list",
            "url": _PAYOUTS_PATH,
            "has_more": len(selected) > limit,
            "data": page,
        }
        return _Answer(200, body)

    def _wait(self, seconds: float) -> None:
        self._closing.wait(seconds)


def _integer(
    params: Mapping[str, str],
    name: str,
    minimum: int,
    default: int | None = None,
    code_if_small: str = "parameter_invalid_integer",
) -> int:
    text = params.get(name)
    if text is None:
        if default is None:
            raise _StripeFailure(
                400,
                "invalid_request_error",
                "parameter_missing",
                f"Missing required param: {name}.",
            )
        return default
    if not text.isascii() or not text.isdigit():
        raise _StripeFailure(
            400, "invalid_request_error", "parameter_invalid_integer", f"Invalid integer: {text}"
        )
    value = int(text)
    if value < minimum:
        raise _StripeFailure(
            400, "invalid_request_error", code_if_small, f"{name} must be at least {minimum}."
        )
    return value


def _no_such_payout(payout_id: str) -> _StripeFailure:
    return _StripeFailure(
        404, "invalid_request_error", "resource_missing", f"No such payout: '{payout_id}'"
    )


class _Server(ThreadingHTTPServer):
    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeStripe
    ) -> None:
        super().__init__(address, handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no handler thread idles on a
    # kept-alive connection while the server shuts down.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        return None

    def _handle(self) -> None:
        fake = cast(_Server, self.server).fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        request = ReceivedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={
                name: value
                for name in RECORDED_HEADERS
                if (value := self.headers.get(name)) is not None
            },
            form=dict(parse_qsl(body, keep_blank_values=True)),
        )
        answer, delay_s = fake._answer(request, self.headers.get("Authorization"))
        if delay_s:
            fake._wait(delay_s)
        encoded = json.dumps(answer.body).encode("utf-8")
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
            self.end_headers()
            self.wfile.write(encoded)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting: exactly what a delayed answer is for.
            return


# Webhooks ----------------------------------------------------------------------------


def signed_webhook(
    payload: Mapping[str, Any], secret: str, timestamp: int | None = None
) -> tuple[bytes, str]:
    """The body and its `Stripe-Signature` header."""
    body = json.dumps(payload).encode("utf-8")
    return body, signature_header(body, secret, timestamp)


def signature_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """`Stripe-Signature` for any body, signed as Stripe signs: computed here, not by
    the SDK, so that a test checks the SDK against Stripe's scheme."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(
        secret.encode("utf-8"), f"{signed_at}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return f"t={signed_at},v1={signature}"


def payout_event(
    event_id: str,
    event_type: str,
    payout_object: Mapping[str, Any],
    created: int | None = None,
) -> dict[str, Any]:
    """An event as Stripe posts it to a webhook endpoint."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()) if created is None else created,
        "data": {"object": dict(payout_object)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
