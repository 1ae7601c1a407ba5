"""The demo's fork: a Gen account funded with $120,000, past the Gen fork
threshold ($100,000) and able to keep the Gen minimum after handing $100,000
to a Rev child (docs/rules.md#tiers-forks-and-merges). Its fork is proposed
when the activation creates the account; the confidence of that moment
decides whether it executes at once or waits for an admin
(`GET /v1/forks`), so its status depends on the time of day.

Loading again finds the account by its assessment and its fork by the time
of its last fork attempt, and proposes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Final
from uuid import UUID

from application.forks import ForksService
from application.funded_accounts import ActivationRequest, FundedAccountsService
from domain.fork import fork_id_for
from domain.tiers import TierName
from interface.demo.funded_accounts import COMPLETED_AT, DEMO_ACTOR

FORK_ASSESSMENT_ID: Final[str] = "demo-assessment-fork"
FORK_OWNER_ID: Final[str] = "user-03"
STARTING_BALANCE_MINOR: Final[int] = 120_000_00


@dataclass(frozen=True, slots=True)
class ForkDemoSummary:
    parent_id: UUID
    fork_id: UUID
    status: str

    def lines(self) -> list[str]:
        return [
            f"fork: {self.fork_id} of funded account {self.parent_id} ({self.status}); "
            "GET /v1/forks"
        ]


def load_fork_demo(funded_accounts: FundedAccountsService, forks: ForksService) -> ForkDemoSummary:
    activation = funded_accounts.activate(
        ActivationRequest(
            assessment_id=FORK_ASSESSMENT_ID,
            owner_id=FORK_OWNER_ID,
            tier=TierName.GEN,
            profit_split=Fraction(4, 5),
            completed_at=COMPLETED_AT,
            starting_balance_minor=STARTING_BALANCE_MINOR,
        ),
        actor=DEMO_ACTOR,
    )
    parent_id = activation.account.id
    if activation.created:
        fork_id = forks.propose(parent_id, DEMO_ACTOR).fork.id
    else:
        attempted_at = funded_accounts.require_funded_account(parent_id).last_fork_attempt_at
        assert attempted_at is not None, "the demo's fork account was created without its fork"
        fork_id = fork_id_for(parent_id, attempted_at)
    return ForkDemoSummary(parent_id, fork_id, forks.require_fork(fork_id).status.value)
