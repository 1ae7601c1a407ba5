"""The Stripe payout gateway through the real SDK, against a local fake of Stripe's API."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from application.ports.payout_gateway import (
    IDEMPOTENCY_KEY_REUSED,
    PAYOUT_NOT_FOUND,
    PayoutGateway,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    PayoutUnavailable,
)
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from tests.support.fake_stripe import FakeStripe

# Short, so that the timeout test costs a second and a dead fake fails fast.
CLIENT_TIMEOUT_S = 1.0
# Well past the client's timeout; closing the fake cuts it short.
SERVER_DELAY_S = 10.0
FIRST_CREATED = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def payout_request(
    withdrawal_id: str = "wd-1", amount_minor: int = 12_345, currency: str = "USD"
) -> PayoutRequest:
    return PayoutRequest(
        idempotency_key=f"withdrawal-{withdrawal_id}",
        amount_minor=amount_minor,
        currency=currency,
        metadata={"withdrawal_id": withdrawal_id},
        description=f"Withdrawal {withdrawal_id}",
    )


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    # One second apart per payout, so that creation times are known to the test.
    seconds = itertools.count(FIRST_CREATED)
    with FakeStripe(now=lambda: next(seconds)) as fake:
        yield fake


def gateway_on(base_url: str, api_key: str, list_page_size: int = 100) -> StripePayoutGateway:
    return StripePayoutGateway(
        api_key, api_base=base_url, timeout_s=CLIENT_TIMEOUT_S, list_page_size=list_page_size
    )


@pytest.fixture
def gateway(fake_stripe: FakeStripe) -> Iterator[StripePayoutGateway]:
    stripe_gateway = gateway_on(fake_stripe.base_url, fake_stripe.api_key)
    yield stripe_gateway
    stripe_gateway.close()


def payout_posts(fake_stripe: FakeStripe) -> list[str | None]:
    """The idempotency key of each payout create the fake received."""
    return [
        request.idempotency_key
        for request in fake_stripe.requests
        if request.method == "POST" and request.path == "/v1/payouts"
    ]


# Creating ----------------------------------------------------------------------------


def test_a_payout_is_sent_in_cents_with_a_lower_case_currency_under_the_request_key(
    fake_stripe: FakeStripe, gateway: StripePayoutGateway
) -> None:
    request = payout_request("wd-1", amount_minor=12_345, currency="USD")

    payout = gateway.create_payout(request)

    sent = fake_stripe.requests[-1]
    assert sent.form == {
        "amount": "12345",
        "currency": "usd",
        "metadata[withdrawal_id]": "wd-1",
        "description": "Withdrawal wd-1",
    }
    assert sent.idempotency_key == "withdrawal-wd-1"
    assert payout.payout_id == fake_stripe.payouts[0]["id"]
    assert payout.payout_id.startswith("po_")
    assert (payout.amount_minor, payout.currency) == (12_345, "USD")
    assert payout.status is PayoutStatus.PENDING
    assert dict(payout.metadata) == {"withdrawal_id": "wd-1"}
    assert payout.created_at == datetime.fromtimestamp(FIRST_CREATED, tz=UTC)
    assert (payout.failure_code, payout.failure_message) == (None, None)


def test_the_stripe_gateway_is_a_payout_gateway_named_stripe(
    gateway: StripePayoutGateway,
) -> None:
    port: PayoutGateway = gateway
    assert port.name == "stripe"


def test_the_same_request_twice_makes_one_payout(
    fake_stripe: FakeStripe, gateway: StripePayoutGateway
) -> None:
    first = gateway.create_payout(payout_request("wd-1"))
    again = gateway.create_payout(payout_request("wd-1"))

    assert again == first
    assert len(fake_stripe.payouts) == 1
    assert payout_posts(fake_stripe) == ["withdrawal-wd-1", "withdrawal-wd-1"]


def test_the_same_key_with_another_amount_is_rejected_as_reused(
    fake_stripe: FakeStripe, gateway: StripePayoutGateway
) -> None:
    gateway.create_payout(payout_request("wd-1", amount_minor=1_000))

    with pytest.raises(PayoutRejected) as rejected:
        gateway.create_payout(payout_request("wd-1", amount_minor=2_000))

    assert rejected.value.code == IDEMPOTENCY_KEY_REUSED
    assert [payout["amount"] for payout in fake_stripe.payouts] == [1_000]


@pytest.mark.parametrize(
    ("status_code", "error_type", "code"),
    [
        (400, "invalid_request_error", "balance_insufficient"),
        (400, "invalid_request_error", "amount_too_large"),
        (402, "card_error", "card_declined"),
        (404, "invalid_request_error", "resource_missing"),
    ],
)
def test_a_refusal_from_stripe_is_a_rejection_with_stripes_code(
    fake_stripe: FakeStripe,
    gateway: StripePayoutGateway,
    status_code: int,
    error_type: str,
    code: str,
) -> None:
    fake_stripe.fail_next_create(status_code, error_type, code, "Stripe says no.")

    with pytest.raises(PayoutRejected) as rejected:
        gateway.create_payout(payout_request())

    assert (rejected.value.code, rejected.value.detail) == (code, "Stripe says no.")
    assert fake_stripe.payouts == []


def test_a_wrong_api_key_is_unavailable_not_a_refusal_of_the_payout(
    fake_stripe: FakeStripe,
) -> None:
    """Our key is wrong, not the withdrawal: it is retried (and flagged for a
    person when retries run out), never failed and given back."""
    gateway = gateway_on(fake_stripe.base_url, "sk_test_someone_else")

    with pytest.raises(PayoutUnavailable) as unavailable:
        gateway.create_payout(payout_request())

    assert "API key" in str(unavailable.value)
    assert fake_stripe.payouts == []


@pytest.mark.parametrize(
    ("status_code", "error_type", "code"),
    [
        (500, "api_error", None),
        (503, "api_error", None),
        (429, "invalid_request_error", "rate_limit"),
        (429, "invalid_request_error", "lock_timeout"),
        # Another request under the same key is still in flight.
        (409, "idempotency_error", None),
    ],
)
def test_a_transient_failure_is_unavailable_and_the_retry_with_the_same_key_pays(
    fake_stripe: FakeStripe,
    gateway: StripePayoutGateway,
    status_code: int,
    error_type: str,
    code: str | None,
) -> None:
    fake_stripe.fail_next_create(status_code, error_type, code, "Try again later.")

    with pytest.raises(PayoutUnavailable):
        gateway.create_payout(payout_request("wd-1"))
    # The SDK did not retry behind our back: the worker owns retries.
    assert payout_posts(fake_stripe) == ["withdrawal-wd-1"]
    assert fake_stripe.payouts == []

    payout = gateway.create_payout(payout_request("wd-1"))

    assert [stored["id"] for stored in fake_stripe.payouts] == [payout.payout_id]


def test_a_server_error_stripe_remembers_is_replayed_to_the_retry_with_the_same_key(
    fake_stripe: FakeStripe, gateway: StripePayoutGateway
) -> None:
    """Stripe saves a 500 under its key, so retrying it proves nothing either way."""
    fake_stripe.fail_next_create(500, "api_error", None, "Internal error.", remembered=True)

    for _ in range(2):
        with pytest.raises(PayoutUnavailable):
            gateway.create_payout(payout_request("wd-1"))

    assert len(payout_posts(fake_stripe)) == 2
    assert fake_stripe.payouts == []


def unused_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_refused_connection_is_unavailable() -> None:
    gateway = gateway_on(f"http://127.0.0.1:{unused_local_port()}", "sk_test_nobody_listens")

    with pytest.raises(PayoutUnavailable):
        gateway.create_payout(payout_request())


def test_a_timeout_after_stripe_created_the_payout_is_unavailable_and_the_retry_returns_it(
    fake_stripe: FakeStripe, gateway: StripePayoutGateway
) -> None:
    fake_stripe.delay_after_create_next(SERVER_DELAY_S)

    with pytest.raises(PayoutUnavailable):
        gateway.create_payout(payout_request("wd-1"))
    [created] = fake_stripe.payouts

    payout = gateway.create_payout(payout_request("wd-1"))

    assert payout.payout_id == created["id"]
    assert len(fake_stripe.payouts) == 1
    assert payout_posts(fake_stripe) == ["withdrawal-wd-1", "withdrawal-wd-1"]


# Reading ---------------------------------------------------------------------------


def test_retrieving_a_payout_reads_its_current_status_and_failure(
    fake_stripe: FakeStripe, gateway: StripePayoutGateway
) -> None:
    created = gateway.create_payout(payout_request())
    fake_stripe.set_status(
        created.payout_id, "failed", "account_closed", "The bank account has been closed."
    )

    payout = gateway.retrieve_payout(created.payout_id)

    assert payout.status is PayoutStatus.FAILED
    assert payout.failure_code == "account_closed"
    assert payout.failure_message == "The bank account has been closed."
    assert (payout.amount_minor, payout.currency, payout.created_at) == (
        created.amount_minor,
        created.currency,
        created.created_at,
    )


def test_retrieving_an_unknown_payout_is_rejected_as_not_found(
    gateway: StripePayoutGateway,
) -> None:
    with pytest.raises(PayoutRejected) as rejected:
        gateway.retrieve_payout("po_unknown")

    assert rejected.value.code == PAYOUT_NOT_FOUND


def test_listing_walks_every_page_newest_first(fake_stripe: FakeStripe) -> None:
    gateway = gateway_on(fake_stripe.base_url, fake_stripe.api_key, list_page_size=2)
    created = [gateway.create_payout(payout_request(f"wd-{number}")) for number in range(5)]

    listed = list(gateway.list_payouts())

    assert [payout.payout_id for payout in listed] == [
        payout.payout_id for payout in reversed(created)
    ]
    pages = [request.query for request in fake_stripe.requests if request.method == "GET"]
    assert pages == [
        {"limit": "2"},
        {"limit": "2", "starting_after": created[3].payout_id},
        {"limit": "2", "starting_after": created[1].payout_id},
    ]


def test_listing_from_a_time_leaves_out_older_payouts(
    fake_stripe: FakeStripe, gateway: StripePayoutGateway
) -> None:
    created = [gateway.create_payout(payout_request(f"wd-{number}")) for number in range(4)]
    # Part way into the second of the third payout: that payout is still in.
    created_from = created[2].created_at.replace(microsecond=500_000)

    listed = list(gateway.list_payouts(created_from=created_from))

    assert [payout.payout_id for payout in listed] == [
        created[3].payout_id,
        created[2].payout_id,
    ]
    assert fake_stripe.requests[-1].query["created[gte]"] == str(FIRST_CREATED + 2)


def test_a_list_failure_surfaces_while_iterating(fake_stripe: FakeStripe) -> None:
    gateway = gateway_on(fake_stripe.base_url, "sk_test_someone_else")
    payouts = gateway.list_payouts()

    with pytest.raises(PayoutUnavailable):
        next(payouts)
