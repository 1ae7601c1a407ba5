"""Every view the service keeps, by name. Each call makes fresh instances:
a view remembers things between pages, so two runners never share one."""

from __future__ import annotations

from projections.accounts_directory import AccountsDirectoryView
from projections.balances import BalancesView
from projections.closures import ClosuresView
from projections.daily_values import DailyValuesView
from projections.forks import ForksView
from projections.funded_accounts import FundedAccountsView
from projections.guards import GuardsView
from projections.hierarchy import HierarchyView
from projections.integration_events import IntegrationEventsView
from projections.journal import JournalView
from projections.reconciliation import ReconciliationView
from projections.view import View
from projections.withdrawals import WithdrawalsView


def all_views() -> list[View]:
    return [
        BalancesView(),
        AccountsDirectoryView(),
        JournalView(),
        FundedAccountsView(),
        WithdrawalsView(),
        ClosuresView(),
        ForksView(),
        DailyValuesView(),
        HierarchyView(),
        ReconciliationView(),
        GuardsView(),
        IntegrationEventsView(),
    ]


def view_names() -> list[str]:
    return [view.name for view in all_views()]


def view_named(name: str) -> View:
    for view in all_views():
        if view.name == name:
            return view
    raise KeyError(f"no projection named {name!r}; known: {', '.join(view_names())}")
