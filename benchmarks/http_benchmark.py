"""`ledger bench --only http`: the HTTP API under load, from many concurrent clients.

One run per server configuration (`--http-server-workers 1,2`, each under
every ASGI server of `--http-servers uvicorn,granian`, LEDGER_HTTP_SERVER): a fresh
database on the benchmark's PostgreSQL; user accounts opened and funded from
a cash account through the writer, and a service-role API key made in the
database, before the server starts; then the real server as a child process
(`ledger http --all-in-one` for one worker; uvicorn with `create_server_app`
as factory for several, each worker with its own writer; with
`--http-writer-process`, `ledger serve --http-processes N`: one writer
process, N HTTP processes and the worker) on a free port, with
`LEDGER_LOG_LEVEL=WARNING` and any rate limit set out of the way. With the
floor phase, a bare FastAPI app (benchmarks/http_floor.py) runs first under
the same server and process count, its processes sharing one listening
socket as `ledger serve`'s do (benchmarks/http_processes.py).

Then two phases, each by a load generator in a process of its own
(benchmarks/http_load.py), `clients` keep-alive connections in a closed loop:
1. transfers: `POST /v1/transfers`, one transfer per request between two
   distinct random accounts, each with a unique `idempotency_key`;
2. reads: `GET /v1/accounts/{id}` of random accounts (a balance read).
Each phase warms up, then measures requests/s and latency percentiles exactly
from every measured request, errors by status, and the CPU of the server,
PostgreSQL, the load generator and the whole machine. With `--http-profile`,
py-spy samples the server during each measured window. With
`--http-worker-busy`, the transfers and reads phases run again while `ledger
projections rebuild` and `ledger reconcile run` run over and over on the same
database (benchmarks/http_busy.py), and the report gives the drop as a ratio.

After the server has stopped, every account's balance is read back from the
event store and checked against the transfers the server acknowledged.

    from benchmarks.http_benchmark import HttpBenchmarkConfig, render, run_http_benchmark
    print(render(run_http_benchmark(HttpBenchmarkConfig.quick())))
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

from benchmarks import databases
from benchmarks.http_busy import BusyWork, busy_background
from benchmarks.http_load import (
    BATCH,
    BATCH_ITEMS,
    FLOOR,
    HOT,
    PHASE_KINDS,
    READS,
    TRANSFERS,
    ClientKind,
    LoadProcess,
    LoadResult,
    LoadSpec,
    PhaseKind,
)
from benchmarks.http_report import (
    HttpBenchmarkReport,
    HttpPhaseResult,
    HttpServerRun,
    render,
    to_document,
    to_json,
)
from benchmarks.server_profile import CpuMeter, ProfileSummary, SamplingProfiler, parent_of
from benchmarks.workload import CURRENCY, FUNDING_MINOR, TRANSFER_AMOUNT_MINOR_MAX, Workload
from benchmarks.writer_phases import BenchmarkFailed, open_and_fund_accounts
from benchmarks.writer_phases import run_phase as run_writer_phase
from interface.processes.http_server import HTTP_SERVER_NAMES

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "HttpBenchmarkConfig",
    "HttpBenchmarkReport",
    "create_server_app",
    "main",
    "render",
    "run_http_benchmark",
    "run_selected",
    "to_json",
]

READY_TIMEOUT_S: Final[float] = 120.0
STOP_TIMEOUT_S: Final[float] = 30.0
SETUP_CHUNK_SIZE: Final[int] = 1_000
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
RATE_LIMIT_PREFIX: Final[str] = "LEDGER_RATE_LIMIT_"
RATE_LIMIT_UNBOUNDED: Final[int] = 1_000_000
TIMED: Final[str] = (
    "each phase: the load generator connects every client, starts them at once and "
    "discards the first warmup_s seconds; requests sent in the next duration_s seconds "
    "are measured, and the window closes when the last of them is answered. "
    "requests/s = measured requests / window. Latency: from writing a request to having "
    "parsed its response, on the client. Account setup (through the writer, before the "
    "server starts) is not timed; a CHECKPOINT runs before each phase."
)


@dataclass(frozen=True, slots=True)
class HttpBenchmarkConfig:
    duration_s: float = 30.0
    warmup_s: float = 5.0
    clients: int = 64
    accounts: int = 1_000
    # One server run per entry: uvicorn worker processes.
    server_workers: tuple[int, ...] = (1,)
    # Each process count under each of these ASGI servers (LEDGER_HTTP_SERVER),
    # the floor included.
    http_servers: tuple[str, ...] = ("uvicorn",)
    # The transfers and reads phases again, with a projection rebuild and a
    # reconciliation run going on beside them (benchmarks/http_busy.py).
    worker_busy: bool = False
    phases: tuple[PhaseKind, ...] = (TRANSFERS, READS)
    # Also send an Idempotency-Key header with every POST (the HTTP replay store).
    idempotency_header: bool = False
    # Keep the views in a `ledger projections run` beside the server even with
    # one worker (several workers always do).
    projections_apart: bool = False
    client: ClientKind = "raw"
    # The service as `ledger serve --http-processes N` (N from
    # `server_workers`): one `ledger writer`, N `ledger http` submitting to it
    # (LEDGER_WRITER_ENDPOINT) and `ledger worker`.
    writer_process: bool = False
    # Transfers the in-process writer takes in BATCH_ITEMS-transfer submissions
    # for the batch route's baseline (measured when the batch phase runs).
    writer_baseline_transfers: int = 200_000
    # py-spy the server during each measured window (needs py-spy installed).
    profile: bool = False
    seed: int = 1
    # Where the embedded server keeps its data; default ./.bench.
    data_dir: Path | None = None
    # A server of your own; default LEDGER_BENCH_DATABASE_URL, else the embedded one.
    database_url: str | None = None
    # Where server logs and profiles go; default a new temporary folder.
    output_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError("duration_s must be positive and warmup_s not negative")
        if self.clients < 1:
            raise ValueError("clients must be at least 1")
        if self.accounts < 2:
            raise ValueError("accounts must be at least 2")
        if not self.server_workers or min(self.server_workers) < 1:
            raise ValueError("server_workers needs at least one count of 1 or more")
        if not self.http_servers or any(
            server not in HTTP_SERVER_NAMES for server in self.http_servers
        ):
            raise ValueError(f"http_servers are among {', '.join(HTTP_SERVER_NAMES)}")
        if not self.phases or any(phase not in PHASE_KINDS for phase in self.phases):
            raise ValueError(f"phases are among {', '.join(PHASE_KINDS)}")
        if self.writer_baseline_transfers < BATCH_ITEMS:
            raise ValueError(f"writer_baseline_transfers must be at least {BATCH_ITEMS}")
        if self.client not in ("raw", "httpx"):
            raise ValueError("client is raw or httpx")

    @classmethod
    def quick(cls, **overrides: Any) -> HttpBenchmarkConfig:
        """Every part in a few seconds: for smoke tests, not for figures."""
        small = cls(
            duration_s=3.0,
            warmup_s=1.0,
            clients=8,
            accounts=100,
            writer_baseline_transfers=20_000,
        )
        return replace(small, **overrides)


# The server process --------------------------------------------------------------


def create_server_app() -> FastAPI:
    """For `uvicorn --factory --workers N`: each worker builds its own ledger
    (and writer) from the environment, as `ledger serve` does."""
    from interface.api.app import create_app
    from interface.observability.logging import configure_logging
    from interface.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def projections_apart(workers: int, apart: bool, writer_process: bool = False) -> bool:
    """Whether the server's views are kept by a `ledger projections run` of
    their own: always with several workers (as the README's scaling notes say).
    Never beside `ledger serve`: its worker process keeps them."""
    return not writer_process and (apart or workers > 1)


def uvicorn_command(factory: str, workers: int, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def shared_socket_command(factory: str, workers: int, port: int, http_server: str) -> list[str]:
    """`workers` processes of the app on one inherited socket, as `ledger serve`
    runs its HTTP processes (benchmarks/http_processes.py)."""
    return [
        sys.executable,
        "-m",
        "benchmarks.http_processes",
        *("--app", factory, "--server", http_server, "--processes", str(workers)),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"),
    ]


def server_command(
    workers: int,
    port: int,
    apart: bool = False,
    writer_process: bool = False,
    http_server: str = "uvicorn",
) -> list[str]:
    """`ledger http` and `ledger serve` run their ASGI server as
    LEDGER_HTTP_SERVER says (server_environment sets it)."""
    ledger = Path(sys.executable).with_name("ledger")
    listen = ["--host", "127.0.0.1", "--port", str(port)]
    if writer_process:
        # The supervisor: `ledger writer`, N `ledger http` on one port and
        # `ledger worker` (the views, the background work), its children.
        return [str(ledger), "serve", *listen, "--http-processes", str(workers)]
    # The projections process runs in the server's process tree, so the
    # server's CPU counts it.
    beside = ["sh", "-c", f'"{ledger}" projections run & exec "$0" "$@"']
    if workers == 1:
        # One process with its own writer, the views and every worker.
        serve = [str(ledger), "http", "--all-in-one", *listen]
        return [*beside, *serve] if apart else serve
    factory = f"{__name__}:create_server_app"
    if http_server == "uvicorn":
        return [*beside, *uvicorn_command(factory, workers, port)]
    return [*beside, *shared_socket_command(factory, workers, port, http_server)]


def floor_command(workers: int, port: int, http_server: str = "uvicorn") -> list[str]:
    """The bare FastAPI app, under the same server and process count, its
    processes on one socket as the service's HTTP processes are."""
    return shared_socket_command(
        "benchmarks.http_floor:create_floor_app", workers, port, http_server
    )


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    command: list[str]
    host: str
    port: int
    log_path: Path
    _log: IO[bytes]
    # Answers 200 once the server takes requests.
    ready_path: str = "/readyz"
    # Its environment (the busy background work runs with the same).
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkFailed(f"the server exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_get(self.host, self.port, self.ready_path)[0] == 200:
                    return
            time.sleep(0.1)
        raise BenchmarkFailed(f"the server was not ready in {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to its process group (workers included), then SIGKILL."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout_s)
        # Workers may outlive a master killed hard: the group goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def rate_limit_environment() -> dict[str, str]:
    """Every numeric rate limit setting at the highest value it accepts: the
    benchmark measures the ledger, not the limiter's refusals (one key sends
    every request)."""
    from interface.settings import Settings

    environment: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        alias = str(info.validation_alias or name).upper()
        if not alias.startswith(RATE_LIMIT_PREFIX) or info.annotation not in (int, float):
            continue
        highest: float = RATE_LIMIT_UNBOUNDED
        for constraint in info.metadata:
            bound = getattr(constraint, "le", None)
            if isinstance(bound, int | float):
                highest = bound
        environment[alias] = str(int(highest))
    return environment


def server_environment(
    database_url: str,
    data_dir: Path,
    workers: int,
    apart: bool = False,
    writer_endpoint: str | None = None,
    http_server: str = "uvicorn",
) -> dict[str, str]:
    environment = {
        **os.environ,
        **rate_limit_environment(),
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        # Several workers are several writers on the same accounts: each
        # decides its batches under the log's write lock instead of racing,
        # and none runs the projections (one process beside them does).
        # With a writer process there is one writer, whatever the workers.
        "LEDGER_WRITER_DECIDE_UNDER_LOCK": (
            "true" if workers > 1 and writer_endpoint is None else "false"
        ),
        "LEDGER_PROJECTIONS_IN_PROCESS": "false" if apart else "true",
        "LEDGER_HTTP_SERVER": http_server,
    }
    if writer_endpoint is not None:
        environment["LEDGER_WRITER_ENDPOINT"] = writer_endpoint
    return environment


def _start(
    command: list[str], environment: dict[str, str], log_path: Path, ready_path: str
) -> ServerProcess:
    port = int(command[command.index("--port") + 1])
    log = log_path.open("ab")
    process = subprocess.Popen(  # noqa: S603 - our own server's fixed command line
        command,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return ServerProcess(
        process, command, "127.0.0.1", port, log_path, log, ready_path, environment
    )


@contextlib.contextmanager
def running_server(
    database_url: str,
    workers: int,
    data_dir: Path,
    log_path: Path,
    apart: bool = False,
    writer_process: bool = False,
    http_server: str = "uvicorn",
) -> Iterator[ServerProcess]:
    port = free_port()
    apart = projections_apart(workers, apart, writer_process)
    endpoint = f"tcp://127.0.0.1:{free_port()}" if writer_process else None
    server = _start(
        server_command(workers, port, apart, writer_process, http_server),
        server_environment(database_url, data_dir, workers, apart, endpoint, http_server),
        log_path,
        "/readyz",
    )
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_floor(
    workers: int, log_path: Path, http_server: str = "uvicorn"
) -> Iterator[ServerProcess]:
    server = _start(
        floor_command(workers, free_port(), http_server),
        {**os.environ, "PYTHONUNBUFFERED": "1"},
        log_path,
        "/",
    )
    try:
        yield server
    finally:
        server.stop()


def http_get(host: str, port: int, path: str, api_key: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{host}:{port}{path}")
    if api_key is not None:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), b""


# The server's own figures, when it has /metrics ------------------------------------

_WRITER_SERIES: Final[tuple[str, ...]] = (
    "ledger_writer_batch_commands_count",
    "ledger_writer_batch_commands_sum",
    "ledger_writer_commit_duration_seconds_count",
    "ledger_writer_commit_duration_seconds_sum",
    "ledger_writer_conflicts_retried_total",
)


def writer_series(server: ServerProcess, api_key: str) -> dict[str, float]:
    """Unlabelled writer series from /metrics; empty if the server has none."""
    with contextlib.suppress(OSError):
        status, body = http_get(server.host, server.port, "/metrics", api_key)
        if status == 200:
            found: dict[str, float] = {}
            for line in body.decode(errors="replace").splitlines():
                name, _, value = line.partition(" ")
                if name in _WRITER_SERIES:
                    with contextlib.suppress(ValueError):
                        found[name] = float(value)
            return found
    return {}


def writer_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    def delta(name: str) -> float | None:
        return after[name] - before.get(name, 0.0) if name in after else None

    figures: dict[str, float] = {}
    batches = delta("ledger_writer_batch_commands_count")
    commands = delta("ledger_writer_batch_commands_sum")
    if batches and commands is not None:
        figures["batches"] = batches
        figures["mean_batch_commands"] = commands / batches
    commits = delta("ledger_writer_commit_duration_seconds_count")
    commit_s = delta("ledger_writer_commit_duration_seconds_sum")
    if commits and commit_s is not None:
        figures["mean_commit_ms"] = 1000 * commit_s / commits
    conflicts = delta("ledger_writer_conflicts_retried_total")
    if conflicts is not None:
        figures["conflicts_retried"] = conflicts
    return figures


# Phases ---------------------------------------------------------------------------


def nearest_rank(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of sorted values (as benchmarks.workload.percentile)."""
    if not sorted_values:
        return 0
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def phase_result(
    load: LoadResult,
    cpu_cores: dict[str, float],
    writer: dict[str, float],
    profile: ProfileSummary | str | None,
) -> HttpPhaseResult:
    latencies = load.latencies_ns
    count = len(latencies)

    def ms(value_ns: float) -> float:
        return value_ns / 1e6

    return HttpPhaseResult(
        kind=load.kind,
        clients=load.clients,
        requests=count,
        seconds=load.seconds,
        requests_per_s=count / load.seconds if load.seconds else 0.0,
        latency_p50_ms=ms(nearest_rank(latencies, 0.50)),
        latency_p90_ms=ms(nearest_rank(latencies, 0.90)),
        latency_p99_ms=ms(nearest_rank(latencies, 0.99)),
        latency_max_ms=ms(latencies[-1]) if count else 0.0,
        latency_mean_ms=ms(sum(latencies) / count) if count else 0.0,
        errors=load.errors,
        outcomes=dict(sorted(load.outcomes.items())),
        warmup_requests=load.warmup_requests,
        cpu_cores=cpu_cores,
        writer=writer,
        profile=profile,
    )


@dataclass(frozen=True, slots=True)
class _PhaseSetting:
    config: HttpBenchmarkConfig
    server: ServerProcess
    api_key: str
    account_ids: tuple[str, ...]
    # The PostgreSQL server's main process, if it runs on this machine.
    postgres_pid: int | None
    output_dir: Path
    run_tag: str


def run_phase(setting: _PhaseSetting, kind: PhaseKind) -> tuple[HttpPhaseResult, LoadResult]:
    config, server = setting.config, setting.server
    spec = LoadSpec(
        kind=kind,
        host=server.host,
        port=server.port,
        api_key=setting.api_key,
        account_ids=setting.account_ids,
        clients=config.clients,
        warmup_s=config.warmup_s,
        duration_s=config.duration_s,
        seed=config.seed,
        tag=f"{setting.run_tag}-{kind}",
        currency=CURRENCY,
        amount_minor_max=TRANSFER_AMOUNT_MINOR_MAX,
        idempotency_header=config.idempotency_header,
        client=config.client,
    )
    load = LoadProcess(spec)
    try:
        load.start()
        meter = CpuMeter(
            {
                "server": server.pid,
                "postgresql": setting.postgres_pid,
                "load generator": load.pid,
            }
        )
        start_ns = load.go()
        _sleep_until(start_ns + int(config.warmup_s * 1e9))
        cpu_before = meter.snapshot()
        window_started = time.perf_counter()
        writer_before = writer_series(server, setting.api_key)
        profiler = None
        if config.profile:
            output = setting.output_dir / f"profile-{setting.run_tag}-{kind}.txt"
            profiler = SamplingProfiler(server.pid, config.duration_s, output)
        _sleep_until(start_ns + int((config.warmup_s + config.duration_s) * 1e9))
        cpu_after = meter.snapshot()
        window_s = time.perf_counter() - window_started
        writer_after = writer_series(server, setting.api_key)
        result = load.result()
    finally:
        load.stop()
    profile = profiler.finish() if profiler is not None else None
    cores = meter.cores_used(cpu_before, cpu_after, window_s)
    if "load generator" not in cores and result.seconds:
        # Without /proc: the generator's own count, over its own window.
        cores["load generator"] = result.cpu_s / result.seconds
    writer = writer_figures(writer_before, writer_after) if kind == TRANSFERS else {}
    return phase_result(result, cores, writer, profile), result


def _sleep_until(instant_ns: int) -> None:
    remaining = (instant_ns - time.perf_counter_ns()) / 1e9
    if remaining > 0:
        time.sleep(remaining)


# One server configuration ----------------------------------------------------------


def postgres_main_pid(database_url: str) -> int | None:
    """The PostgreSQL server's main process, if it runs here and /proc shows it."""
    host = str(conninfo_to_dict(database_url).get("host") or "")
    if databases.transport(database_url) == "tcp" and host not in LOCAL_HOSTS:
        # Another machine's process ids mean nothing here.
        return None
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            row = connection.execute("SELECT pg_backend_pid()").fetchone()
    except psycopg.Error:
        return None
    return parent_of(int(row[0])) if row else None


def _set_up(config: HttpBenchmarkConfig, database_url: str) -> tuple[tuple[str, ...], str]:
    """Accounts opened and funded through the writer, and a service key; then closed."""
    from interface.adapters.persistence.api_keys import Role
    from interface.bootstrap import build_ledger
    from interface.settings import Settings

    settings = Settings(
        database_url=database_url,
        data_dir=databases.ledger_data_dir(database_url, config.data_dir),
    )
    ledger = build_ledger(settings, start_projections=False)
    try:
        workload = Workload(config.accounts, config.seed, SETUP_CHUNK_SIZE)
        account_ids = open_and_fund_accounts(ledger.local_writer, workload)
        _, api_key = ledger.api_keys.create(Role.SERVICE, label="http benchmark")
    finally:
        ledger.close()
    return tuple(str(account_id) for account_id in account_ids), api_key


def _verify_balances(
    config: HttpBenchmarkConfig,
    database_url: str,
    account_ids: Sequence[str],
    transfer_loads: Sequence[LoadResult],
) -> tuple[list[str], list[str]]:
    """Every account's posted balance against the transfers the server acknowledged."""
    from interface.bootstrap import build_ledger
    from interface.settings import Settings

    if not transfer_loads:
        return ["no transfers were sent: balances not checked"], []
    unknown = sum(load.unknown_outcomes for load in transfer_loads)
    acknowledged = sum(load.acknowledged for load in transfer_loads)
    if unknown:
        return [], [
            f"{unknown:,} transfer requests had no definitive answer (no response or a 5xx): "
            "balances cannot be checked"
        ]
    net = [sum(column) for column in zip(*(load.net_minor for load in transfer_loads), strict=True)]
    settings = Settings(
        database_url=database_url,
        data_dir=databases.ledger_data_dir(database_url, config.data_dir),
    )
    ledger = build_ledger(settings, start_writer=False, start_projections=False)
    wrong: list[str] = []
    try:
        for account_id, moved in zip(account_ids, net, strict=True):
            account = ledger.service.account(uuid.UUID(account_id))
            if account is None:
                wrong.append(f"{account_id}: missing")
                continue
            totals = account.totals
            posted = totals.credits_posted - totals.debits_posted
            if posted != FUNDING_MINOR + moved:
                wrong.append(f"{account_id}: {posted} != {FUNDING_MINOR + moved}")
    finally:
        ledger.close()
    if wrong:
        return [], [f"{len(wrong)} account balances disagree, e.g. " + "; ".join(wrong[:3])]
    return [
        f"all {len(account_ids):,} accounts' balances equal their funding plus the "
        f"{acknowledged:,} transfers answered 201 (warm-up included), read back from the events"
    ], []


def _floor_phase(
    config: HttpBenchmarkConfig, workers: int, http_server: str, output_dir: Path, run_tag: str
) -> HttpPhaseResult:
    """The bare FastAPI app's GET /, under the same server and process count."""
    with running_floor(workers, output_dir / f"floor-{run_tag}.log", http_server) as floor:
        floor.wait_ready()
        setting = _PhaseSetting(config, floor, "", ("floor",), None, output_dir, run_tag)
        phase, _ = run_phase(setting, FLOOR)
    return phase


def _command_shown(
    server: ServerProcess, workers: int, writer_process: bool, http_server: str = "uvicorn"
) -> str:
    # Past the `sh -c ...` that starts the projections beside it, if any.
    shown = server.command[3:] if server.command[0] == "sh" else server.command
    under = f"LEDGER_HTTP_SERVER={http_server}"
    if writer_process:
        return (
            f"{under} ledger serve --http-processes {workers} "
            f"(ledger writer, http x{workers}, worker)"
        )
    if workers == 1:
        return f"{under} ledger http --all-in-one"
    if http_server != "uvicorn":
        return f"{workers} processes of create_server_app under {http_server} on one socket"
    return " ".join(shown[1:5]) + f" --workers {workers}"


# The phases that run again, quiet and then with the worker busy.
BUSY_PHASES: Final[tuple[PhaseKind, ...]] = (TRANSFERS, READS)


@dataclass(frozen=True, slots=True)
class _BusyPasses:
    quiet: list[HttpPhaseResult]
    busy: list[HttpPhaseResult]
    # The transfers sent in either pass, for the balance check.
    transfer_loads: list[LoadResult]
    work: BusyWork | None
    failures: list[str]


def _phases_pass(
    setting: _PhaseSetting, server: ServerProcess, database_url: str, label: str
) -> tuple[list[HttpPhaseResult], list[LoadResult], list[str]]:
    tagged = replace(setting, run_tag=f"{setting.run_tag}-{label}")
    phases: list[HttpPhaseResult] = []
    transfer_loads: list[LoadResult] = []
    for kind in BUSY_PHASES:
        databases.checkpoint(database_url)
        phase, load = run_phase(tagged, kind)
        phases.append(phase)
        if kind == TRANSFERS:
            transfer_loads.append(load)
        if server.process.poll() is not None:
            return (
                phases,
                transfer_loads,
                [f"the server exited during {kind} ({label}):\n{server.log_tail()}"],
            )
    return phases, transfer_loads, []


def _busy_passes(setting: _PhaseSetting, server: ServerProcess, database_url: str) -> _BusyPasses:
    """The transfers and reads phases twice more: quiet, right before, so
    that both passes meet the same warm caches and grown log (the first
    pass after the start does not), then with a projection rebuild and a
    reconciliation run going on beside them all along."""
    quiet, quiet_loads, failures = _phases_pass(setting, server, database_url, "quiet")
    if failures:
        return _BusyPasses(quiet, [], quiet_loads, None, failures)
    log_path = setting.output_dir / f"busy-{setting.run_tag}.log"
    with busy_background(server.environment, log_path) as background:
        busy, busy_loads, failures = _phases_pass(setting, server, database_url, "busy")
        work = background.stop()
    return _BusyPasses(quiet, busy, quiet_loads + busy_loads, work, failures)


def run_server_configuration(
    config: HttpBenchmarkConfig,
    server_url: str,
    workers: int,
    output_dir: Path,
    http_server: str = "uvicorn",
) -> HttpServerRun:
    run_tag = f"http{workers}w-{http_server}-{uuid.uuid4().hex[:8]}"
    phases: list[HttpPhaseResult] = []
    passes: _BusyPasses | None = None
    if FLOOR in config.phases:
        phases.append(_floor_phase(config, workers, http_server, output_dir, run_tag))
    with databases.temporary_database(server_url, "bench_http") as database_url:
        account_ids, api_key = _set_up(config, database_url)
        log_path = output_dir / f"server-{run_tag}.log"
        transfer_loads: list[LoadResult] = []
        failures: list[str] = []
        with running_server(
            database_url,
            workers,
            databases.ledger_data_dir(database_url, config.data_dir),
            log_path,
            config.projections_apart,
            config.writer_process,
            http_server,
        ) as server:
            server.wait_ready()
            setting = _PhaseSetting(
                config,
                server,
                api_key,
                account_ids,
                postgres_main_pid(database_url),
                output_dir,
                run_tag,
            )
            for kind in config.phases:
                if kind == FLOOR:
                    continue
                databases.checkpoint(database_url)
                phase, load = run_phase(setting, kind)
                phases.append(phase)
                if kind in (TRANSFERS, HOT, BATCH):
                    transfer_loads.append(load)
                if server.process.poll() is not None:
                    failures.append(f"the server exited during {kind}:\n{server.log_tail()}")
                    break
            if config.worker_busy and not failures:
                passes = _busy_passes(setting, server, database_url)
                transfer_loads += passes.transfer_loads
                failures += passes.failures
            command = _command_shown(server, workers, config.writer_process, http_server)
        checks, balance_failures = _verify_balances(
            config, database_url, account_ids, transfer_loads
        )
        checks.append(f"server log: {log_path}")
    return HttpServerRun(
        workers=workers,
        command=command,
        accounts=len(account_ids),
        phases=phases,
        checks=checks,
        failures=failures + balance_failures,
        http_server=http_server,
        busy_quiet_phases=passes.quiet if passes is not None else [],
        busy_phases=passes.busy if passes is not None else [],
        busy_work=passes.work.lines() if passes is not None and passes.work is not None else [],
    )


def in_process_writer_transfers_per_s(config: HttpBenchmarkConfig, server_url: str) -> float:
    """The batch route's baseline: transfers/s of the writer in this process,
    taking BATCH_ITEMS-transfer submissions from `clients` threads (at most
    16) that build their commands as they go, on a database of its own."""
    from interface.bootstrap import build_ledger
    from interface.settings import Settings

    with databases.temporary_database(server_url, "bench_http_writer") as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=databases.ledger_data_dir(database_url, config.data_dir),
        )
        ledger = build_ledger(settings, start_projections=False)
        try:
            workload = Workload(config.accounts, config.seed, BATCH_ITEMS)
            writer = ledger.local_writer
            account_ids = open_and_fund_accounts(writer, workload)
            phase = run_writer_phase(
                writer,
                workload,
                account_ids,
                "http-baseline",
                config.writer_baseline_transfers,
                min(config.clients, 16),
            )
        finally:
            ledger.close()
    return phase.transfers_per_s


def run_http_benchmark(config: HttpBenchmarkConfig) -> HttpBenchmarkReport:
    load_at_start = os.getloadavg()[0]
    server_url = databases.server_url(config.database_url, config.data_dir)
    output_dir = config.output_dir or Path(tempfile.mkdtemp(prefix="ledger-http-bench-"))
    output_dir.mkdir(parents=True, exist_ok=True)
    writer_baseline = (
        in_process_writer_transfers_per_s(config, server_url) if BATCH in config.phases else None
    )
    runs = [
        run_server_configuration(config, server_url, workers, output_dir, http_server)
        for workers in config.server_workers
        for http_server in config.http_servers
    ]
    return HttpBenchmarkReport(
        config={item.name: getattr(config, item.name) for item in fields(config)},
        environment=_environment(server_url, load_at_start),
        runs=runs,
        timed=TIMED,
        notes=_notes(config, runs),
        writer_baseline_transfers_per_s=writer_baseline,
    )


def _environment(server_url: str, load_at_start: float) -> dict[str, str]:
    server = databases.server_settings(server_url)
    versions = {
        name: importlib.metadata.version(name)
        for name in (
            *("uvicorn", "uvloop", "httptools", "granian"),
            *("fastapi", "starlette", "pydantic", "eventsourcing", "psycopg"),
        )
    }
    return {
        "python": platform.python_version(),
        **versions,
        "postgresql": server.pop("server_version"),
        "connection": databases.transport(server_url),
        **server,
        "cpus": str(os.cpu_count()),
        "load_average_1m": f"{load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        "platform": platform.platform(terse=True),
    }


def _notes(config: HttpBenchmarkConfig, runs: list[HttpServerRun]) -> list[str]:
    notes = [
        "one transfer per POST, no Idempotency-Key header"
        if not config.idempotency_header
        else "one transfer per POST, each with its own Idempotency-Key header (replay store on)",
        f"load generator: one process, {config.clients} keep-alive connections, "
        + (
            "asyncio protocols + httptools on uvloop"
            if config.client == "raw"
            else "httpx.AsyncClient"
        ),
        (
            "server: `ledger serve --http-processes N`, the supervisor of `ledger writer`, "
            "N `ledger http` sharing the port and submitting to the writer over ZeroMQ, and "
            "`ledger worker` (the views, the background work); LEDGER_LOG_LEVEL=WARNING"
            if config.writer_process
            else "server: LEDGER_LOG_LEVEL=WARNING (no access log lines); several workers "
            "each run their own writer and PostgreSQL pool"
        ),
        "floor: a bare FastAPI app with one async route returning a constant "
        "(benchmarks/http_floor.py), under the same server and process count, the "
        "processes on one inherited socket as `ledger serve`'s HTTP processes",
        "ASGI servers: uvicorn on uvloop with httptools; granian (Rust) embedded in each "
        "HTTP process on its event loop (uvloop), serving the inherited socket "
        "(interface/processes/http_server.py)",
        f"batch: {BATCH_ITEMS} transfers per POST /v1/transfers/batch, figures per transfer; "
        "its baseline is the in-process writer taking the same submissions from threads",
        "hot: every transfer between the same two accounts, either way round",
        "reads run after the transfers, so accounts have history; a read comes from the "
        "views (directory and balances), after waiting for them to reach the server's "
        "last write",
    ]
    limits = rate_limit_environment()
    if limits:
        notes.append(
            "rate limit set out of reach: "
            + ", ".join(f"{name}={value}" for name, value in limits.items())
        )
    else:
        notes.append("the server has no rate limit settings")
    for run in runs:
        for phase in run.phases:
            generator = phase.cpu_cores.get("load generator", 0.0)
            if generator > 0.8:
                notes.append(
                    f"{phase.kind}, {run.workers} worker(s): the load generator used "
                    f"{generator:.2f} cores, near its one: it may have held the rate down"
                )
    if max(config.server_workers) > 1:
        notes.append(
            "with several workers the writer rows come from /metrics of whichever worker "
            "answered the scrape: one worker's share, not the sum"
        )
    if config.profile:
        notes.append("py-spy sampled the server during each measured window (slows it a little)")
    if config.worker_busy:
        notes.append(
            "worker busy: after the phases above, transfers and reads twice more: quiet, "
            "then while `ledger projections rebuild` (shadow tables, swapped in) and `ledger "
            "reconcile run` each run over and over on the same database; busy/quiet is the "
            "busy rate over that second quiet one (same warm caches, same log)"
        )
    return notes


# Command line ----------------------------------------------------------------------

HTTP_PREFIX: Final[str] = "--http-"
_HTTP_FLAGS: Final = frozenset(
    {
        "--http-idempotency-header",
        "--http-profile",
        "--http-projections-apart",
        "--http-writer-process",
        "--http-worker-busy",
    }
)
_SHARED_FLAGS: Final = frozenset({"--quick", "--json"})
_SHARED_WITH_VALUE: Final = frozenset({"--seed", "--data-dir", "--database-url"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger bench --only http", description="The HTTP API under concurrent clients."
    )
    parser.add_argument("--http-duration-s", type=float, default=None)
    parser.add_argument("--http-warmup-s", type=float, default=None)
    parser.add_argument("--http-clients", type=int, default=None)
    parser.add_argument("--http-accounts", type=int, default=None)
    parser.add_argument(
        "--http-server-workers", default=None, help="comma-separated, one run each: 1,2"
    )
    parser.add_argument(
        "--http-phases",
        default=None,
        help="comma-separated, in order: transfers,reads (default); also floor (a bare "
        "FastAPI app), health (GET /healthz), hot (transfers on one pair), batch",
    )
    parser.add_argument(
        "--http-writer-process",
        action="store_true",
        help="run `ledger writer` and N HTTP processes submitting to it",
    )
    parser.add_argument(
        "--http-servers",
        default=None,
        help=f"comma-separated ASGI servers, each process count under each: "
        f"{','.join(HTTP_SERVER_NAMES)} (default uvicorn)",
    )
    parser.add_argument(
        "--http-worker-busy",
        action="store_true",
        help="transfers and reads again during a projection rebuild and a reconciliation run",
    )
    parser.add_argument("--http-writer-baseline-transfers", type=int, default=None)
    parser.add_argument("--http-idempotency-header", action="store_true")
    parser.add_argument(
        "--http-projections-apart",
        action="store_true",
        help="one worker too: the views in a `ledger projections run` beside it",
    )
    parser.add_argument("--http-client", choices=("raw", "httpx"), default=None)
    parser.add_argument("--http-profile", action="store_true", help="py-spy the server")
    parser.add_argument("--http-output-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true", help="a few seconds' smoke run")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def config_from_arguments(argv: Sequence[str] | None) -> tuple[HttpBenchmarkConfig, bool]:
    arguments = vars(_parser().parse_args(argv))
    base = HttpBenchmarkConfig.quick() if arguments["quick"] else HttpBenchmarkConfig()
    overrides: dict[str, Any] = {}
    for name in (
        "duration_s",
        "warmup_s",
        "clients",
        "accounts",
        "client",
        "output_dir",
        "writer_baseline_transfers",
    ):
        if arguments[f"http_{name}"] is not None:
            overrides[name] = arguments[f"http_{name}"]
    for name in ("seed", "data_dir", "database_url"):
        if arguments[name] is not None:
            overrides[name] = arguments[name]
    if arguments["http_server_workers"]:
        overrides["server_workers"] = tuple(
            int(part) for part in arguments["http_server_workers"].split(",") if part.strip()
        )
    if arguments["http_phases"]:
        overrides["phases"] = tuple(
            part.strip() for part in arguments["http_phases"].split(",") if part.strip()
        )
    if arguments["http_idempotency_header"]:
        overrides["idempotency_header"] = True
    if arguments["http_profile"]:
        overrides["profile"] = True
    if arguments["http_projections_apart"]:
        overrides["projections_apart"] = True
    if arguments["http_writer_process"]:
        overrides["writer_process"] = True
    if arguments["http_servers"]:
        overrides["http_servers"] = tuple(
            part.strip() for part in arguments["http_servers"].split(",") if part.strip()
        )
    if arguments["http_worker_busy"]:
        overrides["worker_busy"] = True
    return replace(base, **overrides), bool(arguments["json"])


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.http_benchmark [--quick] [--json] [--http-...]`;
    1 if the harness failed (a server that died, balances that disagree), not for
    a missed target."""
    config, as_json = config_from_arguments(argv)
    report = run_http_benchmark(config)
    print(to_json(report) if as_json else render(report))
    return 0 if report.ok else 1


def split_arguments(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """`ledger bench` options into the writer benchmark's and the HTTP one's:
    `--http-*` go to the HTTP run, --quick, --json, --seed, --data-dir and
    --database-url to both, the rest to the writer."""
    writer: list[str] = []
    http: list[str] = []
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name, has_value = token.split("=", 1)[0], "=" in token
        taken = [token]
        takes_value = (
            name.startswith(HTTP_PREFIX) and name not in _HTTP_FLAGS
        ) or name in _SHARED_WITH_VALUE
        if takes_value and not has_value and index + 1 < len(tokens):
            index += 1
            taken.append(tokens[index])
        if name.startswith(HTTP_PREFIX):
            http += taken
        elif name in _SHARED_FLAGS or name in _SHARED_WITH_VALUE:
            writer += taken
            http += taken
        else:
            writer += taken
        index += 1
    return writer, http


BENCHMARKS: Final[tuple[str, ...]] = ("all", "writer", "http", "projections")


def run_selected(only: str, argv: Sequence[str]) -> int:
    """`ledger bench [--only writer|http|projections]`: writer and HTTP by
    default, the writer's first (projections only when asked: it writes a
    log of a million events of its own).
    With --json and both, one document: {"writer": ..., "http": ...}."""
    from benchmarks import projection_benchmark, writer_benchmark

    if only not in BENCHMARKS:
        raise ValueError(f"--only is one of {', '.join(BENCHMARKS)}")
    if only == "writer":
        return writer_benchmark.main(argv)
    if only == "http":
        return main(argv)
    if only == "projections":
        return projection_benchmark.main(argv)
    writer_argv, http_argv = split_arguments(argv)
    writer_config, as_json = writer_benchmark.config_from_arguments(writer_argv)
    http_config, _ = config_from_arguments(http_argv)
    writer_report = writer_benchmark.run_writer_benchmark(writer_config)
    if not as_json:
        print(writer_benchmark.render(writer_report), end="\n\n", flush=True)
    http_report = run_http_benchmark(http_config)
    if as_json:
        document = {
            "writer": json.loads(writer_benchmark.to_json(writer_report)),
            "http": to_document(http_report),
        }
        print(json.dumps(document, indent=2, default=str))
    else:
        print(render(http_report))
    return 0 if writer_report.verification.ok and http_report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
