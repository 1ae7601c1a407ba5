"""Auditing a ledger's database from its rows alone, as an outside auditor would.

Reads `ledger_events` with plain SQL in notification order, recomputes the
hash chain (version 2, as the database chains every event of a log begun
after migration 0012), and replays every aggregate from its events (no snapshots, no
caches, none of the service's own read paths) to check the ledger's
invariants: each transfer balanced, each account's totals equal to the sum of
the postings of the transfers behind them, total debits equal to total
credits, and no flagged account ever past its limit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent

from application.event_log import LedgerApplication
from domain.account import Account, Totals
from domain.event_chain import GENESIS_HASH, chained_link_of
from domain.transfer import Posting, Side, Transfer, TransferStatus
from tests.support.in_memory_recorder import InMemoryLedgerRecorder


@dataclass(frozen=True, slots=True)
class EventRow:
    notification_id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes
    event_hash: bytes
    recorded_at: datetime

    def stored_event(self) -> StoredEvent:
        return StoredEvent(
            originator_id=self.originator_id,
            originator_version=self.originator_version,
            topic=self.topic,
            state=self.state,
        )


def read_event_rows(database_url: str) -> list[EventRow]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state, event_hash,"
            " recorded_at FROM ledger_events ORDER BY notification_id"
        ).fetchall()
    return [
        EventRow(
            int(row[0]), row[1], int(row[2]), str(row[3]), bytes(row[4]), bytes(row[5]), row[6]
        )
        for row in rows
    ]


def first_broken_link(rows: list[EventRow]) -> int | None:
    """Index of the first row whose stored hash does not follow from the one
    before it (the stored predecessor); None when the whole chain holds."""
    previous = GENESIS_HASH
    for index, row in enumerate(rows):
        expected = chained_link_of(
            previous,
            row.notification_id,
            row.originator_id,
            row.originator_version,
            row.topic,
            row.state,
            row.recorded_at,
        )
        if expected != row.event_hash:
            return index
        previous = row.event_hash
    return None


def event_mapper() -> Mapper[UUID]:
    """The ledger's own mapper (same transcodings), without touching a database."""
    app = LedgerApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        recorder_factory=lambda _factory: InMemoryLedgerRecorder(),
    )
    return app.mapper


@dataclass
class Replay:
    accounts: dict[UUID, Account] = field(default_factory=dict)
    transfers: dict[UUID, Transfer] = field(default_factory=dict)
    # Transfer ids named by each account's PostingsApplied events.
    listed_transfer_ids: dict[UUID, set[UUID]] = field(default_factory=lambda: defaultdict(set))
    # A flagged account past its limit after some event: (account id, version, totals).
    limit_breaches: list[tuple[UUID, int, Totals]] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every broken invariant, described; empty when the ledger is sound."""
        found: list[str] = []
        expected: dict[UUID, Totals] = defaultdict(Totals)
        touching: dict[UUID, set[UUID]] = defaultdict(set)
        for transfer in self.transfers.values():
            found.extend(_unbalanced(transfer))
            for posting in transfer.postings:
                touching[posting.account_id].add(transfer.id)
                if posting.account_id not in self.accounts:
                    found.append(f"transfer {transfer.id} names no account {posting.account_id}")
            for posting, totals in _effects(transfer):
                expected[posting.account_id] = expected[posting.account_id].plus(totals)
        for account_id, account in self.accounts.items():
            if account.totals != expected[account_id]:
                found.append(
                    f"account {account_id} totals {account.totals} != sum of its transfers' "
                    f"postings {expected[account_id]}"
                )
            listed = self.listed_transfer_ids[account_id]
            if listed != touching[account_id]:
                found.append(
                    f"account {account_id} lists transfers that differ from those posting to it: "
                    f"only listed {listed - touching[account_id]}, "
                    f"not listed {touching[account_id] - listed}"
                )
        for currency, totals in self.totals_by_currency().items():
            if totals.debits_posted != totals.credits_posted:
                found.append(
                    f"{currency}: posted debits {totals.debits_posted} != "
                    f"posted credits {totals.credits_posted}"
                )
            if totals.debits_pending != totals.credits_pending:
                found.append(
                    f"{currency}: pending debits {totals.debits_pending} != "
                    f"pending credits {totals.credits_pending}"
                )
        found.extend(
            f"flagged account {account_id} past its limit at version {version}: {totals}"
            for account_id, version, totals in self.limit_breaches
        )
        return found

    def totals_by_currency(self) -> dict[str, Totals]:
        """Every account's totals summed, per currency."""
        sums: dict[str, Totals] = defaultdict(Totals)
        for account in self.accounts.values():
            sums[account.currency] = sums[account.currency].plus(account.totals)
        return dict(sums)


def replay(rows: list[EventRow], mapper: Mapper[UUID] | None = None) -> Replay:
    mapper = mapper or event_mapper()
    result = Replay()
    aggregates: dict[UUID, Aggregate] = {}
    for row in rows:
        domain_event: Any = mapper.to_domain_event(row.stored_event())
        aggregate = domain_event.mutate(aggregates.get(row.originator_id))
        aggregates[row.originator_id] = aggregate
        transfer_ids = getattr(domain_event, "transfer_ids", None)
        if transfer_ids is not None:
            result.listed_transfer_ids[row.originator_id].update(UUID(t) for t in transfer_ids)
        if isinstance(aggregate, Account) and aggregate.debits_must_not_exceed_credits:
            totals = aggregate.totals
            if totals.debits_pending + totals.debits_posted > totals.credits_posted:
                result.limit_breaches.append((aggregate.id, aggregate.version, totals))
    for originator_id, aggregate in aggregates.items():
        if isinstance(aggregate, Account):
            result.accounts[originator_id] = aggregate
        elif isinstance(aggregate, Transfer):
            result.transfers[originator_id] = aggregate
    return result


def audit(database_url: str) -> tuple[list[EventRow], Replay]:
    rows = read_event_rows(database_url)
    return rows, replay(rows)


def _effects(transfer: Transfer) -> list[tuple[Posting, Totals]]:
    """What a transfer in its current state adds to each account's totals."""
    if transfer.status is TransferStatus.POSTED:
        return [(posting, _posted(posting)) for posting in transfer.posted_postings]
    if transfer.status is TransferStatus.PENDING:
        return [(posting, _pending(posting)) for posting in transfer.postings]
    return []


def _posted(posting: Posting) -> Totals:
    if posting.side is Side.DEBIT:
        return Totals(debits_posted=posting.amount_minor)
    return Totals(credits_posted=posting.amount_minor)


def _pending(posting: Posting) -> Totals:
    if posting.side is Side.DEBIT:
        return Totals(debits_pending=posting.amount_minor)
    return Totals(credits_pending=posting.amount_minor)


def _unbalanced(transfer: Transfer) -> list[str]:
    problems: list[str] = []
    for label, postings in (("postings", transfer.postings), ("posted", transfer.posted_postings)):
        net: dict[str, int] = defaultdict(int)
        for posting in postings:
            net[posting.currency] += (
                posting.amount_minor if posting.side is Side.DEBIT else -posting.amount_minor
            )
        problems.extend(
            f"transfer {transfer.id} {label} unbalanced in {currency} by {amount}"
            for currency, amount in net.items()
            if amount
        )
    return problems
