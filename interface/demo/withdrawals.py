"""The demo's withdrawals: a Gen account of the demo user with $4,000 of
profit and no open position, one small withdrawal paid out through the
configured gateway (the sandbox by default) and one large one waiting for an
admin in `GET /v1/admin/withdrawals?status=pending`.

Loading again finds the account and both withdrawals by their keys and
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

from application.funded_accounts import FundedAccountsService
from application.withdrawals import WithdrawalRequest, WithdrawalsService
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.demo.funded_accounts import DEMO_ACTOR, activate_after_one_trade

PAYOUTS_ASSESSMENT_ID: Final[str] = "demo-assessment-payouts"
PAYOUTS_OWNER_ID: Final[str] = "user-01"
TRADE_SYMBOL: Final[str] = "PAYO"
# 400 units bought at $1.00 and sold at $11.00: $4,000 profit, $3,200 withdrawable.
QUANTITY: Final[int] = 400
ENTRY_MINOR: Final[int] = 100
EXIT_MINOR: Final[int] = 1_100
SMALL_MINOR: Final[int] = 250_00
LARGE_MINOR: Final[int] = 1_500_00


@dataclass(frozen=True, slots=True)
class WithdrawalsDemoSummary:
    funded_account_id: UUID
    paid_withdrawal_id: UUID
    pending_withdrawal_id: UUID
    paid_status: str
    pending_status: str

    def lines(self) -> list[str]:
        return [
            f"withdrawals: {self.paid_withdrawal_id} 250.00 {self.paid_status}, "
            f"{self.pending_withdrawal_id} 1500.00 {self.pending_status} "
            f"(funded account {self.funded_account_id})"
        ]


def load_withdrawals_demo(
    funded_accounts: FundedAccountsService,
    withdrawals: WithdrawalsService,
    broker: SimulatedBroker,
) -> WithdrawalsDemoSummary:
    account_id = activate_after_one_trade(
        funded_accounts,
        broker,
        assessment_id=PAYOUTS_ASSESSMENT_ID,
        owner_id=PAYOUTS_OWNER_ID,
        symbol=TRADE_SYMBOL,
        quantity=QUANTITY,
        entry_minor=ENTRY_MINOR,
        exit_minor=EXIT_MINOR,
    )
    small = withdrawals.request(
        WithdrawalRequest(account_id, SMALL_MINOR, "demo-withdrawal-small", DEMO_ACTOR)
    ).withdrawal
    paid = withdrawals.pay_out(small.id)
    large = withdrawals.request(
        WithdrawalRequest(account_id, LARGE_MINOR, "demo-withdrawal-large", DEMO_ACTOR)
    ).withdrawal
    return WithdrawalsDemoSummary(
        funded_account_id=account_id,
        paid_withdrawal_id=paid.id,
        pending_withdrawal_id=large.id,
        paid_status=paid.status.value,
        pending_status=large.status.value,
    )
