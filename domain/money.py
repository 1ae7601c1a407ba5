"""Money is an integer count of minor units in one ISO 4217 currency.

Amounts enter and leave the ledger as decimal strings ("1234.56"). A float
never becomes money: binary fractions cannot hold cents exactly.
"""

from __future__ import annotations

import re
from typing import Final

from domain.result_codes import LedgerRefusal, ResultCode

# ISO 4217 minor-unit exponents for the currencies the ledger accepts. Adding a
# currency is a deliberate act: its exponent decides what "1.00" means.
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    "AUD": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PLN": 2,
    "SEK": 2,
    "SGD": 2,
    "TND": 3,
    "TRY": 2,
    "USD": 2,
    "ZAR": 2,
}

# Every amount and every account total stays within a signed 64-bit integer,
# so that any consumer (SQL bigint, other languages) can hold it exactly.
AMOUNT_MINOR_MAX: Final[int] = 2**63 - 1

# Plain decimal notation only: ASCII digits, no sign, exponent, separator or
# space (and no trailing newline, which `$` would let through).
_DECIMAL_PATTERN: Final[re.Pattern[str]] = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
# Longer than any amount within AMOUNT_MINOR_MAX can be: refused unparsed.
_DECIMAL_LENGTH_MAX: Final[int] = 64


def currency_exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except (KeyError, TypeError):
        raise LedgerRefusal(
            ResultCode.UNKNOWN_CURRENCY,
            f"currency {currency!r} is not an accepted ISO 4217 code; "
            f"use one of {', '.join(sorted(CURRENCY_EXPONENTS))}",
            currency=str(currency),
        ) from None


def parse_amount(text: object, currency: str) -> int:
    """Decimal string in major units -> positive integer minor units."""
    exponent = currency_exponent(currency)
    if not isinstance(text, str):
        raise LedgerRefusal(
            ResultCode.INVALID_AMOUNT,
            'amount must be a decimal string such as "12.34", not a number',
            amount=repr(text),
        )
    if len(text) > _DECIMAL_LENGTH_MAX:
        raise _amount_too_large(text[:_DECIMAL_LENGTH_MAX] + "...", currency)
    match = _DECIMAL_PATTERN.fullmatch(text)
    if match is None:
        if text.strip().startswith("-"):
            raise LedgerRefusal(
                ResultCode.AMOUNT_MUST_BE_POSITIVE,
                "amount must be greater than zero",
                amount=text,
            )
        raise LedgerRefusal(
            ResultCode.INVALID_AMOUNT,
            'amount must be a plain decimal string such as "12.34"',
            amount=text,
        )
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        # Trailing zeros beyond the exponent would still be exact, but a
        # client sending them has misunderstood the currency: say so.
        raise LedgerRefusal(
            ResultCode.AMOUNT_HAS_TOO_MANY_DECIMALS,
            f"{currency} has {exponent} decimal places; {text!r} has {len(fraction)}",
            amount=text,
            currency=currency,
            decimals_max=exponent,
        )
    minor = int(whole) * 10**exponent + (int(fraction.ljust(exponent, "0")) if exponent else 0)
    if minor > AMOUNT_MINOR_MAX:
        raise _amount_too_large(text, currency)
    return require_valid_minor(minor)


def _amount_too_large(text: str, currency: str) -> LedgerRefusal:
    largest = format_amount(AMOUNT_MINOR_MAX, currency)
    return LedgerRefusal(
        ResultCode.AMOUNT_TOO_LARGE,
        f"amount must be at most {largest} {currency} (2^63 - 1 minor units)",
        amount=text,
        currency=currency,
        amount_max=largest,
        amount_max_minor_units=AMOUNT_MINOR_MAX,
    )


def require_valid_minor(minor: int) -> int:
    # bool is an int subclass and a float may look whole: neither is money.
    if type(minor) is not int:
        raise LedgerRefusal(
            ResultCode.INVALID_AMOUNT,
            "an amount in minor units must be an integer",
            amount_minor=repr(minor),
        )
    if minor <= 0:
        raise LedgerRefusal(
            ResultCode.AMOUNT_MUST_BE_POSITIVE,
            "amount must be greater than zero",
            amount_minor=minor,
        )
    if minor > AMOUNT_MINOR_MAX:
        raise LedgerRefusal(
            ResultCode.AMOUNT_TOO_LARGE,
            f"amount must be at most {AMOUNT_MINOR_MAX} minor units",
            amount_minor=minor,
        )
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Integer minor units -> decimal string with exactly the currency's decimals."""
    exponent = currency_exponent(currency)
    sign = "-" if minor < 0 else ""
    magnitude = abs(minor)
    if exponent == 0:
        return f"{sign}{magnitude}"
    whole, fraction = divmod(magnitude, 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}"


def describe_money(minor: int, currency: str) -> str:
    """Money as a message states it: "100.00 USD" (never a count of minor units)."""
    return f"{format_amount(minor, currency)} {currency}"
