"""The guard worker: syncs every funded account with the broker, then runs its
guards, every few seconds, in one process at a time
(docs/rules.md#position-sync-and-guards).

Each pass walks the accounts the `funded_accounts` view says the broker
holds something of (active or suspended, or holding open positions), leaves
out those waiting out a failure's backoff, and syncs the rest a bounded
number at a time (`broker_sync_concurrency` threads): the broker answers
each account on its own, so a slow or failing account only holds up its own
thread. After a sync that answered, `after_sync` runs for the account with
the equity the broker gave (the drawdown and market guards). Each account's
failure, of its sync or of its guards, is logged and counted; the others go on.

One worker runs at a time, under a lease (interface/workers/leased_worker.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Final
from uuid import UUID

import structlog

from application.broker_sync import BrokerSyncService
from application.ports.broker import AccountEquity
from application.ports.broker_sync_status import SyncFailure
from domain.result_codes import LedgerRefusal
from interface.adapters.persistence.advisory_locks import GUARD_WORKER_LOCK_KEY
from interface.workers.leased_worker import Connection, LeasedLoop, OnLeasedLoop, id_pages
from projections.funded_accounts import accounts_to_sync

log = structlog.get_logger(__name__)

# Accounts read from the view per query while walking them.
ACCOUNTS_PER_QUERY: Final[int] = 500

AfterSync = Callable[[UUID, AccountEquity], object]


@dataclass(frozen=True, slots=True)
class _AccountOutcome:
    funded_account_id: UUID
    # None: the sync answered.
    sync_error: str | None = None
    # None: the guards ran (or were not reached: the sync failed, or stopping).
    guard_error: str | None = None
    guarded: bool = False
    skipped: bool = False


@dataclass
class GuardPass:
    """What one pass did."""

    # False: another process holds the lease; this pass did nothing.
    leased: bool = True
    synced: int = 0
    guarded: int = 0
    # Accounts left out: waiting out a backoff, or the worker stopping.
    waiting: int = 0
    # Account -> the error its sync recorded (it is retried after its backoff).
    failures: dict[UUID, str] = field(default_factory=dict)
    # Account -> the error its guards raised (they run again after the next sync).
    guard_errors: dict[UUID, str] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def add(self, outcome: _AccountOutcome) -> None:
        account_id = outcome.funded_account_id
        if outcome.skipped:
            self.waiting += 1
            return
        if outcome.sync_error is not None:
            self.failures[account_id] = outcome.sync_error
            return
        self.synced += 1
        if outcome.guarded:
            self.guarded += 1
        if outcome.guard_error is not None:
            self.guard_errors[account_id] = outcome.guard_error


class GuardWorker(OnLeasedLoop[GuardPass]):
    def __init__(
        self,
        *,
        database_url: str,
        sync: BrokerSyncService,
        after_sync: AfterSync,
        interval_s: float,
        concurrency: int,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._sync = sync
        self._after_sync = after_sync
        self._concurrency = concurrency
        self._loop = LeasedLoop(
            name="guard-worker",
            database_url=database_url,
            lock_key=GUARD_WORKER_LOCK_KEY,
            interval_s=interval_s,
            work=self._sync_all,
            report=_report,
        )

    def run_once(self) -> GuardPass:
        """One pass over every account to sync, if this process gets the lease."""
        done = self._loop.run_once()
        return GuardPass(leased=False) if done is None else done

    def _sync_all(self, connection: Connection, stopping: threading.Event) -> GuardPass:
        done = GuardPass()
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="broker-sync") as pool:
            for batch in id_pages(connection, accounts_to_sync, ACCOUNTS_PER_QUERY, stopping):
                due = self._sync.due(batch)
                done.waiting += len(batch) - len(due)
                for outcome in pool.map(partial(self._sync_one, stopping), due):
                    done.add(outcome)
        return done

    def _sync_one(self, stopping: threading.Event, funded_account_id: UUID) -> _AccountOutcome:
        if stopping.is_set():
            # Stopping: what is queued is left for the next process's pass.
            return _AccountOutcome(funded_account_id, skipped=True)
        try:
            synced = self._sync.sync_or_record_failure(funded_account_id)
        except Exception as error:
            # Even recording the failure failed (the database gone): the
            # account is simply tried again next pass.
            log.exception(
                "broker_sync_failure_not_recorded", funded_account_id=str(funded_account_id)
            )
            return _AccountOutcome(funded_account_id, sync_error=type(error).__name__)
        if isinstance(synced, SyncFailure):
            return _AccountOutcome(funded_account_id, sync_error=synced.error)
        try:
            self._after_sync(funded_account_id, synced.equity)
        except LedgerRefusal as refusal:
            log.warning(
                "guard_failed",
                funded_account_id=str(funded_account_id),
                code=refusal.code.value,
                message=refusal.message,
            )
            return _AccountOutcome(funded_account_id, guard_error=refusal.code.value)
        except Exception as error:
            # One account's guards failing never stops another's.
            log.exception("guard_failed", funded_account_id=str(funded_account_id))
            return _AccountOutcome(funded_account_id, guard_error=type(error).__name__)
        return _AccountOutcome(funded_account_id, guarded=True)


def _report(done: GuardPass) -> None:
    if done.failures or done.guard_errors:
        log.info(
            "guard_worker_pass",
            synced=done.synced,
            guarded=done.guarded,
            waiting=done.waiting,
            failed=done.failed,
            guard_errors=len(done.guard_errors),
        )
