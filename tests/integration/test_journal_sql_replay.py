"""The journal's set-based replay (in SQL) against its Python paths (the live
runner's, page by page, and a replay from empty), on real PostgreSQL: a
varied history through the real writer gives the same rows, row for row,
and the same tables; a replay up to a position stops there; and after a
replay or a rebuild in SQL the Python path goes on with new events from
what the tables hold."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
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
from projections.digest import differing_rows, view_digest
from projections.journal import JournalView, RunningFigures
from projections.rebuild import (
    LIVE_SCHEMA,
    rebuild_in_place,
    replay_into_schema,
    schema_connection,
)
from projections.runner import ProjectionRunner, read_events
from projections.view import apply_page
from tests.support.ledgers import platform_account, transfer, user_account

SQL_SCHEMA = "journal_sql_replay"
PYTHON_SCHEMA = "journal_python_replay"
# Small pages: holds are resolved pages after they were made, and running
# figures are read back from the tables between pages.
SMALL_PAGE_SIZE = 7
CURRENCIES = ("USD", "EUR", "JPY")
USERS_PER_CURRENCY = 3
# Transfers back and forth between two accounts: a long statement.
LONG_HISTORY_TRANSFERS = 240
COMMANDS_PER_WRITE = 40
# What the widest transfer debits each user (twice: this and one more).
SPLIT_DEBIT_MINOR = 7
HOLD_TIMEOUT_S = 600
EXPIRING_TIMEOUT_S = 60
# More than the events any test here writes after a replay.
EVENTS_READ_MAX = 10_000
AWKWARD_TEXT = 'tab\there, "quoted", back\\slash \\N, new\nline, ü, \u2028'


@pytest.fixture
def quiet_ledger(database_url: str, tmp_path: Path, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger whose own projection runner never starts: each test drives its runners."""
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    running = build_ledger(settings, clock=clock, start_projections=False)
    try:
        yield running
    finally:
        running.close()


def write(ledger: Ledger, *commands: Command) -> list[UUID]:
    receipt = ledger.service.execute(list(commands))
    for result in receipt.results:
        assert result.succeeded, result
    return [result.id for result in receipt.results if result.id is not None]


class History:
    """Accounts in several currencies and a history with every kind of entry;
    `open_holds` are left pending for a test to resolve later."""

    def __init__(self, ledger: Ledger, clock: SettableClock) -> None:
        self.ledger = ledger
        self.clock = clock
        self.cash: dict[str, UUID] = {}
        self.users: dict[str, list[UUID]] = {}
        for currency in CURRENCIES:
            cash = platform_account(currency=currency)
            users = [user_account(currency=currency) for _ in range(USERS_PER_CURRENCY)]
            write(ledger, cash, *users)
            self.cash[currency] = cash.account_id
            self.users[currency] = [user.account_id for user in users]
        self.open_holds: list[UUID] = []

    def write_all(self) -> None:
        ledger, usd = self.ledger, "USD"
        alice, bob, carol = self.users[usd]
        for currency in CURRENCIES:
            write(
                ledger,
                *(
                    transfer(self.cash[currency], user, 1_000_000, currency=currency)
                    for user in self.users[currency]
                ),
            )
        # A long statement, many transfers per write (one writer batch each).
        for start in range(0, LONG_HISTORY_TRANSFERS, COMMANDS_PER_WRITE):
            write(
                ledger,
                *(
                    transfer(alice, bob, 100 + number) if number % 3 else transfer(bob, alice, 50)
                    for number in range(start, start + COMMANDS_PER_WRITE)
                ),
            )
        (posted_in_full,) = write(
            ledger, transfer(alice, carol, 3_000, pending=True, timeout_s=HOLD_TIMEOUT_S)
        )
        (posted_in_part,) = write(
            ledger, transfer(bob, alice, 2_000, pending=True, timeout_s=HOLD_TIMEOUT_S)
        )
        (voided,) = write(ledger, transfer(carol, bob, 900, pending=True, timeout_s=HOLD_TIMEOUT_S))
        write(ledger, transfer(alice, bob, 10, metadata={"kind": "filler"}))
        write(
            ledger,
            PostPendingTransfer(posted_in_full),
            PostPendingTransfer(posted_in_part, 1_250),
            VoidPendingTransfer(voided),
        )
        (expiring,) = write(
            ledger, transfer(carol, alice, 400, pending=True, timeout_s=EXPIRING_TIMEOUT_S)
        )
        self.clock.advance(timedelta(seconds=EXPIRING_TIMEOUT_S + 1))
        result = ledger.service.execute([ExpirePendingTransfer(expiring)]).results[0]
        # The writer's own sweep may have expired it first.
        assert result.succeeded or result.code.value == "pending_transfer_expired", result
        (payment,) = write(
            ledger,
            transfer(alice, bob, 700, metadata={"kind": "payment", "note": AWKWARD_TEXT}),
        )
        write(ledger, ReverseTransfer(payment, metadata={"reason": "refund"}))
        # A posted hold reversed too.
        write(ledger, ReverseTransfer(posted_in_full))
        write(ledger, self.widest_transfer(pending=False))
        (wide_hold,) = write(ledger, self.widest_transfer(pending=True))
        write(ledger, PostPendingTransfer(wide_hold))
        # Made and resolved in one write (the writer's one batch).
        same_batch = transfer(bob, carol, 300, pending=True, timeout_s=HOLD_TIMEOUT_S)
        write(ledger, same_batch, VoidPendingTransfer(same_batch.transfer_id))
        self.open_holds = write(
            ledger,
            transfer(alice, bob, 111, pending=True, timeout_s=HOLD_TIMEOUT_S),
            transfer(carol, alice, 222, pending=True, timeout_s=HOLD_TIMEOUT_S),
            self.widest_transfer(pending=True),
        )

    def widest_transfer(self, *, pending: bool) -> Command:
        """Every user of every currency debited twice, each currency's cash
        credited: many postings, several currencies, balanced per currency."""
        postings: list[Posting] = []
        for currency in CURRENCIES:
            users = self.users[currency]
            for user in users:
                postings.append(Posting(user, Side.DEBIT, SPLIT_DEBIT_MINOR, currency))
                postings.append(Posting(user, Side.DEBIT, SPLIT_DEBIT_MINOR + 1, currency))
            total = len(users) * (2 * SPLIT_DEBIT_MINOR + 1)
            postings.append(Posting(self.cash[currency], Side.CREDIT, total, currency))
        return create_transfer(
            idempotency_key=f"wide-{uuid.uuid4()}",
            postings=tuple(postings),
            pending=pending,
            timeout_s=HOLD_TIMEOUT_S if pending else None,
            metadata={"lines": str(len(postings))},
        )

    def move_a_little(self) -> None:
        alice, bob, _ = self.users["USD"]
        write(self.ledger, transfer(bob, alice, 5), transfer(alice, bob, 6))

    def resolve_open_holds(self) -> None:
        first, second, wide = self.open_holds
        write(self.ledger, PostPendingTransfer(first, 100), VoidPendingTransfer(second))
        write(self.ledger, PostPendingTransfer(wide))
        self.move_a_little()

    def accounts(self) -> list[UUID]:
        return [*self.cash.values(), *(user for users in self.users.values() for user in users)]


def catch_up_in_python(database_url: str, view: JournalView | None = None) -> JournalView:
    """The live runner's path: pages of Python, into the live tables."""
    view = view or JournalView()
    runner = ProjectionRunner(database_url, [view], page_size=SMALL_PAGE_SIZE)
    try:
        runner.prepare()
        runner.catch_up()
    finally:
        runner.stop()
    return view


def digest(database_url: str, schema: str) -> dict[str, str]:
    with psycopg.connect(database_url) as connection, connection.transaction():
        return view_digest(connection, JournalView(), schema)


def assert_same_rows(database_url: str, expected_schema: str, actual_schema: str) -> None:
    with psycopg.connect(database_url) as connection:
        for table in JournalView.tables:
            assert differing_rows(connection, table, expected_schema, actual_schema) == ([], [])
    assert digest(database_url, actual_schema) == digest(database_url, expected_schema)


def table_definitions(database_url: str, schema: str) -> dict[str, Any]:
    """Columns, constraints and indexes of the journal's tables in `schema`."""
    with psycopg.connect(database_url) as connection:
        columns = connection.execute(
            "SELECT table_name, column_name, data_type, is_nullable"
            " FROM information_schema.columns WHERE table_schema = %s AND table_name = ANY(%s)"
            " ORDER BY table_name, ordinal_position",
            (schema, list(JournalView.tables)),
        ).fetchall()
        constraints = connection.execute(
            "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint AS c"
            " JOIN pg_class AS t ON t.oid = c.conrelid"
            " JOIN pg_namespace AS n ON n.oid = t.relnamespace"
            " WHERE n.nspname = %s AND t.relname = ANY(%s) ORDER BY t.relname, c.conname",
            (schema, list(JournalView.tables)),
        ).fetchall()
        indexes = connection.execute(
            "SELECT indexname, replace(indexdef, %s, '') FROM pg_indexes"
            " WHERE schemaname = %s AND tablename = ANY(%s) ORDER BY indexname",
            (f"{schema}.", schema, list(JournalView.tables)),
        ).fetchall()
    return {
        "columns": columns,
        "constraints": constraints,
        "indexes": indexes,
    }


def last_figures(database_url: str, account_id: UUID) -> RunningFigures:
    """The account's figures after its last entry in the live journal."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT posted_balance, debits_pending, credits_pending FROM view_journal_entries"
            " WHERE account_id = %s ORDER BY position DESC, seq DESC LIMIT 1",
            (account_id,),
        ).fetchone()
    return RunningFigures(0, 0, 0) if row is None else RunningFigures(*row)


def account_figures(ledger: Ledger, account_id: UUID) -> RunningFigures:
    account = ledger.service.account(account_id)
    assert account is not None
    totals = account.totals
    return RunningFigures(
        totals.credits_posted - totals.debits_posted, totals.debits_pending, totals.credits_pending
    )


def test_the_sql_replay_gives_the_python_paths_rows_and_tables(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    url = quiet_ledger.database_url
    history = History(quiet_ledger, clock)
    history.write_all()
    catch_up_in_python(url)

    replay_into_schema(url, JournalView(), SQL_SCHEMA)
    replay_into_schema(url, JournalView(), PYTHON_SCHEMA, set_based=False)

    assert_same_rows(url, LIVE_SCHEMA, SQL_SCHEMA)
    assert_same_rows(url, PYTHON_SCHEMA, SQL_SCHEMA)
    assert table_definitions(url, SQL_SCHEMA) == table_definitions(url, LIVE_SCHEMA)
    with psycopg.connect(url) as connection:
        counts = connection.execute(
            "SELECT entry_type, count(*) FROM journal_sql_replay.view_journal_entries"
            " GROUP BY entry_type"
        ).fetchall()
    # Every kind of entry was compared, not just some.
    assert {kind for kind, _ in counts} == {
        "posted",
        "pending",
        "pending_posted",
        "pending_voided",
        "pending_expired",
    }


def test_a_replay_up_to_a_position_stops_there(quiet_ledger: Ledger, clock: SettableClock) -> None:
    url = quiet_ledger.database_url
    history = History(quiet_ledger, clock)
    history.write_all()
    catch_up_in_python(url)
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT position FROM projection_tracking WHERE name = 'journal'"
        ).fetchone()
    assert row is not None
    until = int(row[0])
    at_until = digest(url, LIVE_SCHEMA)
    history.resolve_open_holds()

    assert replay_into_schema(url, JournalView(), SQL_SCHEMA, until=until) == until

    assert digest(url, SQL_SCHEMA) == at_until


def test_after_a_replay_in_sql_the_view_goes_on_in_python_from_the_tables(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    url = quiet_ledger.database_url
    history = History(quiet_ledger, clock)
    history.write_all()
    view = JournalView()
    position = replay_into_schema(url, view, SQL_SCHEMA)
    # Holds made before the replay are resolved after it, on accounts it moved:
    # the view must read them back, having been told its memory lacks them.
    history.resolve_open_holds()

    with (
        schema_connection(url, SQL_SCHEMA) as connection,
        connection.transaction(),
        connection.cursor() as cursor,
    ):
        apply_page(view, cursor, read_events(cursor, position, EVENTS_READ_MAX))

    catch_up_in_python(url)
    assert_same_rows(url, LIVE_SCHEMA, SQL_SCHEMA)


def test_a_live_runner_goes_on_after_a_rebuild_in_sql(
    quiet_ledger: Ledger, clock: SettableClock
) -> None:
    url = quiet_ledger.database_url
    history = History(quiet_ledger, clock)
    history.write_all()
    runner = ProjectionRunner(url, [JournalView()], page_size=SMALL_PAGE_SIZE)
    try:
        runner.prepare()
        runner.catch_up()
        # Past where the runner stopped: the rebuild moves the view's position
        # beyond what the runner knows, so it must forget and read back.
        history.move_a_little()
        rebuild_in_place(url, JournalView())
        history.resolve_open_holds()
        runner.catch_up()
    finally:
        runner.stop()

    replay_into_schema(url, JournalView(), SQL_SCHEMA)
    assert_same_rows(url, SQL_SCHEMA, LIVE_SCHEMA)
    for account_id in history.accounts():
        assert last_figures(url, account_id) == account_figures(quiet_ledger, account_id)
