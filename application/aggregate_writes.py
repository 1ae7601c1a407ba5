"""One write of ledger commands together with the new events of process aggregates.

Funded accounts, withdrawals (and later closures and forks) change their
aggregates and move money in the same transaction through the writer's
`AggregateChanges`. Every use case does the same thing with the receipt, so
it is here once: recorded, stale (read again and decide again), or a command
refused (raise its refusal, nothing was written). The loop around it, read,
decide, write and again while stale, is here once too (`retry_while_stale`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from application.event_log import LedgerApplication
from application.ports.writer import Writer
from application.writer import AggregateChanges, ChangesOutcome, WriteReceipt
from domain.commands import Command
from domain.funded_account import FundedAccount
from domain.result_codes import LedgerRefusal, ResultCode

# Reads and decisions again after another request recorded first; past this
# the caller gets `concurrent_change` (409) and may retry.
WRITE_ATTEMPTS_MAX: Final[int] = 8

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")


def write_with_aggregates(
    writer: Writer, commands: Sequence[Command], *aggregates: Aggregate
) -> WriteReceipt | None:
    """Record the aggregates' new events with the commands, all or nothing.

    None: another request recorded one of the aggregates first; the caller
    reads it again and decides again. A refused command raises its
    `LedgerRefusal` (the first refusal that is not a linked failure).
    """
    receipt = writer.execute(list(commands), AggregateChanges.collect(*aggregates))
    if receipt.changes is ChangesOutcome.RECORDED:
        return receipt
    if receipt.changes is ChangesOutcome.STALE:
        return None
    refused = next(
        result
        for result in receipt.results
        if not result.succeeded and result.code is not ResultCode.LINKED_EVENT_FAILED
    )
    raise LedgerRefusal(refused.code, refused.message, **refused.details)


def retry_while_stale(attempt: Callable[[], R | None], contended: Callable[[], LedgerRefusal]) -> R:
    """Read, decide, write, and again while another request recorded first.

    `attempt` reads what it changes, decides, writes (`write_with_aggregates`)
    and answers the outcome; None when the write was stale, so it reads and
    decides again. Past `WRITE_ATTEMPTS_MAX` attempts, `contended()` is raised.
    """
    for _ in range(WRITE_ATTEMPTS_MAX):
        outcome = attempt()
        if outcome is not None:
            return outcome
    raise contended()


def change_alone(
    writer: Writer,
    load: Callable[[], A],
    decide: Callable[[A], None],
    contended: Callable[[], LedgerRefusal],
) -> A:
    """Read a process aggregate, decide, record it alone (`retry_while_stale`).
    A decision that records nothing writes nothing."""

    def attempt() -> A | None:
        aggregate = load()
        decide(aggregate)
        if not aggregate.pending_events:
            return aggregate
        if write_with_aggregates(writer, [], aggregate) is None:
            return None
        return aggregate

    return retry_while_stale(attempt, contended)


def require_funded_account(app: LedgerApplication, funded_account_id: UUID) -> FundedAccount:
    account = app.load_funded_account(funded_account_id)
    if account is None:
        raise LedgerRefusal(
            ResultCode.FUNDED_ACCOUNT_NOT_FOUND,
            f"no funded account {funded_account_id}",
            funded_account_id=str(funded_account_id),
        )
    return account
