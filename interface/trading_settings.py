"""The guards' and rules' figures as the settings give them, as the domain takes them.

Settings are percentages and amounts in major units, as the specification
names them (docs/configuration.md); the domain takes exact fractions and
minor units (docs/rules.md#position-sync-and-guards).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from domain.account_guard import GuardThresholds
from domain.money import currency_exponent
from domain.tiers import TIER_CURRENCY
from interface.settings import Settings


def percent(value: Decimal) -> Fraction:
    """A percentage setting as an exact fraction: 0.5 -> 1/200."""
    return Fraction(value) / 100


def guard_thresholds(settings: Settings, currency: str = TIER_CURRENCY) -> GuardThresholds:
    """The drawdown and market guards' figures from the settings; the minimum
    equity in minor units of `currency` (funded accounts trade in USD)."""
    minimum = Fraction(settings.min_equity) * 10 ** currency_exponent(currency)
    if minimum.denominator != 1:
        raise ValueError(
            f"MIN_EQUITY {settings.min_equity} has more decimals than {currency} allows"
        )
    return GuardThresholds(
        drawdown_warn_from=percent(settings.drawdown_alert_threshold_percent),
        drawdown_liquidate_above=percent(settings.max_drawdown_percent),
        minimum_equity_minor=int(minimum),
        pre_liquidation_warning=timedelta(seconds=settings.pre_liquidation_warning_s),
        gap_above=percent(settings.price_gap_alert_percent),
        spread_above=percent(settings.bid_ask_spread_max_percent),
        liquidity_volume_lots_min=settings.min_liquidity_volume_lots,
        liquidity_check_enabled=settings.liquidity_check_enabled,
    )


def mark_age_max(settings: Settings) -> timedelta:
    """The oldest mark a rule or guard decision is taken on."""
    return timedelta(seconds=settings.mark_age_max_s)
