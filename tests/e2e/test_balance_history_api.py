"""Balances from the views: as of a past time or log position, and reading
one's own writes (the write's position, a bounded wait, 503 past it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.api.consistency import POSITION_HEADER
from interface.bootstrap import Ledger
from projections.registry import all_views
from projections.runner import ProjectionRunner
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error, open_account, transfer_body

# Log times come from the database's clock; the test's clock is the same
# machine's, and a pause keeps a time taken between writes clearly between them.
PAUSE_BETWEEN_WRITES_S = 0.05


def _move(client: TestClient, debit: str, credit: str, amount: str) -> int:
    response = client.post("/v1/transfers", json=transfer_body(debit, credit, amount))
    assert response.status_code == 201, response.text
    return int(response.headers[POSITION_HEADER])


def _balance(client: TestClient, account_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/accounts/{account_id}/balance", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_balance_as_of_a_position_or_a_time_is_the_balance_then(client: TestClient) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    user = open_account(client, flagged=True)["id"]
    positions, times = [], []
    for amount in ("10.00", "2.50", "0.25"):
        time.sleep(PAUSE_BETWEEN_WRITES_S)
        times.append(datetime.now(UTC))
        time.sleep(PAUSE_BETWEEN_WRITES_S)
        positions.append(_move(client, cash, user, amount))
    by_position = [
        _balance(client, user, as_of_position=position)["balances"]["posted"]
        for position in positions
    ]
    assert by_position == ["10.00", "12.50", "12.75"]
    by_time = [
        _balance(client, user, as_of=moment.isoformat())["balances"]["posted"] for moment in times
    ]
    assert by_time == ["0.00", "10.00", "12.50"]
    now = _balance(client, user)
    assert now["balances"]["posted"] == "12.75"
    assert now["last_change_position"] >= positions[-1]
    earlier = _balance(client, user, as_of_position=positions[1])
    assert earlier["as_of_position"] == positions[1]
    assert earlier["last_change_position"] <= positions[1]


def test_as_of_questions_that_cannot_be_answered_are_refused(client: TestClient) -> None:
    user = open_account(client, flagged=True)["id"]
    url = f"/v1/accounts/{user}/balance"
    assert_error(
        client.get(url, params={"as_of": "2026-01-01T00:00:00Z", "as_of_position": 1}),
        422,
        "invalid_request",
    )
    assert_error(client.get(url, params={"as_of": "2026-01-01T00:00:00"}), 422, "invalid_request")
    assert_error(client.get(url, params={"as_of_position": 10**12}), 409, "position_not_reached")
    assert_error(client.get(url, params={"as_of_position": -1}), 422, "invalid_request")


def test_a_user_cannot_read_another_owners_balance_history(
    client: TestClient, ledger: Ledger
) -> None:
    theirs = open_account(client, flagged=True, owner_id="someone")["id"]
    _, key = ledger.api_keys.create(Role.USER, owner_id="owner-1")
    response = client.get(f"/v1/accounts/{theirs}/balance", headers=bearer(key))
    assert_error(response, 404, "account_not_found")


def test_a_read_waits_for_the_views_to_reach_the_write_it_names(
    client: TestClient, ledger: Ledger
) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    user = open_account(client, flagged=True)["id"]
    position = _move(client, cash, user, "5.00")
    response = client.get(f"/v1/accounts/{user}", params={"min_position": position})
    assert response.status_code == 200, response.text
    assert response.json()["balances"]["posted"] == "5.00"


def test_views_that_cannot_reach_a_position_answer_503_not_stale_data(
    client: TestClient, ledger: Ledger
) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    user = open_account(client, flagged=True)["id"]
    assert ledger.projections is not None
    ledger.projections.stop()
    ledger.settings = ledger.settings.model_copy(update={"read_wait_s_max": 0.2})
    position = _move(client, cash, user, "5.00")
    # Without min_position the read waits for this server's own last write.
    for params in ({}, {"min_position": position}):
        response = client.get(f"/v1/accounts/{user}", params=params)
        assert_error(response, 503, "projection_lagging")
        assert response.headers["Retry-After"] == "1"
    ledger.projections.start()
    response = client.get(f"/v1/accounts/{user}", params={"min_position": position})
    assert response.status_code == 200, response.text
    assert response.json()["balances"]["posted"] == "5.00"


def test_reads_wait_for_views_kept_by_a_runner_elsewhere(
    client: TestClient, ledger: Ledger
) -> None:
    assert ledger.projections is not None
    ledger.projections.stop()
    # Another process's runner, as with LEDGER_PROJECTIONS_IN_PROCESS=false.
    elsewhere = ProjectionRunner(ledger.database_url, all_views())
    elsewhere.start()
    try:
        cash = open_account(client, kind="cash", owner_id="platform")["id"]
        user = open_account(client, flagged=True)["id"]
        for amount, posted in (("5.00", "5.00"), ("2.50", "7.50")):
            position = _move(client, cash, user, amount)
            for params in ({}, {"min_position": position}):
                response = client.get(f"/v1/accounts/{user}", params=params)
                assert response.status_code == 200, response.text
                assert response.json()["balances"]["posted"] == posted
    finally:
        elsewhere.stop()
