"""The payout worker: pays out approved withdrawals whose time has come.

A `DueWorker` (interface/workers/leased_worker.py): one runs at a time, under a
lease; an approval wakes it at once, otherwise it looks every few seconds. It
finds due work in the withdrawals view (approved, not waiting for a person,
next attempt due) and asks the service to pay each one; the service reads the
aggregate again and decides on that, so a view a moment behind never causes a
second payout, and the payout's idempotency key (one per withdrawal) makes a
repeated call, after a crash or a timeout, find the first payout.

A transient failure is recorded on the withdrawal with its next attempt time
(exponential backoff, domain/withdrawal.py), so the worker resumes after a
restart exactly where it was.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

from application.ports.clock import Clock
from application.withdrawals import WithdrawalsService
from domain.withdrawal import WithdrawalStatus
from interface.adapters.persistence.advisory_locks import PAYOUT_WORKER_LOCK_KEY
from interface.workers.leased_worker import Connection, DueWorker
from projections.withdrawals import payouts_due

# Withdrawals read from the view per query, and per pass at most: a pass ends
# and lets the lease go now and then, whatever the backlog.
WITHDRAWALS_PER_QUERY: Final[int] = 100
WITHDRAWALS_PER_PASS_MAX: Final[int] = 1_000
# What a pass counts for a withdrawal still approved after its attempt.
RETRYING: Final[str] = "retrying"
NOT_DUE: Final[str] = "not_due"


def payout_worker(
    database_url: str, service: WithdrawalsService, clock: Clock, interval_s: float
) -> DueWorker:
    def find_due(connection: Connection, limit: int) -> list[UUID]:
        with connection.cursor() as cursor:
            return payouts_due(cursor, clock.now(), limit)

    def pay(withdrawal_id: UUID) -> str:
        before = service.require_withdrawal(withdrawal_id)
        if not before.payout_due(clock.now()):
            # The view had not caught up with a payout made or a retry set.
            return NOT_DUE
        status = service.pay_out(withdrawal_id).status
        return RETRYING if status is WithdrawalStatus.APPROVED else status.value

    return DueWorker(
        name="payout-worker",
        database_url=database_url,
        lock_key=PAYOUT_WORKER_LOCK_KEY,
        interval_s=interval_s,
        find_due=find_due,
        handle=pay,
        per_query=WITHDRAWALS_PER_QUERY,
        per_pass_max=WITHDRAWALS_PER_PASS_MAX,
    )
