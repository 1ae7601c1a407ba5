"""The integration events view writes its ids, account arrays and amounts
as text made its own faster way: the same text `integration_event_id`, a
uuid[] of the ids and `format_amount` make."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import CURRENCY_EXPONENTS, format_amount
from domain.result_codes import LedgerRefusal
from projections.integration_catalogue import EVENT_TYPES
from projections.integration_events import (
    amount_text,
    integration_event_id,
    integration_event_id_text,
    uuid_array_text,
)


@given(
    position=st.integers(min_value=1, max_value=2**63 - 1),
    ordinal=st.integers(min_value=0, max_value=2**15 - 1),
    # Any text UTF-8 can hold (uuid5 encodes the name): no lone surrogates.
    event_type=st.sampled_from(sorted(EVENT_TYPES))
    | st.text(st.characters(exclude_categories=["Cs"])),
)
def test_an_event_id_as_text_is_the_uuid5_id(position: int, ordinal: int, event_type: str) -> None:
    assert integration_event_id_text(position, ordinal, event_type) == str(
        integration_event_id(position, ordinal, event_type)
    )


def test_an_id_array_as_text_is_postgresql_array_text() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    assert uuid_array_text([first, second]) == f"{{{first},{second}}}"
    assert uuid_array_text([]) == "{}"


@given(
    minor=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
)
def test_an_amount_as_text_is_format_amount(minor: int, currency: str) -> None:
    assert amount_text(minor, currency) == format_amount(minor, currency)


def test_an_amount_in_an_unknown_currency_is_refused_as_format_amount_refuses() -> None:
    with pytest.raises(LedgerRefusal):
        amount_text(100, "XXX-NOT-A-CURRENCY")
