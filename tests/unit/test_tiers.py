from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.tiers import (
    DRAWDOWN_LIMIT_MAX,
    DRAWDOWN_LIMIT_MIN,
    TIER_CURRENCY,
    TIERS,
    PositionDecision,
    PositionRefusalReason,
    PositionRefused,
    Tier,
    TierName,
    position_decision,
    require_position_allowed,
    validate_tiers,
)

GEN, REV, COM = TIERS[TierName.GEN], TIERS[TierName.REV], TIERS[TierName.COM]

# The table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "minimum", "fork_at", "next_tier", "positions", "share", "multiplier", "drawdown"),
    [
        ("Gen", 1_000_000, 10_000_000, "Rev", 10, Fraction(20, 100), Fraction(1), Fraction(1, 10)),
        (
            "Rev",
            10_000_000,
            50_000_000,
            "Com",
            20,
            Fraction(15, 100),
            Fraction(6, 5),
            Fraction(12, 100),
        ),
        ("Com", 50_000_000, None, None, 50, Fraction(10, 100), Fraction(3, 2), Fraction(15, 100)),
    ],
)
def test_each_tier_has_the_numbers_of_the_source_table(
    name: str,
    minimum: int,
    fork_at: int | None,
    next_tier: str | None,
    positions: int,
    share: Fraction,
    multiplier: Fraction,
    drawdown: Fraction,
) -> None:
    tier = TIERS[TierName(name)]
    assert tier.name == name
    assert tier.minimum_capital_minor == minimum
    assert tier.fork_threshold_minor == fork_at
    assert tier.next_tier == next_tier
    assert tier.max_open_positions == positions
    assert tier.max_position_share == share
    assert tier.risk_multiplier == multiplier
    assert tier.drawdown_limit == drawdown


def test_the_tiers_are_in_us_dollars_and_every_tier_name_is_configured() -> None:
    assert TIER_CURRENCY == "USD"
    assert set(TIERS) == set(TierName)


def test_each_drawdown_limit_is_ten_percent_times_the_risk_multiplier_within_the_source_range() -> (
    None
):
    for tier in TIERS.values():
        assert tier.drawdown_limit == Fraction(1, 10) * tier.risk_multiplier
        assert DRAWDOWN_LIMIT_MIN <= tier.drawdown_limit <= DRAWDOWN_LIMIT_MAX
    assert Fraction(1, 10) == DRAWDOWN_LIMIT_MIN
    assert Fraction(15, 100) == DRAWDOWN_LIMIT_MAX


def test_no_ratio_in_the_table_is_a_float() -> None:
    for tier in TIERS.values():
        for ratio in (tier.max_position_share, tier.risk_multiplier, tier.drawdown_limit):
            assert type(ratio) is Fraction


def test_the_table_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        TIERS[TierName.GEN] = GEN  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        GEN.max_open_positions = 11  # type: ignore[misc]


def test_the_configured_table_is_valid() -> None:
    validate_tiers(TIERS)


# Validation refusing bad configurations -----------------------------------------


def with_tier(key: TierName, /, **changes: object) -> dict[TierName, Tier]:
    tiers = dict(TIERS)
    tiers[key] = dataclasses.replace(tiers[key], **changes)  # type: ignore[arg-type]
    return tiers


def without(name: TierName) -> dict[TierName, Tier]:
    return {key: tier for key, tier in TIERS.items() if key is not name}


def combined(*edits: Callable[[dict[TierName, Tier]], None]) -> dict[TierName, Tier]:
    tiers = dict(TIERS)
    for edit in edits:
        edit(tiers)
    return tiers


def set_tier(key: TierName, /, **changes: object) -> Callable[[dict[TierName, Tier]], None]:
    def edit(tiers: dict[TierName, Tier]) -> None:
        tiers[key] = dataclasses.replace(tiers[key], **changes)  # type: ignore[arg-type]

    return edit


BAD_CONFIGURATIONS: list[tuple[str, dict[TierName, Tier], str]] = [
    ("missing tier", without(TierName.COM), r"tiers is missing Com"),
    ("name under another key", with_tier(TierName.GEN, name=TierName.REV), r"tiers\[Gen\]\.name"),
    (
        "zero minimum capital",
        with_tier(TierName.GEN, minimum_capital_minor=0),
        r"tiers\[Gen\]\.minimum_capital_minor",
    ),
    (
        "float minimum capital",
        with_tier(TierName.GEN, minimum_capital_minor=1_000_000.0),
        r"tiers\[Gen\]\.minimum_capital_minor",
    ),
    (
        "no open positions allowed",
        with_tier(TierName.REV, max_open_positions=0),
        r"tiers\[Rev\]\.max_open_positions",
    ),
    (
        "bool open positions",
        with_tier(TierName.REV, max_open_positions=True),
        r"tiers\[Rev\]\.max_open_positions",
    ),
    (
        "zero position share",
        with_tier(TierName.COM, max_position_share=Fraction(0)),
        r"tiers\[Com\]\.max_position_share",
    ),
    (
        "position share above one",
        with_tier(TierName.COM, max_position_share=Fraction(101, 100)),
        r"tiers\[Com\]\.max_position_share",
    ),
    (
        "float position share",
        with_tier(TierName.COM, max_position_share=0.1),
        r"tiers\[Com\]\.max_position_share",
    ),
    (
        "zero risk multiplier",
        with_tier(TierName.REV, risk_multiplier=Fraction(0)),
        r"tiers\[Rev\]\.risk_multiplier",
    ),
    (
        "float risk multiplier",
        with_tier(TierName.REV, risk_multiplier=1.2),
        r"tiers\[Rev\]\.risk_multiplier",
    ),
    (
        "drawdown limit below 10 %",
        with_tier(TierName.GEN, drawdown_limit=Fraction(9, 100)),
        r"tiers\[Gen\]\.drawdown_limit",
    ),
    (
        "drawdown limit above 15 %",
        with_tier(TierName.COM, drawdown_limit=Fraction(1501, 10_000)),
        r"tiers\[Com\]\.drawdown_limit",
    ),
    (
        "float drawdown limit",
        with_tier(TierName.GEN, drawdown_limit=0.1),
        r"tiers\[Gen\]\.drawdown_limit",
    ),
    (
        "fork threshold not above minimum capital",
        with_tier(TierName.GEN, fork_threshold_minor=1_000_000),
        r"tiers\[Gen\]\.fork_threshold_minor",
    ),
    (
        "float fork threshold",
        with_tier(TierName.GEN, fork_threshold_minor=10_000_000.0),
        r"tiers\[Gen\]\.fork_threshold_minor",
    ),
    (
        "next tier without a fork threshold",
        with_tier(TierName.REV, fork_threshold_minor=None),
        r"tiers\[Rev\]\.fork_threshold_minor",
    ),
    (
        "fork threshold without a next tier",
        with_tier(TierName.REV, next_tier=None),
        r"tiers\[Rev\]\.next_tier",
    ),
    (
        "next tier is the tier itself",
        with_tier(TierName.REV, next_tier=TierName.REV),
        r"tiers\[Rev\]\.next_tier",
    ),
    (
        "next tier does not ascend",
        with_tier(TierName.REV, minimum_capital_minor=1_000_000),
        r"tiers\[Rev\]\.minimum_capital_minor",
    ),
    (
        "next tier loops back to the first",
        with_tier(TierName.COM, fork_threshold_minor=100_000_000, next_tier=TierName.GEN),
        r"tiers\[Gen\]\.minimum_capital_minor",
    ),
    (
        "fork threshold below the next tier's minimum capital",
        with_tier(TierName.GEN, fork_threshold_minor=9_000_000),
        r"tiers\[Gen\]\.fork_threshold_minor",
    ),
    (
        "fork thresholds not increasing",
        combined(
            set_tier(TierName.GEN, fork_threshold_minor=30_000_000),
            set_tier(TierName.REV, fork_threshold_minor=20_000_000),
        ),
        r"tiers\[Rev\]\.fork_threshold_minor",
    ),
]


@pytest.mark.parametrize(
    ("tiers", "field"),
    [(tiers, field) for _, tiers, field in BAD_CONFIGURATIONS],
    ids=[case for case, _, _ in BAD_CONFIGURATIONS],
)
def test_a_bad_configuration_is_refused_naming_the_bad_field(
    tiers: dict[TierName, Tier], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        validate_tiers(tiers)


def test_a_key_that_is_not_a_tier_name_is_refused() -> None:
    # "Gen" itself would be equal to TierName.GEN (a StrEnum) and replace it.
    tiers: dict[object, object] = dict(TIERS.items())
    tiers["Gold"] = GEN
    with pytest.raises(ValueError, match="not a TierName"):
        validate_tiers(tiers)  # type: ignore[arg-type]


def test_a_value_that_is_not_a_tier_is_refused() -> None:
    tiers: dict[object, object] = dict(TIERS.items())
    tiers[TierName.GEN] = "Gen"
    with pytest.raises(ValueError, match=r"tiers\[Gen\] is a str"):
        validate_tiers(tiers)  # type: ignore[arg-type]


# Opening a position ---------------------------------------------------------------


def test_a_position_within_every_limit_is_allowed() -> None:
    decision = position_decision(GEN, 9, 200_000, 1_000_000)
    assert decision == PositionDecision()
    assert decision.allowed
    require_position_allowed(GEN, 9, 200_000, 1_000_000)


@pytest.mark.parametrize("tier", list(TIERS.values()), ids=lambda tier: tier.name.value)
def test_the_last_allowed_position_brings_the_count_to_the_maximum(tier: Tier) -> None:
    assert position_decision(tier, tier.max_open_positions - 1, 1, 10_000_000).allowed
    refused = position_decision(tier, tier.max_open_positions, 1, 10_000_000)
    assert refused.refusal is PositionRefusalReason.TOO_MANY_OPEN_POSITIONS
    assert refused.details["max_open_positions"] == tier.max_open_positions


@pytest.mark.parametrize("tier", list(TIERS.values()), ids=lambda tier: tier.name.value)
def test_a_position_exactly_at_the_tier_share_is_allowed_and_one_cent_more_is_not(
    tier: Tier,
) -> None:
    capital = 12_345_600
    at_share = capital * tier.max_position_share
    assert at_share.denominator == 1
    assert position_decision(tier, 0, int(at_share), capital).allowed
    refused = position_decision(tier, 0, int(at_share) + 1, capital)
    assert refused.refusal is PositionRefusalReason.POSITION_EXCEEDS_TIER_SHARE
    assert refused.details["max_position_value_minor"] == int(at_share)
    assert "%" in refused.message


def test_a_share_just_over_the_limit_never_reads_as_equal_to_it() -> None:
    refused = position_decision(GEN, 0, 2_000_001, 10_000_000)
    assert "20.00 %" in refused.message  # the limit
    assert "20.01 %" in refused.message  # 20.00001 %, rounded up


def test_an_account_without_positive_capital_may_not_open_a_position() -> None:
    for capital in (0, -1):
        refused = position_decision(REV, 0, 1, capital)
        assert refused.refusal is PositionRefusalReason.CAPITAL_NOT_POSITIVE


def test_the_position_count_is_checked_before_the_capital_and_the_share() -> None:
    refused = position_decision(COM, 50, 10**12, 0)
    assert refused.refusal is PositionRefusalReason.TOO_MANY_OPEN_POSITIONS


def test_require_position_allowed_raises_a_value_error_carrying_the_decision() -> None:
    with pytest.raises(PositionRefused) as refused:
        require_position_allowed(GEN, 10, 1, 1_000_000)
    assert isinstance(refused.value, ValueError)
    assert refused.value.reason is PositionRefusalReason.TOO_MANY_OPEN_POSITIONS
    assert refused.value.decision.refusal is refused.value.reason
    assert refused.value.details["open_positions"] == 10
    assert str(refused.value) == refused.value.message


def test_refusal_reasons_are_stable_snake_case_codes() -> None:
    assert {reason.value for reason in PositionRefusalReason} == {
        "too_many_open_positions",
        "position_exceeds_tier_share",
        "capital_not_positive",
    }


@pytest.mark.parametrize(
    ("open_positions", "value", "capital", "error"),
    [
        (-1, 1, 100, ValueError),
        (0, 0, 100, ValueError),
        (0, -5, 100, ValueError),
        (0, 1.0, 100, TypeError),
        (0, 1, 100.0, TypeError),
        (True, 1, 100, TypeError),
    ],
)
def test_invalid_inputs_are_errors_not_refusals(
    open_positions: object, value: object, capital: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        position_decision(GEN, open_positions, value, capital)  # type: ignore[arg-type]


@given(
    tier=st.sampled_from(list(TIERS.values())),
    open_positions=st.integers(min_value=0, max_value=60),
    value=st.integers(min_value=1, max_value=10**15),
    capital=st.integers(min_value=-(10**6), max_value=10**15),
)
def test_a_position_is_allowed_exactly_when_count_capital_and_share_all_allow_it(
    tier: Tier, open_positions: int, value: int, capital: int
) -> None:
    share = tier.max_position_share
    expected = (
        open_positions < tier.max_open_positions
        and capital > 0
        and value * share.denominator <= capital * share.numerator
    )
    decision = position_decision(tier, open_positions, value, capital)
    assert decision.allowed is expected
    assert (decision.message == "") is expected
