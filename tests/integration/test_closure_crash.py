"""kill -9 the closure worker at each phase, right after its outside effect
and before it is recorded: after each restart the closure carries on where
its events say it was, sends each email once and pays each tranche once."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from uuid import UUID

import psycopg

from application.clock import SettableClock
from application.closures import ClosureRequest
from application.withdrawals import PayoutUpdate
from domain.closure import Closure, ClosurePhase
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from interface.adapters.payouts.stripe_objects import payout_from_stripe
from interface.bootstrap import OUTBOX_FOLDER, Ledger, build_ledger
from interface.settings import Settings
from tests.support.fake_stripe import API_KEY, FakeStripe
from tests.support.withdrawals import profitable_funded_account

REPOSITORY = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 120
# $75,000 profit at 4/5: $60,000 in two tranches (50,000 and 10,000).
PROFIT_MINOR = 75_000_00


def _kill_child_at(
    settings: Settings, stripe: FakeStripe, closure_id: UUID, now: datetime, kill_at: str, tmp: Path
) -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.closure_crash",
            settings.database_url or "",
            str(settings.data_dir),
            stripe.base_url,
            str(closure_id),
            now.isoformat(),
            kill_at,
        ],
        cwd=REPOSITORY,
        capture_output=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, (kill_at, child.stderr.decode()[-3000:])


def _settle_stripe(ledger: Ledger, stripe: FakeStripe) -> None:
    """Stripe pays every pending payout and says so by webhook."""
    for payout in stripe.payouts:
        if payout["status"] != "paid":
            stripe.set_status(payout["id"], "paid")
    for payout in stripe.payouts:
        ledger.withdrawals.apply_payout_update(
            PayoutUpdate(payout_from_stripe(payout), f"stripe-webhook:evt_{payout['id']}")
        )


def _advance_until(
    ledger: Ledger, clock: SettableClock, stripe: FakeStripe, closure_id: UUID, phase: ClosurePhase
) -> Closure:
    closure = ledger.closures.advance(closure_id)
    for _ in range(100):
        if closure.phase is phase:
            return closure
        assert not closure.stuck, closure.stuck_reason
        _settle_stripe(ledger, stripe)
        assert closure.next_action_at is not None
        clock.set(max(clock.now(), closure.next_action_at))
        closure = ledger.closures.advance(closure_id)
    raise AssertionError(f"never reached {phase}")


def _emails_sent(database_url: str) -> dict[str, tuple[int, bool]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT kind, attempts, sent_at IS NOT NULL FROM email_outbox"
        ).fetchall()
    return {kind: (attempts, sent) for kind, attempts, sent in rows}


def test_a_worker_killed_at_each_phase_resumes_and_pays_each_tranche_once(
    settings: Settings, clock: SettableClock, tmp_path: Path
) -> None:
    with FakeStripe() as stripe:
        gateway = StripePayoutGateway(API_KEY, stripe.base_url, timeout_s=5)
        ledger = build_ledger(settings, clock=clock, payout_gateway=gateway)
        try:
            funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
            closure = ledger.closures.initiate(
                ClosureRequest(funded_id, "Ada Lovelace", "ada@example.com", "done", "user:1")
            ).closure
        finally:
            ledger.close()

        # INITIATED: killed right after the starting email went out.
        _kill_child_at(settings, stripe, closure.id, clock.now(), "closure_started", tmp_path)
        ledger = build_ledger(settings, clock=clock, payout_gateway=gateway)
        try:
            assert ledger.closures.require_closure(closure.id).phase is ClosurePhase.INITIATED
            assert _emails_sent(settings.database_url or "") == {"closure_started": (1, True)}
        finally:
            ledger.close()

        # LIQUIDATING: killed right after the open orders were cancelled.
        _kill_child_at(settings, stripe, closure.id, clock.now(), "cancel_open_orders", tmp_path)
        ledger = build_ledger(settings, clock=clock, payout_gateway=gateway)
        try:
            resumed = ledger.closures.require_closure(closure.id)
            assert resumed.phase is ClosurePhase.LIQUIDATING
            # The starting email was not sent again on the way.
            assert _emails_sent(settings.database_url or "") == {"closure_started": (1, True)}
        finally:
            ledger.close()

        # WITHDRAWING: killed right after Stripe accepted the first tranche's payout.
        _kill_child_at(settings, stripe, closure.id, clock.now(), "create_payout", tmp_path)
        assert len(stripe.payouts) == 1
        ledger = build_ledger(settings, clock=clock, payout_gateway=gateway)
        try:
            # On until the last tranche is paid out at Stripe and waits for
            # its webhook; Stripe then pays it (the worker has not seen it).
            current = ledger.closures.require_closure(closure.id)
            for _ in range(100):
                clock.set(max(clock.now(), current.next_action_at or clock.now()))
                current = ledger.closures.advance(closure.id)
                if current.tranche_in_flight is not None and len(stripe.payouts) == 2:
                    break
                _settle_stripe(ledger, stripe)
            _settle_stripe(ledger, stripe)
            assert current.phase is ClosurePhase.WITHDRAWING
            assert [t["amount_minor"] for t in current.tranches] == [50_000_00, 10_000_00]
            # One payout per tranche at Stripe, though the first was asked for twice.
            assert sorted(p["amount"] for p in stripe.payouts) == [10_000_00, 50_000_00]
        finally:
            ledger.close()

        # CLOSING: killed right after the completion email went out.
        _kill_child_at(settings, stripe, closure.id, clock.now(), "closure_completed", tmp_path)
        ledger = build_ledger(settings, clock=clock, payout_gateway=gateway)
        try:
            done = _advance_until(ledger, clock, stripe, closure.id, ClosurePhase.COMPLETED)
            assert done.total_paid_minor == 60_000_00
            assert len(stripe.payouts) == 2
            assert _emails_sent(settings.database_url or "") == {
                "closure_started": (1, True),
                "closure_completed": (1, True),
            }
            assert len(list((settings.data_dir / OUTBOX_FOLDER).glob("*.eml"))) == 2
        finally:
            ledger.close()
