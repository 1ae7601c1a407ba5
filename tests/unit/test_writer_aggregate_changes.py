"""The writer records other aggregates' events with a submission's commands,
all or nothing, and never lets two submissions build on one version."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from uuid import uuid4

import pytest

from application.writer import AggregateChanges, ChangesOutcome
from domain.commands import OpenAccount
from domain.funded_account import FundedAccount
from domain.funded_account_states import FundedAccountState
from domain.result_codes import ResultCode
from domain.tiers import TierName
from tests.support.ledgers import LedgerHarness, in_memory_ledger, platform_account, transfer

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _funded(ledger_account: OpenAccount) -> FundedAccount:
    return FundedAccount.activate(
        assessment_id=f"assessment-{uuid4()}",
        owner_id="owner-1",
        tier=TierName.GEN,
        profit_split=Fraction(4, 5),
        completed_at=AT,
        ledger_account_id=ledger_account.account_id,
        activated_at=AT,
        actor="test",
    )


def _stored(ledger: LedgerHarness, account: FundedAccount) -> FundedAccount | None:
    return ledger.app.load_funded_account(account.id)


def test_changes_are_recorded_with_commands_that_succeed() -> None:
    ledger = in_memory_ledger()
    funding, trader = platform_account(), platform_account()
    funded = _funded(trader)
    receipt = ledger.writer.apply(
        [funding, trader, transfer(funding.account_id, trader.account_id, 1_000_000)],
        AggregateChanges.collect(funded),
    )
    assert receipt.changes is ChangesOutcome.RECORDED
    assert all(result.code is ResultCode.OK for result in receipt.results)
    stored = _stored(ledger, funded)
    assert stored is not None and stored.starting_balance_minor == funded.starting_balance_minor
    assert ledger.account(trader.account_id).totals.credits_posted == 1_000_000


def test_a_refused_command_records_neither_the_changes_nor_the_other_commands() -> None:
    ledger = in_memory_ledger()
    funding, trader = platform_account(), platform_account()
    ledger.run(funding)
    funded = _funded(trader)
    money = transfer(funding.account_id, trader.account_id, 1_000_000)
    # The trader's account is not opened: the transfer is refused, so the
    # account opened before it in the submission is rolled back too.
    receipt = ledger.writer.apply([money], AggregateChanges.collect(funded))
    assert receipt.changes is ChangesOutcome.REFUSED
    assert receipt.results[0].code is ResultCode.ACCOUNT_NOT_FOUND
    assert _stored(ledger, funded) is None
    assert not ledger.has_transfer(money.transfer_id)

    opened_then_refused = ledger.writer.apply(
        [trader, transfer(funding.account_id, uuid4(), 5)],
        AggregateChanges.collect(_funded(trader)),
    )
    assert opened_then_refused.changes is ChangesOutcome.REFUSED
    assert opened_then_refused.results[0].code is ResultCode.LINKED_EVENT_FAILED
    assert ledger.app.load_account(trader.account_id) is None


def test_two_submissions_on_one_version_in_one_batch_the_second_is_stale() -> None:
    ledger = in_memory_ledger()
    funded = _funded(platform_account())
    assert (
        ledger.writer.apply([], AggregateChanges.collect(funded)).changes is ChangesOutcome.RECORDED
    )
    first, second = _stored(ledger, funded), _stored(ledger, funded)
    assert first is not None and second is not None
    first.change_state(FundedAccountState.SUSPENDED, "held", "admin", AT)
    second.change_state(FundedAccountState.SAFE, "paused", "admin", AT)
    receipts = ledger.writer.apply_submissions(
        [[], []], [AggregateChanges.collect(first), AggregateChanges.collect(second)]
    )
    assert [receipt.changes for receipt in receipts] == [
        ChangesOutcome.RECORDED,
        ChangesOutcome.STALE,
    ]
    stored = _stored(ledger, funded)
    assert stored is not None and stored.state is FundedAccountState.SUSPENDED


def test_changes_built_on_an_old_version_are_stale_and_their_commands_not_applied() -> None:
    ledger = in_memory_ledger()
    funding, trader = platform_account(), platform_account()
    ledger.run(funding, trader)
    funded = _funded(trader)
    ledger.writer.apply([], AggregateChanges.collect(funded))
    behind, ahead = _stored(ledger, funded), _stored(ledger, funded)
    assert behind is not None and ahead is not None
    ahead.change_state(FundedAccountState.SUSPENDED, "held", "admin", AT)
    ledger.writer.apply([], AggregateChanges.collect(ahead))
    behind.change_state(FundedAccountState.SAFE, "paused", "admin", AT)
    money = transfer(funding.account_id, trader.account_id, 500)
    receipt = ledger.writer.apply([money], AggregateChanges.collect(behind))
    assert receipt.changes is ChangesOutcome.STALE
    assert receipt.results[0].code is ResultCode.CONCURRENT_CHANGE
    assert not ledger.has_transfer(money.transfer_id)


def test_collect_takes_the_events_once_and_refuses_nothing_new() -> None:
    funded = _funded(platform_account())
    changes = AggregateChanges.collect(funded)
    assert changes.versions_before == {funded.id: 0}
    assert len(changes.events) == 1
    with pytest.raises(ValueError, match="no new events"):
        AggregateChanges.collect(funded)
