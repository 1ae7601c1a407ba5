"""The peer baseline: the same transfers, done the way the eventsourcing docs show.

A plain `Application` with a bank-account aggregate whose commands check and
then call an `@event` method, on the library's stock PostgreSQL recorder
(`CREATE_TABLE=y`, its own database). Per transfer: get both accounts from the
repository, debit one, credit the other, one `app.save(a, b)`. One client,
since two clients saving the same accounts would only trade version conflicts.

It gets no history first: replaying long account histories would only make
it slower, and the baseline should be given every advantage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from benchmarks import databases
from benchmarks.workload import FUNDING_MINOR, Workload, percentile
from interface.adapters.persistence import database

PHASE: Final[str] = "measured"
# The library saves in pipeline mode; keep each setup save far below the
# size that hangs it (shared/repro/pipeline_deadlock.py).
SETUP_SAVE_AGGREGATES_MAX: Final[int] = 100
POOL_SIZE: Final[int] = 2


class InsufficientFunds(Exception):
    pass


class BankAccount(Aggregate):
    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance_minor = 0

    def debit(self, amount_minor: int) -> None:
        if amount_minor > self.balance_minor:
            raise InsufficientFunds(f"account {self.id} holds {self.balance_minor}")
        self._debited(amount_minor=amount_minor)

    @event("Debited")
    def _debited(self, amount_minor: int) -> None:
        self.balance_minor -= amount_minor

    def credit(self, amount_minor: int) -> None:
        self._credited(amount_minor=amount_minor)

    @event("Credited")
    def _credited(self, amount_minor: int) -> None:
        self.balance_minor += amount_minor


class NaiveBank(Application[UUID]):
    name = "NaiveBank"

    def open_accounts(self, count: int, funding_minor: int) -> list[UUID]:
        account_ids: list[UUID] = []
        for start in range(0, count, SETUP_SAVE_AGGREGATES_MAX):
            accounts = [
                BankAccount(owner=f"naive-owner-{number}")
                for number in range(start, min(count, start + SETUP_SAVE_AGGREGATES_MAX))
            ]
            for account in accounts:
                account.credit(funding_minor)
            self.save(*accounts)
            account_ids.extend(account.id for account in accounts)
        return account_ids

    def transfer(self, debit_account_id: UUID, credit_account_id: UUID, amount_minor: int) -> None:
        debit_account: BankAccount = self.repository.get(debit_account_id)
        credit_account: BankAccount = self.repository.get(credit_account_id)
        debit_account.debit(amount_minor)
        credit_account.credit(amount_minor)
        self.save(debit_account, credit_account)

    def balance_minor(self, account_id: UUID) -> int:
        account: BankAccount = self.repository.get(account_id)
        return account.balance_minor


@dataclass(frozen=True, slots=True)
class NaiveBaselineResult:
    transfers: int
    seconds: float
    transfers_per_s: float
    saves: int
    events_written: int
    events_per_s: float
    failed_transfers: int
    transfer_latency_p50_ms: float
    transfer_latency_p99_ms: float
    balances_verified: bool
    verification: str


def naive_environment(database_url: str) -> dict[str, str]:
    """The stock recorder, making its own tables, on the given database."""
    env = database.eventsourcing_environment(database_url, POOL_SIZE)
    env["CREATE_TABLE"] = "y"
    return env


def run_naive_baseline(
    database_url: str, workload: Workload, transfers: int
) -> NaiveBaselineResult:
    """The first `transfers` of the ledger's measured phase, the naive way.

    Timed: drawing each transfer and doing it, from the first to the last."""
    app = NaiveBank(env=naive_environment(database_url))
    try:
        account_ids = app.open_accounts(workload.accounts, FUNDING_MINOR)
        databases.checkpoint(database_url)
        latencies: list[float] = []
        failed = 0
        started = time.perf_counter()
        for spec in workload.transfers(PHASE, transfers):
            began = time.perf_counter()
            try:
                app.transfer(
                    account_ids[spec.debit_account],
                    account_ids[spec.credit_account],
                    spec.amount_minor,
                )
            except InsufficientFunds:
                failed += 1
            latencies.append(time.perf_counter() - began)
        seconds = time.perf_counter() - started
        verified, verification = _verify(app, account_ids, workload, transfers)
    finally:
        app.close()
    latencies.sort()
    saves = transfers - failed
    return NaiveBaselineResult(
        transfers=transfers,
        seconds=seconds,
        transfers_per_s=transfers / seconds if seconds else 0.0,
        saves=saves,
        events_written=2 * saves,
        events_per_s=2 * saves / seconds if seconds else 0.0,
        failed_transfers=failed,
        transfer_latency_p50_ms=1000 * percentile(latencies, 0.50),
        transfer_latency_p99_ms=1000 * percentile(latencies, 0.99),
        balances_verified=verified and failed == 0,
        verification=verification if not failed else f"{failed} transfers failed; {verification}",
    )


def _verify(
    app: NaiveBank, account_ids: list[UUID], workload: Workload, transfers: int
) -> tuple[bool, str]:
    expected = workload.expected_balances({PHASE: transfers})
    actual = [app.balance_minor(account_id) for account_id in account_ids]
    mismatched = sum(1 for want, got in zip(expected, actual, strict=True) if want != got)
    total_expected = FUNDING_MINOR * workload.accounts
    if mismatched or sum(actual) != total_expected:
        return False, (
            f"{mismatched} balances differ from the workload's; "
            f"sum {sum(actual)} vs {total_expected}"
        )
    return True, f"all {len(account_ids)} balances as expected; money conserved"
