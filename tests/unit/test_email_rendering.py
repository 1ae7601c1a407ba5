"""Closure emails rendered: subject, HTML and text, without sending anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.ports.closure_mailer import (
    MESSAGE_ID_PATTERN,
    ClosureEmail,
    ClosureEmailKind,
    closure_email_message_id,
)
from interface.adapters.email.rendering import format_date, format_money, render_closure_email

ACCOUNT_ID = UUID("0b9f6a52-3c1e-4d7a-9f58-2e4c1d7b8a90")
STARTED_AT = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)


def email(**changes: Any) -> ClosureEmail:
    fields: dict[str, Any] = {
        "message_id": "closure-1.closure_started",
        "kind": ClosureEmailKind.STARTED,
        "recipient_name": "Ada Lovelace",
        "recipient_address": "ada@example.org",
        "funded_account_id": ACCOUNT_ID,
        "confirmation_number": "CLA-AB12C-DE34F",
        "at": STARTED_AT,
    }
    fields.update(changes)
    return ClosureEmail(**fields)


def completed(amount_paid_minor: int, **changes: Any) -> ClosureEmail:
    return email(
        kind=ClosureEmailKind.COMPLETED,
        message_id="closure-1.closure_completed",
        amount_paid_minor=amount_paid_minor,
        **changes,
    )


def test_the_started_email_names_the_person_the_account_and_the_confirmation_number() -> None:
    rendered = render_closure_email(email())

    assert rendered.subject == "We have started closing your account (CLA-AB12C-DE34F)"
    for body in (rendered.html, rendered.text):
        assert "Hello Ada Lovelace," in body
        assert str(ACCOUNT_ID) in body
        assert "CLA-AB12C-DE34F" in body
        assert "3 November 2025 at 09:30 UTC" in body


def test_the_completed_email_shows_the_total_paid_out() -> None:
    rendered = render_closure_email(completed(18_000_000))

    assert rendered.subject == "Your account is closed (CLA-AB12C-DE34F)"
    assert "$180,000.00" in rendered.html
    assert "$180,000.00" in rendered.text
    assert "Hello Ada Lovelace," in rendered.text


def test_the_started_email_shows_no_amount() -> None:
    rendered = render_closure_email(email())

    assert "$" not in rendered.html
    assert "$" not in rendered.text


def test_the_html_is_a_whole_document_styled_inline() -> None:
    for rendered in (render_closure_email(email()), render_closure_email(completed(1))):
        assert rendered.html.startswith("<!DOCTYPE html>")
        assert rendered.html.rstrip().endswith("</html>")
        # Many email clients drop <style> blocks.
        assert "<style" not in rendered.html
        assert 'style="' in rendered.html


def test_markup_in_a_name_is_escaped_in_the_html_and_kept_in_the_text() -> None:
    rendered = render_closure_email(email(recipient_name='<script>alert("x")</script>'))

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in rendered.html
    assert 'Hello <script>alert("x")</script>,' in rendered.text


@pytest.mark.parametrize(
    ("amount_minor", "currency", "shown"),
    [
        (5_000_000, "USD", "$50,000.00"),
        (18_000_000, "USD", "$180,000.00"),
        (0, "USD", "$0.00"),
        (7, "USD", "$0.07"),
        (123_456, "EUR", "€1,234.56"),
        (1_234_567, "JPY", "1,234,567 JPY"),
        (1_234_567, "KWD", "1,234.567 KWD"),
    ],
)
def test_money_is_shown_grouped_with_the_currencys_decimals(
    amount_minor: int, currency: str, shown: str
) -> None:
    assert format_money(amount_minor, currency) == shown


def test_the_date_is_shown_in_utc() -> None:
    new_york = timezone(timedelta(hours=-5))

    assert format_date(datetime(2025, 11, 3, 4, 30, tzinfo=new_york)) == (
        "3 November 2025 at 09:30 UTC"
    )


def test_the_message_id_of_a_closure_email_is_one_per_closure_and_kind() -> None:
    closure_id = uuid4()
    started = closure_email_message_id(closure_id, ClosureEmailKind.STARTED)
    completed_id = closure_email_message_id(closure_id, ClosureEmailKind.COMPLETED)

    assert started == closure_email_message_id(closure_id, ClosureEmailKind.STARTED)
    assert started != completed_id
    assert MESSAGE_ID_PATTERN.fullmatch(started)
    assert MESSAGE_ID_PATTERN.fullmatch(completed_id)


@pytest.mark.parametrize(
    "changes",
    [
        {"message_id": "../../etc/passwd"},
        {"message_id": ""},
        {"confirmation_number": "CLA-123"},
        {"recipient_name": "Ada\r\nBcc: everyone@example.org"},
        {"recipient_name": "  "},
        {"recipient_address": "ada@example.org, eve@example.org"},
        {"recipient_address": "Ada <ada@example.org>"},
        {"recipient_address": "ada"},
        {"at": datetime(2025, 11, 3, 9, 30)},  # naive
        {"at": datetime(2025, 11, 3, 9, 30, tzinfo=timezone(timedelta(hours=1)))},
        {"amount_paid_minor": 100},
        {"currency": "XXX"},
    ],
)
def test_an_email_that_could_not_be_sent_as_given_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        email(**changes)


@pytest.mark.parametrize("amount", [None, -1])
def test_a_completion_email_needs_the_amount_paid(amount: int | None) -> None:
    with pytest.raises(ValueError):
        email(
            kind=ClosureEmailKind.COMPLETED,
            message_id="closure-1.closure_completed",
            amount_paid_minor=amount,
        )
