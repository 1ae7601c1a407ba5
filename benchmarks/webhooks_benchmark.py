"""`ledger bench --only webhooks`: the writer with webhooks and the stream on, and off.

Two ledgers, each on a fresh database of the benchmark's PostgreSQL, laid
out as `ledger serve` lays out its processes: the writer in this process,
and everything else in a `ledger worker` child process (the same command,
the same code): the projection runner, webhook delivery and the stream
publisher. "off": no subscription, no stream publisher; "on": one webhook
subscription to every event type, received by a plain HTTP server in a
child process on 127.0.0.1, and the Redis stream publisher when REDIS_URL is
set. Each opens and funds the same accounts, then writes the same transfers
through the writer from client threads (benchmarks/writer_phases.py); the
writer's transfers/s of "on" is reported as a ratio to "off" in the same
run, the phases alternating (off, on, off, on) so a machine's drift falls
on both.

Delivery latency is measured on "on": for every transfer.posted event the
receiver got, its arrival time minus the event's `time` (when the ledger
recorded it), p50 and p99 over the phase, once the receiver has every one.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import psycopg

from benchmarks import databases
from benchmarks.workload import Workload, percentile
from benchmarks.writer_phases import open_and_fund_accounts, run_phase
from interface.bootstrap import build_ledger
from interface.settings import Settings
from projections.integration_events import NAME as INTEGRATION_VIEW

ACCOUNTS_DEFAULT: Final[int] = 1_000
TRANSFERS_DEFAULT: Final[int] = 40_000
CLIENT_THREADS: Final[int] = 8
CHUNK_SIZE: Final[int] = 100
ROUNDS_DEFAULT: Final[int] = 2
# How long the receiver may take to get every event after the writes.
DRAIN_WAIT_S: Final[float] = 300.0
VIEW_WAIT_S: Final[float] = 300.0
VIEW_POLL_INTERVAL_S: Final[float] = 0.01
# How long the worker process may take to stop after SIGTERM.
WORKER_STOP_WAIT_S: Final[float] = 60.0
MINIMUM_RATIO: Final[float] = 0.95


@dataclass(frozen=True, slots=True)
class WebhooksBenchmarkConfig:
    accounts: int = ACCOUNTS_DEFAULT
    transfers: int = TRANSFERS_DEFAULT
    rounds: int = ROUNDS_DEFAULT
    database_url: str | None = None
    redis_url: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseFigures:
    name: str
    transfers_per_s: float
    delivered: int = 0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    # After the last write: when the integration events view had it, and
    # when the receiver had every event (where the latency comes from).
    view_caught_up_after_s: float = 0.0
    delivered_all_after_s: float = 0.0


# The receiver, in a child process so it takes no CPU from the writer's GIL.


def _receive(port: int, record_path: str, ready: Any) -> None:
    record = Path(record_path).open("a", buffering=1)  # noqa: SIM115 - open while serving

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrived = time.time()
            event = json.loads(body)
            record.write(f"{event['type']} {event['time']} {arrived}\n")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    # The worker sends a wave of deliveries at once; the default backlog (5)
    # would refuse most of them.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def _latencies_ms(record_path: Path) -> list[float]:
    latencies = []
    for line in record_path.read_text().splitlines():
        event_type, recorded, arrived = line.split(" ")
        if event_type == "transfer.posted":
            at = datetime.fromisoformat(recorded).timestamp()
            latencies.append((float(arrived) - at) * 1000)
    return sorted(latencies)


def _phase(server_url: str, config: WebhooksBenchmarkConfig, *, on: bool) -> PhaseFigures:
    name = "on" if on else "off"
    with (
        databases.temporary_database(server_url, "bench_webhooks") as url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        settings = Settings(database_url=url, data_dir=Path(scratch))
        # The writer alone here; the views are the worker's to follow.
        ledger = build_ledger(settings, start_projections=False)
        worker = _start_worker(url, Path(scratch), config.redis_url if on else None)
        receiver = None
        record_path = Path(scratch) / "received.txt"
        try:
            workload = Workload(accounts=config.accounts, seed=24, chunk_size=CHUNK_SIZE)
            account_ids = open_and_fund_accounts(ledger.local_writer, workload)
            if on:
                port = _free_port()
                ready = multiprocessing.Event()
                receiver = multiprocessing.Process(
                    target=_receive, args=(port, str(record_path), ready), daemon=True
                )
                receiver.start()
                ready.wait(10)
                ledger.integration.webhook_endpoints.create(
                    f"http://127.0.0.1:{port}/hooks", [], "bench", ledger.clock.now()
                )
            _wait_for_view(url, ledger.writer.last_position, worker)
            result = run_phase(
                ledger.local_writer, workload, account_ids, name, config.transfers, CLIENT_THREADS
            )
            if not on:
                return PhaseFigures(name, result.transfers_per_s)
            written = time.monotonic()
            _wait_for_view(url, ledger.writer.last_position, worker)
            view_caught_up_after_s = time.monotonic() - written
            deadline = time.monotonic() + DRAIN_WAIT_S
            while time.monotonic() < deadline:
                latencies = _latencies_ms(record_path) if record_path.exists() else []
                if len(latencies) >= config.transfers:
                    break
                time.sleep(0.5)
            return PhaseFigures(
                name,
                result.transfers_per_s,
                delivered=len(latencies),
                latency_p50_ms=percentile(latencies, 0.50),
                latency_p99_ms=percentile(latencies, 0.99),
                view_caught_up_after_s=round(view_caught_up_after_s, 2),
                delivered_all_after_s=round(time.monotonic() - written, 2),
            )
        finally:
            _stop_worker(worker)
            ledger.close()
            if receiver is not None:
                receiver.terminate()
                receiver.join()


def _start_worker(
    database_url: str, data_dir: Path, redis_url: str | None
) -> subprocess.Popen[bytes]:
    """`ledger worker` on the phase's database: the projections, webhook
    delivery, and the stream publisher when given a Redis."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_URL", "LEDGER_WRITER_ENDPOINT")
    }
    environment |= {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
        "LEDGER_STREAM_KEY": f"bench:ledger:events:{os.getpid()}:{time.monotonic_ns()}",
        "LEDGER_LOG_LEVEL": "WARNING",
    }
    if redis_url:
        environment["REDIS_URL"] = redis_url
    return subprocess.Popen([sys.executable, "-m", "interface.cli", "worker"], env=environment)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(WORKER_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _wait_for_view(database_url: str, position: int, worker: subprocess.Popen[bytes]) -> None:
    """Until the worker's runner has the integration events view at `position`."""
    deadline = time.monotonic() + VIEW_WAIT_S
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            row = connection.execute(
                "SELECT position FROM projection_tracking WHERE name = %s", (INTEGRATION_VIEW,)
            ).fetchone()
            if row is not None and row[0] >= position:
                return
            if worker.poll() is not None:
                raise RuntimeError(f"the worker process exited ({worker.returncode})")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the views did not reach {position} in {VIEW_WAIT_S:.0f} s")
            time.sleep(VIEW_POLL_INTERVAL_S)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run(config: WebhooksBenchmarkConfig) -> dict[str, Any]:
    server_url = databases.server_url(config.database_url)
    phases: list[PhaseFigures] = []
    for _ in range(config.rounds):
        phases.append(_phase(server_url, config, on=False))
        phases.append(_phase(server_url, config, on=True))
    off = statistics.median(phase.transfers_per_s for phase in phases if phase.name == "off")
    on_phases = [phase for phase in phases if phase.name == "on"]
    on = statistics.median(phase.transfers_per_s for phase in on_phases)
    return {
        "accounts": config.accounts,
        "transfers_per_phase": config.transfers,
        "stream_publisher": "on" if config.redis_url else "off (REDIS_URL unset)",
        "phases": [asdict(phase) for phase in phases],
        "writer_transfers_per_s_off": round(off, 1),
        "writer_transfers_per_s_on": round(on, 1),
        "ratio_on_to_off": round(on / off, 3) if off else 0.0,
        "delivery_latency_p50_ms": round(
            statistics.median(phase.latency_p50_ms for phase in on_phases), 1
        ),
        "delivery_latency_p99_ms": round(max(phase.latency_p99_ms for phase in on_phases), 1),
        "every_event_delivered": all(phase.delivered >= config.transfers for phase in on_phases),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger bench --only webhooks")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS_DEFAULT)
    parser.add_argument("--transfers", type=int, default=TRANSFERS_DEFAULT)
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT)
    parser.add_argument("--quick", action="store_true", help="5,000 transfers, one round")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args(argv)
    config = WebhooksBenchmarkConfig(
        accounts=arguments.accounts,
        transfers=5_000 if arguments.quick else arguments.transfers,
        rounds=1 if arguments.quick else arguments.rounds,
        database_url=arguments.database_url,
        redis_url=os.environ.get("REDIS_URL"),
    )
    report = run(config)
    if arguments.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for key, value in report.items():
            if key != "phases":
                sys.stdout.write(f"{key}: {value}\n")
        for phase in report["phases"]:
            sys.stdout.write(f"  {phase}\n")
    passed = report["every_event_delivered"] and report["ratio_on_to_off"] >= MINIMUM_RATIO
    return 0 if passed else 1
