"""The library's in-memory recorder with the ledger's extras, for fast unit tests.

It keeps the port's promises as PostgreSQL does (tests/contract holds both
to them): `exclusive_append` holds a write lock that every save waits for,
and what is appended under it is undone when the context ends in an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from threading import RLock
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from application.ports.event_store import AppendEvents, PendingDeadlineChanges
from domain.event_chain import GENESIS_HASH, chained_hash


class InMemoryLedgerRecorder(POPOApplicationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.event_hashes: list[bytes] = []
        self._pending_deadlines: dict[UUID, datetime] = {}
        # The log's write lock (PostgreSQL's table lock): saves wait for it,
        # reads do not. Reentrant, so a save under exclusive_append goes on.
        self._append_lock = RLock()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        deadlines: PendingDeadlineChanges | None = kwargs.pop("pending_deadlines", None)
        with self._append_lock, self._database_lock:
            self._assert_uniqueness(stored_events)
            previous = self.event_hashes[-1] if self.event_hashes else GENESIS_HASH
            hashes = []
            for stored in stored_events:
                previous = chained_hash(
                    previous,
                    UUID(str(stored.originator_id)),
                    stored.originator_version,
                    stored.topic,
                    stored.state,
                )
                hashes.append(previous)
            notification_ids = self._update_table(stored_events)
            self.event_hashes.extend(hashes)
            if deadlines is not None:
                self._pending_deadlines.update(deadlines.added)
                for transfer_id in deadlines.removed:
                    self._pending_deadlines.pop(transfer_id, None)
        self._notify_listeners()
        return notification_ids

    @contextmanager
    def exclusive_append(self) -> Iterator[AppendEvents]:
        def append(
            stored_events: Sequence[StoredEvent], deadlines: PendingDeadlineChanges
        ) -> Sequence[int]:
            return self.insert_events(stored_events, pending_deadlines=deadlines) or []

        with self._append_lock:
            with self._database_lock:
                events_before = len(self._stored_events)
                deadlines_before = dict(self._pending_deadlines)
            try:
                yield append
            except BaseException:
                # A transaction that ends in an error keeps nothing; under the
                # write lock nobody else appended, so the tail is all ours.
                with self._database_lock:
                    self._undo_appends_after(events_before, deadlines_before)
                raise

    def _undo_appends_after(
        self, events_before: int, deadlines_before: dict[UUID, datetime]
    ) -> None:
        for stored in self._stored_events[events_before:]:
            del self._stored_events_index[str(stored.originator_id)][stored.originator_version]
        del self._stored_events[events_before:]
        del self.event_hashes[events_before:]
        self._pending_deadlines = deadlines_before

    def select_events_of_originators(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]:
        found: dict[UUID, list[StoredEvent]] = {}
        with self._database_lock:
            for originator_id in originator_ids:
                versions = self._stored_events_index.get(str(originator_id))
                if versions:
                    found[originator_id] = [
                        self._stored_events[position] for _, position in sorted(versions.items())
                    ]
        return found

    def select_versions(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        with self._database_lock:
            return {
                originator_id: max(versions)
                for originator_id in originator_ids
                if (versions := self._stored_events_index.get(str(originator_id)))
            }

    def select_events_after(self, versions: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        found: dict[UUID, list[StoredEvent]] = {}
        with self._database_lock:
            for originator_id, after in versions.items():
                stored = self._stored_events_index.get(str(originator_id), {})
                later = [
                    self._stored_events[position]
                    for version, position in sorted(stored.items())
                    if version > after
                ]
                if later:
                    found[originator_id] = later
        return found

    def position_of(self, stored_event: StoredEvent) -> int | None:
        with self._database_lock:
            versions = self._stored_events_index.get(str(stored_event.originator_id), {})
            index = versions.get(stored_event.originator_version)
            if index is None:
                return None
            found = self._stored_events[index]
        if (found.topic, found.state) != (stored_event.topic, stored_event.state):
            return None
        # Positions count from 1, as the library's in-memory recorder gives them.
        return index + 1

    def select_due_pending_transfer_ids(self, now: datetime, limit: int) -> list[UUID]:
        with self._database_lock:
            due = sorted(
                (deadline, transfer_id)
                for transfer_id, deadline in self._pending_deadlines.items()
                if deadline <= now
            )
        return [transfer_id for _, transfer_id in due[:limit]]
