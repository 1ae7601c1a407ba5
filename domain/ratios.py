"""Ratios as clients and people read them: decimals with a stated precision.

The domain computes every ratio exactly (`fractions.Fraction`); only what is
rendered is cut. A ratio is written with at most `RATIO_DECIMALS` decimal
places, cut toward zero (never rounded up: a value just under a limit never
reads as at it; the rule's band says which side it is on), trailing zeros
dropped: 1/5 is "0.2", 1/100120 is "0.000009" (docs/api.md#money). Never the exact fraction
("1/100120"), which no client can compare or display without parsing it.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import Final

# Six places, a millionth: every limit the rules state (whole or half
# percents) is exact in it, and as the guards' drawdown.
RATIO_DECIMALS: Final[int] = 6
_QUANTUM: Final = Decimal(1).scaleb(-RATIO_DECIMALS)
# Percentages keep the ratio's precision: 2 fewer places.
_PERCENT_DECIMALS: Final[int] = RATIO_DECIMALS - 2


def _rounded(value: Fraction, quantum: Decimal) -> str:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    text = format(exact.quantize(quantum, rounding=ROUND_DOWN), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def format_ratio(ratio: Fraction) -> str:
    """1/5 -> "0.2"; at most RATIO_DECIMALS places, cut toward zero."""
    return _rounded(ratio, _QUANTUM)


def format_percent(ratio: Fraction) -> str:
    """1/20 -> "5%"; the same precision as format_ratio."""
    return _rounded(ratio * 100, Decimal(1).scaleb(-_PERCENT_DECIMALS)) + "%"
