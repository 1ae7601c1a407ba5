"""The worker process's own `/metrics` (LEDGER_WORKER_METRICS_PORT).

`ledger worker` runs the background loops and the projection runner; the
HTTP processes do not, so their `/metrics` shows those loops as not running
here. This endpoint serves the worker process's registry (its loops' series,
the views' positions) and its process series, in Prometheus' text format,
on a port of its own. It asks for no key: bind it where only the scraper
reaches (docs/operations.md#metrics).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    start_http_server,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

# How long closing waits for the serving thread.
STOP_TIMEOUT_S: Final[float] = 5.0


class _Registries(Collector):
    """Several registries served as one; their metric names never overlap."""

    def __init__(self, registries: Sequence[CollectorRegistry]) -> None:
        self._registries = registries

    def collect(self) -> Iterator[Metric]:
        for registry in self._registries:
            yield from registry.collect()


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        port: int = self.server.server_port
        return port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(STOP_TIMEOUT_S)


def serve_metrics(host: str, port: int, *registries: CollectorRegistry) -> MetricsServer:
    """Serve `registries` and the process's series on host:port (0: any free
    port) from a thread, until `close`."""
    process = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        process.register(collector)
    server, thread = start_http_server(
        port, addr=host, registry=_Registries([process, *registries])
    )
    return MetricsServer(server, thread)
