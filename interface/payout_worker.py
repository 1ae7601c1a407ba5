"""The payout worker: pays out approved withdrawals whose time has come.

One worker runs at a time, under a lease (interface/leased_worker.py); an
approval wakes it at once, otherwise it looks every few seconds. It finds
due work in the withdrawals view (approved, not waiting for a person, next
attempt due) and asks the service to pay each one; the service reads the
aggregate again and decides on that, so a view a moment behind never causes a
second payout, and the payout's idempotency key (one per withdrawal) makes a
repeated call, after a crash or a timeout, find the first payout.

Each withdrawal's failure is isolated: logged, counted, and the pass goes on.
A transient failure is recorded on the withdrawal with its next attempt time
(exponential backoff, domain/withdrawal.py), so the worker resumes after a
restart exactly where it was.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import structlog

from application.ports import Clock
from application.withdrawals import WithdrawalsService
from domain.result_codes import LedgerRefusal
from domain.withdrawal import WithdrawalStatus
from interface.leased_worker import STOP_TIMEOUT_S, Connection, LeasedLoop
from projections.withdrawals import payouts_due

log = structlog.get_logger(__name__)

# Advisory lock key of the worker's lease ("payouts" in ASCII).
PAYOUT_WORKER_LOCK_KEY: Final[int] = 0x7061796F757473
# Withdrawals read from the view per query, and per pass at most: a pass ends
# and lets the lease go now and then, whatever the backlog.
WITHDRAWALS_PER_QUERY: Final[int] = 100
WITHDRAWALS_PER_PASS_MAX: Final[int] = 1_000
# Withdrawals named by wake-ups waiting for the next pass; past this a wake-up
# only wakes (the view still finds the rest).
HINTS_MAX: Final[int] = 10_000


@dataclass
class PayoutPass:
    leased: bool = True
    attempted: int = 0
    completed: int = 0
    # Paid out, waiting for the processor to say it was paid.
    paid_out: int = 0
    failed: int = 0
    # A transient failure, retried later.
    retrying: int = 0
    errors: dict[UUID, str] = field(default_factory=dict)


class PayoutWorker:
    def __init__(
        self, database_url: str, service: WithdrawalsService, clock: Clock, interval_s: float
    ) -> None:
        self._service = service
        self._clock = clock
        # Withdrawals named by a wake-up, in order: the view may not show them yet.
        self._hints: dict[UUID, None] = {}
        self._hints_lock = threading.Lock()
        self._loop = LeasedLoop(
            name="payout-worker",
            database_url=database_url,
            lock_key=PAYOUT_WORKER_LOCK_KEY,
            interval_s=interval_s,
            work=self._pay_due,
            report=_report,
        )

    def run_once(self) -> PayoutPass:
        """One pass over the due payouts, if this process gets the lease."""
        done = self._loop.run_once()
        return PayoutPass(leased=False) if done is None else done

    def wake(self, withdrawal_id: UUID | None = None) -> None:
        """Pay out now rather than at the end of the interval: the withdrawal
        named is paid first, whether or not the view shows it yet."""
        if withdrawal_id is not None:
            with self._hints_lock:
                if len(self._hints) < HINTS_MAX:
                    self._hints[withdrawal_id] = None
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._loop.stop(timeout_s)

    @property
    def is_running(self) -> bool:
        return self._loop.is_running

    def _pay_due(self, connection: Connection, stopping: threading.Event) -> PayoutPass:
        done = PayoutPass()
        with self._hints_lock:
            hinted, self._hints = list(self._hints), {}
        tried: set[UUID] = set()
        for withdrawal_id in hinted:
            tried.add(withdrawal_id)
            done.attempted += 1
            self._pay(withdrawal_id, done)
        while not stopping.is_set() and done.attempted < WITHDRAWALS_PER_PASS_MAX:
            with connection.cursor() as cursor:
                due = [
                    withdrawal_id
                    for withdrawal_id in payouts_due(
                        cursor, self._clock.now(), WITHDRAWALS_PER_QUERY + len(tried)
                    )
                    if withdrawal_id not in tried
                ]
            if not due:
                break
            for withdrawal_id in due[:WITHDRAWALS_PER_QUERY]:
                tried.add(withdrawal_id)
                done.attempted += 1
                self._pay(withdrawal_id, done)
        return done

    def _pay(self, withdrawal_id: UUID, done: PayoutPass) -> None:
        try:
            withdrawal = self._service.pay_out(withdrawal_id)
        except LedgerRefusal as refusal:
            done.errors[withdrawal_id] = refusal.code.value
            log.warning(
                "payout_worker_failed",
                withdrawal_id=str(withdrawal_id),
                code=refusal.code.value,
                message=refusal.message,
            )
            return
        except Exception as error:
            # One withdrawal's fault never stops the others' payouts.
            done.errors[withdrawal_id] = type(error).__name__
            log.exception("payout_worker_failed", withdrawal_id=str(withdrawal_id))
            return
        status = withdrawal.status
        if status is WithdrawalStatus.COMPLETED:
            done.completed += 1
        elif status is WithdrawalStatus.PAID_OUT:
            done.paid_out += 1
        elif status is WithdrawalStatus.FAILED:
            done.failed += 1
        elif status is WithdrawalStatus.APPROVED:
            done.retrying += 1


def _report(done: PayoutPass) -> None:
    if done.attempted:
        log.info(
            "payout_worker_pass",
            attempted=done.attempted,
            completed=done.completed,
            paid_out=done.paid_out,
            failed=done.failed,
            retrying=done.retrying,
            errors=len(done.errors),
        )
