"""The checks a reconciliation run makes, in the order it makes them
(docs/rules.md#reconciliation).

The ledger's own arithmetic first (nothing else means anything if it is
wrong), then the views against a replay, then each outside record against
the ledger: the payment processor, the broker, the funding side's deposits,
the withdrawals' holds; last the broker sync's divergences still open.
"""

from __future__ import annotations

from pathlib import Path

from application.ports.broker import Broker
from application.ports.payout_gateway import PayoutGateway
from application.ports.reconciliation_checks import ReconciliationCheck
from interface.reconciliation.broker_check import BROKER_CHECK, BrokerCheck
from interface.reconciliation.broker_sync_check import BrokerSyncCheck
from interface.reconciliation.deposits_check import DepositsCheck
from interface.reconciliation.ledger_check import LedgerConsistencyCheck, TrustedKeys
from interface.reconciliation.payouts_check import PAYOUTS_CHECK, PayoutsCheck
from interface.reconciliation.projections_check import ProjectionsCheck
from interface.reconciliation.withdrawals_check import WithdrawalsCheck

__all__ = ["BROKER_CHECK", "PAYOUTS_CHECK", "reconciliation_checks"]


def reconciliation_checks(
    database_url: str,
    payout_gateway: PayoutGateway,
    broker: Broker,
    *,
    trusted_keys: TrustedKeys | None = None,
    checkpoint_directory: Path | None = None,
) -> list[ReconciliationCheck]:
    return [
        LedgerConsistencyCheck(
            database_url, trusted_keys=trusted_keys, checkpoint_directory=checkpoint_directory
        ),
        ProjectionsCheck(database_url),
        PayoutsCheck(database_url, payout_gateway),
        BrokerCheck(database_url, broker),
        DepositsCheck(database_url),
        WithdrawalsCheck(database_url),
        BrokerSyncCheck(database_url),
    ]
