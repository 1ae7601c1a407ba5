"""Pure rules of a funded account: withdrawable profit, drawdown, risk, bands.

See docs/rules.md#funded-accounts-and-withdrawals.

Money is integer minor units; every ratio is an exact `fractions.Fraction` (see
domain/tiers.py for why Fraction). Floats are refused with TypeError wherever a
ratio or an amount comes in.

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
is still DANGER: a violation is over 100 %. An account's overall band is the
worst band of its rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Final

from domain.tiers import Tier

# Risk per trade = largest position / balance, limit 5 %
# (docs/rules.md#funded-accounts-and-withdrawals).
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

# docs/rules.md#funded-accounts-and-withdrawals, in minor units of the tier
# currency (USD cents): a request is at least $100; under $1,000 it is approved
# at once, from $1,000 an admin approves or rejects it.
WITHDRAWAL_MINIMUM_MINOR: Final[int] = 100_00
WITHDRAWAL_APPROVAL_THRESHOLD_MINOR: Final[int] = 1_000_00


def withdrawable_minor(
    split: Fraction | int,
    current_minor: int,
    starting_minor: int,
    withdrawn_minor: int,
    reserved_minor: int = 0,
) -> int:
    """The trader's share of the profit made, less what they have taken or asked
    for: floor(split x (current + withdrawn - starting)) - withdrawn - reserved,
    never negative.

    The requirement writes split x (current - starting - withdrawn) and gives
    one example with nothing withdrawn: 80 % split, $160k current, $100k
    starting -> $48k. Here a withdrawal leaves the account, so `current_minor`
    is net of it, and the formula as written would count each withdrawal twice
    ($10k out of that $48k would leave 0.8 x (150k - 100k - 10k) = $32k, $42k
    in all). The requirement's formula is applied to the balance before
    withdrawals (current + withdrawn), and what was withdrawn comes off the
    share, not off the profit: with nothing withdrawn it is exactly the
    source's example, and the sum of all withdrawals never passes split x
    profit ($48k, then $38k after taking $10k). `reserved_minor` is what
    requested withdrawals hold, so two requests can never together pass the
    share.
    """
    share = _ratio("split", split)
    if not 0 <= share <= 1:
        raise ValueError(f"split must be from 0 to 1, not {share}")
    current = _minor("current_minor", current_minor)
    starting = _minor("starting_minor", starting_minor)
    withdrawn = _minor("withdrawn_minor", withdrawn_minor)
    reserved = _minor("reserved_minor", reserved_minor)
    if withdrawn < 0 or reserved < 0:
        raise ValueError("withdrawn_minor and reserved_minor must not be negative")
    profit = current + withdrawn - starting
    if profit <= 0:
        return 0
    return max(0, math.floor(share * profit) - withdrawn - reserved)


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
