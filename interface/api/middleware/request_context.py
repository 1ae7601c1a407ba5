"""Every request's id, access log line, audit record and metrics, in one place.

A pure ASGI middleware, outermost of the app's own: it sees every answer,
the authentication middleware's 401s and the rate limiter's 429s included,
and it never buffers a body.

What it logs is fixed here and is only identifiers: method, route template
(`/v1/accounts/{account_id}`, never the raw path or its query string), path
parameters, status, the error envelope's code, duration, request id and the
caller's key id and role. Never headers, bodies, query strings or metadata:
keys, tokens and personal data stay out of the logs by construction.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, Final

import structlog
from fastapi.openapi.utils import get_openapi
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interface.adapters.persistence.api_keys import Principal, Role
from interface.api.middleware.authentication import PRINCIPAL_STATE_KEY
from interface.api.middleware.rate_limiting import RATE_LIMITED_CALLER_STATE_KEY
from interface.api.request_ids import REQUEST_ID_HEADER, REQUEST_ID_STATE_KEY
from interface.observability.logging import AUDIT_EVENT
from interface.observability.metrics import HttpMetrics

_REQUEST_ID_HEADER_RAW: Final[bytes] = REQUEST_ID_HEADER.lower().encode()
# What a client may send as its own request id; anything else is replaced, so
# a log line can never carry a header's arbitrary contents.
_ACCEPTED_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
UNMATCHED_ROUTE: Final[str] = "unmatched"
# Path parameters are logged only when they look like identifiers: a request
# refused before validation (401, 429) may carry anything in its path.
_LOGGED_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
NOT_AN_IDENTIFIER: Final[str] = "<not an identifier>"
# Error codes are snake_case words; anything else in a body is not logged.
_ERROR_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Error envelopes are small; a larger error body is not inspected.
_ERROR_BODY_INSPECTED_MAX: Final[int] = 16_384
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Denials that are always audited; 404 is audited for user keys (see below).
_DENIED_STATUSES: Final = frozenset({401, 403, 429})

log = structlog.get_logger(__name__)
access_log = structlog.get_logger("ledger.access")
audit_log = structlog.get_logger("ledger.audit")


# A version 4, RFC 4122 variant UUID from 128 random bits: the version and
# variant bits cleared by the mask, then set. What `str(uuid.uuid4())` gives,
# for a third of its time (no UUID object per request).
_UUID4_KEPT_BITS: Final[int] = 0xFFFFFFFF_FFFF_0FFF_3FFF_FFFFFFFFFFFF
_UUID4_FIXED_BITS: Final[int] = 0x00000000_0000_4000_8000_000000000000
_RANDOM_BYTES: Final[int] = 16


def new_request_id() -> str:
    """A new random UUID (version 4) in its usual text form."""
    bits = int.from_bytes(os.urandom(_RANDOM_BYTES)) & _UUID4_KEPT_BITS | _UUID4_FIXED_BITS
    digits = f"{bits:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def accepted_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _REQUEST_ID_HEADER_RAW:
            candidate = value.decode("latin-1")
            return candidate if _ACCEPTED_REQUEST_ID.fullmatch(candidate) else None
    return None


class RouteTemplates:
    """Route templates for requests answered before routing (401 by
    authentication, 429 by the rate limiter), when the router has not said
    which route it was. Taken from FastAPI's OpenAPI paths of the app's
    routes: its own route tree is not public."""

    def __init__(self) -> None:
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def of(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        """The route template and path parameters."""
        route = scope.get("route")
        if route is not None:
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            if template:
                return str(template), dict(scope.get("path_params", {}))
        for pattern, template in self._templates(scope):
            match = pattern.fullmatch(scope["path"])
            if match is not None:
                return template, match.groupdict()
        return UNMATCHED_ROUTE, {}

    def _templates(self, scope: Scope) -> list[tuple[re.Pattern[str], str]]:
        if self._compiled is None:
            app = scope.get("app")
            # FastAPI's own document of the routes, not `app.openapi()`: the
            # served one adds every operation's examples and error codes,
            # more work than a refused request should wait for.
            paths: list[str] = (
                list(
                    get_openapi(title=app.title, version=app.version, routes=app.routes).get(
                        "paths", {}
                    )
                )
                if app is not None
                else []
            )
            # Literal templates first: /v1/accounts/batch before /v1/accounts/{account_id}.
            paths.sort(key=lambda path: (path.count("{"), -len(path)))
            self._compiled = [(compile_path(path)[0], path) for path in paths]
        return self._compiled


class _Answer:
    """What the middleware learns of the response as it passes: status and,
    for small error bodies, the envelope's code."""

    __slots__ = ("error_code", "status")

    def __init__(self) -> None:
        # Unless the app answers, the server answers 500.
        self.status = 500
        self.error_code: str | None = None

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif (
            message["type"] == "http.response.body"
            and self.status >= 400
            and self.error_code is None
            and not message.get("more_body", False)
        ):
            self.error_code = _error_code_of(message.get("body", b""))


def _error_code_of(body: bytes) -> str | None:
    if not body or len(body) > _ERROR_BODY_INSPECTED_MAX:
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(scope) or new_request_id()
        # A task may serve several requests: nothing of the last one may leak in.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        scope.setdefault("state", {})[REQUEST_ID_STATE_KEY] = request_id
        header = (_REQUEST_ID_HEADER_RAW, request_id.encode())
        answer = _Answer()

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            answer.see(message)
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            duration_s = time.perf_counter() - started
            try:
                self._record(scope, answer, duration_s)
            except Exception:
                # Recording must never break an answer, nor hide the app's error.
                log.exception("request_record_failed")

    def _record(self, scope: Scope, answer: _Answer, duration_s: float) -> None:
        method: str = scope["method"]
        route, path_params = self.routes.of(scope)
        principal: Principal | None = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
        actor: dict[str, str] = (
            {"actor_key_id": str(principal.key_id), "actor_role": principal.role.value}
            if principal is not None
            else {}
        )
        if self.metrics is not None:
            self.metrics.observe(method, route, answer.status, duration_s)
        access_log.info(
            "http_request",
            method=method,
            route=route,
            status=answer.status,
            duration_ms=round(duration_s * 1000, 3),
            **actor,
        )
        reason = _audit_reason(method, route, answer.status, principal)
        if reason is not None:
            audit_log.info(
                AUDIT_EVENT,
                reason=reason,
                actor_key_id=actor.get("actor_key_id", "anonymous"),
                actor_role=actor.get("actor_role", "anonymous"),
                action=f"{method} {route}",
                target={name: _loggable(value) for name, value in path_params.items()},
                result={"status": answer.status, "code": answer.error_code},
                **_rate_limited_caller(scope),
            )


def _rate_limited_caller(scope: Scope) -> dict[str, str]:
    caller = scope.get("state", {}).get(RATE_LIMITED_CALLER_STATE_KEY)
    return {"rate_limited_caller": caller} if caller else {}


def _loggable(value: object) -> str:
    text = str(value)
    return text if _LOGGED_IDENTIFIER.fullmatch(text) else NOT_AN_IDENTIFIER


def _audit_reason(method: str, route: str, status: int, principal: Principal | None) -> str | None:
    """`denied`, `admin_action`, or None when the request is not audited."""
    if status in _DENIED_STATUSES:
        return "denied"
    if principal is None:
        return None
    # A user asking for an account that is not theirs gets the same 404 as for
    # one that does not exist (on purpose); both are recorded, so probing shows.
    if status == 404 and principal.is_user and route != UNMATCHED_ROUTE:
        return "denied"
    if principal.role is Role.ADMIN and method not in _SAFE_METHODS:
        return "admin_action"
    return None
