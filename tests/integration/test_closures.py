"""Account closure on real PostgreSQL, walked through days of simulated time:
phases, tranches 24 hours apart, emails once, timeouts, retries, resumption."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from application.clock import SettableClock
from application.closures import ClosureRequest
from domain.account import AccountState
from domain.closure import (
    TRANCHE_INTERVAL,
    Closure,
    ClosurePhase,
    TrancheStatus,
    confirmation_number_for,
)
from domain.funded_account_states import FundedAccountState
from domain.positions import PositionSide
from domain.result_codes import LedgerRefusal, ResultCode
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
from interface.bootstrap import OUTBOX_FOLDER, Ledger, build_ledger
from interface.settings import Settings
from projections.closures import stuck_closures
from tests.support.withdrawals import profitable_funded_account

# $225,000 of profit at 4/5: $180,000 to pay out, in four tranches.
PROFIT_MINOR = 225_000_00
PAYABLE_MINOR = 180_000_00


@pytest.fixture
def gateway(clock: SettableClock) -> SandboxPayoutGateway:
    return SandboxPayoutGateway(clock)


@pytest.fixture
def closing_ledger(
    settings: Settings, clock: SettableClock, gateway: SandboxPayoutGateway
) -> Iterator[Ledger]:
    running = build_ledger(settings, clock=clock, payout_gateway=gateway)
    try:
        yield running
    finally:
        running.close()


def _initiate(ledger: Ledger, funded_account_id: UUID) -> Closure:
    return ledger.closures.initiate(
        ClosureRequest(
            funded_account_id=funded_account_id,
            recipient_name="Ada Lovelace",
            recipient_address="ada@example.com",
            reason="the trader asked to close",
            actor="user:key-1",
        )
    ).closure


def _run_until(
    ledger: Ledger, clock: SettableClock, closure_id: UUID, phase: ClosurePhase
) -> Closure:
    """Advance at each recorded timer until the phase (bounded)."""
    closure = ledger.closures.advance(closure_id)
    for _ in range(200):
        if closure.phase is phase or closure.stuck:
            return closure
        assert closure.next_action_at is not None
        clock.set(max(clock.now(), closure.next_action_at))
        closure = ledger.closures.advance(closure_id)
    raise AssertionError(f"never reached {phase}: {closure.phase}")


def _outbox(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / OUTBOX_FOLDER).glob("*.eml"))


def _balance(ledger: Ledger, account_id: UUID) -> int:
    account = ledger.service.account(account_id)
    assert account is not None
    return account.totals.credits_posted - account.totals.debits_posted


def test_a_180k_account_closes_in_four_tranches_24_hours_apart(
    closing_ledger: Ledger, clock: SettableClock, settings: Settings
) -> None:
    ledger = closing_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    account = ledger.funded_accounts.require_funded_account(funded_id)
    assert account.withdrawable_minor() == PAYABLE_MINOR

    closure = _initiate(ledger, funded_id)
    assert closure.confirmation_number == confirmation_number_for(closure.id)
    assert closure.phase is ClosurePhase.INITIATED
    pending = ledger.funded_accounts.require_funded_account(funded_id)
    assert pending.state is FundedAccountState.PENDING_CLOSURE
    # Initiating again: the same closure, nothing new.
    again = ledger.closures.initiate(
        ClosureRequest(funded_id, "Ada Lovelace", "ada@example.com", "again", "user:key-1")
    )
    assert (again.closure.id, again.created) == (closure.id, False)

    settling = _run_until(ledger, clock, closure.id, ClosurePhase.SETTLING)
    assert settling.settles_at is not None and settling.settles_at > clock.now()
    assert len(_outbox(settings)) == 1

    completed = _run_until(ledger, clock, closure.id, ClosurePhase.COMPLETED)
    tranches = completed.tranches
    assert [t["amount_minor"] for t in tranches] == [50_000_00, 50_000_00, 50_000_00, 30_000_00]
    assert {t["status"] for t in tranches} == {TrancheStatus.COMPLETED.value}
    requested = [datetime.fromisoformat(t["requested_at"]) for t in tranches]
    assert [later - earlier for earlier, later in itertools.pairwise(requested)] == [
        TRANCHE_INTERVAL
    ] * 3
    assert requested[-1] - requested[0] == timedelta(days=3)
    assert completed.total_paid_minor == PAYABLE_MINOR
    # Each tranche one payout, its own idempotency key.
    withdrawals = [
        ledger.withdrawals.require_withdrawal(UUID(t["withdrawal_id"])) for t in tranches
    ]
    assert len({w.payout_id for w in withdrawals}) == 4

    closed = ledger.funded_accounts.require_funded_account(funded_id)
    assert closed.state is FundedAccountState.CLOSED
    assert closed.total_withdrawn_minor == PAYABLE_MINOR
    ledger_account = ledger.service.account(closed.ledger_account_id)
    assert ledger_account is not None and ledger_account.state is AccountState.CLOSED
    assert _balance(ledger, closed.ledger_account_id) == 0
    # The rest (capital and the platform's share) went back to the platform.
    assert completed.capital_returned_minor == 10_000_00 + PROFIT_MINOR - PAYABLE_MINOR

    # Two emails, once each, however often the closure is advanced again.
    for _ in range(3):
        ledger.closures.advance(closure.id)
    emails = _outbox(settings)
    assert len(emails) == 2
    completion = next(path for path in emails if "completed" in path.name).read_text()
    assert "180,000.00" in completion and closure.confirmation_number in completion
    with psycopg.connect(ledger.database_url) as connection:
        sent = connection.execute(
            "SELECT count(*) FROM email_outbox WHERE sent_at IS NOT NULL"
        ).fetchone()
    assert sent == (2,)


def test_a_closed_or_closing_account_cannot_be_closed_again_differently(
    closing_ledger: Ledger,
) -> None:
    ledger = closing_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", 400)
    ledger.funded_accounts.change_state(
        funded_id, FundedAccountState.CLOSED, "rule violation", "rules-monitor"
    )
    with pytest.raises(LedgerRefusal) as refused:
        _initiate(ledger, funded_id)
    assert refused.value.code is ResultCode.ACCOUNT_NOT_ACTIVE


def test_settlement_that_never_comes_times_out_into_a_stuck_closure_and_is_resumed(
    closing_ledger: Ledger, clock: SettableClock
) -> None:
    ledger = closing_ledger
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    funded_id = profitable_funded_account(ledger, "trader-1", 2_000_00)
    closure = _initiate(ledger, funded_id)
    settling = _run_until(ledger, clock, closure.id, ClosurePhase.SETTLING)
    # A trade the broker has not settled (a position the ledger never heard of).
    broker.set_price("ODD", bid_minor=100, ask_minor=100)
    stray = broker.open_position(funded_id, "ODD", PositionSide.LONG, 1, "stray-order")

    stuck = _run_until(ledger, clock, closure.id, ClosurePhase.WITHDRAWING)
    assert stuck.stuck and stuck.phase is ClosurePhase.SETTLING
    assert stuck.stuck_reason is not None and "settlement timed out" in stuck.stuck_reason
    assert settling.deadline_at is not None and clock.now() >= settling.deadline_at
    assert not stuck.due(clock.now() + timedelta(days=30))
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, ["closures"], 10)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        found = stuck_closures(cursor, clock.now(), timedelta(hours=1), 0, 10)
    assert [row.closure_id for row in found] == [closure.id]

    # An operator settles it with the broker, then resumes.
    broker.close_position(stray.position_id, "stray-close")
    plan = ledger.closures.resume_plan(closure.id)
    assert plan.phase is ClosurePhase.SETTLING
    resumed = ledger.closures.resume(closure.id, "admin:ops")
    # Resuming runs what is due at once: settled, one tranche, closed.
    assert not resumed.stuck and resumed.phase is ClosurePhase.COMPLETED
    assert resumed.total_paid_minor == 1_600_00


def test_a_failed_tranche_payout_is_asked_for_again_and_paid_once(
    closing_ledger: Ledger, clock: SettableClock, gateway: SandboxPayoutGateway
) -> None:
    ledger = closing_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", 2_000_00)
    closure = _initiate(ledger, funded_id)
    _run_until(ledger, clock, closure.id, ClosurePhase.SETTLING)
    gateway.fail_next("account_closed", "the bank account is closed")
    done = _run_until(ledger, clock, closure.id, ClosurePhase.COMPLETED)
    statuses = [(t["number"], t["attempt"], t["status"]) for t in done.tranches]
    assert statuses == [(1, 1, "failed"), (1, 2, "completed")]
    assert done.total_paid_minor == 1_600_00
    assert len(list(gateway.list_payouts())) == 1
    closed = ledger.funded_accounts.require_funded_account(funded_id)
    assert closed.total_withdrawn_minor == 1_600_00


def test_liquidation_closes_every_position_through_the_broker(
    closing_ledger: Ledger, clock: SettableClock
) -> None:
    ledger = closing_ledger
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    funded_id = profitable_funded_account(ledger, "trader-1", 2_000_00)
    broker.set_price("HOLD", bid_minor=100, ask_minor=100)
    ledger.funded_accounts.open_position(funded_id, "HOLD", PositionSide.LONG, 3)
    closure = _initiate(ledger, funded_id)
    settling = _run_until(ledger, clock, closure.id, ClosurePhase.SETTLING)
    assert not settling.stuck
    assert ledger.funded_accounts.require_funded_account(funded_id).positions == ()
    assert broker.open_positions(funded_id) == ()
