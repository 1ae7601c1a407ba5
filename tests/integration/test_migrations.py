"""Schema migrations: applied once, in order, and never again."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from application.clock import SettableClock
from domain.result_codes import ResultCode
from interface.adapters.persistence import database
from interface.bootstrap import build_ledger
from interface.settings import Settings
from tests.support.ledgers import EPOCH, platform_account, transfer, user_account

MIGRATION_IDS = sorted(path.stem for path in Path(database.MIGRATIONS_DIR).glob("*.sql"))


def _tables(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_the_migrations_folder_starts_with_the_event_store() -> None:
    assert MIGRATION_IDS[0] == "0001.event-store"


def test_upgrading_an_already_migrated_database_applies_nothing(database_url: str) -> None:
    tables_before = _tables(database_url)

    assert database.upgrade(database_url) == []
    assert database.pending_migrations(database_url) == []
    assert _tables(database_url) == tables_before


def test_a_brand_new_database_gets_every_migration_once(empty_database_url: str) -> None:
    assert "ledger_events" not in _tables(empty_database_url)
    assert database.pending_migrations(empty_database_url) == MIGRATION_IDS

    assert database.upgrade(empty_database_url) == MIGRATION_IDS

    assert {"ledger_events", "ledger_snapshots", "ledger_pending_deadlines"} <= _tables(
        empty_database_url
    )
    assert database.pending_migrations(empty_database_url) == []
    assert database.upgrade(empty_database_url) == []


def test_a_freshly_migrated_database_serves_a_ledger(empty_database_url: str) -> None:
    settings = Settings.model_validate({"LEDGER_DATABASE_URL": empty_database_url})
    ledger = build_ledger(settings, clock=SettableClock(EPOCH))
    try:
        cash, alice = platform_account(), user_account()
        receipt = ledger.service.execute(
            [cash, alice, transfer(cash.account_id, alice.account_id, 1)]
        )
        assert [result.code for result in receipt.results] == [ResultCode.OK] * 3
    finally:
        ledger.close()


@pytest.mark.timeout(120)
def test_a_process_killed_while_migrating_does_not_block_the_next_upgrade(
    empty_database_url: str,
) -> None:
    """A service killed (kill -9, OOM) during its start-up migration must not
    leave the database unusable: the next start migrates and runs."""
    repository = Path(database.MIGRATIONS_DIR).parent
    killed = subprocess.run(
        [sys.executable, "-m", "tests.support.die_while_migrating", empty_database_url],
        cwd=repository,
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode(errors="replace")

    assert database.upgrade(empty_database_url) == MIGRATION_IDS
    assert database.pending_migrations(empty_database_url) == []
