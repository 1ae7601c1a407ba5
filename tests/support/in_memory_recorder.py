"""The library's in-memory recorder with the ledger's extras, for fast unit tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
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

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        deadlines: PendingDeadlineChanges | None = kwargs.pop("pending_deadlines", None)
        with self._database_lock:
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
        # One process holds the whole in-memory store: nothing to exclude.
        def append(
            stored_events: Sequence[StoredEvent], deadlines: PendingDeadlineChanges
        ) -> Sequence[int]:
            return self.insert_events(stored_events, pending_deadlines=deadlines) or []

        yield append

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

    def select_due_pending_transfer_ids(self, now: datetime, limit: int) -> list[UUID]:
        with self._database_lock:
            due = sorted(
                (deadline, transfer_id)
                for transfer_id, deadline in self._pending_deadlines.items()
                if deadline <= now
            )
        return [transfer_id for _, transfer_id in due[:limit]]
