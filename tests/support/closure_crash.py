"""A closure worker that dies by SIGKILL right after one outside effect (an
email sent, orders cancelled, a payout made), before the closure could record
it: run as a child process by the crash test.

    python -m tests.support.closure_crash DATABASE_URL DATA_DIR STRIPE_BASE CLOSURE_ID NOW KILL_AT

KILL_AT is one of `KILL_POINTS`. The child advances the closure from NOW,
moving its clock to each recorded timer, until it dies at that point.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Final
from uuid import UUID

from psycopg_pool import ConnectionPool

from application.clock import SettableClock
from application.ports.broker import UnknownAccount
from application.ports.closure_mailer import ClosureEmail, Mailer
from application.ports.payout_gateway import Payout, PayoutRequest
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from interface.bootstrap import build_ledger, build_mailer
from interface.settings import Settings
from tests.support.fake_stripe import API_KEY

KILL_POINTS: Final = (
    "closure_started",
    "cancel_open_orders",
    "create_payout",
    "closure_completed",
)
STEPS_MAX: Final[int] = 100


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingMailer:
    def __init__(self, inner: Mailer, kill_at: str) -> None:
        self._inner, self._kill_at = inner, kill_at

    def send(self, email: ClosureEmail) -> bool:
        sent = self._inner.send(email)
        if email.kind.value == self._kill_at:
            _die()
        return sent


class KillingGateway(StripePayoutGateway):
    kill_at = ""

    def create_payout(self, request: PayoutRequest) -> Payout:
        payout = super().create_payout(request)
        if self.kill_at == "create_payout":
            _die()
        return payout


class KillingBroker(SimulatedBroker):
    kill_at = ""

    def cancel_open_orders(self, account_id: UUID) -> int:
        try:
            cancelled = super().cancel_open_orders(account_id)
        except UnknownAccount:
            # This process's simulated broker never held the account.
            cancelled = 0
        if self.kill_at == "cancel_open_orders":
            _die()
        return cancelled


def main(
    database_url: str, data_dir: str, stripe_base: str, closure_id: str, now: str, kill_at: str
) -> None:
    if kill_at not in KILL_POINTS:
        raise SystemExit(f"KILL_AT is one of {KILL_POINTS}")
    settings = Settings(database_url=database_url, data_dir=Path(data_dir))
    clock = SettableClock(datetime.fromisoformat(now))
    gateway = KillingGateway(API_KEY, stripe_base, timeout_s=5)
    gateway.kill_at = kill_at
    broker = KillingBroker(clock)
    broker.kill_at = kill_at
    mail_pool = ConnectionPool(database_url, min_size=1, max_size=2, open=True)
    ledger = build_ledger(
        settings,
        clock=clock,
        start_projections=False,
        payout_gateway=gateway,
        broker=broker,
        mailer=KillingMailer(build_mailer(settings, mail_pool), kill_at),
    )
    for _ in range(STEPS_MAX):
        closure = ledger.closures.advance(UUID(closure_id))
        if closure.next_action_at is None or closure.stuck:
            break
        clock.set(max(clock.now(), closure.next_action_at))
    ledger.close()
    # Not reached when the kill point came.
    sys.exit(3)


if __name__ == "__main__":
    main(*sys.argv[1:7])
