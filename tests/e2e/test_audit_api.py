"""`GET /v1/audit/events`: auditors and admins stream the log as JSON Lines,
filtered and paged; everyone else is refused; bad parameters are 422."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.audit.export import EXPORT_LIMIT_MAX, MEDIA_TYPE
from interface.bootstrap import Ledger
from interface.demo.ledger_transfers import DEMO_USER_OWNER, load_demo
from tests.support.api_keys import bearer

DEMO_TRANSFERS = 300
ROUTE = "/v1/audit/events"


@pytest.fixture
def auditor(ledger: Ledger) -> dict[str, str]:
    load_demo(ledger.service, transfers=DEMO_TRANSFERS)
    return bearer(ledger.api_keys.create(Role.AUDITOR)[1])


def _lines(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    return [orjson.loads(line) for line in response.content.splitlines()]


def test_an_auditor_streams_the_log_in_order(
    ledger: Ledger, client: TestClient, auditor: dict[str, str]
) -> None:
    lines = _lines(client.get(ROUTE, params={"limit": EXPORT_LIMIT_MAX}, headers=auditor))
    positions = [line["position"] for line in lines]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert positions[-1] == ledger.writer.last_position
    for previous, line in itertools.pairwise(lines):
        assert line["previous_hash"] == previous["hash"]
    assert {"position", "originator_id", "originator_version", "type", "recorded_at"} <= set(
        lines[0]
    )


def test_limit_and_after_page_through_the_log(
    ledger: Ledger, client: TestClient, auditor: dict[str, str]
) -> None:
    first = _lines(client.get(ROUTE, params={"limit": 50}, headers=auditor))
    second = _lines(
        client.get(ROUTE, params={"limit": 50, "after": first[-1]["position"]}, headers=auditor)
    )
    both = _lines(client.get(ROUTE, params={"limit": 100}, headers=auditor))
    assert len(first) == len(second) == 50
    assert first + second == both


def test_filters_by_account_and_time(
    ledger: Ledger, client: TestClient, auditor: dict[str, str]
) -> None:
    everything = _lines(client.get(ROUTE, params={"limit": EXPORT_LIMIT_MAX}, headers=auditor))
    account = next(line for line in everything if line["type"].endswith("Account.Opened"))
    own = _lines(
        client.get(
            ROUTE,
            params={"account": account["originator_id"], "limit": EXPORT_LIMIT_MAX},
            headers=auditor,
        )
    )
    assert own[0] == account
    for line in own:
        assert line["originator_id"] == account["originator_id"] or line["type"].startswith(
            "domain.transfer:"
        )
    middle = everything[len(everything) // 2]["recorded_at"]
    later = _lines(
        client.get(ROUTE, params={"from": middle, "limit": EXPORT_LIMIT_MAX}, headers=auditor)
    )
    earlier = _lines(
        client.get(ROUTE, params={"to": middle, "limit": EXPORT_LIMIT_MAX}, headers=auditor)
    )
    assert earlier + later == everything
    assert all(line["recorded_at"] >= middle for line in later)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": EXPORT_LIMIT_MAX + 1},
        {"after": -1},
        {"account": "not-a-uuid"},
        {"from": "2026-01-01T00:00:00"},  # no offset: ambiguous
        {"to": "yesterday"},
        {"to": "0.5"},  # not seconds since 1970: the schema says date-time
    ],
)
def test_bad_parameters_are_refused(
    client: TestClient, auditor: dict[str, str], params: dict[str, Any]
) -> None:
    response = client.get(ROUTE, params=params, headers=auditor)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"]


def test_only_auditors_and_admins_may_read_the_history(ledger: Ledger) -> None:
    keys = {
        Role.ADMIN: 200,
        Role.AUDITOR: 200,
        Role.SERVICE: 403,
    }
    with TestClient(create_app(ledger=ledger)) as client:
        for role, status in keys.items():
            key = ledger.api_keys.create(role)[1]
            assert client.get(ROUTE, headers=bearer(key)).status_code == status, role
        user = ledger.api_keys.create(Role.USER, owner_id=DEMO_USER_OWNER)[1]
        refused = client.get(ROUTE, headers=bearer(user))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert client.get(ROUTE).status_code == 401
