"""The ledger and projections reconciliation checks on real PostgreSQL: both
pass on a sound ledger; a forged unbalanced transfer fails the ledger check;
a deleted view row fails the projections check, and its correction rebuilds
the view while the live runner keeps running.

Tampering goes around the writer the way an attacker with the database's
superuser would (`SET session_replication_role = replica` for the log's
refuse-update triggers), as in test_audit_verify.
"""

from __future__ import annotations

import uuid
from uuid import UUID

import psycopg

from domain.reconciliation import CheckStatus, DiscrepancyKind, Severity
from interface.bootstrap import Ledger
from interface.demo.ledger_transfers import load_demo
from interface.reconciliation.ledger_check import LEDGER_CHECK, LedgerConsistencyCheck
from interface.reconciliation.projections_check import PROJECTIONS_CHECK, ProjectionsCheck
from projections.balances import NAME as BALANCES
from projections.registry import view_names
from tests.support.forged_events import forge_unbalanced_transfer

DEMO_TRANSFERS = 60
WAIT_S = 60.0
FORGED_DEBIT_MINOR = 25_000
FORGED_CREDIT_MINOR = 20_000


def _load(ledger: Ledger) -> None:
    load_demo(ledger.service, transfers=DEMO_TRANSFERS)
    _caught_up(ledger, ledger.writer.last_position)


def _caught_up(ledger: Ledger, position: int) -> None:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(position, view_names(), WAIT_S)


def _forge_unbalanced_transfer(database_url: str, transfer_id: UUID) -> int:
    with psycopg.connect(database_url) as connection:
        debit_account, credit_account = (
            str(row[0])
            for row in connection.execute(
                "SELECT account_id FROM view_balances WHERE currency = 'USD' "
                "ORDER BY account_id LIMIT 2"
            ).fetchall()
        )
    return forge_unbalanced_transfer(
        database_url,
        transfer_id,
        debit_account,
        credit_account,
        FORGED_DEBIT_MINOR,
        FORGED_CREDIT_MINOR,
    )


def test_both_checks_pass_on_a_sound_ledger(ledger: Ledger, database_url: str) -> None:
    _load(ledger)
    ledger_result = LedgerConsistencyCheck(database_url).run()
    assert ledger_result.name == LEDGER_CHECK
    assert ledger_result.status is CheckStatus.PASSED, ledger_result.discrepancies
    assert ledger_result.discrepancies == ()
    assert ledger_result.expected == ledger_result.actual > 0
    projections_result = ProjectionsCheck(database_url).run()
    assert projections_result.name == PROJECTIONS_CHECK
    assert projections_result.status is CheckStatus.PASSED, projections_result.discrepancies
    assert projections_result.expected == projections_result.actual == len(view_names())


def test_a_forged_unbalanced_transfer_fails_the_ledger_check_but_not_the_views(
    ledger: Ledger, database_url: str
) -> None:
    _load(ledger)
    before = LedgerConsistencyCheck(database_url).run()
    transfer_id = uuid.uuid4()
    position = _forge_unbalanced_transfer(database_url, transfer_id)
    imbalance = FORGED_DEBIT_MINOR - FORGED_CREDIT_MINOR

    result = LedgerConsistencyCheck(database_url).run()
    assert result.status is CheckStatus.FAILED
    # Counted per currency: every currency was balanced before, USD is not now.
    assert before.expected == before.actual == result.expected
    assert result.actual == result.expected - 1
    assert result.difference == -1
    kinds = {discrepancy.kind for discrepancy in result.discrepancies}
    # The chain was forged correctly: only the money rules catch it.
    assert DiscrepancyKind.HASH_CHAIN not in kinds
    (unbalanced,) = [
        discrepancy
        for discrepancy in result.discrepancies
        if discrepancy.kind is DiscrepancyKind.UNBALANCED_TRANSFER
    ]
    assert unbalanced.subject == f"transfer {transfer_id}"
    assert unbalanced.amount_minor == imbalance
    assert unbalanced.currency == "USD"
    assert unbalanced.severity is Severity.CRITICAL
    assert unbalanced.correction is None
    assert str(position) in unbalanced.message
    # Debits exceed credits over all USD, and the two accounts' own events
    # never moved that money, so their totals disagree with their postings.
    assert {
        discrepancy.subject
        for discrepancy in result.discrepancies
        if discrepancy.kind is DiscrepancyKind.UNBALANCED_TOTALS
    } == {"currency USD"}
    assert sum(1 for d in result.discrepancies if d.kind is DiscrepancyKind.ACCOUNT_TOTALS) == 2
    assert all(d.severity is Severity.CRITICAL for d in result.discrepancies)
    # The same fault is the same fingerprint in a later run.
    again = LedgerConsistencyCheck(database_url).run()
    assert [d.fingerprint for d in again.discrepancies] == [
        d.fingerprint for d in result.discrepancies
    ]

    # The views follow the log faithfully, forged event and all: a fresh
    # replay derives exactly what the live runner did, so they agree. Finding
    # a bad log is the ledger check's work, not the projections check's.
    _caught_up(ledger, position)
    views = ProjectionsCheck(database_url).run()
    assert views.status is CheckStatus.PASSED, views.discrepancies
    assert views.actual == views.expected


def test_a_deleted_view_row_is_rebuilt_while_the_live_runner_runs(
    ledger: Ledger, database_url: str
) -> None:
    _load(ledger)
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "DELETE FROM view_balances WHERE account_id = "
            "(SELECT account_id FROM view_balances ORDER BY account_id LIMIT 1) "
            "RETURNING account_id"
        ).fetchone()
    assert row is not None
    deleted_account = str(row[0])
    check = ProjectionsCheck(database_url)

    result = check.run()
    assert result.status is CheckStatus.FAILED
    assert (result.expected, result.actual) == (len(view_names()), len(view_names()) - 1)
    (discrepancy,) = result.discrepancies
    assert discrepancy.kind is DiscrepancyKind.VIEW_DIFFERS
    assert discrepancy.subject == f"view {BALANCES}"
    assert discrepancy.severity is Severity.LOW
    assert discrepancy.correction == f"rebuild:{BALANCES}"
    assert "view_balances" in discrepancy.message
    assert "view_balance_history" not in discrepancy.message
    assert deleted_account in discrepancy.message

    # The live runner keeps running through the rebuild and the swap.
    assert ledger.projections is not None and ledger.projections.is_running
    action = check.correct(discrepancy)
    assert action.startswith(f"rebuilt view {BALANCES} from the log (shadow replay")
    assert str(ledger.writer.last_position) in action

    # The runner goes on keeping the rebuilt view up with new transfers.
    load_demo(ledger.service, transfers=DEMO_TRANSFERS, seed=8)
    _caught_up(ledger, ledger.writer.last_position)
    with psycopg.connect(database_url) as connection:
        restored = connection.execute(
            "SELECT count(*) FROM view_balances WHERE account_id = %s", (deleted_account,)
        ).fetchone()
    assert restored == (1,)
    again = check.run()
    assert again.status is CheckStatus.PASSED, again.discrepancies
    assert again.actual == again.expected == len(view_names())
    assert LedgerConsistencyCheck(database_url).run().status is CheckStatus.PASSED
