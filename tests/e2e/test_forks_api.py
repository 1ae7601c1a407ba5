"""Forks and merges over HTTP (docs/rules.md#tiers-forks-and-merges): the
opportunities an operator sees, a fork that makes a Rev child with $100,000 (or
rolls back, moving nothing), the 24-hour cooldown, an admin's approval below
the confidence bar; merges back into the parent, partial, into a sibling and a
new account, the ones that wait for an admin, and the refused ones; who may do
what.

Accounts past a threshold are made as a trader makes them: a Gen account
($10,000) that closed one trade up (tests/support/withdrawals).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from domain.fork import FORK_COOLDOWN, child_assessment_id
from domain.funded_account import funded_account_id_for
from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error
from tests.support.withdrawals import profitable_funded_account

OWNER, OTHER = "trader-f1", "trader-f2"
GEN_START_MINOR: Final[int] = 10_000_00
# docs/rules.md#tiers-forks-and-merges: market conditions 30 %, account
# performance 40 %, system load 20 %, timing 10 %.
FACTORS: Final[list[str]] = ["market_conditions", "account_performance", "system_load", "timing"]
WEIGHTS: Final[list[str]] = ["0.3", "0.4", "0.2", "0.1"]
# Monday, an hour and a half into the regular session: the session scores 1.
REGULAR_HOURS: Final = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
# Monday 14:45 UTC: the volatile first half hour of the session scores 0, for
# the market's session input and for the timing factor alike.
VOLATILE_PERIOD: Final = datetime(2026, 1, 5, 14, 45, tzinfo=UTC)
# A symbol priced by the tests through the admin's simulated market.
SYMBOL: Final[str] = "FORKX"
UNKNOWN: Final[str] = "00000000-0000-4000-8000-000000000000"
# A fork a day apart from the last, on the same account.
AFTER_COOLDOWN: Final = FORK_COOLDOWN + timedelta(minutes=1)

Headers = dict[str, str]


# Fixtures -------------------------------------------------------------------------


def _key(ledger: Ledger, role: Role, owner_id: str | None = None) -> Headers:
    return bearer(ledger.api_keys.create(role, owner_id=owner_id, label="e2e")[1])


@pytest.fixture
def admin(ledger: Ledger) -> Headers:
    return _key(ledger, Role.ADMIN)


@pytest.fixture
def auditor(ledger: Ledger) -> Headers:
    return _key(ledger, Role.AUDITOR)


@pytest.fixture
def platform(ledger: Ledger) -> Headers:
    return _key(ledger, Role.SERVICE)


@pytest.fixture
def owner(ledger: Ledger) -> Headers:
    return _key(ledger, Role.USER, OWNER)


@pytest.fixture
def other(ledger: Ledger) -> Headers:
    return _key(ledger, Role.USER, OTHER)


# Helpers --------------------------------------------------------------------------


def _json(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


def _account(ledger: Ledger, balance_minor: int, owner_id: str = OWNER) -> str:
    """A Gen account of `owner_id` with this balance, made by one winning trade."""
    return str(profitable_funded_account(ledger, owner_id, balance_minor - GEN_START_MINOR))


def _propose_fork(client: TestClient, account_id: str, headers: Headers) -> httpx.Response:
    response: httpx.Response = client.post(
        "/v1/forks", json={"funded_account_id": account_id}, headers=headers
    )
    return response


def _forked(client: TestClient, account_id: str, headers: Headers) -> dict[str, Any]:
    """A fork that must complete; its body."""
    fork = _json(_propose_fork(client, account_id, headers), 201)
    assert fork["status"] == "completed", fork
    return fork


def _funded(client: TestClient, account_id: str, headers: Headers) -> dict[str, Any]:
    return _json(client.get(f"/v1/funded-accounts/{account_id}", headers=headers))


def _balance(client: TestClient, account_id: str, headers: Headers) -> str:
    current: str = _funded(client, account_id, headers)["balances"]["current_balance"]
    return current


def _ledger_balance(client: TestClient, account_id: str, headers: Headers) -> dict[str, Any]:
    """The balances of the ledger account that holds a funded account's money."""
    ledger_account = _funded(client, account_id, headers)["ledger_account_id"]
    return _json(client.get(f"/v1/accounts/{ledger_account}/balance", headers=headers))


def _opportunities(client: TestClient, headers: Headers) -> dict[str, dict[str, Any]]:
    body = _json(client.get("/v1/forks/opportunities", headers=headers))
    return {item["funded_account_id"]: item for item in body["items"]}


def _family(
    client: TestClient, ledger: Ledger, clock: SettableClock, platform: Headers, children: int = 1
) -> tuple[str, list[str]]:
    """A Gen parent with Rev children made by forks over the API, a day apart;
    the parent keeps $20,000."""
    parent = _account(ledger, 20_000_00 + children * 100_000_00)
    made = []
    for _ in range(children):
        made.append(_forked(client, parent, platform)["child_id"])
        clock.advance(AFTER_COOLDOWN)
    return parent, made


def _merge_body(source_id: str, **change: Any) -> dict[str, Any]:
    return {"source_id": source_id, "target_kind": "parent", "reason": "consolidate"} | change


def _propose_merge(client: TestClient, body: Any, headers: Headers) -> httpx.Response:
    response: httpx.Response = client.post("/v1/merges", json=body, headers=headers)
    return response


def _price(client: TestClient, admin: Headers, price: str) -> None:
    _json(
        client.put(
            f"/v1/admin/simulated-market/{SYMBOL}",
            json={"bid": price, "ask": price},
            headers=admin,
        )
    )


def _open_position(
    client: TestClient, account_id: str, headers: Headers, side: str, quantity: int
) -> str:
    opened = _json(
        client.post(
            f"/v1/funded-accounts/{account_id}/positions",
            json={"symbol": SYMBOL, "side": side, "quantity": quantity},
            headers=headers,
        ),
        201,
    )
    position_id: str = opened["position_id"]
    return position_id


def _close_position(
    client: TestClient, account_id: str, position_id: str, headers: Headers
) -> None:
    _json(
        client.post(
            f"/v1/funded-accounts/{account_id}/positions/{position_id}/close", headers=headers
        )
    )


def _actor(ledger: Ledger, headers: Headers) -> str:
    principal = ledger.api_keys.authenticate(headers["Authorization"].removeprefix("Bearer "))
    assert principal is not None
    return principal.actor


# Opportunities --------------------------------------------------------------------


def test_opportunities_list_the_accounts_past_the_threshold_with_confidence_and_factors(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    admin: Headers,
    auditor: Headers,
    platform: Headers,
) -> None:
    clock.set(REGULAR_HOURS)
    ready = _account(ledger, 120_000_00)
    short_of_capital = _account(ledger, 105_000_00, OTHER)
    small = _account(ledger, 50_000_00)

    for headers in (admin, auditor, platform):
        listed = _opportunities(client, headers)
        assert set(listed) == {ready, short_of_capital}, listed
        assert small not in listed

    listed = _opportunities(client, admin)
    item = listed[ready]
    assert (item["owner_id"], item["tier"], item["child_tier"]) == (OWNER, "Gen", "Rev")
    assert (item["balance"], item["threshold"]) == ("120000.00", "100000.00")
    assert (item["amount"], item["executable_from"]) == ("100000.00", "110000.00")
    assert item["executable_now"] is True
    # No position, no drawdown, no fork executing, 20 % past the threshold,
    # regular hours: every factor full.
    assert item["confidence"] == "1"
    assert [f["name"] for f in item["factors"]] == FACTORS
    assert [f["weight"] for f in item["factors"]] == WEIGHTS
    assert [f["value"] for f in item["factors"]] == ["1", "1", "1", "1"]
    assert all(f["explanation"] and f["inputs"] for f in item["factors"])

    waiting = listed[short_of_capital]
    assert (waiting["owner_id"], waiting["balance"]) == (OTHER, "105000.00")
    # Past the threshold, but a fork would leave less than the Gen minimum.
    assert waiting["executable_now"] is False
    # 5 % past the threshold: recent returns score 1/2 of the three
    # performance inputs: (1/2 + 1 + 1) / 3 = 5/6.
    assert [f["value"] for f in waiting["factors"]] == ["1", "0.833333", "1", "1"]
    # 0.3 + 0.4 x 5/6 + 0.2 + 0.1 = 14/15, cut (never rounded up) to 6 places.
    assert waiting["confidence"] == "0.933333"


def test_opportunities_are_for_operators_and_limit_is_checked(
    client: TestClient, ledger: Ledger, owner: Headers, admin: Headers
) -> None:
    _account(ledger, 120_000_00)
    assert_error(client.get("/v1/forks/opportunities", headers=owner), 403, "forbidden")
    anonymous = client.get("/v1/forks/opportunities", headers={"Authorization": ""})
    assert anonymous.status_code == 401, anonymous.text
    for limit in (0, 10_001, "x"):
        response = client.get("/v1/forks/opportunities", params={"limit": limit}, headers=admin)
        assert_error(response, 422, "invalid_request")
    assert len(_opportunities(client, admin)) == 1


# Forks ----------------------------------------------------------------------------


def test_a_fork_at_120000_makes_a_rev_child_with_100000_and_the_parent_keeps_20000(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    other: Headers,
    admin: Headers,
    auditor: Headers,
    platform: Headers,
) -> None:
    clock.set(REGULAR_HOURS)
    parent = _account(ledger, 120_000_00)
    fork = _forked(client, parent, platform)

    assert UUID(fork["child_id"]) and fork["parent_id"] == parent
    assert (fork["parent_tier"], fork["child_tier"]) == ("Gen", "Rev")
    assert (fork["amount"], fork["currency"]) == ("100000.00", "USD")
    assert (fork["confidence"], fork["confidence_needed"]) == ("1", "0.7")
    assert fork["confidence_to_execute_at_once"] == "0.8"
    assert [f["name"] for f in fork["factors"]] == FACTORS
    assert fork["approved_automatically"] is True and fork["approved_by"]
    assert fork["rollback_reason"] is None
    assert datetime.fromisoformat(fork["proposed_at"]) == clock.now()

    child = _funded(client, fork["child_id"], owner)
    assert (child["tier"], child["state"], child["owner_id"]) == ("Rev", "active", OWNER)
    assert child["balances"]["starting_balance"] == "100000.00"
    assert child["balances"]["current_balance"] == "100000.00"
    after = _funded(client, parent, owner)
    assert (after["state"], after["balances"]["current_balance"]) == ("active", "20000.00")
    # The money moved in the ledger too: 100,000.00 out of the parent's account.
    assert _ledger_balance(client, fork["child_id"], admin)["balances"]["posted"] == "100000.00"
    assert _ledger_balance(client, parent, admin)["balances"]["posted"] == "20000.00"
    # No longer past the threshold: not an opportunity any more.
    assert _opportunities(client, admin) == {}

    # Everyone who may read it reads the same fork; another owner does not.
    for headers in (owner, admin, auditor, platform):
        assert _json(client.get(f"/v1/forks/{fork['id']}", headers=headers)) == fork
    assert_error(client.get(f"/v1/forks/{fork['id']}", headers=other), 404, "fork_not_found")
    assert_error(client.get(f"/v1/forks/{UNKNOWN}", headers=admin), 404, "fork_not_found")

    # Completed: nothing to approve; only admins are let that far.
    approve = f"/v1/forks/{fork['id']}/approve"
    assert_error(client.post(approve, headers=admin), 409, "invalid_state_transition")
    for refused in (owner, auditor, platform):
        assert_error(client.post(approve, headers=refused), 403, "forbidden")
    assert_error(client.post(f"/v1/forks/{UNKNOWN}/approve", headers=admin), 404, "fork_not_found")
    assert _json(client.get(f"/v1/forks/{fork['id']}", headers=admin)) == fork

    # At $20,000 the parent is under the threshold: no second fork, cooldown or not.
    assert_error(_propose_fork(client, parent, platform), 422, "fork_not_allowed")


def test_a_second_fork_within_24_hours_answers_409_fork_cooldown_with_when_it_ends(
    client: TestClient, ledger: Ledger, clock: SettableClock, admin: Headers, platform: Headers
) -> None:
    # $230,000: after one fork the parent still holds $130,000, past the threshold.
    parent = _account(ledger, 230_000_00)
    forked_at = clock.now()
    first = _forked(client, parent, platform)
    assert _balance(client, parent, admin) == "130000.00"

    clock.advance(timedelta(hours=23, minutes=59))
    refused = assert_error(_propose_fork(client, parent, admin), 409, "fork_cooldown")
    ends_at = datetime.fromisoformat(refused["error"]["details"]["ends_at"])
    assert ends_at == forked_at + FORK_COOLDOWN
    assert _balance(client, parent, admin) == "130000.00"

    clock.set(ends_at)
    second = _forked(client, parent, admin)
    assert second["id"] != first["id"] and second["child_id"] != first["child_id"]
    assert _balance(client, parent, admin) == "30000.00"


def test_a_fork_that_would_leave_the_parent_under_its_minimum_rolls_back_and_moves_nothing(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    admin: Headers,
    platform: Headers,
) -> None:
    parent = _account(ledger, 105_000_00)
    before = _funded(client, parent, owner)
    ledger_before = _ledger_balance(client, parent, admin)

    fork = _json(_propose_fork(client, parent, platform), 201)
    assert fork["status"] == "rolled_back"
    assert fork["child_id"] is None
    assert fork["rollback_reason"] and "minimum" in fork["rollback_reason"]

    # Nothing moved, no child was made, the parent trades again.
    after = _funded(client, parent, owner)
    assert after["state"] == "active"
    assert after["balances"] == before["balances"]
    assert _ledger_balance(client, parent, admin)["balances"] == ledger_before["balances"]
    child_id = funded_account_id_for(child_assessment_id(UUID(fork["id"])))
    assert_error(
        client.get(f"/v1/funded-accounts/{child_id}", headers=admin),
        404,
        "funded_account_not_found",
    )
    listed = _json(client.get("/v1/funded-accounts", headers=owner))["items"]
    assert [item["id"] for item in listed] == [parent]

    # The attempt counts: the next is 24 hours later.
    refused = assert_error(_propose_fork(client, parent, platform), 409, "fork_cooldown")
    ends_at = datetime.fromisoformat(refused["error"]["details"]["ends_at"])
    assert ends_at == clock.now() + FORK_COOLDOWN
    clock.set(ends_at)
    again = _json(_propose_fork(client, parent, platform), 201)
    assert again["id"] != fork["id"] and again["status"] == "rolled_back"


def test_below_the_confidence_bar_a_fork_waits_for_an_admin(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    admin: Headers,
    auditor: Headers,
    platform: Headers,
) -> None:
    clock.set(VOLATILE_PERIOD)
    # $128,000, then a short of 5 at $1,000 closed at $3,176, losing $10,880:
    # $117,120, a drawdown of 17/200 against a 1/10 limit (the warning band).
    # Performance (returns 1 + consistency 1/2 + risk 3/20) / 3 = 11/20; the
    # market 2/3 and timing 0 in the volatile half hour; load 1:
    # 0.3 x 2/3 + 0.4 x 11/20 + 0.2 + 0 = 31/50, under 7/10.
    parent = _account(ledger, 128_000_00)
    _price(client, admin, "1000.00")
    position = _open_position(client, parent, platform, "short", 5)
    _price(client, admin, "3176.00")
    _close_position(client, parent, position, platform)
    assert _balance(client, parent, admin) == "117120.00"
    assert _opportunities(client, admin)[parent]["confidence"] == "0.62"

    fork = _json(_propose_fork(client, parent, platform), 201)
    assert fork["status"] == "proposed"
    assert fork["confidence"] == "0.62"
    assert [f["value"] for f in fork["factors"]] == ["0.666666", "0.55", "1", "0"]
    assert (fork["approved_automatically"], fork["approved_by"], fork["child_id"]) == (
        False,
        None,
        None,
    )
    assert _balance(client, parent, admin) == "117120.00"

    approve = f"/v1/forks/{fork['id']}/approve"
    for refused in (owner, auditor, platform):
        assert_error(client.post(approve, headers=refused), 403, "forbidden")
    done = _json(client.post(approve, headers=admin))
    assert done["status"] == "completed" and done["child_id"]
    assert done["approved_by"] == _actor(ledger, admin)
    assert done["approved_automatically"] is False
    assert _funded(client, done["child_id"], owner)["balances"]["starting_balance"] == "100000.00"
    assert _balance(client, parent, admin) == "17120.00"
    assert_error(client.post(approve, headers=admin), 409, "invalid_state_transition")


def test_users_and_auditors_cannot_propose_forks(
    client: TestClient, ledger: Ledger, owner: Headers, other: Headers, auditor: Headers
) -> None:
    parent = _account(ledger, 120_000_00)
    for headers in (owner, other, auditor):
        assert_error(_propose_fork(client, parent, headers), 403, "forbidden")
    assert _propose_fork(client, parent, {"Authorization": ""}).status_code == 401
    # Nothing was attempted: no cooldown started, the account as it was.
    assert _balance(client, parent, owner) == "120000.00"


def test_forks_of_unknown_small_or_inactive_accounts_are_refused(
    client: TestClient, ledger: Ledger, admin: Headers, platform: Headers
) -> None:
    assert_error(_propose_fork(client, UNKNOWN, platform), 404, "funded_account_not_found")
    small = _account(ledger, 50_000_00)
    refused = assert_error(_propose_fork(client, small, platform), 422, "fork_not_allowed")
    assert refused["error"]["details"]["threshold_minor"] == 100_000_00
    suspended = _account(ledger, 120_000_00)
    _json(
        client.post(
            f"/v1/funded-accounts/{suspended}/state",
            json={"state": "suspended", "reason": "review"},
            headers=admin,
        )
    )
    assert_error(_propose_fork(client, suspended, platform), 409, "account_not_active")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing-account"),
        pytest.param({"funded_account_id": "not-a-uuid"}, id="not-a-uuid"),
        pytest.param({"funded_account_id": 7}, id="number"),
        pytest.param({"funded_account_id": UNKNOWN, "force": True}, id="unknown-field"),
        pytest.param([], id="not-an-object"),
    ],
)
def test_a_bad_fork_body_is_refused_with_422(
    client: TestClient, platform: Headers, body: Any
) -> None:
    assert_error(client.post("/v1/forks", json=body, headers=platform), 422, "invalid_request")


def test_a_fork_id_that_is_not_a_uuid_is_refused(client: TestClient, admin: Headers) -> None:
    assert_error(client.get("/v1/forks/not-a-uuid", headers=admin), 422, "invalid_request")
    assert_error(client.get("/v1/merges/not-a-uuid", headers=admin), 422, "invalid_request")


# Merges ---------------------------------------------------------------------------


def test_a_child_merged_back_into_its_parent_is_closed_and_the_parent_holds_it_all(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    other: Headers,
    admin: Headers,
    auditor: Headers,
    platform: Headers,
) -> None:
    parent, (child,) = _family(client, ledger, clock, platform)
    body = _merge_body(child, idempotency_key="merge-back")
    merge = _json(_propose_merge(client, body, admin), 201)

    assert merge["status"] == "completed"
    assert (merge["source_id"], merge["target_kind"], merge["target_id"]) == (
        child,
        "parent",
        parent,
    )
    assert (merge["amount"], merge["moved"], merge["currency"]) == (None, "100000.00", "USD")
    assert (merge["trigger"], merge["urgency"], merge["reason"]) == (
        "manual",
        "medium",
        "consolidate",
    )
    # Reliability 1 x 0.3 + benefit 1 (the whole balance) x 0.4 + a medium
    # urgency's risk 1/2 x 0.3, as a ratio string like every other.
    assert merge["confidence"] == "0.85"
    assert merge["approved_by"] == _actor(ledger, admin)
    assert merge["rollback_reason"] is None

    closed = _funded(client, child, owner)
    assert (closed["state"], closed["balances"]["current_balance"]) == ("closed", "0.00")
    assert _balance(client, parent, owner) == "120000.00"
    assert _ledger_balance(client, parent, admin)["balances"]["posted"] == "120000.00"
    assert _ledger_balance(client, child, admin)["balances"]["posted"] == "0.00"

    for headers in (owner, admin, auditor, platform):
        assert _json(client.get(f"/v1/merges/{merge['id']}", headers=headers)) == merge
    assert_error(client.get(f"/v1/merges/{merge['id']}", headers=other), 404, "merge_not_found")
    assert_error(client.get(f"/v1/merges/{UNKNOWN}", headers=admin), 404, "merge_not_found")
    # The same key finds the same merge; nothing moves twice.
    assert _json(_propose_merge(client, body, platform), 201) == merge
    assert _balance(client, parent, owner) == "120000.00"
    # Completed: nothing to approve.
    approve = f"/v1/merges/{merge['id']}/approve"
    assert_error(client.post(approve, headers=admin), 409, "invalid_state_transition")


def test_a_partial_merge_moves_the_amount_and_the_child_trades_on(
    client: TestClient, ledger: Ledger, clock: SettableClock, owner: Headers, platform: Headers
) -> None:
    parent, (child,) = _family(client, ledger, clock, platform)
    merge = _json(_propose_merge(client, _merge_body(child, amount="25000.00"), platform), 201)
    assert merge["status"] == "completed"
    assert (merge["amount"], merge["moved"], merge["target_id"]) == (
        "25000.00",
        "25000.00",
        parent,
    )
    partial = _funded(client, child, owner)
    assert (partial["state"], partial["balances"]["current_balance"]) == ("active", "75000.00")
    assert _balance(client, parent, owner) == "45000.00"


def test_merges_into_a_sibling_and_into_a_new_account(
    client: TestClient, ledger: Ledger, clock: SettableClock, owner: Headers, platform: Headers
) -> None:
    parent, (first, second) = _family(client, ledger, clock, platform, children=2)
    into_sibling = _json(
        _propose_merge(
            client, _merge_body(second, target_kind="sibling", target_id=first), platform
        ),
        201,
    )
    assert (into_sibling["status"], into_sibling["target_id"]) == ("completed", first)
    assert _balance(client, first, owner) == "200000.00"
    assert _funded(client, second, owner)["state"] == "closed"

    fresh = _json(
        _propose_merge(client, _merge_body(first, target_kind="new_account"), platform), 201
    )
    assert fresh["status"] == "completed" and fresh["target_id"]
    made = _funded(client, fresh["target_id"], owner)
    assert (made["tier"], made["state"]) == ("Rev", "active")
    assert made["balances"]["starting_balance"] == "200000.00"
    assert _funded(client, first, owner)["state"] == "closed"
    assert _balance(client, parent, owner) == "20000.00"


def test_an_underperformance_merge_waits_for_an_admin(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    auditor: Headers,
    admin: Headers,
    platform: Headers,
) -> None:
    parent, (child,) = _family(client, ledger, clock, platform)
    waiting = _json(
        _propose_merge(
            client,
            _merge_body(child, trigger="underperformance", urgency="high", reason="lagging"),
            platform,
        ),
        201,
    )
    assert (waiting["status"], waiting["approved_by"], waiting["moved"]) == (
        "proposed",
        None,
        None,
    )
    assert _balance(client, child, owner) == "100000.00"
    assert _json(client.get(f"/v1/merges/{waiting['id']}", headers=owner)) == waiting

    approve = f"/v1/merges/{waiting['id']}/approve"
    for refused in (owner, auditor, platform):
        assert_error(client.post(approve, headers=refused), 403, "forbidden")
    assert _balance(client, child, owner) == "100000.00"
    done = _json(client.post(approve, headers=admin))
    assert (done["status"], done["moved"]) == ("completed", "100000.00")
    assert done["approved_by"] == _actor(ledger, admin)
    assert _funded(client, child, owner)["state"] == "closed"
    assert _balance(client, parent, owner) == "120000.00"
    assert_error(client.post(approve, headers=admin), 409, "invalid_state_transition")
    assert_error(
        client.post(f"/v1/merges/{UNKNOWN}/approve", headers=admin), 404, "merge_not_found"
    )


def test_a_critical_merge_runs_at_once(
    client: TestClient, ledger: Ledger, clock: SettableClock, owner: Headers, platform: Headers
) -> None:
    _, (child,) = _family(client, ledger, clock, platform)
    body = _merge_body(child, trigger="risk", urgency="critical", reason="risk")
    merge = _json(_propose_merge(client, body, platform), 201)
    assert merge["status"] == "completed" and merge["approved_by"]
    assert _funded(client, child, owner)["state"] == "closed"


def test_a_merge_of_an_account_holding_positions_answers_409_open_positions(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    admin: Headers,
    platform: Headers,
) -> None:
    _, (child,) = _family(client, ledger, clock, platform)
    _price(client, admin, "100.00")
    position = _open_position(client, child, platform, "long", 10)
    body = _merge_body(child, idempotency_key="held")
    refused = assert_error(_propose_merge(client, body, platform), 409, "open_positions")
    assert refused["error"]["details"]["open_positions"] == 1
    assert _funded(client, child, owner)["state"] == "active"
    # Once closed, the same request goes through: the refusal recorded nothing.
    _close_position(client, child, position, platform)
    assert _json(_propose_merge(client, body, platform), 201)["status"] == "completed"


def test_a_merge_into_something_that_is_not_a_sibling_or_a_parent_answers_422(
    client: TestClient, ledger: Ledger, clock: SettableClock, owner: Headers, platform: Headers
) -> None:
    parent, (child,) = _family(client, ledger, clock, platform)
    stranger = _account(ledger, 20_000_00)
    for body in (
        # An account of the same owner under no parent.
        _merge_body(child, target_kind="sibling", target_id=stranger),
        # Its own parent is not its sibling; nor is itself.
        _merge_body(child, target_kind="sibling", target_id=parent),
        _merge_body(child, target_kind="sibling", target_id=child),
        # A sibling merge names the sibling.
        _merge_body(child, target_kind="sibling"),
        # An account without a parent has none to merge into.
        _merge_body(stranger),
    ):
        assert_error(_propose_merge(client, body, platform), 422, "merge_target_invalid")
    assert_error(
        _propose_merge(
            client, _merge_body(child, target_kind="sibling", target_id=UNKNOWN), platform
        ),
        404,
        "funded_account_not_found",
    )
    assert_error(
        _propose_merge(client, _merge_body(UNKNOWN), platform), 404, "funded_account_not_found"
    )
    assert _balance(client, child, owner) == "100000.00"
    assert _funded(client, child, owner)["state"] == "active"


def test_users_and_auditors_cannot_propose_merges(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    auditor: Headers,
    platform: Headers,
) -> None:
    _, (child,) = _family(client, ledger, clock, platform)
    for headers in (owner, auditor):
        assert_error(_propose_merge(client, _merge_body(child), headers), 403, "forbidden")
    assert _propose_merge(client, _merge_body(child), {"Authorization": ""}).status_code == 401
    assert _funded(client, child, owner)["state"] == "active"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param({"unexpected": "field"}, "invalid_request", id="unknown-field"),
        pytest.param({"amount": "abc"}, "invalid_amount", id="amount-not-a-number"),
        pytest.param({"amount": 25000}, "invalid_amount", id="amount-as-json-number"),
        pytest.param({"amount": "-1.00"}, "amount_must_be_positive", id="negative-amount"),
        pytest.param({"amount": "0.00"}, "amount_must_be_positive", id="zero-amount"),
        pytest.param({"amount": "1.001"}, "amount_has_too_many_decimals", id="three-decimals"),
        pytest.param({"amount": ""}, "invalid_amount", id="empty-amount"),
        pytest.param({"reason": "con\x00solidate"}, "invalid_string", id="nul-in-reason"),
        pytest.param({"reason": "line\nbreak"}, "invalid_string", id="control-in-reason"),
        pytest.param({"reason": ""}, "invalid_request", id="empty-reason"),
        pytest.param({"reason": " padded"}, "invalid_request", id="outer-space-in-reason"),
        pytest.param({"reason": "r" * 501}, "invalid_request", id="long-reason"),
        pytest.param({"reason": 7}, "invalid_request", id="number-as-reason"),
        pytest.param({"target_kind": "cousin"}, "invalid_request", id="unknown-target-kind"),
        pytest.param({"trigger": "boredom"}, "invalid_request", id="unknown-trigger"),
        pytest.param({"urgency": "whenever"}, "invalid_request", id="unknown-urgency"),
        pytest.param({"source_id": "not-a-uuid"}, "invalid_request", id="bad-source"),
        pytest.param({"target_id": "not-a-uuid"}, "invalid_request", id="bad-target"),
        pytest.param({"idempotency_key": ""}, "invalid_request", id="empty-key"),
    ],
)
def test_a_bad_merge_body_is_refused_with_422_and_moves_nothing(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    platform: Headers,
    change: dict[str, Any],
    code: str,
) -> None:
    _, (child,) = _family(client, ledger, clock, platform)
    assert_error(_propose_merge(client, _merge_body(child) | change, platform), 422, code)
    assert _funded(client, child, owner)["state"] == "active"
    assert _balance(client, child, owner) == "100000.00"


def test_a_merge_body_without_its_required_fields_is_refused(
    client: TestClient, ledger: Ledger, clock: SettableClock, platform: Headers
) -> None:
    _, (child,) = _family(client, ledger, clock, platform)
    for missing in ("source_id", "target_kind", "reason"):
        body = {k: v for k, v in _merge_body(child).items() if k != missing}
        assert_error(_propose_merge(client, body, platform), 422, "invalid_request")
    assert_error(_propose_merge(client, [], platform), 422, "invalid_request")


# Fork confidence: execute at once, approve and wait, manual review ----------------


def _hold(
    client: TestClient,
    admin: Headers,
    owner: Headers,
    account_id: str,
    quote: dict[str, str],
) -> None:
    """One unit of SYMBOL held, quoted as given (bid, ask, open, last_close)."""
    _json(client.put(f"/v1/admin/simulated-market/{SYMBOL}", json=quote, headers=admin))
    _open_position(client, account_id, owner, "long", 1)


def _values(fork: dict[str, Any]) -> list[str]:
    return [factor["value"] for factor in fork["factors"]]


def test_fork_confidence_of_80_percent_or_more_is_approved_and_executed_at_once(
    client: TestClient, ledger: Ledger, clock: SettableClock, platform: Headers
) -> None:
    clock.set(VOLATILE_PERIOD)
    parent = _account(ledger, 120_000_00)
    fork = _json(_propose_fork(client, parent, platform), 201)
    # Market (1 volatility + 1 liquidity + 0 session) / 3 = 2/3, performance 1,
    # load 1, timing 0: 0.3 x 2/3 + 0.4 + 0.2 + 0 = 80 % exactly.
    assert _values(fork) == ["0.666666", "1", "1", "0"]
    # Exact: the bar is reached, not missed by a float's last bit.
    assert fork["confidence"] == "0.8"
    assert (fork["decision"], fork["status"]) == ("execute_at_once", "completed")
    assert fork["child_id"] is not None
    timing = fork["factors"][3]
    assert timing["inputs"] == {"at": VOLATILE_PERIOD.isoformat(), "session_score": "0"}


def test_fork_confidence_from_70_to_80_percent_is_approved_and_waits_for_execution(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    platform: Headers,
    admin: Headers,
    owner: Headers,
) -> None:
    clock.set(VOLATILE_PERIOD)
    parent = _account(ledger, 120_000_00)
    # A gap of 2.5 % (open 102.50, last close 100.00) on the symbol held:
    # volatility scores 1/2, the market (1/2 + 1 + 0) / 3 = 1/2.
    quote = {"bid": "100.00", "ask": "100.00", "open": "102.50", "last_close": "100.00"}
    _hold(client, admin, owner, parent, quote)
    fork = _json(_propose_fork(client, parent, platform), 201)
    # 0.3 x 1/2 + 0.4 x 1 + 0.2 x 1 + 0.1 x 0 = 75 %.
    assert _values(fork) == ["0.5", "1", "1", "0"]
    assert fork["confidence"] == "0.75"
    market = fork["factors"][0]["inputs"]
    assert (market["volatility"], market["symbols"]) == ("0.025", SYMBOL)
    # Approved, not executed: nothing moved.
    assert (fork["decision"], fork["status"]) == ("approve_and_wait", "approved")
    assert fork["approved_automatically"] is True and fork["child_id"] is None
    assert _balance(client, parent, owner) == "120000.00"
    assert _json(client.get(f"/v1/forks/{fork['id']}", headers=admin))["status"] == "approved"

    # Its execution step: an explicit execute (or the next scan).
    executed = _json(client.post(f"/v1/forks/{fork['id']}/execute", headers=admin))
    assert executed["status"] == "completed" and executed["child_id"] is not None
    assert _balance(client, parent, owner) == "20000.00"


def test_fork_confidence_under_70_percent_waits_for_manual_review(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    platform: Headers,
    admin: Headers,
    owner: Headers,
) -> None:
    clock.set(VOLATILE_PERIOD)
    parent = _account(ledger, 120_000_00)
    # A 5 % gap (volatility 0) and a 0.1 % spread (liquidity 1 - 0.1 / 0.5 = 4/5):
    # the market (0 + 4/5 + 0) / 3 = 4/15.
    quote = {"bid": "100.00", "ask": "100.10", "open": "105.00", "last_close": "100.00"}
    _hold(client, admin, owner, parent, quote)
    fork = _json(_propose_fork(client, parent, platform), 201)
    assert _values(fork)[0] == "0.266666"
    # 0.3 x 4/15 + 0.4 x (just under 1: the long is marked 0.10 under its
    # entry) + 0.2 + 0 = just under 68 %.
    assert Decimal("0.6799") < Decimal(fork["confidence"]) < Decimal("0.68")
    assert (fork["decision"], fork["status"]) == ("manual_review", "proposed")
    assert fork["approved_automatically"] is False
    assert _balance(client, parent, owner) == "120000.00"


# The list ---------------------------------------------------------------------------


def test_the_list_answers_each_fork_as_it_reads_alone_reading_the_page_in_one_query(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    other: Headers,
    admin: Headers,
    platform: Headers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.set(REGULAR_HOURS)
    mine = [_forked(client, _account(ledger, balance), platform) for balance in (120_000_00,) * 2]
    theirs = _forked(client, _account(ledger, 130_000_00, OTHER), platform)
    alone = {
        fork["id"]: _json(client.get(f"/v1/forks/{fork['id']}", headers=admin))
        for fork in [*mine, theirs]
    }

    def one_at_a_time(*_: object) -> None:
        raise AssertionError("the list loads a page's forks in one query, not one by one")

    monkeypatch.setattr(ledger.app, "load_fork", one_at_a_time)
    listed = _json(client.get("/v1/forks", headers=admin))
    assert listed["items"] == [alone[fork["id"]] for fork in [*mine, theirs]]
    assert listed["has_more"] is False

    # Paged: the same forks, in the order they were proposed.
    first = _json(client.get("/v1/forks", params={"limit": 2}, headers=admin))
    assert first["has_more"] is True
    rest = _json(
        client.get("/v1/forks", params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin)
    )
    assert [*first["items"], *rest["items"]] == listed["items"]
    # A user lists the forks of their own accounts only.
    assert _json(client.get("/v1/forks", headers=owner))["items"] == listed["items"][:2]
    assert _json(client.get("/v1/forks", headers=other))["items"] == [listed["items"][2]]
