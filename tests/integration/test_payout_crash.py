"""kill -9 between the payout call and its recording: Stripe has paid, the
ledger has not heard. After a restart the worker asks again with the same
idempotency key, gets the same payout back, and records it: one payout."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from application.clock import SettableClock
from application.ports.payout_gateway import PayoutStatus
from application.withdrawals import PayoutUpdate, WithdrawalRequest
from domain.withdrawal import WithdrawalStatus, payout_idempotency_key
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from interface.adapters.payouts.stripe_objects import payout_from_stripe
from interface.bootstrap import build_ledger
from interface.settings import Settings
from tests.support.fake_stripe import API_KEY, FakeStripe
from tests.support.withdrawals import profitable_funded_account

REPOSITORY = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 120


def test_a_worker_killed_after_the_payout_never_pays_twice(
    settings: Settings, clock: SettableClock, tmp_path: Path
) -> None:
    with FakeStripe() as stripe:
        gateway = StripePayoutGateway(API_KEY, stripe.base_url, timeout_s=5)
        ledger = build_ledger(settings, clock=clock, payout_gateway=gateway)
        try:
            funded_id = profitable_funded_account(ledger, "trader-1", 5_000_00)
            withdrawal = ledger.withdrawals.request(
                WithdrawalRequest(funded_id, 750_00, "crash", "user:test")
            ).withdrawal
        finally:
            ledger.close()

        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.support.payout_crash",
                settings.database_url or "",
                str(tmp_path / "child"),
                stripe.base_url,
                str(withdrawal.id),
            ],
            cwd=REPOSITORY,
            capture_output=True,
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
        assert len(stripe.payouts) == 1
        (paid,) = stripe.payouts

        restarted = build_ledger(settings, clock=clock, payout_gateway=gateway)
        try:
            before = restarted.withdrawals.require_withdrawal(withdrawal.id)
            # The ledger never heard: still approved, due now.
            assert before.status is WithdrawalStatus.APPROVED and before.payout_id is None

            after = restarted.withdrawals.pay_out(withdrawal.id)
            assert after.status is WithdrawalStatus.PAID_OUT
            assert after.payout_id == paid["id"]
            assert len(stripe.payouts) == 1
            keys = {
                request.idempotency_key for request in stripe.requests if request.method == "POST"
            }
            assert keys == {payout_idempotency_key(withdrawal.id)}

            stripe.set_status(paid["id"], "paid")
            settled = restarted.withdrawals.apply_payout_update(
                PayoutUpdate(payout_from_stripe(stripe.payouts[0]), "stripe-webhook:evt_1")
            )
            assert settled.status is WithdrawalStatus.COMPLETED
            assert payout_from_stripe(stripe.payouts[0]).status is PayoutStatus.PAID
            account = restarted.funded_accounts.require_funded_account(funded_id)
            assert account.total_withdrawn_minor == 750_00
        finally:
            restarted.close()
