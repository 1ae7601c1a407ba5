"""The demo's account closure: a Gen account with $2,000 of profit whose
holder asked to close it. `ledger serve --demo` starts the closure worker, so
within seconds the starting email is in LEDGER_DATA_DIR/outbox and the
closure waits for T+1 settlement (`GET /v1/accounts/{id}/closure`; follow it
live at `.../closure/events`, or walk it with `ledger closures tick --now`).

Loading again finds the account and its closure and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

from application.closures import ClosureRequest, ClosuresService
from application.funded_accounts import FundedAccountsService
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.demo.funded_accounts import DEMO_ACTOR, activate_after_one_trade

CLOSING_ASSESSMENT_ID: Final[str] = "demo-assessment-closing"
CLOSING_OWNER_ID: Final[str] = "user-02"
TRADE_SYMBOL: Final[str] = "CLSE"
# 400 units bought at $1.00 and sold at $6.00: $2,000 profit, $1,600 to pay out.
QUANTITY: Final[int] = 400
ENTRY_MINOR: Final[int] = 100
EXIT_MINOR: Final[int] = 600


@dataclass(frozen=True, slots=True)
class ClosureDemoSummary:
    funded_account_id: UUID
    closure_id: UUID
    confirmation_number: str
    phase: str

    def lines(self) -> list[str]:
        return [
            f"closure: {self.confirmation_number} of funded account {self.funded_account_id} "
            f"({self.phase}); GET /v1/accounts/{self.funded_account_id}/closure"
        ]


def load_closure_demo(
    funded_accounts: FundedAccountsService, closures: ClosuresService, broker: SimulatedBroker
) -> ClosureDemoSummary:
    account_id = activate_after_one_trade(
        funded_accounts,
        broker,
        assessment_id=CLOSING_ASSESSMENT_ID,
        owner_id=CLOSING_OWNER_ID,
        symbol=TRADE_SYMBOL,
        quantity=QUANTITY,
        entry_minor=ENTRY_MINOR,
        exit_minor=EXIT_MINOR,
    )
    closure = closures.initiate(
        ClosureRequest(
            funded_account_id=account_id,
            recipient_name="Demo Trader",
            recipient_address="demo.trader@example.com",
            reason="the account holder asked to close",
            actor=DEMO_ACTOR,
        )
    ).closure
    return ClosureDemoSummary(
        funded_account_id=account_id,
        closure_id=closure.id,
        confirmation_number=closure.confirmation_number,
        phase=closure.phase.value,
    )
