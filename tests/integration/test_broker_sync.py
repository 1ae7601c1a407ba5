"""The broker sync and the guard worker on real PostgreSQL: positions matched
with the 5 % volume tolerance, each divergence recorded once and cleared
when gone, a steady account writing nothing, and one account's broker
failing (down, timing out, slow) while the others sync in the same pass,
retried after its backoff."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Final
from uuid import UUID

import pytest

from application.aggregate_writes import write_with_aggregates
from application.clock import SettableClock
from application.ports.broker import AccountEquity, BrokerTimeout, UnknownAccount
from application.ports.broker_sync_status import SyncFailure
from domain.account_guard import AccountGuard, DivergenceKind, guard_id_for
from domain.funded_account_states import FundedAccountState
from domain.positions import PositionSide
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.persistence.advisory_locks import GUARD_WORKER_LOCK_KEY
from interface.adapters.persistence.broker_sync_status import (
    RETRY_BACKOFF_BASE,
    SyncStatus,
    read_sync_status,
)
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from interface.workers.guard_worker import GuardPass, GuardWorker
from tests.support.funded_accounts import activate_funded_account

CATCH_UP_TIMEOUT_S: Final[float] = 30.0
# The simulated broker's reply time-out here: a latency at it times out.
REPLY_TIMEOUT_S: Final[float] = 0.2
SLOW_REPLY_S: Final[float] = 0.05
# A Gen account's starting balance, $10,000.
STARTING_MINOR: Final[int] = 1_000_000
SYMBOL: Final[str] = "SYNC"
BID_MINOR: Final[int] = 99
ASK_MINOR: Final[int] = 100


# Setting up both sides ------------------------------------------------------------


def _broker(ledger: Ledger) -> SimulatedBroker:
    assert isinstance(ledger.broker, SimulatedBroker)
    return ledger.broker


def _account(ledger: Ledger) -> UUID:
    return activate_funded_account(ledger, owner_id="trader-sync")


def _at_broker(ledger: Ledger, funded_account_id: UUID, quantity: int, order: str) -> str:
    """A long the broker holds (at the ask now), whatever the ledger holds."""
    broker = _broker(ledger)
    broker.register_account(funded_account_id, STARTING_MINOR)
    fill = broker.open_position(funded_account_id, SYMBOL, PositionSide.LONG, quantity, order)
    return fill.position_id


def _in_ledger(
    ledger: Ledger, funded_account_id: UUID, position_id: str, quantity: int, entry_minor: int
) -> None:
    """A long the ledger holds, whatever the broker holds."""
    account = ledger.funded_accounts.require_funded_account(funded_account_id)
    account.open_position(
        position_id, SYMBOL, PositionSide.LONG, quantity, entry_minor, ledger.clock.now()
    )
    assert write_with_aggregates(ledger.writer, [], account) is not None


def _both(
    ledger: Ledger, funded_account_id: UUID, ledger_quantity: int, broker_quantity: int
) -> str:
    position_id = _at_broker(
        ledger, funded_account_id, broker_quantity, f"order-{ledger_quantity}-{broker_quantity}"
    )
    _in_ledger(ledger, funded_account_id, position_id, ledger_quantity, ASK_MINOR)
    return position_id


def _close_in_ledger(ledger: Ledger, funded_account_id: UUID, position_id: str) -> None:
    account = ledger.funded_accounts.require_funded_account(funded_account_id)
    [held] = [held for held in account.positions if held.position_id == position_id]
    # Closed where it opened: no P&L, only the position gone.
    account.close_position(position_id, held.entry_price_minor, 0, ledger.clock.now())
    assert write_with_aggregates(ledger.writer, [], account) is not None


def _guard(ledger: Ledger, funded_account_id: UUID) -> AccountGuard:
    guard = ledger.app.load_account_guard(guard_id_for(funded_account_id))
    assert guard is not None
    return guard


def _guard_events(ledger: Ledger, funded_account_id: UUID) -> list[str]:
    stored = ledger.app.recorder.select_events(guard_id_for(funded_account_id))
    return [event.topic.rsplit(".", 1)[-1] for event in stored]


def _status(ledger: Ledger, funded_account_id: UUID) -> SyncStatus:
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        status = read_sync_status(cursor, funded_account_id)
    assert status is not None
    return status


@pytest.fixture(autouse=True)
def _market(ledger: Ledger) -> None:
    _broker(ledger).set_price(SYMBOL, bid_minor=BID_MINOR, ask_minor=ASK_MINOR)


# Matching -------------------------------------------------------------------------


def test_five_percent_either_way_matches_and_just_past_it_diverges(ledger: Ledger) -> None:
    account_id = _account(ledger)
    matched = [_both(ledger, account_id, 100, 105), _both(ledger, account_id, 100, 95)]
    more = _both(ledger, account_id, 1_000, 1_051)
    less = _both(ledger, account_id, 1_000, 949)

    snapshot = ledger.broker_sync.sync_account(account_id)

    found = {divergence.position_id: divergence.kind for divergence in snapshot.divergences}
    assert found == {more: DivergenceKind.EXTRA, less: DivergenceKind.PARTIAL_FILL}
    assert not set(matched) & set(found)
    assert set(_guard(ledger, account_id).open_divergences) == {
        f"extra:{more}",
        f"partial_fill:{less}",
    }


def test_each_divergence_is_recorded_once_and_cleared_when_gone(ledger: Ledger) -> None:
    account_id = _account(ledger)
    partial = _both(ledger, account_id, 100, 50)
    # The ledger booked 101 where the broker filled at the ask, 100.
    slipped = _at_broker(ledger, account_id, 100, "order-slipped")
    _in_ledger(ledger, account_id, slipped, 100, ASK_MINOR + 1)
    _in_ledger(ledger, account_id, "position-missing", 10, ASK_MINOR)
    extra = _at_broker(ledger, account_id, 10, "order-extra")

    first = ledger.broker_sync.sync_account(account_id)
    assert [(d.kind, d.position_id) for d in first.divergences] == [
        (DivergenceKind.PARTIAL_FILL, partial),
        (DivergenceKind.SLIPPAGE, slipped),
        (DivergenceKind.MISSING, "position-missing"),
        (DivergenceKind.EXTRA, extra),
    ]
    assert _guard_events(ledger, account_id) == ["Started"] + ["DivergenceFound"] * 4

    # The same answer again: nothing new to record, nothing written to the log.
    written = ledger.writer.last_position
    again = ledger.broker_sync.sync_account(account_id)
    assert again.divergences == first.divergences
    assert ledger.writer.last_position == written
    assert len(_guard_events(ledger, account_id)) == 5

    # Both sides agree again: each divergence is cleared, once.
    broker = _broker(ledger)
    for position_id in (partial, slipped, extra):
        broker.close_position(position_id, f"close-{position_id}")
    for position_id in (partial, slipped, "position-missing"):
        _close_in_ledger(ledger, account_id, position_id)
    cleared = ledger.broker_sync.sync_account(account_id)
    assert cleared.divergences == ()
    assert _guard_events(ledger, account_id)[5:] == ["DivergenceCleared"] * 4
    assert _guard(ledger, account_id).open_divergences == {}
    written = ledger.writer.last_position
    ledger.broker_sync.sync_account(account_id)
    assert ledger.writer.last_position == written


def test_an_account_in_step_with_its_broker_writes_nothing_after_its_first_sync(
    ledger: Ledger,
) -> None:
    account_id = _account(ledger)
    ledger.funded_accounts.open_position(account_id, SYMBOL, PositionSide.LONG, 100)
    first = ledger.broker_sync.sync_account(account_id)
    assert first.divergences == () and len(first.positions) == 1
    # Marked at the bid, 1 below the entry on 100 units.
    assert first.equity.equity_minor == STARTING_MINOR - 100
    assert _guard_events(ledger, account_id) == ["Started"]
    written = ledger.writer.last_position
    for _ in range(3):
        ledger.broker_sync.sync_account(account_id)
    assert ledger.writer.last_position == written
    status = _status(ledger, account_id)
    assert status.equity_minor == STARTING_MINOR - 100 and status.last_error is None
    [position] = status.positions
    assert (position.position_id, position.quantity) == (first.positions[0].position_id, 100)
    assert (position.current_price_minor, position.unrealized_pnl_minor) == (BID_MINOR, -100)


def test_a_higher_equity_at_the_broker_raises_the_peak_once(ledger: Ledger) -> None:
    account_id = _account(ledger)
    _broker(ledger).register_account(account_id, STARTING_MINOR + 100_000)
    ledger.broker_sync.sync_account(account_id)
    ledger.broker_sync.sync_account(account_id)
    assert _guard_events(ledger, account_id) == ["Started", "PeakEquityRaised"]
    assert _guard(ledger, account_id).peak_equity_minor == STARTING_MINOR + 100_000


def test_an_account_the_broker_never_held_and_the_ledger_holds_nothing_in_is_an_empty_sync(
    ledger: Ledger,
) -> None:
    account_id = _account(ledger)
    snapshot = ledger.broker_sync.sync_account(account_id)
    assert snapshot.positions == () and snapshot.divergences == ()
    assert snapshot.equity.equity_minor == STARTING_MINOR
    assert _guard(ledger, account_id).peak_equity_minor == STARTING_MINOR


def test_positions_the_broker_has_no_account_for_are_a_failure(ledger: Ledger) -> None:
    account_id = _account(ledger)
    _in_ledger(ledger, account_id, "position-nowhere", 10, ASK_MINOR)
    with pytest.raises(UnknownAccount):
        ledger.broker_sync.sync_account(account_id)
    failure = ledger.broker_sync.sync_or_record_failure(account_id)
    assert isinstance(failure, SyncFailure) and failure.failed_attempts == 1
    status = _status(ledger, account_id)
    assert status.failed_attempts == 1 and status.synced_at is None
    assert status.last_error is not None and status.last_error.startswith("UnknownAccount")


# The worker ---------------------------------------------------------------------


class _Guarded:
    """`after_sync` for the tests: what it was called with; it raises for the
    accounts told to."""

    def __init__(self, failing: frozenset[UUID] = frozenset()) -> None:
        self.calls: dict[UUID, AccountEquity] = {}
        self._failing = failing
        self._lock = threading.Lock()

    def __call__(self, funded_account_id: UUID, equity: AccountEquity) -> None:
        with self._lock:
            self.calls[funded_account_id] = equity
        if funded_account_id in self._failing:
            raise RuntimeError("the guards broke")


@pytest.fixture
def faulty_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger whose broker times out after REPLY_TIMEOUT_S, not 10 s."""
    running = build_ledger(
        settings, clock=clock, broker=SimulatedBroker(clock, reply_timeout_s=REPLY_TIMEOUT_S)
    )
    try:
        running_broker = running.broker
        assert isinstance(running_broker, SimulatedBroker)
        running_broker.set_price(SYMBOL, bid_minor=BID_MINOR, ask_minor=ASK_MINOR)
        yield running
    finally:
        running.close()


def _worker(ledger: Ledger, after_sync: _Guarded, concurrency: int = 4) -> GuardWorker:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(
        ledger.writer.last_position, ["funded_accounts"], CATCH_UP_TIMEOUT_S
    )
    return GuardWorker(
        database_url=ledger.database_url,
        sync=ledger.broker_sync,
        after_sync=after_sync,
        interval_s=0.05,
        concurrency=concurrency,
    )


def _trading(ledger: Ledger) -> UUID:
    account_id = _account(ledger)
    ledger.funded_accounts.open_position(account_id, SYMBOL, PositionSide.LONG, 10)
    return account_id


def test_one_accounts_failing_broker_leaves_the_others_synced_and_guarded(
    faulty_ledger: Ledger,
) -> None:
    ledger = faulty_ledger
    broker = _broker(ledger)
    healthy, slow, down, timing_out, timed_out = (_trading(ledger) for _ in range(5))
    broker.set_latency(slow, SLOW_REPLY_S)
    broker.set_unavailable(down)
    broker.fail_next(timing_out, BrokerTimeout("no reply in time"))
    broker.set_latency(timed_out, REPLY_TIMEOUT_S)
    guarded = _Guarded()

    done = _worker(ledger, guarded).run_once()

    assert done.leased
    assert set(done.failures) == {down, timing_out, timed_out}
    assert done.failures[down].startswith("BrokerUnavailable")
    assert done.failures[timing_out].startswith("BrokerTimeout")
    assert done.failures[timed_out].startswith("BrokerTimeout")
    assert (done.synced, done.guarded, done.guard_errors) == (2, 2, {})
    assert set(guarded.calls) == {healthy, slow}
    assert guarded.calls[healthy].equity_minor == STARTING_MINOR - 10
    for account_id in (down, timing_out, timed_out):
        status = _status(ledger, account_id)
        assert status.failed_attempts == 1 and status.synced_at is None
        assert status.next_attempt_at == ledger.clock.now() + RETRY_BACKOFF_BASE
    assert _status(ledger, healthy).failed_attempts == 0


def test_a_failed_account_waits_out_its_backoff_and_recovers(
    ledger: Ledger, clock: SettableClock
) -> None:
    broker = _broker(ledger)
    healthy, failing = _trading(ledger), _trading(ledger)
    broker.set_unavailable(failing)
    guarded = _Guarded()
    worker = _worker(ledger, guarded)

    assert set(worker.run_once().failures) == {failing}
    # Inside the backoff the failing account is left out; the other syncs.
    waiting = worker.run_once()
    assert (waiting.synced, waiting.waiting, waiting.failures) == (1, 1, {})

    # Still down after 10 s: the next wait doubles.
    clock.advance(RETRY_BACKOFF_BASE)
    assert set(worker.run_once().failures) == {failing}
    status = _status(ledger, failing)
    assert status.failed_attempts == 2
    assert status.next_attempt_at == clock.now() + 2 * RETRY_BACKOFF_BASE
    clock.advance(RETRY_BACKOFF_BASE)
    assert worker.run_once().waiting == 1

    # Back: after its backoff it syncs, its error cleared.
    broker.set_unavailable(failing, unavailable=False)
    clock.advance(RETRY_BACKOFF_BASE)
    recovered = worker.run_once()
    assert (recovered.synced, recovered.failures, recovered.waiting) == (2, {}, 0)
    assert failing in guarded.calls
    status = _status(ledger, failing)
    assert (status.failed_attempts, status.last_error, status.next_attempt_at) == (0, None, None)
    assert status.synced_at == clock.now() and status.equity_minor == STARTING_MINOR - 10
    assert healthy in guarded.calls


def test_one_accounts_guards_failing_leaves_the_others_guarded(ledger: Ledger) -> None:
    breaking, healthy = _trading(ledger), _trading(ledger)
    guarded = _Guarded(failing=frozenset({breaking}))
    done = _worker(ledger, guarded).run_once()
    assert (done.synced, done.guarded, done.failures) == (2, 1, {})
    assert done.guard_errors == {breaking: "RuntimeError"}
    assert set(guarded.calls) == {breaking, healthy}


def test_the_worker_syncs_active_accounts_and_leaves_closed_ones(ledger: Ledger) -> None:
    idle = _account(ledger)
    closed = _account(ledger)
    ledger.funded_accounts.change_state(closed, FundedAccountState.CLOSED, "test", "test")
    guarded = _Guarded()
    done = _worker(ledger, guarded).run_once()
    assert set(guarded.calls) == {idle} and done.synced == 1


def test_the_background_worker_syncs_until_stopped(ledger: Ledger) -> None:
    account_id = _trading(ledger)
    guarded = _Guarded()
    worker = _worker(ledger, guarded)
    worker.start()
    try:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while account_id not in guarded.calls and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    assert account_id in guarded.calls and not worker.is_running


def test_only_one_worker_runs_a_pass_at_a_time(ledger: Ledger) -> None:
    _trading(ledger)
    worker = _worker(ledger, _Guarded())
    with ledger.pool.connection() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (GUARD_WORKER_LOCK_KEY,))
        try:
            assert worker.run_once() == GuardPass(leased=False)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (GUARD_WORKER_LOCK_KEY,))
    assert worker.run_once().leased


def test_the_bootstrapped_ledger_wires_the_sync_and_a_stopped_worker(ledger: Ledger) -> None:
    assert not ledger.guard_worker.is_running
    assert ledger.settings.broker_sync_interval_s == 10.0
    assert timedelta(seconds=ledger.settings.pre_liquidation_warning_s) == timedelta(seconds=10)
