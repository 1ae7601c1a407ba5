"""After the demo data set, rebuilding every view from scratch, in place or
through a shadow, gives exactly the live views (equal digests)."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg

from application.clock import SettableClock
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.funded_accounts import load_funded_demo
from interface.demo.ledger_transfers import EXPIRING_HOLD_TIMEOUT_S, load_demo
from projections.digest import view_digest
from projections.rebuild import LIVE_SCHEMA, rebuild_in_place, rebuild_with_shadow
from projections.registry import all_views, view_names

CATCH_UP_TIMEOUT_S = 120.0


def _live_digests(database_url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(database_url) as connection:
        return {view.name: view_digest(connection, view, LIVE_SCHEMA) for view in all_views()}


def test_rebuilt_views_equal_the_live_views_after_the_demo(
    ledger: Ledger, clock: SettableClock
) -> None:
    load_demo(ledger.service)
    assert isinstance(ledger.broker, SimulatedBroker)
    load_funded_demo(ledger.funded_accounts, ledger.broker)
    # Past every short hold's deadline: the writer's sweep expires them.
    clock.advance(timedelta(seconds=EXPIRING_HOLD_TIMEOUT_S + 1))
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while ledger.writer.statistics.pending_transfers_expired == 0:
        assert time.monotonic() < deadline, "the sweep expired no hold"
        time.sleep(0.1)
    # Stop writing so the log holds still.
    ledger.writer.stop()
    assert ledger.projections is not None
    assert ledger.projections.wait_for(
        ledger.writer.last_position, view_names(), CATCH_UP_TIMEOUT_S
    )
    ledger.projections.stop()
    live = _live_digests(ledger.database_url)
    assert all(digest for digests in live.values() for digest in digests.values())

    for view in all_views():
        rebuild_in_place(ledger.database_url, view)
    assert _live_digests(ledger.database_url) == live

    for view in all_views():
        rebuild_with_shadow(ledger.database_url, view)
    assert _live_digests(ledger.database_url) == live
