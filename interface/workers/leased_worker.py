"""A background loop that runs its passes in one process at a time.

The rules monitor, the payout worker and the closure worker share this shape
(the last two as a `DueWorker`, below): every few seconds, or at once when
woken, take a lease, do the due work, let the lease go. The lease is a
PostgreSQL advisory lock held on a connection of the pass's own, so a process
killed mid-pass frees it with its connection and another process carries on
at its next pass. A pass that fails is logged; the next one tries again.

Every loop keeps its passes' statistics for /metrics (`PassStatistics`), and
each pass that holds the lease is a trace span when tracing is on
(interface/observability/tracing.py).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar
from uuid import UUID

import psycopg
import structlog

from domain.result_codes import LedgerRefusal
from interface.observability import tracing
from projections.view import Cursor

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S: Final[float] = 30.0

Connection = psycopg.Connection[tuple[Any, ...]]
PassResult = TypeVar("PassResult")


@dataclass
class PassStatistics:
    """What this process's passes of one loop did: read by /metrics
    (interface/observability/worker_metrics.py). Wall-clock times for the
    reader; the monotonic clock for how late the loop is."""

    interval_s: float
    # Passes by outcome: done under the lease, lease held elsewhere, raised.
    completed: int = 0
    not_leased: int = 0
    failed: int = 0
    # Items a due-work pass could not handle (logged; the pass went on).
    item_failures: int = 0
    last_completed_at: float | None = None
    last_completed_duration_s: float | None = None
    # When the last pass of any outcome ended, or the loop started.
    last_ended_monotonic: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: str, duration_s: float) -> None:
        with self._lock:
            if outcome == "completed":
                self.completed += 1
                self.last_completed_at = time.time()
                self.last_completed_duration_s = duration_s
            elif outcome == "not_leased":
                self.not_leased += 1
            else:
                self.failed += 1
            self.last_ended_monotonic = time.monotonic()

    def item_failed(self) -> None:
        with self._lock:
            self.item_failures += 1

    def loop_started(self) -> None:
        with self._lock:
            self.last_ended_monotonic = time.monotonic()

    def lag_s(self) -> float:
        """How far past its interval the next pass is overdue (0 when on
        time, or before the loop has started)."""
        if self.last_ended_monotonic is None:
            return 0.0
        return max(0.0, time.monotonic() - self.last_ended_monotonic - self.interval_s)


class LeasedLoop(Generic[PassResult]):
    def __init__(
        self,
        *,
        name: str,
        database_url: str,
        lock_key: int,
        interval_s: float,
        work: Callable[[Connection, threading.Event], PassResult],
        report: Callable[[PassResult], None] | None = None,
    ) -> None:
        """`work` does one pass under the lease, on the lease's connection,
        and returns soon after `stopping` is set. `report` is told of each
        background pass's result (to log what is worth logging)."""
        self.name = name
        self._database_url = database_url
        self._lock_key = lock_key
        self._interval_s = interval_s
        self._work = work
        self._report = report
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None
        self.statistics = PassStatistics(interval_s=interval_s)

    def run_once(self) -> PassResult | None:
        """One pass if this process gets the lease; None when another holds it."""
        started = time.monotonic()
        outcome = "failed"
        try:
            result = self._leased_pass()
            outcome = "not_leased" if result is None else "completed"
            return result
        finally:
            self.statistics.record(outcome, time.monotonic() - started)

    def _leased_pass(self) -> PassResult | None:
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            leased = connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (self._lock_key,)
            ).fetchone()
            if leased is None or not leased[0]:
                return None
            try:
                # A span only for passes that hold the lease: the others did nothing.
                with tracing.job_span(f"{self.name} pass", {"ledger.worker": self.name}):
                    return self._work(connection, self._stopping)
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    # Running in the background ------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self.statistics.loop_started()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._woken.set()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._woken.wait(self._interval_s)
            self._woken.clear()
            if self._stopping.is_set():
                return
            try:
                result = self.run_once()
            except Exception:
                # A database hiccup: the next pass tries again.
                log.exception("leased_pass_failed", worker=self.name)
                continue
            if result is not None and self._report is not None:
                self._report(result)


class OnLeasedLoop(Generic[PassResult]):
    """A worker built on a `LeasedLoop` (`self._loop`): started, stopped and
    watched through it; each worker says what a pass without the lease is."""

    _loop: LeasedLoop[PassResult]

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._loop.stop(timeout_s)

    @property
    def is_running(self) -> bool:
        return self._loop.is_running

    @property
    def loop(self) -> LeasedLoop[PassResult]:
        return self._loop


# Walking a view's ids ---------------------------------------------------------------


class IdPage(Protocol):
    """A view's ids in id order after `after` (None: from the first), at most `limit`."""

    def __call__(self, cursor: Cursor, *, after: UUID | None, limit: int) -> list[UUID]: ...


def id_pages(
    connection: Connection, page: IdPage, per_query: int, stopping: threading.Event
) -> Iterator[list[UUID]]:
    """Every id the view lists, a page at a time, each query starting after the
    last id seen; ends after the last page, or when the worker is stopping."""
    after: UUID | None = None
    while not stopping.is_set():
        with connection.cursor() as cursor:
            ids = page(cursor, after=after, limit=per_query)
        yield ids
        if len(ids) < per_query:
            return
        after = ids[-1]


# Due work, one item at a time ------------------------------------------------------

# Items named by wake-ups waiting for the next pass; past this a wake-up only
# wakes (the due-work query still finds the rest).
HINTS_MAX: Final[int] = 10_000


@dataclass
class DuePass:
    """What one pass of a `DueWorker` did."""

    leased: bool = True
    attempted: int = 0
    # What each item's handler answered ("completed", "retrying", ...), counted.
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: dict[UUID, str] = field(default_factory=dict)


class DueWorker(OnLeasedLoop[DuePass]):
    """A leased loop over the items a query says are due: each pass handles
    the items named by `wake` first (the query reads a view that may not show
    them yet), then every due item, each once, up to a bound. Each item's
    failure is isolated: logged, counted, and the pass goes on. The handler
    reads the item's aggregate and decides on that, so a view a moment behind
    never makes it act twice."""

    def __init__(
        self,
        *,
        name: str,
        database_url: str,
        lock_key: int,
        interval_s: float,
        find_due: Callable[[Connection, int], list[UUID]],
        handle: Callable[[UUID], str],
        per_query: int,
        per_pass_max: int,
    ) -> None:
        self._find_due = find_due
        self._handle = handle
        self._per_query = per_query
        self._per_pass_max = per_pass_max
        self._hints: dict[UUID, None] = {}
        self._hints_lock = threading.Lock()
        self._loop = LeasedLoop(
            name=name,
            database_url=database_url,
            lock_key=lock_key,
            interval_s=interval_s,
            work=self._pass,
            report=self._report,
        )

    def run_once(self) -> DuePass:
        done = self._loop.run_once()
        return DuePass(leased=False) if done is None else done

    def wake(self, item_id: UUID | None = None) -> None:
        """Run a pass now; the item named first, whether the view shows it or not."""
        if item_id is not None:
            with self._hints_lock:
                if len(self._hints) < HINTS_MAX:
                    self._hints[item_id] = None
        self._loop.wake()

    def _pass(self, connection: Connection, stopping: threading.Event) -> DuePass:
        done = DuePass()
        with self._hints_lock:
            hinted, self._hints = list(self._hints), {}
        tried: set[UUID] = set()
        for item_id in hinted:
            tried.add(item_id)
            self._handle_one(item_id, done)
        while not stopping.is_set() and done.attempted < self._per_pass_max:
            due = [
                item_id
                for item_id in self._find_due(connection, self._per_query + len(tried))
                if item_id not in tried
            ]
            if not due:
                break
            for item_id in due[: self._per_query]:
                tried.add(item_id)
                self._handle_one(item_id, done)
        return done

    def _handle_one(self, item_id: UUID, done: DuePass) -> None:
        done.attempted += 1
        try:
            with tracing.job_span(
                f"{self._loop.name} item",
                {"ledger.worker": self._loop.name, "ledger.item_id": str(item_id)},
            ):
                outcome = self._handle(item_id)
        except LedgerRefusal as refusal:
            self._loop.statistics.item_failed()
            done.errors[item_id] = refusal.code.value
            log.warning(
                "due_work_failed",
                worker=self._loop.name,
                item_id=str(item_id),
                code=refusal.code.value,
                message=refusal.message,
            )
            return
        except Exception as error:
            # One item's fault never stops the others'.
            self._loop.statistics.item_failed()
            done.errors[item_id] = type(error).__name__
            log.exception("due_work_failed", worker=self._loop.name, item_id=str(item_id))
            return
        done.outcomes[outcome] += 1

    def _report(self, done: DuePass) -> None:
        if done.attempted:
            log.info(
                "due_work_pass",
                worker=self._loop.name,
                attempted=done.attempted,
                errors=len(done.errors),
                **{f"outcome_{name}": count for name, count in sorted(done.outcomes.items())},
            )
