"""Account tiers Gen, Rev and Com as data, checked once at start.

The numbers are those of docs/rules.md#tiers-forks-and-merges (the tier table)
and docs/rules.md#funded-accounts-and-withdrawals (a drawdown limit of 10-15 %
by tier). Money is integer minor units of `TIER_CURRENCY`; every ratio is a
`fractions.Fraction`, never a float. Fraction rather than basis points or
Decimal: ratios such as 12 % or 1/8 are exact, comparisons at a limit ("exactly
20 % of capital") cannot be blurred by a rounding step or a Decimal context,
and nothing is rounded until a ratio turns into money.

Drawdown limit per tier (a decision: the requirement gives only the range): the
limit is 10 % times the tier's risk multiplier, which spans the required range
exactly: Gen 10 % (x1.0), Rev 12 % (x1.2), Com 15 % (x1.5). It is stored as a
plain field, so a later change of mind is a change of data; `validate_tiers`
keeps it inside the source's 10-15 %.

Position checks (`position_decision`) return a `PositionDecision` instead of
raising, and `require_position_allowed` raises `PositionRefused` (a ValueError)
for callers that prefer an exception. The reasons are a small StrEnum,
`PositionRefusalReason`, whose values are meant to become `ResultCode` values
unchanged (`too_many_open_positions`, `position_exceeds_tier_share`,
`capital_not_positive`) when the aggregate maps them to `LedgerRefusal`.
Invalid inputs (a negative count, a non-integer amount) are programming errors
and raise TypeError / ValueError, not a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Final

from domain.money import format_amount

TIER_CURRENCY: Final[str] = "USD"

# The drawdown limit is 10-15 % by tier
# (docs/rules.md#funded-accounts-and-withdrawals); validate_tiers keeps every
# tier inside.
DRAWDOWN_LIMIT_MIN: Final[Fraction] = Fraction(10, 100)
DRAWDOWN_LIMIT_MAX: Final[Fraction] = Fraction(15, 100)


class TierName(StrEnum):
    GEN = "Gen"
    REV = "Rev"
    COM = "Com"


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier's limits. Amounts in minor units of TIER_CURRENCY; ratios exact."""

    name: TierName
    minimum_capital_minor: int
    # Capital at which an account of this tier forks a child of `next_tier`;
    # None (with next_tier None) for the top tier, which never forks.
    fork_threshold_minor: int | None
    next_tier: TierName | None
    max_open_positions: int
    # Largest share of the account's capital one position may take.
    max_position_share: Fraction
    risk_multiplier: Fraction
    # Largest drawdown from peak, as a share of the peak, before a violation.
    drawdown_limit: Fraction


def _usd(dollars: int) -> int:
    return dollars * 100


TIERS: Final[Mapping[TierName, Tier]] = MappingProxyType(
    {
        TierName.GEN: Tier(
            name=TierName.GEN,
            minimum_capital_minor=_usd(10_000),
            fork_threshold_minor=_usd(100_000),
            next_tier=TierName.REV,
            max_open_positions=10,
            max_position_share=Fraction(20, 100),
            risk_multiplier=Fraction(10, 10),
            drawdown_limit=Fraction(10, 100),
        ),
        TierName.REV: Tier(
            name=TierName.REV,
            minimum_capital_minor=_usd(100_000),
            fork_threshold_minor=_usd(500_000),
            next_tier=TierName.COM,
            max_open_positions=20,
            max_position_share=Fraction(15, 100),
            risk_multiplier=Fraction(12, 10),
            drawdown_limit=Fraction(12, 100),
        ),
        TierName.COM: Tier(
            name=TierName.COM,
            minimum_capital_minor=_usd(500_000),
            fork_threshold_minor=None,
            next_tier=None,
            max_open_positions=50,
            max_position_share=Fraction(10, 100),
            risk_multiplier=Fraction(15, 10),
            drawdown_limit=Fraction(15, 100),
        ),
    }
)


# Validation at start ------------------------------------------------------------


def _is_minor(value: object) -> bool:
    # bool is an int subclass and a float may look whole: neither is money.
    return type(value) is int


def _tier_field(name: object, field_name: str) -> str:
    return f"tiers[{name}].{field_name}"


def _validate_one(key: TierName, tier: Tier) -> None:
    def bad(field_name: str, problem: str) -> ValueError:
        return ValueError(f"{_tier_field(key, field_name)} {problem}")

    if tier.name is not key:
        raise bad("name", f"is {tier.name!r}, but the tier is listed under {key!r}")
    if not _is_minor(tier.minimum_capital_minor) or tier.minimum_capital_minor <= 0:
        raise bad("minimum_capital_minor", "must be a positive integer of minor units")
    if not _is_minor(tier.max_open_positions) or tier.max_open_positions < 1:
        raise bad("max_open_positions", "must be an integer of at least 1")
    share = tier.max_position_share
    if not isinstance(share, Fraction) or not 0 < share <= 1:
        raise bad("max_position_share", "must be a Fraction in (0, 1]")
    if not isinstance(tier.risk_multiplier, Fraction) or tier.risk_multiplier <= 0:
        raise bad("risk_multiplier", "must be a Fraction greater than 0")
    limit = tier.drawdown_limit
    if not isinstance(limit, Fraction) or not DRAWDOWN_LIMIT_MIN <= limit <= DRAWDOWN_LIMIT_MAX:
        raise bad(
            "drawdown_limit",
            f"must be a Fraction from {DRAWDOWN_LIMIT_MIN} to {DRAWDOWN_LIMIT_MAX} (10-15 %)",
        )
    threshold = tier.fork_threshold_minor
    if threshold is None:
        if tier.next_tier is not None:
            raise bad("fork_threshold_minor", "is None, but next_tier is set")
        return
    if not _is_minor(threshold) or threshold <= tier.minimum_capital_minor:
        raise bad(
            "fork_threshold_minor",
            "must be an integer of minor units greater than minimum_capital_minor",
        )
    if tier.next_tier is None:
        raise bad("next_tier", "is None, but fork_threshold_minor is set")


def _validate_link(tiers: Mapping[TierName, Tier], key: TierName, tier: Tier) -> None:
    if tier.next_tier is None or tier.fork_threshold_minor is None:
        return
    if tier.next_tier is key:
        raise ValueError(f"{_tier_field(key, 'next_tier')} names the tier itself")
    following = tiers.get(tier.next_tier)
    if following is None:
        raise ValueError(
            f"{_tier_field(key, 'next_tier')} is {tier.next_tier!r}, which is not configured"
        )
    if following.minimum_capital_minor <= tier.minimum_capital_minor:
        raise ValueError(
            f"{_tier_field(following.name, 'minimum_capital_minor')} must be greater than "
            f"{_tier_field(key, 'minimum_capital_minor')}: tiers ascend"
        )
    if following.minimum_capital_minor > tier.fork_threshold_minor:
        raise ValueError(
            f"{_tier_field(key, 'fork_threshold_minor')} must be at least "
            f"{_tier_field(following.name, 'minimum_capital_minor')}: "
            "a forked child starts with at least its tier's minimum capital"
        )
    if (
        following.fork_threshold_minor is not None
        and following.fork_threshold_minor <= tier.fork_threshold_minor
    ):
        raise ValueError(
            f"{_tier_field(following.name, 'fork_threshold_minor')} must be greater than "
            f"{_tier_field(key, 'fork_threshold_minor')}: fork thresholds increase"
        )


def validate_tiers(tiers: Mapping[TierName, Tier]) -> None:
    """Raise ValueError, naming the bad field, unless `tiers` is a usable configuration.

    Every TierName is configured under its own name; amounts are positive
    integers of minor units; ratios are Fractions in range; a tier forks iff it
    has a next tier, which exists, is a different tier with a greater minimum
    capital and a greater fork threshold, and whose minimum capital the fork
    threshold covers. Minimum capital strictly increases along next_tier, so
    the chain cannot loop and ends at a tier that never forks.
    """
    missing = [name.value for name in TierName if name not in tiers]
    if missing:
        raise ValueError(f"tiers is missing {', '.join(missing)}")
    for key, tier in tiers.items():
        if not isinstance(key, TierName):
            raise ValueError(f"tiers has key {key!r}, which is not a TierName")
        if not isinstance(tier, Tier):
            raise ValueError(f"tiers[{key}] is a {type(tier).__name__}, not a Tier")
        _validate_one(key, tier)
    for key, tier in tiers.items():
        _validate_link(tiers, key, tier)


validate_tiers(TIERS)


# Opening a position --------------------------------------------------------------


class PositionRefusalReason(StrEnum):
    """Why a tier refuses a new position; values are ready to become ResultCodes."""

    TOO_MANY_OPEN_POSITIONS = "too_many_open_positions"
    POSITION_EXCEEDS_TIER_SHARE = "position_exceeds_tier_share"
    CAPITAL_NOT_POSITIVE = "capital_not_positive"


@dataclass(frozen=True, slots=True)
class PositionDecision:
    """The answer to "may this account open this position?".

    `refusal` is None when allowed; otherwise the reason, a readable message and
    the numbers behind it (`details`, shaped like LedgerRefusal's details).
    """

    refusal: PositionRefusalReason | None = None
    message: str = ""
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.refusal is None


class PositionRefused(ValueError):
    """Raised by `require_position_allowed`; carries the refusing decision."""

    def __init__(self, decision: PositionDecision) -> None:
        super().__init__(decision.message)
        assert decision.refusal is not None
        self.decision = decision
        self.reason: PositionRefusalReason = decision.refusal
        self.message = decision.message
        self.details = decision.details


def _require_minor(name: str, value: object) -> int:
    if not _is_minor(value):
        raise TypeError(f"{name} must be an integer of minor units, not {type(value).__name__}")
    assert isinstance(value, int)
    return value


def position_decision(
    tier: Tier, open_positions: int, position_value_minor: int, capital_minor: int
) -> PositionDecision:
    """May an account of `tier` with `open_positions` open one more of this value?

    Checked in this order, the first failure deciding: the count (allowed while
    `open_positions < max_open_positions`, so the new one is at most the
    maximum); the capital (must be positive); the share (position value over
    capital at most `max_position_share`; exactly at the share is allowed).
    `position_value_minor` is the new position's absolute value and must be
    positive.
    """
    _require_minor("open_positions", open_positions)
    _require_minor("position_value_minor", position_value_minor)
    _require_minor("capital_minor", capital_minor)
    if open_positions < 0:
        raise ValueError("open_positions must not be negative")
    if position_value_minor <= 0:
        raise ValueError("position_value_minor must be positive")
    if open_positions >= tier.max_open_positions:
        return PositionDecision(
            PositionRefusalReason.TOO_MANY_OPEN_POSITIONS,
            f"a {tier.name} account may hold at most {tier.max_open_positions} open positions",
            {
                "tier": tier.name.value,
                "open_positions": open_positions,
                "max_open_positions": tier.max_open_positions,
            },
        )
    if capital_minor <= 0:
        return PositionDecision(
            PositionRefusalReason.CAPITAL_NOT_POSITIVE,
            "an account without positive capital may not open a position",
            {
                "tier": tier.name.value,
                "currency": TIER_CURRENCY,
                "capital": format_amount(capital_minor, TIER_CURRENCY),
                "capital_minor": capital_minor,
            },
        )
    share = Fraction(position_value_minor, capital_minor)
    if share > tier.max_position_share:
        max_value_minor = (
            capital_minor * tier.max_position_share.numerator // tier.max_position_share.denominator
        )
        return PositionDecision(
            PositionRefusalReason.POSITION_EXCEEDS_TIER_SHARE,
            f"a {tier.name} position may take at most {_percent(tier.max_position_share)} "
            f"of capital; this one would take {_percent(share)}",
            {
                "tier": tier.name.value,
                "currency": TIER_CURRENCY,
                "position_value": format_amount(position_value_minor, TIER_CURRENCY),
                "capital": format_amount(capital_minor, TIER_CURRENCY),
                "max_position_value": format_amount(max_value_minor, TIER_CURRENCY),
                "position_value_minor": position_value_minor,
                "capital_minor": capital_minor,
                "max_position_value_minor": max_value_minor,
            },
        )
    return PositionDecision()


def require_position_allowed(
    tier: Tier, open_positions: int, position_value_minor: int, capital_minor: int
) -> None:
    """`position_decision`, raising PositionRefused when it refuses."""
    decision = position_decision(tier, open_positions, position_value_minor, capital_minor)
    if not decision.allowed:
        raise PositionRefused(decision)


def _percent(ratio: Fraction) -> str:
    # For messages only: two decimals, rounded up, so a share just over a
    # limit never reads as equal to it.
    hundredths = -(-ratio * 10_000 // 1)
    return f"{hundredths // 100}.{hundredths % 100:02d} %"
