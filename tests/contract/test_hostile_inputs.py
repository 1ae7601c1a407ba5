"""Hostile inputs against every operation of the API: never a 5xx, and a sound ledger after.

For each operation of the app's own OpenAPI document, Hypothesis draws
requests a careless or malicious client could send (tests/support/
hostile_inputs.py: control characters, unpaired surrogates, huge strings and
numbers, wrong types, duplicate keys, deep nesting, bodies that are not JSON
or too large, unknown query parameters, spoilt idempotency keys), mixed with
plausible values and ids that exist so that some get as far as the ledger's
rules. Each is sent in process with an admin key or a user key. None may be
answered with a 5xx, and every refusal is the error envelope.

The module's ledger is its own, on a fresh database. After the attack (the
last test of the module, run after the others), every view has caught up
with whatever the writer accepted and `audit verify` finds nothing: nothing a
client sent was stored that the ledger cannot project or verify.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.audit.verify import verify_ledger
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.registry import view_names
from projections.view_health import failed_views
from tests.support import databases
from tests.support.api_keys import bearer
from tests.support.funded_accounts import activate_funded_account
from tests.support.hostile_inputs import (
    PLAUSIBLE_AMOUNTS,
    Generator,
    HostileRequest,
    KnownValues,
    Operation,
    hostile_requests,
    operations,
    wide_text,
)
from tests.support.http_api import open_account, post_transfer, transfer_body
from tests.support.ledgers import EPOCH

# A few examples per operation, and both keys: every operation is attacked in
# every run while the module stays well under a minute on two cores. The
# routes with templates (the writes) get more: their plausible requests land.
EXAMPLES_PER_OPERATION: Final[int] = 8
EXAMPLES_PER_WRITE: Final[int] = 24
# Low limits make oversize bodies and over-long strings cheap to send.
BODY_BYTES_MAX: Final[int] = 16 * 1024
BATCH_BODY_BYTES_MAX: Final[int] = 64 * 1024
STRING_LENGTH_MAX: Final[int] = 2048
OWNER: Final[str] = "hostile-owner"
VIEWS_WAIT_S: Final[float] = 60.0
# GET /v1/events waits up to `wait_s` for an event: a valid wait is none.
FIXED_QUERY_VALUES: Final = {"wait_s": st.sampled_from(["0", "-1", "31", "1e400", "NaN", "x"])}

DOCUMENT: Final = create_app().openapi()
OPERATIONS: Final = operations(DOCUMENT)


@dataclass
class Target:
    client: TestClient
    ledger: Ledger
    database_url: str
    callers: dict[str, dict[str, str]]
    ids: dict[str, str]
    statuses: Counter[int] = field(default_factory=Counter)
    operations_attacked: int = 0


def _seed(client: TestClient, ledger: Ledger, admin: dict[str, str]) -> dict[str, str]:
    """Something to aim at: accounts, a transfer, a hold and a funded account."""
    client.headers.update(admin)
    try:
        cash = open_account(client, kind="cash")
        mine = open_account(client, owner_id=OWNER)
        theirs = open_account(client, owner_id="another-owner")
        made = post_transfer(client, transfer_body(cash["id"], mine["id"], "500.00"))
        hold = post_transfer(
            client, transfer_body(mine["id"], theirs["id"], "1.00", pending=True, timeout_s=3600)
        )
    finally:
        for name in admin:
            del client.headers[name]
    funded = activate_funded_account(ledger, owner_id=OWNER)
    return {
        "cash": cash["id"],
        "mine": mine["id"],
        "theirs": theirs["id"],
        "transfer": made["id"],
        "hold": hold["id"],
        "funded_account": str(funded),
    }


def _templates(ids: dict[str, str]) -> dict[str, st.SearchStrategy[Any]]:
    """Bodies that pass validation for the routes that write the most, with
    the widest values the edge lets through, so that they are written."""
    metadata = st.dictionaries(wide_text(1, 64), wide_text(1, 512), max_size=16)
    transfer = st.fixed_dictionaries(
        {
            "idempotency_key": st.uuids().map(lambda value: f"hostile-{value}"),
            "debit_account_id": st.sampled_from([ids["cash"], ids["mine"]]),
            "credit_account_id": st.sampled_from([ids["mine"], ids["theirs"]]),
            "amount": st.sampled_from(PLAUSIBLE_AMOUNTS),
            "currency": st.just("USD"),
        },
        optional={"metadata": metadata},
    )
    account = st.fixed_dictionaries(
        {"currency": st.sampled_from(["USD", "EUR", "JPY"]), "owner_id": wide_text(1, 128)},
        optional={"metadata": metadata},
    )
    return {
        "POST /v1/accounts": account,
        "POST /v1/transfers": transfer,
        "POST /v1/transfers/batch": st.fixed_dictionaries(
            {"transfers": st.lists(transfer, min_size=1, max_size=4)}
        ),
        "POST /v1/transfers/{transfer_id}/reverse": st.fixed_dictionaries(
            {}, optional={"metadata": metadata}
        ),
    }


@pytest.fixture(scope="module")
def target(postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with databases.fresh_database(postgres_server_url) as database_url:
        limits = Settings(
            database_url=database_url,
            data_dir=Path(tmp_path_factory.mktemp("hostile")),
            request_body_bytes_max=BODY_BYTES_MAX,
            batch_request_body_bytes_max=BATCH_BODY_BYTES_MAX,
            string_length_max=STRING_LENGTH_MAX,
            # A route that needs them answers, rather than 503 for their absence.
            stripe_webhook_secret="whsec_hostile",
            # A webhook URL is not looked up in a DNS the sandbox may not have.
            webhooks_allow_private_urls=True,
        )
        ledger = build_ledger(limits, clock=SettableClock(EPOCH))
        try:
            callers = {
                "admin": bearer(ledger.api_keys.create(Role.ADMIN, label="hostile")[1]),
                "user": bearer(
                    ledger.api_keys.create(Role.USER, owner_id=OWNER, label="hostile")[1]
                ),
            }
            with TestClient(create_app(ledger=ledger)) as client:
                ids = _seed(client, ledger, callers["admin"])
                yield Target(client, ledger, database_url, callers, ids)
        finally:
            ledger.close()


def _send(target: Target, request: HostileRequest, caller: str) -> None:
    response = target.client.request(
        request.method,
        request.url,
        headers={**target.callers[caller], **request.sent_headers()},
        content=request.body(),
    )
    target.statuses[response.status_code] += 1
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], error
        assert isinstance(error["details"], dict), error


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_no_hostile_input_is_answered_with_a_server_error(
    operation: Operation, target: Target
) -> None:
    templates = _templates(target.ids)
    generator = Generator(
        DOCUMENT,
        KnownValues(ids=tuple(target.ids.values()), owner_ids=(OWNER, "another-owner")),
        string_length_max=STRING_LENGTH_MAX,
        body_bytes_max=BATCH_BODY_BYTES_MAX
        if operation.path == "/v1/transfers/batch"
        else BODY_BYTES_MAX,
        fixed_query_values=FIXED_QUERY_VALUES,
        templates=templates,
    )

    @settings(
        max_examples=EXAMPLES_PER_WRITE if str(operation) in templates else EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        request=hostile_requests(generator, operation), caller=st.sampled_from(["admin", "user"])
    )
    def attack(request: HostileRequest, caller: str) -> None:
        _send(target, request, caller)

    attack()
    target.operations_attacked += 1


def test_after_the_attack_the_views_catch_up_and_audit_verify_passes(target: Target) -> None:
    ledger = target.ledger
    assert ledger.projections is not None
    caught_up = ledger.projections.wait_for(ledger.writer.last_position, view_names(), VIEWS_WAIT_S)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        assert failed_views(cursor) == {}
    assert caught_up
    report = verify_ledger(target.database_url)
    assert report.ok, report.findings[:5]
    # The figures, for whoever reads the run (pytest -s).
    total = sum(target.statuses.values())
    print(
        f"hostile inputs: {target.operations_attacked} operations, {total} requests, "
        f"5xx: {sum(n for status, n in target.statuses.items() if status >= 500)}, "
        f"statuses: {dict(sorted(target.statuses.items()))}, "
        f"events verified: {report.events_checked}"
    )
