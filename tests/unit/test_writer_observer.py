"""The writer tells its observer of every batch, once, after it has committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from application.clock import SettableClock
from application.event_log import LedgerApplication
from application.ports.event_store import WriterObserver
from application.writer import LedgerWriter
from domain.commands import Command
from domain.ledger_batch import CommandResult
from domain.result_codes import ResultCode
from tests.support.in_memory_recorder import InMemoryLedgerRecorder
from tests.support.ledgers import EPOCH, LedgerHarness, platform_account, transfer, user_account


@dataclass
class RecordedBatch:
    commands: int
    codes: list[ResultCode]
    events_written: int
    commit_s: float


@dataclass
class RecordingObserver:
    batches: list[RecordedBatch] = field(default_factory=list)
    fails: bool = False

    def batch_committed(
        self,
        commands: Sequence[Command],
        results: Sequence[CommandResult],
        events_written: int,
        commit_s: float,
    ) -> None:
        self.batches.append(
            RecordedBatch(len(commands), [r.code for r in results], events_written, commit_s)
        )
        if self.fails:
            raise RuntimeError("the observer is broken")


def observed_ledger(observer: WriterObserver) -> LedgerHarness:
    app = LedgerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        recorder_factory=lambda _factory: InMemoryLedgerRecorder(),
    )
    clock = SettableClock(EPOCH)
    return LedgerHarness(app, LedgerWriter(app, clock, observer=observer), clock)


def test_each_batch_is_reported_once_with_its_results_events_and_commit_time() -> None:
    observer = RecordingObserver()
    books = observed_ledger(observer)
    cash, alice = platform_account(), user_account()
    books.run(cash, alice)
    books.run(
        transfer(cash.account_id, alice.account_id, 500),
        transfer(alice.account_id, cash.account_id, 10_000),
    )

    opened, moved = observer.batches
    assert (opened.commands, opened.codes) == (2, [ResultCode.OK, ResultCode.OK])
    assert opened.events_written == 2
    assert moved.codes == [ResultCode.OK, ResultCode.INSUFFICIENT_FUNDS]
    assert moved.events_written >= 1
    assert moved.commit_s > 0


def test_a_batch_that_writes_nothing_is_reported_too() -> None:
    observer = RecordingObserver()
    books = observed_ledger(observer)
    cash, alice = platform_account(), user_account()
    books.run(cash, alice)
    books.run(transfer(alice.account_id, cash.account_id, 100))

    refused = observer.batches[-1]
    assert refused.codes == [ResultCode.INSUFFICIENT_FUNDS]
    assert (refused.events_written, refused.commit_s) == (0, 0.0)


def test_a_failing_observer_does_not_undo_or_fail_a_committed_batch() -> None:
    books = observed_ledger(RecordingObserver(fails=True))
    cash, alice = platform_account(), user_account()

    results = books.run(cash, alice)

    assert [result.code for result in results] == [ResultCode.OK, ResultCode.OK]
    assert books.account(alice.account_id).id == alice.account_id
