"""Performance attribution (domain/performance.py): a hand-computed example, edge
cases, properties, and an independent computation with numpy and pandas."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.performance import (
    DAILY_RISK_FREE_RATE,
    DAYS_PER_YEAR,
    HISTORY_KEPT_DAYS,
    PERIODS,
    RISK_FREE_RATE,
    DailyValue,
    PerformanceMetrics,
    carry_forward,
    combine_series,
    daily_returns,
    drawdowns,
    from_inception,
    in_period,
    metrics,
    period_start,
    subtree_metrics,
    time_weighted_index,
)

START = date(2024, 1, 1)
# Every metric that is a ratio (not a count, day or amount).
RATIO_FIELDS = (
    "total_return",
    "annualised_return",
    "volatility",
    "max_drawdown",
    "var_95",
    "sharpe",
    "sortino",
    "calmar",
    "win_rate",
    "profit_factor",
)
TOLERANCE = 1e-12


def series_of(
    values: Sequence[int], flows: Sequence[int] = (), start: date = START
) -> list[DailyValue]:
    padded = list(flows) + [0] * (len(values) - len(flows))
    return [
        DailyValue(start + timedelta(days=at), value, flow)
        for at, (value, flow) in enumerate(zip(values, padded, strict=True))
    ]


def close(actual: float | None, expected: float, rel: float = TOLERANCE) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-15)


# The hand-computed example ---------------------------------------------------------
#
# Five days of an account (minor units), a withdrawal of 200.00 on day 4:
#
#   day  value    flow     r = (V_t - V_{t-1} - F_t) / V_{t-1}
#   1    100000            (base)
#   2    110000            (110000 - 100000) / 100000          =  0.10
#   3     99000            ( 99000 - 110000) / 110000          = -0.10
#   4     83950   -20000   ( 83950 -  99000 + 20000) / 99000   =  4950 / 99000 = 0.05
#   5     85629            ( 85629 -  83950) / 83950           =  1679 / 83950 = 0.02
#
# Index 1 -> 1.10 -> 0.99 -> 1.0395 -> 1.06029: total return 0.06029 (the
# naive (85629 - 100000) / 100000 = -0.14371 would count the withdrawal as a
# loss). Annualised over n = 4 daily returns: 1.06029 ** (365 / 4) - 1 (about 207.93).
# Mean return 0.07 / 4 = 0.0175; deviations 0.0825, -0.1175, 0.0325, 0.0025;
# squares 0.00680625 + 0.01380625 + 0.00105625 + 0.00000625 = 0.021675;
# sample variance 0.021675 / 3 = 0.007225; stdev 0.085; volatility 0.085 sqrt(365).
# Max drawdown: peak 1.10, trough 0.99: 1 - 0.99 / 1.10 = 0.1.
# VaR 95 %: k = ceil(0.05 * 4) = 1, the smallest return -0.10: VaR 0.10.
# rf_d = 1.02 ** (1 / 365) - 1 (about 5.4e-5); only -0.10 falls short of it:
# downside deviation sqrt((-0.10 - rf_d) ** 2 / 4) = (0.10 + rf_d) / 2, times sqrt(365).
# Trades +50.00, -20.00, +30.00, 0, -10.00: win rate 2 / 5 = 0.4; profit factor
# 8000 / 3000 = 8 / 3.

HAND_VALUES = series_of([100_000, 110_000, 99_000, 83_950, 85_629], [0, 0, 0, -20_000, 0])
HAND_TRADES = (5_000, -2_000, 3_000, 0, -1_000)


def test_the_hand_computed_example() -> None:
    result = metrics(HAND_VALUES, HAND_TRADES)
    annualised = 1.06029 ** (365 / 4) - 1
    volatility = 0.085 * math.sqrt(365)
    rf_daily = 1.02 ** (1 / 365) - 1
    downside = (0.10 + rf_daily) / 2 * math.sqrt(365)

    assert [round(r, 12) for _, r in daily_returns(HAND_VALUES)] == [0.10, -0.10, 0.05, 0.02]
    assert (result.days, result.return_days, result.closed_trades) == (5, 4, 5)
    assert (result.start_day, result.end_day) == (START, START + timedelta(days=4))
    assert (result.start_value_minor, result.end_value_minor) == (100_000, 85_629)
    assert result.net_flow_minor == -20_000
    assert close(result.total_return, 0.06029)
    assert close(result.annualised_return, annualised)
    assert close(result.volatility, volatility)
    assert close(result.max_drawdown, 0.1)
    assert close(result.var_95, 0.10)
    assert close(result.sharpe, (annualised - 0.02) / volatility)
    assert close(result.sortino, (annualised - 0.02) / downside)
    assert close(result.calmar, annualised / 0.1)
    assert result.win_rate == 0.4
    assert result.profit_factor == 8 / 3


def test_the_constants() -> None:
    assert RISK_FREE_RATE == 0.02
    assert DAYS_PER_YEAR == 365
    assert HISTORY_KEPT_DAYS == 730
    assert math.isclose((1 + DAILY_RISK_FREE_RATE) ** DAYS_PER_YEAR, 1.02, rel_tol=1e-14)


def test_the_index_and_drawdowns_of_the_hand_example() -> None:
    index = [level for _, level in time_weighted_index(HAND_VALUES)]
    assert index == pytest.approx([1.0, 1.10, 0.99, 1.0395, 1.06029], rel=TOLERANCE)
    falls = [fall for _, fall in drawdowns(HAND_VALUES)]
    assert falls == pytest.approx([0.0, 0.0, 0.1, 1 - 1.0395 / 1.1, 1 - 1.06029 / 1.1])


# Edge cases -------------------------------------------------------------------------


def test_a_single_day_has_no_return_metric() -> None:
    result = metrics(series_of([100_000]))
    assert (result.days, result.return_days) == (1, 0)
    assert all(getattr(result, name) is None for name in RATIO_FIELDS)


def test_two_days_give_returns_but_no_statistics() -> None:
    result = metrics(series_of([100_000, 101_000]))
    assert close(result.total_return, 0.01)
    assert result.max_drawdown == 0.0
    assert result.volatility is None
    assert result.var_95 is None
    assert result.sharpe is None
    assert result.sortino is None
    assert result.calmar is None  # no drawdown


def test_a_flat_series() -> None:
    result = metrics(series_of([100_000] * 10))
    assert result.total_return == 0.0
    assert result.annualised_return == 0.0
    assert result.volatility == 0.0
    assert result.max_drawdown == 0.0
    assert result.var_95 == 0.0
    assert result.sharpe is None  # zero volatility
    assert result.calmar is None  # zero drawdown
    # Every day falls short of the daily risk-free rate by rf_d.
    assert close(result.sortino, -0.02 / (DAILY_RISK_FREE_RATE * math.sqrt(365)))


def test_returns_above_the_risk_free_rate_every_day_give_no_sortino() -> None:
    result = metrics(series_of([100_000, 101_000, 102_010, 103_030]))
    assert result.sortino is None
    assert result.sharpe is not None


@pytest.mark.parametrize(
    ("pnls", "win_rate", "profit_factor"),
    [
        ((), None, None),
        ((100, 250), 1.0, None),  # no losing trade
        ((-100, -250), 0.0, 0.0),  # all losses
        ((0, 0), 0.0, None),  # closes at 0: trades, neither wins nor losses
        ((300, -100, 0, -100), 0.25, 1.5),
    ],
)
def test_win_rate_and_profit_factor(
    pnls: tuple[int, ...], win_rate: float | None, profit_factor: float | None
) -> None:
    result = metrics(series_of([100_000]), pnls)
    assert result.closed_trades == len(pnls)
    assert result.win_rate == win_rate
    assert result.profit_factor == profit_factor


def test_a_day_after_no_capital_has_no_return() -> None:
    # Funded on day 3: the days before hold nothing to earn on.
    values = series_of([0, 0, 100_000, 110_000], [0, 0, 100_000, 0])
    assert daily_returns(values) == [(START + timedelta(days=3), 0.1)]
    result = metrics(values)
    assert result.return_days == 1
    assert close(result.total_return, 0.1)


def test_a_negative_previous_value_gives_no_return() -> None:
    values = series_of([100_000, -5_000, 20_000, 22_000], [0, 0, 25_000, 0])
    assert [day for day, _ in daily_returns(values)] == [
        START + timedelta(days=1),
        START + timedelta(days=3),
    ]


def test_a_loss_of_everything_wipes_the_index_out_for_good() -> None:
    values = series_of([100_000, -50_000, 10_000, 20_000], [0, 0, 60_000, 0])
    result = metrics(values)
    assert [level for _, level in time_weighted_index(values)] == [1.0, 0.0, 0.0, 0.0]
    assert result.total_return == -1.0
    assert result.annualised_return == -1.0
    assert result.max_drawdown == 1.0
    assert result.calmar == -1.0


def test_an_annualised_return_too_large_for_a_float_is_none() -> None:
    result = metrics(series_of([1, 1_000_000]))
    assert result.total_return == 999_999.0
    assert result.annualised_return is None
    assert result.calmar is None


def test_no_values_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        metrics([])


@pytest.mark.parametrize(
    "values",
    [
        [DailyValue(START, 1), DailyValue(START, 2)],
        [DailyValue(START, 1), DailyValue(START - timedelta(days=1), 2)],
    ],
)
def test_days_must_increase(values: list[DailyValue]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        metrics(values)


def test_a_gap_is_refused_and_carry_forward_fills_it() -> None:
    values = [DailyValue(START, 100), DailyValue(START + timedelta(days=3), 130, 20)]
    with pytest.raises(ValueError, match="consecutive"):
        metrics(values)
    assert carry_forward(values) == series_of([100, 100, 100, 130], [0, 0, 0, 20])
    assert carry_forward([]) == []
    with pytest.raises(ValueError, match="strictly increasing"):
        carry_forward(list(reversed(values)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: DailyValue(datetime(2024, 1, 1, 12), 1),
        lambda: DailyValue("2024-01-01", 1),  # type: ignore[arg-type]
        lambda: DailyValue(START, 1.5),  # type: ignore[arg-type]
        lambda: DailyValue(START, True),
        lambda: DailyValue(START, 1, 0.0),  # type: ignore[arg-type]
    ],
)
def test_a_daily_value_holds_a_date_and_integer_minor_units(make: object) -> None:
    assert callable(make)
    with pytest.raises(TypeError):
        make()


def test_trade_results_must_be_integers() -> None:
    with pytest.raises(TypeError):
        metrics(series_of([1]), [1.5])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        metrics(series_of([1]), [True])


def test_only_daily_values_are_accepted() -> None:
    with pytest.raises(TypeError):
        metrics([(START, 1)])  # type: ignore[list-item]


# Periods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "period", "start"),
    [
        (date(2024, 3, 31), "1m", date(2024, 2, 29)),
        (date(2023, 3, 31), "1m", date(2023, 2, 28)),
        (date(2024, 1, 15), "1m", date(2023, 12, 15)),
        (date(2024, 5, 31), "3m", date(2024, 2, 29)),
        (date(2024, 8, 31), "6m", date(2024, 2, 29)),
        (date(2024, 2, 29), "1y", date(2023, 2, 28)),
        (date(2024, 6, 30), "ytd", date(2023, 12, 31)),
        (date(2024, 1, 1), "ytd", date(2023, 12, 31)),
        (date(2024, 6, 30), "all", date(2024, 6, 30) - timedelta(days=729)),
        # Two calendar years back reach past the history kept: bounded by it.
        (date(2024, 6, 30), "2y", date(2024, 6, 30) - timedelta(days=729)),
        (date(2023, 6, 30), "2y", date(2021, 7, 1)),
    ],
)
def test_period_start(end: date, period: str, start: date) -> None:
    assert period_start(end, period) == start


def test_every_period_lies_within_the_history_kept() -> None:
    end = date(2025, 12, 31)
    for period in PERIODS:
        assert end - timedelta(days=HISTORY_KEPT_DAYS - 1) <= period_start(end, period) <= end


@pytest.mark.parametrize("period", ["5y", "1w", "", "ALL", "1M"])
def test_an_unknown_period_is_refused(period: str) -> None:
    with pytest.raises(ValueError, match="unknown period"):
        period_start(date(2024, 1, 1), period)


def test_in_period_keeps_the_base_day_and_the_days_after() -> None:
    values = series_of(list(range(1, 101)))
    end = values[-1].day  # 2024-04-09
    kept = in_period(values, end, "1m")
    assert kept[0].day == date(2024, 3, 9)
    assert kept[-1].day == end


# Subtrees ---------------------------------------------------------------------------


def test_a_subtree_return_is_weighted_by_capital() -> None:
    # 100.00 earning 10 % and 300.00 earning 0 %: 1/4 * 10 % + 3/4 * 0 % = 2.5 %.
    result = subtree_metrics(
        {
            "a": (series_of([10_000, 11_000]), [1_000]),
            "b": (series_of([30_000, 30_000]), [-400, 0]),
        }
    )
    assert close(result.total_return, 0.025)
    assert result.start_value_minor == 40_000
    assert result.closed_trades == 3
    assert result.win_rate == pytest.approx(1 / 3)
    assert result.profit_factor == 2.5


def test_a_fork_moves_capital_without_counting_as_performance() -> None:
    # The parent moves 500.00 to a child on day 3; the child keeps it as cash.
    parent = series_of([100_000, 101_000, 51_500, 52_000], [0, 0, -50_000, 0])
    child = series_of([50_000, 50_000], start=START + timedelta(days=2))
    combined = combine_series([parent, child])
    assert combined == series_of([100_000, 101_000, 101_500, 102_000])
    result = subtree_metrics({"parent": (parent, [500]), "child": (child, [-100])})
    assert result == metrics(series_of([100_000, 101_000, 101_500, 102_000]), [500, -100])


def test_an_account_ending_early_leaves_with_its_value_as_an_outflow() -> None:
    merged = series_of([20_000, 21_000])
    parent = series_of([80_000, 80_000, 101_000], [0, 0, 21_000])
    combined = combine_series([merged, parent])
    assert combined == series_of([100_000, 101_000, 101_000], [0, 0, 0])


def test_accounts_with_days_apart_combine_over_the_whole_span() -> None:
    early = series_of([1_000, 1_100])
    late = series_of([5_000, 5_500], start=START + timedelta(days=4))
    combined = combine_series([early, late, []])
    assert combined == series_of([1_000, 1_100, 0, 0, 5_000, 5_500], [0, 0, -1_100, 0, 5_000, 0])
    # The early account's leaving is an outflow, not a loss; no return on day 4
    # (previous value 0); the late account's arrival is an inflow.
    assert [r for _, r in daily_returns(combined)] == pytest.approx([0.1, 0.0, 0.1])


def test_a_subtree_without_values_is_refused() -> None:
    assert combine_series([]) == []
    with pytest.raises(ValueError):
        subtree_metrics({})
    with pytest.raises(ValueError):
        subtree_metrics({"a": ([], [1])})


# Properties -------------------------------------------------------------------------


POSITIVE_VALUES = st.integers(1, 10**12)
ANY_VALUES = st.integers(-(10**12), 10**12)
# Mostly no flow, sometimes any amount in or out.
FLOWS = st.one_of(st.just(0), st.integers(-(10**12), 10**12))
TRADES = st.lists(st.integers(-(10**9), 10**9), max_size=30)


@st.composite
def daily_series(
    draw: st.DrawFn,
    values: st.SearchStrategy[int] = POSITIVE_VALUES,
    flows: st.SearchStrategy[int] = FLOWS,
    min_days: int = 1,
    max_days: int = 40,
) -> list[DailyValue]:
    start = draw(st.dates(date(2000, 1, 1), date(2030, 12, 31)))
    length = draw(st.integers(min_days, max_days))
    amounts = draw(st.lists(values, min_size=length, max_size=length))
    moved = draw(st.lists(flows, min_size=length, max_size=length))
    return series_of(amounts, moved, start=start)


def ratios(result: PerformanceMetrics) -> tuple[float | None, ...]:
    return tuple(getattr(result, name) for name in RATIO_FIELDS)


@given(daily_series(min_days=2), st.data())
def test_a_flow_booked_with_its_money_leaves_that_day_and_those_before_unchanged(
    values: list[DailyValue], data: st.DataObject
) -> None:
    at = data.draw(st.integers(1, len(values) - 1))
    amount = data.draw(st.integers(-(10**12), 10**12))
    moved = list(values)
    moved[at] = dataclasses.replace(
        values[at],
        value_minor=values[at].value_minor + amount,
        flow_minor=values[at].flow_minor + amount,
    )
    assert daily_returns(moved)[:at] == daily_returns(values)[:at]


@given(daily_series(min_days=2), st.integers(-(10**12), 10**12), TRADES)
def test_a_flow_on_the_last_day_changes_no_ratio(
    values: list[DailyValue], amount: int, pnls: list[int]
) -> None:
    last = values[-1]
    moved = [
        *values[:-1],
        dataclasses.replace(
            last, value_minor=last.value_minor + amount, flow_minor=last.flow_minor + amount
        ),
    ]
    assert ratios(metrics(moved, pnls)) == ratios(metrics(values, pnls))


@given(daily_series(values=ANY_VALUES), st.integers(1, 10**6), TRADES)
def test_scaling_values_flows_and_trades_changes_no_ratio(
    values: list[DailyValue], factor: int, pnls: list[int]
) -> None:
    scaled = [
        DailyValue(value.day, value.value_minor * factor, value.flow_minor * factor)
        for value in values
    ]
    assert ratios(metrics(scaled, [pnl * factor for pnl in pnls])) == ratios(metrics(values, pnls))


@given(daily_series())
def test_max_drawdown_of_positive_values_is_a_fraction(values: list[DailyValue]) -> None:
    result = metrics(values)
    if len(values) > 1:
        assert result.max_drawdown is not None
        assert 0.0 <= result.max_drawdown <= 1.0
    assert all(0.0 <= fall <= 1.0 for _, fall in drawdowns(values))


@given(daily_series(values=ANY_VALUES), TRADES)
def test_no_metric_is_ever_nan_or_infinite(values: list[DailyValue], pnls: list[int]) -> None:
    for ratio in ratios(metrics(values, pnls)):
        assert ratio is None or math.isfinite(ratio)


@given(daily_series(values=ANY_VALUES, min_days=2), st.data(), TRADES)
def test_splitting_capital_into_a_child_is_no_performance(
    values: list[DailyValue], data: st.DataObject, pnls: list[int]
) -> None:
    at = data.draw(st.integers(1, len(values) - 1))
    moved = data.draw(st.integers(0, 10**12))
    parent = [
        dataclasses.replace(
            value,
            value_minor=value.value_minor - moved if day >= at else value.value_minor,
            flow_minor=value.flow_minor - moved if day == at else value.flow_minor,
        )
        for day, value in enumerate(values)
    ]
    child = [DailyValue(value.day, moved) for value in values[at:]]
    assert combine_series([parent, child]) == values
    split = pnls[: len(pnls) // 2], pnls[len(pnls) // 2 :]
    assert subtree_metrics({"parent": (parent, split[0]), "child": (child, split[1])}) == (
        metrics(values, pnls)
    )


@given(daily_series(values=ANY_VALUES), TRADES)
def test_a_subtree_of_one_account_is_that_account(
    values: list[DailyValue], pnls: list[int]
) -> None:
    assert subtree_metrics({"only": (values, pnls)}) == metrics(values, pnls)


# An independent computation with numpy and pandas ----------------------------------
#
# pandas: daily returns as pct_change minus flow / previous value, the index by
# cumprod, volatility as std(ddof=1) * sqrt(365), drawdown against cummax of the
# index (started at 1). numpy: VaR as -percentile(returns, 5, method="inverted_cdf"),
# the empirical quantile without interpolation that the domain uses (the k-th
# smallest return, k = ceil(0.05 n)); downside deviation as the root mean square of
# min(r - rf_d, 0) over all n returns.


def random_series(seed: int, days: int, start_minor: int = 10_000_000) -> list[DailyValue]:
    rng = np.random.default_rng(seed)
    values: list[DailyValue] = []
    value = start_minor
    for at in range(days):
        flow = 0
        if at and rng.random() < 0.08:
            flow = int(value * rng.uniform(-0.3, 0.3))
        if at:
            value = round(value * math.exp(rng.normal(0.0004, 0.012))) + flow
        values.append(DailyValue(START + timedelta(days=at), value, flow))
    return values


def random_trades(seed: int, count: int = 200) -> list[int]:
    rng = np.random.default_rng(seed + 1_000)
    return [int(pnl) for pnl in rng.integers(-50_000, 60_000, size=count)]


def pandas_returns(values: Sequence[DailyValue]) -> pd.Series[float]:
    frame = pd.DataFrame(
        {
            "value": [float(value.value_minor) for value in values],
            "flow": [float(value.flow_minor) for value in values],
        },
        index=pd.DatetimeIndex([pd.Timestamp(value.day) for value in values]),
    )
    returns = frame["value"].pct_change() - frame["flow"] / frame["value"].shift(1)
    return returns.iloc[1:]


def independent_metrics(returns: pd.Series[float], pnls: Sequence[int]) -> dict[str, float]:
    years = DAYS_PER_YEAR
    rf_daily = (1 + 0.02) ** (1 / years) - 1
    index = pd.concat([pd.Series([1.0]), (1 + returns).cumprod().reset_index(drop=True)])
    drawdown = 1 - index / index.cummax()
    annualised = float(index.iloc[-1]) ** (years / len(returns)) - 1
    volatility = float(returns.std(ddof=1)) * math.sqrt(years)
    shortfall = np.minimum(returns.to_numpy() - rf_daily, 0.0)
    downside = float(np.sqrt(np.mean(shortfall**2))) * math.sqrt(years)
    max_drawdown = float(drawdown.max())
    trades = np.array(pnls)
    return {
        "total_return": float(index.iloc[-1]) - 1,
        "annualised_return": annualised,
        "volatility": volatility,
        "max_drawdown": max_drawdown,
        "var_95": -float(np.percentile(returns.to_numpy(), 5, method="inverted_cdf")),
        "sharpe": (annualised - 0.02) / volatility,
        "sortino": (annualised - 0.02) / downside,
        "calmar": annualised / max_drawdown,
        "win_rate": float(np.mean(trades > 0)),
        "profit_factor": float(trades[trades > 0].sum() / -trades[trades < 0].sum()),
    }


def assert_agrees(result: PerformanceMetrics, expected: dict[str, float]) -> None:
    assert set(expected) == set(RATIO_FIELDS)
    for name, value in expected.items():
        assert close(getattr(result, name), value, rel=1e-9), (name, getattr(result, name), value)


@pytest.mark.parametrize(
    ("seed", "days"),
    [(1, HISTORY_KEPT_DAYS), (2, 21), (3, 101), (4, 365), (5, 61)],
)
def test_an_account_agrees_with_numpy_and_pandas(seed: int, days: int) -> None:
    values = random_series(seed, days)
    pnls = random_trades(seed)
    returns = pandas_returns(values)
    mine = [r for _, r in daily_returns(values)]
    assert np.allclose(mine, returns.to_numpy(), rtol=1e-12, atol=1e-15)
    assert_agrees(metrics(values, pnls), independent_metrics(returns, pnls))


def test_a_subtree_agrees_with_the_capital_weighted_mean_in_pandas() -> None:
    accounts = {f"account-{seed}": random_series(seed, 200, 1_000_000 * seed) for seed in (7, 8, 9)}
    trades = {name: random_trades(seed) for seed, name in zip((7, 8, 9), accounts, strict=True)}
    # Capital-weighted mean of each account's own return, weights its previous value.
    previous = pd.DataFrame(
        {name: [float(v.value_minor) for v in values[:-1]] for name, values in accounts.items()}
    )
    own = pd.DataFrame(
        {name: pandas_returns(values).to_numpy() for name, values in accounts.items()}
    )
    weighted = (own * previous).sum(axis=1) / previous.sum(axis=1)
    pooled = [pnl for pnls in trades.values() for pnl in pnls]
    result = subtree_metrics({name: (accounts[name], trades[name]) for name in accounts})
    assert_agrees(result, independent_metrics(weighted, pooled))


@pytest.mark.parametrize("count", [1, 2, 19, 20, 21, 39, 40, 41, 100, 729])
def test_var_is_numpys_inverted_cdf_percentile(count: int) -> None:
    rng = np.random.default_rng(count)
    returns = rng.normal(0.0, 0.02, size=count)
    # A series with exactly these returns: V_t = V_{t-1} (1 + r_t) in big integers.
    scale = 10**30
    levels = [scale]
    for daily in returns:
        levels.append(levels[-1] + round(levels[-1] * float(daily)))
    values = series_of(levels)
    mine = [r for _, r in daily_returns(values)]
    expected = -float(np.percentile(mine, 5, method="inverted_cdf"))
    result = metrics(values)
    if count >= 2:
        assert result.var_95 == expected
        assert result.var_95 == -sorted(mine)[math.ceil(count / 20) - 1]
    else:
        assert result.var_95 is None


# Since inception ----------------------------------------------------------------------


def test_total_return_is_time_weighted_over_every_day_including_the_first() -> None:
    """docs/rules.md#performance-figures: 100,000.00 funded, 105,000.00 at the
    end of the first day, 900.00 withdrawn the next day and 105,100.00 left:
    1.05 x 106,000 / 105,000 - 1 = 6.0 %, not the 0.95 % of leaving day one out."""
    funded = series_of([105_000_00, 105_100_00], [100_000_00, -900_00])
    assert close(metrics(from_inception(funded)).total_return, 0.06)
    first_day_left_out = metrics(funded).total_return
    assert first_day_left_out is not None and round(first_day_left_out, 4) == 0.0095


def test_from_inception_puts_the_opening_capital_on_the_day_before() -> None:
    funded = series_of([105_000, 106_000], [100_000, 0])
    assert from_inception(funded) == [
        DailyValue(START - timedelta(days=1), 100_000),
        DailyValue(START, 105_000),
        DailyValue(START + timedelta(days=1), 106_000),
    ]
    # A series that opens without an inflow (carried in) is left as it is.
    carried = series_of([105_000, 106_000])
    assert from_inception(carried) == carried
