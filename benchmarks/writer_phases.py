"""Driving the ledger's writer as clients would: set up, run phases, check.

A phase is a number of transfers cut into chunks; several client threads
each take the next chunk, submit it and wait for its receipt, so while the
writer commits one batch the next is already queued.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Final
from uuid import UUID

import psycopg

from application.writer import LedgerWriter, WriteReceipt, WriterOverloaded, WriterStatistics
from benchmarks.report import PhaseResult, Verification
from benchmarks.workload import CURRENCY, FUNDING_MINOR, TransferSpec, Workload, percentile
from domain.account import AccountKind
from domain.commands import Command, CreateTransfer, OpenAccount, create_transfer, open_account
from domain.transfer import Posting, Side
from interface.bootstrap import Ledger

RESULT_TIMEOUT_S: Final[float] = 600.0
OVERLOADED_BACKOFF_S: Final[float] = 0.005


class BenchmarkFailed(Exception):
    """The benchmark could not do its work (not: the figures were disappointing)."""


# Setup ----------------------------------------------------------------------


def _cash_account() -> OpenAccount:
    return open_account(
        idempotency_key="bench-cash", currency=CURRENCY, owner_id="platform", kind=AccountKind.CASH
    )


def open_and_fund_accounts(writer: LedgerWriter, workload: Workload) -> list[UUID]:
    """Returns the user accounts' ids, by number; one cash account funds them all."""
    cash = _cash_account()
    users = [
        open_account(
            idempotency_key=f"bench-user-{number}",
            currency=CURRENCY,
            owner_id=f"bench-owner-{number}",
            debits_must_not_exceed_credits=True,
        )
        for number in range(workload.accounts)
    ]
    fundings: list[Command] = [
        create_transfer(
            idempotency_key=f"bench-funding-{number}",
            postings=(
                Posting(cash.account_id, Side.DEBIT, FUNDING_MINOR, CURRENCY),
                Posting(user.account_id, Side.CREDIT, FUNDING_MINOR, CURRENCY),
            ),
        )
        for number, user in enumerate(users)
    ]
    _execute_all(writer, [cash, *users], workload.chunk_size)
    _execute_all(writer, fundings, workload.chunk_size)
    return [user.account_id for user in users]


def _execute_all(writer: LedgerWriter, commands: Sequence[Command], chunk_size: int) -> None:
    for start in range(0, len(commands), chunk_size):
        receipt = submit(writer, commands[start : start + chunk_size]).result(RESULT_TIMEOUT_S)
        refused = [result for result in receipt.results if not result.succeeded]
        if refused:
            raise BenchmarkFailed(f"setup refused: {refused[0].code} {refused[0].message}")


def submit(writer: LedgerWriter, commands: Sequence[Command]) -> Future[WriteReceipt]:
    """Submit, backing off while the writer's queue is full."""
    while True:
        try:
            return writer.submit(commands)
        except WriterOverloaded:
            time.sleep(OVERLOADED_BACKOFF_S)


# A phase of transfers ---------------------------------------------------------


def _transfer_command(
    phase: str, number: int, spec: TransferSpec, account_ids: Sequence[UUID]
) -> CreateTransfer:
    return create_transfer(
        idempotency_key=f"bench-{phase}-{number}",
        postings=(
            Posting(account_ids[spec.debit_account], Side.DEBIT, spec.amount_minor, CURRENCY),
            Posting(account_ids[spec.credit_account], Side.CREDIT, spec.amount_minor, CURRENCY),
        ),
    )


@dataclass(slots=True)
class _ClientTally:
    latencies_s: list[float]
    codes: Counter[str]
    build_cpu_s: float = 0.0


def run_phase(
    writer: LedgerWriter,
    workload: Workload,
    account_ids: Sequence[UUID],
    phase: str,
    transfers: int,
    client_threads: int,
    *,
    prebuild: bool = False,
) -> PhaseResult:
    """Timed from starting the clients until the last receipt. With `prebuild`,
    every command is built before the clock starts; otherwise each client
    draws and builds its chunk inside the timing, as a real client would."""
    chunks = workload.chunk_count(transfers)

    def build(index: int) -> list[CreateTransfer]:
        first = index * workload.chunk_size
        return [
            _transfer_command(phase, first + offset, spec, account_ids)
            for offset, spec in enumerate(workload.chunk(phase, index, transfers))
        ]

    build_started = time.thread_time()
    ready = [build(index) for index in range(chunks)] if prebuild else []
    prebuild_cpu_s = time.thread_time() - build_started
    timed = _run_clients(
        writer,
        phase,
        client_threads,
        "bench-client",
        chunks,
        (lambda index: ready[index]) if prebuild else build,
    )
    return _phase_result(phase, transfers, timed, writer, prebuild, prebuild_cpu_s)


def run_waiting_clients(
    writer: LedgerWriter,
    workload: Workload,
    account_ids: Sequence[UUID],
    phase: str,
    transfers: int,
    clients: int,
) -> PhaseResult:
    """`clients` threads, each building one transfer, submitting it alone and
    waiting for its result before the next: the latency-bound case, timed
    from starting the clients until the last result."""
    specs = list(workload.transfers(phase, transfers))
    timed = _run_clients(
        writer,
        phase,
        clients,
        "bench-waiting-client",
        len(specs),
        lambda number: [_transfer_command(phase, number, specs[number], account_ids)],
    )
    return _phase_result(phase, transfers, timed, writer, False, 0.0)


@dataclass(frozen=True, slots=True)
class _TimedClients:
    seconds: float
    # The writer's statistics just before the clients started.
    before: WriterStatistics
    tallies: list[_ClientTally]


def _run_clients(
    writer: LedgerWriter,
    phase: str,
    clients: int,
    thread_name: str,
    submissions: int,
    build: Callable[[int], Sequence[Command]],
) -> _TimedClients:
    """`clients` threads; each takes the next of `submissions` numbers, builds
    its commands (`build`, its CPU counted apart), submits them and waits for
    the receipt, until none is left. Timed from starting the clients until
    the last receipt."""
    # next() on an itertools.count is atomic under the GIL: each number goes once.
    numbers = itertools.count()
    tallies: list[_ClientTally] = []
    errors: list[BaseException] = []

    def client() -> None:
        tally = _ClientTally([], Counter())
        tallies.append(tally)
        try:
            while (number := next(numbers)) < submissions:
                build_started = time.thread_time()
                commands = build(number)
                tally.build_cpu_s += time.thread_time() - build_started
                submitted = time.perf_counter()
                receipt = submit(writer, commands).result(RESULT_TIMEOUT_S)
                tally.latencies_s.append(time.perf_counter() - submitted)
                tally.codes.update(result.code.value for result in receipt.results)
        except BaseException as error:  # noqa: BLE001 - the main thread raises it
            errors.append(error)

    before = replace(writer.statistics)
    threads = [
        threading.Thread(target=client, name=f"{thread_name}-{number}") for number in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise BenchmarkFailed(f"a client thread failed in the {phase} phase") from errors[0]
    return _TimedClients(seconds, before, tallies)


def _phase_result(
    phase: str,
    transfers: int,
    timed: _TimedClients,
    writer: LedgerWriter,
    prebuild: bool,
    prebuild_cpu_s: float,
) -> PhaseResult:
    seconds, before, tallies = timed.seconds, timed.before, timed.tallies
    after = writer.statistics
    batches = after.batches_committed - before.batches_committed
    events = after.events_written - before.events_written
    applied = after.commands_applied - before.commands_applied
    latencies = sorted(latency for tally in tallies for latency in tally.latencies_s)
    codes: Counter[str] = Counter()
    for tally in tallies:
        codes.update(tally.codes)
    return PhaseResult(
        name=phase,
        transfers=transfers,
        seconds=seconds,
        transfers_per_s=transfers / seconds if seconds else 0.0,
        batches_committed=batches,
        mean_batch_size=applied / batches if batches else 0.0,
        events_written=events,
        events_per_s=events / seconds if seconds else 0.0,
        conflicts_retried=after.conflicts_retried - before.conflicts_retried,
        submissions=len(latencies),
        submission_latency_p50_ms=1000 * percentile(latencies, 0.50),
        submission_latency_p99_ms=1000 * percentile(latencies, 0.99),
        submission_latency_max_ms=1000 * (latencies[-1] if latencies else 0.0),
        commands_built_in_timing=not prebuild,
        client_build_cpu_s=prebuild_cpu_s
        if prebuild
        else sum(tally.build_cpu_s for tally in tallies),
        results=dict(sorted(codes.items())),
    )


# Checking the outcome -----------------------------------------------------------


def verify_ledger(
    ledger: Ledger,
    workload: Workload,
    account_ids: Sequence[UUID],
    phases: Sequence[PhaseResult],
) -> Verification:
    """Every result OK; every account, read back from the database, as the
    workload says; debits equal credits; as many events stored as written."""
    checks: list[str] = []
    failures: list[str] = []
    for phase in phases:
        _check(
            phase.results == {"ok": phase.transfers},
            f"{phase.name}: all {phase.transfers:,} transfers ok",
            f"{phase.name}: results {phase.results} for {phase.transfers} transfers",
            checks,
            failures,
        )
    expected = workload.expected_balances({phase.name: phase.transfers for phase in phases})
    _check_balances(ledger, workload, account_ids, expected, checks, failures)
    stored_events = _count_events(ledger.database_url)
    written = ledger.writer.statistics.events_written
    _check(
        stored_events == written,
        f"{stored_events:,} events in the store, as many as the writer wrote",
        f"{stored_events} events stored but the writer wrote {written}",
        checks,
        failures,
    )
    return Verification(checks, failures)


def _check_balances(
    ledger: Ledger,
    workload: Workload,
    account_ids: Sequence[UUID],
    expected: Sequence[int],
    checks: list[str],
    failures: list[str],
) -> None:
    debits_posted_sum = credits_posted_sum = pending_sum = 0
    mismatched: list[str] = []
    accounts: Mapping[UUID, int | None] = {
        account_id: number for number, account_id in enumerate(account_ids)
    } | {_cash_account().account_id: None}
    for account_id, number in accounts.items():
        account = ledger.app.load_account(account_id)
        if account is None:
            mismatched.append(f"account {number if number is not None else 'cash'} not found")
            continue
        totals = account.totals
        debits_posted_sum += totals.debits_posted
        credits_posted_sum += totals.credits_posted
        pending_sum += totals.debits_pending + totals.credits_pending
        want = -FUNDING_MINOR * workload.accounts if number is None else expected[number]
        if totals.credits_posted - totals.debits_posted != want:
            mismatched.append(f"user {number}" if number is not None else "cash")
    _check(
        not mismatched,
        f"all {len(accounts):,} accounts, read back, hold what the workload says",
        f"{len(mismatched)} accounts differ: {', '.join(mismatched[:5])}",
        checks,
        failures,
    )
    _check(
        debits_posted_sum == credits_posted_sum and pending_sum == 0,
        f"balanced: posted debits = posted credits = {debits_posted_sum:,} minor units",
        f"unbalanced: debits {debits_posted_sum}, credits {credits_posted_sum}, "
        f"pending {pending_sum}",
        checks,
        failures,
    )


def _check(holds: bool, passed: str, failed: str, checks: list[str], failures: list[str]) -> None:
    if holds:
        checks.append(passed)
    else:
        failures.append(failed)


def _count_events(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0
