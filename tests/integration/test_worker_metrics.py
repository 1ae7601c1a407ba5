"""Each leased loop counts its passes by outcome, its failures (passes that
raised, items a due-work pass could not handle), when its last pass under
the lease ended and how long it took, and how late its next pass is; the
collector turns that into `ledger_worker_*{worker}` series
(docs/operations.md#metrics)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any, Final

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from interface.observability.metrics import render
from interface.observability.worker_metrics import WatchedLoop, WorkerCollector
from interface.workers.leased_worker import Connection, DueWorker, LeasedLoop, PassStatistics

# Advisory lock keys of these tests' own loops (no worker of the service uses them).
LOCK_KEY: Final[int] = 7_302_301
DUE_LOCK_KEY: Final[int] = 7_302_302


def _samples(*loops: WatchedLoop) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(lambda: loops))
    text = render(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _loop(database_url: str, work: Any) -> LeasedLoop[int]:
    return LeasedLoop(
        name="test-loop", database_url=database_url, lock_key=LOCK_KEY, interval_s=60, work=work
    )


def test_passes_are_counted_by_outcome_and_failures_with_them(database_url: str) -> None:
    answers: list[int | Exception] = [7, RuntimeError("the broker is away"), 8]

    def work(connection: Connection, stopping: threading.Event) -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    loop = _loop(database_url, work)
    assert loop.run_once() == 7
    before = time.time()
    with contextlib.suppress(RuntimeError):
        loop.run_once()
    # Another process holds the lease: this pass does nothing.
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        assert loop.run_once() is None
    assert loop.run_once() == 8
    statistics = loop.statistics
    assert (statistics.completed, statistics.not_leased, statistics.failed) == (2, 1, 1)
    assert statistics.last_completed_at is not None
    assert statistics.last_completed_at >= before
    samples = _samples(loop)
    worker = ("worker", "test-loop")
    for outcome, count in (("completed", 2), ("not_leased", 1), ("failed", 1)):
        key = ("ledger_worker_passes_total", frozenset({worker, ("outcome", outcome)}))
        assert samples[key] == count
    assert samples[("ledger_worker_failures_total", frozenset({worker}))] == 1
    assert samples[("ledger_worker_running", frozenset({worker}))] == 0
    last = samples[("ledger_worker_last_pass_timestamp_seconds", frozenset({worker}))]
    assert last == statistics.last_completed_at
    duration = samples[("ledger_worker_last_pass_duration_seconds", frozenset({worker}))]
    assert duration == statistics.last_completed_duration_s
    # Not running here: no lag to speak of.
    assert ("ledger_worker_lag_seconds", frozenset({worker})) not in samples


def test_items_a_due_pass_could_not_handle_are_failures(database_url: str) -> None:
    due = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]

    def handle(item_id: uuid.UUID) -> str:
        if item_id == due[1]:
            raise RuntimeError("this payout's gateway is away")
        return "completed"

    worker = DueWorker(
        name="test-due-worker",
        database_url=database_url,
        lock_key=DUE_LOCK_KEY,
        interval_s=60,
        find_due=lambda connection, limit: due[:limit],
        handle=handle,
        per_query=10,
        per_pass_max=10,
    )
    done = worker.run_once()
    assert done.attempted == 3
    assert worker.loop.statistics.completed == 1
    assert worker.loop.statistics.item_failures == 1
    samples = _samples(worker.loop)
    assert (
        samples[("ledger_worker_failures_total", frozenset({("worker", "test-due-worker")}))] == 1
    )


def test_a_running_loop_reports_how_late_its_next_pass_is(database_url: str) -> None:
    loop = _loop(database_url, lambda connection, stopping: 1)
    loop.start()
    try:
        samples = _samples(loop)
        assert samples[("ledger_worker_running", frozenset({("worker", "test-loop")}))] == 1
        assert samples[("ledger_worker_lag_seconds", frozenset({("worker", "test-loop")}))] == 0
    finally:
        loop.stop()


def test_lag_is_the_time_past_the_interval_since_the_last_pass_ended() -> None:
    statistics = PassStatistics(interval_s=10.0)
    assert statistics.lag_s() == 0
    statistics.last_ended_monotonic = time.monotonic() - 100.0
    assert 90.0 <= statistics.lag_s() < 100.0
    statistics.last_ended_monotonic = time.monotonic()
    assert statistics.lag_s() == 0
