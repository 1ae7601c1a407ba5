"""The simulated broker and the sandbox payout gateway outlive a restart.

A real broker and Stripe keep their accounts and payouts when the ledger
restarts; the simulators now do too, in their own tables (migrations/0013).
Before, a restarted service's reconciliation raised a critical
`broker_account_missing` for every funded account that had traded, and the
paid withdrawals' payouts were missing. Here the demo data set is loaded by
one ledger, that ledger stops, a second is built on the same database, and
its reconciliation run passes every check with no exception raised.
"""

from __future__ import annotations

from typing import Final
from uuid import uuid4

from application.clock import SettableClock
from domain.positions import PositionSide
from domain.reconciliation import CheckStatus, RunStatus, RunType
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import build_ledger
from interface.demo.data_set import load_demo_data_set
from interface.settings import Settings
from projections import reconciliation

# Enough for the ledger checks to compare something; the funded accounts,
# withdrawals and closure of the demo come whatever the number.
DEMO_TRANSFERS: Final[int] = 20
PROJECTIONS_WAIT_S: Final[float] = 60.0
ACCOUNT_CASH_MINOR: Final[int] = 5_000_00


def test_after_a_restart_reconciliation_finds_every_broker_account_and_payout(
    settings: Settings, clock: SettableClock
) -> None:
    before = build_ledger(settings, clock=clock)
    try:
        load_demo_data_set(before, transfers=DEMO_TRANSFERS)
    finally:
        before.close()

    after = build_ledger(settings, clock=clock)
    try:
        run = after.reconciliation.run(RunType.MANUAL, "tester")
        assert after.projections is not None
        assert after.projections.wait_for(
            after.writer.last_position, [reconciliation.NAME], PROJECTIONS_WAIT_S
        )
        with after.pool.connection() as connection, connection.cursor() as cursor:
            checks = {check.name: check for check in reconciliation.checks_of(cursor, run.id)}
            raised = reconciliation.exceptions_of(cursor, run.id)
    finally:
        after.close()

    # No broker_account_missing, no payout missing: no exception at all.
    assert raised == []
    assert {name: check.status for name, check in checks.items()} == dict.fromkeys(
        checks, CheckStatus.PASSED.value
    )
    # The broker and payouts checks compared what the first process made.
    assert checks["payouts"].expected > 0, checks["payouts"]
    assert checks["broker"].discrepancies_found == 0
    assert run.status is RunStatus.PASSED


def test_a_restarted_simulator_replays_an_order_instead_of_trading_twice(
    settings: Settings, clock: SettableClock
) -> None:
    """Idempotency survives the restart too: the retry of an order whose
    answer was lost in the restart returns the first fill, and its price
    and account are still there."""
    account_id = uuid4()
    before = build_ledger(settings, clock=clock)
    try:
        assert isinstance(before.broker, SimulatedBroker)
        before.broker.fund(account_id, ACCOUNT_CASH_MINOR)
        before.broker.set_price("ACME", 10_000, 10_010)
        first = before.broker.open_position(account_id, "ACME", PositionSide.LONG, 3, "order-1")
    finally:
        before.close()

    after = build_ledger(settings, clock=clock)
    try:
        replayed = after.broker.open_position(account_id, "ACME", PositionSide.LONG, 3, "order-1")
        held = after.broker.open_positions(account_id)
        equity = after.broker.equity(account_id)
    finally:
        after.close()

    assert replayed == first
    assert [position.position_id for position in held] == [first.position_id]
    # Long 3 at the ask, 100.10, marked at the bid, 100.00.
    assert (equity.cash_minor, equity.unrealized_pnl_minor) == (ACCOUNT_CASH_MINOR, -30)
