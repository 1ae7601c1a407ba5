"""The broker and deposits checks on real PostgreSQL: funded accounts made and
traded through the services, then broken at the broker or in the ledger
around the services, each break found by its check while the other passes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final
from uuid import UUID, uuid4

from application.clock import SettableClock
from application.funded_accounts import FUNDED_SCOPE, platform_account
from application.merges import MergeRequest
from application.ports.broker import BrokerUnavailable, UnknownAccount
from domain.account import AccountKind
from domain.commands import Command, ReverseTransfer, create_transfer, open_account
from domain.merge import MergeStatus, MergeTarget, MergeTrigger, MergeUrgency
from domain.money import describe_money
from domain.positions import PositionSide
from domain.reconciliation import CheckResult, CheckStatus, DiscrepancyKind, Severity
from domain.tiers import TIER_CURRENCY, TIERS, TierName
from domain.transfer import Posting, Side
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.reconciliation.broker_check import BROKER_CHECK, BrokerCheck
from interface.reconciliation.deposits_check import (
    DEPOSITS_CHECK,
    DepositsCheck,
    funding_transfer_id,
)
from tests.support.funded_accounts import (
    activate_funded_account,
    activated_account,
    save_funded_accounts,
)
from tests.support.withdrawals import profitable_funded_account

GEN_START: Final[int] = TIERS[TierName.GEN].minimum_capital_minor
SYMBOL: Final[str] = "RECO"
ENTRY_MINOR: Final[int] = 100_00
# Four units at $100: inside a Gen account's 5 % risk limit.
QUANTITY: Final[int] = 4


def _broker(ledger: Ledger) -> SimulatedBroker:
    assert isinstance(ledger.broker, SimulatedBroker)
    return ledger.broker


def _broker_check(ledger: Ledger) -> BrokerCheck:
    # No wait before the recheck: nothing trades behind these tests' backs.
    return BrokerCheck(ledger.database_url, ledger.broker, recheck_delay_s=0.0)


def _deposits_check(ledger: Ledger) -> DepositsCheck:
    return DepositsCheck(ledger.database_url)


def _trading_account(ledger: Ledger, owner_id: str) -> tuple[UUID, str]:
    """A Gen account holding one long position of four units at $100."""
    funded_account_id = activate_funded_account(ledger, owner_id=owner_id)
    _broker(ledger).set_price(SYMBOL, bid_minor=ENTRY_MINOR - 1, ask_minor=ENTRY_MINOR)
    opened = ledger.funded_accounts.open_position(
        funded_account_id, SYMBOL, PositionSide.LONG, QUANTITY
    )
    return funded_account_id, opened.position_id


def _kinds(result: CheckResult) -> list[DiscrepancyKind]:
    return [discrepancy.kind for discrepancy in result.discrepancies]


def _assert_passed(result: CheckResult) -> None:
    assert (result.status, list(result.discrepancies)) == (CheckStatus.PASSED, [])
    assert result.expected == result.actual


def _write(ledger: Ledger, commands: Sequence[Command]) -> None:
    receipt = ledger.service.execute(list(commands))
    assert all(result.succeeded for result in receipt.results), receipt.results


def _merge_back(child_id: UUID, amount_minor: int) -> MergeRequest:
    return MergeRequest(
        source_id=child_id,
        target_kind=MergeTarget.PARENT,
        target_id=None,
        amount_minor=amount_minor,
        trigger=MergeTrigger.MANUAL,
        urgency=MergeUrgency.MEDIUM,
        reason="consolidate",
        request_key="merge-1",
        actor="admin:ops",
    )


# A ledger that agrees with the broker and the funding records -------------------------


def test_accounts_traded_forked_and_merged_through_the_services_pass_both_checks(
    ledger: Ledger, clock: SettableClock
) -> None:
    _trading_account(ledger, "trader-open")
    profitable_funded_account(ledger, "trader-closed", 400)
    activate_funded_account(ledger, owner_id="trader-idle")
    # A parent rich enough to fork a child, which gives part of it back.
    parent_id = profitable_funded_account(ledger, "trader-family", 120_000_00)
    child = ledger.forks.propose(parent_id, "service:platform").child
    assert child is not None
    clock.advance(timedelta(days=1, minutes=1))
    merge = ledger.merges.propose(_merge_back(child.id, 25_000_00))
    assert merge.status is MergeStatus.COMPLETED

    broker = _broker_check(ledger).run()
    deposits = _deposits_check(ledger).run()

    _assert_passed(broker)
    assert (broker.name, broker.measure, broker.expected) == (BROKER_CHECK, "open positions", 1)
    _assert_passed(deposits)
    # Four accounts funded by the platform; the child's capital came from its parent.
    assert (deposits.name, deposits.expected) == (DEPOSITS_CHECK, 4 * GEN_START)


# The broker breaks --------------------------------------------------------------------


def test_a_position_opened_at_the_broker_alone_is_unknown_to_the_ledger(
    ledger: Ledger,
) -> None:
    funded_account_id, _ = _trading_account(ledger, "trader-1")
    stray = _broker(ledger).open_position(
        funded_account_id, SYMBOL, PositionSide.LONG, 2, "by-hand-1"
    )

    first = _broker_check(ledger).run()
    again = _broker_check(ledger).run()

    assert (first.status, _kinds(first)) == (
        CheckStatus.FAILED,
        [DiscrepancyKind.POSITION_UNKNOWN_TO_LEDGER],
    )
    (unknown,) = first.discrepancies
    assert stray.position_id in unknown.subject and str(funded_account_id) in unknown.subject
    assert unknown.severity is Severity.HIGH
    assert unknown.amount_minor == 2 * (ENTRY_MINOR - 1)
    assert (first.expected, first.actual) == (1, 2)
    # A later run sees the same fault by the same fingerprint.
    assert [d.fingerprint for d in again.discrepancies] == [unknown.fingerprint]
    _assert_passed(_deposits_check(ledger).run())


def test_a_position_closed_at_the_broker_alone_is_missing_and_its_pnl_differs(
    ledger: Ledger,
) -> None:
    funded_account_id, position_id = _trading_account(ledger, "trader-1")
    broker = _broker(ledger)
    broker.set_price(SYMBOL, bid_minor=ENTRY_MINOR + 100, ask_minor=ENTRY_MINOR + 101)
    closed = broker.close_position(position_id, "by-hand-close")
    assert closed.realized_pnl_minor == 100 * QUANTITY
    equity = broker.equity(funded_account_id)
    assert equity.realized_pnl_minor == closed.realized_pnl_minor
    assert equity.cash_minor == GEN_START + equity.realized_pnl_minor

    result = _broker_check(ledger).run()

    assert result.status is CheckStatus.FAILED
    by_kind = {discrepancy.kind: discrepancy for discrepancy in result.discrepancies}
    assert set(by_kind) == {
        DiscrepancyKind.POSITION_MISSING_AT_BROKER,
        DiscrepancyKind.REALIZED_PNL_DIFFERS,
    }
    missing = by_kind[DiscrepancyKind.POSITION_MISSING_AT_BROKER]
    assert position_id in missing.subject
    assert (missing.amount_minor, missing.severity) == (QUANTITY * ENTRY_MINOR, Severity.HIGH)
    pnl = by_kind[DiscrepancyKind.REALIZED_PNL_DIFFERS]
    assert (pnl.amount_minor, pnl.expected, pnl.actual) == (400, "0.00 USD", "4.00 USD")
    assert pnl.severity is Severity.MEDIUM
    assert (result.expected, result.actual) == (1, 0)
    _assert_passed(_deposits_check(ledger).run())


def test_an_unavailable_broker_errs_for_its_account_while_the_others_are_checked(
    ledger: Ledger,
) -> None:
    down, _ = _trading_account(ledger, "trader-down")
    up, _ = _trading_account(ledger, "trader-up")
    broker = _broker(ledger)
    stray = broker.open_position(up, SYMBOL, PositionSide.SHORT, 1, "by-hand-1")
    broker.set_unavailable(down)

    result = _broker_check(ledger).run()

    assert result.status is CheckStatus.FAILED
    by_subject = {discrepancy.subject: discrepancy for discrepancy in result.discrepancies}
    assert by_subject[f"broker account {down}"].kind is DiscrepancyKind.CHECK_ERROR
    assert by_subject[f"funded account {up} position {stray.position_id}"].kind is (
        DiscrepancyKind.POSITION_UNKNOWN_TO_LEDGER
    )
    assert len(by_subject) == 2
    # The ledger's two positions; only the answering account's two at the broker.
    assert (result.expected, result.actual) == (2, 2)

    broker.set_unavailable(up)
    nobody = _broker_check(ledger).run()
    assert nobody.status is CheckStatus.ERRORED and nobody.reason is not None
    assert set(_kinds(nobody)) == {DiscrepancyKind.CHECK_ERROR}
    _assert_passed(_deposits_check(ledger).run())


def test_a_broker_that_lost_a_trading_account_is_told_from_one_never_traded(
    ledger: Ledger,
) -> None:
    lost, _ = _trading_account(ledger, "trader-lost")
    activate_funded_account(ledger, owner_id="trader-idle")
    # The first look and the recheck both find no account.
    _broker(ledger).fail_next(lost, UnknownAccount(lost), times=2)

    result = _broker_check(ledger).run()

    assert _kinds(result) == [DiscrepancyKind.BROKER_ACCOUNT_MISSING]
    (missing,) = result.discrepancies
    assert missing.subject == f"broker account {lost}"
    assert (missing.amount_minor, missing.severity) == (QUANTITY * ENTRY_MINOR, Severity.HIGH)


def test_a_broker_error_gone_by_the_recheck_is_not_reported(ledger: Ledger) -> None:
    funded_account_id, _ = _trading_account(ledger, "trader-1")
    _broker(ledger).fail_next(funded_account_id, BrokerUnavailable("a blip"))

    _assert_passed(_broker_check(ledger).run())


# The deposits break -------------------------------------------------------------------


def test_capital_paid_from_the_funding_account_around_the_service_is_unknown_to_funding(
    ledger: Ledger,
) -> None:
    activate_funded_account(ledger, owner_id="trader-1")
    funding = platform_account(AccountKind.FUNDING)
    pocket = open_account(
        idempotency_key=f"pocket-{uuid4()}", currency=TIER_CURRENCY, owner_id="someone"
    )
    around = create_transfer(
        idempotency_key=f"around-{uuid4()}",
        postings=(
            Posting(funding.account_id, Side.DEBIT, 5_000_00, TIER_CURRENCY),
            Posting(pocket.account_id, Side.CREDIT, 5_000_00, TIER_CURRENCY),
        ),
        metadata={"purpose": "funding"},
    )
    _write(ledger, [funding, pocket, around])

    result = _deposits_check(ledger).run()

    assert (result.status, _kinds(result)) == (
        CheckStatus.FAILED,
        [DiscrepancyKind.DEPOSIT_UNKNOWN_TO_FUNDING],
    )
    (unknown,) = result.discrepancies
    assert unknown.subject == f"transfer {around.transfer_id}"
    assert (unknown.amount_minor, unknown.severity) == (5_000_00, Severity.CRITICAL)
    assert (result.expected, result.actual) == (GEN_START, GEN_START + 5_000_00)
    _assert_passed(_broker_check(ledger).run())


def test_a_reversed_funding_transfer_no_longer_funds_its_activation(ledger: Ledger) -> None:
    funded_account_id = activate_funded_account(ledger, owner_id="trader-1")
    _write(ledger, [ReverseTransfer(funding_transfer_id(funded_account_id))])

    result = _deposits_check(ledger).run()

    assert _kinds(result) == [DiscrepancyKind.DEPOSIT_AMOUNT_DIFFERS]
    (differs,) = result.discrepancies
    assert differs.subject == f"funding of funded account {funded_account_id}"
    assert (differs.amount_minor, differs.expected, differs.actual) == (
        GEN_START,
        describe_money(GEN_START, "USD"),
        "0.00 USD",
    )
    assert (result.expected, result.actual) == (GEN_START, 0)
    _assert_passed(_broker_check(ledger).run())


def test_activations_recorded_without_their_funding_or_with_another_amount(
    ledger: Ledger,
) -> None:
    unfunded = activated_account(owner_id="trader-1", at=ledger.clock.now())
    trader = open_account(
        idempotency_key=f"account-{uuid4()}",
        scope=FUNDED_SCOPE,
        currency=TIER_CURRENCY,
        owner_id="trader-2",
    )
    underfunded = activated_account(
        owner_id="trader-2", at=ledger.clock.now(), ledger_account_id=trader.account_id
    )
    save_funded_accounts(ledger.app, unfunded, underfunded)
    funding = platform_account(AccountKind.FUNDING)
    short = GEN_START - 250_00
    _write(
        ledger,
        [
            funding,
            trader,
            create_transfer(
                idempotency_key=f"funding-{underfunded.id}",
                scope=FUNDED_SCOPE,
                postings=(
                    Posting(funding.account_id, Side.DEBIT, short, TIER_CURRENCY),
                    Posting(trader.account_id, Side.CREDIT, short, TIER_CURRENCY),
                ),
                metadata={"funded_account_id": str(underfunded.id), "purpose": "funding"},
            ),
        ],
    )

    result = _deposits_check(ledger).run()

    by_subject = {discrepancy.subject: discrepancy for discrepancy in result.discrepancies}
    assert len(by_subject) == 2
    missing = by_subject[f"funding of funded account {unfunded.id}"]
    assert (missing.kind, missing.amount_minor) == (
        DiscrepancyKind.DEPOSIT_TRANSFER_MISSING,
        GEN_START,
    )
    differs = by_subject[f"funding of funded account {underfunded.id}"]
    assert (differs.kind, differs.amount_minor) == (DiscrepancyKind.DEPOSIT_AMOUNT_DIFFERS, 250_00)
    assert differs.severity is Severity.HIGH
    assert (result.expected, result.actual) == (2 * GEN_START, short)
    _assert_passed(_broker_check(ledger).run())
