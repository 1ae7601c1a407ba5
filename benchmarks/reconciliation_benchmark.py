"""`ledger bench --only reconciliation`: one full reconciliation run over a long log.

One run, in one process: a fresh database on the benchmark's PostgreSQL;
the demo data set as `ledger serve --demo` loads it (`load_demo_data_set`:
platform and user accounts with the demo's transfers, funded accounts that
traded at the simulated broker, withdrawals paid out through the sandbox
gateway, a closure, and whatever else the demo loads); then transfers
written through the ledger's own writer, as the projections benchmark
writes them, until the log holds `events` events;
every view rebuilt and the live runner caught up; the database VACUUM
ANALYZEd and CHECKPOINTed. Then, timed, `Ledger.reconciliation.run` once,
in the same process: the broker and payout checks ask the simulated broker
and the sandbox gateway that the data was written through, which hold their
records in memory. Its memory is sampled on a thread while it runs.

Afterwards: every command of the data set must have succeeded, the run must
have passed (every check passed), and every check must be recorded. A check
that did not pass fails the benchmark, with the exceptions it raised.

For reference only (the issue names no peer baseline): the audit the ledger
and projections checks build on, `verify_ledger(check_views=True)`, on the
same data, in a child process of its own.

    from benchmarks.reconciliation_benchmark import (
        ReconciliationBenchmarkConfig, render, run,
    )
    print(render(run(ReconciliationBenchmarkConfig())))
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import random
import resource
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

import psycopg

from benchmarks import databases
from benchmarks.arguments import config_from
from benchmarks.projection_benchmark import (
    _Mix,  # the projections benchmark's history, so the two logs are alike
    child_verify,
    count_events,
    in_child,
    write_history,
)
from benchmarks.reconciliation_report import (
    NO_BASELINE,
    AuditReference,
    CheckTiming,
    LoadResult,
    ReconciliationBenchmarkReport,
    RunMemory,
    render,
    to_json,
)
from benchmarks.report import Verification
from benchmarks.workload import Workload
from benchmarks.writer_phases import BenchmarkFailed, open_and_fund_accounts
from domain.reconciliation import ReconciliationRun, RunStatus, RunType
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger, build_ledger
from interface.demo.data_set import load_demo_data_set
from interface.demo.ledger_transfers import TRANSFERS as DEMO_TRANSFERS_DEFAULT
from interface.settings import Settings
from projections import rebuild
from projections import reconciliation as reconciliation_view
from projections.registry import all_views, view_names

__all__ = [
    "BenchmarkFailed",
    "ReconciliationBenchmarkConfig",
    "ReconciliationBenchmarkReport",
    "main",
    "render",
    "run",
    "to_json",
]

RUN_ACTOR: Final[str] = "bench"
# How long the live runner may take to reach the log's head after the
# rebuild, and the reconciliation view to reach the run's last record.
CATCH_UP_TIMEOUT_S: Final[float] = 600.0
RSS_SAMPLE_INTERVAL_S: Final[float] = 0.05
# `ledger demo` takes no fewer.
DEMO_TRANSFERS_MIN: Final[int] = 100
SELF_STATM: Final[Path] = Path("/proc/self/statm")
SELF_STATUS: Final[Path] = Path("/proc/self/status")
# Writing 5 here resets this process's peak RSS (VmHWM) to its current RSS
# (Linux 4.0 and later), so the peak read afterwards is the run's own.
SELF_CLEAR_REFS: Final[Path] = Path("/proc/self/clear_refs")
RESET_PEAK_RSS: Final[str] = "5"
CPUINFO: Final[Path] = Path("/proc/cpuinfo")
PAGE_SIZE_BYTES: Final[int] = resource.getpagesize()

TIMED: Final[str] = (
    "the run's wall time: from ReconciliationService.run being called until it returns "
    "the completed run (its Started, CheckRecorded and Completed records written through "
    "the writer included), in the process that wrote the data; each check's elapsed as "
    "the run recorded it (view_reconciliation_checks.elapsed_ms); events/s = events in "
    "the log when the run started / wall seconds. The views' live runner and the writer "
    "keep running meanwhile, as under `ledger serve`. The data set is written, the views "
    "rebuilt and caught up, the database VACUUM ANALYZEd and CHECKPOINTed before timing."
)


@dataclass(frozen=True, slots=True)
class ReconciliationBenchmarkConfig:
    events: int = 1_000_000
    # The demo's own transfers (`ledger demo --transfers`), before the history.
    demo_transfers: int = DEMO_TRANSFERS_DEFAULT
    # Accounts the history's transfers move money between.
    accounts: int = 1_000
    chunk_size: int = 2_000
    seed: int = 1
    # Where the embedded server keeps its data; default ./.bench.
    data_dir: Path | None = None
    # A server of your own (the benchmark makes its own database on it).
    # Default: LEDGER_BENCH_DATABASE_URL, else the embedded server.
    database_url: str | None = None
    # Leave out the reference audit (it reads the log once more, with the views).
    skip_audit_reference: bool = False

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ValueError("accounts must be at least 2")
        if self.events < 1:
            raise ValueError("events must be at least 1")
        if self.demo_transfers < DEMO_TRANSFERS_MIN:
            raise ValueError(f"demo_transfers must be at least {DEMO_TRANSFERS_MIN}")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")

    @classmethod
    def quick(cls, **overrides: Any) -> ReconciliationBenchmarkConfig:
        """The whole harness in a few seconds: for tests, not for figures."""
        small = cls(events=20_000, demo_transfers=500, accounts=100, chunk_size=1_000)
        return replace(small, **overrides)


# The data set -------------------------------------------------------------------


def load_data_set(ledger: Ledger, config: ReconciliationBenchmarkConfig) -> LoadResult:
    """The demo data set, then the history up to `events`; views rebuilt and caught up."""
    writer = ledger.local_writer
    if writer.limits.batch_size_max < config.chunk_size:
        raise BenchmarkFailed(
            f"chunk_size {config.chunk_size} exceeds the writer's batch_size_max "
            f"{writer.limits.batch_size_max}"
        )
    if not isinstance(ledger.broker, SimulatedBroker):
        raise BenchmarkFailed("the demo's funded accounts trade at the simulated broker only")
    started = time.perf_counter()
    # The loader of `ledger serve --demo`, so the data set is the demo's own.
    demo = load_demo_data_set(ledger, transfers=config.demo_transfers)
    results: collections.Counter[str] = collections.Counter(demo.summary.results)
    account_ids = open_and_fund_accounts(
        writer, Workload(config.accounts, config.seed, config.chunk_size)
    )
    mix = _Mix(random.Random(f"{config.seed}:reconciliation"), account_ids)
    mix.counts["accounts opened"] = config.accounts + 1
    mix.counts["fundings"] = config.accounts
    write_history(writer, mix, config.events, config.chunk_size, results)
    seconds = time.perf_counter() - started

    # The fast way to views over a long log (`ledger projections rebuild`),
    # then the live runner from where the rebuild left them.
    rebuild_started = time.perf_counter()
    rebuild.rebuild_all_in_place(ledger.database_url, all_views())
    runner = ledger.projections
    if runner is None:
        raise BenchmarkFailed("the ledger was built without its projection runner")
    runner.start()
    if not runner.wait_for(writer.last_position, view_names(), CATCH_UP_TIMEOUT_S):
        raise BenchmarkFailed(f"the views did not reach the log's head in {CATCH_UP_TIMEOUT_S} s")
    rebuild_seconds = time.perf_counter() - rebuild_started
    events = count_events(ledger.database_url)
    return LoadResult(
        events=events,
        demo_lines=demo.lines,
        history_commands=dict(mix.counts),
        results=dict(sorted(results.items())),
        seconds=seconds,
        events_per_s=events / seconds if seconds else 0.0,
        rebuild_seconds=rebuild_seconds,
    )


def vacuum_and_checkpoint(database_url: str) -> None:
    """Hint bits and statistics set for the log and the views alike (as
    autovacuum would have by the time a scheduled run comes), so the timed
    run does not pay for the bulk load."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")
    databases.checkpoint(database_url)


# Memory -------------------------------------------------------------------------


class _RssSampler:
    """RSS of this process (where the checks run) every few tens of
    milliseconds, on a thread; the peak from the kernel where it can say."""

    def __init__(self) -> None:
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._peak_reset = False
        self.rss_before_kib = rss_kib()

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self._samples.append(rss_kib())

    def __enter__(self) -> _RssSampler:
        self._peak_reset = _reset_peak_rss()
        self.rss_before_kib = rss_kib()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._samples.append(rss_kib())

    def memory(self) -> RunMemory:
        sampled = max(self._samples, default=self.rss_before_kib)
        kernel = peak_rss_kib() if self._peak_reset else None
        return RunMemory(
            rss_before_kib=self.rss_before_kib,
            peak_rss_kib=max(sampled, kernel or 0),
            rss_after_kib=self._samples[-1] if self._samples else self.rss_before_kib,
            samples=len(self._samples),
            peak_from=(
                "VmHWM, reset just before the run"
                if kernel is not None
                else f"largest sample, every {RSS_SAMPLE_INTERVAL_S} s"
            ),
        )


def rss_kib() -> int:
    """This process's resident memory now (Linux); elsewhere its peak so far."""
    try:
        resident_pages = int(SELF_STATM.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return peak_rss_kib()
    return resident_pages * PAGE_SIZE_BYTES // 1024


def peak_rss_kib() -> int:
    try:
        for line in SELF_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _reset_peak_rss() -> bool:
    try:
        SELF_CLEAR_REFS.write_text(RESET_PEAK_RSS)
    except OSError:
        return False
    return True


# The run ------------------------------------------------------------------------


def measured_run(ledger: Ledger) -> tuple[ReconciliationRun, float, RunMemory]:
    """One full run, timed, its memory sampled as it goes."""
    # What the load left for the collector is not the run's memory.
    gc.collect()
    with _RssSampler() as sampler:
        started = time.perf_counter()
        completed = ledger.reconciliation.run(RunType.MANUAL, RUN_ACTOR)
        seconds = time.perf_counter() - started
    return completed, seconds, sampler.memory()


def recorded_checks(ledger: Ledger, run: ReconciliationRun) -> tuple[list[CheckTiming], list[str]]:
    """The run's checks and exceptions as its view holds them."""
    runner = ledger.projections
    assert runner is not None
    if not runner.wait_for(
        ledger.writer.last_position, [reconciliation_view.NAME], CATCH_UP_TIMEOUT_S
    ):
        raise BenchmarkFailed("the reconciliation view did not reach the run's records")
    with psycopg.connect(ledger.database_url) as connection, connection.cursor() as cursor:
        checks = reconciliation_view.checks_of(cursor, run.id)
        exceptions = reconciliation_view.exceptions_of(cursor, run.id)
    timings = [
        CheckTiming(
            name=row.name,
            status=row.status,
            elapsed_s=row.elapsed_ms / 1000,
            discrepancies_found=row.discrepancies_found,
            measure=row.measure,
            expected=row.expected,
            actual=row.actual,
            reason=row.reason,
        )
        for row in checks
    ]
    raised = [
        f"{row.check_name}: {row.severity} {row.kind} {row.subject}: {row.message}"
        for row in exceptions
    ]
    return timings, raised


def audit_reference(database_url: str) -> AuditReference:
    databases.checkpoint(database_url)
    child = in_child(child_verify, database_url, True)
    ok, checked, _ = child.value
    return AuditReference(
        seconds=child.seconds,
        events_checked=checked,
        events_per_s=checked / child.seconds if child.seconds else 0.0,
        peak_rss_kib=child.memory.peak_rss_kib,
        ok=ok,
    )


def _check(holds: bool, passed: str, failed: str, verification: Verification) -> None:
    (verification.checks if holds else verification.failures).append(passed if holds else failed)


def _verify(
    ledger: Ledger,
    load: LoadResult,
    run: ReconciliationRun,
    checks: list[CheckTiming],
    verification: Verification,
) -> None:
    _check(
        set(load.results) <= {"ok"},
        f"data set: all {sum(load.results.values()):,} commands ok, {load.events:,} events "
        "in the log",
        f"data set: results {load.results}",
        verification,
    )
    expected = list(ledger.reconciliation.check_names)
    _check(
        [check.name for check in checks] == expected,
        f"every check recorded, in order: {', '.join(expected)}",
        f"checks recorded {[check.name for check in checks]}, expected {expected}",
        verification,
    )
    not_passed = [check for check in checks if check.status != "passed"]
    _check(
        run.status is RunStatus.PASSED and not not_passed,
        f"run {run.id}: passed, {len(checks)} of {len(checks)} checks passed",
        f"run {run.id}: {run.status.value}; "
        + "; ".join(
            f"{check.name} {check.status} ({check.discrepancies_found} discrepancies"
            + (f", {check.reason}" if check.reason else "")
            + ")"
            for check in not_passed
        ),
        verification,
    )


def cpu_model() -> str:
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown"


def run(config: ReconciliationBenchmarkConfig) -> ReconciliationBenchmarkReport:
    load_at_start = os.getloadavg()[0]
    server_url = databases.server_url(config.database_url, config.data_dir)
    verification = Verification([], [])
    with databases.temporary_database(server_url, "bench_reconciliation") as url:
        settings = Settings(
            database_url=url, data_dir=databases.ledger_data_dir(url, config.data_dir)
        )
        # Views are rebuilt after the load, the fast way, then kept live.
        ledger = build_ledger(settings, start_projections=False)
        try:
            load = load_data_set(ledger, config)
            vacuum_and_checkpoint(url)
            events = count_events(url)
            completed, seconds, memory = measured_run(ledger)
            checks, exceptions = recorded_checks(ledger, completed)
            _verify(ledger, load, completed, checks, verification)
        finally:
            ledger.close()
        reference = None if config.skip_audit_reference else audit_reference(url)
        if reference is not None:
            _check(
                reference.ok and reference.events_checked >= events,
                f"reference audit: OK, {reference.events_checked:,} events checked",
                f"reference audit: ok={reference.ok}, {reference.events_checked:,} events "
                f"checked of at least {events:,}",
                verification,
            )
    return ReconciliationBenchmarkReport(
        config={item.name: getattr(config, item.name) for item in fields(config)},
        environment={
            **databases.environment(server_url, load_at_start),
            "cpu_model": cpu_model(),
        },
        load=load,
        events=events,
        run_status=completed.status.value,
        run_seconds=seconds,
        checks=checks,
        memory=memory,
        audit_reference=reference,
        exceptions=exceptions,
        verification=verification,
        timed=TIMED,
        notes=_notes(reference is not None),
    )


def _notes(with_reference: bool) -> list[str]:
    return [
        NO_BASELINE
        + (
            "; the reference row is the audit the ledger and projections checks build on, "
            "alone in a child process after the run (not part of the run's time)"
            if with_reference
            else ""
        ),
        "the demo's funded accounts, withdrawals and closure are a handful of records; the "
        "rest of the log is transfers, so the payouts, broker, deposits and withdrawals "
        "checks cost what their reads of the log cost, not what comparing their records does",
        "peak RSS is the benchmark process's, where every check runs; PostgreSQL's memory "
        "is the server's and is not counted",
        "PostgreSQL runs on the same machine and shares its cores with the benchmark",
    ]


def config_from_arguments(
    argv: Sequence[str] | None,
) -> tuple[ReconciliationBenchmarkConfig, bool]:
    """The run `main` would do, and whether to print JSON (`ledger bench` runs it too)."""
    parser = argparse.ArgumentParser(
        prog="ledger bench --only reconciliation",
        description="One full reconciliation run over the demo data set and a long log: "
        "time per check, events/s and peak memory.",
    )
    parser.add_argument(
        "--skip-audit-reference",
        action="store_true",
        help="leave out verify_ledger(check_views=True) on the same data",
    )
    return config_from(
        parser,
        argv,
        ("events", "demo_transfers", "accounts", "chunk_size", "seed"),
        ReconciliationBenchmarkConfig,
        ReconciliationBenchmarkConfig.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.reconciliation_benchmark [--quick] [--json] ...`;
    1 if the run did not pass or the data set was not as written."""
    config, as_json = config_from_arguments(argv)
    report = run(config)
    print(to_json(report) if as_json else render(report))
    return 0 if report.verification.ok else 1


if __name__ == "__main__":
    sys.exit(main())
