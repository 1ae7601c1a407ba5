"""The broker sync check: a divergence a sync recorded and no later sync
cleared fails it, as a `sync_divergence`; the other checks pass."""

from __future__ import annotations

from typing import Final

from domain.positions import PositionSide
from domain.reconciliation import CheckStatus, DiscrepancyKind, RunType, Severity
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.reconciliation.broker_sync_check import (
    BROKER_SYNC_CHECK,
    MEASURE,
    BrokerSyncCheck,
)
from projections import reconciliation
from tests.support.funded_accounts import activate_funded_account

SYMBOL: Final[str] = "SYNC"
PRICE_MINOR: Final[int] = 250
EXTRA_QUANTITY: Final[int] = 8
WAIT_S: Final[float] = 60.0


def test_an_open_divergence_fails_the_check_until_a_sync_clears_it(ledger: Ledger) -> None:
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    account_id = activate_funded_account(ledger, owner_id="trader-sync", tier=TierName.GEN)
    check = BrokerSyncCheck(ledger.database_url)
    assert check.run().status is CheckStatus.PASSED
    # A position opened at the broker around the ledger, seen by a sync, then
    # closed at its entry price (nothing realized): the broker and the ledger
    # agree again, but no sync has said so yet.
    broker.register_account(account_id, 1_000_000)
    broker.set_price(SYMBOL, bid_minor=PRICE_MINOR, ask_minor=PRICE_MINOR)
    extra = broker.open_position(account_id, SYMBOL, PositionSide.LONG, EXTRA_QUANTITY, "around")
    ledger.broker_sync.sync_account(account_id)
    broker.close_position(extra.position_id, "around-close")

    result = check.run()
    assert (result.name, result.status, result.measure) == (
        BROKER_SYNC_CHECK,
        CheckStatus.FAILED,
        MEASURE,
    )
    assert (result.expected, result.actual) == (0, 1)
    (found,) = result.discrepancies
    assert found.kind is DiscrepancyKind.SYNC_DIVERGENCE
    assert found.severity is Severity.MEDIUM
    assert found.subject == f"funded account {account_id} position {extra.position_id} extra"
    assert found.amount_minor == EXTRA_QUANTITY * PRICE_MINOR

    run = ledger.reconciliation.run(RunType.MANUAL, "tester")
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [reconciliation.NAME], WAIT_S)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        checks = {row.name: row.status for row in reconciliation.checks_of(cursor, run.id)}
        raised = reconciliation.exceptions_of(cursor, run.id)
    assert checks.pop(BROKER_SYNC_CHECK) == CheckStatus.FAILED.value
    assert set(checks.values()) == {CheckStatus.PASSED.value}, checks
    assert [(row.kind, row.severity) for row in raised] == [
        (DiscrepancyKind.SYNC_DIVERGENCE.value, Severity.MEDIUM.value)
    ]

    ledger.broker_sync.sync_account(account_id)
    assert check.run().status is CheckStatus.PASSED
