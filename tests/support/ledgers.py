"""Building ledgers for tests, and small helpers to drive them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from application.clock import SettableClock
from application.event_log import LedgerApplication
from application.writer import LedgerWriter, WriterLimits
from domain.account import Account, AccountKind
from domain.commands import Command, CreateTransfer, OpenAccount, create_transfer, open_account
from domain.ledger_batch import CommandResult
from domain.transfer import Posting, Side, Transfer
from tests.support.in_memory_recorder import InMemoryLedgerRecorder

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def in_memory_writer(
    clock: SettableClock | None = None, limits: WriterLimits | None = None
) -> tuple[LedgerApplication, LedgerWriter, SettableClock]:
    app = LedgerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        recorder_factory=lambda _factory: InMemoryLedgerRecorder(),
    )
    clock = clock or SettableClock(EPOCH)
    return app, LedgerWriter(app, clock, limits), clock


def user_account(key: str | None = None, currency: str = "USD", **terms: object) -> OpenAccount:
    """A user account that cannot spend more than it holds."""
    return open_account(
        idempotency_key=key or f"acct-{uuid.uuid4()}",
        currency=currency,
        owner_id=str(terms.pop("owner_id", "owner-1")),
        debits_must_not_exceed_credits=True,
        **terms,  # type: ignore[arg-type]
    )


def platform_account(
    key: str | None = None, kind: AccountKind = AccountKind.CASH, currency: str = "USD"
) -> OpenAccount:
    """A platform account with no limit: where money enters the ledger."""
    return open_account(
        idempotency_key=key or f"platform-{uuid.uuid4()}",
        currency=currency,
        owner_id="platform",
        kind=kind,
    )


def transfer(
    debit_account_id: UUID,
    credit_account_id: UUID,
    amount_minor: int,
    *,
    key: str | None = None,
    currency: str = "USD",
    **options: object,
) -> CreateTransfer:
    return create_transfer(
        idempotency_key=key or f"tr-{uuid.uuid4()}",
        postings=(
            Posting(debit_account_id, Side.DEBIT, amount_minor, currency),
            Posting(credit_account_id, Side.CREDIT, amount_minor, currency),
        ),
        **options,  # type: ignore[arg-type]
    )


@dataclass
class LedgerHarness:
    """A writer driven synchronously (its thread never started), read back from events."""

    app: LedgerApplication
    writer: LedgerWriter
    clock: SettableClock

    def run(self, *commands: Command) -> list[CommandResult]:
        return self.writer.apply(list(commands)).results

    def run_one(self, command: Command) -> CommandResult:
        (result,) = self.run(command)
        return result

    def account(self, account_id: UUID) -> Account:
        account = self.app.load_account(account_id)
        assert account is not None, f"no account {account_id} in the event store"
        return account

    def transfer(self, transfer_id: UUID) -> Transfer:
        found = self.app.load_transfers([transfer_id]).get(transfer_id)
        assert found is not None, f"no transfer {transfer_id} in the event store"
        return found

    def has_transfer(self, transfer_id: UUID) -> bool:
        return transfer_id in self.app.load_transfers([transfer_id])

    def events_written(self) -> int:
        return self.app.recorder.max_notification_id() or 0


def in_memory_ledger(
    clock: SettableClock | None = None, limits: WriterLimits | None = None
) -> LedgerHarness:
    return LedgerHarness(*in_memory_writer(clock, limits))
