"""The writer process's own series, served on LEDGER_WRITER_METRICS_PORT.

`ledger writer` runs the one LedgerWriter: its batches (sizes, commit
latency, events, transfers by result) and its queue are counted there, not in
the HTTP processes that submit to it, so it serves them itself, with what
only the process knows: the commands its socket took, the answers waiting
to go out, and the writer lease (docs/operations.md#metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import Counter, Enum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from application.ports.writer import Writer
from interface.observability.metrics import WRITER_STATE_SERIES

# The lease's states, in the order a writer goes through them.
LEASE_STATES: Final[tuple[str, ...]] = ("waiting", "held", "lost", "released")

# Of the ledger's registry, only the writer's own series are served here: the
# views', withdrawals' and reconciliation's are the worker's and HTTP
# processes' (served twice, a dashboard's sums would double them), and their
# collectors query the database, which a scrape of the writer must not.
# The batch series are WriterMetrics' (interface/observability/metrics.py).
_WRITER_FAMILIES: Final[tuple[str, ...]] = (
    "ledger_writer_batch_commands",
    "ledger_writer_events_written",
    "ledger_writer_commit_duration_seconds",
    "ledger_transfers",
    *(series.name for series in WRITER_STATE_SERIES),
)
# A family's samples carry these suffixes (counters, histograms), and a
# restricted registry selects samples by their own names.
_SAMPLE_SUFFIXES: Final[tuple[str, ...]] = ("", "_total", "_created", "_bucket", "_count", "_sum")
_WRITER_SAMPLE_NAMES: Final[frozenset[str]] = frozenset(
    family + suffix for family in _WRITER_FAMILIES for suffix in _SAMPLE_SUFFIXES
)


class WriterProcessMetrics:
    """Counted by the socket (interface/writer_process/server.py) and the
    lease (interface/writer_process/lease.py); the writer's series join once
    the writer is built (`track`), after the lease is held."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._commands_received = Counter(
            "ledger_writer_commands_received",
            "Commands the writer process's socket took in submissions.",
            registry=self.registry,
        )
        self._submissions = Counter(
            "ledger_writer_submissions",
            "Submissions the socket took, by outcome: queued on the writer, or refused "
            "at once (overloaded, stopped, unreadable).",
            ("outcome",),
            registry=self.registry,
        )
        for outcome in ("queued", "refused"):
            self._submissions.labels(outcome)
        self._lease = Enum(
            "ledger_writer_lease",
            "The writer lease: waiting for it, held (serving), lost to another writer, "
            "released (stopping).",
            states=list(LEASE_STATES),
            registry=self.registry,
        )
        self._lease.state("waiting")
        self._tracked = _TrackedWriter()
        self.registry.register(self._tracked)

    def submission_taken(self, commands: int) -> None:
        self._submissions.labels("queued").inc()
        self._commands_received.inc(commands)

    def submission_refused(self, commands: int) -> None:
        self._submissions.labels("refused").inc()
        self._commands_received.inc(commands)

    def lease_state(self, state: str) -> None:
        self._lease.state(state)

    def track(
        self, writer: Writer, ledger_registry: CollectorRegistry, answers_waiting: Callable[[], int]
    ) -> None:
        """From now on, also the writer's batches and queue (read from
        `ledger_registry`, interface/observability/metrics.py) and the answers
        the socket has yet to send."""
        self._tracked.writer = writer
        self._tracked.ledger_registry = ledger_registry
        self._tracked.answers_waiting = answers_waiting


class _TrackedWriter(Collector):
    def __init__(self) -> None:
        self.writer: Writer | None = None
        self.ledger_registry: CollectorRegistry | None = None
        self.answers_waiting: Callable[[], int] | None = None

    def describe(self) -> Iterator[Metric]:
        # Nothing to describe before the writer is built: its names are the
        # ledger registry's, which is never registered here.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        writer, ledger_registry = self.writer, self.ledger_registry
        if writer is None or ledger_registry is None:
            return
        # Only the collectors of these series run (not the ones that query).
        yield from ledger_registry.restricted_registry(_WRITER_SAMPLE_NAMES).collect()
        yield CounterMetricFamily(
            "ledger_writer_batches_committed",
            "Batches the writer has committed.",
            value=writer.statistics.batches_committed,
        )
        if self.answers_waiting is not None:
            yield GaugeMetricFamily(
                "ledger_writer_answers_waiting",
                "Receipts decided but not yet sent back to their client process.",
                value=self.answers_waiting(),
            )
