"""Withdrawals over HTTP (docs/rules.md#funded-accounts-and-withdrawals):
requests held at once and, under 1,000.00, approved and paid out by the payout
worker; from 1,000.00 waiting for an admin's approval or rejection; refusals
with their codes; payout failures, final and transient; one withdrawal per
request key; ownership; the ledger's side (the hold transfer posted or voided);
Stripe's webhook route.

The payout worker does not run by itself here: each test runs its passes
(`run_once`), on a sandbox gateway it holds to script the processor's faults.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from interface.adapters.payouts.sandbox_gateway import PAYOUT_ID_PREFIX, SandboxPayoutGateway
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from interface.workers.leased_worker import DuePass
from tests.support.api_keys import bearer
from tests.support.fake_stripe import payout_event, signed_webhook, stripe_payout_object
from tests.support.http_api import assert_error
from tests.support.withdrawals import profitable_funded_account

OWNER, OTHER = "trader-w1", "trader-w2"
# A closed trade $4,000 up on a Gen account ($10,000, 4/5 split): $3,200.00
# is withdrawable.
PROFIT_MINOR: Final[int] = 400_000
STARTING: Final[str] = "10000.00"
CURRENT: Final[str] = "14000.00"
WITHDRAWABLE: Final[str] = "3200.00"
WEBHOOK_SECRET: Final[str] = "whsec_test"
WEBHOOK_PATH: Final[str] = "/v1/webhooks/stripe"
ADMIN_LIST: Final[str] = "/v1/admin/withdrawals"
SYMBOL: Final[str] = "WACME"
# Retries every 5 s doubling to 15 min, for 12 hours: some 55 attempts. A
# bound on the loop that fails them all, far above that.
ATTEMPTS_BOUND: Final[int] = 200

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
def account(ledger: Ledger) -> str:
    """OWNER's funded account with WITHDRAWABLE to take out; its id."""
    return str(profitable_funded_account(ledger, OWNER, PROFIT_MINOR))


# Helpers --------------------------------------------------------------------------


def _json(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


def _get(client: TestClient, path: str, headers: Headers, **params: Any) -> dict[str, Any]:
    return _json(client.get(path, headers=headers, params=params))


def _request(
    client: TestClient, account_id: str, amount: Any, headers: Headers, **extra: Any
) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/v1/funded-accounts/{account_id}/withdrawals",
        json={"amount": amount, **extra},
        headers=headers,
    )
    return response


def _requested(
    client: TestClient, account_id: str, amount: str, headers: Headers, **extra: Any
) -> dict[str, Any]:
    """A withdrawal that must be made (201); the withdrawal."""
    return _json(_request(client, account_id, amount, headers, **extra), 201)


def _withdrawal(client: TestClient, withdrawal_id: str, headers: Headers) -> dict[str, Any]:
    return _get(client, f"/v1/withdrawals/{withdrawal_id}", headers)


def _funded(client: TestClient, account_id: str, headers: Headers) -> dict[str, Any]:
    return _get(client, f"/v1/funded-accounts/{account_id}", headers)


def _withdrawable(client: TestClient, account_id: str, headers: Headers) -> tuple[str, str]:
    """(withdrawable, reserved_for_withdrawals) as the account shows them."""
    body = _funded(client, account_id, headers)
    return body["withdrawable"], body["balances"]["reserved_for_withdrawals"]


def _ledger_balances(client: TestClient, account_id: str, admin: Headers) -> dict[str, str]:
    """The balances of the funded account's ledger account."""
    ledger_account_id = _funded(client, account_id, admin)["ledger_account_id"]
    found: dict[str, str] = _get(client, f"/v1/accounts/{ledger_account_id}", admin)["balances"]
    return found


def _transfer(client: TestClient, transfer_id: str, admin: Headers) -> dict[str, Any]:
    return _get(client, f"/v1/transfers/{transfer_id}", admin)


def _listed(client: TestClient, path: str, headers: Headers, **params: Any) -> list[str]:
    """The ids on every page of a withdrawal list, in order."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = _get(client, path, headers, **params, **({"cursor": cursor} if cursor else {}))
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def _pay_out(ledger: Ledger) -> DuePass:
    done = ledger.payout_worker.run_once()
    assert done.leased
    assert not done.errors, done.errors
    return done


def _pays_nothing(ledger: Ledger) -> bool:
    """A pass that pays nothing (the view may still show a withdrawal just paid
    as approved: the worker reads it again and finds nothing due)."""
    return set(_pay_out(ledger).outcomes) <= {"not_due"}


def _approve(client: TestClient, withdrawal_id: str, headers: Headers) -> httpx.Response:
    response: httpx.Response = client.post(f"{ADMIN_LIST}/{withdrawal_id}/approve", headers=headers)
    return response


def _reject(
    client: TestClient, withdrawal_id: str, headers: Headers, reason: str = "documents missing"
) -> httpx.Response:
    response: httpx.Response = client.post(
        f"{ADMIN_LIST}/{withdrawal_id}/reject", json={"reason": reason}, headers=headers
    )
    return response


def _set_price(client: TestClient, admin: Headers, price: str) -> None:
    response = client.put(
        f"/v1/admin/simulated-market/{SYMBOL}", json={"bid": price, "ask": price}, headers=admin
    )
    assert response.status_code == 200, response.text


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Approved at once, paid out ------------------------------------------------------


def test_under_1000_is_approved_at_once_and_a_worker_pass_completes_it(
    client: TestClient,
    ledger: Ledger,
    gateway: SandboxPayoutGateway,
    clock: SettableClock,
    admin: Headers,
    owner: Headers,
    account: str,
) -> None:
    assert _funded(client, account, owner)["balances"]["starting_balance"] == STARTING
    assert _withdrawable(client, account, owner) == (WITHDRAWABLE, "0.00")
    balances_before = _ledger_balances(client, account, admin)
    assert (balances_before["posted"], balances_before["debits_pending"]) == (CURRENT, "0.00")

    made = _requested(client, account, "250.00", owner)

    assert (made["funded_account_id"], made["owner_id"]) == (account, OWNER)
    assert (made["amount"], made["currency"]) == ("250.00", "USD")
    assert (made["status"], made["approval_required"], made["approved_automatically"]) == (
        "approved",
        False,
        True,
    )
    assert _at(made["requested_at"]) == _at(made["approved_at"]) == clock.now()
    assert made["requested_by"].startswith("user:")
    assert made["approved_by"] == "withdrawal-service"
    assert (made["payout_id"], made["settled_at"], made["rejected_reason"]) == (None, None, None)
    # Held at once: on the funded account, and on its ledger account.
    assert _withdrawable(client, account, owner) == ("2950.00", "250.00")
    held = _ledger_balances(client, account, admin)
    assert (held["posted"], held["debits_pending"], held["available"]) == (
        CURRENT,
        "250.00",
        "13750.00",
    )
    hold = _transfer(client, made["hold_transfer_id"], admin)
    assert (hold["status"], hold["pending"]) == ("pending", True)
    assert hold["metadata"]["withdrawal_id"] == made["id"]

    done = _pay_out(ledger)

    assert (done.attempted, done.outcomes["completed"]) == (1, 1)
    completed = _withdrawal(client, made["id"], owner)
    assert completed["status"] == "completed"
    assert completed["payout_id"].startswith(PAYOUT_ID_PREFIX)
    assert completed["payout_gateway"] == "sandbox"
    assert completed["settled_at"] is not None and completed["settled_by"] == "payout:sandbox"
    assert (completed["failure_code"], completed["payout_failed_attempts"]) == (None, 0)
    assert completed["next_payout_attempt_at"] is None and not completed["needs_attention"]
    [payout] = gateway.list_payouts()
    assert (payout.payout_id, payout.amount_minor) == (completed["payout_id"], 250_00)
    assert payout.metadata["withdrawal_id"] == made["id"]
    # Money out: the hold posted, the ledger account down by the amount.
    assert _transfer(client, made["hold_transfer_id"], admin)["status"] == "posted"
    paid = _ledger_balances(client, account, admin)
    assert (paid["posted"], paid["debits_pending"]) == ("13750.00", "0.00")
    funded = _funded(client, account, owner)
    assert (funded["balances"]["total_withdrawn"], funded["balances"]["current_balance"]) == (
        "250.00",
        "13750.00",
    )
    assert (funded["withdrawable"], funded["balances"]["reserved_for_withdrawals"]) == (
        "2950.00",
        "0.00",
    )
    # Completed once: another pass pays nothing more.
    assert _pays_nothing(ledger)


def test_the_amount_edges_and_the_pending_queue(
    client: TestClient, admin: Headers, auditor: Headers, owner: Headers, account: str
) -> None:
    below = _request(client, account, "99.99", owner)
    body = assert_error(below, 422, "below_minimum")
    assert body["error"]["details"]["minimum_minor"] == 100_00

    minimum = _requested(client, account, "100.00", owner)
    just_under = _requested(client, account, "999.99", owner)
    threshold = _requested(client, account, "1000.00", owner)

    for auto in (minimum, just_under):
        assert (auto["status"], auto["approval_required"], auto["approved_automatically"]) == (
            "approved",
            False,
            True,
        )
    assert (threshold["status"], threshold["approval_required"]) == ("pending", True)
    assert (threshold["approved_at"], threshold["approved_by"]) == (None, None)
    assert not threshold["approved_automatically"]
    for reader in (admin, auditor):
        assert _listed(client, ADMIN_LIST, reader, status="pending") == [threshold["id"]]
        assert _listed(client, ADMIN_LIST, reader, status="approved") == [
            minimum["id"],
            just_under["id"],
        ]
    # Every request holds its amount: 3,200.00 - 2,099.99 is left.
    assert _withdrawable(client, account, owner) == ("1100.01", "2099.99")
    over = assert_error(_request(client, account, "1100.02", owner), 409, "exceeds_withdrawable")
    assert over["error"]["details"]["withdrawable_minor"] == 1100_01
    rest = _requested(client, account, "1100.01", owner)
    assert rest["status"] == "pending"
    assert _withdrawable(client, account, owner) == ("0.00", "3200.00")
    assert_error(_request(client, account, "100.00", owner), 409, "exceeds_withdrawable")

    # The account's list, in request order, across pages.
    expected = [minimum["id"], just_under["id"], threshold["id"], rest["id"]]
    path = f"/v1/funded-accounts/{account}/withdrawals"
    assert _listed(client, path, owner, limit=3) == expected
    assert _listed(client, path, owner, limit=1) == expected
    assert _listed(client, ADMIN_LIST, admin, status="pending", limit=1) == [
        threshold["id"],
        rest["id"],
    ]


# An admin decides ----------------------------------------------------------------


def test_an_admin_approves_a_pending_withdrawal_and_a_worker_pass_pays_it_out(
    client: TestClient, ledger: Ledger, admin: Headers, owner: Headers, account: str
) -> None:
    pending = _requested(client, account, "1000.00", owner)
    # Nothing is paid out before an admin decides.
    assert _pays_nothing(ledger)
    assert _withdrawal(client, pending["id"], owner)["status"] == "pending"

    approved = _json(_approve(client, pending["id"], admin))

    assert (approved["id"], approved["status"], approved["approved_automatically"]) == (
        pending["id"],
        "approved",
        False,
    )
    assert approved["approved_by"].startswith("admin:")
    assert _listed(client, ADMIN_LIST, admin, status="pending") == []
    assert _pay_out(ledger).outcomes["completed"] == 1
    completed = _withdrawal(client, pending["id"], owner)
    assert completed["status"] == "completed"
    assert completed["payout_id"].startswith(PAYOUT_ID_PREFIX)
    # Decided once: a second decision either way is refused.
    for again in (_approve(client, pending["id"], admin), _reject(client, pending["id"], admin)):
        body = assert_error(again, 409, "withdrawal_not_pending")
        assert body["error"]["details"]["status"] == "completed"
    # The money left: the hold posted, the ledger account down by the amount.
    hold = _transfer(client, completed["hold_transfer_id"], admin)
    assert hold["status"] == "posted"
    ledger_account_id = _funded(client, account, admin)["ledger_account_id"]
    [debit] = [p for p in hold["posted_postings"] if p["side"] == "debit"]
    assert (debit["account_id"], debit["amount"]) == (ledger_account_id, "1000.00")
    balances = _ledger_balances(client, account, admin)
    assert (balances["posted"], balances["debits_pending"]) == ("13000.00", "0.00")
    funded = _funded(client, account, owner)
    assert funded["balances"]["total_withdrawn"] == "1000.00"
    assert funded["balances"]["current_balance"] == "13000.00"
    assert (funded["withdrawable"], funded["balances"]["reserved_for_withdrawals"]) == (
        "2200.00",
        "0.00",
    )


def test_an_admin_rejects_with_a_reason_and_the_amount_is_withdrawable_again(
    client: TestClient, ledger: Ledger, admin: Headers, owner: Headers, account: str
) -> None:
    pending = _requested(client, account, "1500.00", owner)
    assert _withdrawable(client, account, owner) == ("1700.00", "1500.00")
    assert _ledger_balances(client, account, admin)["debits_pending"] == "1500.00"

    rejected = _json(_reject(client, pending["id"], admin, "the bank details do not match"))

    assert rejected["status"] == "rejected"
    assert rejected["rejected_reason"] == "the bank details do not match"
    assert rejected["settled_by"].startswith("admin:") and rejected["settled_at"] is not None
    assert rejected["approved_at"] is None and rejected["payout_id"] is None
    # The trader reads the reason.
    assert _withdrawal(client, pending["id"], owner)["rejected_reason"] == (
        "the bank details do not match"
    )
    assert _withdrawable(client, account, owner) == (WITHDRAWABLE, "0.00")
    assert _transfer(client, pending["hold_transfer_id"], admin)["status"] == "voided"
    balances = _ledger_balances(client, account, admin)
    assert (balances["posted"], balances["debits_pending"], balances["available"]) == (
        CURRENT,
        "0.00",
        CURRENT,
    )
    for again in (_reject(client, pending["id"], admin), _approve(client, pending["id"], admin)):
        assert_error(again, 409, "withdrawal_not_pending")
    assert _pays_nothing(ledger)
    assert _withdrawal(client, pending["id"], owner)["status"] == "rejected"
    assert _funded(client, account, owner)["balances"]["total_withdrawn"] == "0.00"


def test_deciding_an_unknown_withdrawal_answers_404(client: TestClient, admin: Headers) -> None:
    unknown = str(uuid4())
    for response in (
        _approve(client, unknown, admin),
        _reject(client, unknown, admin),
        client.post(f"{ADMIN_LIST}/{unknown}/resume-payouts", headers=admin),
        client.get(f"/v1/withdrawals/{unknown}", headers=admin),
    ):
        assert_error(response, 404, "withdrawal_not_found")


# Refusals ------------------------------------------------------------------------


def test_a_suspended_account_is_refused_with_account_not_active(
    client: TestClient, admin: Headers, owner: Headers, account: str
) -> None:
    def move_to(state: str) -> None:
        moved = client.post(
            f"/v1/funded-accounts/{account}/state",
            json={"state": state, "reason": "compliance review"},
            headers=admin,
        )
        assert moved.status_code == 200, moved.text

    move_to("suspended")
    body = assert_error(_request(client, account, "250.00", owner), 409, "account_not_active")
    assert body["error"]["details"]["state"] == "suspended"
    assert _listed(client, f"/v1/funded-accounts/{account}/withdrawals", owner) == []
    assert _withdrawable(client, account, owner) == (WITHDRAWABLE, "0.00")

    move_to("active")
    assert _requested(client, account, "250.00", owner)["status"] == "approved"


def test_an_open_position_is_refused_with_open_positions(
    client: TestClient, admin: Headers, owner: Headers, account: str
) -> None:
    _set_price(client, admin, "10.00")
    opened = client.post(
        f"/v1/funded-accounts/{account}/positions",
        json={"symbol": SYMBOL, "side": "long", "quantity": 1},
        headers=owner,
    )
    assert opened.status_code == 201, opened.text

    body = assert_error(_request(client, account, "250.00", owner), 409, "open_positions")
    assert body["error"]["details"]["open_positions"] == 1
    assert _listed(client, f"/v1/funded-accounts/{account}/withdrawals", owner) == []

    closed = client.post(
        f"/v1/funded-accounts/{account}/positions/{opened.json()['position_id']}/close",
        headers=owner,
    )
    assert closed.status_code == 200, closed.text
    # Closed at its entry price: the same profit, and the request goes through.
    assert _withdrawable(client, account, owner) == (WITHDRAWABLE, "0.00")
    assert _requested(client, account, "250.00", owner)["status"] == "approved"


def test_more_than_the_withdrawable_amount_is_refused(
    client: TestClient, owner: Headers, account: str
) -> None:
    body = assert_error(_request(client, account, "3200.01", owner), 409, "exceeds_withdrawable")
    assert body["error"]["details"] == {
        "currency": "USD",
        "requested": "3200.01",
        "withdrawable": "3200.00",
        "amount_minor": 3200_01,
        "withdrawable_minor": 3200_00,
    }
    assert "3200.00 USD" in body["error"]["message"]
    assert _listed(client, f"/v1/funded-accounts/{account}/withdrawals", owner) == []
    everything = _requested(client, account, WITHDRAWABLE, owner)
    assert (everything["amount"], everything["status"]) == (WITHDRAWABLE, "pending")


def test_request_bodies_are_validated(
    client: TestClient, admin: Headers, owner: Headers, account: str
) -> None:
    path = f"/v1/funded-accounts/{account}/withdrawals"
    unknown_field = client.post(
        path, json={"amount": "250.00", "destination": "elsewhere"}, headers=owner
    )
    assert_error(unknown_field, 422, "invalid_request")
    for malformed in ("12.3.4", "abc", "", 250, 250.0):
        assert_error(_request(client, account, malformed, owner), 422, "invalid_amount")
    # No amount at all: the amount's problem, as on transfers.
    assert_error(client.post(path, json={}, headers=owner), 422, "invalid_amount")
    assert_error(
        _request(client, account, "250.00", owner, idempotency_key=""), 422, "invalid_request"
    )
    for bad_key, code in (
        (" lead", "invalid_idempotency_key"),
        ("trail ", "invalid_idempotency_key"),
        ("x\u001f", "invalid_string"),
        ("\u00a0x", "invalid_idempotency_key"),
        ("two words", "invalid_idempotency_key"),
    ):
        assert_error(_request(client, account, "250.00", owner, idempotency_key=bad_key), 422, code)
    # Nothing was written.
    assert _listed(client, path, owner) == []
    assert _withdrawable(client, account, owner) == (WITHDRAWABLE, "0.00")

    pending = _requested(client, account, "1000.00", owner)
    reject = f"{ADMIN_LIST}/{pending['id']}/reject"
    for bad, code in (
        ({}, "invalid_request"),
        ({"reason": ""}, "invalid_request"),
        ({"reason": " padded "}, "invalid_request"),
        ({"reason": "ok", "extra": 1}, "invalid_request"),
        # A NUL cannot be stored in the view's text column; other control
        # characters are refused alike, at the edge (Python's idea of outer
        # whitespace by the schema).
        ({"reason": "a\u0000b"}, "invalid_string"),
        ({"reason": "ends in\u001f"}, "invalid_string"),
        ({"reason": "\u00a0starts"}, "invalid_request"),
    ):
        assert_error(client.post(reject, json=bad, headers=admin), 422, code)
    for bad_status in ("unknown", "PENDING"):
        response = client.get(ADMIN_LIST, params={"status": bad_status}, headers=admin)
        assert_error(response, 422, "invalid_request")
    assert _withdrawal(client, pending["id"], admin)["status"] == "pending"


# Payout failures -----------------------------------------------------------------


def test_a_refused_payout_fails_the_withdrawal_and_gives_the_amount_back(
    client: TestClient,
    ledger: Ledger,
    gateway: SandboxPayoutGateway,
    admin: Headers,
    owner: Headers,
    account: str,
) -> None:
    gateway.fail_next("account_closed", "the destination bank account is closed")
    made = _requested(client, account, "250.00", owner)
    assert _withdrawable(client, account, owner) == ("2950.00", "250.00")

    done = _pay_out(ledger)

    assert (done.attempted, done.outcomes["failed"], done.outcomes["completed"]) == (1, 1, 0)
    failed = _withdrawal(client, made["id"], owner)
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "account_closed"
    assert failed["failure_message"] == "the destination bank account is closed"
    assert failed["settled_by"] == "payout:sandbox" and failed["payout_id"] is None
    assert _transfer(client, made["hold_transfer_id"], admin)["status"] == "voided"
    assert _withdrawable(client, account, owner) == (WITHDRAWABLE, "0.00")
    balances = _ledger_balances(client, account, admin)
    assert (balances["posted"], balances["debits_pending"]) == (CURRENT, "0.00")
    # Final: a later pass leaves it alone, and no payout was made.
    assert _pays_nothing(ledger)
    assert list(gateway.list_payouts()) == []


def test_a_transient_payout_failure_is_retried_once_its_time_comes(
    client: TestClient,
    ledger: Ledger,
    gateway: SandboxPayoutGateway,
    clock: SettableClock,
    admin: Headers,
    owner: Headers,
    account: str,
) -> None:
    gateway.unavailable_next()
    made = _requested(client, account, "250.00", owner)

    assert _pay_out(ledger).outcomes["retrying"] == 1

    waiting = _withdrawal(client, made["id"], owner)
    assert (waiting["status"], waiting["payout_failed_attempts"]) == ("approved", 1)
    assert waiting["payout_id"] is None and not waiting["needs_attention"]
    next_attempt = _at(waiting["next_payout_attempt_at"])
    assert next_attempt > clock.now()
    # Still held while it waits.
    assert _withdrawable(client, account, owner) == ("2950.00", "250.00")
    assert _transfer(client, made["hold_transfer_id"], admin)["status"] == "pending"
    # Before its time, a pass leaves it alone.
    assert _pays_nothing(ledger)

    clock.advance(next_attempt - clock.now() + timedelta(seconds=1))
    # The pass finds it in the view, with no wake-up naming it.
    done = _pay_out(ledger)

    assert (done.attempted, done.outcomes["completed"]) == (1, 1)
    completed = _withdrawal(client, made["id"], owner)
    assert completed["status"] == "completed"
    assert completed["payout_failed_attempts"] == 1
    assert completed["payout_id"].startswith(PAYOUT_ID_PREFIX)
    assert [payout.payout_id for payout in gateway.list_payouts()] == [completed["payout_id"]]
    assert _transfer(client, made["hold_transfer_id"], admin)["status"] == "posted"


def test_a_payout_whose_answer_was_lost_is_found_again_not_made_twice(
    client: TestClient,
    ledger: Ledger,
    gateway: SandboxPayoutGateway,
    clock: SettableClock,
    admin: Headers,
    owner: Headers,
    account: str,
) -> None:
    # The processor pays, then its answer times out.
    gateway.unavailable_after_create_next()
    made = _requested(client, account, "250.00", owner)

    assert _pay_out(ledger).outcomes["retrying"] == 1

    waiting = _withdrawal(client, made["id"], owner)
    assert (waiting["status"], waiting["payout_failed_attempts"]) == ("approved", 1)
    [payout] = gateway.list_payouts()
    clock.advance(_at(waiting["next_payout_attempt_at"]) - clock.now())
    assert _pay_out(ledger).outcomes["completed"] == 1
    completed = _withdrawal(client, made["id"], owner)
    # The retry asked under the same key and got the first payout back.
    assert (completed["status"], completed["payout_id"]) == ("completed", payout.payout_id)
    assert [found.payout_id for found in gateway.list_payouts()] == [payout.payout_id]
    assert _ledger_balances(client, account, admin)["posted"] == "13750.00"


def test_payouts_that_ran_out_of_retries_wait_for_an_admin_to_resume_them(
    client: TestClient,
    ledger: Ledger,
    gateway: SandboxPayoutGateway,
    clock: SettableClock,
    admin: Headers,
    auditor: Headers,
    owner: Headers,
    account: str,
) -> None:
    made = _requested(client, account, "250.00", owner)
    resume = f"{ADMIN_LIST}/{made['id']}/resume-payouts"
    # The processor stays unreachable: every attempt fails, until the retry
    # window is used up.
    for attempts in range(1, ATTEMPTS_BOUND + 1):  # noqa: B007 (read after the loop)
        gateway.unavailable_next()
        assert _pay_out(ledger).outcomes["retrying"] == 1
        current = _withdrawal(client, made["id"], admin)
        if current["needs_attention"]:
            break
        clock.advance(_at(current["next_payout_attempt_at"]) - clock.now())
    else:
        pytest.fail(f"still retrying after {ATTEMPTS_BOUND} failed attempts")
    assert current["status"] == "approved" and current["next_payout_attempt_at"] is None
    assert current["payout_failed_attempts"] == attempts
    # Within the retry window (12 hours after approval) the attempts went on.
    assert clock.now() - _at(made["approved_at"]) <= timedelta(hours=12)
    for reader in (admin, auditor):
        assert _listed(client, ADMIN_LIST, reader, needs_attention="true") == [made["id"]]
    assert _listed(client, ADMIN_LIST, admin, needs_attention="false") == []
    # Nobody retries it until an admin says so.
    clock.advance(timedelta(days=1))
    assert _pays_nothing(ledger)

    resumed = _json(client.post(resume, headers=admin))

    assert (resumed["status"], resumed["needs_attention"]) == ("approved", False)
    assert _at(resumed["next_payout_attempt_at"]) == clock.now()
    assert _pay_out(ledger).outcomes["completed"] == 1
    assert _withdrawal(client, made["id"], owner)["status"] == "completed"
    assert _listed(client, ADMIN_LIST, admin, needs_attention="true") == []
    body = assert_error(client.post(resume, headers=admin), 409, "invalid_state_transition")
    assert body["error"]["details"]["from_state"] == "completed"


# One withdrawal per request ------------------------------------------------------


def test_the_same_request_twice_makes_one_withdrawal_and_one_hold(
    client: TestClient, ledger: Ledger, admin: Headers, owner: Headers, account: str
) -> None:
    first = _request(client, account, "250.00", owner, idempotency_key="payday-1")
    again = _request(client, account, "250.00", owner, idempotency_key="payday-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["hold_transfer_id"] == first.json()["hold_transfer_id"]
    listed = _listed(client, f"/v1/funded-accounts/{account}/withdrawals", owner)
    assert listed == [first.json()["id"]]
    assert _withdrawable(client, account, owner) == ("2950.00", "250.00")
    assert _ledger_balances(client, account, admin)["debits_pending"] == "250.00"
    # The same key with another amount is another request: refused.
    assert_error(
        _request(client, account, "300.00", owner, idempotency_key="payday-1"),
        422,
        "idempotency_key_reused",
    )
    # After completion, the same request still finds it, and pays nothing more.
    assert _pay_out(ledger).outcomes["completed"] == 1
    later = _json(_request(client, account, "250.00", owner, idempotency_key="payday-1"))
    assert (later["id"], later["status"]) == (first.json()["id"], "completed")
    assert _pays_nothing(ledger)
    assert _funded(client, account, owner)["balances"]["total_withdrawn"] == "250.00"
    # Another key is another withdrawal.
    other = _requested(client, account, "250.00", owner, idempotency_key="payday-2")
    assert other["id"] != first.json()["id"]


def test_the_idempotency_key_header_names_the_request_too(
    client: TestClient, ledger: Ledger, owner: Headers, account: str
) -> None:
    headers = {**owner, "Idempotency-Key": "payday-header"}
    first = _request(client, account, "250.00", headers)
    # The same key from the same API key: the first answer, replayed.
    again = _request(client, account, "250.00", headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # From another key of the same trader the header still names the same request.
    elsewhere = _request(
        client,
        account,
        "250.00",
        {**_key(ledger, Role.USER, OWNER), "Idempotency-Key": "payday-header"},
    )
    assert (elsewhere.status_code, elsewhere.json()["id"]) == (200, first.json()["id"])
    assert _withdrawable(client, account, owner) == ("2950.00", "250.00")


# Who sees what -------------------------------------------------------------------


def test_a_user_sees_their_own_withdrawals_and_no_one_elses(
    client: TestClient, ledger: Ledger, admin: Headers, owner: Headers, other: Headers, account: str
) -> None:
    mine = _requested(client, account, "250.00", owner)
    theirs_account = str(profitable_funded_account(ledger, OTHER, PROFIT_MINOR))
    theirs = _requested(client, theirs_account, "300.00", other)

    assert _withdrawal(client, mine["id"], owner)["id"] == mine["id"]
    assert _listed(client, f"/v1/funded-accounts/{account}/withdrawals", owner) == [mine["id"]]
    # Another owner's account and withdrawal answer 404, as unknown ones do.
    for account_id in (account, str(uuid4())):
        path = f"/v1/funded-accounts/{account_id}/withdrawals"
        assert_error(client.get(path, headers=other), 404, "funded_account_not_found")
        assert_error(_request(client, account_id, "250.00", other), 404, "funded_account_not_found")
    body = assert_error(
        client.get(f"/v1/withdrawals/{mine['id']}", headers=other), 404, "withdrawal_not_found"
    )
    assert body["error"]["details"] == {"withdrawal_id": mine["id"]}
    assert_error(
        client.get(f"/v1/withdrawals/{theirs['id']}", headers=owner), 404, "withdrawal_not_found"
    )
    # Nothing was requested on the trader's account by the other one.
    assert _withdrawable(client, account, owner) == ("2950.00", "250.00")
    # Platform keys see everyone's.
    assert _listed(client, ADMIN_LIST, admin) == [mine["id"], theirs["id"]]
    assert _withdrawal(client, theirs["id"], admin)["owner_id"] == OTHER
    assert _withdrawal(client, mine["id"], _key(ledger, Role.AUDITOR))["owner_id"] == OWNER


def test_admin_routes_are_for_admins_and_the_queue_for_auditors_too(
    client: TestClient,
    ledger: Ledger,
    admin: Headers,
    auditor: Headers,
    owner: Headers,
    account: str,
) -> None:
    pending = _requested(client, account, "1000.00", owner)
    service = _key(ledger, Role.SERVICE)
    decisions = ("approve", "reject", "resume-payouts")

    def decide(action: str, headers: Headers) -> httpx.Response:
        response: httpx.Response = client.post(
            f"{ADMIN_LIST}/{pending['id']}/{action}", json={"reason": "no"}, headers=headers
        )
        return response

    for caller in (owner, service):
        assert_error(client.get(ADMIN_LIST, headers=caller), 403, "forbidden")
    for caller in (owner, auditor, service):
        for action in decisions:
            assert_error(decide(action, caller), 403, "forbidden")
    assert _listed(client, ADMIN_LIST, auditor, status="pending") == [pending["id"]]
    # An auditor reads but never requests.
    assert_error(_request(client, account, "250.00", auditor), 403, "forbidden")
    assert _withdrawal(client, pending["id"], admin)["status"] == "pending"


# The ledger's side ---------------------------------------------------------------


def test_the_hold_moves_the_amount_to_payouts_clearing(
    client: TestClient, ledger: Ledger, admin: Headers, owner: Headers, account: str
) -> None:
    made = _requested(client, account, "250.00", owner)
    hold = _transfer(client, made["hold_transfer_id"], admin)
    ledger_account_id = _funded(client, account, admin)["ledger_account_id"]

    legs = {(p["side"], p["amount"], p["currency"]) for p in hold["postings"]}
    assert legs == {("debit", "250.00", "USD"), ("credit", "250.00", "USD")}
    [debit] = [p for p in hold["postings"] if p["side"] == "debit"]
    [credit] = [p for p in hold["postings"] if p["side"] == "credit"]
    assert debit["account_id"] == ledger_account_id
    clearing = _get(client, f"/v1/accounts/{credit['account_id']}", admin)
    assert clearing["kind"] == "payouts_clearing"
    assert clearing["balances"]["credits_pending"] == "250.00"

    assert _pay_out(ledger).outcomes["completed"] == 1

    posted = _transfer(client, made["hold_transfer_id"], admin)
    assert (posted["status"], posted["resolved_at"] is not None) == ("posted", True)
    after = _get(client, f"/v1/accounts/{credit['account_id']}", admin)["balances"]
    assert (after["credits_posted"], after["credits_pending"]) == ("250.00", "0.00")
    trader = _ledger_balances(client, account, admin)
    assert (trader["posted"], trader["debits_posted"], trader["debits_pending"]) == (
        "13750.00",
        "250.00",
        "0.00",
    )


# Stripe's webhook ----------------------------------------------------------------


def test_the_webhook_without_a_secret_answers_webhook_not_configured(ledger: Ledger) -> None:
    with TestClient(create_app(ledger=ledger)) as anonymous:
        for headers in ({}, {"Stripe-Signature": "t=1,v1=00"}):
            response = anonymous.post(WEBHOOK_PATH, content=b"{}", headers=headers)
            assert_error(response, 503, "webhook_not_configured")


@pytest.fixture
def signed_ledger(
    settings: Settings, clock: SettableClock, gateway: SandboxPayoutGateway
) -> Iterator[Ledger]:
    """A ledger whose webhook endpoint has its secret (not `ledger`: one per test)."""
    with_secret = Settings(
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        stripe_webhook_secret=WEBHOOK_SECRET,
    )
    running = build_ledger(with_secret, clock=clock, payout_gateway=gateway)
    try:
        yield running
    finally:
        running.close()


def test_the_webhook_refuses_a_missing_or_forged_signature(signed_ledger: Ledger) -> None:
    body, signature = signed_webhook({"id": "evt_1", "type": "payout.paid"}, "whsec_other")
    with TestClient(create_app(ledger=signed_ledger)) as anonymous:
        missing = anonymous.post(WEBHOOK_PATH, content=body)
        forged = anonymous.post(WEBHOOK_PATH, content=body, headers={"Stripe-Signature": signature})
    assert assert_error(missing, 400, "webhook_rejected")["error"]["details"] == {
        "reason": "signature_missing"
    }
    assert assert_error(forged, 400, "webhook_rejected")["error"]["details"] == {
        "reason": "signature_invalid"
    }


def test_a_signed_payout_paid_event_completes_a_withdrawal_whose_answer_was_lost(
    signed_ledger: Ledger, gateway: SandboxPayoutGateway, clock: SettableClock
) -> None:
    ledger = signed_ledger
    account = str(profitable_funded_account(ledger, OWNER, PROFIT_MINOR))
    owner = _key(ledger, Role.USER, OWNER)
    # The processor pays, but its answer never arrives: the withdrawal waits to retry.
    gateway.unavailable_after_create_next()
    with TestClient(create_app(ledger=ledger)) as client:
        made = _requested(client, account, "250.00", owner)
        assert _pay_out(ledger).outcomes["retrying"] == 1
        assert _withdrawal(client, made["id"], owner)["status"] == "approved"
        [payout] = list(gateway.list_payouts())
        stripe_payout = stripe_payout_object(
            payout.payout_id,
            payout.amount_minor,
            payout.currency,
            payout.metadata,
            int(payout.created_at.timestamp()),
            status="paid",
        )
        body, signature = signed_webhook(
            payout_event("evt_paid_1", "payout.paid", stripe_payout), WEBHOOK_SECRET
        )

        delivered = client.post(WEBHOOK_PATH, content=body, headers={"Stripe-Signature": signature})
        redelivered = client.post(
            WEBHOOK_PATH, content=body, headers={"Stripe-Signature": signature}
        )

        assert _json(delivered) == {"received": True, "outcome": "applied"}
        assert _json(redelivered) == {"received": True, "outcome": "unchanged"}
        completed = _withdrawal(client, made["id"], owner)
        assert (completed["status"], completed["payout_id"]) == ("completed", payout.payout_id)
        assert completed["settled_by"] == "stripe-webhook:evt_paid_1"
        assert _withdrawable(client, account, owner) == ("2950.00", "0.00")
        # The retry that was due finds it settled: no second payout.
        clock.advance(timedelta(minutes=1))
        assert _pay_out(ledger).outcomes["completed"] == 0
        assert len(list(gateway.list_payouts())) == 1
