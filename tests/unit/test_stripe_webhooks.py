"""Stripe's payout webhooks: only a body Stripe signed, recently, is read."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from application.ports.payout_gateway import PayoutStatus
from interface.adapters.payouts.stripe_webhooks import (
    WEBHOOK_TOLERANCE_S,
    WebhookRejected,
    WebhookRejection,
    verify_payout_event,
)
from tests.support.fake_stripe import (
    payout_event,
    signature_header,
    signed_webhook,
    stripe_payout_object,
)

SECRET = "whsec_test_payouts"
CREATED = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def payout_paid_event() -> dict[str, Any]:
    payout = stripe_payout_object(
        payout_id="po_123",
        amount=12_345,
        currency="usd",
        metadata={"withdrawal_id": "wd-1"},
        created=CREATED,
        status="paid",
    )
    return payout_event("evt_1", "payout.paid", payout, created=CREATED + 60)


def rejection_of(payload: bytes, header: str | None) -> WebhookRejection:
    with pytest.raises(WebhookRejected) as rejected:
        verify_payout_event(payload, header, SECRET)
    return WebhookRejection(rejected.value.reason)


def test_a_signed_payout_event_is_read_with_its_payout() -> None:
    body, header = signed_webhook(payout_paid_event(), SECRET)

    event = verify_payout_event(body, header, SECRET)

    assert (event.event_id, event.event_type) == ("evt_1", "payout.paid")
    assert event.created_at == datetime.fromtimestamp(CREATED + 60, tz=UTC)
    assert event.payout is not None
    assert event.payout.payout_id == "po_123"
    assert (event.payout.amount_minor, event.payout.currency) == (12_345, "USD")
    assert event.payout.status is PayoutStatus.PAID
    assert dict(event.payout.metadata) == {"withdrawal_id": "wd-1"}
    assert event.payout.created_at == datetime.fromtimestamp(CREATED, tz=UTC)


def test_a_failed_payout_event_carries_the_failure() -> None:
    payout = stripe_payout_object(
        payout_id="po_123",
        amount=500,
        currency="eur",
        metadata={"withdrawal_id": "wd-1"},
        created=CREATED,
        status="failed",
        failure_code="account_closed",
        failure_message="The bank account has been closed.",
    )
    body, header = signed_webhook(payout_event("evt_2", "payout.failed", payout), SECRET)

    event = verify_payout_event(body, header, SECRET)

    assert event.payout is not None
    assert event.payout.status is PayoutStatus.FAILED
    assert event.payout.failure_code == "account_closed"
    assert event.payout.failure_message == "The bank account has been closed."


def test_an_event_about_something_else_has_no_payout() -> None:
    charge = {"id": "ch_1", "object": "charge", "amount": 100, "currency": "usd"}
    body, header = signed_webhook(payout_event("evt_3", "charge.succeeded", charge), SECRET)

    event = verify_payout_event(body, header, SECRET)

    assert (event.event_id, event.event_type, event.payout) == ("evt_3", "charge.succeeded", None)


def test_an_event_signed_with_another_secret_is_rejected() -> None:
    body, header = signed_webhook(payout_paid_event(), "whsec_forged")

    assert rejection_of(body, header) is WebhookRejection.SIGNATURE_INVALID


def test_an_altered_body_is_rejected() -> None:
    body, header = signed_webhook(payout_paid_event(), SECRET)
    altered = body.replace(b'"amount": 12345', b'"amount": 99999')
    assert altered != body

    assert rejection_of(altered, header) is WebhookRejection.SIGNATURE_INVALID


def test_an_event_signed_longer_ago_than_the_tolerance_is_rejected() -> None:
    signed_at = int(time.time()) - WEBHOOK_TOLERANCE_S - 60
    body, header = signed_webhook(payout_paid_event(), SECRET, timestamp=signed_at)

    assert rejection_of(body, header) is WebhookRejection.SIGNATURE_INVALID


def test_an_event_signed_within_the_tolerance_is_read() -> None:
    signed_at = int(time.time()) - WEBHOOK_TOLERANCE_S // 2
    body, header = signed_webhook(payout_paid_event(), SECRET, timestamp=signed_at)

    assert verify_payout_event(body, header, SECRET).event_id == "evt_1"


@pytest.mark.parametrize("header", [None, ""])
def test_a_request_without_a_signature_is_rejected(header: str | None) -> None:
    body, _ = signed_webhook(payout_paid_event(), SECRET)

    assert rejection_of(body, header) is WebhookRejection.SIGNATURE_MISSING


@pytest.mark.parametrize("header", ["nonsense", "t=notatime,v1=abc", "t=1700000000"])
def test_a_header_that_is_not_a_stripe_signature_is_rejected(header: str) -> None:
    body, _ = signed_webhook(payout_paid_event(), SECRET)

    assert rejection_of(body, header) is WebhookRejection.SIGNATURE_INVALID


def test_a_signed_body_that_is_not_json_is_rejected_as_invalid() -> None:
    body = b'{"id": "evt_1", "object": "event",'

    assert rejection_of(body, signature_header(body, SECRET)) is WebhookRejection.PAYLOAD_INVALID


def test_a_body_that_is_not_utf8_is_rejected_as_invalid() -> None:
    body = b"\xff\xfe{}"

    assert rejection_of(body, signature_header(body, SECRET)) is WebhookRejection.PAYLOAD_INVALID


@pytest.mark.parametrize(
    "event",
    [
        ["not", "an", "event"],
        {"object": "event", "type": "payout.paid", "created": CREATED, "data": {}},
        payout_event("evt_1", "payout.paid", {"id": "po_1", "object": "payout"}),
        payout_event(
            "evt_1",
            "payout.paid",
            stripe_payout_object("po_1", 100, "usd", {}, CREATED, status="teleported"),
        ),
    ],
    ids=["not-an-object", "no-id", "payout-without-fields", "unknown-status"],
)
def test_a_signed_event_we_cannot_read_is_rejected_as_invalid(event: Any) -> None:
    body = json.dumps(event).encode()

    assert rejection_of(body, signature_header(body, SECRET)) is WebhookRejection.PAYLOAD_INVALID


def test_an_empty_secret_is_a_configuration_error_not_a_rejection() -> None:
    body, header = signed_webhook(payout_paid_event(), SECRET)

    with pytest.raises(ValueError, match="secret"):
        verify_payout_event(body, header, "  ")
