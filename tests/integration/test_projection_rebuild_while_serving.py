"""`ledger projections rebuild` while the service serves: by default the views
are built aside and swapped in at once, so a reader never finds an account
missing nor a list shorter than before; `--in-place`, which empties the live
views, is refused while a service or a runner uses the database, and runs
when nothing does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import psycopg
from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.digest import view_digest
from projections.rebuild import LIVE_SCHEMA
from projections.registry import all_views, view_names
from projections.view_health import failed_views
from tests.support.api_keys import bearer
from tests.support.ledgers import platform_account, transfer, user_account

# Generous: these bound a wait for behaviour, they do not measure speed.
CATCH_UP_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 300
REPOSITORY = Path(__file__).resolve().parents[2]
LEDGER_COMMAND = (sys.executable, "-c", "from interface.cli.main import main; main()")
ACCOUNTS = 30
# Enough events that the replay takes a while: reads run all along.
TRANSFERS = 3_000
# Accounts each pass of the reader asks for by id.
ACCOUNTS_READ_PER_PASS = 5
PAGE_SIZE = 100


def _ledger(database_url: str, data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The real command, in a process of its own (as an operator runs it)."""
    return subprocess.run(
        [*LEDGER_COMMAND, *arguments],
        cwd=REPOSITORY,
        env={
            **os.environ,
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_DATA_DIR": str(data_dir),
            "LEDGER_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _history(ledger: Ledger) -> tuple[list[UUID], int]:
    cash = platform_account()
    users = [user_account() for _ in range(ACCOUNTS)]
    ledger.service.execute([cash, *users])
    receipt = ledger.service.execute(
        [
            transfer(cash.account_id, users[index % ACCOUNTS].account_id, 1 + index)
            for index in range(TRANSFERS)
        ]
    )
    assert all(result.succeeded for result in receipt.results)
    return [cash.account_id, *(user.account_id for user in users)], ledger.writer.last_position


def _digests(database_url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(database_url) as connection:
        return {view.name: view_digest(connection, view, LIVE_SCHEMA) for view in all_views()}


@dataclass
class Reads:
    """What a reader saw: every answer that was not what it should be."""

    passes: int = 0
    wrong: list[str] = field(default_factory=list)


def _read_until(
    client: TestClient, accounts: list[UUID], stop: threading.Event, reads: Reads
) -> None:
    """Read accounts by id and both lists, over and over, until told to stop.
    Nothing is written meanwhile: every answer must be the whole one."""
    while not stop.is_set():
        for account_id in accounts[reads.passes % ACCOUNTS :][:ACCOUNTS_READ_PER_PASS]:
            answer = client.get(f"/v1/accounts/{account_id}")
            if answer.status_code != 200:
                reads.wrong.append(f"account {account_id}: {answer.status_code} {answer.text}")
        listed = client.get("/v1/accounts", params={"limit": PAGE_SIZE})
        if listed.status_code != 200 or len(listed.json()["items"]) != len(accounts):
            reads.wrong.append(f"account list: {listed.status_code} {listed.text[:300]}")
        transfers = client.get("/v1/transfers", params={"limit": PAGE_SIZE})
        if transfers.status_code != 200 or len(transfers.json()["items"]) != PAGE_SIZE:
            reads.wrong.append(f"transfer list: {transfers.status_code} {transfers.text[:300]}")
        reads.passes += 1


def test_reads_during_a_rebuild_never_miss_an_account_and_lists_never_shrink(
    ledger: Ledger, database_url: str, tmp_path: Path
) -> None:
    accounts, head = _history(ledger)
    assert ledger.projections is not None
    assert ledger.projections.wait_for(head, view_names(), CATCH_UP_TIMEOUT_S)
    before = _digests(database_url)
    _, key = ledger.api_keys.create(Role.SERVICE, label="reader")
    stop = threading.Event()
    reads = Reads()
    with TestClient(create_app(ledger=ledger), headers=bearer(key)) as client:
        reader = threading.Thread(target=_read_until, args=(client, accounts, stop, reads))
        reader.start()
        try:
            rebuilt = _ledger(database_url, tmp_path, "projections", "rebuild")
        finally:
            stop.set()
            reader.join()
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert reads.passes > 0
    assert reads.wrong == []
    assert _digests(database_url) == before


def test_a_rebuild_in_place_is_refused_while_the_service_runs(
    ledger: Ledger, database_url: str, tmp_path: Path
) -> None:
    _, head = _history(ledger)
    assert ledger.projections is not None
    assert ledger.projections.wait_for(head, view_names(), CATCH_UP_TIMEOUT_S)
    before = _digests(database_url)
    refused = _ledger(database_url, tmp_path, "projections", "rebuild", "--in-place")
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "refusing to rebuild in place" in refused.stderr
    assert "ledger service" in refused.stderr
    assert "ledger projection runner" in refused.stderr
    assert "rebuilt" not in refused.stdout
    assert _digests(database_url) == before


def test_a_rebuild_in_place_runs_when_nothing_uses_the_views(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    ledger = build_ledger(settings)
    try:
        _, head = _history(ledger)
        assert ledger.projections is not None
        assert ledger.projections.wait_for(head, view_names(), CATCH_UP_TIMEOUT_S)
    finally:
        ledger.close()
    before = _digests(database_url)
    rebuilt = _ledger(database_url, tmp_path, "projections", "rebuild", "--in-place")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert f"balances: rebuilt to position {head}" in rebuilt.stdout
    assert _digests(database_url) == before
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        assert failed_views(cursor) == {}
