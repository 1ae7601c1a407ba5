"""Account closure over HTTP (docs/rules.md#account-closure): initiation
answered at once with a confirmation number; progress through the phases and
the tranches; ownership; refused bodies and accounts; the operators' list of
stuck closures and their resumption (dry run or not); the live progress stream
(server-sent events).

The closure worker does not run by itself here: each test walks a closure
through simulated days itself, with `ledger.closures.advance` at each timer
the closure records and the settable clock, as tests/integration/test_closures
does; payouts go to a sandbox gateway the test holds.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from domain.closure import (
    SETTLEMENT_CHECK_INTERVAL,
    SETTLEMENT_TIMEOUT_BUSINESS_DAYS,
    TRANCHE_INTERVAL,
    Closure,
    ClosurePhase,
    add_business_days,
)
from domain.positions import PositionSide
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
from interface.adapters.persistence.api_keys import Role
from interface.bootstrap import OUTBOX_FOLDER, Ledger, build_ledger
from interface.settings import Settings
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error
from tests.support.withdrawals import profitable_funded_account

OWNER, OTHER = "trader-c1", "trader-c2"
# $225,000 of profit on a Gen account (4/5 split): $180,000 to pay out, in
# tranches of 50,000.00, 50,000.00, 50,000.00 and 30,000.00.
LARGE_PROFIT_MINOR: Final[int] = 225_000_00
LARGE_PAYABLE: Final[str] = "180000.00"
LARGE_TRANCHES: Final[list[str]] = ["50000.00", "50000.00", "50000.00", "30000.00"]
# $2,000 of profit: $1,600 to pay out, one tranche.
SMALL_PROFIT_MINOR: Final[int] = 2_000_00
SMALL_PAYABLE: Final[str] = "1600.00"
CONFIRMATION: Final = re.compile(r"^CLA-[0-9A-Z]{5}-[0-9A-Z]{5}$")
BODY: Final[dict[str, str]] = {
    "recipient_name": "Ada Lovelace",
    "recipient_email": "ada@example.com",
    "reason": "the trader asked to close",
}
STRAY_SYMBOL: Final[str] = "ODD"
# Steps of a closure from initiation to completion, many times over: a bound
# on the loops that walk it.
WALK_STEPS_MAX: Final[int] = 200

Headers = dict[str, str]


# Fixtures -------------------------------------------------------------------------


@pytest.fixture
def gateway(clock: SettableClock) -> SandboxPayoutGateway:
    return SandboxPayoutGateway(clock)


@pytest.fixture
def ledger(
    settings: Settings, clock: SettableClock, gateway: SandboxPayoutGateway
) -> Iterator[Ledger]:
    """The conftest's ledger, paying out through a sandbox the test holds."""
    running = build_ledger(settings, clock=clock, payout_gateway=gateway)
    try:
        yield running
    finally:
        running.close()


def _key(ledger: Ledger, role: Role, owner_id: str | None = None) -> Headers:
    return bearer(ledger.api_keys.create(role, owner_id=owner_id, label="e2e")[1])


@pytest.fixture
def admin(ledger: Ledger) -> Headers:
    return _key(ledger, Role.ADMIN)


@pytest.fixture
def auditor(ledger: Ledger) -> Headers:
    return _key(ledger, Role.AUDITOR)


@pytest.fixture
def owner(ledger: Ledger) -> Headers:
    return _key(ledger, Role.USER, OWNER)


@pytest.fixture
def other(ledger: Ledger) -> Headers:
    return _key(ledger, Role.USER, OTHER)


@pytest.fixture
def service(ledger: Ledger) -> Headers:
    return _key(ledger, Role.SERVICE)


@pytest.fixture
def account(ledger: Ledger) -> str:
    """OWNER's funded account with SMALL_PAYABLE to take out; its id."""
    return str(profitable_funded_account(ledger, OWNER, SMALL_PROFIT_MINOR))


# Helpers --------------------------------------------------------------------------


def _json(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


def _initiate(
    client: TestClient, account_id: str, headers: Headers, body: Any = None
) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/v1/accounts/{account_id}/closure",
        json=BODY if body is None else body,
        headers=headers,
    )
    return response


def _initiated(client: TestClient, account_id: str, headers: Headers) -> dict[str, Any]:
    """A closure that must be new (202); its progress."""
    return _json(_initiate(client, account_id, headers), 202)


def _progress(client: TestClient, account_id: str, headers: Headers) -> dict[str, Any]:
    return _json(client.get(f"/v1/accounts/{account_id}/closure", headers=headers))


def _listed(client: TestClient, headers: Headers, status: str | None = None) -> list[str]:
    """The closure ids on every page of the list, in order."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2} | ({"status": status} if status else {})
        if cursor is not None:
            params["cursor"] = cursor
        page = _json(client.get("/v1/closures", params=params, headers=headers))
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def _resume(
    client: TestClient, closure_id: str, headers: Headers, *, dry_run: bool
) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/v1/closures/{closure_id}/resume", json={"dry_run": dry_run}, headers=headers
    )
    return response


def _run_until(
    ledger: Ledger,
    clock: SettableClock,
    closure_id: str,
    done: Callable[[Closure], bool] | None = None,
    *,
    phase: ClosurePhase | None = None,
) -> Closure:
    """Advance at each timer the closure records until it is in `phase` (or
    stuck, or `done(closure)` holds), moving the clock to each timer (bounded)."""
    closure = ledger.closures.advance(UUID(closure_id))
    for _ in range(WALK_STEPS_MAX):
        if closure.stuck or closure.phase is phase or (done is not None and done(closure)):
            return closure
        assert closure.next_action_at is not None, closure.phase
        clock.set(max(clock.now(), closure.next_action_at))
        closure = ledger.closures.advance(UUID(closure_id))
    raise AssertionError(f"never got there: {closure.phase}")


def _at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def _outbox(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / OUTBOX_FOLDER).glob("*.eml"))


def _stuck_in_settling(
    client: TestClient, ledger: Ledger, clock: SettableClock, account_id: str, headers: Headers
) -> dict[str, Any]:
    """Initiated, walked to settling, then a trade the broker never settles (a
    position the ledger never heard of) until the settlement deadline: stuck.
    Its progress, and the stray position's id at the broker under "stray"."""
    closure_id = _initiated(client, account_id, headers)["id"]
    settling = _run_until(ledger, clock, closure_id, phase=ClosurePhase.SETTLING)
    assert not settling.stuck
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_price(STRAY_SYMBOL, bid_minor=100, ask_minor=100)
    stray = broker.open_position(UUID(account_id), STRAY_SYMBOL, PositionSide.LONG, 1, "stray")
    stuck = _run_until(ledger, clock, closure_id, phase=ClosurePhase.WITHDRAWING)
    assert stuck.stuck and stuck.phase is ClosurePhase.SETTLING
    assert settling.deadline_at is not None and clock.now() >= settling.deadline_at
    return _progress(client, account_id, headers) | {"stray": stray.position_id}


def _events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Server-sent events as they come: each frame's fields (comments left out)."""
    frame: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            frame[field] = value.removeprefix(" ")
    if frame:
        yield frame


def _progress_frame(frame: dict[str, str]) -> dict[str, Any]:
    assert frame["event"] == "progress", frame
    body: dict[str, Any] = json.loads(frame["data"])
    assert frame["id"].isdigit(), frame
    return body


def _events_path(account_id: str) -> str:
    return f"/v1/accounts/{account_id}/closure/events"


# Initiation -----------------------------------------------------------------------


def test_initiation_answers_202_at_once_with_a_confirmation_number_and_the_account_pending(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    settings: Settings,
    owner: Headers,
    admin: Headers,
    account: str,
) -> None:
    made = _initiated(client, account, owner)

    assert CONFIRMATION.fullmatch(made["confirmation_number"]), made["confirmation_number"]
    assert (made["funded_account_id"], made["phase"]) == (account, "initiated")
    assert made["phases_entered"].keys() == {"initiated"}
    assert _at(made["phases_entered"]["initiated"]) == _at(made["initiated_at"]) == clock.now()
    assert (made["needs_attention"], made["stuck_reason"]) == (False, None)
    assert made["next_action"] == "send the starting email and start liquidating"
    assert _at(made["next_action_at"]) == clock.now()
    assert (made["tranches"], made["tranches_done"]) == ([], 0)
    assert (made["total_paid"], made["currency"]) == ("0.00", "USD")
    assert made["completed_at"] is None
    # At once: nothing of the work is done in the request (the worker does it).
    assert _outbox(settings) == []
    funded = _json(client.get(f"/v1/funded-accounts/{account}", headers=owner))
    assert funded["state"] == "pending_closure"
    assert made["confirmation_number"] in funded["state_reason"]

    # Again, by the owner or an admin, with another reason: the same closure.
    for headers in (owner, admin):
        again = _json(_initiate(client, account, headers, BODY | {"reason": "again"}), 200)
        assert (again["id"], again["confirmation_number"]) == (
            made["id"],
            made["confirmation_number"],
        )
        assert again["phase"] == "initiated"
    assert _progress(client, account, owner) == made


def test_progress_follows_the_closure_through_every_phase_and_tranche_to_completed(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    settings: Settings,
    owner: Headers,
    auditor: Headers,
) -> None:
    account = str(profitable_funded_account(ledger, OWNER, LARGE_PROFIT_MINOR))
    initiated = _initiated(client, account, owner)
    closure_id = initiated["id"]
    started = clock.now()

    # Liquidated (nothing open), then settling: T+1, checked every 2 hours.
    _run_until(ledger, clock, closure_id, phase=ClosurePhase.SETTLING)
    settling = _progress(client, account, owner)
    assert settling["phase"] == "settling"
    assert list(settling["phases_entered"]) == ["initiated", "liquidating", "settling"]
    entered = _at(settling["phases_entered"]["settling"])
    assert _at(settling["settles_at"]) == add_business_days(entered, 1)
    assert _at(settling["deadline_at"]) == add_business_days(
        entered, SETTLEMENT_TIMEOUT_BUSINESS_DAYS
    )
    assert settling["next_action"] == "check that the trades have settled (T+1)"
    assert _at(settling["next_action_at"]) == entered + SETTLEMENT_CHECK_INTERVAL
    assert (settling["tranches"], settling["tranches_done"]) == ([], 0)
    assert settling["tranches_remaining"] == len(LARGE_TRANCHES)
    assert settling["total_paid"] == "0.00"
    assert len(_outbox(settings)) == 1  # the starting email

    # The first tranche: 50,000.00 paid, the next not before 24 hours later.
    _run_until(ledger, clock, closure_id, lambda c: c.tranches_completed == 1)
    first = _progress(client, account, owner)
    assert first["phase"] == "withdrawing"
    assert first["next_action"] == "pay out the next tranche, or check the one in flight"
    [tranche] = first["tranches"]
    assert (tranche["number"], tranche["attempt"]) == (1, 1)
    assert (tranche["amount"], tranche["status"]) == ("50000.00", "completed")
    assert tranche["payout_id"] and tranche["settled_at"] is not None
    assert (first["tranches_done"], first["tranches_remaining"]) == (1, 3)
    assert first["total_paid"] == "50000.00"
    assert _at(first["next_action_at"]) == _at(tranche["requested_at"]) + TRANCHE_INTERVAL

    # The second, exactly 24 hours after the first.
    _run_until(ledger, clock, closure_id, lambda c: c.tranches_completed == 2)
    second = _progress(client, account, auditor)
    assert [t["amount"] for t in second["tranches"]] == LARGE_TRANCHES[:2]
    assert (second["tranches_done"], second["tranches_remaining"]) == (2, 2)
    assert second["total_paid"] == "100000.00"
    requested = [_at(t["requested_at"]) for t in second["tranches"]]
    assert requested[1] - requested[0] == TRANCHE_INTERVAL

    # Completed: four tranches, 24 hours apart, the account closed.
    _run_until(ledger, clock, closure_id, phase=ClosurePhase.COMPLETED)
    done = _progress(client, account, owner)
    assert done["phase"] == "completed"
    assert list(done["phases_entered"]) == [phase.value for phase in ClosurePhase]
    entered_at = [_at(at) for at in done["phases_entered"].values()]
    assert entered_at == sorted(entered_at) and entered_at[0] == started
    assert [t["amount"] for t in done["tranches"]] == LARGE_TRANCHES
    assert {t["status"] for t in done["tranches"]} == {"completed"}
    requested = [_at(t["requested_at"]) for t in done["tranches"]]
    assert [b - a for a, b in itertools.pairwise(requested)] == [TRANCHE_INTERVAL] * 3
    assert len({t["payout_id"] for t in done["tranches"]}) == len(LARGE_TRANCHES)
    assert (done["tranches_done"], done["tranches_remaining"]) == (4, 0)
    assert done["total_paid"] == LARGE_PAYABLE
    assert (done["next_action"], done["next_action_at"]) == (None, None)
    assert _at(done["completed_at"]) == _at(done["phases_entered"]["completed"])
    assert done["needs_attention"] is False
    funded = _json(client.get(f"/v1/funded-accounts/{account}", headers=owner))
    assert funded["state"] == "closed"
    assert len(_outbox(settings)) == 2  # and the completion email
    # Initiating a completed closure again: that closure, as it is.
    again = _json(_initiate(client, account, owner), 200)
    assert (again["id"], again["phase"]) == (closure_id, "completed")


# Ownership and refusals -----------------------------------------------------------


def test_another_owners_closure_answers_404_like_one_that_does_not_exist(
    client: TestClient, owner: Headers, other: Headers, account: str
) -> None:
    # Before there is one: the other owner cannot start it.
    assert_error(_initiate(client, account, other), 404, "funded_account_not_found")
    made = _initiated(client, account, owner)
    for path in (f"/v1/accounts/{account}/closure", _events_path(account)):
        assert_error(client.get(path, headers=other), 404, "closure_not_found")
    # Nor initiate it again to read it.
    assert_error(_initiate(client, account, other), 404, "funded_account_not_found")
    # An account without a closure, and one that does not exist at all.
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(
        client.get(f"/v1/accounts/{unknown}/closure", headers=owner), 404, "closure_not_found"
    )
    assert_error(_initiate(client, unknown, owner), 404, "funded_account_not_found")
    assert _progress(client, account, owner)["id"] == made["id"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param({"unexpected": "field"}, "invalid_request", id="unknown-field"),
        pytest.param({"recipient_email": "a@b@c"}, "invalid_request", id="two-at-signs"),
        pytest.param({"recipient_email": "x y@z"}, "invalid_request", id="space-in-address"),
        pytest.param(
            {"recipient_email": "Ada <ada@example.com>"}, "invalid_request", id="display-name"
        ),
        pytest.param(
            {"recipient_email": "ada@example.com, eve@example.com"},
            "invalid_request",
            id="address-list",
        ),
        pytest.param({"recipient_email": "adaexample.com"}, "invalid_request", id="no-at-sign"),
        pytest.param({"recipient_name": ""}, "invalid_request", id="empty-name"),
        pytest.param({"recipient_name": "   "}, "invalid_request", id="blank-name"),
        pytest.param({"recipient_name": "Ada\x00Lovelace"}, "invalid_string", id="nul-in-name"),
        pytest.param({"recipient_name": " Ada"}, "invalid_request", id="outer-space-in-name"),
        pytest.param({"recipient_name": "A" * 201}, "invalid_request", id="long-name"),
        pytest.param({"recipient_name": 7}, "invalid_request", id="number-as-name"),
        pytest.param({"reason": ""}, "invalid_request", id="empty-reason"),
        pytest.param({"reason": "line\nbreak"}, "invalid_string", id="control-in-reason"),
        pytest.param({"recipient_email": None}, "invalid_request", id="null-address"),
    ],
)
def test_a_bad_body_is_refused_with_422_and_starts_nothing(
    client: TestClient, owner: Headers, account: str, change: dict[str, Any], code: str
) -> None:
    response = _initiate(client, account, owner, BODY | change)
    assert_error(response, 422, code)
    # Nothing started: no closure, the account still active.
    assert_error(
        client.get(f"/v1/accounts/{account}/closure", headers=owner), 404, "closure_not_found"
    )
    funded = _json(client.get(f"/v1/funded-accounts/{account}", headers=owner))
    assert funded["state"] == "active"


def test_a_body_without_a_name_or_address_is_refused_and_the_reason_is_optional(
    client: TestClient, owner: Headers, account: str
) -> None:
    for missing in ("recipient_name", "recipient_email"):
        partial = {k: v for k, v in BODY.items() if k != missing}
        assert_error(_initiate(client, account, owner, partial), 422, "invalid_request")
    assert_error(_initiate(client, account, owner, []), 422, "invalid_request")
    without_reason = {k: v for k, v in BODY.items() if k != "reason"}
    _json(_initiate(client, account, owner, without_reason), 202)


def test_a_closed_account_cannot_be_closed_409_account_not_active(
    client: TestClient, owner: Headers, admin: Headers, account: str
) -> None:
    changed = client.post(
        f"/v1/funded-accounts/{account}/state",
        json={"state": "closed", "reason": "rule violation"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert_error(_initiate(client, account, owner), 409, "account_not_active")
    assert_error(
        client.get(f"/v1/accounts/{account}/closure", headers=owner), 404, "closure_not_found"
    )


def test_the_auditor_and_the_anonymous_cannot_initiate(
    client: TestClient, auditor: Headers, account: str
) -> None:
    assert_error(_initiate(client, account, auditor), 403, "forbidden")
    response = client.post(
        f"/v1/accounts/{account}/closure", json=BODY, headers={"Authorization": ""}
    )
    assert response.status_code == 401, response.text


# Operators: the stuck ones, resumption ----------------------------------------------


def test_a_stuck_closure_is_listed_for_operators_and_each_user_sees_their_own(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    other: Headers,
    admin: Headers,
    auditor: Headers,
    account: str,
) -> None:
    stuck = _stuck_in_settling(client, ledger, clock, account, owner)
    assert stuck["needs_attention"] is True
    assert stuck["stuck_reason"] and "settlement timed out" in stuck["stuck_reason"]
    assert (stuck["phase"], stuck["next_action"]) == ("settling", "wait for an operator")
    # The other owner's closure, just started: active, not stuck.
    others_account = str(profitable_funded_account(ledger, OTHER, SMALL_PROFIT_MINOR))
    others = _initiated(client, others_account, other)["id"]

    for operator in (admin, auditor):
        assert _listed(client, operator, "stuck") == [stuck["id"]]
        assert _listed(client, operator, "active") == [stuck["id"], others]
        assert _listed(client, operator, "completed") == []
        assert _listed(client, operator) == [stuck["id"], others]
    page = _json(client.get("/v1/closures", params={"status": "stuck"}, headers=admin))
    [item] = page["items"]
    assert (item["funded_account_id"], item["owner_id"]) == (account, OWNER)
    assert item["confirmation_number"] == stuck["confirmation_number"]
    assert (item["phase"], item["needs_attention"]) == ("settling", True)
    assert item["stuck_reason"] == stuck["stuck_reason"]
    assert (item["tranches_done"], item["total_paid"]) == (0, "0.00")

    # A user lists their own, whatever the status asked for.
    assert _listed(client, owner) == _listed(client, owner, "stuck") == [stuck["id"]]
    assert _listed(client, other) == _listed(client, other, "active") == [others]
    assert _listed(client, other, "stuck") == []

    bad = client.get("/v1/closures", params={"status": "broken"}, headers=admin)
    assert_error(bad, 422, "invalid_request")


def test_resuming_a_stuck_closure_in_a_dry_run_changes_nothing_then_resuming_completes_it(
    client: TestClient,
    ledger: Ledger,
    clock: SettableClock,
    owner: Headers,
    admin: Headers,
    auditor: Headers,
    service: Headers,
    account: str,
) -> None:
    stuck = _stuck_in_settling(client, ledger, clock, account, owner)
    closure_id, stray = stuck["id"], stuck["stray"]
    before = _progress(client, account, owner)

    planned = _json(_resume(client, closure_id, admin, dry_run=True))
    assert (planned["dry_run"], planned["phase"]) == (True, "settling")
    assert _at(planned["deadline_at"]) == add_business_days(
        clock.now(), SETTLEMENT_TIMEOUT_BUSINESS_DAYS
    )
    assert planned["closure"] == before
    assert _progress(client, account, owner) == before
    assert _listed(client, admin, "stuck") == [closure_id]

    # Only admins resume; the owner, the auditor and the platform are refused.
    for refused in (owner, auditor, service):
        assert_error(_resume(client, closure_id, refused, dry_run=False), 403, "forbidden")
    assert _progress(client, account, owner) == before

    # The broker settles the stray trade; resuming runs what is due at once.
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    broker.close_position(stray, "stray-close")
    resumed = _json(_resume(client, closure_id, admin, dry_run=False))
    assert (resumed["dry_run"], resumed["phase"]) == (False, "settling")
    assert resumed["closure"]["phase"] == "completed"
    assert resumed["closure"]["needs_attention"] is False
    assert resumed["closure"]["total_paid"] == SMALL_PAYABLE
    assert _progress(client, account, owner) == resumed["closure"]
    assert _listed(client, admin, "stuck") == []
    assert _listed(client, admin, "completed") == [closure_id]

    # Not stuck any more: nothing to resume, dry run or not.
    for dry_run in (True, False):
        assert_error(
            _resume(client, closure_id, admin, dry_run=dry_run), 409, "invalid_state_transition"
        )


def test_resuming_a_closure_that_is_not_stuck_answers_409(
    client: TestClient, owner: Headers, admin: Headers, account: str
) -> None:
    made = _initiated(client, account, owner)
    for dry_run in (True, False):
        assert_error(
            _resume(client, made["id"], admin, dry_run=dry_run), 409, "invalid_state_transition"
        )
    assert _progress(client, account, owner) == made
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(_resume(client, unknown, admin, dry_run=True), 404, "closure_not_found")
    response = client.post(
        f"/v1/closures/{made['id']}/resume", json={"dry_run": "yes", "x": 1}, headers=admin
    )
    assert_error(response, 422, "invalid_request")


# Live progress --------------------------------------------------------------------


def test_the_stream_of_a_completed_closure_is_one_completed_frame_and_ends(
    client: TestClient, ledger: Ledger, clock: SettableClock, owner: Headers, account: str
) -> None:
    closure_id = _initiated(client, account, owner)["id"]
    _run_until(ledger, clock, closure_id, phase=ClosurePhase.COMPLETED)

    with client.stream("GET", _events_path(account), headers=owner) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        frames = list(_events(response))

    [frame] = frames
    body = _progress_frame(frame)
    assert (body["id"], body["phase"], body["total_paid"]) == (
        closure_id,
        "completed",
        SMALL_PAYABLE,
    )
    assert body == _progress(client, account, owner)
    assert int(frame["id"]) == ledger.closures.require_closure(UUID(closure_id)).version


def test_the_stream_of_a_closure_in_progress_starts_with_where_it_is(
    client: TestClient, auditor: Headers, owner: Headers, account: str
) -> None:
    made = _initiated(client, account, owner)
    for headers in (owner, auditor):
        with client.stream("GET", _events_path(account), headers=headers) as response:
            assert response.status_code == 200
            first = next(_events(response))
        body = _progress_frame(first)
        assert body == made
        assert body["phase"] == "initiated"


def test_the_stream_follows_the_closure_as_it_moves_and_ends_when_it_completes(
    client: TestClient, ledger: Ledger, clock: SettableClock, owner: Headers, account: str
) -> None:
    closure_id = _initiated(client, account, owner)["id"]
    with client.stream("GET", _events_path(account), headers=owner) as response:
        assert response.status_code == 200
        frames = _events(response)
        first = _progress_frame(next(frames))
        assert first["phase"] == "initiated"
        # The stream waits for the client to read on; meanwhile the closure
        # goes all the way through.
        _run_until(ledger, clock, closure_id, phase=ClosurePhase.COMPLETED)
        rest = [(int(frame["id"]), _progress_frame(frame)) for frame in frames]

    assert rest, "the stream ended without the completed closure"
    versions = [version for version, _ in rest]
    assert versions == sorted(set(versions))
    phases = [ClosurePhase(body["phase"]) for _, body in rest]
    order = list(ClosurePhase)
    assert [order.index(p) for p in phases] == sorted(order.index(p) for p in phases)
    assert phases[-1] is ClosurePhase.COMPLETED
    assert rest[-1][1] == _progress(client, account, owner)


def test_the_stream_needs_a_closure(client: TestClient, owner: Headers, account: str) -> None:
    assert_error(client.get(_events_path(account), headers=owner), 404, "closure_not_found")


def test_reading_progress_runs_no_step_even_when_work_is_due(
    client: TestClient, clock: SettableClock, owner: Headers, account: str
) -> None:
    made = _initiated(client, account, owner)
    clock.advance(timedelta(days=1))
    assert _progress(client, account, owner) == made
