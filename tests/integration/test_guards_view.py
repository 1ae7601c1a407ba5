"""The guards view: what the demo's guards decided and a sync's divergences,
kept live, and the same tables after replaying the log (equal digests)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from uuid import UUID

import psycopg

from application.clock import SettableClock
from domain.account_guard import DrawdownLevel
from domain.positions import PositionSide
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.guards import (
    CRASH_ASSESSMENT_ID,
    CRASH_POSITIONS,
    GAP_ASSESSMENT_ID,
    SPREAD_ASSESSMENT_ID,
    load_guards_demo,
)
from projections import guards
from projections.digest import view_digest
from projections.guards import AlertKind, GuardsView
from projections.rebuild import LIVE_SCHEMA, rebuild_in_place, rebuild_with_shadow

CATCH_UP_TIMEOUT_S: Final[float] = 120.0
# A position the broker holds that the ledger does not know: an extra one.
EXTRA_SYMBOL: Final[str] = "XTRA"
EXTRA_QUANTITY: Final[int] = 3


def _caught_up(ledger: Ledger) -> None:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(
        ledger.writer.last_position, [guards.NAME], CATCH_UP_TIMEOUT_S
    )


def _digests(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as connection:
        return view_digest(connection, GuardsView(), LIVE_SCHEMA)


def _extra_at_broker(broker: SimulatedBroker, account_id: UUID, order: str) -> str:
    broker.set_price(EXTRA_SYMBOL, bid_minor=100, ask_minor=100)
    return broker.open_position(
        account_id, EXTRA_SYMBOL, PositionSide.LONG, EXTRA_QUANTITY, order
    ).position_id


def test_the_view_keeps_each_guards_decisions_and_replays_to_the_same_tables(
    ledger: Ledger, clock: SettableClock
) -> None:
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    demo = load_guards_demo(ledger.funded_accounts, ledger.guards, broker, clock)
    crash = demo.account_ids[CRASH_ASSESSMENT_ID]
    gap = demo.account_ids[GAP_ASSESSMENT_ID]
    spread = demo.account_ids[SPREAD_ASSESSMENT_ID]
    # A divergence found and cleared on one account, one left open on another.
    cleared = _extra_at_broker(broker, gap, "extra-cleared")
    ledger.broker_sync.sync_account(gap)
    broker.close_position(cleared, "extra-cleared-close")
    ledger.broker_sync.sync_account(gap)
    still_open = _extra_at_broker(broker, spread, "extra-open")
    ledger.broker_sync.sync_account(spread)
    _caught_up(ledger)

    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        crashed = guards.guard_of(cursor, crash)
        assert crashed is not None
        assert crashed.level == DrawdownLevel.LIQUIDATE.value
        assert crashed.last_decision == "liquidation_scheduled"
        assert crashed.liquidation_due_at == clock.now() + timedelta(
            seconds=ledger.settings.pre_liquidation_warning_s
        )
        assert crashed.last_drawdown is not None
        alerts = guards.pending_alerts(cursor, 100)
        assert [(alert.funded_account_id, alert.alert.kind) for alert in alerts] == [
            (crash, AlertKind.LIQUIDATION_SCHEDULED.value)
        ]
        assert len(alerts[0].alert.positions) == CRASH_POSITIONS
        # Marked, then closed in the same pass: no alert left, the close kept.
        for account_id in (gap, spread):
            guarded = guards.guard_of(cursor, account_id)
            assert guarded is not None
            assert guarded.last_decision == "close_recorded"
            assert guards.marked_for_closing(cursor, account_id, 10) == []
        assert guards.open_divergences(cursor, gap, 10) == []
        (divergence,) = guards.open_divergences(cursor, spread, 10)
        assert (divergence.kind, divergence.position_id) == ("extra", still_open)
        assert divergence.amount_minor == EXTRA_QUANTITY * 100

    # Stop writing so the log holds still, then replay it two ways.
    ledger.writer.stop()
    _caught_up(ledger)
    assert ledger.projections is not None
    ledger.projections.stop()
    live = _digests(ledger.database_url)
    assert all(live.values())
    rebuild_in_place(ledger.database_url, GuardsView())
    assert _digests(ledger.database_url) == live
    rebuild_with_shadow(ledger.database_url, GuardsView())
    assert _digests(ledger.database_url) == live


def test_a_position_closed_through_a_guard_is_found_by_its_id(
    ledger: Ledger, clock: SettableClock
) -> None:
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    demo = load_guards_demo(ledger.funded_accounts, ledger.guards, broker, clock)
    gap = demo.account_ids[GAP_ASSESSMENT_ID]
    (closed_position,) = demo.outcomes[GAP_ASSESSMENT_ID].closed
    _caught_up(ledger)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        found = guards.close_of(cursor, closed_position)
        assert found is not None
        funded_account_id, close = found
        assert funded_account_id == gap
        assert close.actor == "guards"
        assert close.reason.startswith("market guard: gap")
        assert close.realized_pnl_minor is not None and close.realized_pnl_minor > 0
        assert guards.close_of(cursor, "no-such-position") is None
