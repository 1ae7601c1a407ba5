"""Fork and consolidation confidence: the weighted sums and their bands
(docs/rules.md#tiers-forks-and-merges), exact."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from typing import Final

from domain.fork import (
    ForkDecision,
    ForkInputs,
    SymbolMarket,
    fork_confidence,
    session_score,
)
from domain.merge import merge_confidence

REGULAR_HOURS: Final = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
VOLATILE_OPENING: Final = datetime(2026, 1, 5, 14, 45, tzinfo=UTC)
SATURDAY: Final = datetime(2026, 1, 3, 16, 0, tzinfo=UTC)


def _inputs(**change: object) -> ForkInputs:
    values: dict[str, object] = {
        "balance_minor": 120_000_00,
        "threshold_minor": 100_000_00,
        "drawdown": Fraction(0),
        "drawdown_limit": Fraction(10, 100),
        "band": "safe",
        "forks_executing": 0,
        "markets": (),
        "unquoted": (),
        "at": REGULAR_HOURS,
    } | change
    return ForkInputs(**values)  # type: ignore[arg-type]


def test_fork_confidence_weighs_market_30_performance_40_load_20_timing_10() -> None:
    confidence = fork_confidence(_inputs())
    assert [(factor.name, factor.weight) for factor in confidence.factors] == [
        ("market_conditions", Fraction(3, 10)),
        ("account_performance", Fraction(4, 10)),
        ("system_load", Fraction(2, 10)),
        ("timing", Fraction(1, 10)),
    ]
    assert confidence.score == 1
    # Each factor records its inputs with its score.
    assert all(factor.inputs for factor in confidence.factors)
    # Two of five forks executing: load 3/5, 0.2 x 2/5 off the score.
    assert fork_confidence(_inputs(forks_executing=2)).score == Fraction(92, 100)


def test_fork_confidence_from_80_percent_executes_at_once() -> None:
    # The volatile opening half hour: market (1 + 1 + 0) / 3, timing 0.
    at_the_edge = fork_confidence(_inputs(at=VOLATILE_OPENING))
    assert at_the_edge.score == Fraction(80, 100)
    assert at_the_edge.decision is ForkDecision.EXECUTE_AT_ONCE


def test_fork_confidence_from_70_to_80_percent_is_approved_and_waits() -> None:
    gap = SymbolMarket(
        "GAP", open_minor=105_00, last_close_minor=100_00, bid_minor=100_00, ask_minor=100_00
    )
    # A 5 % gap: volatility 0, market (0 + 1 + 0) / 3: 0.1 + 0.4 + 0.2 = 70 % exactly.
    at_the_edge = fork_confidence(_inputs(at=VOLATILE_OPENING, markets=(gap,)))
    assert at_the_edge.score == Fraction(70, 100)
    assert at_the_edge.decision is ForkDecision.APPROVE_AND_WAIT
    assert at_the_edge.approves_itself


def test_fork_confidence_under_70_percent_waits_for_manual_review() -> None:
    # A held symbol without a quote: volatility and liquidity unknown, 0.
    unknown = fork_confidence(_inputs(at=VOLATILE_OPENING, unquoted=("HALTED",)))
    assert unknown.score == Fraction(60, 100)
    assert unknown.decision is ForkDecision.MANUAL_REVIEW
    assert not unknown.approves_itself


def test_the_session_scores_market_hours_and_volatile_periods() -> None:
    assert session_score(REGULAR_HOURS) == 1
    assert session_score(VOLATILE_OPENING) == 0
    assert session_score(datetime(2026, 1, 5, 20, 30, tzinfo=UTC)) == 0
    assert session_score(datetime(2026, 1, 5, 21, 0, tzinfo=UTC)) == Fraction(1, 2)
    assert session_score(SATURDAY) == Fraction(1, 2)


def test_consolidation_confidence_weighs_trigger_30_benefit_40_risk_30() -> None:
    whole_critical_risk = merge_confidence("risk", "critical", None, 50_000_00)
    assert whole_critical_risk.score == 1
    assert [factor["name"] for factor in whole_critical_risk.factors] == [
        "trigger_reliability",
        "benefit_magnitude",
        "risk_assessment",
    ]
    # Underperformance (1/2), a quarter of the balance (1/4), low urgency (1/4):
    # 0.3 x 1/2 + 0.4 x 1/4 + 0.3 x 1/4 = 13/40.
    partial = merge_confidence("underperformance", "low", 12_500_00, 50_000_00)
    assert partial.score == Fraction(13, 40)
    assert partial.factors[1]["inputs"] == {
        "amount_minor": "1250000",
        "source_balance_minor": "5000000",
    }
