"""Access and audit logs: what they say, and that secrets never reach them.

Canary values are seeded where secrets and personal data travel (the
Authorization header, body fields, metadata, custom headers, cookies, the
query string); the whole log output, in the production format, must hold
none of them, while the request ids and route templates are there.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.api.consistency import POSITION_HEADER
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.logs import captured_logs, events_named, log_records
from tests.support.service_process import start_service


@dataclass(frozen=True)
class Keys:
    admin: str
    service: str
    user: str
    other_user: str
    auditor: str


@pytest.fixture
def keys(ledger: Ledger) -> Keys:
    def make(role: Role, owner_id: str | None = None) -> str:
        return ledger.api_keys.create(role, owner_id=owner_id)[1]

    return Keys(
        admin=make(Role.ADMIN),
        service=make(Role.SERVICE),
        user=make(Role.USER, "owner-1"),
        other_user=make(Role.USER, "owner-2"),
        auditor=make(Role.AUDITOR),
    )


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    """No key by default: each request says who it is."""
    with TestClient(create_app(ledger=ledger)) as test_client:
        yield test_client


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    with captured_logs() as buffer:
        yield buffer


def canaries() -> dict[str, str]:
    """Values that must never be logged, each unique to this test run."""
    run = uuid.uuid4().hex
    return {
        "api_key": f"ldg_CanaryKey{run}",
        "metadata": f"CanaryMetadata{run}",
        "body": f"CanaryBody{run}",
        "header": f"CanaryHeader{run}",
        "cookie": f"CanaryCookie{run}",
        "query": f"CanaryQuery{run}",
        "idempotency_key": f"CanaryIdempotency{run}",
    }


def send_canary_requests(client: httpx.Client, keys: Keys, canary: dict[str, str]) -> list[str]:
    """Requests carrying the canaries, answered 2xx and 4xx; returns their request ids."""
    common = {"X-Custom": canary["header"], "Cookie": f"session={canary['cookie']}"}
    sent: list[httpx.Response] = []
    opened = client.post(
        "/v1/accounts",
        json={
            "idempotency_key": canary["idempotency_key"],
            "currency": "USD",
            "owner_id": "owner-1",
            "metadata": {"note": canary["metadata"]},
        },
        headers={**bearer(keys.admin), **common},
    )
    sent.append(opened)
    assert opened.status_code == 201, opened.text
    account_id = opened.json()["id"]
    sent += [
        client.get(f"/v1/accounts/{account_id}", headers={**bearer(keys.user), **common}),
        client.get(f"/v1/accounts/{account_id}", headers={**bearer(keys.other_user), **common}),
        client.get(f"/v1/accounts/{account_id}", headers={**bearer(canary["api_key"]), **common}),
        client.get(
            f"/v1/accounts/{account_id}",
            headers={"Authorization": canary["api_key"], **common},
        ),
        client.post(
            "/v1/accounts",
            json={"currency": "USD", "owner_id": canary["body"], "unknown": canary["body"]},
            headers={**bearer(keys.service), **common},
        ),
        client.post(
            "/v1/transfers",
            json={"amount": canary["body"], "metadata": {"note": canary["metadata"]}},
            headers={**bearer(keys.user), **common},
        ),
        client.post("/v1/transfers/batch", json={"transfers": []}, headers=bearer(keys.user)),
        client.get("/metrics", headers={**bearer(keys.auditor), **common}),
        # A query value, declared by the route or refused as unknown.
        client.get(f"/v1/accounts?owner_id={canary['query']}", headers=bearer(keys.service)),
        client.get(
            f"/v1/accounts/{account_id}?secret={canary['query']}",
            headers={**bearer(keys.user), **common},
        ),
    ]
    assert [response.status_code for response in sent] == [
        201,
        200,
        404,
        401,
        401,
        422,
        422,
        403,
        200,
        200,
        422,
    ], [response.text for response in sent]
    return [response.headers["X-Request-ID"] for response in sent]


def assert_no_secret_in(text: str, canary: dict[str, str], keys: Keys) -> None:
    for name, value in {**canary, **vars(keys)}.items():
        assert value not in text, f"the {name} reached the logs"
    assert "authorization" not in text.lower()
    assert "cookie" not in text.lower()


def test_no_key_token_body_header_query_or_metadata_reaches_the_logs(
    client: TestClient, keys: Keys, output: io.StringIO
) -> None:
    canary = canaries()
    request_ids = send_canary_requests(client, keys, canary)

    text = output.getvalue()
    assert_no_secret_in(text, canary, keys)
    logged_ids = {record.get("request_id") for record in log_records(output)}
    assert set(request_ids) <= logged_ids
    routes = {record["route"] for record in events_named(output, "http_request")}
    assert {"/v1/accounts", "/v1/accounts/{account_id}", "/v1/transfers", "/metrics"} <= routes


def test_the_running_service_logs_no_secret_either(
    database_url: str, tmp_path: Path, ledger: Ledger, keys: Keys
) -> None:
    """`ledger serve` itself, every line it writes (uvicorn's included)."""
    log_path = tmp_path / "service.log"
    service = start_service(
        database_url, tmp_path / "data", log_path, environment={"LEDGER_LOG_LEVEL": "INFO"}
    )
    try:
        service.wait_ready()
        canary = canaries()
        with httpx.Client(base_url=service.base_url, timeout=10.0) as http:
            request_ids = send_canary_requests(http, keys, canary)
    finally:
        service.stop()
    text = log_path.read_text()
    assert_no_secret_in(text, canary, keys)
    assert service.api_key not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert set(request_ids) <= {record.get("request_id") for record in records}
    routes = {record["route"] for record in records if record["event"] == "http_request"}
    assert "/v1/accounts/{account_id}" in routes


def test_each_request_gets_one_access_line_with_route_status_duration_and_actor(
    client: TestClient, keys: Keys, output: io.StringIO, ledger: Ledger
) -> None:
    opened_answer = client.post(
        "/v1/accounts",
        json={"currency": "USD", "owner_id": "owner-1"},
        headers=bearer(keys.service),
    )
    account_id = opened_answer.json()["id"]
    # Read at the position the open answered with: a query string the access
    # line leaves out, and a read that waits for the view to show the account.
    position = opened_answer.headers[POSITION_HEADER]
    response = client.get(
        f"/v1/accounts/{account_id}?min_position={position}", headers=bearer(keys.user)
    )
    anonymous = client.get(f"/v1/accounts/{account_id}")

    opened, read, refused = events_named(output, "http_request")
    user_key_id = next(
        record.key_id for record in ledger.api_keys.list() if record.owner_id == "owner-1"
    )
    assert read == {
        "event": "http_request",
        "level": "info",
        "timestamp": read["timestamp"],
        "method": "GET",
        "route": "/v1/accounts/{account_id}",
        "status": 200,
        "duration_ms": read["duration_ms"],
        "request_id": response.headers["X-Request-ID"],
        "actor_key_id": str(user_key_id),
        "actor_role": "user",
    }
    assert 0 < read["duration_ms"] < 10_000
    assert (opened["route"], opened["status"], opened["actor_role"]) == (
        "/v1/accounts",
        201,
        "service",
    )
    assert refused["route"] == "/v1/accounts/{account_id}"
    assert refused["status"] == 401
    assert refused["request_id"] == anonymous.headers["X-Request-ID"]
    assert "actor_key_id" not in refused


def test_denied_requests_are_audited_with_actor_action_target_and_result(
    client: TestClient, keys: Keys, output: io.StringIO
) -> None:
    account_id = client.post(
        "/v1/accounts",
        json={"currency": "USD", "owner_id": "owner-1"},
        headers=bearer(keys.service),
    ).json()["id"]
    client.get(f"/v1/accounts/{account_id}")
    client.get(f"/v1/accounts/{account_id}", headers=bearer("ldg_revoked-or-never-made"))
    client.post("/v1/transfers/batch", json={"transfers": []}, headers=bearer(keys.user))
    client.get(f"/v1/accounts/{account_id}", headers=bearer(keys.other_user))
    client.get(f"/v1/accounts/{account_id}", headers=bearer(keys.user))

    audited = [
        (
            record["reason"],
            record["actor_role"],
            record["action"],
            record["target"],
            record["result"],
        )
        for record in events_named(output, "audit")
    ]
    target = {"account_id": account_id}
    assert audited == [
        (
            "denied",
            "anonymous",
            "GET /v1/accounts/{account_id}",
            target,
            {"status": 401, "code": "unauthenticated"},
        ),
        (
            "denied",
            "anonymous",
            "GET /v1/accounts/{account_id}",
            target,
            {"status": 401, "code": "invalid_api_key"},
        ),
        ("denied", "user", "POST /v1/transfers/batch", {}, {"status": 403, "code": "forbidden"}),
        (
            "denied",
            "user",
            "GET /v1/accounts/{account_id}",
            target,
            {"status": 404, "code": "account_not_found"},
        ),
    ]
    (first, *_) = events_named(output, "audit")
    assert first["actor_key_id"] == "anonymous"


def test_admin_changes_are_audited_and_other_roles_routine_work_is_not(
    client: TestClient, keys: Keys, output: io.StringIO, ledger: Ledger
) -> None:
    body = {"currency": "USD", "owner_id": "owner-9", "kind": "user"}
    opened = client.post("/v1/accounts", json=body, headers=bearer(keys.admin))
    client.get(f"/v1/accounts/{opened.json()['id']}", headers=bearer(keys.admin))
    client.post("/v1/accounts", json=body, headers=bearer(keys.service))
    client.get("/metrics", headers=bearer(keys.auditor))

    (audit,) = events_named(output, "audit")
    admin_key_id = next(
        record.key_id for record in ledger.api_keys.list() if record.role is Role.ADMIN
    )
    assert audit["reason"] == "admin_action"
    assert audit["actor_key_id"] == str(admin_key_id)
    assert audit["actor_role"] == "admin"
    assert audit["action"] == "POST /v1/accounts"
    assert audit["result"] == {"status": 201, "code": None}
    assert audit["request_id"] == opened.headers["X-Request-ID"]


def test_audit_records_are_kept_when_the_log_level_hides_the_access_log(
    ledger: Ledger, client: TestClient
) -> None:
    with captured_logs("WARNING") as quiet:
        client.get(f"/v1/accounts/{uuid.uuid4()}")
    assert events_named(quiet, "http_request") == []
    (audit,) = events_named(quiet, "audit")
    assert audit["result"] == {"status": 401, "code": "unauthenticated"}


def test_a_path_that_is_not_an_identifier_is_not_logged_as_a_target(
    client: TestClient, output: io.StringIO
) -> None:
    client.get("/v1/accounts/<img src=x onerror=alert(1)>")
    (audit,) = events_named(output, "audit")
    assert audit["target"] == {"account_id": "<not an identifier>"}
    assert "onerror" not in output.getvalue()
