"""Closure emails as a subject, an HTML body and a plain-text body.

The bodies come from the Jinja templates beside this module. HTML templates
(`.html.j2`) are autoescaped, so a name such as `<script>` arrives as text;
plain-text templates (`.txt.j2`) are not, so the same name reads as typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from application.ports.closure_mailer import ClosureEmail, ClosureEmailKind
from domain.money import format_amount

TEMPLATES_DIR: Final[Path] = Path(__file__).resolve().parent / "templates"
# Shown before the amount; any other currency is written after it ("1,000 JPY").
CURRENCY_SYMBOLS: Final[dict[str, str]] = {"USD": "$", "EUR": "€", "GBP": "£"}

_SUBJECTS: Final[dict[ClosureEmailKind, str]] = {
    ClosureEmailKind.STARTED: "We have started closing your account ({confirmation_number})",
    ClosureEmailKind.COMPLETED: "Your account is closed ({confirmation_number})",
}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def render_closure_email(email: ClosureEmail) -> RenderedEmail:
    subject = _SUBJECTS[email.kind].format(confirmation_number=email.confirmation_number)
    context = {
        "subject": subject,
        "name": email.recipient_name,
        "account_id": str(email.funded_account_id),
        "confirmation_number": email.confirmation_number,
        "date": format_date(email.at),
        "amount_paid": (
            None
            if email.amount_paid_minor is None
            else format_money(email.amount_paid_minor, email.currency)
        ),
    }
    environment = _environment()
    return RenderedEmail(
        subject=subject,
        html=environment.get_template(f"{email.kind.value}.html.j2").render(context),
        text=environment.get_template(f"{email.kind.value}.txt.j2").render(context),
    )


def format_money(amount_minor: int, currency: str) -> str:
    """Minor units -> "$50,000.00": thousands grouped, the currency's decimals."""
    plain = format_amount(amount_minor, currency)
    sign, digits = ("-", plain[1:]) if plain.startswith("-") else ("", plain)
    whole, point, fraction = digits.partition(".")
    grouped = f"{int(whole):,}{point}{fraction}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{grouped}" if symbol else f"{sign}{grouped} {currency}"


def format_date(at: datetime) -> str:
    """ "30 November 2025 at 14:05 UTC", whatever zone `at` was given in."""
    utc = at.astimezone(UTC)
    return f"{utc.day} {utc:%B %Y} at {utc:%H:%M} UTC"


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
        ),
        # A missing value is a bug in this module, not an empty line in an email.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
