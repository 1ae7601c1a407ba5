"""Traces (docs/operations.md#tracing), caught with the SDK's in-memory
exporter: a request is a server span and its queries are its children; a
leased worker's pass is a span and its queries are its children; a
reconciliation run asked for over HTTP is a span linked to the request; a
query outside any request or job starts no trace."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

import psycopg
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger, build_ledger
from interface.observability import tracing
from interface.settings import Settings
from tests.support.api_keys import bearer
from tests.support.logs import captured_logs, events_named

RUN_WAIT_S: Final[float] = 120.0


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, each span exported as it ends."""
    exporter = InMemorySpanExporter()
    tracing.start([exporter], batch=False)
    try:
        yield exporter
    finally:
        tracing.stop()


@pytest.fixture
def traced_ledger(
    spans: InMemorySpanExporter, settings: Settings, clock: SettableClock
) -> Iterator[Ledger]:
    """Built after tracing started: its connections are the traced kind."""
    ledger = build_ledger(settings, clock=clock)
    try:
        yield ledger
    finally:
        ledger.close()


def _children(finished: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = parent.context.span_id
    return [
        span for span in finished if span.parent is not None and span.parent.span_id == parent_id
    ]


def _queries(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is SpanKind.CLIENT]


def test_a_request_is_a_server_span_whose_queries_are_its_children(
    traced_ledger: Ledger, spans: InMemorySpanExporter
) -> None:
    _, key = traced_ledger.api_keys.create(Role.SERVICE, label="tracing")
    with TestClient(create_app(ledger=traced_ledger), headers=bearer(key)) as client:
        spans.clear()
        answer = client.get("/v1/accounts")
        assert answer.status_code == 200, answer.text
        assert client.get("/healthz").status_code == 200
    finished = spans.get_finished_spans()
    (request,) = [span for span in finished if span.kind is SpanKind.SERVER]
    assert request.name == "GET /v1/accounts"
    assert request.parent is None
    assert request.attributes is not None
    assert request.attributes.get("http.route") == "/v1/accounts"
    queries = _queries(_children(finished, request))
    assert queries, [span.name for span in finished]
    for query in queries:
        assert query.context.trace_id == request.context.trace_id
        assert query.attributes is not None
        assert query.attributes.get("db.system") == "postgresql"


def test_a_worker_pass_is_a_span_whose_queries_are_its_children(
    traced_ledger: Ledger, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    done = traced_ledger.payout_worker.run_once()
    assert done.leased
    finished = spans.get_finished_spans()
    (worker_pass,) = [span for span in finished if span.name == "payout-worker pass"]
    assert worker_pass.parent is None
    assert worker_pass.kind is SpanKind.INTERNAL
    assert worker_pass.attributes is not None
    assert worker_pass.attributes.get("ledger.worker") == "payout-worker"
    queries = _queries(_children(finished, worker_pass))
    assert queries, [span.name for span in finished]
    assert {query.context.trace_id for query in queries} == {worker_pass.context.trace_id}
    # Taking and letting go of the lease happen outside the pass's span:
    # queries with no parent start no trace.
    assert all(span.parent is not None for span in _queries(list(finished)))


def test_a_reconciliation_run_is_a_span_linked_to_the_request_that_asked(
    traced_ledger: Ledger, spans: InMemorySpanExporter
) -> None:
    _, key = traced_ledger.api_keys.create(Role.ADMIN, label="tracing")
    with TestClient(create_app(ledger=traced_ledger), headers=bearer(key)) as client:
        spans.clear()
        started = client.post("/v1/reconciliation/runs", json={"type": "manual"})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + RUN_WAIT_S
        while traced_ledger.reconciliation_runs.running is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finished = spans.get_finished_spans()
    (request,) = [span for span in finished if span.name == "POST /v1/reconciliation/runs"]
    (run,) = [span for span in finished if span.name == "reconciliation run"]
    assert run.attributes is not None
    assert run.attributes.get("ledger.reconciliation.run_id") == started.json()["id"]
    assert [link.context.span_id for link in run.links] == [request.context.span_id]
    assert _queries(_children(finished, run))


def test_a_request_s_log_line_names_its_trace(
    traced_ledger: Ledger, spans: InMemorySpanExporter
) -> None:
    _, key = traced_ledger.api_keys.create(Role.SERVICE, label="tracing")
    with TestClient(create_app(ledger=traced_ledger), headers=bearer(key)) as client:
        spans.clear()
        with captured_logs() as output:
            assert client.get("/v1/accounts").status_code == 200
    (request,) = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    (line,) = [
        line for line in events_named(output, "http_request") if line["route"] == "/v1/accounts"
    ]
    assert line["trace_id"] == f"{request.context.trace_id:032x}"
    assert isinstance(line["span_id"], str)


def test_a_query_outside_any_request_or_job_starts_no_trace(
    traced_ledger: Ledger, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    with psycopg.connect(traced_ledger.database_url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    assert spans.get_finished_spans() == ()
