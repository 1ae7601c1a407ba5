"""The projection runner and its views on real PostgreSQL: they follow the log,
wake on NOTIFY (and without it), share work between two runners, rebuild in
place or through a shadow, and always equal a fresh replay of the events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from uuid import UUID

import psycopg
import pytest

from domain.account import AccountState
from domain.commands import change_account_state
from interface.audit.verify import verify_ledger
from interface.bootstrap import Ledger
from projections.account_summaries import account_summaries
from projections.accounts_directory import AccountsDirectoryView
from projections.balances import BalancesView, balance_as_of
from projections.rebuild import rebuild_all_in_place, rebuild_in_place, rebuild_with_shadow
from projections.registry import all_views, view_names
from projections.runner import ProjectionRunner
from tests.support.ledgers import platform_account, transfer, user_account

# Generous: these bound a wait for behaviour, they do not measure speed.
CATCH_UP_TIMEOUT_S = 60.0


def _fund(ledger: Ledger, accounts: int = 6, transfers: int = 40) -> list[UUID]:
    cash = platform_account()
    users = [user_account(owner_id=f"owner-{index % 3}") for index in range(accounts)]
    ledger.service.execute([cash, *users])
    commands = [
        transfer(cash.account_id, users[index % accounts].account_id, 1_000 + index)
        for index in range(transfers)
    ]
    commands += [
        transfer(users[index % accounts].account_id, cash.account_id, 7, pending=True)
        for index in range(min(accounts, transfers))
    ]
    receipt = ledger.service.execute(commands)
    assert all(result.succeeded for result in receipt.results)
    return [cash.account_id, *(user.account_id for user in users)]


def _caught_up(ledger: Ledger) -> None:
    assert ledger.projections is not None
    reached = ledger.projections.wait_for(
        ledger.writer.last_position, view_names(), CATCH_UP_TIMEOUT_S
    )
    assert reached, ledger.projections.positions()


def _views_equal_a_fresh_replay(database_url: str) -> None:
    report = verify_ledger(database_url, check_views=True)
    assert report.ok, report.findings


def test_balances_and_directory_follow_the_accounts(ledger: Ledger) -> None:
    account_ids = _fund(ledger)
    ledger.service.execute(
        [
            change_account_state(
                account_id=account_ids[1],
                new_state=AccountState.SUSPENDED,
                reason="review",
                actor="ops",
            )
        ]
    )
    _caught_up(ledger)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        summaries = account_summaries(cursor, account_ids)
        cursor.execute("SELECT account_id, owner_id, state, version FROM view_accounts")
        directory = {row[0]: row[1:] for row in cursor.fetchall()}
    for account_id in account_ids:
        account = ledger.service.account(account_id)
        assert account is not None
        balance = summaries[account_id].balance
        assert (
            balance.debits_pending,
            balance.debits_posted,
            balance.credits_pending,
            balance.credits_posted,
        ) == tuple(account.totals)
        assert directory[account_id] == (account.owner_id, account.state.value, account.version)
    _views_equal_a_fresh_replay(ledger.database_url)


def test_balance_as_of_a_position_is_the_balance_then(ledger: Ledger) -> None:
    cash, user = platform_account(), user_account()
    ledger.service.execute([cash, user])
    positions = []
    for amount in (100, 250, 400):
        receipt = ledger.service.execute([transfer(cash.account_id, user.account_id, amount)])
        assert receipt.position is not None
        positions.append(receipt.position)
    _caught_up(ledger)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        before = balance_as_of(cursor, user.account_id, "USD", position=positions[0] - 1)
        then = [
            balance_as_of(cursor, user.account_id, "USD", position=position)
            for position in positions
        ]
    assert before.posted == 0
    assert [balance.posted for balance in then] == [100, 350, 750]


@pytest.fixture
def quiet_runner(ledger: Ledger) -> Iterator[ProjectionRunner]:
    """A second runner that never polls: only a notification can wake it."""
    runner = ProjectionRunner(ledger.database_url, all_views(), poll_interval_s=3600)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def test_a_notification_wakes_a_runner_that_does_not_poll(
    ledger: Ledger, quiet_runner: ProjectionRunner
) -> None:
    _fund(ledger, transfers=5)
    assert quiet_runner.wait_for(ledger.writer.last_position, view_names(), CATCH_UP_TIMEOUT_S)


def test_polling_covers_a_lost_notification(ledger: Ledger) -> None:
    # Listening on a channel nobody notifies: every notification is "lost".
    runner = ProjectionRunner(
        ledger.database_url, all_views(), poll_interval_s=0.05, channel="nobody_notifies_this"
    )
    runner.start()
    try:
        _fund(ledger, transfers=5)
        assert runner.wait_for(ledger.writer.last_position, view_names(), CATCH_UP_TIMEOUT_S)
    finally:
        runner.stop()


def test_two_runners_share_the_views_while_writes_go_on(ledger: Ledger) -> None:
    runners = [ProjectionRunner(ledger.database_url, all_views(), page_size=7) for _ in range(2)]
    for runner in runners:
        runner.start()
    try:
        writers = [threading.Thread(target=_fund, args=(ledger, 4, 30)) for _ in range(3)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        for runner in runners:
            assert runner.wait_for(ledger.writer.last_position, view_names(), CATCH_UP_TIMEOUT_S)
    finally:
        for runner in runners:
            runner.stop()
    _caught_up(ledger)
    _views_equal_a_fresh_replay(ledger.database_url)


def test_a_view_of_another_version_is_rebuilt_at_start(ledger: Ledger) -> None:
    _fund(ledger, transfers=10)
    _caught_up(ledger)
    with psycopg.connect(ledger.database_url, autocommit=True) as connection:
        connection.execute("UPDATE projection_tracking SET version = 0 WHERE name = 'balances'")
        connection.execute("UPDATE view_balances SET credits_posted = credits_posted + 1")
    runner = ProjectionRunner(ledger.database_url, [BalancesView()])
    try:
        runner.prepare()
        runner.catch_up()
    finally:
        runner.stop()
    _views_equal_a_fresh_replay(ledger.database_url)


@pytest.mark.parametrize("rebuild", [rebuild_in_place, rebuild_with_shadow])
def test_a_rebuild_while_writes_go_on_ends_equal_to_a_fresh_replay(
    ledger: Ledger, rebuild: object
) -> None:
    _fund(ledger, transfers=20)
    _caught_up(ledger)
    # A damaged row the rebuild must not carry over.
    with psycopg.connect(ledger.database_url, autocommit=True) as connection:
        connection.execute("UPDATE view_accounts SET owner_id = 'someone else'")
    writer = threading.Thread(target=_fund, args=(ledger, 3, 30))
    writer.start()
    assert callable(rebuild)
    rebuild(ledger.database_url, AccountsDirectoryView())
    writer.join()
    _caught_up(ledger)
    with psycopg.connect(ledger.database_url) as connection:
        owners = {row[0] for row in connection.execute("SELECT owner_id FROM view_accounts")}
    assert "someone else" not in owners
    _views_equal_a_fresh_replay(ledger.database_url)


def test_rebuilding_every_view_at_once_while_a_runner_runs_equals_a_fresh_replay(
    ledger: Ledger,
) -> None:
    # The ledger's own runner keeps running: it writes the views the rebuild
    # replays, and the rebuild must end equal to a replay all the same.
    _fund(ledger, transfers=60)
    _caught_up(ledger)
    writer = threading.Thread(target=_fund, args=(ledger, 3, 30))
    writer.start()
    positions = rebuild_all_in_place(ledger.database_url, all_views())
    writer.join()
    assert set(positions) == set(view_names())
    _caught_up(ledger)
    _views_equal_a_fresh_replay(ledger.database_url)


def test_a_replay_from_empty_past_the_memory_bound_keeps_every_account(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay from empty cannot read back (it prepares a page while the last
    is being written), so it must never forget: with the bound at 2 accounts
    and 7 in the log, the rebuilt balances equal the live ones."""
    _fund(ledger)
    _caught_up(ledger)
    monkeypatch.setattr("projections.balances.REMEMBERED_ACCOUNTS_MAX", 2)
    monkeypatch.setattr("projections.replay.REPLAY_PAGE_SIZE", 10)
    rebuild_in_place(ledger.database_url, BalancesView())
    _views_equal_a_fresh_replay(ledger.database_url)
