"""A payout worker that dies by SIGKILL right after Stripe accepted a payout,
before the service could record it: run as a child process by the crash test.

    python -m tests.support.payout_crash DATABASE_URL DATA_DIR STRIPE_BASE WITHDRAWAL_ID
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from uuid import UUID

from application.ports.payout_gateway import Payout, PayoutRequest
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from interface.bootstrap import build_ledger
from interface.settings import Settings
from tests.support.fake_stripe import API_KEY


class DiesAfterPayout(StripePayoutGateway):
    def create_payout(self, request: PayoutRequest) -> Payout:
        payout = super().create_payout(request)
        # Stripe has the payout; the ledger never hears of it from this process.
        os.kill(os.getpid(), signal.SIGKILL)
        return payout


def main(database_url: str, data_dir: str, stripe_base: str, withdrawal_id: str) -> None:
    settings = Settings(database_url=database_url, data_dir=Path(data_dir))
    ledger = build_ledger(
        settings,
        start_projections=False,
        payout_gateway=DiesAfterPayout(API_KEY, stripe_base, timeout_s=5),
    )
    ledger.withdrawals.pay_out(UUID(withdrawal_id))
    # Not reached: the payout kills the process.
    ledger.close()
    sys.exit(3)


if __name__ == "__main__":
    main(*sys.argv[1:5])
