"""One writer with group commit.

Requests queue their commands; a single thread takes as many as fit in one
batch, decides them in order against cached aggregates (each succeeds or
fails alone, or with its linked chain), and saves every new event of the
batch in one transaction. Throughput grows with load: while one batch
commits, the next one fills, and, when it is already queued, is decided:
two batches are in flight, the second decided on the first's outcome before
it is known. The second is handed to the store only once the first has
committed, and decided again if the first did not (docs/architecture.md,
"The write path"); answers go out in commit order.

Several service processes may share a database. Each has its own writer and
cache; the event store's unique (aggregate, version) key is the arbiter. A
batch built on a stale aggregate fails to insert as a whole, and the writer
evicts what it touched, reloads, and decides the batch again.

A submission may carry `AggregateChanges`: events of aggregates the batch
does not decide itself (a funded account, a process such as a withdrawal),
recorded in the batch's transaction only if every command of the submission
succeeded. A process step and the money it moves land together or not at all.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final, Generic, TypeVar
from uuid import UUID

import structlog
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    StoredEvent,
)

from application.event_log import LedgerApplication
from application.ports.clock import Clock
from application.ports.event_store import (
    AppendEvents,
    IgnoreWriterBatches,
    PendingDeadlineChanges,
    WriterObserver,
)
from domain.account import Account
from domain.commands import Command, CreateTransfer, ExpirePendingTransfer
from domain.ledger_batch import (
    CommandResult,
    LedgerBatch,
    account_ids_to_load,
    transfer_ids_to_load,
)
from domain.result_codes import ResultCode
from domain.transfer import Transfer

log = structlog.get_logger(__name__)

# TigerBeetle's batch size: large enough to amortise a commit, small enough
# that one batch's decisions and insert stay well under a second.
BATCH_SIZE_MAX_DEFAULT = 8190


@dataclass(frozen=True, slots=True)
class WriterLimits:
    batch_size_max: int = BATCH_SIZE_MAX_DEFAULT
    queued_commands_max: int = 16 * BATCH_SIZE_MAX_DEFAULT
    account_cache_size_max: int = 100_000
    transfer_cache_size_max: int = 20_000
    # Optimistic attempts before a batch is decided under the log's write lock.
    optimistic_attempts_max: int = 3
    # Decide every batch under the log's write lock, after checking the cached
    # aggregates it touches against the store (one query): for several writers
    # on the same accounts, which otherwise keep invalidating each other.
    decide_under_lock: bool = False
    expiry_sweep_interval_s: float = 1.0
    submit_timeout_s: float = 30.0
    # Batches between deciding and answering: with 2, the next batch is
    # decided while the last one commits (when it is already queued).
    batches_in_flight_max: int = 2
    # Smaller batches are saved on the writer thread: handing one to the
    # committer thread costs a switch of the interpreter lock, up to its
    # 5 ms switch interval while the writer thread decides, which is more
    # than a small batch's save overlaps.
    pipelined_batch_commands_min: int = 512

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size_max <= self.queued_commands_max:
            raise ValueError("need 1 <= batch_size_max <= queued_commands_max")
        if self.batches_in_flight_max not in (1, 2):
            raise ValueError("batches_in_flight_max is 1 or 2")
        if self.pipelined_batch_commands_min < 1:
            raise ValueError("pipelined_batch_commands_min must be at least 1")
        if self.optimistic_attempts_max < 1:
            raise ValueError("need at least one optimistic attempt")
        if self.account_cache_size_max < 1 or self.transfer_cache_size_max < 1:
            raise ValueError("caches need room for at least one aggregate")


class WriterOverloaded(Exception):
    """The queue is full: the caller should back off and retry."""


class WriterStopped(Exception):
    """The writer is not running, or stopped before the commands ran."""


class WriterTimeout(Exception):
    """The commands were not decided within `submit_timeout_s` (the database
    is slow or away). They may be yet, so nothing is acknowledged: a retry
    with the same idempotency key finds what they made, or makes it."""


class WriterConflict(Exception):
    """A batch decided under the write lock still conflicted: a bug, never load."""


class ChangesOutcome(StrEnum):
    """What became of a submission's `AggregateChanges`."""

    # The submission carried none.
    NONE = "none"
    RECORDED = "recorded"
    # A command of the submission was refused: nothing of it was recorded.
    REFUSED = "refused"
    # An aggregate had moved past the version its events follow: nothing of
    # the submission was applied. Read it again and decide again.
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class AggregateChanges:
    """Events of aggregates outside the ledger batch's own, to record with a
    submission's commands in one transaction, and only if all of them succeed.

    Each aggregate's events follow the version it was read at; the writer
    checks that version against the store (under the log's lock, or by the
    store's unique key) so two requests can never both build on one version.
    """

    aggregates: tuple[Aggregate, ...]
    events: tuple[Any, ...]
    # Each aggregate's stored version its events follow (0: a new aggregate).
    versions_before: Mapping[UUID, int]

    @classmethod
    def collect(cls, *aggregates: Aggregate) -> AggregateChanges:
        """Take the aggregates' new events (once: a retried batch reuses them)."""
        if len({aggregate.id for aggregate in aggregates}) != len(aggregates):
            raise ValueError("each aggregate goes in once")
        versions_before = {
            aggregate.id: aggregate.version - len(aggregate.pending_events)
            for aggregate in aggregates
        }
        events = tuple(event for aggregate in aggregates for event in aggregate.collect_events())
        if not events:
            raise ValueError("no new events to record")
        return cls(tuple(aggregates), events, versions_before)


@dataclass(frozen=True, slots=True)
class WriteReceipt:
    results: list[CommandResult]
    # Position (notification id) of the batch's last event: a reader that has
    # seen this position has seen these writes. None when nothing was written.
    position: int | None
    # The batch's newly recorded transfers by id, as written: a caller answers
    # with the transfer it made without reading it back from the store.
    recorded_transfers: Mapping[UUID, Transfer.Recorded] = field(default_factory=dict)
    changes: ChangesOutcome = ChangesOutcome.NONE

    def transfer(self, transfer_id: UUID) -> Transfer | None:
        """The transfer this batch recorded with that id, if it did."""
        recorded = self.recorded_transfers.get(transfer_id)
        return None if recorded is None else Transfer.materialize(recorded)


@dataclass(slots=True)
class _Submission:
    commands: list[Command]
    changes: AggregateChanges | None = None
    future: Future[WriteReceipt] = field(default_factory=Future)

    @property
    def weight(self) -> int:
        """Its share of a batch and of the queue: changes alone count as one."""
        return max(1, len(self.commands))


@dataclass(slots=True)
class _Appended:
    """A decided batch whose events were handed to the store; settled (cached,
    snapshotted, answered) only once they are known to be committed."""

    commands: list[Command]
    results: list[CommandResult]
    results_by_submission: list[list[CommandResult]]
    outcomes: list[ChangesOutcome]
    changed: list[Aggregate]
    versions_before: dict[UUID, int]
    recorded_changes: list[AggregateChanges]
    recorded_transfers: list[Transfer.Recorded]
    stored_events: list[StoredEvent]
    deadlines: PendingDeadlineChanges
    # Taken when the batch was decided: a batch decided after it changes the
    # same aggregates before this one is known to be stored.
    snapshots: list[Any]
    # What the batch read: evicted from the caches if its commit fails.
    account_ids: list[UUID]
    transfer_ids: list[UUID]
    started: float
    # Given out by the store once saved.
    positions: Sequence[int] = ()


@dataclass(slots=True)
class _InFlight:
    """A decided batch being saved by the committer thread."""

    submissions: list[_Submission]
    appended: _Appended
    positions: Future[Sequence[int]]


class _WaitForInFlight:
    """Deciding this batch needs the store, which the batch in flight has not
    reached yet: decide it again once that one is settled."""


_WAIT_FOR_IN_FLIGHT: Final = _WaitForInFlight()


@dataclass(slots=True)
class WriterStatistics:
    batches_committed: int = 0
    commands_applied: int = 0
    events_written: int = 0
    conflicts_retried: int = 0
    batches_decided_under_lock: int = 0
    last_batch_size: int = 0
    last_commit_s: float = 0.0
    pending_transfers_expired: int = 0


K = TypeVar("K")
V = TypeVar("V")


class _BoundedCache(Generic[K, V]):
    """Least recently used entries go first once the bound is reached."""

    def __init__(self, size_max: int) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._size_max = size_max

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size_max:
            self._entries.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        """Whether the key is cached, without making it the most recent."""
        return key in self._entries

    def evict(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def writer_timeout(limits: WriterLimits) -> WriterTimeout:
    return WriterTimeout(
        f"the writer did not answer within {limits.submit_timeout_s:g} s; "
        "retry with the same idempotency key"
    )


def receipt_within(future: Future[WriteReceipt], limits: WriterLimits) -> WriteReceipt:
    """A submission's receipt, waited for at most the submit timeout (the
    in-process writer's and the writer process's client alike)."""
    try:
        return future.result(timeout=limits.submit_timeout_s)
    except TimeoutError:
        if future.done():
            raise
        raise writer_timeout(limits) from None


class LedgerWriter:
    def __init__(
        self,
        app: LedgerApplication,
        clock: Clock,
        limits: WriterLimits | None = None,
        observer: WriterObserver | None = None,
    ) -> None:
        self._app = app
        self._clock = clock
        self.limits = limits or WriterLimits()
        self._observer: WriterObserver = observer or IgnoreWriterBatches()
        self._accounts: _BoundedCache[UUID, Account] = _BoundedCache(
            self.limits.account_cache_size_max
        )
        self._transfers: _BoundedCache[UUID, Transfer] = _BoundedCache(
            self.limits.transfer_cache_size_max
        )
        self._queue: deque[_Submission] = deque()
        self._queued_commands = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        # Saves the batch in flight while the writer thread decides the next.
        self._committer: ThreadPoolExecutor | None = None
        self._stopping = False
        self._last_sweep = 0.0
        self.statistics = WriterStatistics()
        # The log position of the last batch this writer committed: a reader
        # of the views in this process waits for them to reach it.
        self.last_position = 0

    # Lifecycle ------------------------------------------------------------

    def start(self) -> None:
        with self._condition:
            if self._thread is not None:
                return
            self._stopping = False
            if self.limits.batches_in_flight_max > 1 and not self.limits.decide_under_lock:
                self._committer = ThreadPoolExecutor(1, thread_name_prefix="ledger-writer-commit")
            self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish what is queued, then stop."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        with self._condition:
            committer, self._committer = self._committer, None
        if committer is not None:
            # The writer thread waits for its batch in flight before it ends.
            committer.shutdown(wait=thread is None or not thread.is_alive())
        with self._condition:
            self._thread = None
            abandoned = list(self._queue)
            self._queue.clear()
            self._queued_commands = 0
        for submission in abandoned:
            # A caller that stopped waiting cancelled its future: nobody to tell.
            if submission.future.set_running_or_notify_cancel():
                submission.future.set_exception(WriterStopped("the writer stopped"))

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued_commands(self) -> int:
        """Commands waiting for a batch (read without the lock: a gauge, not a decision)."""
        return self._queued_commands

    # Submitting -------------------------------------------------------------

    def submit(
        self, commands: Sequence[Command], changes: AggregateChanges | None = None
    ) -> Future[WriteReceipt]:
        """Queue commands that must run in one batch (a linked chain, a request),
        with the changes to record if all of them succeed."""
        _require_submission(commands, changes, self.limits.batch_size_max)
        submission = _Submission(list(commands), changes)
        with self._condition:
            if self._thread is None or self._stopping:
                raise WriterStopped("the writer is not running")
            if self._queued_commands + submission.weight > self.limits.queued_commands_max:
                raise WriterOverloaded("the writer's queue is full; retry shortly")
            self._queue.append(submission)
            self._queued_commands += submission.weight
            self._condition.notify()
        return submission.future

    def execute(
        self, commands: Sequence[Command], changes: AggregateChanges | None = None
    ) -> WriteReceipt:
        return receipt_within(self.submit(commands, changes), self.limits)

    def timed_out(self) -> WriterTimeout:
        return writer_timeout(self.limits)

    # The writer thread ------------------------------------------------------

    def _run(self) -> None:
        in_flight: _InFlight | None = None
        while True:
            # With a batch in flight, take only what is already queued.
            submissions = self._take_batch(wait=in_flight is None)
            if submissions is None:
                if in_flight is not None:
                    self._finish(in_flight, None)
                return
            if in_flight is not None:
                in_flight = (
                    self._decide_behind(in_flight, submissions)
                    if submissions
                    else self._finish_then_write(in_flight, [])
                )
            elif submissions:
                in_flight = self._write(submissions)
            if (
                in_flight is None
                and time.monotonic() - self._last_sweep >= self.limits.expiry_sweep_interval_s
            ):
                self._expire_due_pending_transfers()

    def _take_batch(self, *, wait: bool = True) -> list[_Submission] | None:
        with self._condition:
            if not self._queue:
                if self._stopping:
                    return None
                if wait:
                    self._condition.wait(self.limits.expiry_sweep_interval_s)
            taken: list[_Submission] = []
            size = 0
            while self._queue:
                head = self._queue[0]
                if taken and size + head.weight > self.limits.batch_size_max:
                    break
                self._queue.popleft()
                size += head.weight
                # Marked running, a future can no longer be cancelled, so its
                # result can always be set. One already cancelled (its caller
                # stopped waiting and was told so) is not run: nothing of it
                # was acknowledged.
                if head.future.set_running_or_notify_cancel():
                    taken.append(head)
            self._queued_commands -= size
            return taken

    def _write(self, submissions: list[_Submission]) -> _InFlight | None:
        """Decide and save a batch; returns it in flight when the committer
        saves it while the next batch, already queued, is decided."""
        if self._committer is not None and self._queue:
            commands, changes = _split(submissions)
            try:
                decided = self._decide_batch(
                    commands, changes, look_up_new_transfers=False, locked=False, behind=False
                )
            except BaseException as error:  # noqa: BLE001 - each waiting caller is told
                self._answer_error(submissions, error)
                return None
            if isinstance(decided, _Appended):
                return self._hand_off(submissions, decided)
            if isinstance(decided, list):
                self._answer(submissions, decided)
                return None
            # A stale read: the whole serial path below decides it again.
        self._write_now(submissions)
        return None

    def _write_now(self, submissions: list[_Submission]) -> None:
        """Decide and save a batch on this thread, retrying conflicts."""
        commands, changes = _split(submissions)
        try:
            receipts = self.apply_submissions(commands, changes)
        except BaseException as error:  # noqa: BLE001 - each waiting caller is told
            self._answer_error(submissions, error)
            return
        self._answer(submissions, receipts)

    def _answer(self, submissions: list[_Submission], receipts: list[WriteReceipt]) -> None:
        for submission, receipt in zip(submissions, receipts, strict=True):
            submission.future.set_result(receipt)

    def _answer_error(self, submissions: list[_Submission], error: BaseException) -> None:
        if isinstance(error, _STORE_FAULTS):
            # The database's fault, not a bug: each waiting request answers it.
            log.warning(
                "writer_batch_failed",
                submissions=len(submissions),
                error_type=type(error).__name__,
            )
        else:
            log.exception("writer_batch_failed", submissions=len(submissions))
        for submission in submissions:
            submission.future.set_exception(error)

    # Two batches in flight ----------------------------------------------------

    def _hand_off(self, submissions: list[_Submission], decided: _Appended) -> _InFlight | None:
        """Save a decided batch: on the committer thread if more work is
        queued (it is decided meanwhile) and the batch is large enough to be
        worth the switch, else here."""
        committer = self._committer
        if (
            committer is not None
            and self._queue
            and len(decided.commands) >= self.limits.pipelined_batch_commands_min
        ):
            save = committer.submit(self._append, decided.stored_events, decided.deadlines)
            return _InFlight(submissions, decided, save)
        try:
            stored = self._record(
                decided, lambda: self._append(decided.stored_events, decided.deadlines)
            )
        except BaseException as error:  # noqa: BLE001 - each waiting caller is told
            self._answer_error(submissions, error)
            return None
        if stored is None:
            # A version conflict: decided again, as apply_submissions does.
            self.statistics.conflicts_retried += 1
            self._write_now(submissions)
            return None
        self._answer(submissions, self._settle(stored))
        return None

    def _decide_behind(
        self, in_flight: _InFlight, submissions: list[_Submission]
    ) -> _InFlight | None:
        """Decide `submissions` on the cached aggregates, which already carry
        the batch in flight, while it commits; then settle that one, and save
        this one only if it committed: otherwise this one is decided again."""
        commands, changes = _split(submissions)
        if not self._decidable_from_cache(commands, changes):
            return self._finish_then_write(in_flight, submissions)
        try:
            decided = self._decide_batch(
                commands, changes, look_up_new_transfers=False, locked=False, behind=True
            )
        except BaseException as error:  # noqa: BLE001 - each waiting caller is told
            self._finish(in_flight, None)
            self._answer_error(submissions, error)
            return None
        if not isinstance(decided, (_Appended, list)):
            return self._finish_then_write(in_flight, submissions)
        later = decided if isinstance(decided, _Appended) else None
        if not self._finish(in_flight, later):
            # Decided on an outcome that did not happen: decide again.
            self._write_now(submissions)
            return None
        if isinstance(decided, list):
            self._answer(submissions, decided)
            return None
        return self._hand_off(submissions, decided)

    def _finish_then_write(
        self, in_flight: _InFlight, submissions: list[_Submission]
    ) -> _InFlight | None:
        self._finish(in_flight, None)
        return self._write(submissions) if submissions else None

    def _finish(self, in_flight: _InFlight, later: _Appended | None) -> bool:
        """Wait for the batch in flight, settle and answer it. False when it
        did not commit as decided (a conflict, a fault, or only its answer
        lost): then `later`, decided on top of it, is dropped from the caches."""
        appended, submissions = in_flight.appended, in_flight.submissions
        failed = in_flight.positions.exception() is not None
        if failed and later is not None:
            # Its aggregates carry both batches' changes: none of it is known.
            self._forget(later.changed, later.account_ids, later.transfer_ids)
        try:
            stored = self._record(appended, in_flight.positions.result)
        except BaseException as error:  # noqa: BLE001 - each waiting caller is told
            self._answer_error(submissions, error)
            return False
        if stored is None:
            self.statistics.conflicts_retried += 1
            self._write_now(submissions)
            return False
        self._answer(submissions, self._settle(stored, remember=not failed))
        return not failed

    def _decidable_from_cache(
        self, commands: Sequence[Sequence[Command]], changes: Sequence[AggregateChanges | None]
    ) -> bool:
        """Whether the batch can be decided without reading the store (which
        does not hold the batch in flight yet): every aggregate it reads is
        cached, and it carries no changes (their versions are read)."""
        if any(submitted is not None for submitted in changes):
            return False
        # Each account once: a batch names the same few accounts many times.
        account_ids: set[UUID] = set()
        for submission in commands:
            for command in submission:
                transfers: dict[UUID, Transfer] = {}
                if not isinstance(command, CreateTransfer):
                    for transfer_id in transfer_ids_to_load(command):
                        transfer = self._transfers.get(transfer_id)
                        if transfer is None:
                            return False
                        transfers[transfer_id] = transfer
                account_ids.update(account_ids_to_load(command, transfers))
        return all(account_id in self._accounts for account_id in account_ids)

    def _expire_due_pending_transfers(self) -> None:
        self._last_sweep = time.monotonic()
        try:
            due = self._app.ledger_recorder.select_due_pending_transfer_ids(
                self._clock.now(), self.limits.batch_size_max
            )
            if due:
                receipt = self.apply([ExpirePendingTransfer(transfer_id) for transfer_id in due])
                expired = sum(result.succeeded for result in receipt.results)
                self.statistics.pending_transfers_expired += expired
                log.info("pending_transfers_expired", count=expired)
        except _STORE_FAULTS as error:
            log.warning("expiry_sweep_failed", error_type=type(error).__name__)
        except Exception:
            log.exception("expiry_sweep_failed")

    # Deciding and saving one batch -----------------------------------------

    def apply(
        self, commands: Sequence[Command], changes: AggregateChanges | None = None
    ) -> WriteReceipt:
        """Decide and save one submission as a batch of its own."""
        _require_submission(commands, changes, self.limits.batch_size_max)
        return self.apply_submissions([commands], [changes])[0]

    def apply_submissions(
        self,
        submissions: Sequence[Sequence[Command]],
        changes: Sequence[AggregateChanges | None] | None = None,
    ) -> list[WriteReceipt]:
        """Decide and save several submissions in one batch; a linked chain never
        reaches past its submission. Only the writer thread, or a caller that
        never started it, may call this: the caches are not shared."""
        if changes is None:
            changes = [None] * len(submissions)
        if len(changes) != len(submissions):
            raise ValueError("one entry of changes per submission")
        if self.limits.decide_under_lock:
            self.statistics.batches_decided_under_lock += 1
            return self._apply_locked(submissions, changes, catch_up_moved=True)
        for attempt in range(self.limits.optimistic_attempts_max):
            # First attempt: ids of transfers being created are taken to be new
            # unless cached, saving a lookup per transfer. A successful one that
            # was not new fails its version-1 insert; a refused one is checked
            # against the store before its refusal is believed.
            tried = self._try_apply(
                submissions,
                changes,
                look_up_new_transfers=attempt > 0,
                append=self._append,
                locked=False,
            )
            if isinstance(tried, _Appended):
                return self._settle(tried)
            if tried is not None:
                return tried
            self.statistics.conflicts_retried += 1
        # Other writers keep winning the race for these aggregates. Decide
        # while holding the log's write lock: every writer inserts under it,
        # so nothing read from here on can change before this batch commits.
        self._accounts.clear()
        self._transfers.clear()
        self.statistics.batches_decided_under_lock += 1
        return self._apply_locked(submissions, changes, catch_up_moved=False)

    def _apply_locked(
        self,
        submissions: Sequence[Sequence[Command]],
        changes: Sequence[AggregateChanges | None],
        *,
        catch_up_moved: bool,
    ) -> list[WriteReceipt]:
        """Decide while holding the log's write lock: nothing can move between
        the reads and the commit, so the batch never conflicts. With
        `catch_up_moved`, only the cached aggregates another writer has moved
        are read again (the caches are otherwise trusted)."""
        appended: _Appended | None = None
        try:
            with self._app.ledger_recorder.exclusive_append() as append:
                if catch_up_moved:
                    self._catch_up_moved([command for each in submissions for command in each])
                tried = self._try_apply(
                    submissions, changes, look_up_new_transfers=True, append=append, locked=True
                )
                if tried is None:
                    raise WriterConflict("a batch decided under the write lock conflicted")
                if not isinstance(tried, _Appended):
                    return tried
                appended = tried
        except Exception:
            if appended is None:
                raise
            # The events were appended, then the transaction ended in an error:
            # the commit failed, or only its answer was lost.
            self._forget(appended.changed, appended.account_ids, appended.transfer_ids)
            positions = self._positions_if_committed(appended.stored_events)
            if positions is None:
                raise
            appended.positions = positions
        return self._settle(appended)

    def _catch_up_moved(self, commands: Sequence[Command]) -> None:
        """Bring cached aggregates these commands touch up to their stored
        version: the events another writer recorded since are applied to them."""
        cached: dict[UUID, Aggregate] = {}
        for command in commands:
            transfers: dict[UUID, Transfer] = {}
            for transfer_id in transfer_ids_to_load(command):
                transfer = self._transfers.get(transfer_id)
                if transfer is not None:
                    transfers[transfer_id] = transfer
                    cached[transfer_id] = transfer
            for account_id in account_ids_to_load(command, transfers):
                account = self._accounts.get(account_id)
                if account is not None:
                    cached[account_id] = account
        if cached:
            self._app.catch_up(list(cached.values()))

    def _append(
        self, stored_events: Sequence[StoredEvent], deadlines: PendingDeadlineChanges
    ) -> Sequence[int]:
        return (
            self._app.ledger_recorder.insert_events(stored_events, pending_deadlines=deadlines)
            or []
        )

    def _try_apply(
        self,
        submissions: Sequence[Sequence[Command]],
        changes: Sequence[AggregateChanges | None],
        *,
        look_up_new_transfers: bool,
        append: AppendEvents,
        locked: bool,
    ) -> _Appended | list[WriteReceipt] | None:
        """Decide the batch and hand its events to `append`. Receipts when it
        writes nothing; None when a stale read or a version conflict means it
        must be decided again; otherwise what was appended, to be settled
        once committed."""
        decided = self._decide_batch(
            submissions,
            changes,
            look_up_new_transfers=look_up_new_transfers,
            locked=locked,
            behind=False,
        )
        if not isinstance(decided, _Appended):
            assert not isinstance(decided, _WaitForInFlight)
            return decided
        return self._record(decided, lambda: append(decided.stored_events, decided.deadlines))

    def _decide_batch(
        self,
        submissions: Sequence[Sequence[Command]],
        changes: Sequence[AggregateChanges | None],
        *,
        look_up_new_transfers: bool,
        locked: bool,
        behind: bool,
    ) -> _Appended | list[WriteReceipt] | _WaitForInFlight | None:
        """Decide the batch, apply it to the cached aggregates and map its
        events, ready to save. Receipts when it writes nothing; None when a
        stale read means it must be decided again. `behind`: a batch is in
        flight, so a refusal, which is checked against the store, waits."""
        commands = [command for submission in submissions for command in submission]
        transfers = self._transfers_for(commands, look_up_new_transfers=look_up_new_transfers)
        accounts = self._accounts_for(commands, transfers)
        batch = LedgerBatch(accounts, transfers, self._clock.now())
        results_by_submission, outcomes = self._decide(batch, submissions, changes)
        results = [result for submitted in results_by_submission for result in submitted]
        recorded_changes = [
            submitted_changes
            for submitted_changes, outcome in zip(changes, outcomes, strict=True)
            if submitted_changes is not None and outcome is ChangesOutcome.RECORDED
        ]
        if behind and not all(result.succeeded for result in results):
            # Nothing was applied yet: decided again once the store is current.
            return _WAIT_FOR_IN_FLIGHT
        if not locked:
            stale = self._stale_reads(commands, results, accounts, transfers, look_up_new_transfers)
            if stale:
                # Nothing was applied yet: drop what was read and decide again.
                self._accounts.evict(stale)
                self._transfers.evict(stale)
                log.info("writer_stale_read", aggregates=len(stale))
                return None
        try:
            outcome = batch.finish()
        except BaseException:
            # finish() applies events to cached aggregates; half-applied copies must go.
            self._forget([], accounts.keys(), transfers.keys())
            raise
        changed: list[Aggregate] = outcome.aggregates
        if not changed and not outcome.recorded_transfers and not recorded_changes:
            if behind:
                # Its answers stand only if the batch in flight commits:
                # decided again then, so it is observed once.
                return _WAIT_FOR_IN_FLIGHT
            self._observe(commands, results, 0, 0.0)
            return [
                WriteReceipt(submitted, None, changes=submitted_outcome)
                for submitted, submitted_outcome in zip(
                    results_by_submission, outcomes, strict=True
                )
            ]
        versions_before = {
            aggregate.id: aggregate.version - len(aggregate.pending_events) for aggregate in changed
        }
        started = time.perf_counter()
        events: list[Any] = list(outcome.recorded_transfers)
        events.extend(event for aggregate in changed for event in aggregate.collect_events())
        events.extend(event for recorded in recorded_changes for event in recorded.events)
        try:
            to_stored_event = self._app.mapper.to_stored_event
            stored_events = [to_stored_event(event) for event in events]
        except BaseException:
            # Our copies carry this batch's changes, which were never saved.
            self._forget(changed, accounts.keys(), transfers.keys())
            raise
        return _Appended(
            commands=commands,
            results=results,
            results_by_submission=results_by_submission,
            outcomes=outcomes,
            changed=changed,
            versions_before=versions_before,
            recorded_changes=recorded_changes,
            recorded_transfers=outcome.recorded_transfers,
            stored_events=stored_events,
            deadlines=PendingDeadlineChanges(
                outcome.pending_deadlines_added, outcome.pending_deadlines_removed
            ),
            snapshots=self._take_snapshots(changed, versions_before, recorded_changes),
            account_ids=list(accounts),
            transfer_ids=list(transfers),
            started=started,
        )

    def _take_snapshots(
        self,
        changed: Sequence[Aggregate],
        versions_before: Mapping[UUID, int],
        recorded_changes: Sequence[AggregateChanges],
    ) -> list[Any]:
        # A snapshot only shortens loading; the batch stands without it.
        try:
            snapshots = self._app.take_due_snapshots(changed, versions_before)
            for recorded_change in recorded_changes:
                snapshots += self._app.take_due_snapshots(
                    recorded_change.aggregates, recorded_change.versions_before
                )
        except Exception:
            log.exception("writer_snapshot_failed")
            return []
        return snapshots

    def _record(self, appended: _Appended, save: Callable[[], Sequence[int]]) -> _Appended | None:
        """Run the save of a decided batch. None after a version conflict
        (someone else wrote one of its aggregates first); raises when it
        failed, unless the store holds it all the same."""
        try:
            appended.positions = save()
        except IntegrityError:
            # Our copies are stale and already carry this batch's changes:
            # drop and reload.
            self._forget(appended.changed, appended.account_ids, appended.transfer_ids)
            log.info("writer_version_conflict", commands=len(appended.commands))
            return None
        except Exception:
            # Our copies carry this batch's changes, stored or not: they go.
            # The save failed, or only its answer was lost (the connection
            # broke after the commit): the store is asked which before any
            # answer is given, and the error stands unless the batch is there.
            self._forget(appended.changed, appended.account_ids, appended.transfer_ids)
            found = self._positions_if_committed(appended.stored_events)
            if found is None:
                raise
            appended.positions = found
        except BaseException:
            self._forget(appended.changed, appended.account_ids, appended.transfer_ids)
            raise
        return appended

    def _positions_if_committed(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The positions of a batch whose save raised, if the store holds it.

        A batch is saved in one transaction, so its last event tells for all
        of them. None when it is not there, or when the store cannot say:
        the caller then raises the save's error, and is not acknowledged; a
        retry with the same idempotency key finds what a commit made, or
        makes it."""
        if not stored_events:
            return None
        try:
            position = self._app.ledger_recorder.position_of(stored_events[-1])
        except _STORE_FAULTS as error:
            log.warning(
                "writer_commit_unknown", events=len(stored_events), error_type=type(error).__name__
            )
            return None
        except Exception:
            log.exception("writer_commit_unknown", events=len(stored_events))
            return None
        if position is None:
            return None
        log.warning("writer_commit_answer_lost", events=len(stored_events), position=position)
        return list(range(position - len(stored_events) + 1, position + 1))

    def _settle(self, appended: _Appended, *, remember: bool = True) -> list[WriteReceipt]:
        """A batch known to be stored: its aggregates cached (unless a batch
        decided after it changed them and is dropped), its snapshots stored,
        its position told."""
        if remember:
            self._remember(appended.changed)
        try:
            self._app.put_snapshots(appended.snapshots)
        # A snapshot only shortens loading; the batch stands without it.
        except _STORE_FAULTS as error:
            log.warning("writer_snapshot_failed", error_type=type(error).__name__)
        except Exception:
            log.exception("writer_snapshot_failed")
        statistics = self.statistics
        statistics.batches_committed += 1
        statistics.commands_applied += len(appended.commands)
        statistics.events_written += len(appended.stored_events)
        statistics.last_batch_size = len(appended.commands)
        statistics.last_commit_s = time.perf_counter() - appended.started
        self._observe(
            appended.commands,
            appended.results,
            len(appended.stored_events),
            statistics.last_commit_s,
        )
        position = appended.positions[-1] if appended.positions else None
        if position is not None:
            self.last_position = max(self.last_position, position)
        recorded = {event.originator_id: event for event in appended.recorded_transfers}
        return [
            WriteReceipt(submitted, position, recorded, submitted_outcome)
            for submitted, submitted_outcome in zip(
                appended.results_by_submission, appended.outcomes, strict=True
            )
        ]

    def _decide(
        self,
        batch: LedgerBatch,
        submissions: Sequence[Sequence[Command]],
        changes: Sequence[AggregateChanges | None],
    ) -> tuple[list[list[CommandResult]], list[ChangesOutcome]]:
        """Each submission's results, and what becomes of its changes."""
        stale_changes = self._stale_changes(changes)
        results_by_submission: list[list[CommandResult]] = []
        outcomes: list[ChangesOutcome] = []
        for index, (submission, submitted_changes) in enumerate(
            zip(submissions, changes, strict=True)
        ):
            if index in stale_changes:
                results = [_STALE_RESULT] * len(submission)
            elif submitted_changes is not None:
                # Changes and commands go together: they are one linked chain.
                results = batch.execute_all(_linked(submission))
            else:
                results = batch.execute_all(submission)
            results_by_submission.append(results)
            outcomes.append(_changes_outcome(submitted_changes, results, index in stale_changes))
        return results_by_submission, outcomes

    def _stale_changes(self, changes: Sequence[AggregateChanges | None]) -> set[int]:
        """Submissions whose changes follow a version the store has moved past,
        or one an earlier submission of this batch builds on too (one query)."""
        wanted = {
            aggregate_id
            for submitted in changes
            if submitted is not None
            for aggregate_id in submitted.versions_before
        }
        if not wanted:
            return set()
        stored = self._app.ledger_recorder.select_versions(list(wanted))
        claimed: set[UUID] = set()
        stale: set[int] = set()
        for index, submitted in enumerate(changes):
            if submitted is None:
                continue
            versions = submitted.versions_before
            if any(
                stored.get(aggregate_id, 0) != version for aggregate_id, version in versions.items()
            ) or (claimed & versions.keys()):
                stale.add(index)
            else:
                claimed.update(versions)
        return stale

    def _observe(
        self,
        commands: Sequence[Command],
        results: Sequence[CommandResult],
        events_written: int,
        commit_s: float,
    ) -> None:
        # The batch has committed: whatever the observer does, its results stand.
        try:
            self._observer.batch_committed(commands, results, events_written, commit_s)
        except Exception:
            log.exception("writer_observer_failed")

    def _stale_reads(
        self,
        commands: Sequence[Command],
        results: Sequence[CommandResult],
        accounts: dict[UUID, Account],
        transfers: dict[UUID, Transfer],
        looked_up_new_transfers: bool,
    ) -> set[UUID]:
        """Aggregates behind refusals that the store has moved past.

        A success writes every aggregate it read, so a stale copy fails its
        insert. A refusal writes nothing: before it is believed, what it read
        is checked against the store (one query, and only when something was
        refused). So is the id of a refused new transfer that was not looked
        up: if it exists, the answer is `exists` or `idempotency_key_reused`.
        """
        versions_read: dict[UUID, int] = {}
        unverified_new: set[UUID] = set()
        for command, result in zip(commands, results, strict=True):
            if result.succeeded:
                continue
            if (
                not looked_up_new_transfers
                and isinstance(command, CreateTransfer)
                and command.transfer_id not in transfers
            ):
                unverified_new.add(command.transfer_id)
            for transfer_id in transfer_ids_to_load(command):
                if transfer_id in transfers:
                    versions_read[transfer_id] = transfers[transfer_id].version
            for account_id in account_ids_to_load(command, transfers):
                if account_id in accounts:
                    versions_read[account_id] = accounts[account_id].version
        if not versions_read and not unverified_new:
            return set()
        stored = self._app.ledger_recorder.select_versions([*versions_read, *unverified_new])
        stale = {aggregate_id for aggregate_id in unverified_new if aggregate_id in stored}
        stale.update(
            aggregate_id
            for aggregate_id, version in versions_read.items()
            if stored.get(aggregate_id) != version
        )
        return stale

    def _transfers_for(
        self, commands: Sequence[Command], *, look_up_new_transfers: bool
    ) -> dict[UUID, Transfer]:
        found: dict[UUID, Transfer] = {}
        missing: list[UUID] = []
        for command in commands:
            if not look_up_new_transfers and isinstance(command, CreateTransfer):
                cached = self._transfers.get(command.transfer_id)
                if cached is not None:
                    found[command.transfer_id] = cached
                continue
            for transfer_id in transfer_ids_to_load(command):
                cached = self._transfers.get(transfer_id)
                if cached is None:
                    missing.append(transfer_id)
                else:
                    found[transfer_id] = cached
        if missing:
            for transfer_id, transfer in self._app.load_transfers(missing).items():
                self._transfers.put(transfer_id, transfer)
                found[transfer_id] = transfer
        return found

    def _accounts_for(
        self, commands: Sequence[Command], transfers: dict[UUID, Transfer]
    ) -> dict[UUID, Account]:
        found: dict[UUID, Account] = {}
        for command in commands:
            for account_id in account_ids_to_load(command, transfers):
                if account_id in found:
                    continue
                account = self._accounts.get(account_id)
                if account is None:
                    account = self._app.load_account(account_id)
                    if account is None:
                        continue
                    self._accounts.put(account_id, account)
                found[account_id] = account
        return found

    def _remember(self, aggregates: Iterable[Aggregate]) -> None:
        for aggregate in aggregates:
            if isinstance(aggregate, Account):
                self._accounts.put(aggregate.id, aggregate)
            elif isinstance(aggregate, Transfer):
                self._transfers.put(aggregate.id, aggregate)

    def _forget(
        self,
        changed: Iterable[Aggregate],
        account_ids: Iterable[UUID],
        transfer_ids: Iterable[UUID],
    ) -> None:
        changed_ids = [aggregate.id for aggregate in changed]
        self._accounts.evict([*changed_ids, *account_ids])
        self._transfers.evict([*changed_ids, *transfer_ids])


# The event store's errors for a database that cannot answer now (a lost
# connection, a timeout, a read-only server): faults, logged in one line.
_STORE_FAULTS: Final = (OperationalError, InterfaceError, InternalError)

_STALE_RESULT = CommandResult(
    ResultCode.CONCURRENT_CHANGE,
    message="another request changed the same aggregate first; read it again and retry",
)


def _split(
    submissions: Sequence[_Submission],
) -> tuple[list[list[Command]], list[AggregateChanges | None]]:
    return (
        [submission.commands for submission in submissions],
        [submission.changes for submission in submissions],
    )


def _require_submission(
    commands: Sequence[Command], changes: AggregateChanges | None, batch_size_max: int
) -> None:
    if not commands and changes is None:
        raise ValueError("nothing to submit")
    if len(commands) > batch_size_max:
        raise ValueError(f"at most {batch_size_max} commands go in one batch")


def _linked(commands: Sequence[Command]) -> list[Command]:
    """The commands as one linked chain: all succeed or none is applied."""
    last = len(commands) - 1
    return [
        command if command.linked == (index < last) else replace(command, linked=index < last)
        for index, command in enumerate(commands)
    ]


def _changes_outcome(
    changes: AggregateChanges | None, results: Sequence[CommandResult], stale: bool
) -> ChangesOutcome:
    if changes is None:
        return ChangesOutcome.NONE
    if stale:
        return ChangesOutcome.STALE
    if all(result.succeeded for result in results):
        return ChangesOutcome.RECORDED
    return ChangesOutcome.REFUSED
