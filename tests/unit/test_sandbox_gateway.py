"""The sandbox payout gateway: Stripe's idempotency promises, no money, scriptable failures."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from application.clock import SettableClock
from application.ports.payout_gateway import (
    IDEMPOTENCY_KEY_REUSED,
    PAYOUT_NOT_FOUND,
    PayoutGateway,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    PayoutUnavailable,
)
from interface.adapters.payouts.sandbox_gateway import FAULTS_QUEUED_MAX, SandboxPayoutGateway
from tests.support.logs import captured_logs, events_named

START = datetime(2026, 1, 1, tzinfo=UTC)
THREADS = 8


def payout_request(
    withdrawal_id: str = "wd-1", amount_minor: int = 12_345, currency: str = "USD"
) -> PayoutRequest:
    return PayoutRequest(
        idempotency_key=f"withdrawal-{withdrawal_id}",
        amount_minor=amount_minor,
        currency=currency,
        metadata={"withdrawal_id": withdrawal_id},
    )


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def sandbox(clock: SettableClock) -> SandboxPayoutGateway:
    return SandboxPayoutGateway(clock)


def test_the_sandbox_is_a_payout_gateway_named_sandbox(sandbox: SandboxPayoutGateway) -> None:
    port: PayoutGateway = sandbox
    assert port.name == "sandbox"


def test_a_payout_is_paid_at_once(sandbox: SandboxPayoutGateway) -> None:
    payout = sandbox.create_payout(payout_request("wd-1", amount_minor=12_345, currency="EUR"))

    assert payout.status is PayoutStatus.PAID
    assert (payout.amount_minor, payout.currency) == (12_345, "EUR")
    assert dict(payout.metadata) == {"withdrawal_id": "wd-1"}
    assert payout.created_at == START
    assert sandbox.retrieve_payout(payout.payout_id) == payout


def test_the_same_request_twice_returns_the_first_payout(sandbox: SandboxPayoutGateway) -> None:
    first = sandbox.create_payout(payout_request("wd-1"))
    again = sandbox.create_payout(payout_request("wd-1"))

    assert again == first
    assert list(sandbox.list_payouts()) == [first]


@pytest.mark.parametrize(
    "other",
    [
        payout_request("wd-1", amount_minor=99),
        payout_request("wd-1", currency="EUR"),
    ],
)
def test_the_same_key_with_another_request_is_rejected_as_reused(
    sandbox: SandboxPayoutGateway, other: PayoutRequest
) -> None:
    first = sandbox.create_payout(payout_request("wd-1"))

    with pytest.raises(PayoutRejected) as rejected:
        sandbox.create_payout(other)

    assert rejected.value.code == IDEMPOTENCY_KEY_REUSED
    assert list(sandbox.list_payouts()) == [first]


def test_a_scripted_rejection_fails_the_next_create_only(sandbox: SandboxPayoutGateway) -> None:
    sandbox.fail_next("balance_insufficient", "not enough money in the sandbox")

    with pytest.raises(PayoutRejected) as rejected:
        sandbox.create_payout(payout_request("wd-1"))
    assert (rejected.value.code, rejected.value.detail) == (
        "balance_insufficient",
        "not enough money in the sandbox",
    )
    assert list(sandbox.list_payouts()) == []

    assert sandbox.create_payout(payout_request("wd-1")).status is PayoutStatus.PAID


def test_scripted_unavailability_fails_as_many_creates_as_asked(
    sandbox: SandboxPayoutGateway,
) -> None:
    sandbox.unavailable_next(times=2)

    for _ in range(2):
        with pytest.raises(PayoutUnavailable):
            sandbox.create_payout(payout_request("wd-1"))
    assert list(sandbox.list_payouts()) == []

    payout = sandbox.create_payout(payout_request("wd-1"))
    assert list(sandbox.list_payouts()) == [payout]


def test_a_payout_whose_answer_was_lost_is_returned_to_the_retry_with_the_same_key(
    sandbox: SandboxPayoutGateway,
) -> None:
    sandbox.unavailable_after_create_next()

    with pytest.raises(PayoutUnavailable):
        sandbox.create_payout(payout_request("wd-1"))
    [created] = sandbox.list_payouts()

    assert sandbox.create_payout(payout_request("wd-1")) == created
    assert list(sandbox.list_payouts()) == [created]


def test_failures_are_scripted_in_order(sandbox: SandboxPayoutGateway) -> None:
    sandbox.unavailable_next()
    sandbox.fail_next("payouts_not_allowed", "scripted")

    with pytest.raises(PayoutUnavailable):
        sandbox.create_payout(payout_request())
    with pytest.raises(PayoutRejected):
        sandbox.create_payout(payout_request())
    assert sandbox.create_payout(payout_request()).status is PayoutStatus.PAID


def test_no_more_than_the_limit_of_failures_can_be_queued(
    sandbox: SandboxPayoutGateway,
) -> None:
    sandbox.unavailable_next(times=FAULTS_QUEUED_MAX)

    with pytest.raises(ValueError, match="faults queued"):
        sandbox.fail_next("balance_insufficient", "one too many")


def test_retrieving_an_unknown_payout_is_rejected_as_not_found(
    sandbox: SandboxPayoutGateway,
) -> None:
    with pytest.raises(PayoutRejected) as rejected:
        sandbox.retrieve_payout("po_unknown")

    assert rejected.value.code == PAYOUT_NOT_FOUND


def test_a_paid_payout_can_be_failed_later_as_a_bank_return_would(
    sandbox: SandboxPayoutGateway,
) -> None:
    payout = sandbox.create_payout(payout_request())

    sandbox.set_status(payout.payout_id, PayoutStatus.FAILED, "account_closed", "closed")

    failed = sandbox.retrieve_payout(payout.payout_id)
    assert (failed.status, failed.failure_code, failed.failure_message) == (
        PayoutStatus.FAILED,
        "account_closed",
        "closed",
    )
    # The retry of the original request sees the payout as it now stands.
    assert sandbox.create_payout(payout_request()).status is PayoutStatus.FAILED


def test_listing_is_newest_first_and_can_start_from_a_time(
    sandbox: SandboxPayoutGateway, clock: SettableClock
) -> None:
    created = []
    for number in range(4):
        created.append(sandbox.create_payout(payout_request(f"wd-{number}")))
        clock.advance(timedelta(minutes=1))

    assert list(sandbox.list_payouts()) == list(reversed(created))
    assert list(sandbox.list_payouts(created_from=created[2].created_at)) == [
        created[3],
        created[2],
    ]


def test_payouts_made_at_the_same_moment_list_the_later_made_first(
    sandbox: SandboxPayoutGateway,
) -> None:
    created = [sandbox.create_payout(payout_request(f"wd-{number}")) for number in range(3)]

    assert list(sandbox.list_payouts()) == list(reversed(created))


def test_concurrent_creates_under_one_key_make_one_payout(
    sandbox: SandboxPayoutGateway,
) -> None:
    barrier = threading.Barrier(THREADS)
    payout_ids: list[str] = []
    collected = threading.Lock()

    def create() -> None:
        barrier.wait()
        payout = sandbox.create_payout(payout_request("wd-1"))
        with collected:
            payout_ids.append(payout.payout_id)

    threads = [threading.Thread(target=create) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(payout_ids) == THREADS
    assert len(set(payout_ids)) == 1
    assert [payout.payout_id for payout in sandbox.list_payouts()] == payout_ids[:1]


def test_concurrent_creates_under_different_keys_make_one_payout_each(
    sandbox: SandboxPayoutGateway,
) -> None:
    barrier = threading.Barrier(THREADS)

    def create(number: int) -> None:
        barrier.wait()
        sandbox.create_payout(payout_request(f"wd-{number}"))

    threads = [threading.Thread(target=create, args=(number,)) for number in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    withdrawal_ids = {payout.metadata["withdrawal_id"] for payout in sandbox.list_payouts()}
    assert withdrawal_ids == {f"wd-{number}" for number in range(THREADS)}


def test_a_payout_is_logged_as_a_warning_that_no_money_moved_without_other_metadata(
    sandbox: SandboxPayoutGateway,
) -> None:
    request = PayoutRequest(
        idempotency_key="withdrawal-wd-1",
        amount_minor=5_000,
        currency="USD",
        metadata={"withdrawal_id": "wd-1", "beneficiary_iban": "CANARY-IBAN-1234"},
    )

    with captured_logs("INFO") as buffer:
        payout = sandbox.create_payout(request)
        sandbox.create_payout(request)

    [record] = events_named(buffer, "sandbox_payout_paid")
    assert record["level"] == "warning"
    assert record["money_moved"] is False
    assert (record["withdrawal_id"], record["payout_id"]) == ("wd-1", payout.payout_id)
    assert (record["amount_minor"], record["currency"]) == (5_000, "USD")
    assert "CANARY-IBAN-1234" not in buffer.getvalue()
