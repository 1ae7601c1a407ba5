"""Merges on real PostgreSQL: back into the parent, into a sibling, into a new
account, partial; approval by urgency; positions first; rollback."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from application.clock import SettableClock
from application.merges import MergeRequest
from domain.account import AccountState
from domain.funded_account_states import FundedAccountState
from domain.merge import MergeStatus, MergeTarget, MergeTrigger, MergeUrgency
from domain.positions import PositionSide
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.audit.verify import verify_ledger
from interface.bootstrap import Ledger
from projections.registry import view_names
from tests.support.withdrawals import profitable_funded_account

GEN_START = 10_000_00


def _posted(ledger: Ledger, funded_account_id: UUID) -> int:
    funded = ledger.funded_accounts.require_funded_account(funded_account_id)
    account = ledger.service.account(funded.ledger_account_id)
    assert account is not None
    return account.totals.credits_posted - account.totals.debits_posted


def _family(ledger: Ledger, clock: SettableClock, children: int = 1) -> tuple[UUID, list[UUID]]:
    """A Gen parent with Rev children made by forks, a day apart."""
    parent_id = profitable_funded_account(ledger, "trader-1", 10_000_00 + children * 110_000_00)
    made = []
    for _ in range(children):
        child = ledger.forks.propose(parent_id, "service:platform").child
        assert child is not None
        made.append(child.id)
        clock.advance(timedelta(days=1, minutes=1))
    return parent_id, made


def _request(
    source: UUID,
    kind: MergeTarget,
    *,
    target: UUID | None = None,
    amount: int | None = None,
    trigger: MergeTrigger = MergeTrigger.MANUAL,
    urgency: MergeUrgency = MergeUrgency.MEDIUM,
    key: str = "merge-1",
) -> MergeRequest:
    return MergeRequest(
        source_id=source,
        target_kind=kind,
        target_id=target,
        amount_minor=amount,
        trigger=trigger,
        urgency=urgency,
        reason="consolidate",
        request_key=key,
        actor="admin:ops",
    )


def test_a_child_merged_back_into_its_parent_is_closed_and_nothing_is_lost(
    ledger: Ledger, clock: SettableClock
) -> None:
    parent_id, (child_id,) = _family(ledger, clock)
    total_before = _posted(ledger, parent_id) + _posted(ledger, child_id)
    merge = ledger.merges.propose(_request(child_id, MergeTarget.PARENT))
    assert merge.status is MergeStatus.COMPLETED and merge.moved_minor == 100_000_00
    child = ledger.funded_accounts.require_funded_account(child_id)
    assert child.state is FundedAccountState.CLOSED and child.current_balance_minor == 0
    child_ledger = ledger.service.account(child.ledger_account_id)
    assert child_ledger is not None and child_ledger.state is AccountState.CLOSED
    assert _posted(ledger, parent_id) == total_before
    parent = ledger.funded_accounts.require_funded_account(parent_id)
    # Capital coming back is capital, not profit.
    assert parent.starting_balance_minor == GEN_START + 100_000_00
    # The same request again finds the same merge.
    assert ledger.merges.propose(_request(child_id, MergeTarget.PARENT)).id == merge.id


def test_a_partial_merge_leaves_the_source_trading(ledger: Ledger, clock: SettableClock) -> None:
    _, (child_id,) = _family(ledger, clock)
    merge = ledger.merges.propose(_request(child_id, MergeTarget.PARENT, amount=25_000_00))
    assert merge.status is MergeStatus.COMPLETED
    child = ledger.funded_accounts.require_funded_account(child_id)
    assert (child.state, child.current_balance_minor) == (FundedAccountState.ACTIVE, 75_000_00)
    assert _posted(ledger, child_id) == 75_000_00


def test_into_a_sibling_and_into_a_new_account(ledger: Ledger, clock: SettableClock) -> None:
    parent_id, (first, second) = _family(ledger, clock, children=2)
    into_sibling = ledger.merges.propose(_request(second, MergeTarget.SIBLING, target=first))
    assert into_sibling.status is MergeStatus.COMPLETED
    assert _posted(ledger, first) == 200_000_00
    fresh = ledger.merges.propose(_request(first, MergeTarget.NEW_ACCOUNT, key="renew"))
    assert fresh.status is MergeStatus.COMPLETED and fresh.target_id is not None
    new_account = ledger.funded_accounts.require_funded_account(fresh.target_id)
    assert (new_account.tier.name, new_account.parent_id) == (TierName.REV, parent_id)
    assert new_account.starting_balance_minor == 200_000_00
    assert _posted(ledger, fresh.target_id) == 200_000_00


def test_a_sibling_must_share_the_parent(ledger: Ledger, clock: SettableClock) -> None:
    _, (child_id,) = _family(ledger, clock)
    stranger = profitable_funded_account(ledger, "trader-2", 400)
    with pytest.raises(LedgerRefusal) as refused:
        ledger.merges.propose(_request(child_id, MergeTarget.SIBLING, target=stranger))
    assert refused.value.code is ResultCode.MERGE_TARGET_INVALID
    with pytest.raises(LedgerRefusal) as refused:
        ledger.merges.propose(_request(stranger, MergeTarget.PARENT))
    assert refused.value.code is ResultCode.MERGE_TARGET_INVALID


def test_positions_must_be_closed_first(ledger: Ledger, clock: SettableClock) -> None:
    _, (child_id,) = _family(ledger, clock)
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_price("HOLD", bid_minor=100_00, ask_minor=100_00)
    ledger.funded_accounts.open_position(child_id, "HOLD", PositionSide.LONG, 10)
    with pytest.raises(LedgerRefusal) as refused:
        ledger.merges.propose(_request(child_id, MergeTarget.PARENT))
    assert refused.value.code is ResultCode.OPEN_POSITIONS


def test_an_underperformance_merge_waits_for_an_admin_and_critical_does_not(
    ledger: Ledger, clock: SettableClock
) -> None:
    _, (first, second) = _family(ledger, clock, children=2)
    waiting = ledger.merges.propose(
        _request(first, MergeTarget.PARENT, trigger=MergeTrigger.UNDERPERFORMANCE)
    )
    assert waiting.status is MergeStatus.PROPOSED
    assert _posted(ledger, first) == 100_000_00
    approved = ledger.merges.approve(waiting.id, "admin:ops")
    assert approved.status is MergeStatus.COMPLETED and approved.approved_by == "admin:ops"
    critical = ledger.merges.propose(
        _request(
            second, MergeTarget.PARENT, trigger=MergeTrigger.RISK, urgency=MergeUrgency.CRITICAL
        )
    )
    assert critical.status is MergeStatus.COMPLETED


def test_a_failed_merge_rolls_back_and_moves_nothing(ledger: Ledger, clock: SettableClock) -> None:
    _, (child_id,) = _family(ledger, clock)
    # A new Rev account needs $100,000: $40,000 cannot start one.
    failed = ledger.merges.propose(
        _request(child_id, MergeTarget.NEW_ACCOUNT, amount=40_000_00, key="too-small")
    )
    assert failed.status is MergeStatus.ROLLED_BACK and failed.rollback_reason
    child = ledger.funded_accounts.require_funded_account(child_id)
    assert (child.state, child.current_balance_minor) == (FundedAccountState.ACTIVE, 100_000_00)
    assert _posted(ledger, child_id) == 100_000_00


def test_audit_verify_finds_every_fork_and_merge_conserving(
    ledger: Ledger, clock: SettableClock
) -> None:
    """Forks out, merges back, partial and whole: the log verifies, hash chain,
    balanced transfers, account totals and every view replayed."""
    _, (first, second) = _family(ledger, clock, children=2)
    ledger.merges.propose(_request(first, MergeTarget.PARENT, amount=10_000_00, key="part"))
    ledger.merges.propose(_request(second, MergeTarget.SIBLING, target=first, key="sib"))
    ledger.merges.propose(_request(first, MergeTarget.PARENT, key="whole"))
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, view_names(), 10)
    report = verify_ledger(ledger.database_url)
    assert report.ok, report.findings
