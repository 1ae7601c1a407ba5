"""Ports: the small protocols the application needs from the outside world."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent

from domain.commands import Command
from domain.ledger_batch import CommandResult


class WriterObserver(Protocol):
    """Told of every batch the writer has decided, once per batch, on the
    writer's thread: it must be quick and must not raise (the batch has already
    committed; a failure here is logged and ignored)."""

    def batch_committed(
        self,
        commands: Sequence[Command],
        results: Sequence[CommandResult],
        events_written: int,
        commit_s: float,
    ) -> None:
        """`events_written` is 0 (and `commit_s` 0.0) for a batch that changed nothing."""
        ...


class IgnoreWriterBatches:
    """The observer when nobody is watching."""

    def batch_committed(
        self,
        commands: Sequence[Command],
        results: Sequence[CommandResult],
        events_written: int,
        commit_s: float,
    ) -> None:
        return None


@dataclass(frozen=True, slots=True)
class PendingDeadlineChanges:
    """Deadlines of pending transfers, kept beside the events in one transaction.

    It is an index derived from the events (a transfer's `expires_at`), kept
    so the expiry sweep can find due holds without scanning history.
    """

    added: dict[UUID, datetime] = field(default_factory=dict)
    removed: set[UUID] = field(default_factory=set)


# Appends events (and deadline changes) in an already locked transaction;
# returns the events' positions.
AppendEvents = Callable[[Sequence[StoredEvent], PendingDeadlineChanges], Sequence[int]]


@runtime_checkable
class LedgerRecorder(Protocol):
    """What the writer needs of an event store beyond the library's recorder."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None: ...

    def select_events_of_originators(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[StoredEvent]]: ...

    def select_due_pending_transfer_ids(self, now: datetime, limit: int) -> list[UUID]: ...

    def select_versions(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        """Each stored aggregate's current version; absent ids are not stored."""
        ...

    def select_events_after(self, versions: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """Each aggregate's events after the given version, in version order."""
        ...

    def position_of(self, stored_event: StoredEvent) -> int | None:
        """The position of this very event (the same aggregate, version, topic
        and state) if the store holds it: how a writer whose save raised learns
        whether the save committed all the same."""
        ...

    def exclusive_append(self) -> AbstractContextManager[AppendEvents]:
        """Hold the log's write lock from now until the context ends; what is
        decided inside it (reading with other connections) cannot conflict."""
        ...


def require_ledger_recorder(recorder: ApplicationRecorder) -> LedgerRecorder:
    if not isinstance(recorder, LedgerRecorder):
        raise TypeError(
            f"{type(recorder).__name__} cannot serve the ledger writer: it needs "
            "select_events_of_originators and select_due_pending_transfer_ids"
        )
    return recorder
