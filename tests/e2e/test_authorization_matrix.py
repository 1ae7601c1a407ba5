"""Every route x every kind of caller, against the status each must get.

A user sees and moves only their own accounts: another owner's resource
answers 404, exactly like one that does not exist. Routes for other roles
answer 403; no key, a revoked one or a malformed one answers 401.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from domain.positions import PositionSide
from domain.reconciliation import RunType
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.withdrawals import profitable_funded_account

CALLERS = ("anonymous", "other_user", "owner", "admin", "auditor", "service")
# Priced at $1 on the simulated broker: a one-unit position is far inside every limit.
MATRIX_SYMBOL = "MTRX"
OWNER, OTHER = "alice", "mallory"
# Reads of alice's funded account: her own and every platform role may; another
# user gets 404, as if it did not exist.
READ_OWN_FUNDED = {
    "anonymous": 401,
    "other_user": 404,
    "owner": 200,
    "admin": 200,
    "auditor": 200,
    "service": 200,
}
OPERATORS_ONLY = {
    "anonymous": 401,
    "other_user": 403,
    "owner": 403,
    "admin": 200,
    "auditor": 200,
    "service": 200,
}
# How long a test waits for a reconciliation run asked for through the API.
RECONCILIATION_WAIT_S = 120.0
# Alice's funded account closed a trade this much up: 4/5 of it ($8,000.00) is
# withdrawable, enough for a $1,000.00 withdrawal per caller in any one test.
ALICE_PROFIT_MINOR = 1_000_000
# From $1,000.00 a withdrawal waits for an admin; under it, it is approved at once.
PENDING_WITHDRAWAL = "1000.00"
APPROVED_WITHDRAWAL = "100.00"
CLOSURE_BODY = {"recipient_name": "Alice", "recipient_email": "alice@example.com"}
# A literal public address: accepted without a DNS lookup.
WEBHOOK_URL = "https://93.184.216.34/hooks"
ADMIN_ONLY = {
    "anonymous": 401,
    "other_user": 403,
    "owner": 403,
    "admin": 200,
    "auditor": 403,
    "service": 403,
}
# A Gen account ($10,000) this much up holds $120,000: past its fork threshold
# ($100,000) with enough to keep its own minimum, so a fork of it completes.
FORK_READY_PROFIT_MINOR = 11_000_000


@dataclass
class World:
    client: TestClient
    headers: dict[str, dict[str, str]]
    cash: str
    alice_account: str
    alice_funded_account: str
    ledger: Ledger

    def as_platform(self) -> dict[str, str]:
        return self.headers["service"]

    def position(self) -> str:
        """A position opened on alice's funded account by the platform; its id."""
        response = self.client.post(
            f"/v1/funded-accounts/{self.alice_funded_account}/positions",
            json={"symbol": MATRIX_SYMBOL, "side": "long", "quantity": 1},
            headers=self.as_platform(),
        )
        assert response.status_code == 201, response.text
        opened: str = response.json()["position_id"]
        return opened

    def withdrawal(self, amount: str = PENDING_WITHDRAWAL) -> str:
        """A withdrawal from alice's funded account, requested by the platform;
        its id. Pending for an admin from $1,000.00, approved under it."""
        response = self.client.post(
            f"/v1/funded-accounts/{self.alice_funded_account}/withdrawals",
            json={"amount": amount},
            headers=self.as_platform(),
        )
        assert response.status_code == 201, response.text
        made: str = response.json()["id"]
        return made

    def funded_account(self) -> str:
        """A new funded account of alice's, activated by the platform; its id."""
        response = self.client.post(
            "/v1/funded-accounts",
            json={
                "assessment_id": f"matrix-{uuid.uuid4()}",
                "assessment_status": "passed",
                "owner_id": OWNER,
                "tier": "Gen",
                "profit_split": "4/5",
                "completed_at": "2025-12-31T00:00:00Z",
            },
            headers=self.as_platform(),
        )
        assert response.status_code == 201, response.text
        made: str = response.json()["id"]
        return made

    def closure(self) -> tuple[str, str]:
        """A new funded account of alice's whose closure the platform started
        (it stays initiated: no closure worker runs here); (its id, the
        closure's id)."""
        funded_account_id = self.funded_account()
        response = self.client.post(
            f"/v1/accounts/{funded_account_id}/closure",
            json=CLOSURE_BODY,
            headers=self.as_platform(),
        )
        assert response.status_code == 202, response.text
        closure_id: str = response.json()["id"]
        return funded_account_id, closure_id

    def fork_candidate(self) -> str:
        """A new funded account of alice's at $120,000, ready to fork; its id."""
        return str(profitable_funded_account(self.ledger, OWNER, FORK_READY_PROFIT_MINOR))

    def reconciliation_report(self) -> str:
        """A completed manual reconciliation run; its id."""
        run = self.ledger.reconciliation.run(RunType.MANUAL, "matrix")
        return str(run.id)

    def start_reconciliation(self, headers: dict[str, str]) -> httpx.Response:
        """Ask for a run, and wait for it to be carried out (one runs at a
        time per server), so the next caller may start one too."""
        response: httpx.Response = self.client.post(
            "/v1/reconciliation/runs", json={}, headers=headers
        )
        deadline = time.monotonic() + RECONCILIATION_WAIT_S
        while self.ledger.reconciliation_runs.running is not None:
            assert time.monotonic() < deadline, "the run did not complete"
            time.sleep(0.05)
        return response

    def fork(self) -> str:
        """A completed fork of a new account of alice's, proposed by the platform;
        its id."""
        response = self.client.post(
            "/v1/forks",
            json={"funded_account_id": self.fork_candidate()},
            headers=self.as_platform(),
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "completed", response.text
        made: str = response.json()["id"]
        return made

    def merge_body(self, trigger: str = "manual") -> dict[str, Any]:
        """A whole merge of a new funded account of alice's into a new account."""
        return {
            "source_id": self.funded_account(),
            "target_kind": "new_account",
            "trigger": trigger,
            "reason": "matrix",
        }

    def merge(self, trigger: str = "manual") -> str:
        """A merge proposed by the platform; its id. A manual one completes at
        once; an underperformance one waits for an admin."""
        response = self.client.post(
            "/v1/merges", json=self.merge_body(trigger), headers=self.as_platform()
        )
        assert response.status_code == 201, response.text
        made: str = response.json()["id"]
        return made

    def transfer(self, *, pending: bool = False) -> str:
        """A transfer out of alice's account, made by the platform."""
        body: dict[str, Any] = {
            "idempotency_key": f"matrix-{uuid.uuid4()}",
            "debit_account_id": self.alice_account,
            "credit_account_id": self.cash,
            "amount": "1.00",
            "currency": "USD",
        }
        if pending:
            body |= {"pending": True, "timeout_s": 3600}
        response = self.client.post("/v1/transfers", json=body, headers=self.as_platform())
        assert response.status_code == 201, response.text
        made: str = response.json()["id"]
        return made


@pytest.fixture
def world(ledger: Ledger) -> Iterator[World]:
    keys = {
        "other_user": ledger.api_keys.create(Role.USER, owner_id=OTHER)[1],
        "owner": ledger.api_keys.create(Role.USER, owner_id=OWNER)[1],
        "admin": ledger.api_keys.create(Role.ADMIN)[1],
        "auditor": ledger.api_keys.create(Role.AUDITOR)[1],
        "service": ledger.api_keys.create(Role.SERVICE)[1],
    }
    headers = {caller: bearer(key) for caller, key in keys.items()}
    headers["anonymous"] = {}
    with TestClient(create_app(ledger=ledger)) as client:
        platform = headers["service"]
        cash = client.post(
            "/v1/accounts",
            json={"currency": "USD", "owner_id": "platform", "kind": "cash"},
            headers=platform,
        ).json()["id"]
        alice = client.post(
            "/v1/accounts", json={"currency": "USD", "owner_id": OWNER}, headers=platform
        ).json()["id"]
        funding = {
            "idempotency_key": "matrix-funding",
            "debit_account_id": cash,
            "credit_account_id": alice,
            "amount": "1000.00",
            "currency": "USD",
        }
        assert client.post("/v1/transfers", json=funding, headers=platform).status_code == 201
        alice_funded = str(profitable_funded_account(ledger, OWNER, ALICE_PROFIT_MINOR))
        assert isinstance(ledger.broker, SimulatedBroker)
        ledger.broker.set_price(MATRIX_SYMBOL, bid_minor=100, ask_minor=100)
        yield World(client, headers, cash, alice, alice_funded, ledger)


Request = Callable[[World, dict[str, str]], Any]


def _transfer_body(world: World) -> dict[str, Any]:
    return {
        "idempotency_key": f"matrix-{uuid.uuid4()}",
        "debit_account_id": world.alice_account,
        "credit_account_id": world.cash,
        "amount": "1.00",
        "currency": "USD",
    }


def _closure_events(world: World, headers: dict[str, str]) -> httpx.Response:
    """The live progress stream of a closure in progress: only its status is
    read, then the stream is closed (it would run until the closure completes)."""
    funded_account_id, _ = world.closure()
    path = f"/v1/accounts/{funded_account_id}/closure/events"
    with world.client.stream("GET", path, headers=headers) as response:
        opened: httpx.Response = response
    return opened


def _webhook_endpoint(world: World) -> str:
    """A webhook endpoint on a public address (never called: no worker runs here)."""
    endpoint, _ = world.ledger.integration.webhook_endpoints.create(
        WEBHOOK_URL, [], "matrix", world.ledger.clock.now()
    )
    return str(endpoint.endpoint_id)


# (method, route path) -> (how to call it, expected status per caller)
MATRIX: dict[tuple[str, str], tuple[Request, dict[str, int]]] = {
    ("GET", "/healthz"): (
        lambda w, h: w.client.get("/healthz", headers=h),
        dict.fromkeys(CALLERS, 200),
    ),
    ("GET", "/readyz"): (
        lambda w, h: w.client.get("/readyz", headers=h),
        dict.fromkeys(CALLERS, 200),
    ),
    ("POST", "/v1/accounts"): (
        # Users open their own (owner_id omitted); platform keys name the owner.
        lambda w, h: w.client.post(
            "/v1/accounts",
            json={"currency": "USD"}
            | ({} if h in (w.headers["owner"], w.headers["other_user"]) else {"owner_id": "x"}),
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 201,
            "owner": 201,
            "admin": 201,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("GET", "/v1/accounts"): (
        lambda w, h: w.client.get("/v1/accounts", headers=h),
        {
            "anonymous": 401,
            "other_user": 200,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/accounts/{account_id}"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.alice_account}", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("POST", "/v1/transfers"): (
        lambda w, h: w.client.post("/v1/transfers", json=_transfer_body(w), headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 201,
            "admin": 201,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("POST", "/v1/transfers/batch"): (
        lambda w, h: w.client.post(
            "/v1/transfers/batch", json={"transfers": [_transfer_body(w)]}, headers=h
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 200,
        },
    ),
    ("GET", "/v1/transfers/{transfer_id}"): (
        lambda w, h: w.client.get(f"/v1/transfers/{w.transfer()}", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/transfers"): (
        # A user names one of their own accounts (without one: 403).
        lambda w, h: w.client.get(
            "/v1/transfers", params={"account_id": w.alice_account}, headers=h
        ),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/accounts/{account_id}/balance"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.alice_account}/balance", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/accounts/{account_id}/statement"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.alice_account}/statement", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("POST", "/v1/transfers/{transfer_id}/post"): (
        lambda w, h: w.client.post(f"/v1/transfers/{w.transfer(pending=True)}/post", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 403,
            "service": 200,
        },
    ),
    ("POST", "/v1/transfers/{transfer_id}/void"): (
        lambda w, h: w.client.post(f"/v1/transfers/{w.transfer(pending=True)}/void", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 403,
            "service": 200,
        },
    ),
    ("POST", "/v1/transfers/{transfer_id}/reverse"): (
        lambda w, h: w.client.post(f"/v1/transfers/{w.transfer()}/reverse", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 201,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("GET", "/v1/funded-accounts"): (
        lambda w, h: w.client.get("/v1/funded-accounts", headers=h),
        {
            "anonymous": 401,
            "other_user": 200,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/funded-accounts/{funded_account_id}"): (
        lambda w, h: w.client.get(f"/v1/funded-accounts/{w.alice_funded_account}", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("POST", "/v1/funded-accounts"): (
        lambda w, h: w.client.post(
            "/v1/funded-accounts",
            json={
                "assessment_id": f"matrix-{uuid.uuid4()}",
                "assessment_status": "passed",
                "owner_id": OWNER,
                "tier": "Gen",
                "profit_split": "4/5",
                "completed_at": "2025-12-31T00:00:00Z",
            },
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 403,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("POST", "/v1/funded-accounts/{funded_account_id}/positions"): (
        lambda w, h: w.client.post(
            f"/v1/funded-accounts/{w.alice_funded_account}/positions",
            json={"symbol": MATRIX_SYMBOL, "side": "long", "quantity": 1},
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 201,
            "admin": 201,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("POST", "/v1/funded-accounts/{funded_account_id}/positions/{position_id}/close"): (
        lambda w, h: w.client.post(
            f"/v1/funded-accounts/{w.alice_funded_account}/positions/{w.position()}/close",
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 403,
            "service": 200,
        },
    ),
    ("POST", "/v1/funded-accounts/{funded_account_id}/state"): (
        # The account is active already: the admin's call changes nothing and
        # answers 200 (the changes themselves: test_funded_account_state_api).
        lambda w, h: w.client.post(
            f"/v1/funded-accounts/{w.alice_funded_account}/state",
            json={"state": "active", "reason": "matrix"},
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/funded-accounts/{funded_account_id}/withdrawals"): (
        lambda w, h: w.client.post(
            f"/v1/funded-accounts/{w.alice_funded_account}/withdrawals",
            json={"amount": APPROVED_WITHDRAWAL},
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 201,
            "admin": 201,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("GET", "/v1/funded-accounts/{funded_account_id}/withdrawals"): (
        lambda w, h: w.client.get(
            f"/v1/funded-accounts/{w.alice_funded_account}/withdrawals", headers=h
        ),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/withdrawals/{withdrawal_id}"): (
        lambda w, h: w.client.get(f"/v1/withdrawals/{w.withdrawal()}", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/admin/withdrawals"): (
        # Every owner's withdrawals: admins and auditors only.
        lambda w, h: w.client.get("/v1/admin/withdrawals", params={"status": "pending"}, headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 200,
            "service": 403,
        },
    ),
    ("POST", "/v1/admin/withdrawals/{withdrawal_id}/approve"): (
        # A pending withdrawal for each caller: the admin's is its first decision.
        lambda w, h: w.client.post(f"/v1/admin/withdrawals/{w.withdrawal()}/approve", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/admin/withdrawals/{withdrawal_id}/reject"): (
        lambda w, h: w.client.post(
            f"/v1/admin/withdrawals/{w.withdrawal()}/reject",
            json={"reason": "matrix"},
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/admin/withdrawals/{withdrawal_id}/resume-payouts"): (
        # An approved withdrawal still retrying: the admin is let through and
        # told there is nothing to resume (409); everyone else is refused first.
        lambda w, h: w.client.post(
            f"/v1/admin/withdrawals/{w.withdrawal(APPROVED_WITHDRAWAL)}/resume-payouts",
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 409,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/webhooks/stripe"): (
        # Not for API keys: Stripe's signature is the credential, and a key,
        # valid or not, changes nothing. This service has no webhook secret,
        # so every caller gets 503 webhook_not_configured (the signature
        # checks: test_withdrawals_api).
        lambda w, h: w.client.post("/v1/webhooks/stripe", content=b"{}", headers=h),
        dict.fromkeys(CALLERS, 503),
    ),
    ("POST", "/v1/accounts/{account_id}/closure"): (
        # A new funded account for each caller: each allowed caller starts a closure.
        lambda w, h: w.client.post(
            f"/v1/accounts/{w.funded_account()}/closure", json=CLOSURE_BODY, headers=h
        ),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 202,
            "admin": 202,
            "auditor": 403,
            "service": 202,
        },
    ),
    ("GET", "/v1/accounts/{account_id}/closure"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.closure()[0]}/closure", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/accounts/{account_id}/closure/events"): (
        _closure_events,
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/closures"): (
        # A user lists their own closures; the others everyone's.
        lambda w, h: w.client.get("/v1/closures", params={"status": "stuck"}, headers=h),
        {
            "anonymous": 401,
            "other_user": 200,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("POST", "/v1/closures/{closure_id}/resume"): (
        # A closure that is not stuck: the admin is let through and told there
        # is nothing to resume (409); everyone else is refused first.
        lambda w, h: w.client.post(
            f"/v1/closures/{w.closure()[1]}/resume", json={"dry_run": True}, headers=h
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 409,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("GET", "/v1/forks"): (
        # Alice's forks: she and every platform role may list them; another
        # user may list only their own.
        lambda w, h: w.client.get("/v1/forks", params={"owner_id": OWNER}, headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/forks/opportunities"): (
        # Every owner's accounts past a threshold: the operators' view.
        lambda w, h: w.client.get("/v1/forks/opportunities", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("POST", "/v1/forks"): (
        # An account ready to fork for each caller: each allowed caller forks it.
        lambda w, h: w.client.post(
            "/v1/forks", json={"funded_account_id": w.fork_candidate()}, headers=h
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 201,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("GET", "/v1/accounts/{account_id}/hierarchy"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.alice_funded_account}/hierarchy", headers=h),
        READ_OWN_FUNDED,
    ),
    ("GET", "/v1/accounts/{account_id}/lineage"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.alice_funded_account}/lineage", headers=h),
        READ_OWN_FUNDED,
    ),
    ("GET", "/v1/accounts/{account_id}/performance"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.alice_funded_account}/performance", headers=h),
        READ_OWN_FUNDED,
    ),
    ("GET", "/v1/accounts/{account_id}/performance/chart"): (
        lambda w, h: w.client.get(
            f"/v1/accounts/{w.alice_funded_account}/performance/chart", headers=h
        ),
        READ_OWN_FUNDED,
    ),
    ("POST", "/v1/performance/compare"): (
        lambda w, h: w.client.post(
            "/v1/performance/compare",
            json={"account_ids": [w.alice_funded_account], "period": "1m"},
            headers=h,
        ),
        READ_OWN_FUNDED,
    ),
    ("GET", "/v1/reconciliation/reports"): (
        lambda w, h: w.client.get("/v1/reconciliation/reports", headers=h),
        OPERATORS_ONLY,
    ),
    ("GET", "/v1/reconciliation/reports/{run_id}"): (
        lambda w, h: w.client.get(
            f"/v1/reconciliation/reports/{w.reconciliation_report()}", headers=h
        ),
        OPERATORS_ONLY,
    ),
    ("GET", "/v1/reconciliation/exceptions"): (
        lambda w, h: w.client.get(
            "/v1/reconciliation/exceptions", params={"resolved": "false"}, headers=h
        ),
        OPERATORS_ONLY,
    ),
    ("POST", "/v1/reconciliation/runs"): (
        lambda w, h: w.start_reconciliation(h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 202,
            "auditor": 202,
            "service": 202,
        },
    ),
    ("POST", "/v1/reconciliation/exceptions/{exception_id}/resolve"): (
        # No such exception: the admin is let through and told so (404);
        # everyone else is refused first.
        lambda w, h: w.client.post(
            f"/v1/reconciliation/exceptions/{uuid.uuid4()}/resolve",
            json={"resolved_by": "Ada Admin", "note": "checked with the bank"},
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 404,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("GET", "/v1/accounts/{account_id}/reconciliation"): (
        lambda w, h: w.client.get(
            f"/v1/accounts/{w.alice_funded_account}/reconciliation", headers=h
        ),
        READ_OWN_FUNDED,
    ),
    ("GET", "/v1/accounts/{account_id}/positions"): (
        lambda w, h: w.client.get(f"/v1/accounts/{w.alice_funded_account}/positions", headers=h),
        READ_OWN_FUNDED,
    ),
    ("GET", "/v1/guards"): (
        lambda w, h: w.client.get("/v1/guards", headers=h),
        OPERATORS_ONLY,
    ),
    ("POST", "/v1/positions/{position_id}/close"): (
        # A position of alice's for each caller: each allowed caller closes it.
        lambda w, h: w.client.post(
            f"/v1/positions/{w.position()}/close", json={"reason": "matrix"}, headers=h
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 200,
        },
    ),
    ("GET", "/v1/merges/opportunities"): (
        lambda w, h: w.client.get("/v1/merges/opportunities", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/forks/{fork_id}"): (
        lambda w, h: w.client.get(f"/v1/forks/{w.fork()}", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("POST", "/v1/forks/{fork_id}/approve"): (
        # A completed fork: the admin is let through and told there is nothing
        # to approve (409); everyone else is refused first.
        lambda w, h: w.client.post(f"/v1/forks/{w.fork()}/approve", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 409,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/forks/{fork_id}/execute"): (
        # A completed fork: executing it again answers it as it is (200).
        lambda w, h: w.client.post(f"/v1/forks/{w.fork()}/execute", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/merges"): (
        # A new funded account for each caller: each allowed caller merges it.
        lambda w, h: w.client.post("/v1/merges", json=w.merge_body(), headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 201,
            "auditor": 403,
            "service": 201,
        },
    ),
    ("GET", "/v1/merges/{merge_id}"): (
        lambda w, h: w.client.get(f"/v1/merges/{w.merge()}", headers=h),
        {
            "anonymous": 401,
            "other_user": 404,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("POST", "/v1/merges/{merge_id}/approve"): (
        # An underperformance merge waiting for an admin, for each caller.
        lambda w, h: w.client.post(f"/v1/merges/{w.merge('underperformance')}/approve", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("GET", "/v1/market/quotes/{symbol}"): (
        lambda w, h: w.client.get(f"/v1/market/quotes/{MATRIX_SYMBOL}", headers=h),
        {
            "anonymous": 401,
            "other_user": 200,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/admin/clock"): (
        lambda w, h: w.client.get("/v1/admin/clock", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/admin/clock/advance"): (
        lambda w, h: w.client.post("/v1/admin/clock/advance", json={"seconds": 1}, headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/admin/simulated-broker/accounts/{account_id}/stray-positions"): (
        lambda w, h: w.client.post(
            f"/v1/admin/simulated-broker/accounts/{_broker_account(w)}/stray-positions",
            json={
                "symbol": MATRIX_SYMBOL,
                "side": "long",
                "quantity": 1,
                "client_order_id": f"stray-{uuid.uuid4()}",
            },
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("POST", "/v1/admin/simulated-broker/stray-positions/{position_id}/close"): (
        lambda w, h: w.client.post(
            f"/v1/admin/simulated-broker/stray-positions/{_stray_position(w)}/close",
            json={"client_order_id": f"stray-close-{uuid.uuid4()}"},
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("PUT", "/v1/admin/simulated-market/{symbol}"): (
        lambda w, h: w.client.put(
            f"/v1/admin/simulated-market/{MATRIX_SYMBOL}",
            json={"bid": "1.00", "ask": "1.00"},
            headers=h,
        ),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 403,
            "service": 403,
        },
    ),
    ("GET", "/v1/tiers"): (
        lambda w, h: w.client.get("/v1/tiers", headers=h),
        {
            "anonymous": 401,
            "other_user": 200,
            "owner": 200,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
    ("GET", "/v1/audit/events"): (
        # The full history of every owner: auditors and admins only.
        lambda w, h: w.client.get("/v1/audit/events", params={"limit": 5}, headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 200,
            "service": 403,
        },
    ),
    ("GET", "/v1/events"): (
        # A user reads the events of their own accounts; the others every event.
        lambda w, h: w.client.get("/v1/events", params={"limit": 5}, headers=h),
        dict.fromkeys(CALLERS, 200) | {"anonymous": 401},
    ),
    ("POST", "/v1/webhook-endpoints"): (
        lambda w, h: w.client.post("/v1/webhook-endpoints", json={"url": WEBHOOK_URL}, headers=h),
        ADMIN_ONLY | {"admin": 201},
    ),
    ("GET", "/v1/webhook-endpoints"): (
        lambda w, h: w.client.get("/v1/webhook-endpoints", headers=h),
        ADMIN_ONLY,
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): (
        lambda w, h: w.client.get(f"/v1/webhook-endpoints/{_webhook_endpoint(w)}", headers=h),
        ADMIN_ONLY,
    ),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): (
        lambda w, h: w.client.patch(
            f"/v1/webhook-endpoints/{_webhook_endpoint(w)}", json={"enabled": False}, headers=h
        ),
        ADMIN_ONLY,
    ),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): (
        lambda w, h: w.client.delete(f"/v1/webhook-endpoints/{_webhook_endpoint(w)}", headers=h),
        ADMIN_ONLY | {"admin": 204},
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): (
        lambda w, h: w.client.get(
            f"/v1/webhook-endpoints/{_webhook_endpoint(w)}/deliveries", headers=h
        ),
        ADMIN_ONLY,
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver"): (
        # No such delivery: the admin is let through and told so (404);
        # everyone else is refused first.
        lambda w, h: w.client.post(
            f"/v1/webhook-endpoints/{_webhook_endpoint(w)}/deliveries/{uuid.uuid4()}/redeliver",
            headers=h,
        ),
        ADMIN_ONLY | {"admin": 404},
    ),
    ("GET", "/metrics"): (
        lambda w, h: w.client.get("/metrics", headers=h),
        {
            "anonymous": 401,
            "other_user": 403,
            "owner": 403,
            "admin": 200,
            "auditor": 200,
            "service": 200,
        },
    ),
}


def _broker_account(w: World) -> str:
    """Alice's funded account, open at the simulated broker (one trade opens it)."""
    w.position()
    return w.alice_funded_account


def _stray_position(w: World) -> str:
    """A position at the simulated broker the ledger never heard of; its id."""
    broker = w.ledger.broker
    assert isinstance(broker, SimulatedBroker)
    account = uuid.UUID(_broker_account(w))
    return broker.open_position(
        account, MATRIX_SYMBOL, PositionSide.LONG, 1, f"stray-{uuid.uuid4()}"
    ).position_id


def _declared_routes() -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = create_app().openapi()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def test_the_matrix_covers_every_route_the_api_declares() -> None:
    assert _declared_routes() == set(MATRIX)


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda route: f"{route[0]} {route[1]}")
def test_each_caller_gets_the_status_its_role_and_ownership_allow(
    world: World, route: tuple[str, str]
) -> None:
    call, expected = MATRIX[route]
    got = {caller: call(world, world.headers[caller]).status_code for caller in CALLERS}
    assert got == expected


def test_a_revoked_or_malformed_key_is_refused_like_no_key(ledger: Ledger, world: World) -> None:
    key_id, raw_key = ledger.api_keys.create(Role.ADMIN)
    account = f"/v1/accounts/{world.alice_account}"
    assert world.client.get(account, headers=bearer(raw_key)).status_code == 200
    ledger.api_keys.revoke(key_id)
    for headers in (
        bearer(raw_key),
        bearer(raw_key[:-1]),
        bearer("not-a-key"),
        {"Authorization": f"Basic {raw_key}"},
        {"Authorization": "Bearer"},
    ):
        response = world.client.get(account, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] in {"unauthenticated", "invalid_api_key"}
        # The webhook route takes no key: a bad one is not refused as one.
        webhook = world.client.post("/v1/webhooks/stripe", content=b"{}", headers=headers)
        assert webhook.status_code == 503, headers
        assert webhook.json()["error"]["code"] == "webhook_not_configured"
