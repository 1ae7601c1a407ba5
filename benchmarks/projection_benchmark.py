"""`ledger bench --only projections`: rebuilding every view, and the audit, in events/s.

One run: a fresh database on the benchmark's PostgreSQL; accounts opened and
funded, then transfers (most simple, some pending and later posted or
voided, a few reversed) written through the ledger's own writer until the
log holds `events` events. Then, each in a child process of its own (so its
peak memory is its own, and sampled as it goes):

1. every view rebuilt at once with `rebuild_all_in_place` (the path of
   `ledger projections rebuild`): the journal replayed set-based, in SQL
   inside PostgreSQL, in a process of its own, and the other views
   together in another, sharing one read of the log (pages of
   `rebuild.REPLAY_PAGE_SIZE`);
2. every view rebuilt again, view by view, with `rebuild_in_place`;
3. the audit's `verify_ledger` without the views, and with them;
4. the peer baseline: the library's own per-event `ProjectionRunner` keeping
   the same balances view, on the first `baseline_events` positions.

Afterwards: the two rebuilds' digests must be equal, view by view; the
journal replayed through its Python handlers (untimed) must equal its SQL
rebuild, row for row; the balances view must hold what the account
aggregates hold, for a sample of accounts; both audits must pass; the
baseline's rows must equal ours up to where it stopped. Any miss fails the
run.

    from benchmarks.projection_benchmark import ProjectionBenchmarkConfig, render, run
    print(render(run(ProjectionBenchmarkConfig())))
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import importlib.metadata
import importlib.util
import io
import multiprocessing
import os
import pstats
import random
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql

from application.writer import BATCH_SIZE_MAX_DEFAULT, LedgerWriter, WriteReceipt
from benchmarks import databases, projection_baseline
from benchmarks.arguments import config_from
from benchmarks.projection_report import (
    REBUILD_TARGET_EVENTS_PER_S,
    RECONCILE_FULL_TARGET_EVENTS_PER_S,
    RECONCILE_INCREMENTAL_TARGET_EVENTS_PER_S,
    RSS_GROWTH_TARGET,
    VERIFY_TARGET_EVENTS_PER_S,
    VERIFY_VIEWS_TARGET_EVENTS_PER_S,
    HistoryResult,
    MemoryTrace,
    PhaseResult,
    ProjectionBenchmarkReport,
    render,
    to_json,
)
from benchmarks.report import Verification
from benchmarks.workload import CURRENCY, TRANSFER_AMOUNT_MINOR_MAX, Workload
from benchmarks.writer_phases import (
    RESULT_TIMEOUT_S,
    BenchmarkFailed,
    open_and_fund_accounts,
    submit,
)
from domain.commands import (
    Command,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
    create_transfer,
)
from domain.transfer import Posting, Side
from interface.bootstrap import build_ledger
from interface.settings import Settings
from projections import digest, rebuild
from projections.journal import NAME as JOURNAL
from projections.journal_sql_replay import REPLAY_SORT_MEMORY
from projections.registry import all_views, view_named

__all__ = [
    "BenchmarkFailed",
    "ProjectionBenchmarkConfig",
    "ProjectionBenchmarkReport",
    "main",
    "render",
    "run",
    "to_json",
]

# The history's mix, per command of a chunk.
PENDING_SHARE: Final[float] = 0.10
# Posting or voiding earlier pending transfers: at least as many as are made,
# so the holds open at any time stay a few chunks' worth however long the
# history (as in a ledger in a steady state), not a number growing with it.
RESOLVE_SHARE: Final[float] = 0.10
POST_OF_RESOLVED: Final[float] = 0.6  # the rest are voided
REVERSAL_SHARE: Final[float] = 0.01
# Simple transfers kept as candidates for a later reversal, per transfer.
REVERSIBLE_SAMPLE: Final[float] = 0.02
# Chunks submitted and not yet answered, while the history is written.
IN_FLIGHT_CHUNKS: Final[int] = 4
# Accounts whose balances are compared with their aggregates afterwards.
BALANCE_SAMPLE_ACCOUNTS: Final[int] = 50
RSS_SAMPLE_INTERVAL_S: Final[float] = 0.05
PROC: Final[Path] = Path("/proc")
STATUS: Final[Path] = Path("/proc/self/status")
PAGE_SIZE_BYTES: Final[int] = resource.getpagesize()
PROFILE_LINES: Final[int] = 25
FINDINGS_SHOWN: Final[int] = 5

ALL_AT_ONCE: Final[str] = "rebuild: all views at once (rebuild_all_in_place)"
RECONCILE_FULL: Final[str] = "reconciliation: full run (daily)"
RECONCILE_INCREMENTAL: Final[str] = "reconciliation: incremental run (hourly), new events"
RECONCILE_ACTOR: Final[str] = "projection-benchmark"
VIEW_BY_VIEW: Final[str] = "rebuild_in_place: all views (sum)"
VERIFY_LOG: Final[str] = "audit verify: log only"
VERIFY_VIEWS: Final[str] = "audit verify: log + views"
# Where the journal is replayed through its Python handlers, to check its SQL rebuild.
PYTHON_REPLAY_SCHEMA: Final[str] = "ledger_bench_python_replay"

TIMED: Final[str] = (
    "each phase runs in a fresh child process, timed from just before its first query "
    "(views reset and tracking rows written included, indexes made after loading included) "
    "until it returns; events/s = events in the log (or, for the baseline, positions "
    "covered) / wall seconds. The history is written, VACUUM ANALYZEd and CHECKPOINTed "
    "before any timing."
)


@dataclass(frozen=True, slots=True)
class ProjectionBenchmarkConfig:
    events: int = 1_000_000
    accounts: int = 1_000
    # Positions of the log the baseline processes (it is slow: a sample).
    baseline_events: int = 50_000
    chunk_size: int = 2_000
    seed: int = 1
    # Where the embedded server keeps its data; default ./.bench.
    data_dir: Path | None = None
    # A server of your own (the benchmark makes its own database on it).
    # Default: LEDGER_BENCH_DATABASE_URL, else the embedded server.
    database_url: str | None = None
    # cProfile each view's rebuild_in_place in its child (slows it).
    profile_views: bool = False
    # Events written after the full reconciliation run, before the incremental one.
    growth_events: int = 10_000
    # The history is first measured at this size (rebuild, audits,
    # reconciliation) when `events` is larger, so growth is visible; 0: not.
    smaller_size: int = 1_000_000
    # Only the phases measured at every size: no view-by-view rebuilds, no
    # baseline, no Python replay of the journal (they take long at scale).
    scale_only: bool = False

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ValueError("accounts must be at least 2")
        if self.events < 4 * self.accounts:
            raise ValueError("events must be at least 4 x accounts (opening and funding)")
        if self.baseline_events < 1:
            raise ValueError("baseline_events must be at least 1")
        if not 1 <= self.chunk_size <= BATCH_SIZE_MAX_DEFAULT:
            raise ValueError(f"chunk_size must be 1 to {BATCH_SIZE_MAX_DEFAULT}")
        if self.growth_events < 1:
            raise ValueError("growth_events must be at least 1")
        if self.smaller_size < 0:
            raise ValueError("smaller_size must be 0 (none) or a number of events")

    @classmethod
    def quick(cls, **overrides: Any) -> ProjectionBenchmarkConfig:
        """The whole harness in a few seconds: for tests, not for figures."""
        small = cls(
            events=50_000,
            accounts=100,
            baseline_events=2_000,
            chunk_size=1_000,
            growth_events=1_000,
            smaller_size=20_000,
        )
        return replace(small, **overrides)


# The history --------------------------------------------------------------------


@dataclass(slots=True)
class _Mix:
    """Draws the history's commands; remembers what later ones may refer to."""

    rng: random.Random
    account_ids: Sequence[UUID]
    # Pending transfers and reversal candidates whose chunks have committed.
    open_pending: list[UUID] = field(default_factory=list)
    reversible: list[UUID] = field(default_factory=list)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    next_number: int = 0

    def chunk(self, size: int) -> tuple[list[Command], list[UUID], list[UUID]]:
        """Commands, and the pending and reversible transfers they create."""
        rng = self.rng
        commands: list[Command] = []
        created_pending: list[UUID] = []
        created_reversible: list[UUID] = []
        resolve = min(len(self.open_pending), round(size * RESOLVE_SHARE))
        for _ in range(resolve):
            transfer_id = self.open_pending.pop(rng.randrange(len(self.open_pending)))
            if rng.random() < POST_OF_RESOLVED:
                commands.append(PostPendingTransfer(transfer_id))
                self.counts["pending posted"] += 1
            else:
                commands.append(VoidPendingTransfer(transfer_id))
                self.counts["pending voided"] += 1
        reverse = min(len(self.reversible), round(size * REVERSAL_SHARE))
        for _ in range(reverse):
            transfer_id = self.reversible.pop(rng.randrange(len(self.reversible)))
            commands.append(ReverseTransfer(transfer_id))
            self.counts["reversals"] += 1
        last = len(self.account_ids) - 1
        while len(commands) < size:
            debit = rng.randint(0, last)
            credit = (debit + rng.randint(1, last)) % len(self.account_ids)
            amount = rng.randint(1, TRANSFER_AMOUNT_MINOR_MAX)
            pending = rng.random() < PENDING_SHARE
            self.next_number += 1
            command = create_transfer(
                idempotency_key=f"pbench-{self.next_number}",
                postings=(
                    Posting(self.account_ids[debit], Side.DEBIT, amount, CURRENCY),
                    Posting(self.account_ids[credit], Side.CREDIT, amount, CURRENCY),
                ),
                pending=pending,
            )
            commands.append(command)
            if pending:
                created_pending.append(command.transfer_id)
                self.counts["pending transfers"] += 1
            else:
                self.counts["simple transfers"] += 1
                if rng.random() < REVERSIBLE_SAMPLE:
                    created_reversible.append(command.transfer_id)
        return commands, created_pending, created_reversible


def write_history(
    writer: LedgerWriter, mix: _Mix, events: int, chunk_size: int, results: collections.Counter[str]
) -> None:
    """Submit chunks, a few in flight, until the log holds `events` events.

    Every command writes at least one event, so a chunk is cut to what is
    still missing once the chunks in flight could be enough."""
    in_flight: collections.deque[tuple[int, Future[WriteReceipt], list[UUID], list[UUID]]] = (
        collections.deque()
    )

    def settle_oldest() -> None:
        _, future, pending, reversible = in_flight.popleft()
        receipt = future.result(RESULT_TIMEOUT_S)
        refused = [result for result in receipt.results if not result.succeeded]
        results.update(result.code.value for result in receipt.results)
        if refused:
            raise BenchmarkFailed(f"history refused: {refused[0].code} {refused[0].message}")
        mix.open_pending.extend(pending)
        mix.reversible.extend(reversible)

    while True:
        written = writer.statistics.events_written
        unanswered = sum(size for size, *_ in in_flight)
        if written + unanswered >= events or len(in_flight) >= IN_FLIGHT_CHUNKS:
            if not in_flight:
                return
            settle_oldest()
            continue
        size = min(chunk_size, events - written - unanswered)
        commands, pending, reversible = mix.chunk(size)
        in_flight.append((len(commands), submit(writer, commands), pending, reversible))


@dataclass(slots=True)
class _History:
    """The history written so far, and what writes more of it."""

    mix: _Mix
    seconds: float = 0.0
    results: collections.Counter[str] = field(default_factory=collections.Counter)


def build_history(
    database_url: str, config: ProjectionBenchmarkConfig, events: int, history: _History | None
) -> tuple[HistoryResult, _History]:
    """Write the history until the log holds `events` events, on from
    `history` (None: from an empty log)."""
    settings = Settings(
        database_url=database_url,
        data_dir=databases.ledger_data_dir(database_url, config.data_dir),
    )
    ledger = build_ledger(settings, start_projections=False)
    try:
        writer = ledger.local_writer
        if writer.limits.batch_size_max < config.chunk_size:
            raise BenchmarkFailed(
                f"chunk_size {config.chunk_size} exceeds the writer's batch_size_max "
                f"{writer.limits.batch_size_max}"
            )
        started = time.perf_counter()
        if history is None:
            workload = Workload(config.accounts, config.seed, config.chunk_size)
            account_ids = open_and_fund_accounts(writer, workload)
            history = _History(_Mix(random.Random(f"{config.seed}:projections"), account_ids))
            history.mix.counts["accounts opened"] = config.accounts + 1
            history.mix.counts["fundings"] = config.accounts
        # This writer counts its own events only: on to the ones still missing.
        missing = events - count_events(database_url)
        if missing > 0:
            target = writer.statistics.events_written + missing
            write_history(writer, history.mix, target, config.chunk_size, history.results)
        history.seconds += time.perf_counter() - started
    finally:
        ledger.close()
    stored = count_events(database_url)
    return HistoryResult(
        events=stored,
        accounts=config.accounts + 1,
        commands=dict(history.mix.counts),
        seconds=history.seconds,
        events_per_s=stored / history.seconds if history.seconds else 0.0,
        results=dict(sorted(history.results.items())),
    ), history


def count_events(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0


def vacuum_and_checkpoint(database_url: str) -> None:
    """Set hint bits and statistics once, so no timed pass pays for the bulk load."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) ledger_events")
    databases.checkpoint(database_url)


# Child processes and their memory -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildResult:
    seconds: float
    client_cpu_s: float
    memory: MemoryTrace
    value: Any
    profile: str | None = None


class _RssSampler:
    """RSS of this process every few tens of milliseconds, on a thread."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.started = time.perf_counter()
        self.rss_at_start_kib = self._rss_kib()

    @staticmethod
    def _rss_kib() -> int:
        """Current RSS of this process and every process it started (a phase
        may replay views in processes of its own), from /proc (Linux);
        elsewhere this process's peak so far."""
        try:
            resident_pages = sum(
                int((PROC / str(pid) / "statm").read_text().split()[1])
                for pid in _process_tree(os.getpid())
            )
        except (OSError, ValueError):
            return peak_rss_kib()
        return resident_pages * PAGE_SIZE_BYTES // 1024

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self._samples.append((time.perf_counter(), self._rss_kib()))

    def __enter__(self) -> _RssSampler:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._samples.append((time.perf_counter(), self._rss_kib()))

    def trace(self) -> MemoryTrace:
        ended = self._samples[-1][0]
        span = max(ended - self.started, 1e-9)
        quarters: list[int] = []
        for quarter in range(4):
            low, high = span * quarter / 4, span * (quarter + 1) / 4
            inside = [rss for at, rss in self._samples if low <= at - self.started <= high]
            quarters.append(
                max(inside) if inside else (quarters[-1] if quarters else self.rss_at_start_kib)
            )
        return MemoryTrace(
            rss_at_start_kib=self.rss_at_start_kib,
            quarter_max_rss_kib=quarters,
            peak_rss_kib=max(peak_rss_kib(), *(rss for _, rss in self._samples)),
            samples=len(self._samples),
        )


def _process_tree(root: int) -> list[int]:
    """The process and its descendants that are alive now (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            # The command name (2nd field) may hold spaces; the rest follows ")".
            fields = stat.read_text().rpartition(")")[2].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree.extend(frontier)
    return tree


def peak_rss_kib() -> int:
    """This interpreter's peak RSS. On Linux VmHWM: ru_maxrss would not do in
    a spawned child, as it keeps the high-water mark of the forked copy of
    the parent from before the exec."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _cpu_s() -> float:
    """CPU of this process and of the processes it started and waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


T = TypeVar("T")


def _measured(work: Callable[[], T], profile: bool = False) -> ChildResult:
    """Time, CPU and memory of `work` in this (child) process."""
    profiler = cProfile.Profile() if profile else None
    cpu_before = _cpu_s()
    with _RssSampler() as sampler:
        value = profiler.runcall(work) if profiler is not None else work()
        seconds = time.perf_counter() - sampler.started
    return ChildResult(
        seconds=seconds,
        client_cpu_s=_cpu_s() - cpu_before,
        memory=sampler.trace(),
        value=value,
        profile=_profile_text(profiler) if profiler is not None else None,
    )


def _profile_text(profiler: cProfile.Profile) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).strip_dirs()
    stats.sort_stats(pstats.SortKey.TIME).print_stats(PROFILE_LINES)
    return stream.getvalue().strip()


def in_child(function: Callable[..., ChildResult], *arguments: Any) -> ChildResult:
    """Run in a fresh interpreter: its peak RSS is the phase's own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *arguments).result()


# What the children run (module level, so a spawned interpreter finds them).


def _rebuild_with_one_runner(database_url: str) -> dict[str, int]:
    return rebuild.rebuild_all_in_place(database_url, all_views())


def child_rebuild_all(database_url: str) -> ChildResult:
    return _measured(lambda: _rebuild_with_one_runner(database_url))


def child_rebuild_view(database_url: str, name: str, profile: bool) -> ChildResult:
    return _measured(lambda: rebuild.rebuild_in_place(database_url, view_named(name)), profile)


def child_verify(database_url: str, check_views: bool) -> ChildResult:
    from interface.audit.verify import verify_ledger

    def work() -> tuple[bool, int, list[str]]:
        report = verify_ledger(database_url, check_views=check_views)
        findings = [str(finding) for finding in list(report.findings)[:FINDINGS_SHOWN]]
        return bool(report.ok), int(report.events_checked), findings

    return _measured(work)


def child_reconcile(database_url: str, data_dir: Path, incremental: bool) -> ChildResult:
    """One reconciliation run, full (the daily one's) or incremental (the
    hourly one's), through the service as the schedule runs it; the value:
    (the run's wall seconds, its status, each check's status)."""
    from domain.reconciliation import RunType
    from interface.reconciliation.scope import incremental_runs

    def work() -> tuple[float, str, dict[str, str]]:
        ledger = build_ledger(
            Settings(database_url=database_url, data_dir=data_dir), start_projections=False
        )
        try:
            started = time.perf_counter()
            with incremental_runs(incremental):
                completed = ledger.reconciliation.run(
                    RunType.HOURLY if incremental else RunType.DAILY, RECONCILE_ACTOR
                )
            seconds = time.perf_counter() - started
        finally:
            ledger.close()
        statuses = {name: status.value for name, status in completed.check_statuses.items()}
        return seconds, completed.status.value, statuses

    return _measured(work)


def child_baseline(database_url: str, sample_events: int) -> ChildResult:
    return _measured(lambda: projection_baseline.run_baseline(database_url, sample_events))


# The run ------------------------------------------------------------------------


def _phase(
    name: str,
    kind: str,
    events: int,
    child: ChildResult,
    target: int | None,
    detail: dict[str, Any] | None = None,
    seconds: float | None = None,
) -> PhaseResult:
    wall = child.seconds if seconds is None else seconds
    phase = PhaseResult(
        name=name,
        kind=kind,
        events=events,
        seconds=wall,
        events_per_s=events / wall if wall else 0.0,
        client_cpu_s=child.client_cpu_s,
        memory=child.memory,
        target_events_per_s=target,
        detail=detail or {},
        profile=child.profile,
    )
    # As it comes: a long run's phases are seen (and kept) before its report.
    print(
        f"phase done: {name}: {events:,} events in {wall:,.2f} s "
        f"({phase.events_per_s:,.0f} events/s), peak RSS "
        f"{child.memory.peak_rss_kib / 1024:,.0f} MiB, load {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
        flush=True,
    )
    return phase


def _audit_available() -> bool:
    return importlib.util.find_spec("interface.audit.verify") is not None


def _digests(database_url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(database_url) as connection, connection.transaction():
        return {
            view.name: digest.view_digest(connection, view, rebuild.LIVE_SCHEMA)
            for view in all_views()
        }


def _check(holds: bool, passed: str, failed: str, verification: Verification) -> None:
    (verification.checks if holds else verification.failures).append(passed if holds else failed)


def check_balances_against_aggregates(
    database_url: str, seed: int, verification: Verification
) -> None:
    """The balances view's totals for a sample of accounts, beside the totals
    of the account aggregates the writer keeps (loaded from the event store)."""
    from application.event_log import LedgerApplication
    from interface.adapters.persistence import database

    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT account_id, debits_pending, debits_posted, credits_pending, credits_posted"
            " FROM view_balances ORDER BY account_id"
        ).fetchall()
    sample = random.Random(seed).sample(rows, min(BALANCE_SAMPLE_ACCOUNTS, len(rows)))
    app = LedgerApplication(
        env=database.eventsourcing_environment(database_url, 2),
        recorder_factory=projection_baseline.hash_chained_recorder,
    )
    try:
        differing: list[str] = []
        for account_id, *totals in sample:
            account = app.load_account(account_id)
            if account is None or tuple(account.totals) != tuple(totals):
                differing.append(str(account_id))
    finally:
        app.close()
    _check(
        bool(sample) and not differing,
        f"balances view = account aggregates for {len(sample)} sampled accounts "
        f"(of {len(rows):,} in the view)",
        f"balances view differs from the aggregates for {len(differing)} of "
        f"{len(sample)} sampled accounts: {', '.join(differing[:3])}",
        verification,
    )


def check_journal_against_python_replay(
    database_url: str, digests: dict[str, dict[str, str]], verification: Verification
) -> None:
    """The journal as its Python handlers make it (the live runner's path),
    beside its set-based rebuild in SQL: two derivations of the same rows."""
    journal = view_named(JOURNAL)
    rebuild.replay_into_schema(database_url, journal, PYTHON_REPLAY_SCHEMA, set_based=False)
    with psycopg.connect(database_url) as connection:
        with connection.transaction():
            replayed = digest.view_digest(connection, journal, PYTHON_REPLAY_SCHEMA)
        connection.execute(
            sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(PYTHON_REPLAY_SCHEMA))
        )
    rebuilt = digests.get(JOURNAL)
    _check(
        replayed == rebuilt,
        f"{JOURNAL}: replayed through its Python handlers = its set-based (SQL) rebuild "
        f"({', '.join(f'{table} {value[:12]}' for table, value in replayed.items())})",
        f"{JOURNAL}: the Python replay differs from the SQL rebuild: {replayed} vs {rebuilt}",
        verification,
    )


def _sizes(config: ProjectionBenchmarkConfig) -> list[int]:
    """The history's sizes measured, smallest first."""
    smaller = [config.smaller_size] if 0 < config.smaller_size < config.events else []
    return [*smaller, config.events]


def _at(name: str, events: int, final: bool) -> str:
    """A phase's name; at the smaller size, with the size."""
    return name if final else f"{name} @ {events:,}"


def _rebuild_all(url: str, events: int, final: bool, verification: Verification) -> PhaseResult:
    child = in_child(child_rebuild_all, url)
    _check(
        all(position == events for position in child.value.values()),
        f"all views at once ({events:,}): every view at position {events:,}",
        f"all views at once ({events:,}): positions {child.value}, log head {events}",
        verification,
    )
    return _phase(
        _at(ALL_AT_ONCE, events, final),
        "rebuild",
        events,
        child,
        REBUILD_TARGET_EVENTS_PER_S,
        {"views": len(child.value)},
    )


def _audits(url: str, events: int, final: bool, verification: Verification) -> list[PhaseResult]:
    audits = ((VERIFY_LOG, False), (VERIFY_VIEWS, True)) if _audit_available() else ()
    _check(
        bool(audits),
        "interface.audit.verify found",
        "interface.audit.verify is missing: the audit was not measured",
        verification,
    )
    phases: list[PhaseResult] = []
    for name, check_views in audits:
        databases.checkpoint(url)
        child = in_child(child_verify, url, check_views)
        ok, checked, findings = child.value
        phases.append(
            _phase(
                _at(name, events, final),
                "verify",
                events,
                child,
                VERIFY_VIEWS_TARGET_EVENTS_PER_S if check_views else VERIFY_TARGET_EVENTS_PER_S,
                {"events_checked": checked},
            )
        )
        _check(
            ok and checked == events,
            f"{_at(name, events, final)}: OK, {checked:,} events checked",
            f"{_at(name, events, final)}: ok={ok}, {checked} events checked of {events}; "
            f"{findings}",
            verification,
        )
    return phases


def _reconciliations(
    url: str,
    config: ProjectionBenchmarkConfig,
    history: _History,
    events: int,
    final: bool,
    verification: Verification,
) -> list[PhaseResult]:
    """A full run; `growth_events` more events, the views caught up; an
    incremental run. Both must pass."""
    data_dir = databases.ledger_data_dir(url, config.data_dir)
    databases.checkpoint(url)
    full = in_child(child_reconcile, url, data_dir, False)
    full_phase = _phase(
        _at(RECONCILE_FULL, events, final),
        "reconcile",
        events,
        full,
        RECONCILE_FULL_TARGET_EVENTS_PER_S,
        {"checks": full.value[2]},
        seconds=full.value[0],
    )
    before = count_events(url)
    build_history(url, config, before + config.growth_events, history)
    _catch_up_views(url, data_dir)
    databases.checkpoint(url)
    grown = count_events(url) - before
    incremental = in_child(child_reconcile, url, data_dir, True)
    incremental_phase = _phase(
        _at(RECONCILE_INCREMENTAL, events, final),
        "reconcile",
        grown,
        incremental,
        RECONCILE_INCREMENTAL_TARGET_EVENTS_PER_S,
        {"checks": incremental.value[2], "history_events": events},
        seconds=incremental.value[0],
    )
    for phase, child in ((full_phase, full), (incremental_phase, incremental)):
        _check(
            child.value[1] == "passed",
            f"{phase.name}: passed in {child.value[0]:,.2f} s",
            f"{phase.name}: {child.value[1]}: {child.value[2]}",
            verification,
        )
    return [full_phase, incremental_phase]


def _catch_up_views(url: str, data_dir: Path) -> None:
    """The live runner's way: the views follow the new events."""
    ledger = build_ledger(Settings(database_url=url, data_dir=data_dir), start_projections=False)
    try:
        assert ledger.projections is not None
        ledger.projections.catch_up()
    finally:
        ledger.close()


def _rss_growth(phases: Sequence[PhaseResult]) -> list[str]:
    """Each phase's peak RSS at the largest size beside the smaller one's."""
    lines: list[str] = []
    for phase in phases:
        smaller = next(
            (other for other in phases if other.name.startswith(f"{phase.name} @ ")), None
        )
        if smaller is None:
            continue
        growth = phase.memory.peak_rss_kib / smaller.memory.peak_rss_kib - 1
        lines.append(
            f"peak RSS of {phase.name}: {phase.memory.peak_rss_kib / 1024:,.0f} MiB at "
            f"{phase.events:,} events, {smaller.memory.peak_rss_kib / 1024:,.0f} MiB at "
            f"{smaller.events:,} ({growth:+.1%}; target within {RSS_GROWTH_TARGET:.0%}: "
            f"{'met' if abs(growth) <= RSS_GROWTH_TARGET else 'MISSED'})"
        )
    return lines


def run(config: ProjectionBenchmarkConfig) -> ProjectionBenchmarkReport:
    load_at_start = os.getloadavg()[0]
    server_url = databases.server_url(config.database_url, config.data_dir)
    verification = Verification([], [])
    phases: list[PhaseResult] = []
    baseline: PhaseResult | None = None
    loads: dict[str, float] = {}
    with databases.temporary_database(server_url, "bench_projections") as url:
        written: _History | None = None
        for size in _sizes(config):
            final = size == config.events
            history, written = build_history(url, config, size, written)
            _check(
                set(history.results) <= {"ok"},
                f"history: all {sum(history.results.values()):,} commands ok, "
                f"{history.events:,} events in the log",
                f"history: results {history.results}",
                verification,
            )
            vacuum_and_checkpoint(url)
            events = count_events(url)
            loads[f"{events:,} events"] = os.getloadavg()[0]
            phases.append(_rebuild_all(url, events, final, verification))
            if final and not config.scale_only:
                phases += _rebuild_view_by_view(url, config, events, verification)
            phases += _audits(url, events, final, verification)
            phases += _reconciliations(url, config, written, events, final, verification)
        if not config.scale_only:
            baseline = _baseline(url, config, events, verification)
    return ProjectionBenchmarkReport(
        config={item.name: getattr(config, item.name) for item in fields(config)},
        environment={
            **databases.environment(server_url, load_at_start),
            **{f"load_average_1m_at_{size}": f"{load:.2f}" for size, load in loads.items()},
            "load_average_1m_at_end": f"{os.getloadavg()[0]:.2f}",
        },
        history=history,
        phases=phases,
        baseline=baseline,
        verification=verification,
        timed=TIMED,
        notes=_notes(config) + _rss_growth(phases),
    )


def _rebuild_view_by_view(
    url: str, config: ProjectionBenchmarkConfig, events: int, verification: Verification
) -> list[PhaseResult]:
    """Every view rebuilt again, one at a time: their digests must equal
    those of the rebuild of all at once (just made)."""
    first_digests = _digests(url)
    per_view: list[PhaseResult] = []
    for view in all_views():
        databases.checkpoint(url)
        child = in_child(child_rebuild_view, url, view.name, config.profile_views)
        per_view.append(_phase(f"rebuild_in_place: {view.name}", "rebuild", events, child, None))
        _check(
            child.value == events,
            f"rebuild_in_place {view.name}: at position {events:,}",
            f"rebuild_in_place {view.name}: at {child.value}, log head {events}",
            verification,
        )
    total_s = sum(phase.seconds for phase in per_view)
    second_digests = _digests(url)
    for name, tables in first_digests.items():
        _check(
            second_digests.get(name) == tables,
            f"{name}: digest after rebuild_all_in_place = digest after rebuild_in_place "
            f"({', '.join(f'{table} {value[:12]}' for table, value in tables.items())})",
            f"{name}: digests differ between the two rebuilds: {tables} vs "
            f"{second_digests.get(name)}",
            verification,
        )
    check_journal_against_python_replay(url, second_digests, verification)
    check_balances_against_aggregates(url, config.seed, verification)
    return [
        PhaseResult(
            name=VIEW_BY_VIEW,
            kind="rebuild",
            events=events,
            seconds=total_s,
            events_per_s=events / total_s if total_s else 0.0,
            client_cpu_s=sum(phase.client_cpu_s for phase in per_view),
            memory=max(per_view, key=lambda phase: phase.memory.peak_rss_kib).memory,
            target_events_per_s=REBUILD_TARGET_EVENTS_PER_S,
            detail={"views": len(per_view), "memory": "the largest view's"},
        ),
        *per_view,
    ]


def _baseline(
    url: str, config: ProjectionBenchmarkConfig, events: int, verification: Verification
) -> PhaseResult:
    databases.checkpoint(url)
    child = in_child(child_baseline, url, min(config.baseline_events, events))
    seconds, processed, through = child.value
    only_theirs, only_ours = projection_baseline.compare_with_view(url, through)
    _check(
        only_theirs == 0 and only_ours == 0,
        f"baseline: its balance history up to position {through:,} = ours "
        f"({processed:,} events processed)",
        f"baseline: {only_theirs} history rows only in the baseline's view, {only_ours} "
        "only in ours",
        verification,
    )
    return _phase(
        f"baseline: library ProjectionRunner, balances, first {through:,} positions",
        "baseline",
        through,
        child,
        None,
        {
            "events_processed": processed,
            "processed_events_per_s": round(processed / seconds) if seconds else 0,
        },
        seconds=seconds,
    )


def _notes(config: ProjectionBenchmarkConfig) -> list[str]:
    notes = [
        "the baseline keeps only the balances view (both tables), subscribes to the two "
        "account topics only (it never reads the transfers' events: favouring it), and runs "
        f"on the first {config.baseline_events:,} positions of the same log; x baseline is "
        "each row's events/s over the baseline's",
        "rebuild_in_place: one view at a time, one process; all views at once: "
        "rebuild_all_in_place, the journal in a process of its own and the other views "
        "together in another (client CPU and RSS count every process)",
        "the journal is replayed set-based, in SQL inside PostgreSQL: its CPU and memory are "
        "the server's, not in client CPU and RSS; each of its sorts is held to "
        f"{REPLAY_SORT_MEMORY} (each hash to twice that) and spills to disk past it",
        "PostgreSQL runs on the same machine and shares its cores with the benchmark",
    ]
    if config.profile_views:
        notes.append("rebuild_in_place was profiled: its figures are slower than unprofiled")
    return notes


def config_from_arguments(argv: Sequence[str] | None) -> tuple[ProjectionBenchmarkConfig, bool]:
    """The run `main` would do, and whether to print JSON (`ledger bench` runs it too)."""
    parser = argparse.ArgumentParser(
        prog="ledger bench --only projections",
        description="Rebuilding every view and the audit, in events/s, beside the library's "
        "ProjectionRunner.",
    )
    parser.add_argument("--profile-views", action="store_true", help="cProfile each view")
    parser.add_argument(
        "--scale-only",
        action="store_true",
        help="only what is measured at every size: no view-by-view rebuilds, no baseline",
    )
    return config_from(
        parser,
        argv,
        (
            "events",
            "accounts",
            "baseline_events",
            "chunk_size",
            "seed",
            "growth_events",
            "smaller_size",
        ),
        ProjectionBenchmarkConfig,
        ProjectionBenchmarkConfig.quick,
        helps={
            "smaller_size": "measure the history at this size first when --events is larger, "
            "so growth shows; 0: at --events only (default 1,000,000)",
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.projection_benchmark [--quick] [--json] ...`; 1 if a check failed."""
    config, as_json = config_from_arguments(argv)
    report = run(config)
    print(to_json(report) if as_json else render(report))
    return 0 if report.verification.ok else 1


if __name__ == "__main__":
    sys.exit(main())
