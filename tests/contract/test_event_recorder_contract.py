"""The LedgerRecorder port: one contract, held by the PostgreSQL recorder and
the in-memory one the unit tests run on.

A subclass gives the `recorder` fixture; everything else is the same for
both. What is held here is what the writer relies on: positions in save
order, a save of a stored version refused whole, reads in version order,
the pending-deadline index kept beside the events, and the write lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment

from application.ports.event_store import LedgerRecorder, PendingDeadlineChanges
from interface.adapters.persistence.database import eventsourcing_environment
from interface.adapters.persistence.postgres_recorder import HashChainedPostgresRecorder
from tests.support.in_memory_recorder import InMemoryLedgerRecorder
from tests.support.ledgers import EPOCH

TOPIC = "tests.contract:Noted"
# Two connections: one holding the write lock, one trying to write past it.
POOL_SIZE = 2
# A bound on waiting for what must happen, not a measure of speed.
WAIT_S = 30.0
# How long a blocked insert is watched to stay blocked; its end proves nothing
# is wrong, so a slow machine cannot fail the test.
BLOCKED_WATCH_S = 0.3


class Failure(Exception):
    """Raised inside exclusive_append to end it with an error."""


def stored(originator_id: UUID, version: int, state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(
        originator_id=originator_id, originator_version=version, topic=TOPIC, state=state
    )


def history(originator_id: UUID, versions: int) -> list[StoredEvent]:
    return [
        stored(originator_id, version, f'{{"n":{version}}}'.encode())
        for version in range(1, versions + 1)
    ]


def deadlines(
    added: dict[UUID, timedelta] | None = None, removed: set[UUID] | None = None
) -> PendingDeadlineChanges:
    """Deadline changes with each deadline given as an offset from EPOCH."""
    return PendingDeadlineChanges(
        added={transfer_id: EPOCH + offset for transfer_id, offset in (added or {}).items()},
        removed=removed or set(),
    )


class EventRecorderContract:
    """Every LedgerRecorder must pass these; subclasses give the recorder."""

    @pytest.fixture
    def recorder(self) -> LedgerRecorder:
        raise NotImplementedError

    # Saving -------------------------------------------------------------------------

    def test_a_save_returns_one_increasing_position_per_event(
        self, recorder: LedgerRecorder
    ) -> None:
        first = recorder.insert_events(history(uuid4(), 3))
        second = recorder.insert_events(history(uuid4(), 2))
        assert first is not None and second is not None
        assert len(first) == 3 and len(second) == 2
        # One run of positions per save, each save after the one before.
        assert list(first) == list(range(first[0], first[0] + 3))
        assert list(second) == list(range(second[0], second[0] + 2))
        assert second[0] > first[-1]

    def test_an_empty_save_writes_nothing(self, recorder: LedgerRecorder) -> None:
        assert list(recorder.insert_events([]) or []) == []

    def test_saving_a_stored_version_again_is_refused_and_writes_nothing_of_its_save(
        self, recorder: LedgerRecorder
    ) -> None:
        kept, other = uuid4(), uuid4()
        transfer_id = uuid4()
        recorder.insert_events(history(kept, 2))
        with pytest.raises(IntegrityError):
            recorder.insert_events(
                [stored(other, 1), stored(kept, 2, b'{"again":true}')],
                pending_deadlines=deadlines({transfer_id: timedelta(0)}),
            )
        assert recorder.select_versions([kept, other]) == {kept: 2}
        assert recorder.select_events_of_originators([kept])[kept] == history(kept, 2)
        assert recorder.select_due_pending_transfer_ids(EPOCH, 10) == []

    def test_one_version_twice_in_one_save_is_refused(self, recorder: LedgerRecorder) -> None:
        originator_id = uuid4()
        with pytest.raises(IntegrityError):
            recorder.insert_events([stored(originator_id, 1), stored(originator_id, 1)])
        assert recorder.select_versions([originator_id]) == {}

    # Reading ------------------------------------------------------------------------

    def test_events_of_originators_come_whole_in_version_order(
        self, recorder: LedgerRecorder
    ) -> None:
        first, second, unknown = uuid4(), uuid4(), uuid4()
        # Saved interleaved, in two saves: read back per aggregate, in order.
        recorder.insert_events([*history(first, 2), stored(second, 1)])
        recorder.insert_events([stored(first, 3, b'{"n":3}'), stored(second, 2)])
        found = recorder.select_events_of_originators([first, second, unknown])
        assert found == {first: history(first, 3), second: [stored(second, 1), stored(second, 2)]}

    def test_versions_are_the_latest_of_each_stored_aggregate_and_omit_unknown_ids(
        self, recorder: LedgerRecorder
    ) -> None:
        first, second, unknown = uuid4(), uuid4(), uuid4()
        recorder.insert_events([*history(first, 4), *history(second, 1)])
        assert recorder.select_versions([first, second, unknown]) == {first: 4, second: 1}
        assert recorder.select_versions([]) == {}

    def test_events_after_a_version_are_the_later_ones_in_order(
        self, recorder: LedgerRecorder
    ) -> None:
        moved, current, unknown = uuid4(), uuid4(), uuid4()
        recorder.insert_events([*history(moved, 5), *history(current, 2)])
        found = recorder.select_events_after({moved: 2, current: 2, unknown: 0})
        # An aggregate with nothing later, or nothing at all, is left out.
        assert found == {moved: history(moved, 5)[2:]}
        assert recorder.select_events_after({moved: 0}) == {moved: history(moved, 5)}
        assert recorder.select_events_after({}) == {}

    # Pending deadlines --------------------------------------------------------------

    def test_due_pending_transfers_come_earliest_first_up_to_the_limit(
        self, recorder: LedgerRecorder
    ) -> None:
        late, early, middle, future = uuid4(), uuid4(), uuid4(), uuid4()
        recorder.insert_events(
            [stored(uuid4(), 1)],
            pending_deadlines=deadlines(
                {
                    late: timedelta(minutes=3),
                    early: timedelta(minutes=1),
                    middle: timedelta(minutes=2),
                    future: timedelta(minutes=10),
                }
            ),
        )
        now = EPOCH + timedelta(minutes=3)
        # Due at the deadline itself, not only after it.
        assert recorder.select_due_pending_transfer_ids(now, 10) == [early, middle, late]
        assert recorder.select_due_pending_transfer_ids(now, 2) == [early, middle]
        assert recorder.select_due_pending_transfer_ids(EPOCH, 10) == []

    def test_a_removed_deadline_is_never_due_and_a_deadline_added_again_moves(
        self, recorder: LedgerRecorder
    ) -> None:
        removed, moved, kept = uuid4(), uuid4(), uuid4()
        recorder.insert_events(
            [stored(uuid4(), 1)],
            pending_deadlines=deadlines(
                {removed: timedelta(0), moved: timedelta(0), kept: timedelta(minutes=1)}
            ),
        )
        recorder.insert_events(
            [stored(uuid4(), 1)],
            pending_deadlines=deadlines({moved: timedelta(minutes=5)}, removed={removed}),
        )
        assert recorder.select_due_pending_transfer_ids(EPOCH + timedelta(minutes=1), 10) == [kept]
        assert recorder.select_due_pending_transfer_ids(EPOCH + timedelta(minutes=5), 10) == [
            kept,
            moved,
        ]

    # The write lock -----------------------------------------------------------------

    def test_what_is_appended_under_the_lock_is_kept_when_it_ends(
        self, recorder: LedgerRecorder
    ) -> None:
        before = recorder.insert_events(history(uuid4(), 1))
        originator_id, transfer_id = uuid4(), uuid4()
        with recorder.exclusive_append() as append:
            positions = append(history(originator_id, 2), deadlines({transfer_id: timedelta(0)}))
        assert before is not None
        assert len(positions) == 2 and positions[0] > before[-1]
        assert list(positions) == [positions[0], positions[0] + 1]
        assert recorder.select_events_of_originators([originator_id]) == {
            originator_id: history(originator_id, 2)
        }
        assert recorder.select_due_pending_transfer_ids(EPOCH, 10) == [transfer_id]

    def test_nothing_appended_under_the_lock_is_kept_when_it_ends_in_an_error(
        self, recorder: LedgerRecorder
    ) -> None:
        kept, dropped, transfer_id = uuid4(), uuid4(), uuid4()
        recorder.insert_events(history(kept, 1))
        with pytest.raises(Failure), recorder.exclusive_append() as append:
            append(history(dropped, 2), deadlines({transfer_id: timedelta(0)}))
            raise Failure
        assert recorder.select_versions([kept, dropped]) == {kept: 1}
        assert recorder.select_due_pending_transfer_ids(EPOCH, 10) == []
        # The log goes on: the aggregate's first version is free again.
        recorder.insert_events(history(dropped, 1))
        assert recorder.select_versions([dropped]) == {dropped: 1}

    def test_appending_a_stored_version_under_the_lock_is_refused(
        self, recorder: LedgerRecorder
    ) -> None:
        originator_id = uuid4()
        recorder.insert_events(history(originator_id, 1))
        with pytest.raises(IntegrityError), recorder.exclusive_append() as append:
            append([stored(originator_id, 1)], PendingDeadlineChanges())
        assert recorder.select_versions([originator_id]) == {originator_id: 1}

    def test_another_save_waits_for_the_lock_and_comes_after_what_was_appended_under_it(
        self, recorder: LedgerRecorder
    ) -> None:
        waiting_id, holder_id = uuid4(), uuid4()
        saved: list[int] = []

        def save() -> None:
            saved.extend(recorder.insert_events(history(waiting_id, 1)) or [])

        other = threading.Thread(target=save)
        with recorder.exclusive_append() as append:
            other.start()
            other.join(BLOCKED_WATCH_S)
            assert other.is_alive(), "a save went past the write lock"
            appended = append(history(holder_id, 1), PendingDeadlineChanges())
        other.join(WAIT_S)
        assert not other.is_alive()
        assert saved[0] > appended[0]

    def test_the_log_can_be_read_while_the_lock_is_held(self, recorder: LedgerRecorder) -> None:
        originator_id = uuid4()
        recorder.insert_events(history(originator_id, 2))
        read: list[dict[UUID, int]] = []
        reader = threading.Thread(
            target=lambda: read.append(recorder.select_versions([originator_id]))
        )
        with recorder.exclusive_append():
            reader.start()
            reader.join(WAIT_S)
            assert not reader.is_alive(), "a read waited for the write lock"
        assert read == [{originator_id: 2}]


class TestPostgresRecorder(EventRecorderContract):
    @pytest.fixture
    def recorder(self, database_url: str) -> Iterator[LedgerRecorder]:
        factory = PostgresFactory(
            Environment(env=eventsourcing_environment(database_url, POOL_SIZE))
        )
        try:
            yield HashChainedPostgresRecorder(factory.datastore)
        finally:
            factory.close()


class TestInMemoryRecorder(EventRecorderContract):
    @pytest.fixture
    def recorder(self) -> LedgerRecorder:
        return InMemoryLedgerRecorder()
