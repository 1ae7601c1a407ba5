"""The demo's withdrawals: a Gen account of the demo user with $10,000 of
profit ($8,000 withdrawable) and no open position, and a withdrawal from it
in every status an admin filters by (`GET /v1/admin/withdrawals?status=`):

- completed: $250.00, paid out through the configured gateway at once;
- pending: $1,500.00, over the approval threshold, waiting for an admin;
- rejected: $1,200.00, refused by an admin (the amount is withdrawable again);
- approved: $1,100.00, approved by an admin; with the sandbox gateway its
  first payout attempt meets an outage, so it waits for its next attempt
  (15 minutes later, docs/rules.md#funded-accounts-and-withdrawals);
- failed: $300.00, refused by the processor (sandbox only: the amount is
  withdrawable again).

Only what a request just created is approved, rejected or paid: loading
again finds each withdrawal by its key and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

from application.funded_accounts import FundedAccountsService
from application.ports.payout_gateway import PayoutGateway
from application.withdrawals import WithdrawalRequest, WithdrawalsService
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
from interface.demo.funded_accounts import DEMO_ACTOR, activate_after_one_trade

PAYOUTS_ASSESSMENT_ID: Final[str] = "demo-assessment-payouts"
PAYOUTS_OWNER_ID: Final[str] = "user-01"
TRADE_SYMBOL: Final[str] = "PAYO"
# 400 units bought at $1.00 and sold at $26.00: $10,000 profit, $8,000 withdrawable.
QUANTITY: Final[int] = 400
ENTRY_MINOR: Final[int] = 100
EXIT_MINOR: Final[int] = 2_600
SMALL_MINOR: Final[int] = 250_00
LARGE_MINOR: Final[int] = 1_500_00
REJECTED_MINOR: Final[int] = 1_200_00
APPROVED_MINOR: Final[int] = 1_100_00
FAILED_MINOR: Final[int] = 300_00
ADMIN_ACTOR: Final[str] = "demo-admin"
REJECTION_REASON: Final[str] = "the bank details could not be verified"
PROCESSOR_REFUSAL: Final[tuple[str, str]] = ("account_closed", "the destination account is closed")


@dataclass(frozen=True, slots=True)
class WithdrawalsDemoSummary:
    funded_account_id: UUID
    paid_withdrawal_id: UUID
    pending_withdrawal_id: UUID
    paid_status: str
    pending_status: str
    # Every demo withdrawal's id -> its status.
    statuses: dict[UUID, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        by_status = ", ".join(
            f"{status} {identifier}" for identifier, status in self.statuses.items()
        )
        return [
            f"withdrawals of funded account {self.funded_account_id}: {by_status}; "
            "GET /v1/admin/withdrawals?status=pending"
        ]


def load_withdrawals_demo(
    funded_accounts: FundedAccountsService,
    withdrawals: WithdrawalsService,
    broker: SimulatedBroker,
    gateway: PayoutGateway | None = None,
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

    def request(amount_minor: int, key: str) -> tuple[UUID, bool]:
        outcome = withdrawals.request(WithdrawalRequest(account_id, amount_minor, key, DEMO_ACTOR))
        return outcome.withdrawal.id, outcome.created

    small, created = request(SMALL_MINOR, "demo-withdrawal-small")
    if created:
        withdrawals.pay_out(small)
    large, _ = request(LARGE_MINOR, "demo-withdrawal-large")
    rejected, created = request(REJECTED_MINOR, "demo-withdrawal-rejected")
    if created:
        withdrawals.reject(rejected, REJECTION_REASON, ADMIN_ACTOR)
    identifiers = [small, large, rejected]
    if isinstance(gateway, SandboxPayoutGateway):
        approved, created = request(APPROVED_MINOR, "demo-withdrawal-approved")
        if created:
            withdrawals.approve(approved, ADMIN_ACTOR)
            gateway.unavailable_next()
            withdrawals.pay_out(approved)
        failed, created = request(FAILED_MINOR, "demo-withdrawal-failed")
        if created:
            gateway.fail_next(*PROCESSOR_REFUSAL)
            withdrawals.pay_out(failed)
        identifiers += [approved, failed]
    statuses = {
        identifier: withdrawals.require_withdrawal(identifier).status.value
        for identifier in identifiers
    }
    return WithdrawalsDemoSummary(
        funded_account_id=account_id,
        paid_withdrawal_id=small,
        pending_withdrawal_id=large,
        paid_status=statuses[small],
        pending_status=statuses[large],
        statuses=statuses,
    )
