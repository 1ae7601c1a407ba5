"""The payouts and withdrawals checks on real PostgreSQL, with withdrawals made
through the service and paid through the sandbox gateway (or the Stripe
gateway against a local fake of Stripe), then one record broken at a time:
each break fails exactly the check that compares that record."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

import pytest

from application.aggregate_writes import write_with_aggregates
from application.clock import SettableClock
from application.funded_accounts import platform_account
from application.ports.payout_gateway import Payout, PayoutGateway, PayoutRequest, PayoutStatus
from application.ports.reconciliation_checks import ReconciliationCheck
from application.withdrawals import WithdrawalRequest
from domain.account import AccountKind
from domain.commands import VoidPendingTransfer, create_transfer
from domain.reconciliation import CheckResult, CheckStatus, DiscrepancyKind, Severity
from domain.tiers import TIER_CURRENCY
from domain.transfer import Posting, Side
from domain.withdrawal import WithdrawalStatus, payout_idempotency_key
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from interface.bootstrap import Ledger, build_ledger
from interface.reconciliation.payouts_check import PAYOUTS_CHECK, PayoutsCheck
from interface.reconciliation.withdrawals_check import WITHDRAWALS_CHECK, WithdrawalsCheck
from interface.settings import Settings
from tests.support.fake_stripe import FakeStripe
from tests.support.withdrawals import profitable_funded_account

# $5,000 profit at 4/5: $4,000 withdrawable.
PROFIT_MINOR: Final[int] = 5_000_00
# Under $1,000 a withdrawal is approved at once; from $1,000 it waits for an admin.
SMALL_MINOR: Final[int] = 500_00
OTHER_SMALL_MINOR: Final[int] = 300_00
LARGE_MINOR: Final[int] = 1_200_00
FAILED_MINOR: Final[int] = 250_00
# What a processor that takes its fee out of the payout sends instead.
PROCESSOR_FEE_MINOR: Final[int] = 2_50
# Small pages, so that the Stripe gateway's listing turns pages.
STRIPE_PAGE_SIZE: Final[int] = 2
STRIPE_TIMEOUT_S: Final[float] = 5.0
STRIPE_FIRST_CREATED: Final[int] = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def gateway(clock: SettableClock) -> SandboxPayoutGateway:
    return SandboxPayoutGateway(clock)


@contextmanager
def _ledger_paying_through(
    settings: Settings, clock: SettableClock, gateway: PayoutGateway
) -> Iterator[Ledger]:
    running = build_ledger(settings, clock=clock, payout_gateway=gateway)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def paying_ledger(
    settings: Settings, clock: SettableClock, gateway: SandboxPayoutGateway
) -> Iterator[Ledger]:
    with _ledger_paying_through(settings, clock, gateway) as running:
        yield running


@dataclass(frozen=True, slots=True)
class Withdrawals:
    funded_account_id: UUID
    completed: UUID
    other_completed: UUID
    rejected: UUID
    failed: UUID
    awaiting_approval: UUID

    @property
    def paid_out_minor(self) -> int:
        return SMALL_MINOR + OTHER_SMALL_MINOR


def _request(ledger: Ledger, funded_account_id: UUID, amount_minor: int, key: str) -> UUID:
    outcome = ledger.withdrawals.request(
        WithdrawalRequest(funded_account_id, amount_minor, key, actor="user:test")
    )
    return outcome.withdrawal.id


def _paid(ledger: Ledger, withdrawal_id: UUID) -> UUID:
    paid = ledger.withdrawals.pay_out(withdrawal_id)
    assert paid.status is WithdrawalStatus.COMPLETED, paid.status
    return withdrawal_id


def _several_withdrawals(ledger: Ledger, gateway: SandboxPayoutGateway) -> Withdrawals:
    """Two completed, one rejected, one failed at the processor, one waiting."""
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    completed = _paid(ledger, _request(ledger, funded_id, SMALL_MINOR, "w-small"))
    other_completed = _paid(ledger, _request(ledger, funded_id, OTHER_SMALL_MINOR, "w-other"))
    rejected = _request(ledger, funded_id, LARGE_MINOR, "w-rejected")
    ledger.withdrawals.reject(rejected, "documents missing", "admin:test")
    gateway.fail_next("account_closed", "the bank account is closed")
    failed = _request(ledger, funded_id, FAILED_MINOR, "w-failed")
    assert ledger.withdrawals.pay_out(failed).status is WithdrawalStatus.FAILED
    awaiting = _request(ledger, funded_id, LARGE_MINOR, "w-awaiting")
    assert ledger.withdrawals.require_withdrawal(awaiting).status is WithdrawalStatus.PENDING
    return Withdrawals(funded_id, completed, other_completed, rejected, failed, awaiting)


def _found(result: CheckResult) -> list[tuple[DiscrepancyKind, str, Severity]]:
    return [
        (discrepancy.kind, discrepancy.subject, discrepancy.severity)
        for discrepancy in result.discrepancies
    ]


def _passed(result: CheckResult) -> bool:
    return result.status is CheckStatus.PASSED and not result.discrepancies


def _payout_id_of(ledger: Ledger, withdrawal_id: UUID) -> str:
    payout_id = ledger.withdrawals.require_withdrawal(withdrawal_id).payout_id
    assert payout_id is not None
    return payout_id


# Clean -------------------------------------------------------------------------------


def test_completed_rejected_failed_and_waiting_withdrawals_pass_both_checks(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    checks: list[ReconciliationCheck] = [
        PayoutsCheck(ledger.database_url, gateway),
        WithdrawalsCheck(ledger.database_url),
    ]
    assert [check.name for check in checks] == [PAYOUTS_CHECK, WITHDRAWALS_CHECK]

    payouts, withdrawals = (check.run() for check in checks)

    assert _passed(payouts), _found(payouts)
    assert (payouts.measure, payouts.expected, payouts.actual) == (
        "paid out, USD minor units",
        made.paid_out_minor,
        made.paid_out_minor,
    )
    assert _passed(withdrawals), _found(withdrawals)
    assert (withdrawals.measure, withdrawals.expected, withdrawals.actual) == (
        "withdrawn, USD minor units",
        made.paid_out_minor,
        made.paid_out_minor,
    )


def test_an_empty_ledger_and_processor_pass_both_checks(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    payouts = PayoutsCheck(paying_ledger.database_url, gateway).run()
    withdrawals = WithdrawalsCheck(paying_ledger.database_url).run()
    assert _passed(payouts) and (payouts.expected, payouts.actual) == (0, 0)
    assert _passed(withdrawals) and (withdrawals.expected, withdrawals.actual) == (0, 0)


# The payouts check -------------------------------------------------------------------


def test_a_payout_made_at_the_processor_for_no_withdrawal_is_unknown_to_the_ledger(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    made_up = str(uuid.uuid4())
    stray = gateway.create_payout(
        PayoutRequest(
            idempotency_key=f"by-hand-{made_up}",
            amount_minor=FAILED_MINOR,
            currency=TIER_CURRENCY,
            metadata={"withdrawal_id": made_up},
        )
    )

    payouts = PayoutsCheck(ledger.database_url, gateway).run()

    assert payouts.status is CheckStatus.FAILED
    assert _found(payouts) == [
        (
            DiscrepancyKind.PAYOUT_UNKNOWN_TO_LEDGER,
            f"payout {stray.payout_id}",
            Severity.CRITICAL,
        )
    ]
    assert payouts.discrepancies[0].amount_minor == FAILED_MINOR
    assert (payouts.expected, payouts.actual) == (
        made.paid_out_minor,
        made.paid_out_minor + FAILED_MINOR,
    )
    assert _passed(WithdrawalsCheck(ledger.database_url).run())


def test_a_second_payout_for_a_completed_withdrawal_is_unknown_to_the_ledger(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    """Someone paid a withdrawal again by hand: it names a real withdrawal,
    which recorded another payout."""
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    again = gateway.create_payout(
        PayoutRequest(
            idempotency_key="by-hand-again",
            amount_minor=SMALL_MINOR,
            currency=TIER_CURRENCY,
            metadata={"withdrawal_id": str(made.completed)},
        )
    )

    payouts = PayoutsCheck(ledger.database_url, gateway).run()

    assert _found(payouts) == [
        (
            DiscrepancyKind.PAYOUT_UNKNOWN_TO_LEDGER,
            f"payout {again.payout_id}",
            Severity.CRITICAL,
        )
    ]
    assert _passed(WithdrawalsCheck(ledger.database_url).run())


class FeeTakingGateway:
    """The sandbox, but the payout it makes is net of a processor fee: the
    amount the processor lists differs from the withdrawal's. (The sandbox
    keeps a payout's amount as asked, so it cannot express this alone.)"""

    def __init__(self, sandbox: SandboxPayoutGateway, fee_minor: int) -> None:
        self._sandbox = sandbox
        self._fee_minor = fee_minor

    @property
    def name(self) -> str:
        return self._sandbox.name

    def create_payout(self, request: PayoutRequest) -> Payout:
        return self._sandbox.create_payout(
            replace(request, amount_minor=request.amount_minor - self._fee_minor)
        )

    def retrieve_payout(self, payout_id: str) -> Payout:
        return self._sandbox.retrieve_payout(payout_id)

    def list_payouts(self, created_from: datetime | None = None) -> Iterator[Payout]:
        return self._sandbox.list_payouts(created_from)


def test_a_payout_of_another_amount_than_its_withdrawal_differs_by_the_difference(
    settings: Settings, clock: SettableClock, gateway: SandboxPayoutGateway
) -> None:
    fee_taking = FeeTakingGateway(gateway, PROCESSOR_FEE_MINOR)
    with _ledger_paying_through(settings, clock, fee_taking) as ledger:
        funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
        withdrawal_id = _paid(ledger, _request(ledger, funded_id, SMALL_MINOR, "w-fee"))

        payouts = PayoutsCheck(ledger.database_url, gateway).run()

        payout_id = _payout_id_of(ledger, withdrawal_id)
        assert _found(payouts) == [
            (DiscrepancyKind.PAYOUT_AMOUNT_DIFFERS, f"payout {payout_id}", Severity.HIGH)
        ]
        assert payouts.discrepancies[0].amount_minor == -PROCESSOR_FEE_MINOR
        assert (payouts.expected, payouts.actual) == (
            SMALL_MINOR,
            SMALL_MINOR - PROCESSOR_FEE_MINOR,
        )
        # The ledger posted the withdrawal's full amount, as it should.
        assert _passed(WithdrawalsCheck(ledger.database_url).run())


class ForgetfulGateway:
    """The sandbox, as it lists its payouts after losing one of them (the
    sandbox itself never loses one)."""

    def __init__(self, sandbox: SandboxPayoutGateway, lost_payout_id: str) -> None:
        self._sandbox = sandbox
        self._lost_payout_id = lost_payout_id

    @property
    def name(self) -> str:
        return self._sandbox.name

    def create_payout(self, request: PayoutRequest) -> Payout:
        return self._sandbox.create_payout(request)

    def retrieve_payout(self, payout_id: str) -> Payout:
        return self._sandbox.retrieve_payout(payout_id)

    def list_payouts(self, created_from: datetime | None = None) -> Iterator[Payout]:
        return (
            payout
            for payout in self._sandbox.list_payouts(created_from)
            if payout.payout_id != self._lost_payout_id
        )


def test_a_completed_withdrawal_whose_payout_the_processor_lost_is_missing(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    lost = ForgetfulGateway(gateway, _payout_id_of(ledger, made.completed))

    payouts = PayoutsCheck(ledger.database_url, lost).run()

    assert _found(payouts) == [
        (DiscrepancyKind.PAYOUT_MISSING, f"withdrawal {made.completed}", Severity.HIGH)
    ]
    assert payouts.discrepancies[0].amount_minor == SMALL_MINOR
    assert (payouts.expected, payouts.actual) == (made.paid_out_minor, OTHER_SMALL_MINOR)
    assert _passed(WithdrawalsCheck(ledger.database_url).run())


def test_a_paid_payout_the_bank_returned_differs_in_status_for_the_withdrawals_amount(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    """The ledger counts the withdrawal as paid; the processor says the money
    came back: the amount escalates the status difference."""
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    large = _request(ledger, made.funded_account_id, LARGE_MINOR, "w-large")
    ledger.withdrawals.approve(large, "admin:test")
    _paid(ledger, large)
    returned = _payout_id_of(ledger, large)
    gateway.set_status(returned, PayoutStatus.FAILED, "account_closed", "returned by the bank")

    payouts = PayoutsCheck(ledger.database_url, gateway).run()

    # $1,200 is past the high step (severity_of); the kind alone is medium.
    assert _found(payouts) == [
        (DiscrepancyKind.PAYOUT_STATUS_DIFFERS, f"payout {returned}", Severity.HIGH)
    ]
    assert payouts.discrepancies[0].amount_minor == LARGE_MINOR
    assert (payouts.expected, payouts.actual) == (
        made.paid_out_minor + LARGE_MINOR,
        made.paid_out_minor,
    )
    assert _passed(WithdrawalsCheck(ledger.database_url).run())


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    seconds = itertools.count(STRIPE_FIRST_CREATED)
    with FakeStripe(now=lambda: next(seconds)) as fake:
        yield fake


@pytest.fixture
def stripe_gateway(fake_stripe: FakeStripe) -> Iterator[StripePayoutGateway]:
    gateway = StripePayoutGateway(
        fake_stripe.api_key,
        api_base=fake_stripe.base_url,
        timeout_s=STRIPE_TIMEOUT_S,
        list_page_size=STRIPE_PAGE_SIZE,
    )
    yield gateway
    gateway.close()


def test_through_stripe_a_payout_in_flight_agrees_a_settled_one_waits_and_a_stray_one_is_unknown(
    settings: Settings,
    clock: SettableClock,
    fake_stripe: FakeStripe,
    stripe_gateway: StripePayoutGateway,
) -> None:
    with _ledger_paying_through(settings, clock, stripe_gateway) as ledger:
        funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
        amounts = (SMALL_MINOR, OTHER_SMALL_MINOR, FAILED_MINOR)
        paid_out = [
            _request(ledger, funded_id, amount, f"w-stripe-{index}")
            for index, amount in enumerate(amounts)
        ]
        for withdrawal_id in paid_out:
            in_flight = ledger.withdrawals.pay_out(withdrawal_id)
            assert in_flight.status is WithdrawalStatus.PAID_OUT
        check = PayoutsCheck(ledger.database_url, stripe_gateway)

        # Pending at Stripe, paid out in the ledger: the two agree.
        first = check.run()
        assert _passed(first), _found(first)
        assert (first.expected, first.actual) == (sum(amounts), sum(amounts))

        # Paid at Stripe before the webhook came: timing, for nothing.
        settled = _payout_id_of(ledger, paid_out[0])
        fake_stripe.set_status(settled, "paid")
        made_up = str(uuid.uuid4())
        stray = stripe_gateway.create_payout(
            PayoutRequest(
                f"by-hand-{made_up}", FAILED_MINOR, TIER_CURRENCY, {"withdrawal_id": made_up}
            )
        )

        second = check.run()

        assert sorted(_found(second)) == sorted(
            [
                (DiscrepancyKind.PAYOUT_STATUS_DIFFERS, f"payout {settled}", Severity.MEDIUM),
                (
                    DiscrepancyKind.PAYOUT_UNKNOWN_TO_LEDGER,
                    f"payout {stray.payout_id}",
                    Severity.CRITICAL,
                ),
            ]
        )
        by_kind = {discrepancy.kind: discrepancy for discrepancy in second.discrepancies}
        assert by_kind[DiscrepancyKind.PAYOUT_STATUS_DIFFERS].amount_minor == 0
        # The same faults make the same subjects run after run.
        assert sorted(_found(check.run())) == sorted(_found(second))
        assert _passed(WithdrawalsCheck(ledger.database_url).run())


# The withdrawals check ---------------------------------------------------------------


def test_a_hold_written_around_the_service_is_an_orphan(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    trader = ledger.funded_accounts.require_funded_account(made.funded_account_id)
    clearing = platform_account(AccountKind.PAYOUTS_CLEARING)
    hold = create_transfer(
        idempotency_key="hold-by-hand",
        postings=(
            Posting(trader.ledger_account_id, Side.DEBIT, OTHER_SMALL_MINOR, TIER_CURRENCY),
            Posting(clearing.account_id, Side.CREDIT, OTHER_SMALL_MINOR, TIER_CURRENCY),
        ),
        pending=True,
    )
    receipt = ledger.writer.execute([clearing, hold])
    assert all(result.succeeded for result in receipt.results)

    withdrawals = WithdrawalsCheck(ledger.database_url).run()

    assert withdrawals.status is CheckStatus.FAILED
    assert _found(withdrawals) == [
        (DiscrepancyKind.ORPHAN_HOLD, f"hold {hold.transfer_id}", Severity.MEDIUM)
    ]
    assert withdrawals.discrepancies[0].amount_minor == OTHER_SMALL_MINOR
    assert (withdrawals.expected, withdrawals.actual) == (
        made.paid_out_minor,
        made.paid_out_minor,
    )
    assert _passed(PayoutsCheck(ledger.database_url, gateway).run())


def test_a_withdrawal_rejected_around_the_service_leaves_its_hold_not_released(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway, clock: SettableClock
) -> None:
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    waiting = ledger.withdrawals.require_withdrawal(made.awaiting_approval)
    # The rejection recorded without the hold's void the service writes with it.
    waiting.reject("by hand", "admin:test", clock.now())
    assert write_with_aggregates(ledger.writer, [], waiting) is not None

    withdrawals = WithdrawalsCheck(ledger.database_url).run()

    # $1,200 still held is past the high step; the kind alone is medium.
    assert _found(withdrawals) == [
        (DiscrepancyKind.HOLD_NOT_RELEASED, f"withdrawal {waiting.id}", Severity.HIGH)
    ]
    assert withdrawals.discrepancies[0].amount_minor == LARGE_MINOR
    assert _passed(PayoutsCheck(ledger.database_url, gateway).run())


def test_a_waiting_withdrawal_whose_hold_was_voided_has_its_transfer_missing(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    waiting = ledger.withdrawals.require_withdrawal(made.awaiting_approval)
    receipt = ledger.writer.execute([VoidPendingTransfer(waiting.hold_transfer_id)])
    assert all(result.succeeded for result in receipt.results)

    withdrawals = WithdrawalsCheck(ledger.database_url).run()

    assert _found(withdrawals) == [
        (
            DiscrepancyKind.WITHDRAWAL_TRANSFER_MISSING,
            f"withdrawal {waiting.id}",
            Severity.HIGH,
        )
    ]
    assert withdrawals.discrepancies[0].amount_minor == LARGE_MINOR
    assert _passed(PayoutsCheck(ledger.database_url, gateway).run())


def test_a_completed_withdrawal_whose_hold_was_voided_has_its_transfer_missing(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway, clock: SettableClock
) -> None:
    """Paid at the processor and completed, but written with a void where the
    service writes the hold's posting: nothing was withdrawn in the ledger."""
    ledger = paying_ledger
    made = _several_withdrawals(ledger, gateway)
    approved = _request(ledger, made.funded_account_id, FAILED_MINOR, "w-voided")
    withdrawal = ledger.withdrawals.require_withdrawal(approved)
    payout = gateway.create_payout(
        PayoutRequest(
            payout_idempotency_key(approved),
            FAILED_MINOR,
            TIER_CURRENCY,
            {"withdrawal_id": str(approved)},
        )
    )
    withdrawal.complete(payout.payout_id, "admin:test", clock.now())
    voided = write_with_aggregates(
        ledger.writer, [VoidPendingTransfer(withdrawal.hold_transfer_id)], withdrawal
    )
    assert voided is not None

    withdrawals = WithdrawalsCheck(ledger.database_url).run()

    assert _found(withdrawals) == [
        (DiscrepancyKind.WITHDRAWAL_TRANSFER_MISSING, f"withdrawal {approved}", Severity.HIGH)
    ]
    assert withdrawals.discrepancies[0].amount_minor == FAILED_MINOR
    assert (withdrawals.expected, withdrawals.actual) == (
        made.paid_out_minor + FAILED_MINOR,
        made.paid_out_minor,
    )
    assert _passed(PayoutsCheck(ledger.database_url, gateway).run())


def test_neither_check_corrects_anything(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    _several_withdrawals(ledger, gateway)
    gateway.create_payout(
        PayoutRequest("by-hand", FAILED_MINOR, TIER_CURRENCY, {"withdrawal_id": "nobody"})
    )
    payouts = PayoutsCheck(ledger.database_url, gateway)
    found = payouts.run().discrepancies[0]
    with pytest.raises(ValueError, match="corrects nothing"):
        payouts.correct(found)
    with pytest.raises(ValueError, match="corrects nothing"):
        WithdrawalsCheck(ledger.database_url).correct(found)
