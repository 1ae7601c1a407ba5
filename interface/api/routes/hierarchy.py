"""The account hierarchy, capital lineage and performance attribution.

`{account_id}` is a funded account's id. The tree comes from the hierarchy
view joined with the funded accounts view (both caught up first); lineage
follows the capital flows both ways. Performance is worked out on reading
from the daily values view (domain/performance.py holds every definition):
the account's own figures and, when it has children, its subtree's, weighted
by capital. A user sees their own accounts only (forks keep the owner, so a
tree is one owner's); another owner's answers 404.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Annotated, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response

from domain.performance import (
    PERIODS,
    DailyValue,
    PerformanceMetrics,
    carry_forward,
    combine_series,
    from_inception,
    metrics,
    period_start,
)
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY
from interface.api.consistency import views_caught_up
from interface.api.deps import (
    LedgerDep,
    OwnedFundedAccountUnderAccounts,
    Reader,
    visible_funded_account,
)
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.common import money
from interface.api.schemas.hierarchy import (
    CompareRequest,
    CompareResponse,
    FlowResponse,
    HierarchyResponse,
    LineageResponse,
    MetricsResponse,
    NodeResponse,
    PerformanceResponse,
    Period,
)
from interface.bootstrap import Ledger
from projections import daily_values, funded_accounts, hierarchy
from projections.daily_values import ClosedPnls
from projections.hierarchy import HierarchyNode
from projections.view import Cursor

router = APIRouter(tags=["hierarchy and performance"])

VIEWS: Final[tuple[str, ...]] = (
    hierarchy.NAME,
    funded_accounts.NAME,
    daily_values.NAME,
)
assert set(PERIODS) == {"1m", "3m", "6m", "1y", "2y", "ytd", "all"}


def _series(
    cursor: Cursor,
    account_ids: list[UUID],
    start: date,
    end: date,
    opened_in_period: set[UUID] | None = None,
) -> dict[UUID, list[DailyValue]]:
    """Each account's daily values from `start` to `end`: the value carried
    in at `start`, every day with events, carried forward to `end`. The
    accounts with no value carried in (opened in the period) are added to
    `opened_in_period`: their first day's return counts (`from_inception`)."""
    rows = daily_values.daily_values(cursor, account_ids, start, end)
    carried = daily_values.values_carried_in(cursor, account_ids, start)
    series: dict[UUID, list[DailyValue]] = {}
    for account_id in account_ids:
        values = []
        before = carried.get(account_id)
        if before is None and opened_in_period is not None:
            opened_in_period.add(account_id)
        if before is not None and (not rows[account_id] or rows[account_id][0].day > start):
            values.append(DailyValue(start, before.close_equity_minor))
        values += [
            DailyValue(row.day, row.close_equity_minor, row.flow_minor) for row in rows[account_id]
        ]
        if values and values[-1].day < end:
            values.append(DailyValue(end, values[-1].value_minor))
        series[account_id] = carry_forward(values)
    return series


def _with_trades(figures: PerformanceMetrics, trades: list[ClosedPnls]) -> PerformanceMetrics:
    """Win rate and profit factor from the view's per-day trade counts."""
    closed = sum(t.trades_closed for t in trades)
    wins = sum(t.wins for t in trades)
    gross_profit = sum(t.gross_profit_minor for t in trades)
    gross_loss = sum(t.gross_loss_minor for t in trades)
    return dataclasses.replace(
        figures,
        closed_trades=closed,
        win_rate=wins / closed if closed else None,
        profit_factor=gross_profit / gross_loss if gross_loss else None,
    )


def _performance(ledger: Ledger, account_id: UUID, period: str) -> PerformanceResponse:
    end = ledger.clock.now().date()
    start = period_start(end, period)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        tree = hierarchy.subtree(cursor, account_id)
        members = _members(tree) if tree is not None else [account_id]
        opened: set[UUID] = set()
        series = _series(cursor, members, start, end, opened)
        trades = daily_values.closed_pnls(cursor, members, start, end)
    # Since inception, the first day's return counts: the opening capital is
    # the base (domain/performance.py, the flows convention). A subtree starts
    # with its root, so its combined series starts with the root's capital.
    since_opening = from_inception if account_id in opened else list
    own = since_opening(series[account_id])
    if not own:
        raise _no_daily_values(account_id)
    account_figures = _with_trades(metrics(own), [trades[account_id]])
    subtree_figures = None
    if len(members) > 1:
        combined = since_opening(combine_series(values for values in series.values() if values))
        subtree_figures = MetricsResponse.of(_with_trades(metrics(combined), list(trades.values())))
    return PerformanceResponse(
        account_id=account_id,
        period=period,
        currency=TIER_CURRENCY,
        account=MetricsResponse.of(account_figures),
        subtree=subtree_figures,
        subtree_accounts=len(members),
    )


def _members(node: HierarchyNode) -> list[UUID]:
    found = [node.funded_account_id]
    for child in node.children:
        found += _members(child)
    return found


def _not_in_hierarchy(account_id: UUID) -> LedgerRefusal:
    # A funded account the hierarchy view has not reached yet.
    return LedgerRefusal(
        ResultCode.FUNDED_ACCOUNT_NOT_FOUND,
        f"funded account {account_id} is not in the hierarchy yet",
        funded_account_id=str(account_id),
    )


def _no_daily_values(account_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.FUNDED_ACCOUNT_NOT_FOUND,
        f"funded account {account_id} has no daily values in the period",
        funded_account_id=str(account_id),
    )


# Routes ---------------------------------------------------------------------------


@router.get(
    "/v1/accounts/{account_id}/hierarchy",
    response_model=HierarchyResponse,
    responses=ERROR_RESPONSES,
)
def hierarchy_route(
    ledger: LedgerDep, principal: Reader, account: OwnedFundedAccountUnderAccounts
) -> HierarchyResponse:
    """The whole tree the account is part of: each node's tier, state and
    balance, and every subtree's consolidated totals."""
    account_id = account.id
    views_caught_up(ledger, VIEWS, None)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        tree = hierarchy.tree_of(cursor, account_id)
    if tree is None:
        raise _not_in_hierarchy(account_id)
    return HierarchyResponse(
        account_id=account_id,
        root_id=tree.funded_account_id,
        truncated=tree.truncated,
        tree=NodeResponse.of(tree),
    )


@router.get(
    "/v1/accounts/{account_id}/lineage", response_model=LineageResponse, responses=ERROR_RESPONSES
)
def lineage_route(
    ledger: LedgerDep, principal: Reader, account: OwnedFundedAccountUnderAccounts
) -> LineageResponse:
    """Where the account's capital came from (its ancestors, the flows into it
    and into its sources) and where it went (the flows out, onwards)."""
    account_id = account.id
    views_caught_up(ledger, VIEWS, None)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        found = hierarchy.lineage(cursor, account_id)
    if found is None:
        raise _not_in_hierarchy(account_id)

    def flow(item: hierarchy.CapitalFlow) -> FlowResponse:
        return FlowResponse(
            from_account_id=item.from_account_id,
            to_account_id=item.to_account_id,
            amount=money(item.amount_minor),
            kind=item.kind,
            process_id=item.process_id,
            at=item.at,
            hops=item.hops,
        )

    return LineageResponse(
        account_id=account_id,
        ancestors=[ancestor.funded_account_id for ancestor in found.sources.ancestors],
        capital_in=[flow(item) for item in found.sources.flows],
        capital_out=[flow(item) for item in found.destinations.flows],
        truncated=found.truncated,
    )


@router.get(
    "/v1/accounts/{account_id}/performance",
    response_model=PerformanceResponse,
    responses=ERROR_RESPONSES,
)
def performance_route(
    ledger: LedgerDep,
    principal: Reader,
    account: OwnedFundedAccountUnderAccounts,
    period: Period = "1y",
) -> PerformanceResponse:
    """Total and annualised return, volatility, max drawdown, VaR 95 %, Sharpe,
    Sortino, Calmar, win rate and profit factor over the period, for the
    account and (weighted by capital) its subtree."""
    views_caught_up(ledger, VIEWS, None)
    return _performance(ledger, account.id, period)


@router.post("/v1/performance/compare", response_model=CompareResponse, responses=ERROR_RESPONSES)
def compare_route(body: CompareRequest, ledger: LedgerDep, principal: Reader) -> CompareResponse:
    """The same figures for up to 10 accounts side by side."""
    for account_id in body.account_ids:
        visible_funded_account(ledger, principal, account_id)
    views_caught_up(ledger, VIEWS, None)
    return CompareResponse(
        period=body.period,
        items=[_performance(ledger, account_id, body.period) for account_id in body.account_ids],
    )


@router.get(
    "/v1/accounts/{account_id}/performance/chart",
    response_class=Response,
    responses={
        200: {
            "description": "The equity curve (and drawdown) as PNG or SVG",
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/svg+xml": {"schema": {"type": "string"}},
            },
        },
        **{status: ERROR_RESPONSES[status] for status in (401, 403, 404, 422, 429)},
    },
)
def chart_route(
    ledger: LedgerDep,
    principal: Reader,
    account: OwnedFundedAccountUnderAccounts,
    period: Period = "1y",
    image_format: Annotated[Literal["png", "svg"], Query(alias="format")] = "svg",
    scope: Literal["account", "subtree"] = "account",
) -> Response:
    """An equity chart: the account's curve, or (scope=subtree) each account
    of its subtree and their capital-weighted total."""
    account_id = account.id
    views_caught_up(ledger, VIEWS, None)
    end = ledger.clock.now().date()
    start = period_start(end, period)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        tree = hierarchy.subtree(cursor, account_id) if scope == "subtree" else None
        members = _members(tree) if tree is not None else [account_id]
        series = _series(cursor, members, start, end)
    drawn = {str(member)[:8]: values for member, values in series.items() if values}
    if not drawn:
        raise _no_daily_values(account_id)
    if len(drawn) > 1:
        drawn["subtree"] = combine_series(drawn.values())
    # Imported here: matplotlib is a third of the service's start-up, and
    # only this route draws.
    from interface.api.charts import equity_chart

    image = equity_chart(drawn, f"Equity of {str(account_id)[:8]} ({period})", image_format)
    media_type = "image/png" if image_format == "png" else "image/svg+xml"
    return Response(content=image, media_type=media_type)
