"""The group-commit writer, on the in-memory event store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from application.clock import SettableClock
from application.event_log import LedgerApplication
from application.ports.event_store import WriterObserver
from application.writer import (
    LedgerWriter,
    WriteReceipt,
    WriterLimits,
    WriterOverloaded,
    WriterStopped,
)
from domain.account import Totals
from domain.commands import Command, PostPendingTransfer
from domain.event_chain import GENESIS_HASH, chained_hash
from domain.ledger_batch import CommandResult
from domain.result_codes import ResultCode
from domain.transfer import TransferStatus
from tests.support.in_memory_recorder import InMemoryLedgerRecorder
from tests.support.ledgers import (
    EPOCH,
    LedgerHarness,
    platform_account,
    transfer,
    user_account,
)

OK = ResultCode.OK
WAIT_S = 10.0


class GatedRecorder(InMemoryLedgerRecorder):
    """An in-memory store whose inserts a test can hold back, or make fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failures_to_raise = 0

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self.entered.set()
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        if self.failures_to_raise:
            self.failures_to_raise -= 1
            raise RuntimeError("the disk is full")
        return super().insert_events(stored_events, **kwargs)

    def hold_inserts(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def wait_until_an_insert_is_held(self) -> None:
        assert self.entered.wait(WAIT_S), "the writer never tried to insert"

    def release_inserts(self) -> None:
        self.gate.set()


class Books(LedgerHarness):
    def stored_totals(self, account_id: UUID) -> Totals:
        return self.account(account_id).totals


def gated_books(
    limits: WriterLimits | None = None, observer: WriterObserver | None = None
) -> tuple[Books, GatedRecorder]:
    recorder = GatedRecorder()
    app = LedgerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        recorder_factory=lambda _factory: recorder,
    )
    clock = SettableClock(EPOCH)
    return Books(app, LedgerWriter(app, clock, limits, observer), clock), recorder


class BatchSizes:
    """The number of commands in each batch the writer decided, in order."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def batch_committed(
        self,
        commands: Sequence[Command],
        results: Sequence[CommandResult],
        events_written: int,
        commit_s: float,
    ) -> None:
        self.sizes.append(len(commands))


@pytest.fixture
def books() -> Iterator[tuple[Books, GatedRecorder]]:
    made, recorder = gated_books()
    yield made, recorder
    recorder.release_inserts()
    made.writer.stop()


def opened(books: Books, *commands: Command) -> list[UUID]:
    results = books.run(*commands)
    assert [result.code for result in results] == [OK] * len(commands)
    return [result.id for result in results if result.id is not None]


def codes(receipt: WriteReceipt) -> list[ResultCode]:
    return [result.code for result in receipt.results]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def submitted_while_held(
    writer: LedgerWriter, recorder: GatedRecorder, *submissions: Sequence[Command]
) -> list[Future[WriteReceipt]]:
    """Hold the writer inside one insert while the submissions queue up behind it,
    so that they are taken together as the next batch."""
    cash = platform_account()
    recorder.hold_inserts()
    blocker = writer.submit([cash])
    recorder.wait_until_an_insert_is_held()
    futures = [writer.submit(commands) for commands in submissions]
    recorder.release_inserts()
    assert codes(blocker.result(WAIT_S)) == [OK]
    return futures


# Batching ------------------------------------------------------------------------


def test_submissions_taken_together_get_their_own_results_in_order(
    books: tuple[Books, GatedRecorder],
) -> None:
    ledger, recorder = books
    cash, user = opened(ledger, platform_account(), user_account())
    ledger.writer.start()
    first = [transfer(cash, user, 100), transfer(user, cash, 101), transfer(user, cash, 40)]
    second = [transfer(user, cash, 61), transfer(user, cash, 60)]
    batches_before = ledger.writer.statistics.batches_committed
    futures = submitted_while_held(ledger.writer, recorder, first, second)
    receipts = [future.result(WAIT_S) for future in futures]
    assert ledger.writer.statistics.batches_committed == batches_before + 2
    assert ledger.writer.statistics.last_batch_size == 5
    assert codes(receipts[0]) == [OK, ResultCode.INSUFFICIENT_FUNDS, OK]
    assert [result.id for result in receipts[0].results] == [
        first[0].transfer_id,
        None,
        first[2].transfer_id,
    ]
    assert codes(receipts[1]) == [ResultCode.INSUFFICIENT_FUNDS, OK]
    assert receipts[1].results[1].id == second[1].transfer_id
    assert receipts[0].position == receipts[1].position == ledger.events_written()
    assert ledger.stored_totals(user) == Totals(debits_posted=100, credits_posted=100)


def test_a_chain_left_open_by_one_submission_does_not_reach_into_the_next(
    books: tuple[Books, GatedRecorder],
) -> None:
    ledger, recorder = books
    cash, alice, bob = opened(ledger, platform_account(), user_account(), user_account())
    ledger.writer.start()
    alices_chain = [transfer(alice, cash, 1_000, linked=True)]
    bobs_deposit = [transfer(cash, bob, 500)]
    futures = submitted_while_held(ledger.writer, recorder, alices_chain, bobs_deposit)
    alices, bobs = (future.result(WAIT_S) for future in futures)
    assert not alices.results[0].succeeded
    assert codes(bobs) == [OK]
    assert ledger.stored_totals(bob) == Totals(credits_posted=500)


def test_a_submission_larger_than_a_batch_is_refused() -> None:
    ledger, _ = gated_books(WriterLimits(batch_size_max=3, queued_commands_max=10))
    ledger.writer.start()
    try:
        with pytest.raises(ValueError, match="at most 3"):
            ledger.writer.submit([user_account() for _ in range(4)])
        receipt = ledger.writer.execute([user_account() for _ in range(3)])
        assert codes(receipt) == [OK] * 3
    finally:
        ledger.writer.stop()


def test_an_empty_submission_is_refused(books: tuple[Books, GatedRecorder]) -> None:
    ledger, _ = books
    ledger.writer.start()
    with pytest.raises(ValueError, match="nothing"):
        ledger.writer.submit([])


def test_queued_submissions_are_batched_without_passing_the_batch_size() -> None:
    batches = BatchSizes()
    ledger, recorder = gated_books(
        WriterLimits(batch_size_max=3, queued_commands_max=10), observer=batches
    )
    ledger.writer.start()
    try:
        sizes = batches.sizes
        futures = submitted_while_held(
            ledger.writer,
            recorder,
            [user_account(), user_account()],
            [user_account(), user_account()],
            [user_account()],
        )
        for future in futures:
            assert set(codes(future.result(WAIT_S))) == {OK}
        assert sizes[-2:] == [2, 3]
        assert max(sizes) <= 3
    finally:
        recorder.release_inserts()
        ledger.writer.stop()


def test_a_full_queue_refuses_more_work_as_overloaded() -> None:
    ledger, recorder = gated_books(WriterLimits(batch_size_max=2, queued_commands_max=4))
    ledger.writer.start()
    try:
        recorder.hold_inserts()
        held = ledger.writer.submit([user_account()])
        recorder.wait_until_an_insert_is_held()
        queued = [ledger.writer.submit([user_account(), user_account()]) for _ in range(2)]
        with pytest.raises(WriterOverloaded):
            ledger.writer.submit([user_account()])
        recorder.release_inserts()
        for future in [held, *queued]:
            assert set(codes(future.result(WAIT_S))) == {OK}
    finally:
        recorder.release_inserts()
        ledger.writer.stop()


@pytest.mark.parametrize(
    "limits",
    [
        {"batch_size_max": 0},
        {"batch_size_max": 10, "queued_commands_max": 5},
        {"account_cache_size_max": 0},
        {"transfer_cache_size_max": 0},
    ],
)
def test_writer_limits_that_cannot_work_are_refused(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WriterLimits(**limits)


# Lifecycle -------------------------------------------------------------------------


def test_a_writer_that_was_never_started_refuses_submissions(
    books: tuple[Books, GatedRecorder],
) -> None:
    ledger, _ = books
    with pytest.raises(WriterStopped):
        ledger.writer.submit([user_account()])


def test_a_stopped_writer_refuses_submissions(books: tuple[Books, GatedRecorder]) -> None:
    ledger, _ = books
    ledger.writer.start()
    assert codes(ledger.writer.execute([user_account()])) == [OK]
    ledger.writer.stop()
    assert not ledger.writer.is_running
    with pytest.raises(WriterStopped):
        ledger.writer.submit([user_account()])


def test_a_receipt_carries_the_position_of_its_last_event_or_none(
    books: tuple[Books, GatedRecorder],
) -> None:
    ledger, _ = books
    cash, user = opened(ledger, platform_account(), user_account())
    written = ledger.writer.apply([transfer(cash, user, 100)])
    assert written.position == ledger.events_written()
    refused = ledger.writer.apply([transfer(user, cash, 1_000)])
    assert refused.position is None
    assert codes(refused) == [ResultCode.INSUFFICIENT_FUNDS]


# Failures and conflicts ------------------------------------------------------------


def test_a_failed_insert_leaves_no_trace_in_the_writers_cache(
    books: tuple[Books, GatedRecorder],
) -> None:
    ledger, recorder = books
    cash, user = opened(ledger, platform_account(), user_account())
    deposit = transfer(cash, user, 100)
    recorder.failures_to_raise = 1
    with pytest.raises(RuntimeError, match="disk is full"):
        ledger.writer.apply([deposit])
    assert ledger.stored_totals(user) == Totals()
    assert not ledger.has_transfer(deposit.transfer_id)
    # Had the cache kept the unsaved deposit, this would pass the funds check.
    assert codes(ledger.writer.apply([transfer(user, cash, 1)])) == [ResultCode.INSUFFICIENT_FUNDS]
    assert codes(ledger.writer.apply([deposit])) == [OK]
    assert ledger.stored_totals(user) == Totals(credits_posted=100)
    assert ledger.stored_totals(cash) == Totals(debits_posted=100)


def test_a_failed_insert_fails_every_submission_of_its_batch_and_the_writer_goes_on(
    books: tuple[Books, GatedRecorder],
) -> None:
    ledger, recorder = books
    cash, user = opened(ledger, platform_account(), user_account())
    ledger.writer.start()
    recorder.failures_to_raise = 1
    failed = ledger.writer.submit([transfer(cash, user, 100)])
    with pytest.raises(RuntimeError):
        failed.result(WAIT_S)
    assert codes(ledger.writer.execute([transfer(cash, user, 7)])) == [OK]
    assert ledger.stored_totals(user) == Totals(credits_posted=7)


def two_writers_sharing_a_user(amounts: tuple[int, int]) -> tuple[Books, LedgerWriter, UUID, UUID]:
    """Two writers (two service processes) on one store. Both have the user
    account cached; the second then moves it on, so the first one's copy is stale."""
    ledger, _ = gated_books()
    other = LedgerWriter(ledger.app, ledger.clock)
    cash, user = opened(ledger, platform_account(), user_account())
    assert codes(ledger.writer.apply([transfer(cash, user, amounts[0])])) == [OK]
    assert codes(other.apply([transfer(cash, user, amounts[1])])) == [OK]
    return ledger, other, cash, user


def test_a_writer_with_a_stale_cache_reloads_and_decides_again() -> None:
    ledger, other, cash, user = two_writers_sharing_a_user((10, 20))
    retried_before = ledger.writer.statistics.conflicts_retried
    assert codes(ledger.writer.apply([transfer(user, cash, 5)])) == [OK]
    assert ledger.writer.statistics.conflicts_retried == retried_before + 1
    assert ledger.stored_totals(user) == Totals(debits_posted=5, credits_posted=30)
    # Now the other writer's copy is stale: it must not spend what was spent.
    assert codes(other.apply([transfer(user, cash, 26)])) == [ResultCode.INSUFFICIENT_FUNDS]
    assert codes(other.apply([transfer(user, cash, 25)])) == [OK]
    assert ledger.stored_totals(user) == Totals(debits_posted=30, credits_posted=30)


def test_a_writer_with_a_stale_cache_does_not_refuse_what_the_stored_totals_allow() -> None:
    ledger, _, cash, user = two_writers_sharing_a_user((10, 20))
    # The store says the user holds 30; this writer's cached copy says 10.
    assert codes(ledger.writer.apply([transfer(user, cash, 25)])) == [OK]
    assert ledger.stored_totals(user) == Totals(debits_posted=25, credits_posted=30)


def test_a_repeated_key_is_found_by_a_writer_that_never_cached_the_transfer() -> None:
    ledger, _ = gated_books()
    cash, user = opened(ledger, platform_account(), user_account())
    deposit = transfer(cash, user, 100, key="deposit-1")
    assert codes(ledger.writer.apply([deposit])) == [OK]
    restarted = LedgerWriter(ledger.app, ledger.clock)
    again = restarted.apply([deposit])
    assert codes(again) == [ResultCode.EXISTS]
    assert again.results[0].id == deposit.transfer_id
    reused = restarted.apply([transfer(cash, user, 99, key="deposit-1")])
    assert codes(reused) == [ResultCode.IDEMPOTENCY_KEY_REUSED]
    assert ledger.stored_totals(user) == Totals(credits_posted=100)


def test_a_retry_after_a_restart_returns_exists_even_when_it_could_not_apply_again() -> None:
    ledger, _ = gated_books()
    cash, user = opened(ledger, platform_account(), user_account())
    assert codes(ledger.writer.apply([transfer(cash, user, 100)])) == [OK]
    spend = transfer(user, cash, 100, key="spend-1")
    assert codes(ledger.writer.apply([spend])) == [OK]
    restarted = LedgerWriter(ledger.app, ledger.clock)
    # The user holds nothing now, so deciding the request afresh would refuse it.
    again = restarted.apply([spend])
    assert codes(again) == [ResultCode.EXISTS]
    other_details = restarted.apply([transfer(user, cash, 5, key="spend-1")])
    assert codes(other_details) == [ResultCode.IDEMPOTENCY_KEY_REUSED]


def test_a_writer_whose_caches_hold_one_aggregate_stays_correct() -> None:
    ledger, _ = gated_books(WriterLimits(account_cache_size_max=1, transfer_cache_size_max=1))
    cash, alice, bob = opened(ledger, platform_account(), user_account(), user_account())
    holds = [transfer(cash, alice, 50, pending=True), transfer(cash, bob, 70, pending=True)]
    assert codes(ledger.writer.apply(holds)) == [OK, OK]
    assert codes(ledger.writer.apply([transfer(cash, alice, 10)])) == [OK]
    assert codes(ledger.writer.apply([PostPendingTransfer(holds[0].transfer_id)])) == [OK]
    assert codes(ledger.writer.apply([PostPendingTransfer(holds[1].transfer_id, 20)])) == [OK]
    assert codes(ledger.writer.apply([holds[0]])) == [ResultCode.EXISTS]
    assert ledger.stored_totals(alice) == Totals(credits_posted=60)
    assert ledger.stored_totals(bob) == Totals(credits_posted=20)
    assert ledger.stored_totals(cash) == Totals(debits_posted=80)


# The expiry sweep ---------------------------------------------------------------------


def test_the_writer_expires_holds_whose_deadline_has_passed() -> None:
    ledger, recorder = gated_books(WriterLimits(expiry_sweep_interval_s=0.01))
    cash, user = opened(ledger, platform_account(), user_account())
    assert codes(ledger.writer.apply([transfer(cash, user, 1_000)])) == [OK]
    due = transfer(user, cash, 300, pending=True, timeout_s=60)
    later = transfer(user, cash, 200, pending=True, timeout_s=600)
    posted = transfer(user, cash, 100, pending=True, timeout_s=60)
    untimed = transfer(user, cash, 50, pending=True)
    results = ledger.writer.apply(
        [due, later, posted, untimed, PostPendingTransfer(posted.transfer_id)]
    )
    assert codes(results) == [OK] * 5
    ledger.writer.start()
    try:
        ledger.clock.advance(timedelta(seconds=61))
        wait_for(
            lambda: ledger.writer.statistics.pending_transfers_expired >= 1, "the expiry sweep"
        )
        # Give the sweep a few more rounds to show it expires nothing else.
        time.sleep(0.1)
    finally:
        ledger.writer.stop()
        recorder.release_inserts()
    assert ledger.writer.statistics.pending_transfers_expired == 1
    assert ledger.transfer(due.transfer_id).status is TransferStatus.EXPIRED
    assert ledger.transfer(later.transfer_id).status is TransferStatus.PENDING
    assert ledger.transfer(untimed.transfer_id).status is TransferStatus.PENDING
    assert ledger.transfer(posted.transfer_id).status is TransferStatus.POSTED
    assert ledger.stored_totals(user) == Totals(
        debits_pending=250, debits_posted=100, credits_posted=1_000
    )


def test_the_deadline_index_lists_only_holds_still_pending_and_due() -> None:
    ledger, recorder = gated_books()
    cash, user = opened(ledger, platform_account(), user_account())
    holds = [transfer(cash, user, 10 + index, pending=True, timeout_s=60) for index in range(3)]
    ledger.writer.apply(holds)
    ledger.writer.apply([PostPendingTransfer(holds[1].transfer_id)])
    assert recorder.select_due_pending_transfer_ids(EPOCH + timedelta(seconds=59), 10) == []
    due = recorder.select_due_pending_transfer_ids(EPOCH + timedelta(seconds=60), 10)
    assert set(due) == {holds[0].transfer_id, holds[2].transfer_id}
    assert len(recorder.select_due_pending_transfer_ids(EPOCH + timedelta(days=1), 1)) == 1


# The hash chain ------------------------------------------------------------------------


def recomputed_hashes(recorder: InMemoryLedgerRecorder) -> list[bytes]:
    hashes: list[bytes] = []
    previous = GENESIS_HASH
    for notification in recorder.select_notifications(start=1, limit=10**6):
        previous = chained_hash(
            previous,
            UUID(str(notification.originator_id)),
            notification.originator_version,
            notification.topic,
            notification.state,
        )
        hashes.append(previous)
    return hashes


def test_every_stored_event_carries_a_hash_chained_to_the_one_before() -> None:
    ledger, recorder = gated_books()
    cash, user = opened(ledger, platform_account(), user_account())
    ledger.writer.apply([transfer(cash, user, 100), transfer(cash, user, 5, pending=True)])
    ledger.writer.apply([transfer(user, cash, 30)])
    assert ledger.events_written() > 5
    assert len(recorder.event_hashes) == ledger.events_written()
    assert recorder.event_hashes == recomputed_hashes(recorder)
    assert len(set(recorder.event_hashes)) == len(recorder.event_hashes)


def test_a_refused_or_failed_batch_does_not_extend_the_hash_chain(
    books: tuple[Books, GatedRecorder],
) -> None:
    ledger, recorder = books
    cash, user = opened(ledger, platform_account(), user_account())
    chain_before = list(recorder.event_hashes)
    ledger.writer.apply([transfer(user, cash, 1)])
    recorder.failures_to_raise = 1
    with pytest.raises(RuntimeError):
        ledger.writer.apply([transfer(cash, user, 1)])
    assert recorder.event_hashes == chain_before
    ledger.writer.apply([transfer(cash, user, 1)])
    assert recorder.event_hashes[: len(chain_before)] == chain_before
    assert recorder.event_hashes == recomputed_hashes(recorder)


def test_a_writer_deciding_under_the_lock_reads_again_only_what_another_moved() -> None:
    ledger, other, cash, user = two_writers_sharing_a_user((10, 20))
    locked = LedgerWriter(ledger.app, ledger.clock, WriterLimits(decide_under_lock=True))
    # Its first batch reads the user (30 stored) and caches it.
    assert codes(locked.apply([transfer(user, cash, 5)])) == [OK]
    # Another writer moves the user on; the cached copy is now stale.
    assert codes(other.apply([transfer(user, cash, 20)])) == [OK]
    # Deciding under the lock, it checks the copy first: no conflict, no retry,
    # and it does not spend what the other writer spent.
    assert codes(locked.apply([transfer(user, cash, 6)])) == [ResultCode.INSUFFICIENT_FUNDS]
    assert codes(locked.apply([transfer(user, cash, 5)])) == [OK]
    assert locked.statistics.conflicts_retried == 0
    assert locked.statistics.batches_decided_under_lock == 3
    assert ledger.stored_totals(user) == Totals(debits_posted=30, credits_posted=30)
