"""Deciding batches of commands: each alone, or a linked chain as a whole.

Most tests drive the batch through the in-memory writer (decide, save, read
back from the events); a few use `LedgerBatch` directly to pin down staging.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain.account import AccountState, Totals
from domain.commands import (
    ChangeAccountState,
    CreateTransfer,
    ExpirePendingTransfer,
    OpenAccount,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
    change_account_state,
    create_transfer,
    open_account,
)
from domain.identifiers import reversal_id_for
from domain.ledger_batch import LedgerBatch
from domain.money import AMOUNT_MINOR_MAX
from domain.result_codes import ResultCode
from domain.transfer import Posting, Side, TransferStatus
from tests.support.ledgers import (
    EPOCH,
    LedgerHarness,
    in_memory_ledger,
    platform_account,
    transfer,
    user_account,
)

OK, EXISTS = ResultCode.OK, ResultCode.EXISTS


@pytest.fixture
def ledger() -> LedgerHarness:
    return in_memory_ledger()


def open_accounts(ledger: LedgerHarness, *commands: OpenAccount) -> list[UUID]:
    assert [result.code for result in ledger.run(*commands)] == [OK] * len(commands)
    return [command.account_id for command in commands]


def funded_user(ledger: LedgerHarness, amount_minor: int) -> tuple[UUID, UUID]:
    """A cash account and a user account holding amount_minor."""
    cash, user = open_accounts(ledger, platform_account(), user_account())
    assert ledger.run_one(transfer(cash, user, amount_minor)).code is OK
    return cash, user


def balance(ledger: LedgerHarness, account_id: UUID) -> int:
    totals = ledger.account(account_id).totals
    return totals.credits_posted - totals.debits_posted


def state_change(account_id: UUID, new_state: AccountState) -> ChangeAccountState:
    return change_account_state(
        account_id=account_id, new_state=new_state, reason="test", actor="operator-1"
    )


def hold(
    debit_account_id: UUID, credit_account_id: UUID, amount_minor: int, timeout_s: int | None = 60
) -> CreateTransfer:
    return transfer(
        debit_account_id, credit_account_id, amount_minor, pending=True, timeout_s=timeout_s
    )


def linked(command: CreateTransfer) -> CreateTransfer:
    """The same request, linked to the command after it."""
    return dataclasses.replace(command, linked=True)


# Opening accounts -------------------------------------------------------------


def test_an_opened_account_is_active_with_zero_totals(ledger: LedgerHarness) -> None:
    command = user_account(currency="EUR")
    result = ledger.run_one(command)
    assert (result.code, result.id) == (OK, command.account_id)
    account = ledger.account(command.account_id)
    assert account.state is AccountState.ACTIVE
    assert account.totals == Totals()
    assert account.currency == "EUR"
    assert account.debits_must_not_exceed_credits is True
    assert account.opened_at == EPOCH


def test_opening_an_account_again_with_the_same_details_returns_exists(
    ledger: LedgerHarness,
) -> None:
    ledger.run_one(user_account("acct-1"))
    events_before = ledger.events_written()
    result = ledger.run_one(user_account("acct-1"))
    assert (result.code, result.id) == (EXISTS, user_account("acct-1").account_id)
    assert ledger.events_written() == events_before


def test_opening_an_account_again_with_other_details_is_refused_as_reused(
    ledger: LedgerHarness,
) -> None:
    ledger.run_one(user_account("acct-1"))
    events_before = ledger.events_written()
    result = ledger.run_one(user_account("acct-1", currency="EUR"))
    assert result.code is ResultCode.IDEMPOTENCY_KEY_REUSED
    assert result.id is None
    assert ledger.events_written() == events_before
    assert ledger.account(user_account("acct-1").account_id).currency == "USD"


def test_opening_the_same_account_twice_in_one_batch_opens_it_once(
    ledger: LedgerHarness,
) -> None:
    results = ledger.run(user_account("acct-1"), user_account("acct-1"))
    assert [result.code for result in results] == [OK, EXISTS]
    assert ledger.account(user_account("acct-1").account_id).version == 1


# Transfers ----------------------------------------------------------------------


def test_a_transfer_debits_one_account_and_credits_the_other(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    command = transfer(cash, user, 12_345)
    result = ledger.run_one(command)
    assert (result.code, result.id) == (OK, command.transfer_id)
    assert ledger.account(cash).totals == Totals(debits_posted=12_345)
    assert ledger.account(user).totals == Totals(credits_posted=12_345)
    recorded = ledger.transfer(command.transfer_id)
    assert recorded.status is TransferStatus.POSTED
    assert recorded.postings == command.postings
    assert recorded.posted_postings == command.postings


def test_a_repeated_key_with_the_same_details_returns_the_first_transfer(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    first = ledger.run_one(transfer(cash, user, 500, key="pay-1"))
    events_before = ledger.events_written()
    again = ledger.run_one(transfer(cash, user, 500, key="pay-1"))
    assert (again.code, again.id) == (EXISTS, first.id)
    assert ledger.events_written() == events_before
    assert balance(ledger, user) == 500


def test_a_repeated_key_with_other_details_is_refused_as_reused(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    first = ledger.run_one(transfer(cash, user, 500, key="pay-1"))
    events_before = ledger.events_written()
    again = ledger.run_one(transfer(cash, user, 501, key="pay-1"))
    assert again.code is ResultCode.IDEMPOTENCY_KEY_REUSED
    assert again.details["existing_id"] == str(first.id)
    assert ledger.events_written() == events_before
    assert balance(ledger, user) == 500


def test_a_repeated_key_in_the_same_batch_makes_one_transfer(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    results = ledger.run(
        transfer(cash, user, 500, key="pay-1"),
        transfer(cash, user, 500, key="pay-1"),
        transfer(cash, user, 700, key="pay-1"),
    )
    assert [result.code for result in results] == [OK, EXISTS, ResultCode.IDEMPOTENCY_KEY_REUSED]
    assert balance(ledger, user) == 500


def test_a_repeated_key_still_finds_the_transfer_after_it_was_posted(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    command = hold(cash, user, 500)
    ledger.run_one(command)
    ledger.run_one(PostPendingTransfer(command.transfer_id))
    again = ledger.run_one(command)
    assert (again.code, again.id) == (EXISTS, command.transfer_id)
    assert ledger.transfer(command.transfer_id).status is TransferStatus.POSTED


def test_a_repeated_key_returns_exists_even_when_the_request_could_not_apply_again(
    ledger: LedgerHarness,
) -> None:
    cash, user = funded_user(ledger, 300)
    spend = transfer(user, cash, 300, key="spend-1")
    assert ledger.run_one(spend).code is OK
    # The user holds nothing now: deciding the request afresh would refuse it.
    again = ledger.run_one(spend)
    assert (again.code, again.id) == (EXISTS, spend.transfer_id)
    ledger.run_one(state_change(user, AccountState.SUSPENDED))
    assert ledger.run_one(spend).code is EXISTS
    reused = ledger.run_one(transfer(user, cash, 5, key="spend-1"))
    assert reused.code is ResultCode.IDEMPOTENCY_KEY_REUSED


def test_a_key_whose_first_attempt_was_refused_is_decided_afresh(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    payee = open_accounts(ledger, platform_account())[0]
    spend = transfer(user, payee, 300, key="spend-1")
    assert ledger.run_one(spend).code is ResultCode.INSUFFICIENT_FUNDS
    ledger.run_one(transfer(cash, user, 300))
    assert ledger.run_one(spend).code is OK
    assert balance(ledger, user) == 0


def test_a_debit_beyond_posted_credits_is_refused_as_insufficient_funds(
    ledger: LedgerHarness,
) -> None:
    cash, user = funded_user(ledger, 1_000)
    events_before = ledger.events_written()
    result = ledger.run_one(transfer(user, cash, 1_001))
    assert result.code is ResultCode.INSUFFICIENT_FUNDS
    assert result.details["account_id"] == str(user)
    assert ledger.events_written() == events_before
    assert ledger.account(user).totals == Totals(credits_posted=1_000)


def test_an_account_may_spend_exactly_what_it_holds(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    assert ledger.run_one(transfer(user, cash, 1_000)).code is OK
    assert ledger.account(user).totals == Totals(debits_posted=1_000, credits_posted=1_000)


def test_pending_debits_count_against_the_funds_an_account_may_spend(
    ledger: LedgerHarness,
) -> None:
    cash, user = funded_user(ledger, 1_000)
    assert ledger.run_one(hold(user, cash, 600)).code is OK
    assert ledger.run_one(transfer(user, cash, 401)).code is ResultCode.INSUFFICIENT_FUNDS
    assert ledger.run_one(hold(user, cash, 401)).code is ResultCode.INSUFFICIENT_FUNDS
    assert ledger.run_one(transfer(user, cash, 400)).code is OK


def test_pending_credits_do_not_count_as_funds(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    assert ledger.run_one(hold(cash, user, 1_000)).code is OK
    assert ledger.run_one(transfer(user, cash, 1)).code is ResultCode.INSUFFICIENT_FUNDS


def test_an_account_without_limits_may_go_below_zero(ledger: LedgerHarness) -> None:
    cash, other = open_accounts(ledger, platform_account(), platform_account())
    assert ledger.run_one(transfer(cash, other, 10**12)).code is OK
    assert balance(ledger, cash) == -(10**12)


def test_a_credit_beyond_debits_is_refused_as_exceeds_debits(ledger: LedgerHarness) -> None:
    cash = open_accounts(ledger, platform_account())[0]
    limited = open_account(
        idempotency_key="limited-1",
        currency="USD",
        owner_id="platform",
        credits_must_not_exceed_debits=True,
    )
    open_accounts(ledger, limited)
    assert ledger.run_one(transfer(cash, limited.account_id, 1)).code is (ResultCode.EXCEEDS_DEBITS)
    assert ledger.run_one(transfer(limited.account_id, cash, 500)).code is OK
    assert ledger.run_one(transfer(cash, limited.account_id, 500)).code is OK
    assert ledger.run_one(hold(cash, limited.account_id, 1)).code is ResultCode.EXCEEDS_DEBITS


def test_totals_that_would_pass_64_bits_are_refused_as_overflow(ledger: LedgerHarness) -> None:
    cash, other = open_accounts(ledger, platform_account(), platform_account())
    assert ledger.run_one(transfer(cash, other, AMOUNT_MINOR_MAX)).code is OK
    assert ledger.run_one(transfer(cash, other, 1)).code is ResultCode.OVERFLOW
    assert ledger.account(other).totals == Totals(credits_posted=AMOUNT_MINOR_MAX)


def test_a_posting_to_an_unknown_account_is_refused_as_not_found(ledger: LedgerHarness) -> None:
    cash = open_accounts(ledger, platform_account())[0]
    nobody = uuid4()
    result = ledger.run_one(transfer(cash, nobody, 100))
    assert result.code is ResultCode.ACCOUNT_NOT_FOUND
    assert result.details["account_id"] == str(nobody)
    assert ledger.account(cash).totals == Totals()


@pytest.mark.parametrize("state", [AccountState.SUSPENDED, AccountState.CLOSED])
def test_a_posting_to_an_account_that_is_not_active_is_refused(
    ledger: LedgerHarness, state: AccountState
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    assert ledger.run_one(state_change(user, state)).code is OK
    assert ledger.run_one(transfer(cash, user, 100)).code is ResultCode.ACCOUNT_NOT_ACTIVE
    assert ledger.run_one(transfer(user, cash, 100)).code is ResultCode.ACCOUNT_NOT_ACTIVE
    assert ledger.account(user).totals == Totals()


def test_a_posting_in_another_currency_than_the_account_is_refused(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(
        ledger, platform_account(currency="EUR"), user_account(currency="EUR")
    )
    result = ledger.run_one(transfer(cash, user, 100, currency="USD"))
    assert result.code is ResultCode.CURRENCY_MISMATCH
    assert result.details["account_currency"] == "EUR"


def test_a_multi_leg_transfer_applies_every_leg(ledger: LedgerHarness) -> None:
    cash, user, fees = open_accounts(ledger, platform_account(), user_account(), platform_account())
    command = create_transfer(
        idempotency_key="deposit-with-fee",
        postings=(
            Posting(cash, Side.DEBIT, 10_000, "USD"),
            Posting(user, Side.CREDIT, 9_900, "USD"),
            Posting(fees, Side.CREDIT, 100, "USD"),
        ),
    )
    assert ledger.run_one(command).code is OK
    assert ledger.account(cash).totals == Totals(debits_posted=10_000)
    assert ledger.account(user).totals == Totals(credits_posted=9_900)
    assert ledger.account(fees).totals == Totals(credits_posted=100)


def test_a_multi_leg_transfer_may_move_two_currencies_at_once(ledger: LedgerHarness) -> None:
    usd_cash, usd_user, eur_cash, eur_user = open_accounts(
        ledger,
        platform_account(currency="USD"),
        user_account(currency="USD"),
        platform_account(currency="EUR"),
        user_account(currency="EUR"),
    )
    command = create_transfer(
        idempotency_key="fx",
        postings=(
            Posting(usd_cash, Side.DEBIT, 1_000, "USD"),
            Posting(usd_user, Side.CREDIT, 1_000, "USD"),
            Posting(eur_cash, Side.DEBIT, 900, "EUR"),
            Posting(eur_user, Side.CREDIT, 900, "EUR"),
        ),
    )
    assert ledger.run_one(command).code is OK
    assert balance(ledger, usd_user) == 1_000
    assert balance(ledger, eur_user) == 900


def test_one_refused_leg_refuses_the_whole_multi_leg_transfer(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 100)
    payee, other = open_accounts(ledger, platform_account(), platform_account())
    command = create_transfer(
        idempotency_key="split",
        postings=(
            Posting(cash, Side.DEBIT, 1_000, "USD"),
            Posting(user, Side.DEBIT, 101, "USD"),
            Posting(payee, Side.CREDIT, 1_101, "USD"),
        ),
    )
    events_before = ledger.events_written()
    assert ledger.run_one(command).code is ResultCode.INSUFFICIENT_FUNDS
    assert ledger.events_written() == events_before
    assert ledger.account(cash).totals == Totals(debits_posted=100)
    assert ledger.account(payee).totals == Totals()
    assert not ledger.has_transfer(command.transfer_id)
    assert ledger.account(other).totals == Totals()


def test_each_command_of_a_batch_is_decided_after_the_ones_before_it(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    results = ledger.run(
        transfer(user, cash, 1),
        transfer(cash, user, 100),
        transfer(user, cash, 80),
        transfer(user, cash, 30),
        transfer(user, cash, 20),
    )
    assert [result.code for result in results] == [
        ResultCode.INSUFFICIENT_FUNDS,
        OK,
        OK,
        ResultCode.INSUFFICIENT_FUNDS,
        OK,
    ]
    assert ledger.account(user).totals == Totals(debits_posted=100, credits_posted=100)


def test_a_batch_writes_one_postings_event_per_account_with_its_net_change(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    version_before = ledger.account(user).version
    commands = [transfer(cash, user, 100) for _ in range(5)] + [transfer(user, cash, 120)]
    assert [result.code for result in ledger.run(*commands)] == [OK] * 6
    account = ledger.account(user)
    assert account.version == version_before + 1
    assert account.totals == Totals(debits_posted=120, credits_posted=500)


# Holds ------------------------------------------------------------------------


def test_a_hold_reserves_funds_in_the_pending_totals(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300, timeout_s=3_600)
    assert ledger.run_one(command).code is OK
    assert ledger.account(user).totals == Totals(debits_pending=300, credits_posted=1_000)
    assert ledger.account(cash).totals == Totals(credits_pending=300, debits_posted=1_000)
    recorded = ledger.transfer(command.transfer_id)
    assert recorded.status is TransferStatus.PENDING
    assert recorded.posted_postings == ()
    assert recorded.expires_at == EPOCH + timedelta(seconds=3_600)


def test_posting_a_hold_in_full_moves_it_from_pending_to_posted(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    result = ledger.run_one(PostPendingTransfer(command.transfer_id))
    assert (result.code, result.id) == (OK, command.transfer_id)
    assert ledger.account(user).totals == Totals(debits_posted=300, credits_posted=1_000)
    assert ledger.account(cash).totals == Totals(debits_posted=1_000, credits_posted=300)
    recorded = ledger.transfer(command.transfer_id)
    assert recorded.status is TransferStatus.POSTED
    assert recorded.posted_postings == command.postings


def test_posting_part_of_a_hold_posts_that_amount_and_releases_the_rest(
    ledger: LedgerHarness,
) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    assert ledger.run_one(PostPendingTransfer(command.transfer_id, 120)).code is OK
    assert ledger.account(user).totals == Totals(debits_posted=120, credits_posted=1_000)
    assert ledger.account(cash).totals == Totals(debits_posted=1_000, credits_posted=120)
    recorded = ledger.transfer(command.transfer_id)
    assert [posting.amount_minor for posting in recorded.posted_postings] == [120, 120]
    assert [posting.amount_minor for posting in recorded.postings] == [300, 300]


def test_posting_part_of_a_multi_leg_hold_is_refused(ledger: LedgerHarness) -> None:
    cash, user, fees = open_accounts(ledger, platform_account(), user_account(), platform_account())
    command = create_transfer(
        idempotency_key="multi-hold",
        postings=(
            Posting(cash, Side.DEBIT, 300, "USD"),
            Posting(user, Side.CREDIT, 200, "USD"),
            Posting(fees, Side.CREDIT, 100, "USD"),
        ),
        pending=True,
    )
    ledger.run_one(command)
    result = ledger.run_one(PostPendingTransfer(command.transfer_id, 100))
    assert result.code is ResultCode.PARTIAL_POST_NEEDS_TWO_POSTINGS
    assert ledger.transfer(command.transfer_id).status is TransferStatus.PENDING
    assert ledger.run_one(PostPendingTransfer(command.transfer_id)).code is OK
    assert ledger.account(fees).totals == Totals(credits_posted=100)


def test_posting_more_than_a_hold_is_refused(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    result = ledger.run_one(PostPendingTransfer(command.transfer_id, 301))
    assert result.code is ResultCode.EXCEEDS_PENDING_TRANSFER_AMOUNT
    assert ledger.account(user).totals == Totals(debits_pending=300, credits_posted=1_000)


@pytest.mark.parametrize("amount", [0, -5])
def test_posting_an_amount_that_is_not_positive_is_refused(
    ledger: LedgerHarness, amount: int
) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    result = ledger.run_one(PostPendingTransfer(command.transfer_id, amount))
    assert result.code is ResultCode.AMOUNT_MUST_BE_POSITIVE


def test_voiding_a_hold_releases_it(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    assert ledger.run_one(VoidPendingTransfer(command.transfer_id)).code is OK
    assert ledger.account(user).totals == Totals(credits_posted=1_000)
    assert ledger.account(cash).totals == Totals(debits_posted=1_000)
    assert ledger.transfer(command.transfer_id).status is TransferStatus.VOIDED
    assert ledger.run_one(transfer(user, cash, 1_000)).code is OK


def test_a_hold_on_a_suspended_account_can_still_be_voided(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    ledger.run_one(state_change(user, AccountState.SUSPENDED))
    assert ledger.run_one(PostPendingTransfer(command.transfer_id)).code is (
        ResultCode.ACCOUNT_NOT_ACTIVE
    )
    assert ledger.run_one(VoidPendingTransfer(command.transfer_id)).code is OK
    assert ledger.account(user).totals == Totals(credits_posted=1_000)


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        ("post", "post", ResultCode.PENDING_TRANSFER_ALREADY_POSTED),
        ("post", "void", ResultCode.PENDING_TRANSFER_ALREADY_POSTED),
        ("void", "post", ResultCode.PENDING_TRANSFER_ALREADY_VOIDED),
        ("void", "void", ResultCode.PENDING_TRANSFER_ALREADY_VOIDED),
    ],
)
def test_a_resolved_hold_cannot_be_resolved_again(
    ledger: LedgerHarness, first: str, second: str, code: ResultCode
) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    resolve = {"post": PostPendingTransfer, "void": VoidPendingTransfer}
    assert ledger.run_one(resolve[first](command.transfer_id)).code is OK
    totals_after_first = ledger.account(user).totals
    assert ledger.run_one(resolve[second](command.transfer_id)).code is code
    assert ledger.account(user).totals == totals_after_first


def test_a_hold_resolved_twice_in_one_batch_is_resolved_once(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    results = ledger.run(
        command,
        PostPendingTransfer(command.transfer_id, 100),
        VoidPendingTransfer(command.transfer_id),
        PostPendingTransfer(command.transfer_id),
    )
    assert [result.code for result in results] == [
        OK,
        OK,
        ResultCode.PENDING_TRANSFER_ALREADY_POSTED,
        ResultCode.PENDING_TRANSFER_ALREADY_POSTED,
    ]
    assert ledger.account(user).totals == Totals(debits_posted=100, credits_posted=1_000)


def test_resolving_an_unknown_hold_is_refused_as_not_found(ledger: LedgerHarness) -> None:
    for command in (
        PostPendingTransfer(uuid4()),
        VoidPendingTransfer(uuid4()),
        ExpirePendingTransfer(uuid4()),
    ):
        assert ledger.run_one(command).code is ResultCode.PENDING_TRANSFER_NOT_FOUND


def test_resolving_a_transfer_that_was_never_pending_is_refused(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    command = transfer(cash, user, 100)
    ledger.run_one(command)
    for resolve in (PostPendingTransfer, VoidPendingTransfer, ExpirePendingTransfer):
        result = ledger.run_one(resolve(command.transfer_id))
        assert result.code is ResultCode.PENDING_TRANSFER_NOT_PENDING


def test_a_hold_cannot_be_expired_before_its_deadline(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300, timeout_s=60)
    ledger.run_one(command)
    ledger.clock.advance(timedelta(seconds=59))
    result = ledger.run_one(ExpirePendingTransfer(command.transfer_id))
    assert result.code is ResultCode.PENDING_TRANSFER_NOT_EXPIRED
    assert ledger.transfer(command.transfer_id).status is TransferStatus.PENDING


def test_a_hold_without_a_timeout_never_expires(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300, timeout_s=None)
    ledger.run_one(command)
    ledger.clock.advance(timedelta(days=365))
    result = ledger.run_one(ExpirePendingTransfer(command.transfer_id))
    assert result.code is ResultCode.PENDING_TRANSFER_NOT_EXPIRED
    assert ledger.run_one(PostPendingTransfer(command.transfer_id)).code is OK


def test_a_hold_expires_once_the_clock_reaches_its_deadline(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300, timeout_s=60)
    ledger.run_one(command)
    ledger.clock.advance(timedelta(seconds=60))
    assert ledger.run_one(ExpirePendingTransfer(command.transfer_id)).code is OK
    assert ledger.account(user).totals == Totals(credits_posted=1_000)
    assert ledger.account(cash).totals == Totals(debits_posted=1_000)
    recorded = ledger.transfer(command.transfer_id)
    assert recorded.status is TransferStatus.EXPIRED
    assert recorded.resolved_at == EPOCH + timedelta(seconds=60)


@pytest.mark.parametrize("resolve", [PostPendingTransfer, VoidPendingTransfer])
def test_a_hold_past_its_deadline_cannot_be_posted_or_voided_even_before_the_sweep(
    ledger: LedgerHarness, resolve: type[PostPendingTransfer | VoidPendingTransfer]
) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300, timeout_s=60)
    ledger.run_one(command)
    ledger.clock.advance(timedelta(seconds=61))
    assert ledger.run_one(resolve(command.transfer_id)).code is (
        ResultCode.PENDING_TRANSFER_EXPIRED
    )
    assert ledger.account(user).totals == Totals(debits_pending=300, credits_posted=1_000)


@pytest.mark.parametrize(
    "resolve", [PostPendingTransfer, VoidPendingTransfer, ExpirePendingTransfer]
)
def test_an_expired_hold_cannot_be_resolved_again(
    ledger: LedgerHarness,
    resolve: type[PostPendingTransfer | VoidPendingTransfer | ExpirePendingTransfer],
) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300, timeout_s=60)
    ledger.run_one(command)
    ledger.clock.advance(timedelta(seconds=60))
    ledger.run_one(ExpirePendingTransfer(command.transfer_id))
    assert ledger.run_one(resolve(command.transfer_id)).code is (
        ResultCode.PENDING_TRANSFER_EXPIRED
    )
    assert ledger.account(user).totals == Totals(credits_posted=1_000)


# Reversals --------------------------------------------------------------------


def test_reversing_a_transfer_restores_both_balances(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    payee = open_accounts(ledger, platform_account())[0]
    original = transfer(user, payee, 400)
    ledger.run_one(original)
    result = ledger.run_one(ReverseTransfer(original.transfer_id, {"reason": "refund"}))
    assert (result.code, result.id) == (OK, reversal_id_for(original.transfer_id))
    assert balance(ledger, user) == 1_000
    assert balance(ledger, payee) == 0
    assert ledger.account(user).totals == Totals(debits_posted=400, credits_posted=1_400)
    reversal = ledger.transfer(reversal_id_for(original.transfer_id))
    assert reversal.reverses_transfer_id == str(original.transfer_id)
    assert reversal.status is TransferStatus.POSTED
    assert reversal.metadata == {"reason": "refund"}
    assert [(p.account_id, p.side) for p in reversal.postings] == [
        (user, Side.CREDIT),
        (payee, Side.DEBIT),
    ]
    assert ledger.transfer(original.transfer_id).reversed_by_transfer_id == str(reversal.id)
    assert balance(ledger, cash) == -1_000


def test_reversing_a_transfer_twice_returns_the_first_reversal(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    original = transfer(cash, user, 400)
    ledger.run_one(original)
    first = ledger.run_one(ReverseTransfer(original.transfer_id))
    events_before = ledger.events_written()
    again = ledger.run_one(ReverseTransfer(original.transfer_id))
    assert (again.code, again.id) == (EXISTS, first.id)
    assert ledger.events_written() == events_before
    assert balance(ledger, user) == 1_000


def test_reversing_a_transfer_twice_in_one_batch_reverses_it_once(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    original = transfer(cash, user, 400)
    ledger.run_one(original)
    results = ledger.run(
        ReverseTransfer(original.transfer_id), ReverseTransfer(original.transfer_id)
    )
    assert [result.code for result in results] == [OK, EXISTS]
    assert results[0].id == results[1].id
    assert balance(ledger, user) == 1_000


def test_reversing_a_transfer_again_with_other_metadata_is_refused_as_already_reversed(
    ledger: LedgerHarness,
) -> None:
    cash, user = funded_user(ledger, 1_000)
    original = transfer(cash, user, 400)
    ledger.run_one(original)
    first = ledger.run_one(ReverseTransfer(original.transfer_id, {"reason": "refund"}))
    events_before = ledger.events_written()
    again = ledger.run_one(ReverseTransfer(original.transfer_id, {"reason": "chargeback"}))
    assert again.code is ResultCode.TRANSFER_ALREADY_REVERSED
    assert again.details == {"reversal_transfer_id": str(first.id)}
    assert ledger.events_written() == events_before
    retried = ledger.run_one(ReverseTransfer(original.transfer_id, {"reason": "refund"}))
    assert (retried.code, retried.id) == (EXISTS, first.id)
    assert balance(ledger, user) == 1_000


def test_a_reversal_cannot_be_reversed(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    original = transfer(cash, user, 400)
    ledger.run_one(original)
    reversal_id = ledger.run_one(ReverseTransfer(original.transfer_id)).id
    assert reversal_id is not None
    events_before = ledger.events_written()
    result = ledger.run_one(ReverseTransfer(reversal_id))
    assert result.code is ResultCode.REVERSAL_NOT_REVERSIBLE
    assert result.details == {"reverses_transfer_id": str(original.transfer_id)}
    assert ledger.events_written() == events_before
    assert not ledger.has_transfer(reversal_id_for(reversal_id))
    assert ledger.transfer(reversal_id).reversed_by_transfer_id is None
    assert balance(ledger, user) == 1_000


def test_a_reversal_made_earlier_in_the_same_batch_cannot_be_reversed(
    ledger: LedgerHarness,
) -> None:
    cash, user = funded_user(ledger, 1_000)
    original = transfer(cash, user, 400)
    ledger.run_one(original)
    reversal_id = reversal_id_for(original.transfer_id)
    results = ledger.run(ReverseTransfer(original.transfer_id), ReverseTransfer(reversal_id))
    assert [result.code for result in results] == [OK, ResultCode.REVERSAL_NOT_REVERSIBLE]
    assert not ledger.has_transfer(reversal_id_for(reversal_id))
    assert balance(ledger, user) == 1_000


def test_reversing_part_of_a_posted_hold_reverses_what_was_posted(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    ledger.run_one(PostPendingTransfer(command.transfer_id, 120))
    assert ledger.run_one(ReverseTransfer(command.transfer_id)).code is OK
    assert balance(ledger, user) == 1_000
    reversal = ledger.transfer(reversal_id_for(command.transfer_id))
    assert [posting.amount_minor for posting in reversal.postings] == [120, 120]


@pytest.mark.parametrize("resolution", [None, "void", "expire"])
def test_only_a_posted_transfer_can_be_reversed(
    ledger: LedgerHarness, resolution: str | None
) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300, timeout_s=60)
    ledger.run_one(command)
    if resolution == "void":
        ledger.run_one(VoidPendingTransfer(command.transfer_id))
    elif resolution == "expire":
        ledger.clock.advance(timedelta(seconds=60))
        ledger.run_one(ExpirePendingTransfer(command.transfer_id))
    result = ledger.run_one(ReverseTransfer(command.transfer_id))
    assert result.code is ResultCode.TRANSFER_NOT_POSTED
    assert not ledger.has_transfer(reversal_id_for(command.transfer_id))


def test_reversing_an_unknown_transfer_is_refused_as_not_found(ledger: LedgerHarness) -> None:
    assert ledger.run_one(ReverseTransfer(uuid4())).code is ResultCode.TRANSFER_NOT_FOUND


def test_a_reversal_that_would_overdraw_an_account_is_refused(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    payee = open_accounts(ledger, platform_account())[0]
    deposit = transfer(cash, user, 500)
    ledger.run_one(deposit)
    ledger.run_one(transfer(user, payee, 200))
    result = ledger.run_one(ReverseTransfer(deposit.transfer_id))
    assert result.code is ResultCode.INSUFFICIENT_FUNDS
    assert ledger.transfer(deposit.transfer_id).reversed_by_transfer_id is None
    assert balance(ledger, user) == 300


# Linked chains ------------------------------------------------------------------


def test_a_linked_chain_whose_members_all_succeed_is_written(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    payee = open_accounts(ledger, platform_account())[0]
    results = ledger.run(linked(transfer(cash, user, 100)), transfer(user, payee, 100))
    assert [result.code for result in results] == [OK, OK]
    assert ledger.account(payee).totals == Totals(credits_posted=100)


def test_a_failing_member_fails_its_whole_chain_and_nothing_of_it_is_written(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    payee = open_accounts(ledger, platform_account())[0]
    chain = [
        linked(transfer(cash, user, 100)),
        linked(hold(user, payee, 50)),
        linked(transfer(user, payee, 51)),
        transfer(cash, payee, 7),
    ]
    events_before = ledger.events_written()
    results = ledger.run(*chain)
    assert [result.code for result in results] == [
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.INSUFFICIENT_FUNDS,
        ResultCode.LINKED_EVENT_FAILED,
    ]
    assert all(result.id is None for result in results)
    assert ledger.events_written() == events_before
    for command in chain:
        assert not ledger.has_transfer(command.transfer_id)
    assert ledger.account(user).totals == Totals()
    assert ledger.account(payee).totals == Totals()


def test_a_chain_whose_first_member_fails_does_not_run_the_rest(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    results = ledger.run(linked(transfer(user, cash, 1)), transfer(cash, user, 100))
    assert [result.code for result in results] == [
        ResultCode.INSUFFICIENT_FUNDS,
        ResultCode.LINKED_EVENT_FAILED,
    ]
    assert ledger.account(user).totals == Totals()


def test_commands_around_a_failed_chain_stand_on_their_own(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    results = ledger.run(
        transfer(cash, user, 100),
        linked(transfer(cash, user, 5)),
        transfer(user, cash, 1_000),
        transfer(cash, user, 10),
    )
    assert [result.code for result in results] == [
        OK,
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.INSUFFICIENT_FUNDS,
        OK,
    ]
    assert ledger.account(user).totals == Totals(credits_posted=110)


def test_two_chains_in_one_batch_succeed_or_fail_separately(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    results = ledger.run(
        linked(transfer(cash, user, 100)),
        transfer(user, cash, 100),
        linked(transfer(cash, user, 5)),
        transfer(user, cash, 6),
    )
    assert [result.code for result in results] == [
        OK,
        OK,
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.INSUFFICIENT_FUNDS,
    ]
    assert ledger.account(user).totals == Totals(debits_posted=100, credits_posted=100)


def test_the_last_command_of_a_batch_cannot_leave_a_chain_open(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    events_before = ledger.events_written()
    results = ledger.run(linked(transfer(cash, user, 100)), linked(transfer(cash, user, 5)))
    assert [result.code for result in results] == [
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.LINKED_EVENT_CHAIN_OPEN,
    ]
    assert ledger.events_written() == events_before


def test_a_single_command_linked_to_nothing_leaves_the_chain_open(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    result = ledger.run_one(linked(transfer(cash, user, 100)))
    assert result.code is ResultCode.LINKED_EVENT_CHAIN_OPEN
    assert ledger.account(user).totals == Totals()


def test_a_key_used_in_a_failed_chain_is_free_for_a_later_request(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    deposit = transfer(cash, user, 100, key="deposit-1")
    ledger.run(linked(deposit), transfer(user, cash, 1_000))
    result = ledger.run_one(deposit)
    assert (result.code, result.id) == (OK, deposit.transfer_id)
    assert ledger.account(user).totals == Totals(credits_posted=100)


def test_a_failed_chain_undoes_a_hold_it_posted(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    command = hold(user, cash, 300)
    ledger.run_one(command)
    results = ledger.run(
        PostPendingTransfer(command.transfer_id, linked=True), transfer(user, cash, 10_000)
    )
    assert [result.code for result in results] == [
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.INSUFFICIENT_FUNDS,
    ]
    assert ledger.transfer(command.transfer_id).status is TransferStatus.PENDING
    assert ledger.account(user).totals == Totals(debits_pending=300, credits_posted=1_000)
    assert ledger.run_one(VoidPendingTransfer(command.transfer_id)).code is OK


def test_a_failed_chain_undoes_a_reversal_it_made(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 1_000)
    original = transfer(cash, user, 400)
    ledger.run_one(original)
    results = ledger.run(
        ReverseTransfer(original.transfer_id, linked=True), transfer(user, cash, 10_000)
    )
    assert results[0].code is ResultCode.LINKED_EVENT_FAILED
    assert not ledger.has_transfer(reversal_id_for(original.transfer_id))
    assert ledger.transfer(original.transfer_id).reversed_by_transfer_id is None
    assert ledger.run_one(ReverseTransfer(original.transfer_id)).code is OK


def test_a_failed_chain_undoes_an_account_it_opened(ledger: LedgerHarness) -> None:
    cash = open_accounts(ledger, platform_account())[0]
    account = user_account()
    opening = dataclasses.replace(account, linked=True)
    results = ledger.run(opening, transfer(account.account_id, cash, 1))
    assert [result.code for result in results] == [
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.INSUFFICIENT_FUNDS,
    ]
    assert ledger.app.load_account(account.account_id) is None


def test_a_linked_state_change_takes_effect_for_the_rest_of_its_chain(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    change = ChangeAccountState(user, AccountState.SUSPENDED, "test", "operator-1", linked=True)
    results = ledger.run(change, transfer(cash, user, 100))
    assert results[0].code is ResultCode.LINKED_EVENT_FAILED
    assert results[1].code is ResultCode.ACCOUNT_NOT_ACTIVE
    assert ledger.account(user).state is AccountState.ACTIVE


def test_a_state_change_after_postings_in_one_batch_is_recorded_after_them(
    ledger: LedgerHarness,
) -> None:
    cash, user = funded_user(ledger, 100)
    results = ledger.run(
        transfer(user, cash, 100), state_change(user, AccountState.CLOSED), transfer(cash, user, 1)
    )
    assert [result.code for result in results] == [OK, OK, ResultCode.ACCOUNT_NOT_ACTIVE]
    account = ledger.account(user)
    assert account.state is AccountState.CLOSED
    assert account.totals.debits_posted == account.totals.credits_posted == 100


def test_a_chain_ended_by_a_refused_state_change_writes_nothing(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    events_before = ledger.events_written()
    results = ledger.run(linked(transfer(cash, user, 100)), state_change(user, AccountState.CLOSED))
    assert [result.code for result in results] == [
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.ACCOUNT_BALANCE_NOT_ZERO,
    ]
    assert ledger.events_written() == events_before
    assert ledger.account(user).totals == Totals()
    # The writer's cached copy must not keep the undone chain either.
    assert ledger.run_one(transfer(user, cash, 1)).code is ResultCode.INSUFFICIENT_FUNDS
    assert ledger.account(user).totals == Totals()


# Account states -----------------------------------------------------------------


def test_a_suspended_account_takes_postings_again_once_reactivated(
    ledger: LedgerHarness,
) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    assert ledger.run_one(state_change(user, AccountState.SUSPENDED)).code is OK
    assert ledger.account(user).state is AccountState.SUSPENDED
    assert ledger.run_one(state_change(user, AccountState.ACTIVE)).code is OK
    assert ledger.run_one(transfer(cash, user, 100)).code is OK


def test_an_account_with_pending_transfers_cannot_be_closed(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    command = hold(cash, user, 100)
    ledger.run_one(command)
    result = ledger.run_one(state_change(user, AccountState.CLOSED))
    assert result.code is ResultCode.ACCOUNT_HAS_PENDING_TRANSFERS
    assert ledger.account(user).state is AccountState.ACTIVE
    ledger.run_one(VoidPendingTransfer(command.transfer_id))
    assert ledger.run_one(state_change(user, AccountState.CLOSED)).code is OK


def test_an_account_holding_money_cannot_be_closed(ledger: LedgerHarness) -> None:
    _, user = funded_user(ledger, 100)
    result = ledger.run_one(state_change(user, AccountState.CLOSED))
    assert result.code is ResultCode.ACCOUNT_BALANCE_NOT_ZERO
    assert ledger.account(user).state is AccountState.ACTIVE


def test_an_account_whose_money_was_moved_out_can_be_closed(ledger: LedgerHarness) -> None:
    cash, user = funded_user(ledger, 100)
    ledger.run_one(transfer(user, cash, 100))
    assert ledger.run_one(state_change(user, AccountState.CLOSED)).code is OK
    account = ledger.account(user)
    assert account.state is AccountState.CLOSED
    assert account.state_reason == "test"


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], AccountState.ACTIVE),
        ([AccountState.SUSPENDED], AccountState.SUSPENDED),
        ([AccountState.CLOSED], AccountState.ACTIVE),
        ([AccountState.CLOSED], AccountState.SUSPENDED),
        ([AccountState.CLOSED], AccountState.CLOSED),
        ([AccountState.SUSPENDED, AccountState.CLOSED], AccountState.ACTIVE),
    ],
)
def test_a_state_change_that_is_not_an_allowed_transition_is_refused(
    ledger: LedgerHarness, path: list[AccountState], refused: AccountState
) -> None:
    user = open_accounts(ledger, user_account())[0]
    for state in path:
        assert ledger.run_one(state_change(user, state)).code is OK
    result = ledger.run_one(state_change(user, refused))
    assert result.code is ResultCode.INVALID_STATE_TRANSITION
    assert ledger.account(user).state is (path[-1] if path else AccountState.ACTIVE)


def test_a_state_change_of_an_unknown_account_is_refused_as_not_found(
    ledger: LedgerHarness,
) -> None:
    result = ledger.run_one(state_change(uuid4(), AccountState.SUSPENDED))
    assert result.code is ResultCode.ACCOUNT_NOT_FOUND


def test_a_state_change_takes_effect_in_batch_order(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    results = ledger.run(
        transfer(cash, user, 100),
        state_change(user, AccountState.SUSPENDED),
        transfer(cash, user, 10),
        state_change(user, AccountState.ACTIVE),
        transfer(cash, user, 1),
    )
    assert [result.code for result in results] == [
        OK,
        OK,
        ResultCode.ACCOUNT_NOT_ACTIVE,
        OK,
        OK,
    ]
    account = ledger.account(user)
    assert account.totals == Totals(credits_posted=101)
    assert account.state is AccountState.ACTIVE


def test_an_account_opened_funded_and_closed_in_one_batch(ledger: LedgerHarness) -> None:
    cash = open_accounts(ledger, platform_account())[0]
    account = user_account()
    results = ledger.run(
        account,
        transfer(cash, account.account_id, 50),
        transfer(account.account_id, cash, 50),
        state_change(account.account_id, AccountState.CLOSED),
    )
    assert [result.code for result in results] == [OK, OK, OK, OK]
    closed = ledger.account(account.account_id)
    assert closed.state is AccountState.CLOSED
    assert closed.totals == Totals(debits_posted=50, credits_posted=50)


# The batch itself ----------------------------------------------------------------


def test_nothing_touches_an_aggregate_until_the_batch_finishes(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    accounts = {cash: ledger.account(cash), user: ledger.account(user)}
    batch = LedgerBatch(accounts, {}, EPOCH)
    command = transfer(cash, user, 100)
    results = batch.execute_all([command])
    assert results[0].code is OK
    assert accounts[user].totals == Totals()
    assert not accounts[user].pending_events
    outcome = batch.finish()
    assert accounts[user].totals == Totals(credits_posted=100)
    written = {aggregate.id for aggregate in outcome.aggregates}
    written |= {event.originator_id for event in outcome.recorded_transfers}
    assert written == {cash, user, command.transfer_id}
    assert outcome.pending_deadlines_added == {}


def test_a_finished_batch_records_the_deadlines_of_new_holds(ledger: LedgerHarness) -> None:
    cash, user = open_accounts(ledger, platform_account(), user_account())
    accounts = {cash: ledger.account(cash), user: ledger.account(user)}
    batch = LedgerBatch(accounts, {}, EPOCH)
    kept, posted = hold(cash, user, 100, timeout_s=30), hold(cash, user, 5, timeout_s=30)
    untimed = hold(cash, user, 7, timeout_s=None)
    batch.execute_all([kept, posted, untimed, PostPendingTransfer(posted.transfer_id)])
    outcome = batch.finish()
    assert outcome.pending_deadlines_added == {kept.transfer_id: EPOCH + timedelta(seconds=30)}
    assert posted.transfer_id in outcome.pending_deadlines_removed


def test_a_finished_batch_takes_no_more_commands(ledger: LedgerHarness) -> None:
    batch = LedgerBatch({}, {}, EPOCH)
    batch.finish()
    with pytest.raises(AssertionError):
        batch.execute(user_account())
