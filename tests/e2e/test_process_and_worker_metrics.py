"""`GET /metrics` carries the process's own series and one set of
`ledger_worker_*` series per leased background worker (docs/operations.md#metrics)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger
from tests.e2e.test_metrics import Samples, scrape, value
from tests.support.api_keys import bearer

# The workers every service process has (the stream publishers only with Redis).
WORKERS = {
    "rules-monitor",
    "payout-worker",
    "closure-worker",
    "fork-scanner",
    "guard-worker",
    "reconciliation-schedule",
    "webhook-worker",
    "checkpointer",
}


@pytest.fixture
def operator(ledger: Ledger) -> Iterator[TestClient]:
    _, key = ledger.api_keys.create(Role.AUDITOR)
    with TestClient(create_app(ledger=ledger), headers=bearer(key)) as test_client:
        yield test_client


def _workers_in(samples: Samples, name: str) -> set[str]:
    return {dict(labels)["worker"] for sample_name, labels in samples if sample_name == name}


def test_the_process_series_are_exposed(operator: TestClient) -> None:
    samples = scrape(operator)
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        assert (name, frozenset()) in samples, name
    assert any(name == "python_info" for name, _ in samples)


def test_every_leased_worker_has_its_series(ledger: Ledger, operator: TestClient) -> None:
    samples = scrape(operator)
    assert _workers_in(samples, "ledger_worker_running") >= WORKERS
    assert _workers_in(samples, "ledger_worker_failures_total") >= WORKERS
    assert _workers_in(samples, "ledger_worker_passes_total") >= WORKERS
    # Nothing has run yet in this test's process.
    assert value(samples, "ledger_worker_running", worker="payout-worker") == 0
    assert not _workers_in(samples, "ledger_worker_last_pass_timestamp_seconds")


def test_a_pass_moves_its_workers_series(ledger: Ledger, operator: TestClient) -> None:
    assert ledger.payout_worker.run_once().leased
    samples = scrape(operator)
    passes = value(
        samples, "ledger_worker_passes_total", worker="payout-worker", outcome="completed"
    )
    assert passes == 1
    assert value(samples, "ledger_worker_failures_total", worker="payout-worker") == 0
    assert value(samples, "ledger_worker_last_pass_timestamp_seconds", worker="payout-worker") > 0
    assert (
        "ledger_worker_last_pass_duration_seconds",
        frozenset({("worker", "payout-worker")}),
    ) in (samples)
    ledger.payout_worker.start()
    try:
        samples = scrape(operator)
        assert value(samples, "ledger_worker_running", worker="payout-worker") == 1
        assert ("ledger_worker_lag_seconds", frozenset({("worker", "payout-worker")})) in samples
    finally:
        ledger.payout_worker.stop()
