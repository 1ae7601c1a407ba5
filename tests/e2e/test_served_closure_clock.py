"""A served closure's timers run on the service's one clock, which a test moves.

`ledger serve` with LEDGER_CLOCK_SETTABLE starts its clock at the system time
and moves it only on POST /v1/admin/clock/advance; the closure worker reads
that same clock. So a test drives a closure in the running service past its
three-business-day settlement timeout (docs/rules.md, closures) without
waiting three days, and sees it become stuck, listed for operators, and
resumable. The setting is refused in production.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from pydantic import ValidationError

from domain.closure import SETTLEMENT_TIMEOUT_BUSINESS_DAYS
from interface.adapters.persistence.api_keys import Role
from interface.settings import Settings
from tests.support.api_keys import bearer, create_api_key
from tests.support.http_api import assert_error
from tests.support.service_process import ServiceProcess, start_service

OWNER: Final[str] = "trader-served-closure"
SYMBOL: Final[str] = "ACME"
STRAY_SYMBOL: Final[str] = "ODD"
# The worker looks for due closures this often; the waits below poll for what it did.
CLOSURE_WORKER_INTERVAL_S: Final[str] = "0.2"
WAIT_FOR_WORKER_S: Final[float] = 60.0
POLL_INTERVAL_S: Final[float] = 0.2
HTTP_TIMEOUT_S: Final[float] = 30.0
CLOSURE_BODY: Final[dict[str, str]] = {
    "recipient_name": "Ada Lovelace",
    "recipient_email": "ada@example.com",
    "reason": "the trader asked to close",
}


@pytest.fixture
def settable_service(database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    running = start_service(
        database_url,
        tmp_path / "data",
        tmp_path / "service.log",
        {
            "LEDGER_CLOCK_SETTABLE": "true",
            "LEDGER_CLOSURE_WORKER_INTERVAL_S": CLOSURE_WORKER_INTERVAL_S,
        },
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _until(
    what: str, read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Read until `done` holds; the worker acts on its own passes."""
    deadline = time.monotonic() + WAIT_FOR_WORKER_S
    while time.monotonic() < deadline:
        answer = read()
        if done(answer):
            return answer
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"the service did not reach: {what}")


def test_a_served_closure_past_its_settlement_timeout_is_stuck_listed_and_resumable(
    settable_service: ServiceProcess, database_url: str
) -> None:
    admin = bearer(create_api_key(database_url, Role.ADMIN))
    owner = bearer(create_api_key(database_url, Role.USER, owner_id=OWNER))
    with httpx.Client(base_url=settable_service.base_url, timeout=HTTP_TIMEOUT_S) as client:
        funded = _json(
            client.post(
                "/v1/funded-accounts",
                json={
                    "assessment_id": f"assessment-{uuid.uuid4()}",
                    "assessment_status": "passed",
                    "owner_id": OWNER,
                    "tier": "Gen",
                    "profit_split": "4/5",
                    "completed_at": "2025-12-31T18:00:00Z",
                },
                headers=settable_service.headers,
            ),
            201,
        )
        account = funded["id"]
        progress_path = f"/v1/accounts/{account}/closure"

        def progress() -> dict[str, Any]:
            body: dict[str, Any] = _json(client.get(progress_path, headers=owner))
            return body

        # One round trip through the ledger opens the account at the broker
        # (an account opens there on its first order).
        _json(
            client.put(
                f"/v1/admin/simulated-market/{SYMBOL}",
                json={"bid": "100.00", "ask": "100.00"},
                headers=admin,
            )
        )
        opened = _json(
            client.post(
                f"/v1/funded-accounts/{account}/positions",
                json={"symbol": SYMBOL, "side": "long", "quantity": 1},
                headers=owner,
            ),
            201,
        )
        _json(
            client.post(
                f"/v1/funded-accounts/{account}/positions/{opened['position_id']}/close",
                headers=owner,
            )
        )
        started_clock = _json(client.get("/v1/admin/clock", headers=admin))
        assert started_clock["settable"] is True
        closure_id = _json(client.post(progress_path, json=CLOSURE_BODY, headers=owner), 202)["id"]

        # Nothing left to liquidate: the worker takes it to settling (T+1) on its own.
        settling = _until("settling", progress, lambda now: now["phase"] == "settling")
        assert settling["needs_attention"] is False
        deadline_at = datetime.fromisoformat(settling["deadline_at"])
        # A trade at the broker that the ledger never recorded: it never settles.
        _json(
            client.put(
                f"/v1/admin/simulated-market/{STRAY_SYMBOL}",
                json={"bid": "1.00", "ask": "1.00"},
                headers=admin,
            )
        )
        stray = _json(
            client.post(
                f"/v1/admin/simulated-broker/accounts/{account}/stray-positions",
                json={
                    "symbol": STRAY_SYMBOL,
                    "side": "long",
                    "quantity": 1,
                    "client_order_id": "stray",
                },
                headers=admin,
            )
        )["position_id"]

        # Past the settlement deadline (3 business days after settling began)
        # in one move of the service's clock.
        now = datetime.fromisoformat(_json(client.get("/v1/admin/clock", headers=admin))["now"])
        seconds = int((deadline_at - now).total_seconds()) + 1
        moved = _json(
            client.post("/v1/admin/clock/advance", json={"seconds": seconds}, headers=admin)
        )
        assert datetime.fromisoformat(moved["now"]) > deadline_at

        stuck = _until("stuck", progress, lambda now: now["needs_attention"])
        assert stuck["phase"] == "settling"
        assert stuck["stuck_reason"] == (
            f"settlement timed out after {SETTLEMENT_TIMEOUT_BUSINESS_DAYS} business days: "
            "the broker still reports open positions or unsettled trades"
        )
        listed = _json(client.get("/v1/closures", params={"status": "stuck"}, headers=admin))
        assert [item["id"] for item in listed["items"]] == [closure_id]

        # The broker settles the stray trade; an admin resumes; it completes.
        _json(
            client.post(
                f"/v1/admin/simulated-broker/stray-positions/{stray}/close",
                json={"client_order_id": "stray-close"},
                headers=admin,
            )
        )
        resumed = _json(
            client.post(f"/v1/closures/{closure_id}/resume", json={"dry_run": False}, headers=admin)
        )
        assert resumed["closure"]["needs_attention"] is False
        completed = _until("completed", progress, lambda now: now["phase"] == "completed")
        assert completed["stuck_reason"] is None
        assert (
            _json(client.get("/v1/closures", params={"status": "stuck"}, headers=admin))["items"]
            == []
        )


def test_the_clock_cannot_be_moved_on_a_service_on_the_system_clock(
    service: ServiceProcess, database_url: str
) -> None:
    admin = bearer(create_api_key(database_url, Role.ADMIN))
    with httpx.Client(base_url=service.base_url, timeout=HTTP_TIMEOUT_S) as client:
        assert _json(client.get("/v1/admin/clock", headers=admin))["settable"] is False
        refused = client.post("/v1/admin/clock/advance", json={"seconds": 60}, headers=admin)
        assert_error(refused, 404, "settable_clock_unavailable")


def test_a_settable_clock_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_CLOCK_SETTABLE", "true")
    monkeypatch.setenv("LEDGER_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="LEDGER_CLOCK_SETTABLE is refused"):
        Settings()
