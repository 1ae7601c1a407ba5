"""Reconciliation over HTTP (docs/rules.md#reconciliation): start a run, read
its report, list the exceptions it raised, resolve one with a name and a note.

Every check is the real one, on the test's real PostgreSQL, with the
in-process simulated broker and sandbox payout gateway the server runs.
"""

from __future__ import annotations

import time
from typing import Any, Final

from fastapi.testclient import TestClient

from domain.positions import PositionSide
from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error
from tests.support.withdrawals import SYMBOL, profitable_funded_account

CHECKS: Final = [
    "ledger",
    "projections",
    "payouts",
    "broker",
    "deposits",
    "withdrawals",
    "broker_sync",
]
RUN_WAIT_S: Final[float] = 120.0


def _admin(ledger: Ledger) -> dict[str, str]:
    return bearer(ledger.api_keys.create(Role.ADMIN, label="reconciliation-admin")[1])


def _completed_report(client: TestClient) -> dict[str, Any]:
    started = client.post("/v1/reconciliation/runs", json={"type": "manual"})
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "running"
    location = started.headers["Location"]
    assert location == f"/v1/reconciliation/reports/{started.json()['id']}"
    deadline = time.monotonic() + RUN_WAIT_S
    while True:
        report: dict[str, Any] = client.get(location).json()
        if report["status"] != "running":
            return report
        assert time.monotonic() < deadline, report
        time.sleep(0.05)


def test_a_clean_ledger_passes_every_check_and_is_listed(
    client: TestClient, ledger: Ledger
) -> None:
    profitable_funded_account(ledger, "trader-r1", 40_000)
    report = _completed_report(client)
    assert report["status"] == "passed", report
    assert [check["name"] for check in report["checks"]] == CHECKS
    assert all(check["passed"] for check in report["checks"]), report["checks"]
    assert report["exceptions"] == []
    assert (report["checks_passed"], report["checks_failed"]) == (len(CHECKS), 0)
    listed = client.get("/v1/reconciliation/reports").json()
    assert [item["id"] for item in listed["items"]] == [report["id"]]
    assert listed["next_cursor"] is None


def test_a_position_the_ledger_does_not_know_is_raised_then_resolved_by_a_person(
    client: TestClient, ledger: Ledger
) -> None:
    funded_account_id = profitable_funded_account(ledger, "trader-r2", 40_000)
    # A trade placed at the broker behind the ledger's back.
    ledger.broker.open_position(funded_account_id, SYMBOL, PositionSide.LONG, 3, "behind-the-back")
    report = _completed_report(client)
    assert report["status"] == "failed"
    by_name = {check["name"]: check for check in report["checks"]}
    assert not by_name["broker"]["passed"]
    assert all(by_name[name]["passed"] for name in CHECKS if name != "broker"), by_name
    (raised,) = report["exceptions"]
    assert (raised["kind"], raised["severity"], raised["status"]) == (
        "position_unknown_to_ledger",
        "high",
        "open",
    )
    assert (
        str(funded_account_id) in raised["message"] or str(funded_account_id) in (raised["subject"])
    )

    waiting = client.get(
        "/v1/reconciliation/exceptions", params={"severity": "high", "resolved": "false"}
    ).json()
    assert [item["id"] for item in waiting["items"]] == [raised["id"]]
    assert (
        client.get("/v1/reconciliation/exceptions", params={"severity": "critical"}).json()["items"]
        == []
    )

    admin = _admin(ledger)
    resolve = f"/v1/reconciliation/exceptions/{raised['id']}/resolve"
    blank = client.post(resolve, json={"resolved_by": "Ada Admin", "note": ""}, headers=admin)
    assert blank.status_code == 422, blank.text
    resolved = client.post(
        resolve,
        json={"resolved_by": "Ada Admin", "note": "a test order at the broker; closed there"},
        headers=admin,
    )
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["status"], body["resolved"], body["closed_by"]) == ("resolved", True, "Ada Admin")
    assert body["closing_note"] == "a test order at the broker; closed there"
    assert_error(
        client.post(resolve, json={"resolved_by": "Ada Admin", "note": "again"}, headers=admin),
        409,
        "reconciliation_exception_closed",
    )
    assert (
        client.get("/v1/reconciliation/exceptions", params={"resolved": "false"}).json()["items"]
        == []
    )
    assert [
        item["id"]
        for item in client.get("/v1/reconciliation/exceptions", params={"resolved": "true"}).json()[
            "items"
        ]
    ] == [raised["id"]]


def test_unknown_reports_exceptions_and_cursors_are_refused_with_codes(
    client: TestClient, ledger: Ledger
) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(
        client.get(f"/v1/reconciliation/reports/{unknown}"), 404, "reconciliation_run_not_found"
    )
    assert_error(
        client.post(
            f"/v1/reconciliation/exceptions/{unknown}/resolve",
            json={"resolved_by": "Ada Admin", "note": "what is this?"},
            headers=_admin(ledger),
        ),
        404,
        "reconciliation_exception_not_found",
    )
    assert_error(
        client.get("/v1/reconciliation/reports", params={"cursor": "nonsense"}),
        422,
        "invalid_cursor",
    )
    refused = client.post("/v1/reconciliation/runs", json={"type": "weekly"})
    assert refused.status_code == 422, refused.text


def test_reports_page_newest_first(client: TestClient, ledger: Ledger) -> None:
    first = _completed_report(client)["id"]
    second = _completed_report(client)["id"]
    page = client.get("/v1/reconciliation/reports", params={"limit": 1}).json()
    assert [item["id"] for item in page["items"]] == [second]
    rest = client.get(
        "/v1/reconciliation/reports", params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [item["id"] for item in rest["items"]] == [first]
    assert rest["next_cursor"] is None
