"""Schemathesis against the app's own OpenAPI schema, with its default checks.

Every operation is called with generated valid and invalid requests; every
response must be documented (status, headers, body schema) and none may be a
5xx. A platform key is used so requests reach the ledger, not just the gate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from starlette.types import Receive, Scope, Send

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.api.middleware.idempotency import KEY_LENGTH_MAX
from interface.api.routes.events import WAIT_S_MAX
from interface.bootstrap import Ledger
from interface.settings import Settings
from tests.support.api_keys import bearer, install_known_key

# Examples per operation: enough to reach every branch of validation, small
# enough for CI on two cores.
EXAMPLES_PER_OPERATION = 40


# The schema does not depend on a database: read it from an app that is never
# started (fetching /openapi.json through a client would run its lifespan and
# build a ledger). Each test then binds its own app, on its own ledger.
class _CurrentTestApp:
    """Forwards every ASGI call to the app the running test installed, and
    refuses when there is none: nothing here may start a ledger of its own."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no test installed an app"
        await self.app(scope, receive, send)


_current_test_app = _CurrentTestApp()
schema = schemathesis.openapi.from_dict(create_app().openapi())
# As `from_asgi` would set them: calls go over ASGI, to the forwarder.
schema.app, schema.location = _current_test_app, "/openapi.json"


# A platform key fixed in advance: Schemathesis applies it while it generates
# explicit examples at collection, before any fixture runs. It also leaves it
# out, or spoils it, to check that the API then answers 401.
PLATFORM_KEY = "ldg_schemathesis_fixed_platform_key_0000000000000"


@schema.auth()
class PlatformKey:
    def get(self, case: Any, context: Any) -> str:
        return PLATFORM_KEY

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), **bearer(data)}


@schema.hook
def map_headers(context: Any, headers: dict[str, str] | None) -> dict[str, str] | None:
    """Generated Idempotency-Key values repeat ("0", "0", ...) with other bodies,
    which the API rightly refuses as reused. A valid key gets a unique suffix so
    requests reach the routes; an invalid one is left invalid."""
    key = (headers or {}).get("Idempotency-Key")
    if headers is not None and key is not None and _is_valid_idempotency_key(key):
        suffix = uuid.uuid4().hex
        headers["Idempotency-Key"] = (key + suffix)[-KEY_LENGTH_MAX:]
    return headers


def _is_valid_idempotency_key(key: str) -> bool:
    return 1 <= len(key) <= KEY_LENGTH_MAX and all(" " <= c <= "~" for c in key)


@schema.hook
def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """GET /v1/events waits up to `wait_s` (30 s) on an empty page, and a
    fresh ledger's pages are empty: a valid wait is cut to none, so forty
    examples do not wait twenty minutes; an invalid one is left invalid."""
    wait_s = (query or {}).get("wait_s")
    if query is not None and isinstance(wait_s, int | float) and 0 <= wait_s <= WAIT_S_MAX:
        query["wait_s"] = 0
    return query


# POST /v1/webhooks/stripe answers 503 `webhook_not_configured` on a service
# without its signing secret, which is right for such a service but a 5xx to
# every generated request. With a secret, the route verifies what it gets: no
# generated request carries Stripe's signature, so each is refused with 400.
WEBHOOK_SECRET = "whsec_schemathesis"


@pytest.fixture(name="settings")
def ledger_settings(database_url: str, tmp_path: Path) -> Settings:
    """The conftest's settings, with a Stripe webhook secret (see WEBHOOK_SECRET)."""
    return Settings(
        database_url=database_url, data_dir=tmp_path, stripe_webhook_secret=WEBHOOK_SECRET
    )


@pytest.fixture
def api(ledger: Ledger) -> Iterator[None]:
    """This test's app, on its own ledger, behind the forwarder."""
    install_known_key(ledger.pool, PLATFORM_KEY, Role.SERVICE)
    _current_test_app.app = create_app(ledger=ledger)
    try:
        yield
    finally:
        _current_test_app.app = None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_every_operation_honours_its_documented_contract(case: Any, api: None) -> None:
    case.call_and_validate(
        # A request can fit the schema and still be refused with a 422: the
        # ledger's rules (postings balance per currency, an amount within
        # the currency's decimals and above zero, a known currency) are not
        # JSON Schema. Every other default check applies.
        excluded_checks=[positive_data_acceptance],
    )
