"""The journal view on real PostgreSQL: every statement's running figures
agree with the account aggregates after each write, holds are released and
posted as the domain does it, and however the log is cut into pages (or
replayed from scratch) the tables come out the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from application.clock import SettableClock
from domain.commands import (
    Command,
    ExpirePendingTransfer,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
    create_transfer,
)
from domain.transfer import Posting, Side
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.digest import view_digest
from projections.journal import (
    JournalEntry,
    JournalTransfer,
    JournalView,
    RunningFigures,
    statement_page,
    transfers_page,
)
from projections.rebuild import LIVE_SCHEMA, rebuild_in_place, replay_into_schema
from projections.runner import ProjectionRunner
from tests.support.ledgers import platform_account, transfer, user_account

REPLAY_SCHEMA = "journal_replay"
# Small enough that a page ends between a hold and its resolution.
SMALL_PAGE_SIZE = 3
ROWS_PER_QUERY = 1_000
# Text that COPY and JSON must both carry through unchanged.
AWKWARD_TEXT = 'tab\there, "quoted", back\\slash \\N, new\nline, ü, \u2028'
PAYMENT_METADATA = {"kind": "payment", "order": "42", "note": AWKWARD_TEXT}


@pytest.fixture
def quiet_ledger(database_url: str, tmp_path: Path, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger whose own projection runner never starts: each test drives its runners."""
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    running = build_ledger(settings, clock=clock, start_projections=False)
    try:
        yield running
    finally:
        running.close()


def journal_runner(database_url: str, page_size: int = 5_000) -> ProjectionRunner:
    runner = ProjectionRunner(database_url, [JournalView()], page_size=page_size)
    runner.prepare()
    return runner


def write(ledger: Ledger, *commands: Command) -> list[UUID]:
    receipt = ledger.service.execute(list(commands))
    for result in receipt.results:
        assert result.succeeded, result
    return [result.id for result in receipt.results if result.id is not None]


def whole_statement(database_url: str, account_id: UUID) -> list[JournalEntry]:
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        return statement_page(cursor, account_id, limit=ROWS_PER_QUERY).entries


def journal_transfer(database_url: str, transfer_id: UUID) -> JournalTransfer:
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        found = [
            row
            for row in transfers_page(cursor, limit=ROWS_PER_QUERY)
            if row.transfer_id == transfer_id
        ]
    assert len(found) == 1, transfer_id
    return found[0]


def figures_of(ledger: Ledger, account_id: UUID) -> RunningFigures:
    account = ledger.service.account(account_id)
    assert account is not None
    totals = account.totals
    return RunningFigures(
        totals.credits_posted - totals.debits_posted, totals.debits_pending, totals.credits_pending
    )


def last_figures(database_url: str, account_id: UUID) -> RunningFigures:
    entries = whole_statement(database_url, account_id)
    return entries[-1].after if entries else RunningFigures(0, 0, 0)


def journal_digest(database_url: str, schema: str) -> dict[str, str]:
    with psycopg.connect(database_url) as connection, connection.transaction():
        return view_digest(connection, JournalView(), schema)


class Story:
    """Accounts and a history that exercises every kind of entry."""

    def __init__(self, ledger: Ledger, clock: SettableClock) -> None:
        self.ledger = ledger
        self.clock = clock
        cash, alice, bob = platform_account(), user_account(), user_account(owner_id="bob")
        write(ledger, cash, alice, bob)
        self.cash, self.alice, self.bob = cash.account_id, alice.account_id, bob.account_id

    def writes(self) -> Iterator[str]:
        """Make the history one write at a time, naming each after making it."""
        ledger, cash, alice, bob = self.ledger, self.cash, self.alice, self.bob
        write(ledger, transfer(cash, alice, 10_000, metadata={"kind": "funding"}))
        yield "funded"
        (self.hold,) = write(ledger, transfer(alice, bob, 3_000, pending=True, timeout_s=600))
        yield "held"
        write(ledger, PostPendingTransfer(self.hold, 1_000))
        yield "partially posted"
        (self.voided,) = write(ledger, transfer(alice, bob, 2_000, pending=True, timeout_s=600))
        write(ledger, VoidPendingTransfer(self.voided))
        yield "voided"
        (self.expired,) = write(ledger, transfer(alice, cash, 500, pending=True, timeout_s=60))
        self.clock.advance(timedelta(seconds=61))
        result = ledger.service.execute([ExpirePendingTransfer(self.expired)]).results[0]
        # The writer's own sweep may have expired it first.
        assert result.succeeded or result.code.value == "pending_transfer_expired", result
        yield "expired"
        (self.payment,) = write(ledger, transfer(alice, bob, 700, metadata=PAYMENT_METADATA))
        (self.reversal,) = write(ledger, ReverseTransfer(self.payment))
        yield "reversed"
        two_legs = create_transfer(
            idempotency_key=f"split-{uuid.uuid4()}",
            postings=(
                Posting(alice, Side.DEBIT, 100, "USD"),
                Posting(alice, Side.DEBIT, 50, "USD"),
                Posting(cash, Side.CREDIT, 150, "USD"),
            ),
        )
        (self.split,) = write(ledger, two_legs)
        yield "two postings on one account"
        # Made and resolved in one batch: the row is written already resolved.
        same_batch = transfer(bob, cash, 400, pending=True, timeout_s=600)
        write(ledger, same_batch, PostPendingTransfer(same_batch.transfer_id))
        self.same_batch = same_batch.transfer_id
        yield "held and posted in one write"

    def play(self) -> None:
        for _ in self.writes():
            pass


def test_running_figures_equal_the_account_totals_after_every_write(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    story = Story(quiet_ledger, clock)
    runner = journal_runner(quiet_ledger.database_url)
    try:
        for step in story.writes():
            runner.catch_up()
            for account_id in (story.cash, story.alice, story.bob):
                assert last_figures(quiet_ledger.database_url, account_id) == figures_of(
                    quiet_ledger, account_id
                ), step
    finally:
        runner.stop()


def test_holds_are_held_posted_released_and_reversals_posted(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    story = Story(quiet_ledger, clock)
    story.play()
    runner = journal_runner(quiet_ledger.database_url)
    try:
        runner.catch_up()
    finally:
        runner.stop()
    url = quiet_ledger.database_url
    lines = [
        (entry.entry_type, entry.side, entry.amount_minor, entry.after)
        for entry in whole_statement(url, story.alice)
    ]
    assert lines == [
        ("posted", "credit", 10_000, RunningFigures(10_000, 0, 0)),
        ("pending", "debit", 3_000, RunningFigures(10_000, 3_000, 0)),
        # A partial post posts 1,000 and releases the whole 3,000 hold.
        ("pending_posted", "debit", 1_000, RunningFigures(9_000, 0, 0)),
        ("pending", "debit", 2_000, RunningFigures(9_000, 2_000, 0)),
        ("pending_voided", "debit", 2_000, RunningFigures(9_000, 0, 0)),
        ("pending", "debit", 500, RunningFigures(9_000, 500, 0)),
        ("pending_expired", "debit", 500, RunningFigures(9_000, 0, 0)),
        ("posted", "debit", 700, RunningFigures(8_300, 0, 0)),
        ("posted", "credit", 700, RunningFigures(9_000, 0, 0)),
        ("posted", "debit", 100, RunningFigures(8_900, 0, 0)),
        ("posted", "debit", 50, RunningFigures(8_850, 0, 0)),
    ]
    split = [e for e in whole_statement(url, story.alice) if e.transfer_id == story.split]
    assert [entry.seq for entry in split] == [0, 1]
    bob_lines = [(e.entry_type, e.side, e.amount_minor) for e in whole_statement(url, story.bob)]
    assert ("pending_posted", "credit", 1_000) in bob_lines
    assert bob_lines[-2:] == [("pending", "debit", 400), ("pending_posted", "debit", 400)]

    hold = journal_transfer(url, story.hold)
    assert (hold.status, hold.pending) == ("posted", True)
    assert [p["amount_minor"] for p in hold.postings] == [3_000, 3_000]
    assert [p["amount_minor"] for p in hold.posted_postings] == [1_000, 1_000]
    assert hold.resolved_at is not None
    assert journal_transfer(url, story.voided).status == "voided"
    assert journal_transfer(url, story.voided).posted_postings == []
    assert journal_transfer(url, story.expired).status == "expired"
    payment = journal_transfer(url, story.payment)
    assert payment.metadata == PAYMENT_METADATA
    assert payment.reversed_by_transfer_id == story.reversal
    assert payment.resolved_at == payment.recorded_at
    reversal = journal_transfer(url, story.reversal)
    assert reversal.reverses_transfer_id == story.payment
    assert [(p["side"], p["account_id"]) for p in reversal.postings] == [
        ("credit", str(story.alice)),
        ("debit", str(story.bob)),
    ]
    same_batch = journal_transfer(url, story.same_batch)
    assert same_batch.status == "posted"
    assert same_batch.posted_postings == same_batch.postings


def test_small_pages_by_fresh_views_and_rebuilds_give_the_same_tables(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    Story(quiet_ledger, clock).play()
    url = quiet_ledger.database_url
    # Pages of three events, each applied by a new view that remembers
    # nothing: holds and running figures are read back from the tables.
    while True:
        runner = journal_runner(url, page_size=SMALL_PAGE_SIZE)
        try:
            read = runner.run_once()
        finally:
            runner.stop()
        if read < SMALL_PAGE_SIZE:
            break
    paged = journal_digest(url, LIVE_SCHEMA)

    replay_into_schema(url, JournalView(), REPLAY_SCHEMA)
    assert journal_digest(url, REPLAY_SCHEMA) == paged
    rebuild_in_place(url, JournalView())
    assert journal_digest(url, LIVE_SCHEMA) == paged


def test_transfers_are_found_by_account_time_and_metadata_a_page_at_a_time(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    story = Story(quiet_ledger, clock)
    story.play()
    runner = journal_runner(quiet_ledger.database_url)
    try:
        runner.catch_up()
    finally:
        runner.stop()
    with psycopg.connect(quiet_ledger.database_url) as connection, connection.cursor() as cursor:
        everything = transfers_page(cursor, limit=ROWS_PER_QUERY)
        assert [t.position for t in everything] == sorted(t.position for t in everything)

        bobs = transfers_page(cursor, account_id=story.bob, limit=ROWS_PER_QUERY)
        assert [t.transfer_id for t in bobs] == [
            story.hold,
            story.voided,
            story.payment,
            story.reversal,
            story.same_batch,
        ]
        # The split transfer has two postings on alice's account: listed once.
        alices = transfers_page(cursor, account_id=story.alice, limit=ROWS_PER_QUERY)
        assert [t.transfer_id for t in alices].count(story.split) == 1

        paid = transfers_page(cursor, metadata={"kind": "payment"}, limit=ROWS_PER_QUERY)
        assert [t.transfer_id for t in paid] == [story.payment]
        both = {"kind": "payment", "order": "42"}
        assert transfers_page(cursor, metadata=both, limit=ROWS_PER_QUERY) == paid
        assert transfers_page(cursor, metadata={"note": AWKWARD_TEXT}, limit=9) == paid
        wrong = {"kind": "payment", "order": "43"}
        assert transfers_page(cursor, metadata=wrong, limit=ROWS_PER_QUERY) == []

        middle = everything[len(everything) // 2]
        later = transfers_page(cursor, logged_from=middle.logged_at, limit=ROWS_PER_QUERY)
        earlier = transfers_page(cursor, logged_to=middle.logged_at, limit=ROWS_PER_QUERY)
        assert earlier + later == everything
        assert all(t.logged_at >= middle.logged_at for t in later)

        pages: list[list[JournalTransfer]] = []
        after = 0
        while page := transfers_page(cursor, account_id=story.bob, after_position=after, limit=2):
            pages.append(page)
            after = page[-1].position
        assert [len(page) for page in pages] == [2, 2, 1]
        assert [t for page in pages for t in page] == bobs


def test_a_statement_page_opens_with_the_figures_before_its_first_entry(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    story = Story(quiet_ledger, clock)
    story.play()
    runner = journal_runner(quiet_ledger.database_url)
    try:
        runner.catch_up()
    finally:
        runner.stop()
    everything = whole_statement(quiet_ledger.database_url, story.alice)
    with psycopg.connect(quiet_ledger.database_url) as connection, connection.cursor() as cursor:
        opening = RunningFigures(0, 0, 0)
        after: tuple[int, int] | None = None
        read: list[JournalEntry] = []
        while True:
            page = statement_page(cursor, story.alice, after=after, limit=4)
            if not page.entries:
                assert page.opening == opening
                break
            assert page.opening == opening
            read.extend(page.entries)
            opening = page.entries[-1].after
            after = (page.entries[-1].position, page.entries[-1].seq)
        assert read == everything

        start = everything[3]
        ranged = statement_page(cursor, story.alice, logged_from=start.logged_at, limit=100)
        assert ranged.entries[0] == start
        assert ranged.opening == everything[2].after
        after_the_end = statement_page(
            cursor, story.alice, logged_from=everything[-1].logged_at + timedelta(days=1), limit=5
        )
        assert after_the_end.entries == []
        assert after_the_end.opening == everything[-1].after
