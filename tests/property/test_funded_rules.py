"""Funded-account rules: withdrawable profit, drawdown, risk per trade, bands."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from domain.funded_rules import (
    RISK_PER_TRADE_LIMIT,
    AccountRuleStatus,
    RuleBand,
    RuleName,
    band_for,
    drawdown,
    risk_per_trade,
    rule_status,
    withdrawable_minor,
    worst_band,
)
from domain.tiers import TIERS, Tier, TierName

GEN = TIERS[TierName.GEN]
TINY = Fraction(1, 10**12)

amounts = st.integers(min_value=-(10**15), max_value=10**15)
non_negative = st.integers(min_value=0, max_value=10**15)
positive = st.integers(min_value=1, max_value=10**15)
splits = st.fractions(min_value=0, max_value=1, max_denominator=10_000)
tiers = st.sampled_from(list(TIERS.values()))


def usd(dollars: int) -> int:
    return dollars * 100


# Withdrawable ---------------------------------------------------------------------


def test_the_worked_example_of_the_source() -> None:
    assert withdrawable_minor(Fraction(80, 100), usd(160_000), usd(100_000), 0) == usd(48_000)


@pytest.mark.parametrize(
    ("profit_minor", "withdrawable"),
    [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (6, 4), (1_000_001, 800_000)],
)
def test_withdrawable_rounds_down_to_the_minor_unit(profit_minor: int, withdrawable: int) -> None:
    starting = usd(100_000)
    assert withdrawable_minor(Fraction(4, 5), starting + profit_minor, starting, 0) == withdrawable


@given(
    split=splits,
    current=amounts,
    starting=non_negative,
    withdrawn=non_negative,
    reserved=non_negative,
)
@example(split=Fraction(4, 5), current=usd(160_000), starting=usd(100_000), withdrawn=0, reserved=0)
def test_withdrawable_is_the_share_of_the_profit_less_what_was_taken_rounded_down(
    split: Fraction, current: int, starting: int, withdrawn: int, reserved: int
) -> None:
    result = withdrawable_minor(split, current, starting, withdrawn, reserved)
    # The profit made is counted before withdrawals left the account.
    profit = current + withdrawn - starting
    # Integer-only oracle: floor(numerator * profit / denominator), 0 without profit.
    share = split.numerator * profit // split.denominator if profit > 0 else 0
    assert type(result) is int
    assert result == max(0, share - withdrawn - reserved)


def test_a_withdrawal_is_counted_once_not_twice() -> None:
    """$60k profit at 80 %: $48k in all, whether taken at once or in parts."""
    split, starting = Fraction(4, 5), usd(100_000)
    assert withdrawable_minor(split, usd(150_000), starting, usd(10_000)) == usd(38_000)
    assert withdrawable_minor(split, usd(112_000), starting, usd(48_000)) == 0
    # A request waiting for approval holds its amount.
    assert withdrawable_minor(split, usd(160_000), starting, 0, usd(40_000)) == usd(8_000)


@given(
    split=splits,
    profit=st.integers(min_value=0, max_value=usd(10_000_000)),
    parts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=20),
)
def test_withdrawing_in_any_parts_never_passes_the_share_of_the_profit(
    split: Fraction, profit: int, parts: list[int]
) -> None:
    starting = usd(100_000)
    current, withdrawn = starting + profit, 0
    for percent in parts:
        amount = withdrawable_minor(split, current, starting, withdrawn) * percent // 100
        current, withdrawn = current - amount, withdrawn + amount
    assert withdrawn <= split * profit
    # Taking everything left brings the total to the share, to the minor unit.
    rest = withdrawable_minor(split, current, starting, withdrawn)
    assert withdrawn + rest == split.numerator * profit // split.denominator


@given(split=splits, current=amounts, starting=non_negative, withdrawn=non_negative)
def test_withdrawable_is_zero_without_profit(
    split: Fraction, current: int, starting: int, withdrawn: int
) -> None:
    assume(current + withdrawn <= starting)
    assert withdrawable_minor(split, current, starting, withdrawn) == 0


@given(
    split=splits,
    current=amounts,
    more=non_negative,
    starting=non_negative,
    withdrawn=non_negative,
)
def test_withdrawable_never_falls_when_current_rises(
    split: Fraction, current: int, more: int, starting: int, withdrawn: int
) -> None:
    lower = withdrawable_minor(split, current, starting, withdrawn)
    higher = withdrawable_minor(split, current + more, starting, withdrawn)
    assert lower <= higher


@given(split=splits, current=amounts, starting=non_negative, withdrawn=non_negative)
def test_withdrawable_never_exceeds_what_the_account_holds_above_its_start(
    split: Fraction, current: int, starting: int, withdrawn: int
) -> None:
    assert withdrawable_minor(split, current, starting, withdrawn) <= max(0, current - starting)


@pytest.mark.parametrize(
    ("split", "current", "starting", "withdrawn", "error"),
    [
        (0.8, 200, 100, 0, TypeError),
        (True, 200, 100, 0, TypeError),
        (Fraction(4, 5), 200.0, 100, 0, TypeError),
        (Fraction(4, 5), 200, 100.0, 0, TypeError),
        (Fraction(4, 5), 200, 100, False, TypeError),
        (Fraction(-1, 5), 200, 100, 0, ValueError),
        (Fraction(6, 5), 200, 100, 0, ValueError),
        (Fraction(4, 5), 200, 100, -1, ValueError),
    ],
)
def test_withdrawable_refuses_floats_and_out_of_range_inputs(
    split: object, current: object, starting: object, withdrawn: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        withdrawable_minor(split, current, starting, withdrawn)  # type: ignore[arg-type]


def test_a_whole_number_split_is_accepted() -> None:
    assert withdrawable_minor(1, 300, 100, 50) == 200
    assert withdrawable_minor(0, 300, 100, 50) == 0


# Drawdown and risk per trade ------------------------------------------------------


@given(peak=amounts, current=non_negative)
def test_drawdown_is_between_zero_and_one_while_the_balance_is_not_negative(
    peak: int, current: int
) -> None:
    assert 0 <= drawdown(peak, current) <= 1


@given(peak=positive, current=amounts)
def test_drawdown_is_the_exact_fall_from_the_peak(peak: int, current: int) -> None:
    result = drawdown(peak, current)
    assert type(result) is Fraction
    if current >= peak:
        assert result == 0
    else:
        assert result == Fraction(peak - current, peak)
        assert result * peak == peak - current


@given(peak=st.integers(max_value=0), current=amounts)
def test_drawdown_is_zero_without_a_positive_peak(peak: int, current: int) -> None:
    assert drawdown(peak, current) == 0


def test_drawdown_examples() -> None:
    assert drawdown(usd(100_000), usd(90_000)) == Fraction(1, 10)
    assert drawdown(usd(100_000), 0) == 1
    assert drawdown(usd(100_000), -usd(50_000)) == Fraction(3, 2)  # left visible, not clamped
    assert drawdown(3, 2) == Fraction(1, 3)  # exact, where a float or Decimal would round


@given(largest=non_negative, balance=positive)
def test_risk_per_trade_is_the_exact_ratio_of_the_largest_position_to_the_balance(
    largest: int, balance: int
) -> None:
    assert risk_per_trade(largest, balance) == Fraction(largest, balance)


@given(balance=amounts)
def test_risk_per_trade_is_zero_without_a_position(balance: int) -> None:
    assert risk_per_trade(0, balance) == 0


@given(largest=positive, balance=st.integers(max_value=0))
def test_risk_per_trade_is_unbounded_with_a_position_and_no_positive_balance(
    largest: int, balance: int
) -> None:
    assert risk_per_trade(largest, balance) is None


def test_ratio_inputs_must_be_integers_of_minor_units() -> None:
    with pytest.raises(TypeError):
        drawdown(100.0, 90)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        risk_per_trade(5, 100.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="absolute value"):
        risk_per_trade(-5, 100)


# Bands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "band"),
    [
        (Fraction(0), RuleBand.SAFE),
        (Fraction(7999, 10_000), RuleBand.SAFE),
        (Fraction(4, 5) - TINY, RuleBand.SAFE),
        (Fraction(4, 5), RuleBand.WARNING),
        (Fraction(4, 5) + TINY, RuleBand.WARNING),
        (Fraction(8999, 10_000), RuleBand.WARNING),
        (Fraction(9, 10) - TINY, RuleBand.WARNING),
        (Fraction(9, 10), RuleBand.DANGER),
        (Fraction(9, 10) + TINY, RuleBand.DANGER),
        (Fraction(1) - TINY, RuleBand.DANGER),
        (Fraction(1), RuleBand.DANGER),
        (Fraction(1) + TINY, RuleBand.VIOLATION),
        (Fraction(10_001, 10_000), RuleBand.VIOLATION),
        (Fraction(5), RuleBand.VIOLATION),
        (0, RuleBand.SAFE),
        (1, RuleBand.DANGER),
        (2, RuleBand.VIOLATION),
    ],
)
def test_bands_at_and_around_each_edge(share: Fraction | int, band: RuleBand) -> None:
    assert band_for(share) is band


@given(share=st.fractions(min_value=0, max_value=3))
def test_the_band_matches_its_definition(share: Fraction) -> None:
    expected = (
        RuleBand.SAFE
        if share < Fraction(80, 100)
        else RuleBand.WARNING
        if share < Fraction(90, 100)
        else RuleBand.DANGER
        if share <= 1
        else RuleBand.VIOLATION
    )
    assert band_for(share) is expected


@given(low=st.fractions(min_value=0, max_value=3), high=st.fractions(min_value=0, max_value=3))
def test_a_larger_share_never_has_a_milder_band(low: Fraction, high: Fraction) -> None:
    low, high = min(low, high), max(low, high)
    assert band_for(low).severity <= band_for(high).severity


def test_band_for_refuses_floats_and_negative_shares() -> None:
    with pytest.raises(TypeError):
        band_for(0.8)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        band_for(True)
    with pytest.raises(ValueError):
        band_for(Fraction(-1, 100))


def test_bands_order_from_safe_to_violation() -> None:
    assert [band.severity for band in RuleBand] == [0, 1, 2, 3]
    assert worst_band([]) is RuleBand.SAFE
    assert worst_band([RuleBand.WARNING, RuleBand.SAFE, RuleBand.DANGER]) is RuleBand.DANGER


# Rule status ----------------------------------------------------------------------


@given(
    tier=tiers,
    peak=amounts,
    current=amounts,
    largest=non_negative,
    balance=amounts,
)
def test_the_account_band_is_the_worst_rule_band(
    tier: Tier, peak: int, current: int, largest: int, balance: int
) -> None:
    status = rule_status(tier, peak, current, largest, balance)
    assert status.band is max(
        (status.drawdown.band, status.risk_per_trade.band), key=lambda band: band.severity
    )
    assert status.band.severity == max(rule.band.severity for rule in status.rules)


@given(tier=tiers, peak=positive, current=amounts, largest=non_negative, balance=positive)
def test_each_rule_reports_value_limit_share_used_and_band_consistently(
    tier: Tier, peak: int, current: int, largest: int, balance: int
) -> None:
    status = rule_status(tier, peak, current, largest, balance)
    assert status.drawdown.rule is RuleName.DRAWDOWN
    assert status.drawdown.value == drawdown(peak, current)
    assert status.drawdown.limit == tier.drawdown_limit
    assert status.risk_per_trade.rule is RuleName.RISK_PER_TRADE
    assert status.risk_per_trade.value == Fraction(largest, balance)
    assert status.risk_per_trade.limit == RISK_PER_TRADE_LIMIT == Fraction(1, 20)
    for rule in status.rules:
        assert rule.value is not None
        assert rule.share_used == rule.value / rule.limit
        assert rule.band is band_for(rule.value / rule.limit)


@pytest.mark.parametrize(
    ("current_dollars", "band"),
    [
        (92_001, RuleBand.SAFE),  # 7.999 % of a 10 % limit: 79.99 % used
        (92_000, RuleBand.WARNING),  # 8 %: 80 % used
        (91_001, RuleBand.WARNING),
        (91_000, RuleBand.DANGER),  # 9 %: 90 % used
        (90_001, RuleBand.DANGER),
        (90_000, RuleBand.DANGER),  # 10 %: exactly at the limit
        (89_999, RuleBand.VIOLATION),
    ],
)
def test_gen_drawdown_bands_in_dollars(current_dollars: int, band: RuleBand) -> None:
    status = rule_status(GEN, usd(100_000), usd(current_dollars), 0, usd(current_dollars))
    assert status.drawdown.band is band
    assert status.risk_per_trade.band is RuleBand.SAFE
    assert status.band is band


def test_the_limit_exactly_is_danger_and_one_cent_over_is_violation() -> None:
    com = TIERS[TierName.COM]  # 15 %
    at_limit = rule_status(com, usd(100_000), usd(85_000), 0, usd(85_000))
    assert at_limit.drawdown.share_used == 1
    assert at_limit.band is RuleBand.DANGER
    over = rule_status(com, usd(100_000), usd(85_000) - 1, 0, usd(85_000))
    assert over.band is RuleBand.VIOLATION


def test_risk_per_trade_alone_can_put_the_account_in_violation() -> None:
    # 5 % of $100k is $5,000: at the limit danger, a cent over violation.
    at_limit = rule_status(GEN, usd(100_000), usd(100_000), usd(5_000), usd(100_000))
    assert (at_limit.drawdown.band, at_limit.risk_per_trade.band) == (
        RuleBand.SAFE,
        RuleBand.DANGER,
    )
    over = rule_status(GEN, usd(100_000), usd(100_000), usd(5_000) + 1, usd(100_000))
    assert over.band is RuleBand.VIOLATION
    assert isinstance(over, AccountRuleStatus)


def test_a_position_against_no_positive_balance_is_an_unbounded_violation() -> None:
    status = rule_status(GEN, usd(100_000), 0, 1, 0)
    assert status.risk_per_trade.value is None
    assert status.risk_per_trade.share_used is None
    assert status.risk_per_trade.band is RuleBand.VIOLATION
    assert status.band is RuleBand.VIOLATION
