from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import (
    AMOUNT_MINOR_MAX,
    CURRENCY_EXPONENTS,
    currency_exponent,
    format_amount,
    parse_amount,
)
from domain.result_codes import LedgerRefusal, ResultCode


def refusal_code(text: object, currency: str) -> ResultCode:
    with pytest.raises(LedgerRefusal) as refused:
        parse_amount(text, currency)
    return refused.value.code


# Parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.34", "USD", 1234),
        ("12.3", "USD", 1230),
        ("12", "USD", 1200),
        ("0.01", "USD", 1),
        ("007.50", "EUR", 750),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("0.001", "KWD", 1),
        ("2", "KWD", 2000),
    ],
)
def test_a_decimal_string_becomes_minor_units_of_its_currency(
    text: str, currency: str, minor: int
) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize("number", [12.34, 1.0, 0.1, 100, 1, True, Decimal("1.00"), None])
def test_a_number_that_is_not_a_string_is_refused_as_an_invalid_amount(number: object) -> None:
    assert refusal_code(number, "USD") is ResultCode.INVALID_AMOUNT


@pytest.mark.parametrize("text", ["0", "0.00", "0.0", "000", "00.00"])
def test_a_zero_amount_is_refused_as_not_positive(text: str) -> None:
    assert refusal_code(text, "USD") is ResultCode.AMOUNT_MUST_BE_POSITIVE


@pytest.mark.parametrize("text", ["0", "000"])
def test_a_zero_amount_in_a_currency_without_decimals_is_refused_as_not_positive(
    text: str,
) -> None:
    assert refusal_code(text, "JPY") is ResultCode.AMOUNT_MUST_BE_POSITIVE


@pytest.mark.parametrize("text", ["-1", "-0.01", "-12.34", "-0"])
def test_a_negative_amount_is_refused_as_not_positive(text: str) -> None:
    assert refusal_code(text, "USD") is ResultCode.AMOUNT_MUST_BE_POSITIVE


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1.001", "USD"),
        ("1.000", "USD"),
        ("0.005", "EUR"),
        ("1.0", "JPY"),
        ("1.5", "JPY"),
        ("100.00", "KRW"),
        ("1.0001", "KWD"),
        ("1.2345", "KWD"),
        ("1.0000", "BHD"),
    ],
)
def test_more_decimals_than_the_currency_has_are_refused(text: str, currency: str) -> None:
    assert refusal_code(text, currency) is ResultCode.AMOUNT_HAS_TOO_MANY_DECIMALS


def test_the_too_many_decimals_refusal_names_the_currencys_decimal_places() -> None:
    with pytest.raises(LedgerRefusal) as refused:
        parse_amount("1.2345", "KWD")
    assert refused.value.details["decimals_max"] == 3
    assert refused.value.details["currency"] == "KWD"


@pytest.mark.parametrize(
    "text",
    [
        " 1.00",
        "1.00 ",
        " 1.00 ",
        "1 000.00",
        "\t1.00",
        "1.00\n",
        "\n1.00",
    ],
)
def test_an_amount_with_spaces_around_or_inside_is_refused(text: str) -> None:
    assert refusal_code(text, "USD") is ResultCode.INVALID_AMOUNT


@pytest.mark.parametrize(
    "text",
    [
        "1e3",
        "1E3",
        "1.5e2",
        "1e-2",
        "+1.00",
        "1,000.00",
        "1_000",
        ".50",
        "5.",
        "",
        "abc",
        "1.2.3",
        "NaN",
        "Infinity",
        "0x10",
        "1/2",
    ],
)
def test_anything_but_plain_decimal_notation_is_refused_as_an_invalid_amount(text: str) -> None:
    assert refusal_code(text, "USD") is ResultCode.INVALID_AMOUNT


# Arabic-Indic digits, fullwidth digits: `\\d` and int() accept them, the API must not.
@pytest.mark.parametrize("text", ["\u0661\u0662\u0663", "\uff11\uff12", "12.\uff13\uff14"])
def test_digits_outside_ascii_are_refused_as_an_invalid_amount(text: str) -> None:
    assert refusal_code(text, "USD") is ResultCode.INVALID_AMOUNT


def test_the_largest_amount_that_fits_in_a_signed_64_bit_integer_is_accepted() -> None:
    assert parse_amount(str(AMOUNT_MINOR_MAX), "JPY") == AMOUNT_MINOR_MAX
    assert parse_amount(format_amount(AMOUNT_MINOR_MAX, "USD"), "USD") == AMOUNT_MINOR_MAX


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        (str(AMOUNT_MINOR_MAX + 1), "JPY"),
        ("92233720368547758.08", "USD"),
        ("9223372036854775.808", "KWD"),
        ("99999999999999999999", "USD"),
        ("9" * 30, "JPY"),
        ("9" * 30 + ".99", "USD"),
    ],
)
def test_an_amount_beyond_a_signed_64_bit_integer_is_refused_as_too_large(
    text: str, currency: str
) -> None:
    assert refusal_code(text, currency) is ResultCode.AMOUNT_TOO_LARGE


def test_an_amount_with_more_digits_than_any_currency_can_hold_is_refused_as_too_large() -> None:
    # A well-formed decimal that is simply huge is too large, not malformed.
    assert refusal_code("1" + "0" * 40, "USD") is ResultCode.AMOUNT_TOO_LARGE


@pytest.mark.parametrize("currency", ["XXX", "usd", "US", "USDD", "", "BTC"])
def test_an_unknown_currency_is_refused(currency: str) -> None:
    assert refusal_code("1.00", currency) is ResultCode.UNKNOWN_CURRENCY


@pytest.mark.parametrize("currency", [None, 840, ["USD"]])
def test_a_currency_that_is_not_a_string_is_refused_as_unknown(currency: object) -> None:
    with pytest.raises(LedgerRefusal) as refused:
        currency_exponent(currency)  # type: ignore[arg-type]
    assert refused.value.code is ResultCode.UNKNOWN_CURRENCY


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), ("ISK", 0)],
)
def test_each_currency_has_its_iso_4217_exponent(currency: str, exponent: int) -> None:
    assert currency_exponent(currency) == exponent


# Formatting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1234, "USD", "12.34"),
        (1, "USD", "0.01"),
        (100, "USD", "1.00"),
        (0, "USD", "0.00"),
        (-150, "USD", "-1.50"),
        (-1, "EUR", "-0.01"),
        (1500, "JPY", "1500"),
        (-7, "JPY", "-7"),
        (1, "KWD", "0.001"),
        (1234567, "KWD", "1234.567"),
        (AMOUNT_MINOR_MAX, "USD", "92233720368547758.07"),
    ],
)
def test_minor_units_are_formatted_with_exactly_the_currencys_decimals(
    minor: int, currency: str, text: str
) -> None:
    assert format_amount(minor, currency) == text


def test_formatting_in_an_unknown_currency_is_refused() -> None:
    with pytest.raises(LedgerRefusal) as refused:
        format_amount(100, "XXX")
    assert refused.value.code is ResultCode.UNKNOWN_CURRENCY


currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))


@given(minor=st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX), currency=currencies)
def test_parsing_a_formatted_amount_gives_back_the_same_minor_units(
    minor: int, currency: str
) -> None:
    assert parse_amount(format_amount(minor, currency), currency) == minor


@given(
    minor=st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX), currency=currencies
)
def test_a_formatted_amount_is_the_exact_decimal_value_of_its_minor_units(
    minor: int, currency: str
) -> None:
    exponent = currency_exponent(currency)
    text = format_amount(minor, currency)
    assert Decimal(text) == Decimal(minor).scaleb(-exponent)
    decimals = text.partition(".")[2]
    assert len(decimals) == exponent


@st.composite
def decimal_texts(draw: st.DrawFn) -> tuple[str, str]:
    currency = draw(currencies)
    exponent = currency_exponent(currency)
    whole = draw(st.text(alphabet="0123456789", min_size=1, max_size=15))
    fraction_length = draw(st.integers(min_value=0, max_value=exponent))
    fraction = draw(
        st.text(alphabet="0123456789", min_size=fraction_length, max_size=fraction_length)
    )
    text = f"{whole}.{fraction}" if fraction else whole
    return text, currency


@given(decimal_texts())
def test_formatting_a_parsed_amount_gives_its_canonical_decimal_string(
    case: tuple[str, str],
) -> None:
    text, currency = case
    exponent = currency_exponent(currency)
    value = Decimal(text)
    if value == 0:
        assert refusal_code(text, currency) is ResultCode.AMOUNT_MUST_BE_POSITIVE
        return
    canonical = f"{value.quantize(Decimal(1).scaleb(-exponent)):f}"
    assert format_amount(parse_amount(text, currency), currency) == canonical
