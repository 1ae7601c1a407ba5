"""`ledger writer` with LEDGER_WRITER_METRICS_PORT serves its own /metrics:
the commands its socket took, the batches it committed (their sizes and
commit latency), its queue and the writer lease (docs/operations.md#metrics)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from domain.result_codes import ResultCode
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from tests.support.ledgers import platform_account, transfer, user_account
from tests.support.service_process import free_port
from tests.support.writer_service import WriterProcess, start_writer, writer_endpoint

# Bounds on waits, not on speed: a loaded machine is slow.
SCRAPE_WAIT_S: Final[float] = 60.0
POLL_INTERVAL_S: Final[float] = 0.2

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


def _metrics_environment(port: int) -> dict[str, str]:
    return {"LEDGER_HOST": "127.0.0.1", "LEDGER_WRITER_METRICS_PORT": str(port)}


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def metrics_url(metrics_port: int) -> str:
    return _metrics_url(metrics_port)


@pytest.fixture
def writer_process(database_url: str, tmp_path: Path, metrics_port: int) -> Iterator[WriterProcess]:
    process = start_writer(
        database_url,
        tmp_path,
        tmp_path / "writer.log",
        writer_endpoint(),
        _metrics_environment(metrics_port),
    )
    try:
        process.wait_serving()
        yield process
    finally:
        process.stop()


@pytest.fixture
def client_ledger(
    database_url: str, tmp_path: Path, writer_process: WriterProcess
) -> Iterator[Ledger]:
    ledger = build_ledger(
        Settings(
            database_url=database_url,
            data_dir=tmp_path,
            writer_endpoint=writer_process.endpoint,
        )
    )
    try:
        yield ledger
    finally:
        ledger.close()


def _scrape(url: str) -> Samples:
    deadline = time.monotonic() + SCRAPE_WAIT_S
    with httpx.Client(timeout=5.0) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                answer = client.get(url)
                if answer.status_code == 200:
                    return {
                        (sample.name, frozenset(sample.labels.items())): sample.value
                        for family in text_string_to_metric_families(answer.text)
                        for sample in family.samples
                    }
            assert time.monotonic() < deadline, f"no /metrics at {url}"
            time.sleep(POLL_INTERVAL_S)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_writer_process_counts_what_it_took_and_committed(
    client_ledger: Ledger, metrics_url: str
) -> None:
    before = _scrape(metrics_url)
    assert _value(before, "ledger_writer_lease", ledger_writer_lease="held") == 1
    assert _value(before, "ledger_writer_lease", ledger_writer_lease="waiting") == 0
    assert _value(before, "ledger_writer_running") == 1

    cash, user = platform_account(), user_account()
    opened = client_ledger.service.execute([cash, user])
    assert [result.code for result in opened.results] == [ResultCode.OK, ResultCode.OK]
    made = [transfer(cash.account_id, user.account_id, 100 + number) for number in range(3)]
    receipt = client_ledger.service.execute(made)
    assert [result.code for result in receipt.results] == [ResultCode.OK] * 3

    after = _scrape(metrics_url)
    assert (
        _value(after, "ledger_writer_commands_received_total")
        - _value(before, "ledger_writer_commands_received_total")
        == 5
    )
    assert (
        _value(after, "ledger_writer_submissions_total", outcome="queued")
        - _value(before, "ledger_writer_submissions_total", outcome="queued")
        == 2
    )
    assert (
        _value(after, "ledger_writer_batches_committed_total")
        - _value(before, "ledger_writer_batches_committed_total")
        >= 2
    )
    # Batch sizes and commit latency are histograms of the committed batches.
    assert _value(after, "ledger_writer_batch_commands_count") >= 2
    assert _value(after, "ledger_writer_commit_duration_seconds_count") >= 2
    assert _value(after, "ledger_transfers_total", result="ok") == 3
    assert ("ledger_writer_queued_commands", frozenset()) in after
    assert ("ledger_writer_answers_waiting", frozenset()) in after
    assert ("process_cpu_seconds_total", frozenset()) in after
    # The views' and withdrawals' series are the other processes' to serve.
    assert not any(
        name.startswith(("ledger_projection_", "ledger_withdrawals", "ledger_reconciliation_"))
        for name, _ in after
    )


def test_a_writer_standing_by_shows_its_lease_as_waiting(
    database_url: str, tmp_path: Path, writer_process: WriterProcess
) -> None:
    port = free_port()
    standby = start_writer(
        database_url,
        tmp_path,
        tmp_path / "standby.log",
        writer_endpoint(),
        _metrics_environment(port),
    )
    try:
        standby.wait_for_line(b"writer_lease_waiting")
        samples = _scrape(_metrics_url(port))
        assert _value(samples, "ledger_writer_lease", ledger_writer_lease="waiting") == 1
        assert _value(samples, "ledger_writer_lease", ledger_writer_lease="held") == 0
        # Not the writer yet: none of its batches' series.
        assert ("ledger_writer_running", frozenset()) not in samples
    finally:
        standby.stop()
