"""Prometheus metrics: the HTTP API's and the writer's, each in a registry of its own.

Registries are per object, never prometheus-client's global one, so a process
(or a test session) may build several apps and ledgers without their series
colliding. `GET /metrics` renders the app's registry and its ledger's.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import psycopg
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from application.ports.writer import Writer
from domain.commands import Command, CreateTransfer
from domain.ledger_batch import CommandResult
from projections.runner import ProjectionRunner
from projections.view_health import failed_views

if TYPE_CHECKING:
    from application.writer import WriterStatistics

# Request latency: the API answers in milliseconds; anything past seconds is
# a timeout in the making.
HTTP_DURATION_BUCKETS_S: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Commands per batch, up to the writer's batch_size_max (8190).
BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 8190)
COMMIT_DURATION_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
# Methods outside this set are labelled "other": a client must not be able to
# mint new series by inventing methods.
KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Requests by method, route template and status (never the raw path);
    and the process's own series: CPU, memory, open files, start time
    (`process_*`), the interpreter (`python_info`) and its garbage collector
    (`python_gc_*`), each read when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for process_collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(process_collector)
        self._requests = Counter(
            "ledger_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self._duration = Histogram(
            "ledger_http_request_duration_seconds",
            "Time from the request's arrival to its last response byte.",
            ("method", "route", "status"),
            buckets=HTTP_DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, duration_s: float) -> None:
        key = (method if method in KNOWN_METHODS else "other", route, status)
        series = self._series.get(key)
        if series is None:
            # Looking a child up by labels costs more than the update itself:
            # keep them (a few per route template, so a bounded number).
            labels = (key[0], route, str(status))
            series = (self._requests.labels(*labels), self._duration.labels(*labels))
            self._series[key] = series
        requests, duration = series
        requests.inc()
        duration.observe(duration_s)


class WriterMetrics:
    """The writer's batches (an application.ports.event_store.WriterObserver), and its queue
    and statistics read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._batch_commands = Histogram(
            "ledger_writer_batch_commands",
            "Commands decided per writer batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self._batch_events = Counter(
            "ledger_writer_events_written",
            "Events the writer has committed.",
            registry=self.registry,
        )
        self._commit_duration = Histogram(
            "ledger_writer_commit_duration_seconds",
            "Time to insert and commit one batch's events (batches that wrote something).",
            buckets=COMMIT_DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._transfers = Counter(
            "ledger_transfers",
            "Transfers decided by the writer, by result code.",
            ("result",),
            registry=self.registry,
        )

    def track(self, writer: Writer) -> None:
        """Also expose the writer's queue depth and counters, read when scraped."""
        self.registry.register(_WriterStateCollector(writer))

    def track_withdrawals(self, pool: ConnectionPool) -> None:
        """Also expose withdrawals by status, read from their view when scraped."""
        self.registry.register(WithdrawalsCollector(pool))

    def track_reconciliation(self, pool: ConnectionPool) -> None:
        """Also expose reconciliation runs, checks and exceptions, read from
        the reconciliation view when scraped."""
        self.registry.register(ReconciliationCollector(pool))

    def track_projections(self, runner: ProjectionRunner, writer: Writer) -> None:
        """Also expose each view's position and lag behind this process's
        writes, read when scraped."""
        self.registry.register(_ProjectionStateCollector(runner, writer))

    def track_projection_failures(self, pool: ConnectionPool) -> None:
        """Also expose which views have stopped on an event they cannot
        apply, read from the tracking table when scraped (whichever process
        runs them)."""
        self.registry.register(ProjectionFailuresCollector(pool))

    def batch_committed(
        self,
        commands: Sequence[Command],
        results: Sequence[CommandResult],
        events_written: int,
        commit_s: float,
    ) -> None:
        self._batch_commands.observe(len(commands))
        if events_written:
            self._batch_events.inc(events_written)
            self._commit_duration.observe(commit_s)
        # One pass and one counter update per result code, not per command:
        # this runs on the writer's thread once per batch of up to 8190.
        tally = Tally(
            result.code
            for command, result in zip(commands, results, strict=True)
            if type(command) is CreateTransfer
        )
        for code, count in tally.items():
            self._transfers.labels(code.value).inc(count)


@dataclass(frozen=True)
class WriterSeries:
    """One unlabelled series of the writer's state, read when scraped
    (counters named without `_total`, which the client adds)."""

    name: str
    documentation: str
    read: Callable[[Writer, WriterStatistics], float]
    counter: bool = False


WRITER_STATE_SERIES: Final[tuple[WriterSeries, ...]] = (
    WriterSeries(
        "ledger_writer_queued_commands",
        "Commands waiting for the writer.",
        lambda writer, _: writer.queued_commands,
    ),
    WriterSeries(
        "ledger_writer_running",
        "1 while the writer's thread runs.",
        lambda writer, _: 1 if writer.is_running else 0,
    ),
    WriterSeries(
        "ledger_writer_conflicts_retried",
        "Batches decided again after another writer moved an aggregate first.",
        lambda _, statistics: statistics.conflicts_retried,
        counter=True,
    ),
    WriterSeries(
        "ledger_writer_batches_decided_under_lock",
        "Batches decided while holding the log's write lock after repeated conflicts.",
        lambda _, statistics: statistics.batches_decided_under_lock,
        counter=True,
    ),
    WriterSeries(
        "ledger_pending_transfers_expired",
        "Holds expired by the writer's sweep.",
        lambda _, statistics: statistics.pending_transfers_expired,
        counter=True,
    ),
)


class _WriterStateCollector(Collector):
    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def describe(self) -> Iterator[Metric]:
        # Registration then learns the names without asking the writer.
        for series in WRITER_STATE_SERIES:
            family_type = CounterMetricFamily if series.counter else GaugeMetricFamily
            yield family_type(series.name, series.documentation)

    def collect(self) -> Iterator[Metric]:
        # Read once per scrape: a remote writer answers it with a round trip.
        statistics = self._writer.statistics
        for series in WRITER_STATE_SERIES:
            family_type = CounterMetricFamily if series.counter else GaugeMetricFamily
            yield family_type(
                series.name, series.documentation, value=series.read(self._writer, statistics)
            )


class _ProjectionStateCollector(Collector):
    def __init__(self, runner: ProjectionRunner, writer: Writer) -> None:
        self._runner = runner
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        positions = self._runner.positions()
        head = self._writer.last_position
        position = GaugeMetricFamily(
            "ledger_projection_position",
            "The log position each view has applied, as this process's runner saw it.",
            labels=("view",),
        )
        lag = GaugeMetricFamily(
            "ledger_projection_lag_events",
            "Positions between this process's last write and each view's position.",
            labels=("view",),
        )
        for name, reached in sorted(positions.items()):
            position.add_metric((name,), reached)
            lag.add_metric((name,), max(head - reached, 0))
        yield position
        yield lag
        yield GaugeMetricFamily(
            "ledger_projection_runner_running",
            "1 while this process's projection runner runs.",
            value=1 if self._runner.is_running else 0,
        )


class ProjectionFailuresCollector(Collector):
    """`ledger_projection_failed{view}`: 1 for each tracked view stopped on an
    event it cannot apply, 0 for the others; and the event's position."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def describe(self) -> Iterator[Metric]:
        # Registration then learns the names without a query (it collects
        # otherwise, and every ledger built registers this).
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        failed = GaugeMetricFamily(
            "ledger_projection_failed",
            "1 while the view is stopped on an event it cannot apply (see /readyz).",
            labels=("view",),
        )
        failed_position = GaugeMetricFamily(
            "ledger_projection_failed_position",
            "The log position of the event a stopped view cannot apply.",
            labels=("view",),
        )
        return failed, failed_position

    def collect(self) -> Iterator[Metric]:
        failed, failed_position = self._families()
        try:
            with self._pool.connection() as connection, connection.cursor() as cursor:
                cursor.execute("SELECT name FROM projection_tracking ORDER BY name")
                names = [row[0] for row in cursor.fetchall()]
                failures = failed_views(cursor)
        except psycopg.Error:
            # The database is away (/readyz says so): the other series still count.
            names, failures = [], {}
        for name in names:
            failure = failures.get(name)
            failed.add_metric((name,), 0 if failure is None else 1)
            if failure is not None:
                failed_position.add_metric((name,), failure.position)
        yield failed
        yield failed_position


class WithdrawalsCollector(Collector):
    """Withdrawals by status from the withdrawals view, read at scrape time
    (one grouped query): the admins' queue, the payouts in flight, the ones
    waiting for a person."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def describe(self) -> Iterator[Metric]:
        # Registration then learns the names without a query.
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        count = GaugeMetricFamily(
            "ledger_withdrawals", "Withdrawals by status.", labels=("status",)
        )
        amount = GaugeMetricFamily(
            "ledger_withdrawals_amount_minor",
            "What withdrawals of each status add up to, in minor units.",
            labels=("status", "currency"),
        )
        attention = GaugeMetricFamily(
            "ledger_withdrawals_needing_attention",
            "Approved withdrawals whose payout retries ran out: for a person.",
        )
        return count, amount, attention

    def collect(self) -> Iterator[Metric]:
        count, amount, attention = self._families()
        try:
            with self._pool.connection() as connection:
                rows = connection.execute(
                    "SELECT status, currency, count(*), sum(amount_minor),"
                    " count(*) FILTER (WHERE needs_attention)"
                    " FROM view_withdrawals GROUP BY status, currency ORDER BY status, currency"
                ).fetchall()
        except psycopg.errors.UndefinedTable:
            # No projection runner has made the view yet: nothing to count.
            rows = []
        counts: Tally[str] = Tally()
        needing = 0
        for status, currency, number, total, flagged in rows:
            counts[status] += number
            amount.add_metric((status, currency), total)
            needing += flagged
        for status, number in sorted(counts.items()):
            count.add_metric((status,), number)
        attention.add_metric((), needing)
        yield count
        yield amount
        yield attention


@dataclass(frozen=True)
class QueriedSeries:
    """A gauge family read with one query, whose rows are the label values
    then the value."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    sql: str


RECONCILIATION_SERIES: Final[tuple[QueriedSeries, ...]] = (
    QueriedSeries(
        "ledger_reconciliation_runs",
        "Reconciliation runs by type and status.",
        ("run_type", "status"),
        "SELECT run_type, status, count(*) FROM view_reconciliation_runs"
        " GROUP BY run_type, status ORDER BY run_type, status",
    ),
    QueriedSeries(
        "ledger_reconciliation_checks",
        "Check results over every run, by check and status (passed, failed, errored, skipped).",
        ("check", "status"),
        "SELECT name, status, count(*) FROM view_reconciliation_checks"
        " GROUP BY name, status ORDER BY name, status",
    ),
    QueriedSeries(
        "ledger_reconciliation_unresolved_exceptions",
        "Open reconciliation exceptions by severity.",
        ("severity",),
        # Every severity, 0 when none is open.
        "SELECT s.severity, count(e.severity)"
        " FROM (VALUES (1, 'low'), (2, 'medium'), (3, 'high'), (4, 'critical'))"
        " AS s(rank, severity)"
        " LEFT JOIN view_reconciliation_exceptions AS e"
        " ON e.severity = s.severity AND e.status = 'open'"
        " GROUP BY s.rank, s.severity ORDER BY s.rank",
    ),
    QueriedSeries(
        "ledger_reconciliation_discrepancy",
        "The latest run's |actual - expected| by check, in the check's measure "
        "(minor units for money checks).",
        ("check",),
        "SELECT c.name, abs(c.difference) FROM view_reconciliation_checks AS c"
        " WHERE c.run_id = (SELECT run_id FROM view_reconciliation_runs"
        " ORDER BY started_log_position DESC LIMIT 1) ORDER BY c.name",
    ),
    QueriedSeries(
        "ledger_reconciliation_run_duration_seconds",
        "How long the latest completed run of each type took.",
        ("run_type",),
        "SELECT DISTINCT ON (run_type) run_type,"
        " extract(epoch FROM completed_at - started_at)"
        " FROM view_reconciliation_runs WHERE completed_at IS NOT NULL"
        " ORDER BY run_type, started_log_position DESC",
    ),
)


class ReconciliationCollector(Collector):
    """Reconciliation's metrics (docs/rules.md#reconciliation), from the
    reconciliation view at scrape time: runs by type and status, checks passed
    and failed by check, unresolved exceptions by severity, the latest run's
    discrepancy (|actual - expected|) by check, and the latest completed run's
    duration by type (`RECONCILIATION_SERIES`, one query each)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def describe(self) -> Iterator[Metric]:
        # Registration then learns the names without the queries.
        for series in RECONCILIATION_SERIES:
            yield GaugeMetricFamily(series.name, series.documentation, labels=series.labels)

    def collect(self) -> Iterator[Metric]:
        try:
            with self._pool.connection() as connection:
                rows = [
                    connection.execute(series.sql).fetchall() for series in RECONCILIATION_SERIES
                ]
        except psycopg.errors.UndefinedTable:
            # No projection runner has made the view yet: nothing to report.
            rows = [[] for _ in RECONCILIATION_SERIES]
        for series, series_rows in zip(RECONCILIATION_SERIES, rows, strict=True):
            family = GaugeMetricFamily(series.name, series.documentation, labels=series.labels)
            for *label_values, number in series_rows:
                family.add_metric(tuple(label_values), float(number))
            yield family


def render(*registries: CollectorRegistry) -> bytes:
    """Prometheus' text format; the registries' metric names never overlap."""
    return b"".join(generate_latest(registry) for registry in registries)
