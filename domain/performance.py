"""Performance attribution: time-weighted returns and risk ratios from daily values.

See docs/rules.md#performance-figures: a daily value per account (two years
kept); total and annualised return, volatility, max drawdown, VaR, Sharpe,
Sortino, Calmar, win rate, profit factor; per account and weighted across a
subtree; a risk-free rate of 2 %.

Input. One `DailyValue` per calendar day, in order, without gaps: the
account's closing value that day (integer minor units) and its external flow
that day (money in +, out -: deposits, withdrawals, capital moved in or out
by forks and merges). Flows are not performance. The daily values view
(projections/daily_values.py) writes rows only on days with events;
`carry_forward` fills the days between (the last value stands, flow 0). A
gap in the input is refused rather than guessed at, because every figure
below counts days.

Daily return (time-weighted, flows at the end of the day):

    r_t = (V_t - V_{t-1} - F_t) / V_{t-1}

The convention for deposits and withdrawals: every flow is at the end of its
day (it earns nothing that day), except an account's opening capital, which
is at work from the start of its first day: `from_inception` makes the day
before the first a base holding that capital, so the first day has a return
like every other (docs/rules.md#performance-figures). 100,000.00 funded,
105,000.00 at the end of that day, 900.00 withdrawn the next and 105,100.00
left: 1.05 x (105,100 + 900) / 105,000 - 1 = 6.0 %, where leaving the first
day out would give 0.95 %.

The first value of a series is the base: it has no return, and its flow is
not used. A day whose previous value is 0 or negative has no return either (there was no
capital to earn on: an account before its funding, or one in deficit); such
days are skipped by every statistic. Each return is the exact ratio of two
integers rounded once to the nearest float (Python's int / int is correctly
rounded), so equal ratios give identical floats: scaling all values and flows
by a constant changes no metric at all.

Number types. Money inputs are ints and stay exact up to the daily return.
The statistics are floats: they are reported figures, not money, and square
roots and fractional powers are irrational, so Fraction or Decimal could not
keep them exact anyway. `statistics.stdev` sums exactly before rounding and
`math.fsum` is used for the other sums. Counts and ratios of integers (win
rate, profit factor, the VaR rank) are exact until the final float.

Annualisation: calendar days. The input has a value for every calendar day,
weekends included (carried forward), so a year is `DAYS_PER_YEAR` = 365
daily returns. The 252 trading days convention would be right only for a
series with one value per trading day; with weekend days of zero return it
would understate annualised volatility by sqrt(252/365) and overstate the
number of years. 365 is used for return, volatility, the daily risk-free rate
and the downside deviation alike.

Metrics (each None where undefined; never NaN or infinite):

- total_return: the time-weighted growth, prod(1 + r_t) - 1. Not
  (V_end - V_start) / V_start, which would count flows as performance.
- annualised_return: (1 + total_return) ** (365 / n) - 1, n the number of
  daily returns. None when that overflows a float (a short series with a
  large return).
- volatility: sample standard deviation (n - 1) of the daily returns, times
  sqrt(365). Needs 2 returns.
- max_drawdown: the largest fall from a running peak of the time-weighted
  index I_0 = 1, I_t = I_{t-1} (1 + r_t), as a positive fraction. A daily
  return of -100 % or worse (possible with flows or a negative value) wipes
  the index out: it stays at 0 and the drawdown is 1, so max_drawdown is
  always within [0, 1].
- var_95: historical one-day value at risk at `VAR_CONFIDENCE`, reported as
  a positive loss fraction: -q, q the empirical 5 % quantile of the daily
  returns by the inverted CDF (Hyndman & Fan definition 1, numpy's
  method="inverted_cdf"): the k-th smallest return, k = ceil(0.05 n). No
  interpolation; a negative VaR says even that day was a gain. Needs 2
  returns.
- sharpe: (annualised_return - RISK_FREE_RATE) / volatility.
- sortino: (annualised_return - RISK_FREE_RATE) / downside deviation, the
  downside deviation being sqrt(sum(min(0, r_t - rf_d) ** 2) / n) times
  sqrt(365), n all daily returns (Sortino and Price's target semideviation)
  and rf_d = 1.02 ** (1 / 365) - 1 the daily risk-free rate. None when no
  day fell short of rf_d.
- calmar: annualised_return / max_drawdown.
- win_rate: closed trades with P&L > 0 / closed trades (a close at 0 counts
  as a trade and is not a win).
- profit_factor: the sum of winning P&L / the sum of losing P&L (as a
  positive number); None without a losing trade, 0.0 without a winning one.

Subtree ("weighted across a subtree"): `combine_series` sums values and
flows per day, so the combined daily return is the capital-weighted mean of
the accounts' returns, with weights V_{i,t-1} / sum V_{t-1}. An account that
starts after the subtree's first day enters with its first value as an
inflow, and one that ends early leaves with its last value as an outflow on
the next day; capital moved between accounts of the subtree (a fork's
outflow from the parent, the child's first value) thus nets to no flow.
Closed trades are pooled.
"""

from __future__ import annotations

import calendar
import math
import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from typing import Final, TypeVar

# The risk-free rate, 2 % a year (docs/rules.md#performance-figures).
RISK_FREE_RATE: Final[float] = 0.02
# One value per calendar day: a year is 365 daily returns (see module doc).
DAYS_PER_YEAR: Final[int] = 365
# The daily rate that compounds to RISK_FREE_RATE over DAYS_PER_YEAR days.
DAILY_RISK_FREE_RATE: Final[float] = math.expm1(math.log1p(RISK_FREE_RATE) / DAYS_PER_YEAR)
# Historical VaR confidence. A Fraction, not 0.95: the rank ceil((1 - c) n)
# must be exact (in floats 1 - 0.95 is 0.05000000000000004, and
# ceil(0.05000000000000004 * 20) would be 2, not 1).
VAR_CONFIDENCE: Final[Fraction] = Fraction(95, 100)
# Two years kept (docs/rules.md#performance-figures). Calendar days of values
# ending at the latest day (that day and the 729 before it), as
# projections/daily_values.py keeps.
HISTORY_KEPT_DAYS: Final[int] = 730
# Volatility, VaR, Sharpe and Sortino need at least this many daily returns.
MIN_RETURNS_FOR_STATISTICS: Final[int] = 2

PERIODS: Final[tuple[str, ...]] = ("1m", "3m", "6m", "1y", "2y", "ytd", "all")
_PERIOD_MONTHS: Final[Mapping[str, int]] = {"1m": 1, "3m": 3, "6m": 6, "1y": 12, "2y": 24}
_ONE_DAY: Final[timedelta] = timedelta(days=1)

_Key = TypeVar("_Key", bound=Hashable)


def _require_int(name: str, number: object) -> None:
    if not isinstance(number, int) or isinstance(number, bool):
        raise TypeError(f"{name} must be an int of minor units, not {type(number).__name__}")


@dataclass(frozen=True, slots=True)
class DailyValue:
    """An account's closing value on a calendar day and that day's external flow.

    `flow_minor` is money in (+) or out (-) that is not performance:
    deposits, withdrawals, capital moved in or out by forks and merges.
    """

    day: date
    value_minor: int
    flow_minor: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.day, date) or isinstance(self.day, datetime):
            raise TypeError(f"day must be a date, not {type(self.day).__name__}")
        _require_int("value_minor", self.value_minor)
        _require_int("flow_minor", self.flow_minor)


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    """Figures of one series over its days; ratios are fractions (0.05 is 5 %).

    `return_days` counts the daily returns (days after the first whose
    previous value was positive); `net_flow_minor` sums the flows after the
    first day.
    """

    days: int
    start_day: date
    end_day: date
    start_value_minor: int
    end_value_minor: int
    net_flow_minor: int
    return_days: int
    total_return: float | None
    annualised_return: float | None
    volatility: float | None
    max_drawdown: float | None
    var_95: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    closed_trades: int
    win_rate: float | None
    profit_factor: float | None


def check_series(values: Sequence[DailyValue]) -> None:
    """Refuse anything but DailyValues on consecutive calendar days."""
    previous: date | None = None
    for value in values:
        if not isinstance(value, DailyValue):
            raise TypeError(f"expected DailyValue, not {type(value).__name__}")
        if previous is not None and value.day != previous + _ONE_DAY:
            if value.day <= previous:
                raise ValueError(
                    f"days must be strictly increasing: {value.day} follows {previous}"
                )
            raise ValueError(
                f"days must be consecutive: {previous} is followed by {value.day}; "
                "carry_forward fills the days between"
            )
        previous = value.day


def carry_forward(values: Sequence[DailyValue]) -> list[DailyValue]:
    """Fill missing calendar days: the last value stands, with no flow.

    The input must be strictly increasing in day; gaps are what this fills.
    """
    filled: list[DailyValue] = []
    for value in values:
        if not isinstance(value, DailyValue):
            raise TypeError(f"expected DailyValue, not {type(value).__name__}")
        if filled:
            last = filled[-1]
            if value.day <= last.day:
                raise ValueError(
                    f"days must be strictly increasing: {value.day} follows {last.day}"
                )
            filled.extend(
                DailyValue(last.day + timedelta(days=offset), last.value_minor)
                for offset in range(1, (value.day - last.day).days)
            )
        filled.append(value)
    return filled


def from_inception(values: Sequence[DailyValue]) -> list[DailyValue]:
    """An account's series from the day it opened, with its opening capital
    (that day's inflow) as the base of the day before, so the first day's
    return counts: r_1 = (V_1 - F_1) / F_1. A series whose first day has no
    inflow is returned as it is."""
    check_series(values)
    if not values or values[0].flow_minor <= 0:
        return list(values)
    first = values[0]
    return [
        DailyValue(first.day - _ONE_DAY, first.flow_minor),
        DailyValue(first.day, first.value_minor),
        *values[1:],
    ]


def daily_returns(values: Sequence[DailyValue]) -> list[tuple[date, float]]:
    """The time-weighted return of each day that has one (see module doc)."""
    check_series(values)
    returns: list[tuple[date, float]] = []
    for previous, current in pairwise(values):
        base = previous.value_minor
        if base > 0:
            gain = current.value_minor - base - current.flow_minor
            returns.append((current.day, gain / base))
    return returns


def time_weighted_index(values: Sequence[DailyValue]) -> list[tuple[date, float]]:
    """The growth of 1 invested on the first day, one point per day.

    Days without a return keep the index; once it reaches 0 (a daily return of
    -100 % or worse) it stays there.
    """
    by_day = dict(daily_returns(values))
    level = 1.0
    index: list[tuple[date, float]] = []
    for value in values:
        daily = by_day.get(value.day)
        if daily is not None:
            level = max(0.0, level * (1.0 + daily))
        index.append((value.day, level))
    return index


def drawdowns(values: Sequence[DailyValue]) -> list[tuple[date, float]]:
    """Each day's fall from the running peak of the index, a fraction in [0, 1]."""
    index = time_weighted_index(values)
    falls = _falls([level for _, level in index])
    return [(day, fall) for (day, _), fall in zip(index, falls, strict=True)]


def _falls(levels: Sequence[float]) -> list[float]:
    """1 - level / running peak; the index starts at 1, so the peak is positive."""
    peak = 0.0
    falls: list[float] = []
    for level in levels:
        peak = max(peak, level)
        falls.append(1.0 - level / peak)
    return falls


def combine_series(series: Iterable[Sequence[DailyValue]]) -> list[DailyValue]:
    """Sum accounts' values and flows per day: the capital-weighted aggregate.

    The aggregate spans the first day of any account to the last of any. An
    account starting later enters with its first value as an inflow; one
    ending earlier leaves with its last value as an outflow on the next day
    (see module doc). On the aggregate's first day the accounts' own flows are
    summed (that day's flow is unused, being the base). Empty series are
    skipped; without any values the result is empty.
    """
    accounts = [account for account in series if len(account) > 0]
    for account in accounts:
        check_series(account)
    if not accounts:
        return []
    first = min(account[0].day for account in accounts)
    last = max(account[-1].day for account in accounts)
    span = (last - first).days + 1
    totals = [0] * span
    flows = [0] * span
    for account in accounts:
        offset = (account[0].day - first).days
        for position, value in enumerate(account):
            at = offset + position
            totals[at] += value.value_minor
            entering = position == 0 and at > 0
            flows[at] += value.value_minor if entering else value.flow_minor
        after = offset + len(account)
        if after < span:
            flows[after] -= account[-1].value_minor
    return [DailyValue(first + timedelta(days=at), totals[at], flows[at]) for at in range(span)]


def _finite(number: float) -> float | None:
    return number if math.isfinite(number) else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return _finite(numerator / denominator)


def _annualised(growth: float, periods: int) -> float | None:
    if growth <= 0.0:
        return -1.0
    try:
        return _finite(math.expm1(math.log(growth) * DAYS_PER_YEAR / periods))
    except OverflowError:
        return None


def _historical_var(returns: Sequence[float]) -> float:
    ordered = sorted(returns)
    tail = (1 - VAR_CONFIDENCE) * len(ordered)
    rank = max(1, math.ceil(tail))
    return -ordered[rank - 1]


def _downside_deviation(returns: Sequence[float]) -> float:
    shortfalls = [min(0.0, daily - DAILY_RISK_FREE_RATE) ** 2 for daily in returns]
    return math.sqrt(math.fsum(shortfalls) / len(returns)) * math.sqrt(DAYS_PER_YEAR)


def _trade_figures(closed_pnls_minor: Sequence[int]) -> tuple[float | None, float | None]:
    for pnl in closed_pnls_minor:
        _require_int("a closed trade's P&L", pnl)
    if not closed_pnls_minor:
        return None, None
    wins = sum(1 for pnl in closed_pnls_minor if pnl > 0)
    gross_profit = sum(pnl for pnl in closed_pnls_minor if pnl > 0)
    gross_loss = -sum(pnl for pnl in closed_pnls_minor if pnl < 0)
    win_rate = float(Fraction(wins, len(closed_pnls_minor)))
    profit_factor = float(Fraction(gross_profit, gross_loss)) if gross_loss else None
    return win_rate, profit_factor


def metrics(
    values: Sequence[DailyValue], closed_pnls_minor: Sequence[int] = ()
) -> PerformanceMetrics:
    """The performance of one series of daily values (see module doc)."""
    check_series(values)
    if not values:
        raise ValueError("no daily values: performance needs at least one day")
    returns = [daily for _, daily in daily_returns(values)]
    count = len(returns)

    total_return = annualised = max_drawdown = None
    if count:
        levels = [level for _, level in time_weighted_index(values)]
        total_return = _finite(levels[-1] - 1.0)
        annualised = _annualised(levels[-1], count)
        max_drawdown = max(_falls(levels))

    volatility = var_95 = downside = None
    if count >= MIN_RETURNS_FOR_STATISTICS:
        volatility = _finite(statistics.stdev(returns) * math.sqrt(DAYS_PER_YEAR))
        var_95 = _historical_var(returns)
        downside = _finite(_downside_deviation(returns))

    excess = None if annualised is None else annualised - RISK_FREE_RATE
    win_rate, profit_factor = _trade_figures(closed_pnls_minor)
    return PerformanceMetrics(
        days=len(values),
        start_day=values[0].day,
        end_day=values[-1].day,
        start_value_minor=values[0].value_minor,
        end_value_minor=values[-1].value_minor,
        net_flow_minor=sum(value.flow_minor for value in values[1:]),
        return_days=count,
        total_return=total_return,
        annualised_return=annualised,
        volatility=volatility,
        max_drawdown=max_drawdown,
        var_95=var_95,
        sharpe=_ratio(excess, volatility),
        sortino=_ratio(excess, downside),
        calmar=_ratio(annualised, max_drawdown),
        closed_trades=len(closed_pnls_minor),
        win_rate=win_rate,
        profit_factor=profit_factor,
    )


def subtree_metrics(
    accounts: Mapping[_Key, tuple[Sequence[DailyValue], Sequence[int]]],
) -> PerformanceMetrics:
    """The capital-weighted performance of accounts together: their values and
    flows summed per day (`combine_series`), their closed trades pooled."""
    combined = combine_series(values for values, _ in accounts.values())
    pooled = [pnl for _, pnls in accounts.values() for pnl in pnls]
    return metrics(combined, pooled)


def period_start(end: date, period: str) -> date:
    """The base day of a period ending at `end`: its value is the period's
    opening capital, so the returns counted are those of the days after it.

    "1m" .. "2y": the same day of the month that many months before `end`
    (the month's last day if shorter: 1m before 31 March is 28 or 29
    February); "ytd": the last day of the previous year; "all": the earliest
    day kept. Every period is bounded by the history kept
    (`HISTORY_KEPT_DAYS` days ending at `end`), so "2y" is that bound.
    """
    if isinstance(end, datetime) or not isinstance(end, date):
        raise TypeError(f"end must be a date, not {type(end).__name__}")
    earliest_kept = end - timedelta(days=HISTORY_KEPT_DAYS - 1)
    if period == "all":
        return earliest_kept
    if period == "ytd":
        start = date(end.year, 1, 1) - _ONE_DAY
    elif period in _PERIOD_MONTHS:
        months = end.year * 12 + end.month - 1 - _PERIOD_MONTHS[period]
        year, month = divmod(months, 12)
        month += 1
        start = date(year, month, min(end.day, calendar.monthrange(year, month)[1]))
    else:
        raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
    return max(start, earliest_kept)


def in_period(values: Sequence[DailyValue], end: date, period: str) -> list[DailyValue]:
    """The values from `period_start(end, period)` to `end`, both included."""
    start = period_start(end, period)
    return [value for value in values if start <= value.day <= end]
