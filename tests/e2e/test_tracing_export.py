"""The standard variables are enough: `ledger worker` with
OTEL_EXPORTER_OTLP_ENDPOINT sends its spans over OTLP/HTTP (protobuf) to
that collector, under the service name OTEL_SERVICE_NAME gives
(docs/operations.md#tracing). The collector is this test's own HTTP server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from tests.support.service_process import LEDGER_SCRIPT

# Bounds on waits, not on speed: a loaded machine is slow.
EXPORT_WAIT_S: Final[float] = 120.0
STOP_WAIT_S: Final[float] = 30.0
POLL_INTERVAL_S: Final[float] = 0.2


class Collector(ThreadingHTTPServer):
    """Keeps every OTLP/HTTP traces request it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.requests: list[tuple[str, str, ExportTraceServiceRequest]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def span_names(self, service_name: str) -> set[str]:
        with self.lock:
            return {
                span.name
                for _, _, request in self.requests
                for resource_spans in request.resource_spans
                if _service_name(resource_spans) == service_name
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            }


def _service_name(resource_spans: ResourceSpans) -> str:
    for attribute in resource_spans.resource.attributes:
        if attribute.key == "service.name":
            name: str = attribute.value.string_value
            return name
    return ""


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get("Content-Type", ""), request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        """Quiet."""


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(STOP_WAIT_S)


def test_a_worker_exports_its_passes_to_the_configured_collector(
    collector: Collector, database_url: str, tmp_path: Path
) -> None:
    environment = {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_PAYOUT_WORKER_INTERVAL_S": "0.2",
        "LEDGER_LOG_LEVEL": "WARNING",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "ledger-under-test",
        # Export every 100 ms rather than every 5 s.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    for variable in ("LEDGER_WRITER_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        environment.pop(variable, None)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [str(LEDGER_SCRIPT), "worker"],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + EXPORT_WAIT_S
            while "payout-worker pass" not in collector.span_names("ledger-under-test"):
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "no payout pass reached the collector"
                time.sleep(POLL_INTERVAL_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(STOP_WAIT_S)
    with collector.lock:
        path, content_type, _ = collector.requests[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    # The pass's queries came along, as its children.
    assert {"SELECT"} <= collector.span_names("ledger-under-test")
