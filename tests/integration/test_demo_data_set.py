"""The whole demo data set looks like a real book: one platform account of
each kind per currency (the ones the processes use), in two currencies,
withdrawals in every status, a closure under way and a fork; loading it
again writes nothing."""

from __future__ import annotations

from typing import Final

import psycopg

from domain.closure import ClosurePhase
from domain.withdrawal import WithdrawalStatus
from interface.bootstrap import Ledger
from interface.demo.data_set import load_demo_data_set
from interface.demo.ledger_transfers import PLATFORM_KINDS
from projections.registry import all_views

DEMO_TRANSFERS: Final[int] = 300
# Withdrawals statuses the demo leaves (paid_out is a moment between approved and completed).
SHOWN_STATUSES: Final = {
    WithdrawalStatus.PENDING.value,
    WithdrawalStatus.APPROVED.value,
    WithdrawalStatus.COMPLETED.value,
    WithdrawalStatus.REJECTED.value,
    WithdrawalStatus.FAILED.value,
}


def _caught_up(ledger: Ledger) -> None:
    assert ledger.projections is not None
    names = [view.name for view in all_views()]
    assert ledger.projections.wait_for(ledger.writer.last_position, names, 60)


def test_the_demo_is_one_book_with_every_list_filled_and_loads_again_unchanged(
    ledger: Ledger,
) -> None:
    progress: list[tuple[int, int]] = []
    loaded = load_demo_data_set(
        ledger,
        transfers=DEMO_TRANSFERS,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert progress and progress[-1][0] == progress[-1][1]
    _caught_up(ledger)
    with psycopg.connect(ledger.database_url) as connection:
        platform = connection.execute(
            "SELECT kind, currency, count(*) FROM view_accounts WHERE owner_id = 'platform'"
            " GROUP BY kind, currency"
        ).fetchall()
        withdrawals = {
            row[0] for row in connection.execute("SELECT status FROM view_withdrawals").fetchall()
        }
        closures = [
            row[0] for row in connection.execute("SELECT phase FROM view_closures").fetchall()
        ]
        forks = connection.execute("SELECT count(*) FROM view_forks").fetchone()
    assert [count for _, _, count in platform] == [1] * len(platform)
    # Each kind in each currency, and the trading accounts' P&L account (dollars).
    assert {(kind, currency) for kind, currency, _ in platform} >= {
        (kind.value, currency) for kind in PLATFORM_KINDS for currency in ("USD", "EUR")
    }
    assert withdrawals == SHOWN_STATUSES
    assert any(phase != ClosurePhase.COMPLETED.value for phase in closures)
    assert forks is not None and forks[0] >= 1
    assert any(line.startswith("fork: ") for line in loaded.lines)

    position = ledger.writer.last_position
    load_demo_data_set(ledger, transfers=DEMO_TRANSFERS)
    assert ledger.writer.last_position == position
