"""A view that cannot apply an event stops there and says so, and holds
nothing else back: the runner records the view, the event's position and the
reason; the other views go on; reads that need it answer 503
`projection_failed` naming it while other reads work; /readyz, the
`ledger_projection_failed` series and `ledger projections status` show it; a
restart tries it again, and a rebuild or a fixed handler clears it.

And what made views stall before: strings holding NUL, which PostgreSQL's
text and jsonb cannot hold, are stored spelt `\\u0000` by every path (live,
rebuilt in place or through a shadow, replayed set-based by the audit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.audit.verify import verify_ledger
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections import balances
from projections.balances import BalancesView
from projections.events import LoggedEvent
from projections.rebuild import rebuild_all_in_place, rebuild_with_shadow
from projections.registry import all_views, view_names
from projections.runner import ProjectionRunner
from projections.view import Cursor, PageWrite, View
from projections.view_health import failed_views
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error
from tests.support.ledgers import platform_account, transfer, user_account

# Generous: these bound a wait for behaviour, they do not measure speed.
CATCH_UP_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 120
REPOSITORY = Path(__file__).resolve().parents[2]
LEDGER_COMMAND = (sys.executable, "-c", "from interface.cli.main import main; main()")
REASON = "this view cannot apply the event"


class FailsAt:
    """A real view, except that it cannot apply the events at `positions`."""

    def __init__(self, view: View, positions: set[int]) -> None:
        self._view = view
        self.positions = positions
        self.name = view.name
        self.version = view.version
        self.tables = view.tables

    def create_tables(self, cursor: Cursor) -> None:
        self._view.create_tables(cursor)

    def create_indexes(self, cursor: Cursor) -> None:
        self._view.create_indexes(cursor)

    def forget(self, *, starts_empty: bool) -> None:
        self._view.forget(starts_empty=starts_empty)

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> PageWrite:
        for event in events:
            if event.position in self.positions:
                raise ValueError(f"{REASON} at {event.position}")
        return self._view.prepare(cursor, events)

    def digest_order(self, table: str) -> str:
        return self._view.digest_order(table)


def _runner(database_url: str, failing_at: set[int]) -> ProjectionRunner:
    """Every view, the balances failing at the given positions."""
    views: list[View] = [
        FailsAt(view, failing_at) if view.name == balances.NAME else view for view in all_views()
    ]
    return ProjectionRunner(database_url, views)


@pytest.fixture
def stopped_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger whose projection runner the test starts itself."""
    running = build_ledger(settings, clock=clock, start_projections=False)
    try:
        yield running
    finally:
        running.close()


def _client(ledger: Ledger, role: Role = Role.SERVICE) -> TestClient:
    _, key = ledger.api_keys.create(role, label="failures")
    return TestClient(create_app(ledger=ledger), headers=bearer(key))


def _history(ledger: Ledger) -> tuple[UUID, int, int]:
    """An account, then a transfer to it; (account, the transfer's first
    event's position, the log's last position)."""
    cash = platform_account()
    user = user_account()
    ledger.service.execute([cash, user])
    opened = ledger.writer.last_position
    receipt = ledger.service.execute([transfer(cash.account_id, user.account_id, 500)])
    assert all(result.succeeded for result in receipt.results)
    return user.account_id, opened + 1, ledger.writer.last_position


def _balances_failure(database_url: str) -> tuple[int, str] | None:
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        failure = failed_views(cursor).get(balances.NAME)
    return None if failure is None else (failure.position, failure.reason)


def _tracked_position(database_url: str, name: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT position FROM projection_tracking WHERE name = %s", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_failing_view_stops_at_the_event_and_the_others_go_on(
    stopped_ledger: Ledger, database_url: str
) -> None:
    account_id, failing, head = _history(stopped_ledger)
    runner = _runner(database_url, {failing})
    stopped_ledger.projections = runner
    runner.start()
    others = [name for name in view_names() if name != balances.NAME]
    assert runner.wait_for(head, others, CATCH_UP_TIMEOUT_S), runner.positions()
    # Waiting for the stopped view ends as soon as it has stopped.
    assert not runner.wait_for(head, [balances.NAME], CATCH_UP_TIMEOUT_S)
    assert runner.positions()[balances.NAME] == failing - 1
    assert _tracked_position(database_url, balances.NAME) == failing - 1
    recorded = _balances_failure(database_url)
    assert recorded is not None
    assert recorded[0] == failing
    assert REASON in recorded[1] and "ValueError" in recorded[1]
    assert set(runner.failures()) == {balances.NAME}

    with _client(stopped_ledger) as client:
        body = assert_error(client.get(f"/v1/accounts/{account_id}"), 503, "projection_failed")
        details = body["error"]["details"]["failed_views"]
        assert details[balances.NAME]["position"] == failing
        assert REASON in details[balances.NAME]["reason"]
        # The journal does not need the balances: its reads go on.
        listed = client.get("/v1/transfers")
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == 1

        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        readiness = ready.json()
        assert readiness["status"] == "not_ready"
        assert readiness["failing"] == ["views"]
        assert readiness["checks"]["views"] == f"failed: {balances.NAME}"
        assert readiness["views"][balances.NAME]["position"] == failing - 1
        assert readiness["views"][balances.NAME]["failed"]["position"] == failing
        assert REASON in readiness["views"][balances.NAME]["failed"]["reason"]

    with _client(stopped_ledger, Role.AUDITOR) as operator:
        scraped = operator.get("/metrics")
        assert scraped.status_code == 200, scraped.text
    samples = {
        (sample.name, sample.labels.get("view")): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    assert samples[("ledger_projection_failed", balances.NAME)] == 1
    assert samples[("ledger_projection_failed", "journal")] == 0
    assert samples[("ledger_projection_failed_position", balances.NAME)] == failing

    # The real command, in a process of its own (as an operator runs it).
    status = subprocess.run(
        [*LEDGER_COMMAND, "projections", "status", "--json"],
        cwd=REPOSITORY,
        env={**os.environ, "LEDGER_DATABASE_URL": database_url, "LEDGER_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert status.returncode == 1, status.stderr[-3000:]
    reported = json.loads(status.stdout)
    assert reported["failed"] == [balances.NAME]
    assert reported["views"][balances.NAME]["failed"]["position"] == failing
    assert reported["views"][balances.NAME]["position"] == failing - 1
    assert reported["views"]["journal"]["failed"] is None
    assert reported["views"]["journal"]["lag_events"] == 0


def test_a_restart_tries_again_and_a_fixed_view_clears_the_failure(
    stopped_ledger: Ledger, database_url: str
) -> None:
    _, failing, head = _history(stopped_ledger)
    first = _runner(database_url, {failing})
    first.catch_up()
    assert set(first.failures()) == {balances.NAME}

    # Restarted with the same handler: it fails again, at the same event.
    again = _runner(database_url, {failing})
    again.catch_up()
    assert set(again.failures()) == {balances.NAME}
    assert _balances_failure(database_url) is not None

    # Restarted with a handler that applies it: caught up, the record gone.
    fixed = ProjectionRunner(database_url, all_views())
    fixed.catch_up()
    assert fixed.failures() == {}
    assert fixed.positions()[balances.NAME] == head
    assert _balances_failure(database_url) is None
    for runner in (first, again, fixed):
        runner.stop()


def test_a_rebuild_clears_the_failure_and_the_stopped_runner_resumes(
    stopped_ledger: Ledger, database_url: str
) -> None:
    account_id, failing, head = _history(stopped_ledger)
    runner = _runner(database_url, {failing})
    stopped_ledger.projections = runner
    runner.start()
    assert not runner.wait_for(head, [balances.NAME], CATCH_UP_TIMEOUT_S)

    assert rebuild_with_shadow(database_url, BalancesView()) == head
    assert _balances_failure(database_url) is None
    # The live runner (still failing at that event, now behind it) resumes
    # (woken by the rebuild).
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while runner.failures() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.failures() == {}
    more = stopped_ledger.service.execute([user_account()])
    assert all(result.succeeded for result in more.results)
    position = stopped_ledger.writer.last_position
    assert runner.wait_for(position, view_names(), CATCH_UP_TIMEOUT_S), runner.positions()
    assert runner.failures() == {}
    with _client(stopped_ledger) as client:
        assert client.get(f"/v1/accounts/{account_id}").status_code == 200
        assert client.get("/readyz").json()["checks"]["views"] == "ok"


# Strings the writer accepts and PostgreSQL's text cannot hold, and their
# neighbours a naive escape would confuse with them.
NUL_STRINGS = ("own\x00er", "\\\x00", "\\u0000", "\\\\\x00\\", "\x00", "a\x00\x00b")


def _spelt(text: str) -> str:
    return text.replace("\x00", "\\u0000")


def test_strings_holding_nul_reach_every_view_live_and_rebuilt(
    ledger: Ledger, database_url: str, tmp_path: Path
) -> None:
    cash = platform_account()
    metadata = {f"key{index}\x00": value for index, value in enumerate(NUL_STRINGS)}
    users = [user_account(owner_id=owner, metadata=metadata) for owner in NUL_STRINGS]
    opened = ledger.service.execute([cash, *users])
    assert all(result.succeeded for result in opened.results), opened.results
    moved = ledger.service.execute(
        [
            transfer(cash.account_id, user.account_id, 100 + index, metadata=metadata)
            for index, user in enumerate(users)
        ]
    )
    assert all(result.succeeded for result in moved.results), moved.results
    assert ledger.projections is not None
    assert ledger.projections.wait_for(
        ledger.writer.last_position, view_names(), CATCH_UP_TIMEOUT_S
    ), ledger.projections.failures()
    assert ledger.projections.failures() == {}

    with psycopg.connect(database_url) as connection:
        owners: dict[UUID, str] = dict(
            connection.execute(
                "SELECT account_id, owner_id FROM view_accounts WHERE account_id = ANY(%s)",
                ([user.account_id for user in users],),
            ).fetchall()
        )
        stored_metadata = [
            row[0]
            for row in connection.execute("SELECT metadata FROM view_journal_transfers").fetchall()
        ]
    assert owners == {user.account_id: _spelt(user.owner_id) for user in users}
    assert stored_metadata == [{_spelt(key): _spelt(value) for key, value in metadata.items()}] * (
        len(users)
    )

    # The audit replays every view (the journal set-based, in SQL) and
    # compares digests with the live ones: the two spellings agree.
    report = verify_ledger(database_url, check_views=True)
    assert report.ok, report.findings
    rebuild_with_shadow(database_url, BalancesView())
    positions = rebuild_all_in_place(database_url, all_views())
    assert set(positions.values()) == {ledger.writer.last_position}
    report = verify_ledger(database_url, check_views=True)
    assert report.ok, report.findings
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        assert failed_views(cursor) == {}
