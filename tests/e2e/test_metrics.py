"""`GET /metrics`: Prometheus text, for operators only, and its figures move."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error, open_account, post_transfer, transfer_body

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def operator(ledger: Ledger) -> Iterator[TestClient]:
    """An auditor: what Prometheus scrapes with."""
    _, key = ledger.api_keys.create(Role.AUDITOR)
    with TestClient(create_app(ledger=ledger), headers=bearer(key)) as test_client:
        yield test_client


def test_metrics_need_a_key(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Authorization": ""})
    assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_metrics_are_not_for_user_keys(ledger: Ledger, client: TestClient) -> None:
    _, user_key = ledger.api_keys.create(Role.USER, owner_id="owner-1")
    assert_error(client.get("/metrics", headers=bearer(user_key)), 403, "forbidden")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR, Role.SERVICE])
def test_metrics_are_for_operators(ledger: Ledger, client: TestClient, role: Role) -> None:
    _, key = ledger.api_keys.create(role)
    assert client.get("/metrics", headers=bearer(key)).status_code == 200


def test_requests_are_counted_and_timed_by_route_template_method_and_status(
    client: TestClient, operator: TestClient
) -> None:
    account_id = open_account(client)["id"]
    template = "/v1/accounts/{account_id}"
    before = scrape(operator)

    # Through the scraped app: each app counts its own requests.
    for _ in range(3):
        assert operator.get(f"/v1/accounts/{account_id}").status_code == 200
    operator.get(f"/v1/accounts/{account_id}", headers={"Authorization": "Bearer ldg_unknown"})
    operator.get("/no-such-route")

    after = scrape(operator)
    ok = {"method": "GET", "route": template, "status": "200"}
    assert value(after, "ledger_http_requests_total", **ok) - value(
        before, "ledger_http_requests_total", **ok
    ) == pytest.approx(3)
    assert value(after, "ledger_http_request_duration_seconds_count", **ok) - value(
        before, "ledger_http_request_duration_seconds_count", **ok
    ) == pytest.approx(3)
    assert value(after, "ledger_http_request_duration_seconds_sum", **ok) > 0
    refused = {"method": "GET", "route": template, "status": "401"}
    assert value(after, "ledger_http_requests_total", **refused) == pytest.approx(1)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, "ledger_http_requests_total", **unmatched) == pytest.approx(1)
    # Raw paths never become labels.
    assert not any(account_id in dict(labels).get("route", "") for _, labels in after)


def test_writer_batches_commits_and_transfers_by_result_are_measured(
    client: TestClient, operator: TestClient
) -> None:
    before = scrape(operator)
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    user = open_account(client, flagged=True)["id"]
    post_transfer(client, transfer_body(cash, user, "10.00"))
    post_transfer(client, transfer_body(cash, user, "5.00"))
    refused = client.post("/v1/transfers", json=transfer_body(user, cash, "1000.00"))
    assert_error(refused, 409, "insufficient_funds")

    after = scrape(operator)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("ledger_transfers_total", result="ok") == pytest.approx(2)
    assert moved("ledger_transfers_total", result="insufficient_funds") == pytest.approx(1)
    # Five submissions, each its own batch here (nothing else was queued).
    assert moved("ledger_writer_batch_commands_count") >= 5
    assert moved("ledger_writer_batch_commands_sum") == pytest.approx(5)
    # Four wrote events (two accounts, two transfers); the refusal wrote none.
    assert moved("ledger_writer_commit_duration_seconds_count") == pytest.approx(4)
    assert moved("ledger_writer_events_written_total") >= 4
    assert value(after, "ledger_writer_queued_commands") == 0
    assert value(after, "ledger_writer_running") == 1


def test_each_views_position_and_lag_are_exposed(
    client: TestClient, operator: TestClient, ledger: Ledger
) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    user = open_account(client, flagged=True)["id"]
    post_transfer(client, transfer_body(cash, user, "10.00"))
    assert ledger.projections is not None
    names = ["balances", "journal", "accounts_directory"]
    assert ledger.projections.wait_for(ledger.writer.last_position, names, 60.0)
    samples = scrape(operator)
    for name in names:
        assert value(samples, "ledger_projection_position", view=name) >= (
            ledger.writer.last_position
        )
        assert value(samples, "ledger_projection_lag_events", view=name) == 0
    assert value(samples, "ledger_projection_runner_running") == 1


def test_apps_on_one_ledger_keep_series_of_their_own(ledger: Ledger) -> None:
    _, key = ledger.api_keys.create(Role.SERVICE)
    with (
        TestClient(create_app(ledger=ledger), headers=bearer(key)) as first,
        TestClient(create_app(ledger=ledger), headers=bearer(key)) as second,
    ):
        first.get("/healthz")
        first.get("/healthz")
        healthz = {"method": "GET", "route": "/healthz", "status": "200"}
        assert value(scrape(first), "ledger_http_requests_total", **healthz) == 2
        assert value(scrape(second), "ledger_http_requests_total", **healthz) == 0
