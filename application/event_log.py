"""The event-sourced application: one log for every aggregate of the ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    StoredEvent,
    Transcoder,
)

from application.ports.event_store import LedgerRecorder, require_ledger_recorder
from application.transcoder import OrjsonTranscoder
from domain.account import Account
from domain.account_guard import AccountGuard
from domain.closure import Closure
from domain.fork import Fork
from domain.funded_account import FundedAccount
from domain.merge import Merge
from domain.reconciliation import ReconciliationRun
from domain.transfer import Transfer
from domain.withdrawal import Withdrawal

A = TypeVar("A", bound=Aggregate)
RecorderFactory = Callable[[InfrastructureFactory[Any]], ApplicationRecorder]

# An account (or a funded account, marked to market over and over) is touched
# once per batch; rebuilding one from its latest snapshot then reads at most
# this many events.
ACCOUNT_SNAPSHOT_INTERVAL = 200


def _replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's projector without its per-event Protocol isinstance check,
    which measured as half the cost of loading an account."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class LedgerApplication(Application[UUID]):
    name = "Ledger"
    env: ClassVar[dict[str, str]] = {"IS_SNAPSHOTTING_ENABLED": "y"}

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        recorder_factory: RecorderFactory | None = None,
    ) -> None:
        self._recorder_factory = recorder_factory
        super().__init__(env)
        self.ledger_recorder: LedgerRecorder = require_ledger_recorder(self.recorder)

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_recorder(self) -> ApplicationRecorder:
        if self._recorder_factory is not None:
            return self._recorder_factory(self.factory)
        return super().construct_recorder()

    def load_transfers(self, transfer_ids: Iterable[UUID]) -> dict[UUID, Transfer]:
        """Rebuild many transfers with one query (most ids in a batch are new)."""
        return self._load_many(transfer_ids, Transfer)

    def load_forks(self, fork_ids: Iterable[UUID]) -> dict[UUID, Fork]:
        """Rebuild many forks with one query (a page of a list)."""
        return self._load_many(fork_ids, Fork)

    def _load_many(self, aggregate_ids: Iterable[UUID], kind: type[A]) -> dict[UUID, A]:
        """Aggregates of `kind` without snapshots, each from all its events, all
        read in one query; an id that is not one of `kind` is absent."""
        wanted = list(dict.fromkeys(aggregate_ids))
        found: dict[UUID, A] = {}
        if not wanted:
            return found
        for originator_id, stored_events in self.ledger_recorder.select_events_of_originators(
            wanted
        ).items():
            aggregate = self._project(stored_events)
            # An id derived from a key never names another aggregate type, but
            # a client can send any id: treat a mismatch as absent.
            if isinstance(aggregate, kind):
                found[originator_id] = aggregate
        return found

    def load_account(self, account_id: UUID) -> Account | None:
        """Accounts have long histories: start from the latest snapshot."""
        try:
            aggregate: Aggregate = self.repository.get(account_id, projector_func=_replay)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, Account) else None

    def load_funded_account(self, funded_account_id: UUID) -> FundedAccount | None:
        try:
            aggregate: Aggregate = self.repository.get(funded_account_id, projector_func=_replay)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, FundedAccount) else None

    def load_closure(self, closure_id: UUID) -> Closure | None:
        return self._load(closure_id, Closure)

    def load_fork(self, fork_id: UUID) -> Fork | None:
        return self._load(fork_id, Fork)

    def load_merge(self, merge_id: UUID) -> Merge | None:
        return self._load(merge_id, Merge)

    def load_withdrawal(self, withdrawal_id: UUID) -> Withdrawal | None:
        return self._load(withdrawal_id, Withdrawal)

    def load_account_guard(self, guard_id: UUID) -> AccountGuard | None:
        return self._load(guard_id, AccountGuard)

    def load_reconciliation_run(self, run_id: UUID) -> ReconciliationRun | None:
        return self._load(run_id, ReconciliationRun)

    def _load(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        """A process aggregate (short histories: no snapshots), if it is one of `kind`."""
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None

    def catch_up(self, aggregates: Sequence[Aggregate]) -> None:
        """Bring cached aggregates up to their stored version by applying only
        the events recorded after theirs (one query): far cheaper than loading
        an account again from its snapshot and every event since."""
        by_id = {aggregate.id: aggregate for aggregate in aggregates}
        later = self.ledger_recorder.select_events_after(
            {aggregate_id: aggregate.version for aggregate_id, aggregate in by_id.items()}
        )
        for aggregate_id, stored_events in later.items():
            aggregate: Any = by_id[aggregate_id]
            for stored in stored_events:
                domain_event: Any = self.mapper.to_domain_event(stored)
                aggregate = domain_event.mutate(aggregate)

    def _project(self, stored_events: Sequence[StoredEvent]) -> Aggregate:
        aggregate: Any = None
        for stored in stored_events:
            domain_event: Any = self.mapper.to_domain_event(stored)
            aggregate = domain_event.mutate(aggregate)
        assert isinstance(aggregate, Aggregate), type(aggregate)
        return aggregate

    def snapshot_if_due(
        self, aggregates: Iterable[Aggregate], versions_before: Mapping[UUID, int]
    ) -> None:
        self.put_snapshots(self.take_due_snapshots(aggregates, versions_before))

    def take_due_snapshots(
        self, aggregates: Iterable[Aggregate], versions_before: Mapping[UUID, int]
    ) -> list[Snapshot]:
        """Snapshots of the aggregates that crossed a snapshot interval, taken
        now: the writer takes a batch's before it decides the next batch on
        the same aggregates, and stores them once the batch has committed."""
        if self.snapshots is None:
            return []
        return [
            Snapshot.take(aggregate)
            for aggregate in aggregates
            if isinstance(aggregate, (Account, FundedAccount))
            and aggregate.version // ACCOUNT_SNAPSHOT_INTERVAL
            > versions_before.get(aggregate.id, 0) // ACCOUNT_SNAPSHOT_INTERVAL
        ]

    def put_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        if snapshots and self.snapshots is not None:
            self.snapshots.put(list(snapshots))
