"""Bodies of the funded-account routes and of the tier configuration.

Money is a decimal string in major units of `currency` (the tier currency),
as every amount in this API; the ledger keeps it as integer minor units and
only this edge formats it. A price is per one unit of quantity.

Ratios (profit split, shares, multipliers, rule values and limits) are
decimal strings with at most `domain.ratios.RATIO_DECIMALS` places, cut, never
rounded up (the domain computes them exactly, as `fractions.Fraction`): a
value just under a limit never reads as at it, and a rule's band says on
which side of its limit a value is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import BaseModel, Field, Strict

from domain.funded_account import OpenPosition
from domain.funded_account_states import FundedAccountState
from domain.funded_rules import (
    RISK_PER_TRADE_LIMIT,
    AccountRuleStatus,
    RuleBand,
    RuleName,
    RuleStatus,
)
from domain.tiers import TIER_CURRENCY, Tier, TierName
from interface.api.pagination import HasMore, NextCursor
from interface.api.query_types import IsoTime
from interface.api.schemas.common import (
    PLAIN_TEXT_PATTERN,
    RATIO_DESCRIPTION,
    Money,
    Ratio,
    RequestModel,
    money,
    ratio_text,
)
from projections.funded_accounts import FundedAccountDetail, FundedAccountRow

ASSESSMENT_ID_LENGTH_MAX: Final[int] = 128
OWNER_ID_LENGTH_MAX: Final[int] = 128
# "4/5" or "0.8": at most this long, so a huge numerator is refused early.
PROFIT_SPLIT_LENGTH_MAX: Final[int] = 32


class ActivateFundedAccountRequest(RequestModel):
    """A passed assessment to fund. The assessment id names the account: the
    same request again finds it; the same id with other details is refused."""

    assessment_id: Annotated[
        str,
        Strict(),
        Field(
            min_length=1,
            max_length=ASSESSMENT_ID_LENGTH_MAX,
            pattern=PLAIN_TEXT_PATTERN,
            description="The assessment system's id; at most one funded account each.",
        ),
    ]
    assessment_status: Annotated[
        str,
        Strict(),
        Field(
            min_length=1,
            max_length=32,
            examples=["passed"],
            description='Only "passed" is funded (`assessment_not_passed` otherwise).',
        ),
    ]
    owner_id: Annotated[
        str,
        Strict(),
        Field(min_length=1, max_length=OWNER_ID_LENGTH_MAX, pattern=PLAIN_TEXT_PATTERN),
    ]
    tier: TierName
    profit_split: Annotated[
        str,
        Strict(),
        Field(
            min_length=1,
            max_length=PROFIT_SPLIT_LENGTH_MAX,
            pattern=r"^[0-9]+((/[0-9]+)|(\.[0-9]+))?$",
            examples=["4/5", "0.8"],
            description="The trader's share of profit, over 0 and at most 1: fraction or decimal.",
        ),
    ]
    completed_at: Annotated[
        IsoTime, Field(description="When the assessment was passed; not in the future.")
    ]
    starting_balance: Annotated[
        str | None,
        Field(
            default=None,
            max_length=64,
            examples=["10000.00"],
            description="Decimal string; the tier's minimum capital when omitted.",
        ),
    ] = None


REASON_LENGTH_MAX: Final[int] = 1024


class ChangeFundedAccountStateRequest(RequestModel):
    state: FundedAccountState
    reason: Annotated[
        str, Strict(), Field(min_length=1, max_length=REASON_LENGTH_MAX, pattern=PLAIN_TEXT_PATTERN)
    ]


class FundedBalancesResponse(BaseModel):
    starting_balance: Money = Field(description="The capital the account was funded with.")
    current_balance: Money = Field(description="starting + realized_pnl - total_withdrawn")
    peak_balance: Money = Field(
        description="The highest equity seen, lowered by each withdrawal since: drawdown is "
        "measured from it."
    )
    realized_pnl: Money = Field(description="The P&L of every closed position.")
    unrealized_pnl: Money = Field(description="The P&L of the open positions at their marks.")
    equity: Money = Field(description="current_balance + unrealized_pnl")
    total_withdrawn: Money = Field(description="What the trader has been paid out.")
    reserved_for_withdrawals: Money = Field(
        description="What requested withdrawals hold until they are paid out or given back."
    )

    @classmethod
    def of(cls, account: FundedAccountRow) -> FundedBalancesResponse:
        return cls(
            starting_balance=money(account.starting_balance_minor),
            current_balance=money(account.current_balance_minor),
            peak_balance=money(account.peak_balance_minor),
            realized_pnl=money(account.realized_pnl_minor),
            unrealized_pnl=money(account.unrealized_pnl_minor),
            equity=money(account.equity_minor),
            total_withdrawn=money(account.total_withdrawn_minor),
            reserved_for_withdrawals=money(account.reserved_withdrawals_minor),
        )


class FundedAccountResponse(BaseModel):
    id: UUID
    assessment_id: str = Field(description="The passed assessment the account was funded for.")
    owner_id: str
    tier: TierName
    state: FundedAccountState
    state_reason: str = Field(description="Why the account is in its state.")
    profit_split: Ratio = Field(
        description="The trader's share of the profit. " + RATIO_DESCRIPTION
    )
    ledger_account_id: UUID = Field(description="The ledger account that holds its money.")
    currency: str
    balances: FundedBalancesResponse
    band: RuleBand = Field(
        description="The rule band the rules monitor last recorded (see `rule_status` on "
        "one account for the band of its figures now)."
    )
    activated_at: datetime
    completed_at: datetime = Field(description="When the assessment was passed.")
    updated_at: datetime = Field(description="When the log recorded the account's last event.")
    position: int = Field(description="The log position of the account's last event.")

    @classmethod
    def of(cls, account: FundedAccountRow) -> FundedAccountResponse:
        return cls(**_account_fields(account))


def _account_fields(account: FundedAccountRow) -> dict[str, Any]:
    # The fields a detail shares with a list item, as keyword arguments of either.
    return {
        "id": account.funded_account_id,
        "assessment_id": account.assessment_id,
        "owner_id": account.owner_id,
        "tier": TierName(account.tier),
        "state": FundedAccountState(account.state),
        "state_reason": account.state_reason,
        "profit_split": ratio_text(account.profit_split_ratio),
        "ledger_account_id": account.ledger_account_id,
        "currency": TIER_CURRENCY,
        "balances": FundedBalancesResponse.of(account),
        "band": RuleBand(account.band),
        "activated_at": account.activated_at,
        "completed_at": account.completed_at,
        "updated_at": account.updated_at,
        "position": account.position,
    }


class FundedAccountPageResponse(BaseModel):
    items: list[FundedAccountResponse]
    has_more: HasMore
    next_cursor: NextCursor


class FundedPositionResponse(BaseModel):
    position_id: str
    symbol: str
    side: str = Field(description="long or short")
    quantity: int
    entry_price: Money
    mark_price: Money = Field(description="The last mark (the entry price until marked).")
    market_value: Money = Field(description="mark_price x quantity, whichever the side.")
    unrealized_pnl: Money = Field(
        description="long: (mark - entry) x quantity; short: (entry - mark) x quantity."
    )
    opened_at: datetime

    @classmethod
    def of(cls, held: OpenPosition) -> FundedPositionResponse:
        return cls(
            position_id=held.position_id,
            symbol=held.symbol,
            side=held.side.value,
            quantity=held.quantity,
            entry_price=money(held.entry_price_minor),
            mark_price=money(held.mark_price_minor),
            market_value=money(held.market_value_minor),
            unrealized_pnl=money(held.unrealized_pnl_minor),
            opened_at=held.opened_at,
        )


class RuleStatusResponse(BaseModel):
    rule: RuleName = Field(
        description="drawdown: (peak - equity) / peak; risk_per_trade: the largest open "
        "position's market value / current balance."
    )
    value: Ratio | None = Field(
        description="null when unbounded (a position held against a balance of zero or less). "
        + RATIO_DESCRIPTION
    )
    limit: Ratio
    share_used: Ratio | None = Field(description="value / limit; null when value is.")
    band: RuleBand = Field(
        description="safe under 4/5 of the limit, warning from 4/5, danger from 9/10 up to the "
        "limit itself, violation past it."
    )

    @classmethod
    def of(cls, status: RuleStatus) -> RuleStatusResponse:
        return cls(
            rule=status.rule,
            value=None if status.value is None else ratio_text(status.value),
            limit=ratio_text(status.limit),
            share_used=None if status.share_used is None else ratio_text(status.share_used),
            band=status.band,
        )


class AccountRuleStatusResponse(BaseModel):
    band: RuleBand = Field(description="The worst of the rules' bands.")
    rules: list[RuleStatusResponse]

    @classmethod
    def of(cls, status: AccountRuleStatus) -> AccountRuleStatusResponse:
        return cls(band=status.band, rules=[RuleStatusResponse.of(rule) for rule in status.rules])


class FundedAccountDetailResponse(FundedAccountResponse):
    positions: list[FundedPositionResponse] = Field(description="Open positions, oldest first.")
    rule_status: AccountRuleStatusResponse = Field(
        description="The rules read from the figures now."
    )
    withdrawable: Money = Field(
        description="The trader's share of the profit made, less what was withdrawn and what "
        "requested withdrawals hold: floor(profit_split x (current_balance + total_withdrawn "
        "- starting_balance)) - total_withdrawn - reserved_for_withdrawals, never below zero."
    )

    @classmethod
    def of_detail(cls, detail: FundedAccountDetail) -> FundedAccountDetailResponse:
        return cls(
            **_account_fields(detail.account),
            positions=[FundedPositionResponse.of(held) for held in detail.positions],
            rule_status=AccountRuleStatusResponse.of(detail.rule_status()),
            withdrawable=money(detail.withdrawable_minor()),
        )


class TierResponse(BaseModel):
    name: TierName
    minimum_capital: Money = Field(description="The least an account of the tier starts with.")
    fork_threshold: Money | None = Field(
        description="The capital at which an account forks a child of `next_tier`; null for "
        "the top tier, which never forks."
    )
    next_tier: TierName | None
    max_open_positions: int
    max_position_share: Ratio = Field(
        description="The largest share of capital one position may take. " + RATIO_DESCRIPTION
    )
    risk_multiplier: Ratio
    drawdown_limit: Ratio = Field(
        description="The largest drawdown from the peak before a violation. " + RATIO_DESCRIPTION
    )

    @classmethod
    def of(cls, tier: Tier) -> TierResponse:
        threshold = tier.fork_threshold_minor
        return cls(
            name=tier.name,
            minimum_capital=money(tier.minimum_capital_minor),
            fork_threshold=None if threshold is None else money(threshold),
            next_tier=tier.next_tier,
            max_open_positions=tier.max_open_positions,
            max_position_share=ratio_text(tier.max_position_share),
            risk_multiplier=ratio_text(tier.risk_multiplier),
            drawdown_limit=ratio_text(tier.drawdown_limit),
        )


class TiersResponse(BaseModel):
    currency: str = Field(description="The currency of every tier's amounts.")
    risk_per_trade_limit: Ratio = Field(
        description="Every tier's limit of the largest open position over the balance. "
        + RATIO_DESCRIPTION
    )
    tiers: list[TierResponse] = Field(description="In ascending order of capital.")

    @classmethod
    def of(cls, tiers: list[Tier]) -> TiersResponse:
        return cls(
            currency=TIER_CURRENCY,
            risk_per_trade_limit=ratio_text(RISK_PER_TRADE_LIMIT),
            tiers=[TierResponse.of(tier) for tier in tiers],
        )
