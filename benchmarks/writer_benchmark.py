"""`ledger bench`: transfers/s through the group-commit writer, beside the naive way.

One run: a fresh database on the benchmark's PostgreSQL; 1,000 user accounts
funded from a platform cash account; a history of earlier transfers loaded
through the writer (so the tables and indexes are not empty); then the
measured transfers, by several client threads each submitting a chunk and
waiting for its results, so the writer always has the next batch queued.
Afterwards every account is read back from the database and checked against
the workload. Then the naive baseline runs on its own database of the same
server, and both are reported side by side.

    from benchmarks.writer_benchmark import WriterBenchmarkConfig, render, run_writer_benchmark
    print(render(run_writer_benchmark(WriterBenchmarkConfig())))
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final, TypeVar
from uuid import UUID

from application.writer import BATCH_SIZE_MAX_DEFAULT, LedgerWriter
from benchmarks import databases
from benchmarks.arguments import config_from
from benchmarks.naive_baseline import run_naive_baseline
from benchmarks.report import (
    MemoryUsage,
    PhaseResult,
    WriterBenchmarkReport,
    WriterFloors,
    render,
    to_json,
)
from benchmarks.workload import Workload
from benchmarks.writer_floors import (
    RoundTripFloor,
    measure_copy_limit,
    measure_round_trip_floor,
)
from benchmarks.writer_phases import (
    BenchmarkFailed,
    open_and_fund_accounts,
    run_phase,
    run_waiting_clients,
    verify_ledger,
)
from interface.bootstrap import build_ledger
from interface.settings import Settings

__all__ = [
    "BenchmarkFailed",
    "WriterBenchmarkConfig",
    "WriterBenchmarkReport",
    "main",
    "render",
    "run_writer_benchmark",
    "to_json",
]

PROFILE_LINES: Final[int] = 15
# A batch of transfers writes about this many events per transfer (the
# transfer, and its accounts' events): the COPY limit commits as many rows
# per transaction as a full batch of the writer does.
COPY_ROWS_PER_TRANSFER_ESTIMATE: Final[int] = 2
TIMED: Final[str] = (
    "ledger: wall time from starting the client threads until the last result arrived; "
    "inside it each client draws its transfers, builds the CreateTransfer commands "
    "(validation, fingerprint), submits one chunk and waits for its receipt. "
    "Writer only (if run): the same, with every command built before the clock starts. "
    "Baseline: wall time of drawing and doing its transfers one by one. "
    "Account setup and the history load are not in either figure; "
    "a CHECKPOINT runs before each timed phase, where the role may."
)


@dataclass(frozen=True, slots=True)
class WriterBenchmarkConfig:
    accounts: int = 1_000
    history_transfers: int = 100_000
    measured_transfers: int = 100_000
    baseline_transfers: int = 3_000
    client_threads: int = 4
    chunk_size: int = BATCH_SIZE_MAX_DEFAULT
    seed: int = 1
    # Where the embedded server keeps its data; default ./.bench.
    data_dir: Path | None = None
    # A server of your own (any database on it; the benchmark makes its own).
    # Default: LEDGER_BENCH_DATABASE_URL, else the embedded server.
    database_url: str | None = None
    # cProfile the writer's batches during the measured phase (slows them).
    profile_writer: bool = False
    # After the measured phase, this many more transfers whose commands are
    # all built before the clock starts: the writer's own rate, without the
    # clients' share of the one interpreter lock. 0 skips the phase.
    prebuilt_transfers: int = 100_000
    # The floors beside the writer (benchmarks/writer_floors.py); 0 skips
    # them all: rows for the COPY limit, iterations of the round-trip floor,
    # transfers for one waiting client and for `waiting_clients` of them.
    copy_limit_rows: int = 300_000
    round_trip_iterations: int = 3_000
    single_client_transfers: int = 3_000
    waiting_clients: int = 8
    waiting_clients_transfers: int = 6_000
    # The round-trip floor and the waiting clients run in this many rounds,
    # one after the other in each, and each figure is the median round's: on
    # a shared machine the load moves between two phases run minutes apart.
    floor_rounds: int = 3
    # The writer's batches in flight (WriterLimits.batches_in_flight_max):
    # 0 keeps the writer's own; 1 or 2 to compare with and without pipelining.
    writer_batches_in_flight: int = 0

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ValueError("accounts must be at least 2")
        if (
            min(
                self.history_transfers,
                self.prebuilt_transfers,
                self.copy_limit_rows,
                self.round_trip_iterations,
                self.single_client_transfers,
                self.waiting_clients_transfers,
            )
            < 0
        ):
            raise ValueError("phase and floor sizes must not be negative")
        if self.writer_batches_in_flight not in (0, 1, 2):
            raise ValueError("writer_batches_in_flight is 0 (the writer's own), 1 or 2")
        if self.floor_rounds < 1:
            raise ValueError("floor_rounds must be at least 1")
        if self.waiting_clients < 1:
            raise ValueError("waiting_clients must be at least 1")
        if self.measured_transfers < 1 or self.baseline_transfers < 1:
            raise ValueError("measured_transfers and baseline_transfers must be at least 1")
        if self.client_threads < 1:
            raise ValueError("client_threads must be at least 1")
        if not 1 <= self.chunk_size <= BATCH_SIZE_MAX_DEFAULT:
            raise ValueError(f"chunk_size must be 1 to {BATCH_SIZE_MAX_DEFAULT}")

    @classmethod
    def quick(cls, **overrides: Any) -> WriterBenchmarkConfig:
        """The whole harness in a few seconds: for tests, not for figures."""
        small = cls(
            accounts=100,
            history_transfers=2_000,
            measured_transfers=5_000,
            baseline_transfers=300,
            chunk_size=1_000,
            prebuilt_transfers=5_000,
            copy_limit_rows=20_000,
            round_trip_iterations=300,
            single_client_transfers=300,
            waiting_clients_transfers=800,
            floor_rounds=1,
        )
        return replace(small, **overrides)


def run_writer_benchmark(config: WriterBenchmarkConfig) -> WriterBenchmarkReport:
    # Other work on the machine moves every figure here: say how busy it was.
    load_at_start = os.getloadavg()[0]
    server_url = databases.server_url(config.database_url, config.data_dir)
    workload = Workload(config.accounts, config.seed, config.chunk_size)
    rss_at_start = peak_rss_kib()
    with databases.temporary_database(server_url, "bench_ledger") as ledger_url:
        settings = Settings(
            database_url=ledger_url,
            data_dir=databases.ledger_data_dir(ledger_url, config.data_dir),
        )
        ledger = build_ledger(settings, start_projections=False)
        try:
            writer = ledger.local_writer
            if writer.limits.batch_size_max < config.chunk_size:
                raise BenchmarkFailed(
                    f"chunk_size {config.chunk_size} exceeds the writer's batch_size_max "
                    f"{writer.limits.batch_size_max}"
                )
            if config.writer_batches_in_flight:
                writer.stop()
                writer.limits = replace(
                    writer.limits, batches_in_flight_max=config.writer_batches_in_flight
                )
                writer.start()
            started = time.perf_counter()
            account_ids = open_and_fund_accounts(writer, workload)
            setup_seconds = time.perf_counter() - started
            threads = config.client_threads
            history = run_phase(
                writer, workload, account_ids, "history", config.history_transfers, threads
            )
            databases.checkpoint(ledger_url)
            rss_before_measured = peak_rss_kib()
            profiler = _profile_writer_thread(writer) if config.profile_writer else None
            measured = run_phase(
                writer, workload, account_ids, "measured", config.measured_transfers, threads
            )
            rss_after_measured = peak_rss_kib()
            if profiler is not None:
                _stop_profiling(writer)
            phases = [history, measured]
            prebuilt = None
            if config.prebuilt_transfers:
                databases.checkpoint(ledger_url)
                prebuilt = run_phase(
                    writer,
                    workload,
                    account_ids,
                    "prebuilt",
                    config.prebuilt_transfers,
                    threads,
                    prebuild=True,
                )
                phases.append(prebuilt)
            floors = None
            if config.copy_limit_rows:
                floors = _measure_floors(config, writer, workload, account_ids, ledger_url)
                phases += floors.round_phases
            verification = verify_ledger(ledger, workload, account_ids, phases)
        finally:
            ledger.close()
    with databases.temporary_database(server_url, "bench_naive") as naive_url:
        baseline = run_naive_baseline(naive_url, workload, config.baseline_transfers)
    if baseline.balances_verified:
        verification.checks.append(f"baseline: {baseline.verification}")
    else:
        verification.failures.append(f"baseline: {baseline.verification}")
    return WriterBenchmarkReport(
        config={item.name: getattr(config, item.name) for item in fields(config)},
        environment=databases.environment(server_url, load_at_start),
        setup_seconds=setup_seconds,
        history=history,
        measured=measured,
        prebuilt=prebuilt,
        baseline=baseline,
        verification=verification,
        memory=MemoryUsage(rss_at_start, rss_before_measured, rss_after_measured, peak_rss_kib()),
        timed=TIMED,
        floors=floors,
        writer_profile=_profile_text(profiler) if profiler is not None else None,
        notes=_notes(config),
    )


def _measure_floors(
    config: WriterBenchmarkConfig,
    writer: LedgerWriter,
    workload: Workload,
    account_ids: Sequence[UUID],
    ledger_url: str,
) -> WriterFloors:
    """The database's limits, then the clients that wait on each transfer, on
    the ledger's own database and server, after the writer's batch phases."""
    databases.checkpoint(ledger_url)
    rows_per_transaction = config.chunk_size * COPY_ROWS_PER_TRANSFER_ESTIMATE
    copy_limit = measure_copy_limit(ledger_url, config.copy_limit_rows, rows_per_transaction)
    rounds = config.floor_rounds
    round_trips: list[RoundTripFloor] = []
    singles: list[PhaseResult] = []
    manys: list[PhaseResult] = []
    for number in range(1, rounds + 1):
        databases.checkpoint(ledger_url)
        round_trips.append(
            measure_round_trip_floor(ledger_url, max(1, config.round_trip_iterations // rounds))
        )
        singles.append(
            run_waiting_clients(
                writer,
                workload,
                account_ids,
                f"single-{number}",
                max(1, config.single_client_transfers // rounds),
                1,
            )
        )
        manys.append(
            run_waiting_clients(
                writer,
                workload,
                account_ids,
                f"many-{number}",
                max(1, config.waiting_clients_transfers // rounds),
                config.waiting_clients,
            )
        )
    round_trip = _median_by(round_trips, lambda floor: floor.per_s)
    single = _median_by(singles, lambda phase: phase.transfers_per_s)
    many = _median_by(manys, lambda phase: phase.transfers_per_s)
    return WriterFloors(
        copy_limit,
        round_trip,
        single,
        config.waiting_clients,
        many,
        rounds,
        [*singles, *manys],
    )


Measured = TypeVar("Measured")


def _median_by(values: Sequence[Measured], key: Callable[[Measured], float]) -> Measured:
    """The middle one by `key` (the lower middle of an even number)."""
    return sorted(values, key=key)[(len(values) - 1) // 2]


def peak_rss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB; macOS reports bytes.
    return peak // 1024 if sys.platform == "darwin" else peak


def _profile_writer_thread(writer: LedgerWriter) -> cProfile.Profile:
    """Profile everything the writer thread does (deciding, saving, waiting
    for its batch in flight and for its queue) without touching the writer's
    code: it is restarted with its loop run under the profiler, on its thread."""
    profiler = cProfile.Profile()
    writer.stop()
    loop: Callable[[], None] = writer._run

    def profiled_loop() -> None:
        profiler.runcall(loop)

    vars(writer)["_run"] = profiled_loop
    writer.start()
    return profiler


def _stop_profiling(writer: LedgerWriter) -> None:
    writer.stop()
    del vars(writer)["_run"]
    writer.start()


def _profile_text(profiler: cProfile.Profile) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).strip_dirs()
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(PROFILE_LINES)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(PROFILE_LINES)
    return stream.getvalue().strip()


def _notes(config: WriterBenchmarkConfig) -> list[str]:
    notes = [
        "the baseline does the first transfers of the same measured sequence, "
        "with one client and no history (favouring it)",
    ]
    if config.profile_writer:
        notes.append("the writer was profiled: its figures are slower than unprofiled")
    return notes


def config_from_arguments(argv: Sequence[str] | None) -> tuple[WriterBenchmarkConfig, bool]:
    """The run `main` would do, and whether to print JSON (`ledger bench` runs it too)."""
    parser = argparse.ArgumentParser(description="Transfers/s through the ledger's writer.")
    parser.add_argument("--profile-writer", action="store_true")
    return config_from(
        parser,
        argv,
        (
            "accounts",
            "history_transfers",
            "measured_transfers",
            "baseline_transfers",
            "prebuilt_transfers",
            "copy_limit_rows",
            "round_trip_iterations",
            "single_client_transfers",
            "waiting_clients",
            "waiting_clients_transfers",
            "writer_batches_in_flight",
            "floor_rounds",
            "client_threads",
            "chunk_size",
            "seed",
        ),
        WriterBenchmarkConfig,
        WriterBenchmarkConfig.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.writer_benchmark [--quick] [--json] ...`; 1 if a check failed."""
    config, as_json = config_from_arguments(argv)
    report = run_writer_benchmark(config)
    print(to_json(report) if as_json else render(report))
    return 0 if report.verification.ok else 1


if __name__ == "__main__":
    sys.exit(main())
