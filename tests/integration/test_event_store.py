"""The event store on real PostgreSQL: big saves, immutability, the hash chain,
and the index of pending deadlines."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from application.clock import SettableClock
from domain.commands import Command, open_account
from domain.result_codes import ResultCode
from domain.transfer import TransferStatus
from interface.bootstrap import Ledger
from tests.support.audit import audit, first_broken_link, read_event_rows
from tests.support.ledgers import EPOCH, platform_account, transfer, user_account

BATCH = 8190


def _execute_ok(ledger: Ledger, commands: Sequence[Command], timeout_s: float = 60) -> None:
    receipt = ledger.writer.submit(commands).result(timeout=timeout_s)
    codes = {result.code for result in receipt.results}
    assert codes == {ResultCode.OK}, codes


def _some_history(ledger: Ledger) -> None:
    """A few accounts and transfers, written in several separate transactions."""
    cash, alice, bob = platform_account(), user_account(), user_account()
    _execute_ok(ledger, [cash, alice, bob])
    _execute_ok(ledger, [transfer(cash.account_id, alice.account_id, 50_000)])
    _execute_ok(ledger, [transfer(alice.account_id, bob.account_id, 1_000 + i) for i in range(5)])
    _execute_ok(ledger, [transfer(bob.account_id, cash.account_id, 700)])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_one_writer_batch_that_saves_over_20000_events_over_the_unix_socket_completes(
    ledger: Ledger,
) -> None:
    if not os.environ.get("LEDGER_TEST_DATABASE_URL"):
        # The embedded server offers only a Unix socket: where the hang was seen.
        assert str(conninfo_to_dict(ledger.database_url).get("host", "")).startswith("/")
    accounts = [
        open_account(idempotency_key=f"big-save-{index}", currency="USD", owner_id="owner")
        for index in range(2 * BATCH)
    ]
    _execute_ok(ledger, accounts[:BATCH])
    _execute_ok(ledger, accounts[BATCH:])
    # Every transfer touches two accounts of its own: one batch writes a
    # Recorded event per transfer and a PostingsApplied event per account.
    transfers = [
        transfer(accounts[2 * i].account_id, accounts[2 * i + 1].account_id, 100 + i)
        for i in range(BATCH)
    ]
    statistics = ledger.writer.statistics
    batches_before, events_before = statistics.batches_committed, statistics.events_written

    # A save that hung (as the library's pipelined insert does at this size)
    # would run into this timeout: the bound is the test, not a timing.
    _execute_ok(ledger, transfers, timeout_s=150)

    assert statistics.batches_committed == batches_before + 1, "the transfers took one batch"
    events_in_batch = statistics.events_written - events_before
    assert events_in_batch == 3 * BATCH >= 20_000
    rows, replayed = audit(ledger.database_url)
    assert len(rows) == 2 * BATCH + 3 * BATCH
    assert len(replayed.transfers) == BATCH
    assert replayed.problems() == []
    assert first_broken_link(rows) is None
    last = ledger.service.transfer(transfers[-1].transfer_id)
    assert last is not None
    assert last.postings[0].amount_minor == 100 + BATCH - 1


_CHANGES = {
    "update": "UPDATE ledger_events SET topic = topic || 'x' WHERE notification_id = {id}",
    "delete": "DELETE FROM ledger_events WHERE notification_id = {id}",
    "truncate": "TRUNCATE ledger_events",
}


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_the_database_refuses_to_change_or_remove_stored_events(
    ledger: Ledger, change: str
) -> None:
    _some_history(ledger)
    before = read_event_rows(ledger.database_url)
    statement = _CHANGES[change].format(id=before[1].notification_id)

    with psycopg.connect(ledger.database_url) as connection:
        with pytest.raises(psycopg.DatabaseError) as refused:
            connection.execute(statement)
        assert refused.value.sqlstate is not None, "the server refused it, not the client"
        assert "immutable" in str(refused.value)
        connection.rollback()
        # The statement itself is sound: without the guard it would have changed rows.
        connection.execute("ALTER TABLE ledger_events DISABLE TRIGGER USER")
        connection.execute(statement)
        remaining = connection.execute("SELECT count(*) FROM ledger_events").fetchone()
        changed = connection.execute(
            "SELECT count(*) FROM ledger_events WHERE topic LIKE '%x'"
        ).fetchone()
        assert remaining is not None and changed is not None
        assert remaining[0] < len(before) or changed[0] > 0
        connection.rollback()

    assert read_event_rows(ledger.database_url) == before


def test_the_stored_hash_chain_recomputes_from_the_rows_in_notification_order(
    ledger: Ledger,
) -> None:
    _some_history(ledger)
    rows = read_event_rows(ledger.database_url)
    assert len(rows) >= 10
    assert [row.notification_id for row in rows] == sorted(row.notification_id for row in rows)
    assert first_broken_link(rows) is None
    # Reordering two events breaks the chain where the first of them stood.
    swapped = [rows[0], rows[2], rows[1], *rows[3:]]
    assert first_broken_link(swapped) == 1


def test_changing_one_byte_of_a_stored_event_breaks_the_chain_at_exactly_that_event(
    ledger: Ledger,
) -> None:
    _some_history(ledger)
    rows = read_event_rows(ledger.database_url)
    target = len(rows) // 2
    state = bytearray(rows[target].state)
    state[len(state) // 2] ^= 0x01

    with psycopg.connect(ledger.database_url, autocommit=True) as connection:
        connection.execute("ALTER TABLE ledger_events DISABLE TRIGGER USER")
        try:
            connection.execute(
                "UPDATE ledger_events SET state = %s WHERE notification_id = %s",
                (bytes(state), rows[target].notification_id),
            )
        finally:
            connection.execute("ALTER TABLE ledger_events ENABLE TRIGGER USER")

    tampered = read_event_rows(ledger.database_url)
    assert tampered[target].state == bytes(state)
    assert first_broken_link(tampered) == target
    assert first_broken_link(tampered[:target]) is None


def _deadlines(database_url: str) -> list[tuple[UUID, Any]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT transfer_id, expires_at FROM ledger_pending_deadlines ORDER BY expires_at"
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _wait_for(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.mark.timeout(60)
def test_the_writer_expires_a_pending_transfer_once_the_clock_passes_its_deadline(
    ledger: Ledger, clock: SettableClock
) -> None:
    cash, alice = platform_account(), user_account()
    _execute_ok(ledger, [cash, alice])
    _execute_ok(ledger, [transfer(cash.account_id, alice.account_id, 10_000)])
    hold = transfer(alice.account_id, cash.account_id, 2_500, pending=True, timeout_s=60)
    _execute_ok(ledger, [hold])
    assert _deadlines(ledger.database_url) == [(hold.transfer_id, EPOCH + timedelta(seconds=60))]

    clock.advance(timedelta(seconds=59))
    sweep = ledger.writer.limits.expiry_sweep_interval_s
    time.sleep(2.5 * sweep)
    still_pending = ledger.service.transfer(hold.transfer_id)
    assert still_pending is not None and still_pending.status is TransferStatus.PENDING
    assert len(_deadlines(ledger.database_url)) == 1

    clock.advance(timedelta(seconds=2))

    def expired() -> bool:
        found = ledger.service.transfer(hold.transfer_id)
        return found is not None and found.status is TransferStatus.EXPIRED

    assert _wait_for(expired, timeout_s=10 * sweep + 5)
    assert _deadlines(ledger.database_url) == []
    account = ledger.service.account(alice.account_id)
    assert account is not None
    assert account.totals.debits_pending == 0
    assert account.totals.debits_posted == 0
    assert account.totals.credits_posted == 10_000
    assert ledger.writer.statistics.pending_transfers_expired == 1
    _, replayed = audit(ledger.database_url)
    assert replayed.problems() == []


def test_a_cached_account_catches_up_with_only_the_events_recorded_after_it(
    ledger: Ledger,
) -> None:
    cash, user = platform_account(), user_account()
    _execute_ok(ledger, [cash, user])
    stale = ledger.app.load_account(user.account_id)
    assert stale is not None and stale.version == 1
    _execute_ok(ledger, [transfer(cash.account_id, user.account_id, 70)])
    _execute_ok(ledger, [transfer(cash.account_id, user.account_id, 30)])
    later = ledger.app.ledger_recorder.select_events_after({user.account_id: 1, cash.account_id: 2})
    assert [event.originator_version for event in later[user.account_id]] == [2, 3]
    assert [event.originator_version for event in later[cash.account_id]] == [3]
    ledger.app.catch_up([stale])
    fresh = ledger.app.load_account(user.account_id)
    assert fresh is not None
    assert (stale.version, stale.totals) == (fresh.version, fresh.totals) == (3, fresh.totals)
    assert stale.totals.credits_posted == 100
