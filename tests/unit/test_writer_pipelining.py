"""Two batches in flight: the next batch is decided while the last one commits.

Its answers still go out in commit order, a batch decided on the outcome of
one that then fails is decided again (never acknowledged on what did not
happen), and a lone submission is saved at once, on the writer's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from application.clock import SettableClock
from application.event_log import LedgerApplication
from application.writer import LedgerWriter, WriteReceipt, WriterLimits
from domain.commands import Command
from domain.result_codes import ResultCode
from tests.support.in_memory_recorder import InMemoryLedgerRecorder
from tests.support.ledgers import EPOCH, LedgerHarness, platform_account, transfer, user_account

OK = ResultCode.OK
# A bound on waiting for what must happen, not a measure of speed.
WAIT_S = 10.0
COMMIT_THREAD_PREFIX = "ledger-writer-commit"


class WatchedRecorder(InMemoryLedgerRecorder):
    """An in-memory store that can hold its next insert, fail a chosen one,
    and says which thread made each."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.insert_threads: list[str] = []
        self.inserts = 0
        self.failing_insert: int | None = None

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self.inserts += 1
        number = self.inserts
        self.insert_threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        if number == self.failing_insert:
            raise RuntimeError("the disk is full")
        return super().insert_events(stored_events, **kwargs)

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def wait_until_held(self) -> None:
        assert self.entered.wait(WAIT_S), "the writer never tried to insert"


def watched_books(limits: WriterLimits | None = None) -> tuple[LedgerHarness, WatchedRecorder]:
    recorder = WatchedRecorder()
    app = LedgerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        recorder_factory=lambda _factory: recorder,
    )
    clock = SettableClock(EPOCH)
    return LedgerHarness(app, LedgerWriter(app, clock, limits), clock), recorder


def queued_behind_a_held_insert(
    books: LedgerHarness, recorder: WatchedRecorder, *submissions: Sequence[Command]
) -> list[Future[WriteReceipt]]:
    """Hold the writer in one insert while the submissions queue up behind it,
    so that the writer finds more work queued after each of them."""
    recorder.hold()
    blocker = books.writer.submit([platform_account()])
    recorder.wait_until_held()
    futures = [books.writer.submit(commands) for commands in submissions]
    recorder.gate.set()
    assert [result.code for result in blocker.result(WAIT_S).results] == [OK]
    return futures


# Every batch large enough to be saved on the committer thread.
PIPELINED = WriterLimits(batch_size_max=1, pipelined_batch_commands_min=1)


def test_batches_saved_behind_one_another_answer_in_commit_order() -> None:
    books, recorder = watched_books(PIPELINED)
    (cash,) = books.run(platform_account(key="cash"))
    (user,) = books.run(user_account(key="user"))
    assert cash.id is not None and user.id is not None
    cash_id, user_id = cash.id, user.id
    books.writer.start()
    try:
        amounts = range(1, 9)
        futures = queued_behind_a_held_insert(
            books, recorder, *([transfer(cash_id, user_id, amount)] for amount in amounts)
        )
        receipts = [future.result(WAIT_S) for future in futures]
    finally:
        books.writer.stop()
    assert all(receipt.results[0].code is OK for receipt in receipts)
    positions = [receipt.position or 0 for receipt in receipts]
    assert 0 not in positions
    assert positions == sorted(positions)
    # The committer saved some batches while the writer decided the next.
    assert any(name.startswith(COMMIT_THREAD_PREFIX) for name in recorder.insert_threads)
    assert books.account(user_id).totals.credits_posted == sum(amounts)


def test_a_batch_decided_on_one_that_fails_is_decided_again() -> None:
    books, recorder = watched_books(PIPELINED)
    (cash,) = books.run(platform_account(key="cash"))
    (user,) = books.run(user_account(key="user"))
    assert cash.id is not None and user.id is not None
    cash_id, user_id = cash.id, user.id
    books.writer.start()
    try:
        # The deposit's save fails; the withdrawal after it was decided on the
        # deposit's money (behind it, or again after it): only the store's
        # state may answer it, and that holds nothing for the user.
        recorder.failing_insert = recorder.inserts + 2
        deposit, withdrawal, tail = queued_behind_a_held_insert(
            books,
            recorder,
            [transfer(cash_id, user_id, 100)],
            [transfer(user_id, cash_id, 100)],
            [transfer(cash_id, user_id, 7)],
        )
        with pytest.raises(RuntimeError, match="disk is full"):
            deposit.result(WAIT_S)
        assert withdrawal.result(WAIT_S).results[0].code is ResultCode.INSUFFICIENT_FUNDS
        assert tail.result(WAIT_S).results[0].code is OK
    finally:
        books.writer.stop()
    totals = books.account(user_id).totals
    assert (totals.credits_posted, totals.debits_posted) == (7, 0)


def test_a_lone_submission_is_saved_at_once_on_the_writer_thread() -> None:
    # The writer would otherwise sleep an hour before it looks at its queue
    # again: a lone submission is taken as it arrives, without a window.
    books, recorder = watched_books(WriterLimits(expiry_sweep_interval_s=3600.0))
    books.writer.start()
    try:
        receipt = books.writer.submit([platform_account()]).result(WAIT_S)
    finally:
        books.writer.stop()
    assert receipt.results[0].code is OK
    assert recorder.insert_threads == ["ledger-writer"]


def test_one_batch_in_flight_saves_every_batch_on_the_writer_thread() -> None:
    books, recorder = watched_books(
        WriterLimits(batch_size_max=1, batches_in_flight_max=1, pipelined_batch_commands_min=1)
    )
    books.writer.start()
    try:
        futures = queued_behind_a_held_insert(
            books, recorder, [platform_account(key="a")], [platform_account(key="b")]
        )
        assert all(future.result(WAIT_S).results[0].code is OK for future in futures)
    finally:
        books.writer.stop()
    assert set(recorder.insert_threads) == {"ledger-writer"}


def test_batches_under_the_pipelined_size_are_saved_on_the_writer_thread() -> None:
    books, recorder = watched_books(WriterLimits(batch_size_max=1, pipelined_batch_commands_min=2))
    books.writer.start()
    try:
        futures = queued_behind_a_held_insert(
            books, recorder, [platform_account(key="a")], [platform_account(key="b")]
        )
        assert all(future.result(WAIT_S).results[0].code is OK for future in futures)
    finally:
        books.writer.stop()
    assert set(recorder.insert_threads) == {"ledger-writer"}


def test_batches_in_flight_are_one_or_two() -> None:
    with pytest.raises(ValueError, match="batches_in_flight_max"):
        WriterLimits(batches_in_flight_max=3)
