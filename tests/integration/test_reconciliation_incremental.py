"""Incremental and full reconciliation of the views and of the log, and the parallel
rebuild, agree with each other on a generated history with a fault put in
after the last clean run: a tampered view row, a missing view row, an event
changed in the database (around its refuse-update triggers, as a superuser
would: `SET session_replication_role = replica`, as in test_audit_verify).

Each case: a full projections check passes and keeps its replays; more
history; the fault; the incremental check (really incremental: it goes on
from the kept replays) finds exactly the views the full comparison of
`ledger audit verify --views` finds; the parallel rebuild puts the views
right; then incremental and full pass again, and the incremental one moved
every view's verified position to the live view's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import orjson
import psycopg
import pytest

from application.clock import SettableClock
from application.reconciliation import ReconciliationService
from domain.reconciliation import CheckResult, CheckStatus, Discrepancy, DiscrepancyKind, RunType
from interface.audit.report import ViewStatus
from interface.audit.view_checks import check_views
from interface.bootstrap import Ledger
from interface.demo.ledger_transfers import load_demo
from interface.reconciliation.ledger_check import LedgerConsistencyCheck
from interface.reconciliation.ledger_state import (
    LEDGER_CHECK_NAME,
    LOG_SUBJECT,
    check_log_since_verified,
)
from interface.reconciliation.open_exceptions import ViewedOpenExceptions
from interface.reconciliation.projections_check import ProjectionsCheck
from interface.reconciliation.schedule import run_due
from interface.reconciliation.scope import incremental_runs, is_incremental
from interface.reconciliation.view_replica import (
    PROJECTIONS_CHECK_NAME,
    check_views_incrementally,
)
from projections.balances import NAME as BALANCES
from projections.events import TRANSFER_RECORDED
from projections.journal import NAME as JOURNAL
from projections.rebuild import rebuild_all_with_shadow
from projections.registry import all_views, view_names
from tests.support.forged_events import forge_unbalanced_transfer
from tests.support.ledgers import EPOCH

DEMO_TRANSFERS: Final[int] = 60
WAIT_S: Final[float] = 60.0
FAULTS: Final[list[str]] = ["tampered_row", "missing_row", "changed_event"]


def _caught_up(ledger: Ledger) -> None:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, view_names(), WAIT_S)


def _inject(database_url: str, fault: str, after: int) -> None:
    """The fault, on something the events after `after` wrote."""
    with psycopg.connect(database_url) as connection:
        if fault == "tampered_row":
            connection.execute(
                "UPDATE view_balances SET credits_posted = credits_posted + 1 WHERE account_id = "
                "(SELECT account_id FROM view_balance_history WHERE position > %s "
                "ORDER BY position LIMIT 1)",
                (after,),
            )
        elif fault == "missing_row":
            connection.execute(
                "DELETE FROM view_balance_history WHERE (account_id, position) = "
                "(SELECT account_id, position FROM view_balance_history WHERE position > %s "
                "ORDER BY position LIMIT 1)",
                (after,),
            )
        else:
            row = connection.execute(
                "SELECT notification_id, state FROM ledger_events WHERE notification_id > %s "
                "AND topic = %s ORDER BY notification_id LIMIT 1",
                (after, TRANSFER_RECORDED),
            ).fetchone()
            assert row is not None
            position, state = row
            body = orjson.loads(state)
            # Still balanced: every posting one more.
            for posting in body["postings"]:
                posting["amount_minor"] += 1
            connection.execute("SET session_replication_role = replica")
            connection.execute(
                "UPDATE ledger_events SET state = %s WHERE notification_id = %s",
                (orjson.dumps(body), position),
            )


def _verified(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT subject, position FROM reconciliation_positions WHERE check_name = %s",
            (PROJECTIONS_CHECK_NAME,),
        ).fetchall()
    return {str(subject): int(position) for subject, position in rows}


def _verified_log(database_url: str) -> int | None:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT position FROM reconciliation_positions WHERE check_name = %s AND subject = %s",
            (LEDGER_CHECK_NAME, LOG_SUBJECT),
        ).fetchone()
    return int(row[0]) if row else None


def _head(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT max(notification_id) FROM ledger_events").fetchone()
    assert row is not None
    return int(row[0])


def _tracked(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT name, position FROM projection_tracking").fetchall()
    return {str(name): int(position) for name, position in rows}


@pytest.mark.parametrize("fault", FAULTS)
def test_incremental_full_and_parallel_rebuild_agree(
    ledger: Ledger, database_url: str, fault: str
) -> None:
    load_demo(ledger.service, transfers=DEMO_TRANSFERS)
    _caught_up(ledger)
    first = ProjectionsCheck(database_url, incremental=False).run()
    assert first.status is CheckStatus.PASSED, first.discrepancies
    verified = _verified(database_url)
    assert set(verified) == set(view_names())
    assert verified == {name: _tracked(database_url)[name] for name in view_names()}

    load_demo(ledger.service, transfers=DEMO_TRANSFERS, seed=8)
    _caught_up(ledger)
    _inject(database_url, fault, min(verified.values()))

    incremental = check_views_incrementally(database_url)
    assert incremental is not None, "the check went on from the kept replays"
    full = check_views(database_url)
    differing_incrementally = {
        check.name for check in incremental.views if check.status is ViewStatus.DIFFERENT
    }
    differing_in_full = {check.name for check in full.views if check.status is ViewStatus.DIFFERENT}
    assert differing_incrementally == differing_in_full
    # Balances follow the accounts' events, the journal the transfers' own.
    assert {BALANCES if fault != "changed_event" else JOURNAL} <= differing_in_full
    # A view that differs keeps its verified position: compared again next time.
    for name in differing_in_full:
        assert _verified(database_url)[name] == verified[name]
    result = ProjectionsCheck(database_url, incremental=True).run()
    assert result.status is CheckStatus.FAILED
    assert {discrepancy.subject for discrepancy in result.discrepancies} == {
        f"view {name}" for name in differing_in_full
    }
    assert all(d.kind is DiscrepancyKind.VIEW_DIFFERS for d in result.discrepancies)

    # The parallel rebuild (a process per group of views) puts them right.
    rebuild_all_with_shadow(database_url, all_views())
    _caught_up(ledger)
    again = check_views_incrementally(database_url)
    assert again is not None
    assert all(check.status is ViewStatus.EQUAL for check in again.views), again.findings
    assert _verified(database_url) == {
        name: position
        for name, position in _tracked(database_url).items()
        if name in set(view_names())
    }
    assert check_views(database_url).ok

    # And it goes on: new history, checked incrementally through the scope.
    load_demo(ledger.service, transfers=DEMO_TRANSFERS, seed=9)
    _caught_up(ledger)
    with incremental_runs():
        assert is_incremental()
        later = ProjectionsCheck(database_url).run()
    assert not is_incremental()
    assert later.status is CheckStatus.PASSED, later.discrepancies
    tracked = _tracked(database_url)
    assert _verified(database_url) == {name: tracked[name] for name in view_names()}


def test_without_a_clean_full_run_an_incremental_one_checks_in_full(
    ledger: Ledger, database_url: str
) -> None:
    load_demo(ledger.service, transfers=DEMO_TRANSFERS)
    _caught_up(ledger)
    assert check_views_incrementally(database_url) is None
    result = ProjectionsCheck(database_url, incremental=True).run()
    assert result.status is CheckStatus.PASSED, result.discrepancies
    assert set(_verified(database_url)) == set(view_names())


def _forge(database_url: str) -> UUID:
    """An unbalanced transfer appended with the chain recomputed (only the
    money rules catch it); its id."""
    with psycopg.connect(database_url) as connection:
        debit_account, credit_account = (
            str(row[0])
            for row in connection.execute(
                "SELECT account_id FROM view_balances WHERE currency = 'USD' "
                "ORDER BY account_id LIMIT 2"
            ).fetchall()
        )
    transfer_id = uuid.uuid4()
    forge_unbalanced_transfer(
        database_url, transfer_id, debit_account, credit_account, 25_000, 20_000
    )
    return transfer_id


def test_the_ledger_check_goes_on_from_its_last_clean_pass(
    ledger: Ledger, database_url: str
) -> None:
    load_demo(ledger.service, transfers=DEMO_TRANSFERS)
    first = LedgerConsistencyCheck(database_url, incremental=False).run()
    assert first.status is CheckStatus.PASSED, first.discrepancies
    verified = _verified_log(database_url)
    assert verified == _head(database_url)

    load_demo(ledger.service, transfers=DEMO_TRANSFERS, seed=8)
    report = check_log_since_verified(database_url)
    assert report is not None and report.ok, report and report.findings
    # Only the events since: the new ones.
    with psycopg.connect(database_url) as connection:
        new = connection.execute(
            "SELECT count(*) FROM ledger_events WHERE notification_id > %s", (verified,)
        ).fetchone()
    assert new is not None and report.events_checked == new[0] > 0
    assert _verified_log(database_url) == _head(database_url)
    with incremental_runs():
        clean = LedgerConsistencyCheck(database_url).run()
    assert clean.status is CheckStatus.PASSED
    assert (clean.expected, clean.actual) == (first.expected, first.actual)

    transfer_id = _forge(database_url)
    incremental = LedgerConsistencyCheck(database_url, incremental=True).run()
    full = LedgerConsistencyCheck(database_url, incremental=False).run()
    assert incremental.status is full.status is CheckStatus.FAILED
    assert [d.fingerprint for d in incremental.discrepancies] == [
        d.fingerprint for d in full.discrepancies
    ]
    assert f"transfer {transfer_id}" in {d.subject for d in incremental.discrepancies}
    # A failed pass keeps nothing: the next incremental run checks in full.
    assert check_log_since_verified(database_url) is None


@dataclass
class ScopeRecorder:
    """A check that notes whether each run it was part of was incremental."""

    name: str = "scope"
    seen: list[bool] = field(default_factory=list)

    def run(self) -> CheckResult:
        self.seen.append(is_incremental())
        return CheckResult(self.name, CheckStatus.PASSED, "runs", 1, 1)

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError(discrepancy.fingerprint)


def test_the_schedule_runs_hourly_incrementally_and_daily_in_full(
    ledger: Ledger, clock: SettableClock
) -> None:
    recorder = ScopeRecorder()
    service = ReconciliationService(
        ledger.app,
        ledger.writer,
        ledger.clock,
        [recorder],
        ViewedOpenExceptions(ledger.pool, ledger.writer, ledger.projections),
    )
    clock.set(EPOCH.replace(hour=1, minute=30))
    runs = run_due(service, clock).runs
    assert [run.run_type for run in runs] == [RunType.DAILY, RunType.HOURLY]
    assert recorder.seen == [False, True]
    assert not is_incremental()
