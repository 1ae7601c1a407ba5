"""Pure rules of a funded account: withdrawable profit, drawdown, risk, bands.

SOURCES.md B. Money is integer minor units; every ratio is an exact
`fractions.Fraction` (see domain/tiers.py for why Fraction). Floats are
refused with TypeError wherever a ratio or an amount comes in.

Rounding: `withdrawable_minor` is the only place a ratio becomes money, and it
rounds down to the minor unit (floor; the amount is never negative, so this is
also towards zero). The trader is never offered a fraction of a cent that the
split does not fully cover, and the sum of what is withdrawn never exceeds the
exact split of the profit.

Bands, by the share of a rule's limit used (value / limit), edges exact:

    SAFE       share <  80 %
    WARNING    80 % <= share <  90 %
    DANGER     90 % <= share <= 100 %
    VIOLATION  share >  100 %

So 80 % exactly is WARNING, 90 % exactly is DANGER and the limit itself (100 %)
is still DANGER: SOURCES.md says "violation > 100 %". An account's overall
band is the worst band of its rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Final

from domain.tiers import Tier

# SOURCES.md B: "risk per trade = largest position / balance, limit 5 %".
RISK_PER_TRADE_LIMIT: Final[Fraction] = Fraction(5, 100)

WARNING_FROM: Final[Fraction] = Fraction(80, 100)
DANGER_FROM: Final[Fraction] = Fraction(90, 100)
VIOLATION_ABOVE: Final[Fraction] = Fraction(1)


def _ratio(name: str, value: object) -> Fraction:
    """An exact ratio: a Fraction or an int (bool and float refused)."""
    if isinstance(value, bool) or not isinstance(value, Fraction | int):
        raise TypeError(f"{name} must be an exact Fraction, not {type(value).__name__}")
    return Fraction(value)


def _minor(name: str, value: object) -> int:
    # bool is an int subclass and a float may look whole: neither is money.
    if type(value) is not int:
        raise TypeError(f"{name} must be an integer of minor units, not {type(value).__name__}")
    return value


# Withdrawals ----------------------------------------------------------------------


def withdrawable_minor(
    split: Fraction | int, current_minor: int, starting_minor: int, withdrawn_minor: int
) -> int:
    """split x (current - starting - withdrawn), rounded down, never negative.

    SOURCES.md B, as written: 80 % split, $160k current, $100k starting, $0
    withdrawn -> $48k. `split` is the trader's share, from 0 to 1.
    `withdrawn_minor` (total already withdrawn) must not be negative;
    `current_minor` may be (a loss past zero), which gives 0.

    The formula is implemented exactly as the source writes it, but which
    balance `current_minor` is changes what it means. After withdrawals have
    left the account (as in this ledger), a withdrawal counts twice: $60k
    profit at 80 %, $10k withdrawn -> 0.8 x (150k - 100k - 10k) = $32k more,
    $42k in all, not $48k. Before withdrawals, the split also scales the
    withdrawn amount and the total can pass split x profit: $48k withdrawn,
    then 0.8 x (160k - 100k - 48k) = $9.6k more. An open question for the
    withdrawal process, not settled here.
    """
    share = _ratio("split", split)
    if not 0 <= share <= 1:
        raise ValueError(f"split must be from 0 to 1, not {share}")
    current = _minor("current_minor", current_minor)
    starting = _minor("starting_minor", starting_minor)
    withdrawn = _minor("withdrawn_minor", withdrawn_minor)
    if withdrawn < 0:
        raise ValueError("withdrawn_minor must not be negative")
    profit = current - starting - withdrawn
    if profit <= 0:
        return 0
    return math.floor(share * profit)


# Ratios ---------------------------------------------------------------------------


def drawdown(peak_minor: int, current_minor: int) -> Fraction:
    """(peak - current) / peak, exact; 0 when peak <= 0 or current >= peak.

    In [0, 1] while current is not negative; above 1 if the balance has gone
    below zero (more than the whole peak lost), which is left visible rather
    than clamped.
    """
    peak = _minor("peak_minor", peak_minor)
    current = _minor("current_minor", current_minor)
    if peak <= 0 or current >= peak:
        return Fraction(0)
    return Fraction(peak - current, peak)


def risk_per_trade(largest_position_minor: int, balance_minor: int) -> Fraction | None:
    """largest position / balance, exact.

    `largest_position_minor` is the absolute value of the largest open position
    (0 with none open). With no position the risk is 0 whatever the balance.
    With a position and a balance <= 0 the ratio is unbounded: None.
    """
    largest = _minor("largest_position_minor", largest_position_minor)
    balance = _minor("balance_minor", balance_minor)
    if largest < 0:
        raise ValueError("largest_position_minor must not be negative (use the absolute value)")
    if largest == 0:
        return Fraction(0)
    if balance <= 0:
        return None
    return Fraction(largest, balance)


# Bands ----------------------------------------------------------------------------


class RuleBand(StrEnum):
    SAFE = "safe"
    WARNING = "warning"
    DANGER = "danger"
    VIOLATION = "violation"

    @property
    def severity(self) -> int:
        """0 for SAFE up to 3 for VIOLATION: compare bands by this."""
        return _SEVERITY[self]


_SEVERITY: Final[dict[RuleBand, int]] = {
    RuleBand.SAFE: 0,
    RuleBand.WARNING: 1,
    RuleBand.DANGER: 2,
    RuleBand.VIOLATION: 3,
}


def band_for(used_share: Fraction | int) -> RuleBand:
    """The band for a share of a limit used (1 = exactly at the limit); edges above."""
    share = _ratio("used_share", used_share)
    if share < 0:
        raise ValueError(f"used_share must not be negative, not {share}")
    if share > VIOLATION_ABOVE:
        return RuleBand.VIOLATION
    if share >= DANGER_FROM:
        return RuleBand.DANGER
    if share >= WARNING_FROM:
        return RuleBand.WARNING
    return RuleBand.SAFE


def worst_band(bands: Iterable[RuleBand]) -> RuleBand:
    """The most severe of `bands`; SAFE when there are none."""
    return max(bands, key=lambda band: band.severity, default=RuleBand.SAFE)


class RuleName(StrEnum):
    DRAWDOWN = "drawdown"
    RISK_PER_TRADE = "risk_per_trade"


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """One rule's reading: value and limit (ratios), share of the limit used, band.

    `value` and `share_used` are None only when the value is unbounded (a
    position held against a balance <= 0); the band is then VIOLATION.
    """

    rule: RuleName
    value: Fraction | None
    limit: Fraction
    share_used: Fraction | None
    band: RuleBand


@dataclass(frozen=True, slots=True)
class AccountRuleStatus:
    drawdown: RuleStatus
    risk_per_trade: RuleStatus

    @property
    def rules(self) -> tuple[RuleStatus, ...]:
        return (self.drawdown, self.risk_per_trade)

    @property
    def band(self) -> RuleBand:
        """The account's overall band: the worst of its rules'. VIOLATION closes it."""
        return worst_band(rule.band for rule in self.rules)


def _status(rule: RuleName, value: Fraction | None, limit: Fraction) -> RuleStatus:
    if value is None:
        return RuleStatus(rule, None, limit, None, RuleBand.VIOLATION)
    share_used = value / limit
    return RuleStatus(rule, value, limit, share_used, band_for(share_used))


def rule_status(
    tier: Tier,
    peak_minor: int,
    current_minor: int,
    largest_position_minor: int,
    balance_minor: int,
) -> AccountRuleStatus:
    """Drawdown against the tier's limit and risk per trade against 5 %, with bands."""
    return AccountRuleStatus(
        drawdown=_status(
            RuleName.DRAWDOWN, drawdown(peak_minor, current_minor), tier.drawdown_limit
        ),
        risk_per_trade=_status(
            RuleName.RISK_PER_TRADE,
            risk_per_trade(largest_position_minor, balance_minor),
            RISK_PER_TRADE_LIMIT,
        ),
    )
