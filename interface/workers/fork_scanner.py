"""The fork scanner: proposes a fork for every account past its tier's
threshold, and executes the forks that wait, every few minutes, in one
process at a time (a lease, interface/workers/leased_worker.py).

A fork that waits is one approved while five were executing, or one left
executing by a process that stopped: executing it again finds what the
first try made (the child's ids come from the fork's). An account in its
24-hour cooldown, or past the threshold but not yet able to keep its own
minimum, is skipped or rolled back by the service, and counted.
`ledger forks scan [--now ISO]` runs the same pass by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Final
from uuid import UUID

import structlog

from application.forks import ForkOutcome, ForksService
from domain.fork import ForkStatus
from domain.result_codes import LedgerRefusal
from domain.tiers import TIERS
from interface.adapters.persistence.advisory_locks import FORK_SCANNER_LOCK_KEY
from interface.workers.leased_worker import Connection, LeasedLoop
from projections import forks
from projections.funded_accounts import fork_candidates

log = structlog.get_logger(__name__)

SCAN_LIMIT: Final[int] = 1_000
SCANNER_ACTOR: Final[str] = "forks-scan"
LISTED: Final[str] = "listed"


@dataclass(frozen=True, slots=True)
class ScanAction:
    # "execute" a waiting fork, or "propose" one for an account.
    action: str
    # The fork (execute) or the funded account (propose).
    item_id: UUID
    # The fork's status after, or the refusal's code, or LISTED (a dry run).
    outcome: str
    refused: bool = False
    fork_id: UUID | None = None


@dataclass
class ForkScan:
    actions: list[ScanAction] = field(default_factory=list)


def fork_thresholds() -> dict[str, int]:
    return {
        tier.name.value: tier.fork_threshold_minor
        for tier in TIERS.values()
        if tier.fork_threshold_minor is not None
    }


def scan_forks(
    connection: Connection,
    service: ForksService,
    stopping: threading.Event | None = None,
    *,
    dry_run: bool = False,
) -> ForkScan:
    """Execute the forks that wait, then propose for every candidate (with
    `dry_run`, only list them, each with the outcome "listed")."""
    done = ForkScan()
    with connection.cursor() as cursor:
        waiting = [
            row.fork_id
            for status in (ForkStatus.EXECUTING, ForkStatus.APPROVED)
            for row in forks.fork_page(cursor, status=status, after_position=0, limit=SCAN_LIMIT)
        ]
        candidates = fork_candidates(cursor, fork_thresholds(), after_position=0, limit=SCAN_LIMIT)
    if dry_run:
        done.actions += [ScanAction("execute", fork_id, LISTED) for fork_id in waiting]
        for row in candidates:
            # Listed only if a proposal would be taken now: never one the
            # 24-hour cooldown (or anything else) forbids.
            refusal = service.check_proposal(row.funded_account_id)
            if refusal is None:
                done.actions.append(ScanAction("propose", row.funded_account_id, LISTED))
        return done
    for fork_id in waiting:
        if stopping is not None and stopping.is_set():
            return done
        done.actions.append(_act("execute", fork_id, partial(service.execute, fork_id)))
    for row in candidates:
        if stopping is not None and stopping.is_set():
            return done
        account_id = row.funded_account_id
        proposing = partial(service.propose, account_id, SCANNER_ACTOR)
        done.actions.append(_act("propose", account_id, proposing))
    return done


def _act(action: str, item_id: UUID, call: Callable[[], ForkOutcome]) -> ScanAction:
    try:
        outcome = call()
    except LedgerRefusal as refusal:
        return ScanAction(action, item_id, refusal.code.value, refused=True)
    return ScanAction(action, item_id, outcome.fork.status.value, fork_id=outcome.fork.id)


def fork_scanner(
    database_url: str, service: ForksService, interval_s: float
) -> LeasedLoop[ForkScan]:
    def work(connection: Connection, stopping: threading.Event) -> ForkScan:
        return scan_forks(connection, service, stopping)

    def report(done: ForkScan) -> None:
        if done.actions:
            log.info("fork_scan", actions=len(done.actions))

    return LeasedLoop(
        name="fork-scanner",
        database_url=database_url,
        lock_key=FORK_SCANNER_LOCK_KEY,
        interval_s=interval_s,
        work=work,
        report=report,
    )
