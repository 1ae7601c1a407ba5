"""Stripe's webhooks about payouts: verify the signature, then read the event.

The SDK checks the `Stripe-Signature` header (an HMAC-SHA256 of
"{timestamp}.{body}" under the endpoint's secret, and a timestamp no older
than the tolerance). The body is then parsed here as plain JSON rather than by
`stripe.Webhook.construct_event`, which builds an SDK object bound to the
global API key: reading the event needs no key, and the payout inside goes
through the same mapping as the gateway's answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import stripe

from application.ports.payout_gateway import Payout
from interface.adapters.payouts.stripe_objects import (
    MalformedStripeObject,
    payout_from_stripe,
    time_from_stripe,
)

# Stripe's own default: long enough for its delivery delays, short enough that
# a captured request cannot be replayed much later.
WEBHOOK_TOLERANCE_S: Final[int] = 300
PAYOUT_EVENT_PREFIX: Final[str] = "payout."


class WebhookRejection(StrEnum):
    SIGNATURE_MISSING = "signature_missing"
    # Forged, altered, signed with another secret, or older than the tolerance.
    SIGNATURE_INVALID = "signature_invalid"
    # Signed, but not an event we can read.
    PAYLOAD_INVALID = "payload_invalid"


class WebhookRejected(Exception):
    """The request is not a webhook from Stripe we can trust and read; answer 400."""

    def __init__(self, reason: WebhookRejection, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PayoutWebhookEvent:
    event_id: str
    event_type: str
    created_at: datetime
    # Set for "payout.*" events only.
    payout: Payout | None


def verify_payout_event(
    payload: bytes,
    signature_header: str | None,
    secret: str,
    tolerance_s: int = WEBHOOK_TOLERANCE_S,
) -> PayoutWebhookEvent:
    """`payload` is the request body exactly as received: any re-encoding breaks the signature."""
    # An empty secret is a deployment mistake, not a bad request.
    if not secret.strip():
        raise ValueError("the webhook signing secret is empty")
    # The SDK reads a tolerance of 0 as "any age": never what is meant here.
    if tolerance_s <= 0:
        raise ValueError("the webhook tolerance is positive")
    if not signature_header:
        raise WebhookRejected(WebhookRejection.SIGNATURE_MISSING)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WebhookRejected(WebhookRejection.PAYLOAD_INVALID, "not UTF-8") from error
    try:
        stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance_s)
    except stripe.SignatureVerificationError as error:
        raise WebhookRejected(WebhookRejection.SIGNATURE_INVALID, str(error)) from error
    try:
        return _event_from_json(json.loads(text))
    except (ValueError, MalformedStripeObject) as error:
        raise WebhookRejected(WebhookRejection.PAYLOAD_INVALID, str(error)) from error


def _event_from_json(event: Any) -> PayoutWebhookEvent:
    if not isinstance(event, dict) or event.get("object") != "event":
        raise MalformedStripeObject("not a Stripe event")
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedStripeObject("an event has an id")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedStripeObject("an event has a type")
    if type(created) is not int:
        raise MalformedStripeObject("an event has a creation time")
    payout = None
    if event_type.startswith(PAYOUT_EVENT_PREFIX):
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
            raise MalformedStripeObject("a payout event carries its payout")
        payout = payout_from_stripe(data["object"])
    return PayoutWebhookEvent(
        event_id=event_id,
        event_type=event_type,
        created_at=time_from_stripe(created),
        payout=payout,
    )
