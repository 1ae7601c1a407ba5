"""Reading Stripe payout objects, one mapping for API answers and webhook events alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from application.ports.payout_gateway import Payout, PayoutStatus


class MalformedStripeObject(ValueError):
    """A Stripe object that lacks a field we rely on, or holds the wrong type."""


def payout_from_stripe(values: Mapping[str, Any]) -> Payout:
    """`values` is a payout as JSON gives it (`StripeObject.to_dict()` for an SDK answer)."""
    if values.get("object") != "payout":
        raise MalformedStripeObject(f"not a payout: object is {values.get('object')!r}")
    status = _string(values, "status")
    try:
        payout_status = PayoutStatus(status)
    except ValueError:
        raise MalformedStripeObject(f"unknown payout status {status!r}") from None
    metadata = values.get("metadata") or {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise MalformedStripeObject("payout metadata is not a map of strings")
    try:
        return Payout(
            payout_id=_string(values, "id"),
            amount_minor=_integer(values, "amount"),
            currency=_string(values, "currency").upper(),
            status=payout_status,
            metadata=metadata,
            created_at=time_from_stripe(_integer(values, "created")),
            failure_code=_optional_string(values, "failure_code"),
            failure_message=_optional_string(values, "failure_message"),
        )
    except ValueError as error:
        raise MalformedStripeObject(str(error)) from error


def time_from_stripe(unix_seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(unix_seconds, tz=UTC)
    # A time beyond what datetime holds overflows rather than raising ValueError.
    except (OverflowError, OSError) as error:
        raise MalformedStripeObject(f"time out of range: {unix_seconds}") from error


def _string(values: Mapping[str, Any], field: str) -> str:
    value = values.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedStripeObject(f"{field} is not a non-empty string: {value!r}")
    return value


def _optional_string(values: Mapping[str, Any], field: str) -> str | None:
    value = values.get(field)
    if value is not None and not isinstance(value, str):
        raise MalformedStripeObject(f"{field} is not a string: {value!r}")
    return value


def _integer(values: Mapping[str, Any], field: str) -> int:
    value = values.get(field)
    # bool is an int to Python, never an amount or a time.
    if type(value) is not int:
        raise MalformedStripeObject(f"{field} is not an integer: {value!r}")
    return value
