"""The rules monitor on real PostgreSQL: it marks the accounts holding
positions, closes a violating one, isolates one account's broker failure,
and runs in one process at a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from fractions import Fraction
from uuid import UUID, uuid4

import psycopg

from application.funded_accounts import ActivationRequest
from domain.funded_account_states import FundedAccountState
from domain.funded_rules import RuleBand
from domain.positions import PositionSide
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.persistence.advisory_locks import RULES_MONITOR_LOCK_KEY
from interface.bootstrap import Ledger
from interface.workers.rules_monitor import RulesMonitor

CATCH_UP_TIMEOUT_S = 30.0
BACKGROUND_TIMEOUT_S = 30.0


def _broker(ledger: Ledger) -> SimulatedBroker:
    assert isinstance(ledger.broker, SimulatedBroker)
    return ledger.broker


def _account(ledger: Ledger) -> UUID:
    return ledger.funded_accounts.activate(
        ActivationRequest(
            assessment_id=f"assessment-{uuid4()}",
            owner_id="trader-3",
            tier=TierName.GEN,
            profit_split=Fraction(4, 5),
            completed_at=datetime(2025, 12, 1, tzinfo=UTC),
        ),
        actor="test",
    ).account.id


def _holding(ledger: Ledger, symbol: str) -> UUID:
    """A Gen account ($10,000) short 400 units of `symbol` sold at 100."""
    account_id = _account(ledger)
    _broker(ledger).set_price(symbol, bid_minor=100, ask_minor=100)
    ledger.funded_accounts.open_position(account_id, symbol, PositionSide.SHORT, 400)
    return account_id


def _monitor(ledger: Ledger) -> RulesMonitor:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(
        ledger.writer.last_position, ["funded_accounts"], CATCH_UP_TIMEOUT_S
    )
    return RulesMonitor(ledger.database_url, ledger.funded_accounts, interval_s=0.05)


def test_a_pass_marks_the_holders_and_closes_a_violating_account(ledger: Ledger) -> None:
    steady, crashing = _holding(ledger, "STEADY"), _holding(ledger, "CRASH")
    idle = _account(ledger)
    # A short of 400 units bought back at 400: 120,000 of a 1,000,000 peak
    # lost, over Gen's 10 %. The other gains 400 (marked at the ask, 99).
    _broker(ledger).set_price("CRASH", bid_minor=399, ask_minor=400)
    _broker(ledger).set_price("STEADY", bid_minor=98, ask_minor=99)
    done = _monitor(ledger).run_once()
    assert done.leased and done.failures == {}
    assert (done.accounts_marked, done.violations_enforced) == (2, 1)
    closed = ledger.funded_accounts.require_funded_account(crashing)
    assert closed.state is FundedAccountState.CLOSED and closed.positions == ()
    assert closed.state_reason.startswith("rule violation: drawdown")
    marked = ledger.funded_accounts.require_funded_account(steady)
    # Its risk per trade fell from 4 % (WARNING) to 3.96 % of the balance (SAFE).
    assert marked.unrealized_pnl_minor == 400 and marked.band is RuleBand.SAFE
    untouched = ledger.funded_accounts.require_funded_account(idle)
    assert untouched.version == 1


def test_one_accounts_broker_failure_does_not_stop_the_others(ledger: Ledger) -> None:
    failing, healthy = _holding(ledger, "ACME"), _holding(ledger, "ACME")
    _broker(ledger).set_unavailable(failing)
    _broker(ledger).set_price("ACME", bid_minor=399, ask_minor=400)
    done = _monitor(ledger).run_once()
    # Quotes need no account, so the failing account is marked and found in
    # violation; its positions cannot be closed while its broker is down.
    assert done.failures == {failing: "broker_unavailable"}
    assert done.violations_enforced == 1
    assert ledger.funded_accounts.require_funded_account(healthy).state is (
        FundedAccountState.CLOSED
    )
    stuck = ledger.funded_accounts.require_funded_account(failing)
    assert stuck.state is FundedAccountState.SUSPENDED and stuck.positions

    # The broker is back: the next pass finishes closing it.
    _broker(ledger).set_unavailable(failing, unavailable=False)
    again = _monitor(ledger).run_once()
    assert again.failures == {} and again.violations_enforced == 1
    assert ledger.funded_accounts.require_funded_account(failing).state is (
        FundedAccountState.CLOSED
    )


def test_only_one_monitor_runs_a_pass_at_a_time(ledger: Ledger) -> None:
    _holding(ledger, "ACME")
    with psycopg.connect(ledger.database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (RULES_MONITOR_LOCK_KEY,))
        assert not _monitor(ledger).run_once().leased
        # Released here, not by closing: a closed session's locks go a moment
        # after the client has gone, which the next pass could race.
        holder.execute("SELECT pg_advisory_unlock(%s)", (RULES_MONITOR_LOCK_KEY,))
        assert _monitor(ledger).run_once().leased


def test_the_background_monitor_closes_a_violating_account(ledger: Ledger) -> None:
    account_id = _holding(ledger, "ACME")
    monitor = _monitor(ledger)
    monitor.start()
    try:
        _broker(ledger).set_price("ACME", bid_minor=399, ask_minor=400)
        deadline = time.monotonic() + BACKGROUND_TIMEOUT_S
        while ledger.funded_accounts.require_funded_account(account_id).state is not (
            FundedAccountState.CLOSED
        ):
            assert time.monotonic() < deadline, "the monitor never closed the account"
            time.sleep(0.05)
    finally:
        monitor.stop()
    assert not monitor.is_running
