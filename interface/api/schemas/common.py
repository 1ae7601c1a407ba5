"""Types and bodies every resource's schemas share: the request base that
refuses unknown fields, amounts, currencies and idempotency keys in requests,
money and ratios (decimals) in responses, and the error body of every route."""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, Strict

from domain.identifiers import IDEMPOTENCY_KEY_LENGTH_MAX
from domain.money import format_amount
from domain.ratios import RATIO_DECIMALS, format_ratio
from domain.tiers import TIER_CURRENCY

# A decimal string in major units, e.g. "1234.56"; JSON numbers are refused.
Amount = Annotated[
    str,
    Strict(),
    Field(
        min_length=1,
        max_length=64,
        # Documented, not enforced here: the domain refuses with the precise
        # code (amount_must_be_positive for "-1", too many decimals, ...).
        json_schema_extra={"pattern": r"^[0-9]+(\.[0-9]+)?$"},
        examples=["1234.56"],
        description="Decimal string in major units; never a JSON number.",
    ),
]
Currency = Annotated[
    str,
    Strict(),
    Field(pattern=r"^[A-Z]{3}$", examples=["USD"], description="ISO 4217 code"),
]
# Free text a person writes (a reason, a name): no control characters anywhere
# (a NUL cannot be stored in a PostgreSQL text column), no outer whitespace.
PLAIN_TEXT_PATTERN: Final[str] = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"

IdempotencyKey = Annotated[
    str,
    Strict(),
    Field(
        min_length=1,
        max_length=IDEMPOTENCY_KEY_LENGTH_MAX,
        description="The client's key for this request; the same key finds the same result.",
    ),
]


class RequestModel(BaseModel):
    """Unknown fields are refused, so a client can never set what it should not.
    Strings, booleans and numbers are strict (no "1" for true, no 1 for "1")."""

    model_config = ConfigDict(extra="forbid")


# Responses ---------------------------------------------------------------

RATIO_DESCRIPTION: Final[str] = (
    f"A ratio as a decimal string with at most {RATIO_DECIMALS} decimal places, cut "
    '(never rounded up), trailing zeros dropped: "0.2" is 20 %, "1" is all.'
)
Ratio = Annotated[
    str,
    Field(
        pattern=rf"^-?[0-9]+(\.[0-9]{{1,{RATIO_DECIMALS}}})?$",
        examples=["0.2"],
        description=RATIO_DESCRIPTION,
    ),
]
Money = Annotated[
    str,
    Field(
        examples=["10000.00"],
        description="Decimal string in major units of `currency`; never a JSON number.",
    ),
]


# Money in the tier currency: every funded account's.
def money(minor: int) -> str:
    return format_amount(minor, TIER_CURRENCY)


def ratio_text(ratio: Fraction) -> str:
    return format_ratio(ratio)


class ErrorDetail(BaseModel):
    """As interface/api/errors.py builds it; each operation's document lists
    its own codes (interface/api/openapi_errors.py)."""

    code: str = Field(description="Stable; see `doc_url`.")
    message: str = Field(description="What went wrong and what to fix, for a person.")
    field: str | None = Field(
        description="The input at fault (`amount`, `transfers.3.metadata.note`, `body`, "
        "`query.limit`); null when the error is not about one."
    )
    details: dict[str, Any] = Field(description="The code's own facts.")
    request_id: str | None = Field(description="As the X-Request-ID header; quote it.")
    doc_url: str = Field(description="The code's row in the error table: docs/api.md#<code>.")


class ErrorResponse(BaseModel):
    error: ErrorDetail
