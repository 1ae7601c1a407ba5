"""Bodies of the hierarchy, lineage and performance routes. Money is a decimal
string in the tier currency; returns and ratios are fractions (0.05 is 5 %)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.performance import PerformanceMetrics
from interface.api.schemas.common import RequestModel, money
from projections.hierarchy import HierarchyNode

COMPARE_ACCOUNTS_MAX: Final[int] = 10


Period = Literal["1m", "3m", "6m", "1y", "2y", "ytd", "all"]


class TierTotalsResponse(BaseModel):
    accounts: int
    balance: str


class SubtreeTotalsResponse(BaseModel):
    accounts: int
    balance: str = Field(description="The subtree's consolidated balance.")
    by_tier: dict[str, TierTotalsResponse]


class NodeResponse(BaseModel):
    funded_account_id: UUID
    parent_id: UUID | None
    depth: int
    tier: str
    state: str | None
    balance: str | None
    totals: SubtreeTotalsResponse
    children: list[NodeResponse]

    @classmethod
    def of(cls, node: HierarchyNode) -> NodeResponse:
        return cls(
            funded_account_id=node.funded_account_id,
            parent_id=node.parent_id,
            depth=node.depth,
            tier=node.tier,
            state=node.state,
            balance=None if node.balance_minor is None else money(node.balance_minor),
            totals=SubtreeTotalsResponse(
                accounts=node.totals.accounts,
                balance=money(node.totals.balance_minor),
                by_tier={
                    tier: TierTotalsResponse(
                        accounts=totals.accounts, balance=money(totals.balance_minor)
                    )
                    for tier, totals in node.totals.by_tier.items()
                },
            ),
            children=[cls.of(child) for child in node.children],
        )


class HierarchyResponse(BaseModel):
    account_id: UUID
    root_id: UUID
    truncated: bool = Field(description="Past the node bound: accounts may be missing.")
    tree: NodeResponse = Field(description="The whole tree the account is part of.")


class FlowResponse(BaseModel):
    from_account_id: UUID
    to_account_id: UUID
    amount: str
    kind: str = Field(description="fork or merge")
    process_id: UUID
    at: datetime
    hops: int = Field(description="1: into (out of) the account itself; 2: one step further")


class LineageResponse(BaseModel):
    account_id: UUID
    ancestors: list[UUID] = Field(description="Parent first, root last.")
    capital_in: list[FlowResponse] = Field(description="Where the account's capital came from.")
    capital_out: list[FlowResponse] = Field(description="Where its capital went.")
    truncated: bool


class MetricsResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    days: int
    start_day: date
    end_day: date
    start_value: str
    end_value: str
    net_flow: str = Field(description="Money in (+) or out (-) that is not performance.")
    total_return: float | None = Field(description="Time-weighted; 0.05 is 5 %.")
    annualised_return: float | None
    volatility: float | None = Field(description="Annualised, from daily returns (365 a year).")
    max_drawdown: float | None
    var_95: float | None = Field(description="Historical daily VaR at 95 %, a loss fraction.")
    sharpe: float | None = Field(description="Risk-free 2 %.")
    sortino: float | None
    calmar: float | None
    closed_trades: int
    win_rate: float | None
    profit_factor: float | None

    @classmethod
    def of(cls, figures: PerformanceMetrics) -> MetricsResponse:
        return cls(
            days=figures.days,
            start_day=figures.start_day,
            end_day=figures.end_day,
            start_value=money(figures.start_value_minor),
            end_value=money(figures.end_value_minor),
            net_flow=money(figures.net_flow_minor),
            total_return=figures.total_return,
            annualised_return=figures.annualised_return,
            volatility=figures.volatility,
            max_drawdown=figures.max_drawdown,
            var_95=figures.var_95,
            sharpe=figures.sharpe,
            sortino=figures.sortino,
            calmar=figures.calmar,
            closed_trades=figures.closed_trades,
            win_rate=figures.win_rate,
            profit_factor=figures.profit_factor,
        )


class PerformanceResponse(BaseModel):
    account_id: UUID
    period: str
    currency: str
    account: MetricsResponse
    subtree: MetricsResponse | None = Field(
        description="The account and its descendants, weighted by capital; null without any."
    )
    subtree_accounts: int


class CompareRequest(RequestModel):
    account_ids: list[UUID] = Field(min_length=1, max_length=COMPARE_ACCOUNTS_MAX)
    period: Period = "1y"


class CompareResponse(BaseModel):
    period: str
    items: list[PerformanceResponse]
