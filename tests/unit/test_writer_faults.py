"""The writer when its store fails: only what is stored is acknowledged.

A save whose answer was lost (the connection broke after the commit) is read
back before it is answered. A save that failed, or whose fate the store
cannot tell, raises its error: nothing is acknowledged, and a retry with the
same idempotency key lands exactly once. A caller that stops waiting never
stalls the writer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError, StoredEvent

from application.clock import SettableClock
from application.event_log import LedgerApplication
from application.ledger_use_cases import LedgerService
from application.ports.event_store import AppendEvents
from application.writer import LedgerWriter, WriteReceipt, WriterLimits, WriterTimeout
from domain.account import Totals
from domain.commands import Command
from domain.result_codes import ResultCode
from tests.support.in_memory_recorder import InMemoryLedgerRecorder
from tests.support.ledgers import EPOCH, LedgerHarness, platform_account, transfer, user_account

OK, EXISTS = ResultCode.OK, ResultCode.EXISTS
# A bound on waiting for what must happen, not a measure of speed.
WAIT_S = 10.0
# The writer's timeout in the tests of a caller that gives up: short, so
# the test does not wait; what it asserts holds for any value.
SHORT_SUBMIT_TIMEOUT_S = 0.05


class Fault(Enum):
    NONE = "none"
    # The save never reached the database, or was rolled back.
    BEFORE_COMMIT = "before_commit"
    # The save committed; its answer never came back.
    ANSWER_LOST = "answer_lost"


def _connection_lost() -> OperationalError:
    return OperationalError("server closed the connection unexpectedly")


class FaultyRecorder(InMemoryLedgerRecorder):
    """An in-memory store whose next commit fails as a database's does (once):
    a save's own, or, under the write lock, the transaction's at its end. Its
    saves can be held, and it may be unable to say what it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.fault = Fault.NONE
        self.lookups_fail = False
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self._locked = False

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self.entered.set()
        assert self.gate.wait(WAIT_S), "the test never let the save go on"
        if self._locked:
            return super().insert_events(stored_events, **kwargs)
        fault = self._take_fault()
        if fault is Fault.BEFORE_COMMIT:
            raise _connection_lost()
        positions = super().insert_events(stored_events, **kwargs)
        if fault is Fault.ANSWER_LOST:
            raise _connection_lost()
        return positions

    @contextmanager
    def exclusive_append(self) -> Iterator[AppendEvents]:
        # What is appended under the lock is undone if the context ends in
        # an error (the port's promise): that is a failed commit.
        with super().exclusive_append() as append:
            self._locked = True
            try:
                yield append
            finally:
                self._locked = False
            fault = self._take_fault()
            if fault is Fault.BEFORE_COMMIT:
                raise _connection_lost()
        if fault is Fault.ANSWER_LOST:
            raise _connection_lost()

    def _take_fault(self) -> Fault:
        fault, self.fault = self.fault, Fault.NONE
        return fault

    def position_of(self, stored_event: StoredEvent) -> int | None:
        if self.lookups_fail:
            raise _connection_lost()
        return super().position_of(stored_event)

    def hold_saves(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def wait_until_a_save_is_held(self) -> None:
        assert self.entered.wait(WAIT_S), "the writer never tried to save"


def faulty_books(limits: WriterLimits | None = None) -> tuple[LedgerHarness, FaultyRecorder]:
    recorder = FaultyRecorder()
    app = LedgerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        recorder_factory=lambda _factory: recorder,
    )
    clock = SettableClock(EPOCH)
    return LedgerHarness(app, LedgerWriter(app, clock, limits), clock), recorder


@pytest.fixture(params=[False, True], ids=["optimistic", "under_lock"])
def books(request: pytest.FixtureRequest) -> Iterator[tuple[LedgerHarness, FaultyRecorder]]:
    made, recorder = faulty_books(WriterLimits(decide_under_lock=request.param))
    yield made, recorder
    recorder.gate.set()
    made.writer.stop()


def codes(receipt: WriteReceipt) -> list[ResultCode]:
    return [result.code for result in receipt.results]


def opened(ledger: LedgerHarness, *commands: Command) -> list[Any]:
    results = ledger.run(*commands)
    assert [result.code for result in results] == [OK] * len(commands)
    return [result.id for result in results]


def balance_totals(ledger: LedgerHarness, account_id: Any) -> Totals:
    return ledger.account(account_id).totals


# Saves that fail, or lose their answer ----------------------------------------------


def test_a_save_whose_answer_was_lost_after_its_commit_is_acknowledged(
    books: tuple[LedgerHarness, FaultyRecorder],
) -> None:
    ledger, recorder = books
    cash, user = opened(ledger, platform_account(), user_account())
    deposit = transfer(cash, user, 100)
    recorder.fault = Fault.ANSWER_LOST
    receipt = ledger.writer.apply([deposit])
    assert codes(receipt) == [OK]
    assert receipt.position == ledger.events_written()
    assert ledger.writer.last_position == receipt.position
    assert balance_totals(ledger, user) == Totals(credits_posted=100)
    # What the writer keeps in its caches is what is stored: it spends the
    # deposit once, and no more.
    assert codes(ledger.writer.apply([transfer(user, cash, 100)])) == [OK]
    assert codes(ledger.writer.apply([transfer(user, cash, 1)])) == [ResultCode.INSUFFICIENT_FUNDS]
    assert codes(ledger.writer.apply([deposit])) == [EXISTS]
    assert balance_totals(ledger, user) == Totals(debits_posted=100, credits_posted=100)


def test_a_save_that_failed_is_not_acknowledged_and_its_retry_lands_once(
    books: tuple[LedgerHarness, FaultyRecorder],
) -> None:
    ledger, recorder = books
    cash, user = opened(ledger, platform_account(), user_account())
    deposit = transfer(cash, user, 100)
    events_before = ledger.events_written()
    recorder.fault = Fault.BEFORE_COMMIT
    with pytest.raises(OperationalError):
        ledger.writer.apply([deposit])
    assert ledger.events_written() == events_before
    assert ledger.writer.last_position == events_before
    assert not ledger.has_transfer(deposit.transfer_id)
    assert codes(ledger.writer.apply([transfer(user, cash, 1)])) == [ResultCode.INSUFFICIENT_FUNDS]
    assert codes(ledger.writer.apply([deposit])) == [OK]
    assert balance_totals(ledger, user) == Totals(credits_posted=100)


def test_when_the_store_cannot_say_the_error_stands_and_a_retry_finds_the_transfer(
    books: tuple[LedgerHarness, FaultyRecorder],
) -> None:
    ledger, recorder = books
    cash, user = opened(ledger, platform_account(), user_account())
    deposit = transfer(cash, user, 100)
    recorder.fault = Fault.ANSWER_LOST
    recorder.lookups_fail = True
    with pytest.raises(OperationalError):
        ledger.writer.apply([deposit])
    recorder.lookups_fail = False
    # It was stored all the same: the retry finds it, and moves nothing more.
    assert codes(ledger.writer.apply([deposit])) == [EXISTS]
    assert balance_totals(ledger, user) == Totals(credits_posted=100)
    assert balance_totals(ledger, cash) == Totals(debits_posted=100)


# Callers that stop waiting ------------------------------------------------------------


def test_a_caller_that_gave_up_before_its_batch_began_is_not_run() -> None:
    ledger, recorder = faulty_books()
    cash, user = opened(ledger, platform_account(), user_account())
    ledger.writer.start()
    recorder.hold_saves()
    blocker = ledger.writer.submit([platform_account()])
    recorder.wait_until_a_save_is_held()
    deposit = transfer(cash, user, 100)
    abandoned = ledger.writer.submit([deposit])
    assert abandoned.cancel()
    recorder.gate.set()
    assert codes(blocker.result(WAIT_S)) == [OK]
    assert codes(ledger.writer.execute([transfer(cash, user, 7)])) == [OK]
    assert ledger.writer.is_running
    assert not ledger.has_transfer(deposit.transfer_id)
    ledger.writer.stop()


def test_a_caller_that_stops_waiting_gets_a_timeout_and_the_writer_goes_on() -> None:
    ledger, recorder = faulty_books(WriterLimits(submit_timeout_s=SHORT_SUBMIT_TIMEOUT_S))
    cash, user = opened(ledger, platform_account(), user_account())
    ledger.writer.start()
    service = LedgerService(ledger.app, ledger.writer)
    deposit = transfer(cash, user, 100)
    payment = transfer(cash, user, 5)
    recorder.hold_saves()
    # Waiting on the event loop: the wait is cancelled when it times out.
    with pytest.raises(WriterTimeout):
        asyncio.run(service.execute_async([deposit]))
    recorder.wait_until_a_save_is_held()
    # Waiting in a thread: this one is still queued when it times out.
    with pytest.raises(WriterTimeout):
        ledger.writer.execute([payment])
    recorder.gate.set()
    # The writer outlived both; each retry with the same key lands once.
    assert codes(ledger.writer.submit([deposit]).result(WAIT_S)) in ([OK], [EXISTS])
    assert codes(ledger.writer.submit([payment]).result(WAIT_S)) in ([OK], [EXISTS])
    assert ledger.writer.is_running
    assert balance_totals(ledger, user) == Totals(credits_posted=105)
    ledger.writer.stop()
