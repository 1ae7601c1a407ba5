"""Withdrawals on real PostgreSQL: the hold, the reservation, concurrency, and
payouts through the sandbox gateway with its faults scripted."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from uuid import UUID

import pytest

from application.clock import SettableClock
from application.funded_accounts import platform_account
from application.ports.payout_gateway import Payout, PayoutStatus
from application.withdrawals import PayoutUpdate, WithdrawalRequest
from domain.account import AccountKind
from domain.result_codes import LedgerRefusal, ResultCode
from domain.transfer import TransferStatus
from domain.withdrawal import PAYOUT_RETRY_WINDOW, WithdrawalStatus
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from tests.support.withdrawals import profitable_funded_account

# $5,000 profit at 4/5: $4,000 withdrawable.
PROFIT_MINOR = 5_000_00
WITHDRAWABLE_MINOR = 4_000_00


@pytest.fixture
def gateway(clock: SettableClock) -> SandboxPayoutGateway:
    return SandboxPayoutGateway(clock)


@pytest.fixture
def paying_ledger(
    settings: Settings, clock: SettableClock, gateway: SandboxPayoutGateway
) -> Iterator[Ledger]:
    running = build_ledger(settings, clock=clock, payout_gateway=gateway)
    try:
        yield running
    finally:
        running.close()


def _request(funded_account_id: UUID, amount_minor: int, key: str) -> WithdrawalRequest:
    return WithdrawalRequest(funded_account_id, amount_minor, key, actor="user:test")


def _balance(ledger: Ledger, account_id: UUID) -> tuple[int, int]:
    """(posted, pending) credit-minus-debit balance of a ledger account."""
    account = ledger.service.account(account_id)
    assert account is not None
    totals = account.totals
    return (
        totals.credits_posted - totals.debits_posted,
        totals.credits_pending - totals.debits_pending,
    )


def _hold_state(ledger: Ledger, transfer_id: UUID) -> TransferStatus:
    transfer = ledger.service.transfer(transfer_id)
    assert transfer is not None
    return transfer.status


def test_a_small_withdrawal_is_held_paid_and_posted(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    account = ledger.funded_accounts.require_funded_account(funded_id)
    trader = account.ledger_account_id
    clearing = platform_account(AccountKind.PAYOUTS_CLEARING).account_id
    posted_before, _ = _balance(ledger, trader)

    outcome = ledger.withdrawals.request(_request(funded_id, 999_99, "w-1"))
    withdrawal = outcome.withdrawal
    assert outcome.created and withdrawal.status is WithdrawalStatus.APPROVED
    assert withdrawal.decided_automatically
    # Held at once: pending on the trader's account, reserved on the funded one.
    assert _balance(ledger, trader) == (posted_before, -999_99)
    assert _hold_state(ledger, withdrawal.hold_transfer_id) is TransferStatus.PENDING
    held = ledger.funded_accounts.require_funded_account(funded_id)
    assert held.reserved_withdrawals_minor == 999_99
    assert held.withdrawable_minor() == WITHDRAWABLE_MINOR - 999_99

    ledger.payout_worker.wake(withdrawal.id)
    done = ledger.payout_worker.run_once()
    assert (done.attempted, done.outcomes["completed"]) == (1, 1)

    paid = ledger.withdrawals.require_withdrawal(withdrawal.id)
    assert paid.status is WithdrawalStatus.COMPLETED
    assert paid.payout_id is not None and paid.payout_id.startswith("po_sandbox_")
    assert _hold_state(ledger, withdrawal.hold_transfer_id) is TransferStatus.POSTED
    assert _balance(ledger, trader) == (posted_before - 999_99, 0)
    assert _balance(ledger, clearing)[0] >= 999_99
    after = ledger.funded_accounts.require_funded_account(funded_id)
    assert after.total_withdrawn_minor == 999_99
    assert after.reserved_withdrawals_minor == 0
    assert after.withdrawable_minor() == WITHDRAWABLE_MINOR - 999_99
    # A second pass pays nothing more (the view may still show it approved).
    again = ledger.payout_worker.run_once()
    assert set(again.outcomes) <= {"not_due"}
    assert len(list(gateway.list_payouts())) == 1


def test_the_same_request_again_finds_the_same_withdrawal(paying_ledger: Ledger) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    first = ledger.withdrawals.request(_request(funded_id, 500_00, "same"))
    again = ledger.withdrawals.request(_request(funded_id, 500_00, "same"))
    assert again.withdrawal.id == first.withdrawal.id and not again.created
    with pytest.raises(LedgerRefusal) as refused:
        ledger.withdrawals.request(_request(funded_id, 600_00, "same"))
    assert refused.value.code is ResultCode.IDEMPOTENCY_KEY_REUSED
    account = ledger.funded_accounts.require_funded_account(funded_id)
    assert account.reserved_withdrawals_minor == 500_00


def test_fifty_requests_at_once_never_pass_the_withdrawable_amount(
    paying_ledger: Ledger,
) -> None:
    """$4,000 withdrawable, fifty requests of $300 at once: thirteen fit
    ($3,900), the rest are refused, and the holds add up to what was accepted."""
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    trader = ledger.funded_accounts.require_funded_account(funded_id).ledger_account_id
    posted_before, _ = _balance(ledger, trader)

    def request(index: int) -> ResultCode | UUID:
        try:
            outcome = ledger.withdrawals.request(_request(funded_id, 300_00, f"burst-{index}"))
        except LedgerRefusal as refusal:
            return refusal.code
        return outcome.withdrawal.id

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(request, range(50)))
    accepted = [answer for answer in answers if isinstance(answer, UUID)]
    refused = [answer for answer in answers if not isinstance(answer, UUID)]
    assert len(accepted) == WITHDRAWABLE_MINOR // 300_00
    assert set(refused) <= {ResultCode.EXCEEDS_WITHDRAWABLE, ResultCode.CONCURRENT_CHANGE}
    assert ResultCode.EXCEEDS_WITHDRAWABLE in refused
    account = ledger.funded_accounts.require_funded_account(funded_id)
    assert account.reserved_withdrawals_minor == len(accepted) * 300_00
    assert account.withdrawable_minor() == WITHDRAWABLE_MINOR - len(accepted) * 300_00
    assert _balance(ledger, trader) == (posted_before, -len(accepted) * 300_00)


@pytest.mark.parametrize(
    ("amount_minor", "code"),
    [
        (99_99, ResultCode.BELOW_MINIMUM),
        (WITHDRAWABLE_MINOR + 1, ResultCode.EXCEEDS_WITHDRAWABLE),
    ],
)
def test_a_refused_request_writes_nothing(
    paying_ledger: Ledger, amount_minor: int, code: ResultCode
) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    position = ledger.writer.last_position
    with pytest.raises(LedgerRefusal) as refused:
        ledger.withdrawals.request(_request(funded_id, amount_minor, "refused"))
    assert refused.value.code is code
    assert ledger.writer.last_position == position


def test_from_one_thousand_an_admin_decides(paying_ledger: Ledger) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    big = ledger.withdrawals.request(_request(funded_id, 1_000_00, "big")).withdrawal
    assert big.status is WithdrawalStatus.PENDING and big.approval_required
    # Nothing is paid while it waits.
    ledger.payout_worker.wake(big.id)
    assert ledger.payout_worker.run_once().outcomes["completed"] == 0

    approved = ledger.withdrawals.approve(big.id, "admin:1")
    assert approved.status is WithdrawalStatus.APPROVED and approved.approved_by == "admin:1"
    ledger.payout_worker.wake(big.id)
    assert ledger.payout_worker.run_once().outcomes["completed"] == 1
    with pytest.raises(LedgerRefusal) as refused:
        ledger.withdrawals.reject(big.id, "too late", "admin:1")
    assert refused.value.code is ResultCode.WITHDRAWAL_NOT_PENDING


def test_a_rejection_voids_the_hold_and_gives_the_amount_back(paying_ledger: Ledger) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    trader = ledger.funded_accounts.require_funded_account(funded_id).ledger_account_id
    posted_before, _ = _balance(ledger, trader)
    big = ledger.withdrawals.request(_request(funded_id, 2_500_00, "big")).withdrawal

    rejected = ledger.withdrawals.reject(big.id, "documents missing", "admin:1")
    assert rejected.status is WithdrawalStatus.REJECTED
    assert rejected.rejected_reason == "documents missing"
    assert _hold_state(ledger, big.hold_transfer_id) is TransferStatus.VOIDED
    assert _balance(ledger, trader) == (posted_before, 0)
    account = ledger.funded_accounts.require_funded_account(funded_id)
    assert (account.reserved_withdrawals_minor, account.withdrawable_minor()) == (
        0,
        WITHDRAWABLE_MINOR,
    )


def test_a_refused_payout_fails_the_withdrawal_and_releases_the_hold(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway
) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    withdrawal = ledger.withdrawals.request(_request(funded_id, 500_00, "w")).withdrawal
    gateway.fail_next("account_closed", "the bank account is closed")

    failed = ledger.withdrawals.pay_out(withdrawal.id)
    assert failed.status is WithdrawalStatus.FAILED
    assert (failed.failure_code, failed.failure_message) == (
        "account_closed",
        "the bank account is closed",
    )
    assert _hold_state(ledger, withdrawal.hold_transfer_id) is TransferStatus.VOIDED
    account = ledger.funded_accounts.require_funded_account(funded_id)
    assert account.withdrawable_minor() == WITHDRAWABLE_MINOR
    assert account.total_withdrawn_minor == 0


def test_a_transient_failure_is_retried_after_its_backoff(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway, clock: SettableClock
) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    withdrawal = ledger.withdrawals.request(_request(funded_id, 500_00, "w")).withdrawal
    gateway.unavailable_next(times=2)

    first = ledger.withdrawals.pay_out(withdrawal.id)
    assert first.status is WithdrawalStatus.APPROVED
    assert first.payout_failed_attempts == 1
    assert first.next_payout_attempt_at == clock.now() + timedelta(seconds=5)
    # Not due yet: nothing is asked of the processor.
    assert ledger.withdrawals.pay_out(withdrawal.id).payout_failed_attempts == 1

    clock.advance(timedelta(seconds=5))
    second = ledger.withdrawals.pay_out(withdrawal.id)
    assert second.payout_failed_attempts == 2
    assert second.next_payout_attempt_at == clock.now() + timedelta(seconds=10)

    clock.advance(timedelta(seconds=10))
    assert ledger.withdrawals.pay_out(withdrawal.id).status is WithdrawalStatus.COMPLETED
    assert len(list(gateway.list_payouts())) == 1


def test_a_payout_created_before_its_answer_was_lost_is_found_not_made_again(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway, clock: SettableClock
) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    withdrawal = ledger.withdrawals.request(_request(funded_id, 500_00, "w")).withdrawal
    gateway.unavailable_after_create_next()

    assert ledger.withdrawals.pay_out(withdrawal.id).status is WithdrawalStatus.APPROVED
    clock.advance(timedelta(seconds=5))
    completed = ledger.withdrawals.pay_out(withdrawal.id)
    payouts = list(gateway.list_payouts())
    assert len(payouts) == 1
    assert completed.status is WithdrawalStatus.COMPLETED
    assert completed.payout_id == payouts[0].payout_id


def test_retries_stop_for_a_person_at_the_end_of_the_window(
    paying_ledger: Ledger, gateway: SandboxPayoutGateway, clock: SettableClock
) -> None:
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    withdrawal = ledger.withdrawals.request(_request(funded_id, 500_00, "w")).withdrawal
    start = clock.now()
    gateway.unavailable_next(times=100)
    attempts = 0
    while True:
        current = ledger.withdrawals.pay_out(withdrawal.id)
        attempts += 1
        if current.needs_attention:
            break
        assert current.next_payout_attempt_at is not None
        clock.set(current.next_payout_attempt_at)
    assert current.status is WithdrawalStatus.APPROVED
    # Every attempt fell inside the window the processor keeps a key for.
    assert clock.now() - start <= PAYOUT_RETRY_WINDOW
    assert not current.payout_due(clock.now() + timedelta(days=1))

    resumed = ledger.withdrawals.resume_payouts(withdrawal.id, "admin:1")
    assert resumed.payout_due(clock.now())


def test_a_payout_update_is_applied_once_in_any_order(paying_ledger: Ledger) -> None:
    """As Stripe's webhooks arrive: paid before the service recorded the
    payout, paid again, then a stale in-transit: one completion."""
    ledger = paying_ledger
    funded_id = profitable_funded_account(ledger, "trader-1", PROFIT_MINOR)
    withdrawal = ledger.withdrawals.request(_request(funded_id, 500_00, "w")).withdrawal

    def update(status: PayoutStatus) -> PayoutUpdate:
        payout = Payout(
            payout_id="po_123",
            amount_minor=500_00,
            currency="USD",
            status=status,
            metadata={"withdrawal_id": str(withdrawal.id)},
            created_at=ledger.clock.now(),
        )
        return PayoutUpdate(payout, f"stripe-webhook:evt_{status.value}")

    completed = ledger.withdrawals.apply_payout_update(update(PayoutStatus.PAID))
    assert completed.status is WithdrawalStatus.COMPLETED
    position = ledger.writer.last_position
    for late in (PayoutStatus.PAID, PayoutStatus.IN_TRANSIT, PayoutStatus.FAILED):
        assert ledger.withdrawals.apply_payout_update(update(late)).status is (
            WithdrawalStatus.COMPLETED
        )
    assert ledger.writer.last_position == position
    account = ledger.funded_accounts.require_funded_account(funded_id)
    assert account.total_withdrawn_minor == 500_00
