"""Per-worker Prometheus series of every leased background loop in this
process (docs/operations.md#metrics), read from each loop's statistics when
scraped: nothing is counted on the loops' behalf between scrapes.

The loops are described by protocols, not imported: interface/workers/
reports to this package (tracing), so this package may not import it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class PassStatisticsView(Protocol):
    """What interface/workers/leased_worker.py's PassStatistics holds."""

    @property
    def completed(self) -> int: ...
    @property
    def not_leased(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def item_failures(self) -> int: ...
    @property
    def last_completed_at(self) -> float | None: ...
    @property
    def last_completed_duration_s(self) -> float | None: ...
    def lag_s(self) -> float: ...


class WatchedLoop(Protocol):
    """A leased loop: its name, whether its thread runs, its statistics."""

    @property
    def name(self) -> str: ...
    @property
    def is_running(self) -> bool: ...
    @property
    def statistics(self) -> PassStatisticsView: ...


@dataclass(frozen=True)
class Series:
    """One series family: its name (counters without `_total`, which the
    client adds), help text, labels after `worker`, and how to read it from
    a loop (None: no sample for that loop now)."""

    name: str
    documentation: str
    read: Callable[[WatchedLoop], float | None]
    counter: bool = False


def _running(loop: WatchedLoop) -> float:
    return 1.0 if loop.is_running else 0.0


def _lag(loop: WatchedLoop) -> float | None:
    # A loop this process does not run (a test's, a CLI command's) is never late.
    return loop.statistics.lag_s() if loop.is_running else None


# Every per-worker family but the passes by outcome (two labels, below).
WORKER_SERIES: Final[tuple[Series, ...]] = (
    Series(
        "ledger_worker_running",
        "1 while the worker's loop runs in this process.",
        _running,
    ),
    Series(
        "ledger_worker_failures",
        "Passes that raised, plus items a pass could not handle (each logged).",
        lambda loop: loop.statistics.failed + loop.statistics.item_failures,
        counter=True,
    ),
    Series(
        "ledger_worker_last_pass_timestamp_seconds",
        "When this process's last completed pass under the lease ended (Unix time).",
        lambda loop: loop.statistics.last_completed_at,
    ),
    Series(
        "ledger_worker_last_pass_duration_seconds",
        "How long this process's last completed pass under the lease took.",
        lambda loop: loop.statistics.last_completed_duration_s,
    ),
    Series(
        "ledger_worker_lag_seconds",
        "How far past its interval the worker's next pass is overdue (0: on time).",
        _lag,
    ),
)
PASS_OUTCOMES: Final[tuple[tuple[str, Callable[[PassStatisticsView], int]], ...]] = (
    ("completed", lambda statistics: statistics.completed),
    ("not_leased", lambda statistics: statistics.not_leased),
    ("failed", lambda statistics: statistics.failed),
)


class WorkerCollector(Collector):
    """`ledger_worker_*{worker}` for each loop `loops()` names when scraped."""

    def __init__(self, loops: Callable[[], Sequence[WatchedLoop]]) -> None:
        self._loops = loops

    def collect(self) -> Iterator[Metric]:
        loops = sorted(self._loops(), key=lambda loop: loop.name)
        for series in WORKER_SERIES:
            family_type = CounterMetricFamily if series.counter else GaugeMetricFamily
            family = family_type(series.name, series.documentation, labels=("worker",))
            for loop in loops:
                value = series.read(loop)
                if value is not None:
                    family.add_metric((loop.name,), value)
            yield family
        passes = CounterMetricFamily(
            "ledger_worker_passes",
            "Passes by outcome: completed under the lease, not_leased (another "
            "process held it), failed (raised).",
            labels=("worker", "outcome"),
        )
        for loop in loops:
            for outcome, count in PASS_OUTCOMES:
                passes.add_metric((loop.name, outcome), count(loop.statistics))
        yield passes
