"""Funded accounts for tests: through the service, or as bare aggregates.

`activate_funded_account` activates one as the service does it (a ledger
account funded from the platform, and `Activated`, in one write); until the
API activates accounts (POST /v1/funded-accounts), API tests get theirs here.
`activated_account` and `save_funded_accounts` make the aggregate and record
its events directly, for tests that drive it through any sequence of commands.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from uuid import UUID, uuid4

from application.event_log import LedgerApplication
from application.funded_accounts import ActivationRequest
from domain.funded_account import FundedAccount
from domain.tiers import TierName
from interface.bootstrap import Ledger

ACTIVATION_ACTOR = "test:activation"
# An assessment completes a day before its account is activated.
ASSESSMENT_TO_ACTIVATION = timedelta(days=1)


def activated_account(
    *,
    owner_id: str,
    at: datetime,
    tier: TierName = TierName.GEN,
    profit_split: Fraction = Fraction(4, 5),
    assessment_id: str | None = None,
    ledger_account_id: UUID | None = None,
) -> FundedAccount:
    """A new funded account, not saved yet (its Activated event is pending)."""
    return FundedAccount.activate(
        assessment_id=assessment_id or f"assessment-{uuid4()}",
        owner_id=owner_id,
        tier=tier,
        profit_split=profit_split,
        completed_at=at - ASSESSMENT_TO_ACTIVATION,
        ledger_account_id=ledger_account_id or uuid4(),
        activated_at=at,
        actor=ACTIVATION_ACTOR,
    )


def save_funded_accounts(app: LedgerApplication, *accounts: FundedAccount) -> int:
    """Record the accounts' pending events in the log; the last log position
    written (pass it as `min_position` to read them), 0 if none were pending."""
    recordings = app.save(*accounts)
    return max((recording.notification.id for recording in recordings), default=0)


def activate_funded_account(
    ledger: Ledger,
    *,
    owner_id: str,
    tier: TierName = TierName.GEN,
    profit_split: Fraction = Fraction(4, 5),
) -> UUID:
    """A funded account activated by the service, as the API's activation will; its id."""
    activation = ledger.funded_accounts.activate(
        ActivationRequest(
            assessment_id=f"assessment-{uuid4()}",
            owner_id=owner_id,
            tier=tier,
            profit_split=profit_split,
            completed_at=ledger.clock.now() - ASSESSMENT_TO_ACTIVATION,
        ),
        actor=ACTIVATION_ACTOR,
    )
    return activation.account.id
